"""The contract every episode source follows (docs/CONTRACTS.md): :class:`TaskBatch`, the
per-episode random generator, and the NaN marking of padded entries in variable-way batches.

Example::

    >>> rng = episode_rng("omniglot", "train", seed=0, index=3)   # a pure function of the four
    >>> int(rng.integers(100)) == int(episode_rng("omniglot", "train", 0, 3).integers(100))
    True
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple, Sequence

import numpy as np
import torch


class TaskBatch(NamedTuple):
    """A stack of T episodes (see docs/CONTRACTS.md for shapes and dtypes)."""

    xs: torch.Tensor  # [T, S, *input_shape]
    ys: torch.Tensor  # [T, S] int64 or [T, S, 1] float32
    xq: torch.Tensor  # [T, Q, *input_shape]
    yq: torch.Tensor  # [T, Q] or [T, Q, 1]
    info: dict  # name -> [T, ...]

    def to(self, device) -> "TaskBatch":
        return TaskBatch(
            *(t.to(device) for t in (self.xs, self.ys, self.xq, self.yq)),
            {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.info.items()},
        )


def mark_batch_padding(batch: TaskBatch) -> TaskBatch:
    """``batch`` with the inputs of padded entries (``info["support_mask"]`` /
    ``info["query_mask"]`` False) set to NaN, the padding convention of the ``padded=True``
    backbones (``trlearner.engine.backbones``). A batch without masks is returned unchanged."""
    from trlearner.engine.backbones import mark_padding

    if "support_mask" not in batch.info:
        return batch
    return batch._replace(xs=mark_padding(batch.xs, batch.info["support_mask"]),
                          xq=mark_padding(batch.xq, batch.info["query_mask"]))


class PaddedSource:
    """A variable-way/shot source whose batches mark padded inputs with NaN
    (:func:`mark_batch_padding`), so that the model can keep them out of its batch-norm
    statistics. ``padded = True`` tells ``train.build`` to build a padding-aware backbone;
    every other attribute is the wrapped source's."""

    padded = True

    def __init__(self, source):
        self.source = source

    def __getattr__(self, name):
        return getattr(self.source, name)

    def batch(self, indices) -> TaskBatch:
        return mark_batch_padding(self.source.batch(indices))


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def episode_rng(dataset: str, split: str, seed: int, index: int) -> np.random.Generator:
    """The generator of one episode: a pure function of (dataset, split, seed, index)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [_h(dataset), _h(split), int(seed) & 0xFFFFFFFFFFFFFFFF, int(index)])))


def episode_hash(batch) -> str:
    """sha256 of a TaskBatch's tensors (for recording which episodes a result used)."""
    h = hashlib.sha256()
    for t in (batch.xs, batch.ys, batch.xq, batch.yq):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def task_batch(xs, ys, xq, yq, info):
    return TaskBatch(xs, ys, xq, yq, info)


def as_indices(indices: Sequence[int]) -> list[int]:
    out = [int(i) for i in indices]
    if any(i < 0 for i in out):
        raise ValueError("episode indices must be >= 0")
    return out

"""What every episode sampler shares: per-episode random generators and TaskBatch assembly."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np


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
    from trlearner.data.tasks import TaskBatch

    return TaskBatch(xs, ys, xq, yq, info)


def as_indices(indices: Sequence[int]) -> list[int]:
    out = [int(i) for i in indices]
    if any(i < 0 for i in out):
        raise ValueError("episode indices must be >= 0")
    return out

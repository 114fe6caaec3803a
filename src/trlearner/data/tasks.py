"""Task batches and the one entry point that builds any task source by name.

See ``docs/CONTRACTS.md`` for the contract every source follows. Example::

    >>> src = make_source("sinusoid", "train", shots=5, seed=0)
    >>> b = src.batch(range(25))
    >>> tuple(b.xs.shape), tuple(b.yq.shape)
    ((25, 5, 1), (25, 5, 1))
"""

from __future__ import annotations

from typing import NamedTuple

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


def make_source(dataset: str, split: str, shots: int, ways: int | None = None,
                queries: int | None = None, seed: int = 0, root: str = "data"):
    """Build the task source of ``dataset`` for ``split`` (``train``, ``val`` or ``test``).

    ``queries`` is per task for regression and per class for classification; ``None`` uses
    the protocol's default (regression: ``shots`` at train, 100 at val/test; classification:
    15 per class). Classification datasets need ``ways``; pQSAR, pose and Meta-Dataset do not.
    """
    from trlearner.data.regression import FAMILIES, RegressionSource

    if dataset in FAMILIES:
        if queries is None:
            queries = shots if split == "train" else 100
        return RegressionSource(dataset, split, shots, queries, seed)
    from trlearner.data.images import image_source

    return image_source(dataset, split, ways, shots, 15 if queries is None else queries, seed, root=root)

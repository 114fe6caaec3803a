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


def make_source(dataset: str, split: str, shots: int, ways: int | None = None,
                queries: int | None = None, seed: int = 0, root: str = "data", **options):
    """Build the task source of ``dataset`` for ``split`` (``train``, ``val`` or ``test``).

    ``queries`` is per task for regression and per class for classification; ``None`` uses
    the protocol's default (regression: ``shots`` at train, 100 at val/test; classification:
    15 per class). Classification datasets need ``ways``; pQSAR, pose and Meta-Dataset do not.
    Meta-Dataset sources (``metadataset_<source>``, and the multi-source ``metadataset`` with
    ``options`` ``train_sources``/``heldout_sources``, see
    :mod:`trlearner.data.metadataset_multi`) are variable-way: their batches are padded and
    the padding is marked with NaN (:class:`PaddedSource`).
    """
    from trlearner.data.regression import FAMILIES, RegressionSource

    if dataset == "metadataset":
        from trlearner.data.metadataset_multi import MultiSourceMetaDataset

        return PaddedSource(MultiSourceMetaDataset(split, seed=seed, root=root, **options))
    if options:
        raise ValueError(f"options {sorted(options)} apply to the multi-source 'metadataset' only, "
                         f"not to {dataset!r}")
    if dataset in FAMILIES:
        if queries is None:
            queries = shots if split == "train" else 100
        return RegressionSource(dataset, split, shots, queries, seed)
    from trlearner.data.images import image_source

    source = image_source(dataset, split, ways, shots, 15 if queries is None else queries, seed, root=root)
    return PaddedSource(source) if dataset.startswith("metadataset_") else source

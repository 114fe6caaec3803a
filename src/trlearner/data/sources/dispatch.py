"""The one entry point that builds any task source by name, and the one table behind it.

:data:`SOURCES` maps each kind of dataset to its source's constructor; :func:`source_kind`
says which kind a dataset is (from its name and its registry entry). :func:`make_source` is
the entry point of every run (it pads the variable-way kinds, :class:`PaddedSource`);
:func:`image_source` is the same table without the padding, for the fetched datasets only.
See ``docs/CONTRACTS.md`` for the contract every source follows. Example::

    >>> src = make_source("sinusoid", "train", shots=5, seed=0)
    >>> b = src.batch(range(25))
    >>> tuple(b.xs.shape), tuple(b.yq.shape)
    ((25, 5, 1), (25, 5, 1))
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

from trlearner.data.registry import get
from trlearner.data.sources.episodes import PaddedSource


class Kind(NamedTuple):
    """One row of :data:`SOURCES`: ``build(dataset, split, ways, shots, queries, seed, root,
    **options)`` returns the source (``queries=None``: the source's default); ``padded``: its
    batches are variable-way and ``make_source`` marks their padding."""

    build: Callable
    padded: bool = False


def _regression(dataset, split, ways, shots, queries, seed, root):
    from trlearner.data.sources.regression import RegressionSource

    return RegressionSource(dataset, split, shots, (shots if split == "train" else 100) if queries is None
                            else queries, seed)


def _pqsar(dataset, split, ways, shots, queries, seed, root):
    from trlearner.data.sources.drug import PQSARSource

    return PQSARSource(split, shots, 20 if queries is None else queries, seed, root=root)


def _pose(dataset, split, ways, shots, queries, seed, root):
    from trlearner.data.sources.pose import PoseSource

    return PoseSource(split, shots, 15 if queries is None else queries, seed, root=root)


def _metadataset(dataset, split, ways, shots, queries, seed, root):
    from trlearner.data.sources.metadataset import MetaDatasetSource

    return MetaDatasetSource(dataset, split, seed, root=root)


def _metadataset_multi(dataset, split, ways, shots, queries, seed, root, **options):
    from trlearner.data.sources.metadataset_multi import MultiSourceMetaDataset

    return MultiSourceMetaDataset(split, seed=seed, root=root, **options)


def _images(dataset, split, ways, shots, queries, seed, root):
    from trlearner.data.sources.images import ImageEpisodes

    if ways is None:
        raise ValueError(f"dataset {dataset!r} is a classification benchmark: give ways")
    return ImageEpisodes(dataset, split, ways, shots, 15 if queries is None else queries, seed, root=root)


SOURCES: dict[str, Kind] = {
    "regression": Kind(_regression),              # sinusoid, harmonic, motivation_d1..d4 (generated)
    "pqsar": Kind(_pqsar),                        # registry converter "pqsar"
    "pose": Kind(_pose),                          # registry converter "pose"
    "metadataset_multi": Kind(_metadataset_multi, padded=True),  # "metadataset" (several sources)
    "metadataset": Kind(_metadataset, padded=True),              # "metadataset_<source>"
    "images": Kind(_images),                      # every fixed-way image benchmark
}


def source_kind(dataset: str) -> str:
    """The row of :data:`SOURCES` that builds ``dataset``.

    Arguments:
        dataset: a dataset name (a regression family or a registry entry).

    Returns:
        ``"regression"``, ``"pqsar"``, ``"pose"``, ``"metadataset_multi"``, ``"metadataset"``
        or ``"images"``.

    Example::

        >>> source_kind("sinusoid"), source_kind("metadataset"), source_kind("metadataset_dtd")
        ('regression', 'metadataset_multi', 'metadataset')
    """
    from trlearner.data.sources.regression import FAMILIES

    if dataset == "metadataset":
        return "metadataset_multi"
    if dataset in FAMILIES:
        return "regression"
    converter = get(dataset).converter
    if converter in ("pqsar", "pose"):
        return converter
    if dataset.startswith("metadataset"):
        return "metadataset"
    return "images"


def make_source(dataset: str, split: str, shots: int, ways: int | None = None,
                queries: int | None = None, seed: int = 0, root: str = "data", **options):
    """Build the task source of ``dataset`` for ``split`` (``train``, ``val`` or ``test``).

    ``queries`` is per task for regression and per class for classification; ``None`` uses
    the protocol's default (regression: ``shots`` at train, 100 at val/test; classification:
    15 per class). Classification datasets need ``ways``; pQSAR, pose and Meta-Dataset do not.
    Meta-Dataset sources (``metadataset_<source>``, and the multi-source ``metadataset`` with
    ``options`` ``train_sources``/``heldout_sources``, see
    :mod:`trlearner.data.sources.metadataset_multi`) are variable-way: their batches are padded
    and the padding is marked with NaN (:class:`PaddedSource`).
    """
    kind = source_kind(dataset)
    if options and kind != "metadataset_multi":
        raise ValueError(f"options {sorted(options)} apply to the multi-source 'metadataset' only, "
                         f"not to {dataset!r}")
    if queries is None and kind != "regression":
        queries = 15
    row = SOURCES[kind]
    source = row.build(dataset, split, ways, shots, queries, seed, root, **options)
    return PaddedSource(source) if row.padded else source


def image_source(dataset: str, split: str, ways: int | None, shots: int, queries: int | None = 15,
                 seed: int = 0, root: str | Path = "data"):
    """Build the task source of any fetched non-synthetic dataset, without the padding marks of
    :func:`make_source` (the same table, :data:`SOURCES`).

    Classification datasets need ``ways``; pQSAR and Pascal 3D pose are regression sources
    (``ways`` is ignored, ``queries`` is per task; ``None``: 20 and 15); Meta-Dataset sources
    (``metadataset_<source>``) draw variable-way, variable-shot episodes (``ways``/``shots``
    ignored).

    Example::

        >>> src = image_source("omniglot_small", "test", ways=5, shots=1, queries=15)  # doctest: +SKIP
        >>> tuple(src.batch(range(4)).xs.shape)                                      # doctest: +SKIP
        (4, 5, 1, 28, 28)
    """
    kind = source_kind(dataset)
    if kind == "metadataset_multi":
        kind = "metadataset"  # refused by MetaDatasetSource: one source at a time here
    return SOURCES[kind].build(dataset, split, ways, shots, queries, seed, root)

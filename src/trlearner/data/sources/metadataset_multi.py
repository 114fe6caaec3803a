"""Meta-Dataset, multi-source: train on some sources, test on every source (the paper's OOD
experiment, TRLEARNER.md section 4).

The paper says "train on some sources, test on held-out ones" without naming them. Our
decision (``trlearner.data.sources.metadataset_sources``,
overridable per run with ``train_sources`` / ``heldout_sources``): train on the 8 sources
that have training classes (ilsvrc_2012, omniglot, aircraft, cu_birds, dtd, quickdraw,
fungi, vgg_flower) and hold out the two test-only sources of Meta-Dataset (traffic_sign,
mscoco), as Triantafillou et al. (2020) do.

- ``train`` / ``val`` split: each episode of a meta-batch comes from one training source,
  drawn uniformly: source = ``episode_rng("metadataset", split, seed, index)``; the episode
  itself is episode ``index`` of that source's own sampler
  (:class:`trlearner.data.sources.metadataset.MetaDatasetSource` on the source's ``split`` classes).
  So every episode is a pure function of (split, seed, index, source lists), like all our
  episodes. Validation uses the training sources' validation classes.
- ``test`` split: the same rule over all (training + held-out) sources; the evaluation of a
  run does not use it but the per-source test episodes (:meth:`source`), 600 per source,
  identical to those of the single-source runs (``metadataset_<source>``).

Batches follow the padding convention of ``MetaDatasetSource`` (label -1 and zero inputs at
padding, ``info["support_mask"]`` / ``info["query_mask"]``, ``info["ways"]``) and add
``info["source"]`` [T] (index into :attr:`sources`). ``n_out`` is 50 (the largest way).

Example (needs the fetched sources)::

    src = MultiSourceMetaDataset("train", seed=0, root="data")
    b = src.batch(range(4))          # 4 episodes, each from a uniformly drawn source
    [src.sources[i] for i in b.info["source"]]
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from trlearner.data.sources.episodes import as_indices, episode_rng, task_batch
from trlearner.data.sources.metadataset import MetaDatasetSource
from trlearner.data.sources.metadataset_sources import (METADATASET_HELDOUT_SOURCES, METADATASET_SOURCES,
                                                        METADATASET_TRAIN_SOURCES)

SPLITS = ("train", "val", "test")


def check_sources(train_sources: Sequence[str], heldout_sources: Sequence[str]) -> tuple[tuple, tuple]:
    """The two source lists as tuples, or a ValueError saying what is allowed."""
    train, held = tuple(train_sources), tuple(heldout_sources)
    unknown = [s for s in train + held if s not in METADATASET_SOURCES]
    if unknown:
        raise ValueError(f"unknown Meta-Dataset source(s) {unknown}; allowed: {', '.join(METADATASET_SOURCES)} "
                         "(names without the 'metadataset_' prefix)")
    if not train:
        raise ValueError("train_sources is empty: give at least one Meta-Dataset source to train on")
    both = sorted(set(train) & set(held))
    if both:
        raise ValueError(f"source(s) {both} are both train and held-out sources; a held-out source must not "
                         "be trained on")
    for name, lst in (("train_sources", train), ("heldout_sources", held)):
        if len(set(lst)) != len(lst):
            raise ValueError(f"{name} lists a source twice: {list(lst)}")
    return train, held


class MultiSourceMetaDataset:
    """Episodes of several Meta-Dataset sources (see the module docstring).

    Attributes: ``sources`` (the sources this split draws from), ``train_sources``,
    ``heldout_sources``, ``input_shape``, ``n_out``, ``kind``.
    """

    kind = "classification"

    def __init__(self, split: str, seed: int = 0, root: str | Path = "data",
                 train_sources: Sequence[str] | None = None, heldout_sources: Sequence[str] | None = None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        self.train_sources, self.heldout_sources = check_sources(
            METADATASET_TRAIN_SOURCES if train_sources is None else train_sources,
            METADATASET_HELDOUT_SOURCES if heldout_sources is None else heldout_sources)
        self.split, self.seed, self.root = split, seed, root
        self.sources = self.train_sources + (self.heldout_sources if split == "test" else ())
        self._per_source: dict[str, MetaDatasetSource] = {}
        first = self.source(self.sources[0], split)
        self.input_shape, self.n_out = first.input_shape, first.n_out
        for name in self.sources[1:]:
            shape = self.source(name, split).input_shape
            if tuple(shape) != tuple(self.input_shape):
                raise ValueError(f"Meta-Dataset source {name} has images of shape {tuple(shape)}, "
                                 f"{self.sources[0]} {tuple(self.input_shape)}: every source must be converted "
                                 "to the same size (84x84 RGB); re-fetch it")

    def source(self, name: str, split: str | None = None, seed: int | None = None) -> MetaDatasetSource:
        """The single-source sampler of ``name`` (``split``/``seed`` default to this one's)."""
        split = self.split if split is None else split
        seed = self.seed if seed is None else seed
        key = (name, split, seed)
        if key not in self._per_source:
            try:
                self._per_source[key] = MetaDatasetSource(f"metadataset_{name}", split, seed, root=self.root)
            except ValueError as exc:
                role = "held-out" if name in self.heldout_sources else "training"
                raise ValueError(f"Meta-Dataset {role} source {name!r} has no usable {split!r} split ({exc}); "
                                 f"train sources need train and validation classes (traffic_sign and mscoco "
                                 f"have test classes only)") from exc
        return self._per_source[key]

    def source_of(self, index: int) -> int:
        """Index into :attr:`sources` of the source of episode ``index`` (uniform draw)."""
        rng = episode_rng("metadataset", self.split, self.seed, index)
        return int(rng.integers(len(self.sources)))

    def batch(self, indices: Sequence[int]):
        """Episodes ``indices`` stacked and padded (see the module docstring)."""
        idx = as_indices(indices)
        which = [self.source_of(i) for i in idx]
        parts: dict[int, tuple[list[int], object]] = {}
        for s in sorted(set(which)):
            pos = [p for p, w in enumerate(which) if w == s]
            parts[s] = (pos, self.source(self.sources[s]).batch([idx[p] for p in pos]))
        T = len(idx)
        s_max = max(b.xs.shape[1] for _, b in parts.values())
        q_max = max(b.xq.shape[1] for _, b in parts.values())
        xs = torch.zeros(T, s_max, *self.input_shape)
        xq = torch.zeros(T, q_max, *self.input_shape)
        ys = torch.full((T, s_max), -1, dtype=torch.int64)
        yq = torch.full((T, q_max), -1, dtype=torch.int64)
        ways = torch.zeros(T, dtype=torch.int64)
        for pos, b in parts.values():
            p = torch.tensor(pos)
            xs[p, :b.xs.shape[1]], ys[p, :b.ys.shape[1]] = b.xs, b.ys
            xq[p, :b.xq.shape[1]], yq[p, :b.yq.shape[1]] = b.xq, b.yq
            ways[p] = b.info["ways"]
        return task_batch(xs, ys, xq, yq, {"support_mask": ys >= 0, "query_mask": yq >= 0, "ways": ways,
                                           "source": torch.tensor(which, dtype=torch.int64)})

"""pQSAR (ChEMBL) few-shot regression: one assay = one task, 1024-bit fingerprints -> pIC50.

The raw files and their reading: :mod:`trlearner.data.fetch.convert_pqsar`, which writes the
cache read here (its layout: :data:`CACHE_LAYOUT`, ``assays.json``).

Episodes: MetaMix adapts on an assay's ``TRN`` measurements and evaluates on its ``TST``
measurements (all of them, at most 2000 each). Tasks here have a fixed shape, so support =
``shots`` distinct ``TRN`` rows and query = ``queries`` distinct ``TST`` rows of the assay
(never a query from the training portion); assays with too few of either are left out
(``self.skipped``). Episode ``index`` of ``val``/``test`` is assay ``index % n_assays`` of the
split (sorted ids, so ``0..n-1`` visit every test assay once); in ``train`` the assay is drawn
by the episode's generator.

Meta-test score: :func:`r2_per_task` is MetaMix's ``pearson_score`` (squared Pearson
correlation of query targets and predictions, 0 where it is undefined); the reported summary
is its mean, median and the count of assays above 0.3 (``Drug/main.py::test``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from trlearner.data.sources.episodes import as_indices, episode_rng, task_batch
from trlearner.data.store import require

CACHE_LAYOUT = 2  # assay rows TRN first (assay_n_trn.npy)


class PQSARSource:
    kind = "regression"
    n_out = 1

    def __init__(self, split: str, shots: int, queries: int, seed: int = 0, root: str | Path = "data",
                 group: int | str = 1, dataset: str = "pqsar"):
        cache = Path(require(dataset, root))
        meta = json.loads((cache / "assays.json").read_text())
        if meta.get("cache_layout") != CACHE_LAYOUT:
            raise ValueError(f"the {dataset} cache predates the TRN/TST layout: refetch it "
                             f"(python -m trlearner data fetch {dataset})")
        self.dataset, self.split, self.shots, self.queries, self.seed = dataset, split, shots, queries, seed
        self.bits = int(meta["bits"])
        self.input_shape = (self.bits,)
        self.fps = np.load(cache / "fingerprints_packed.npy", mmap_mode="r")
        self.compound = np.load(cache / "compound.npy", mmap_mode="r")
        self.y = np.load(cache / "pic50.npy", mmap_mode="r")
        offsets = np.load(cache / "assay_offsets.npy")
        n_trn = np.load(cache / "assay_n_trn.npy")
        groups = meta["splits"]
        if str(group) not in groups:
            raise ValueError(f"pQSAR group {group!r} not in the archive (have {sorted(groups, key=int)})")
        key = {"val": "val", "valid": "val"}.get(split, split)
        wanted = set(groups[str(group)][key])
        pos = {a: k for k, a in enumerate(meta["assays"])}
        # per assay: rows offsets[k] .. +n_trn[k] are TRN, the rest up to offsets[k+1] are TST
        self.assays, self.skipped = [], 0
        for a in sorted(wanted):
            k = pos.get(a)
            if k is None:
                self.skipped += 1
                continue
            start, trn = int(offsets[k]), int(n_trn[k])
            tst = int(offsets[k + 1]) - start - trn
            if trn < shots or tst < queries:
                self.skipped += 1
                continue
            self.assays.append((a, start, trn, tst))
        if not self.assays:
            raise ValueError(f"pQSAR {split}: no assay has >= {shots} TRN and >= {queries} TST measurements")

    def __len__(self) -> int:
        return len(self.assays)

    def batch(self, indices: Sequence[int]):
        idx = as_indices(indices)
        n = self.shots + self.queries
        rows = np.empty((len(idx), n), dtype=np.int64)
        ids = np.empty(len(idx), dtype=np.int64)
        for t, i in enumerate(idx):
            rng = episode_rng(self.dataset, self.split, self.seed, i)
            a = rng.integers(len(self.assays)) if self.split == "train" else i % len(self.assays)
            aid, start, trn, tst = self.assays[a]
            rows[t, :self.shots] = start + rng.choice(trn, self.shots, replace=False)
            rows[t, self.shots:] = start + trn + rng.choice(tst, self.queries, replace=False)
            ids[t] = aid
        x = np.unpackbits(self.fps[self.compound[rows.reshape(-1)]], axis=1)[:, :self.bits]
        x = torch.from_numpy(x.astype(np.float32)).view(len(idx), n, self.bits)
        y = torch.from_numpy(np.asarray(self.y[rows.reshape(-1)], dtype=np.float32)).view(len(idx), n, 1)
        s = self.shots
        return task_batch(x[:, :s], y[:, :s], x[:, s:], y[:, s:], {"assay_id": torch.from_numpy(ids)})


def r2_per_task(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MetaMix's per-assay "R^2": squared Pearson correlation of ``target`` and ``pred``
    (``Drug/utils/experiment.py::pearson_score``, ``np.corrcoef(y, p)[0, 1] ** 2``), over the
    query points; ``pred``, ``target`` [T, Q, 1] -> [T]. Where a correlation is undefined
    (constant predictions or targets) the value is 0, as MetaMix's test loop scores a NaN."""
    p = pred.squeeze(-1).double()
    t = target.squeeze(-1).double()
    p = p - p.mean(1, keepdim=True)
    t = t - t.mean(1, keepdim=True)
    cov = (p * t).sum(1)
    var = (p * p).sum(1) * (t * t).sum(1)
    r2 = torch.where(var > 0, cov * cov / var.clamp_min(1e-300), torch.zeros_like(var))
    return r2.to(pred.dtype)


def determination_per_task(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination ``1 - SS_res / SS_tot`` per task: [T, Q, 1] -> [T]. Not
    MetaMix's score (see :func:`r2_per_task`, which ``trlearner.engine.algorithms.base.r2_metric``
    computes); kept to compare the two."""
    t = target.squeeze(-1)
    ss_res = ((pred.squeeze(-1) - t) ** 2).sum(1)
    ss_tot = ((t - t.mean(1, keepdim=True)) ** 2).sum(1)
    return 1 - ss_res / ss_tot.clamp_min(1e-12)

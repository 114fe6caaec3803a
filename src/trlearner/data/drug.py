"""pQSAR (ChEMBL) few-shot regression: one assay = one task, 1024-bit fingerprints -> pIC50.

Meta-test reports R^2 per assay (:func:`r2_per_task`) and its mean, median and the count of
assays with R^2 > 0.3 (Martin et al. 2019; MetaMix).

Episode ``index`` of split ``val``/``test`` is assay ``index % n_assays`` of the split (so
indices ``0..n-1`` visit every test assay once); in ``train`` the assay is drawn by the
episode's generator. Support and query are ``shots`` and ``queries`` distinct measurements of
the assay; assays with fewer than ``shots + queries`` measurements are left out (counted in
``self.skipped``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from trlearner.data.episodes import as_indices, episode_rng, task_batch
from trlearner.data.fetch import require


class PQSARSource:
    kind = "regression"
    n_out = 1

    def __init__(self, split: str, shots: int, queries: int, seed: int = 0, root: str | Path = "data",
                 group: int | str = 1, dataset: str = "pqsar"):
        cache = Path(require(dataset, root))
        meta = json.loads((cache / "assays.json").read_text())
        self.dataset, self.split, self.shots, self.queries, self.seed = dataset, split, shots, queries, seed
        self.bits = int(meta["bits"])
        self.input_shape = (self.bits,)
        self.fps = np.load(cache / "fingerprints_packed.npy", mmap_mode="r")
        self.compound = np.load(cache / "compound.npy", mmap_mode="r")
        self.y = np.load(cache / "pic50.npy", mmap_mode="r")
        offsets = np.load(cache / "assay_offsets.npy")
        groups = meta["splits"]
        if str(group) not in groups:
            raise ValueError(f"pQSAR group {group!r} not in the archive (have {sorted(groups)})")
        key = {"val": "val", "valid": "val"}.get(split, split)
        wanted = set(groups[str(group)][key])
        pos = {a: k for k, a in enumerate(meta["assays"])}
        need = shots + queries
        self.assays, self.skipped = [], 0
        for a in sorted(wanted):
            k = pos.get(a)
            if k is None or offsets[k + 1] - offsets[k] < need:
                self.skipped += 1
                continue
            self.assays.append((a, int(offsets[k]), int(offsets[k + 1] - offsets[k])))
        if not self.assays:
            raise ValueError(f"pQSAR {split}: no assay has >= {need} measurements")

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
            aid, start, count = self.assays[a]
            rows[t] = start + rng.choice(count, n, replace=False)
            ids[t] = aid
        x = np.unpackbits(self.fps[self.compound[rows.reshape(-1)]], axis=1)[:, :self.bits]
        x = torch.from_numpy(x.astype(np.float32)).view(len(idx), n, self.bits)
        y = torch.from_numpy(np.asarray(self.y[rows.reshape(-1)], dtype=np.float32)).view(len(idx), n, 1)
        s = self.shots
        return task_batch(x[:, :s], y[:, :s], x[:, s:], y[:, s:], {"assay_id": torch.from_numpy(ids)})


def r2_per_task(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination per task: ``pred``, ``target`` [T, Q, 1] -> [T]."""
    t = target.squeeze(-1)
    ss_res = ((pred.squeeze(-1) - t) ** 2).sum(1)
    ss_tot = ((t - t.mean(1, keepdim=True)) ** 2).sum(1)
    return 1 - ss_res / ss_tot.clamp_min(1e-12)

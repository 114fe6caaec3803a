"""Pascal 3D pose regression: one object instance = one task; 128x128 grey view -> angle (MSE).

``train`` draws from the instances of train_data_ins.pkl, ``val``/``test`` from those of
val_data_ins.pkl (as MR-MAML / MetaMix do); the test protocol is episodes 0..999.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from trlearner.data.episodes import as_indices, episode_rng, task_batch
from trlearner.data.fetch import require


class PoseSource:
    kind = "regression"
    n_out = 1
    n_test_tasks = 1000

    def __init__(self, split: str, shots: int, queries: int, seed: int = 0, root: str | Path = "data",
                 dataset: str = "pascal3d_pose"):
        cache = Path(require(dataset, root))
        part = "train" if split == "train" else "test"
        self.dataset, self.split, self.shots, self.queries, self.seed = dataset, split, shots, queries, seed
        self.x = np.load(cache / f"{part}_images.npy", mmap_mode="r")  # [objects, views, H, W]
        self.y = np.load(cache / f"{part}_angle.npy", mmap_mode="r")   # [objects, views]
        n_obj, n_views, h, w = self.x.shape
        if shots + queries > n_views:
            raise ValueError(f"pose: {shots}+{queries} points per task but only {n_views} views per object")
        self.input_shape = (1, h, w)
        self.meta = json.loads((cache / "pose.json").read_text())

    def batch(self, indices: Sequence[int]):
        idx = as_indices(indices)
        n = self.shots + self.queries
        obj = np.empty(len(idx), dtype=np.int64)
        views = np.empty((len(idx), n), dtype=np.int64)
        for t, i in enumerate(idx):
            rng = episode_rng(self.dataset, self.split, self.seed, i)
            obj[t] = rng.integers(self.x.shape[0])
            views[t] = rng.choice(self.x.shape[1], n, replace=False)
        x = np.asarray(self.x[obj[:, None], views]).astype(np.float32)
        x *= np.float32(1 / 255)
        x = torch.from_numpy(x).unsqueeze(2)  # [T, n, 1, H, W]
        y = torch.from_numpy(np.asarray(self.y[obj[:, None], views], dtype=np.float32)).unsqueeze(-1)
        s = self.shots
        return task_batch(x[:, :s].contiguous(), y[:, :s].contiguous(), x[:, s:].contiguous(),
                          y[:, s:].contiguous(), {"object": torch.from_numpy(obj)})

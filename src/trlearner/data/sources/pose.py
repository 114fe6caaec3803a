"""Pascal 3D pose regression: one object instance = one task; 128x128 grey view -> angle (MSE).

File format (google-research ``meta_learning_without_memorization/pose_data/data_gen.py``, read
by its ``pose_code/maml_vanilla.py`` and by huaxiuyao/MetaMix ``Pose/main.py``): a pickle of
``[images, labels]`` where ``images[o][v]`` is view ``v`` of object ``o``, a uint8 ``[128, 128]``
grey render (``resize_images.py``: Lanczos to 128x128, mode ``L``), and ``labels[o][v]`` is a
list of 3 floats ``[x, (y + 1) / 2, angle / (2 pi)]`` (``mujoco_render.py`` renders 100 views
per object at ``angle ~ U[0, 2 pi)``). Both references read it as
``x, y = np.array(x), np.array(y)[:, :, -1, None]``: the target is the last column, a fraction
of a turn in [0, 1). The pickles are read (and refused unless they have this layout) by
:mod:`trlearner.data.fetch.convert_pose`, which writes the cache read here.

Task (``get_batch`` in both references): one object, ``shots + queries`` distinct views;
inputs ``x / 255``; targets ``10 * y`` (:data:`TARGET_SCALE`, so the MSE is on the references'
scale). ``train`` draws from the objects of train_data_ins.pkl, ``val``/``test`` from those of
val_data_ins.pkl; the test protocol is episodes 0..999 (MetaMix ``NUM_TEST_POINTS = 1000``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from trlearner.data.sources.episodes import as_indices, episode_rng, task_batch
from trlearner.data.store import require

TARGET_SCALE = 10.0  # y[..., -1] * 10 in MetaMix Pose/data_generator.py and MR-MAML maml_vanilla.py
IMAGE_SIZE = 128     # dim_im of both references (reshape to [-1, 128, 128, 1])
CACHE_LAYOUT = 2     # label stored as in the pickle (fraction of a turn); scaled when read


class PoseSource:
    kind = "regression"
    n_out = 1
    n_test_tasks = 1000

    def __init__(self, split: str, shots: int, queries: int, seed: int = 0, root: str | Path = "data",
                 dataset: str = "pascal3d_pose"):
        cache = Path(require(dataset, root))
        self.meta = json.loads((cache / "pose.json").read_text())
        if self.meta.get("cache_layout") != CACHE_LAYOUT:
            raise ValueError(f"the {dataset} cache predates the current layout: refetch it "
                             f"(python -m trlearner data fetch {dataset})")
        part = "train" if split == "train" else "test"
        self.dataset, self.split, self.shots, self.queries, self.seed = dataset, split, shots, queries, seed
        self.x = np.load(cache / f"{part}_images.npy", mmap_mode="r")  # uint8 [objects, views, H, W]
        self.y = np.load(cache / f"{part}_label.npy", mmap_mode="r")   # float32 [objects, views], in [0, 1)
        n_obj, n_views, h, w = self.x.shape
        if shots + queries > n_views:
            raise ValueError(f"pose: {shots}+{queries} points per task but only {n_views} views per object")
        self.input_shape = (1, h, w)

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
        x /= np.float32(255.0)
        x = torch.from_numpy(x).unsqueeze(2)  # [T, n, 1, H, W]
        y = np.asarray(self.y[obj[:, None], views], dtype=np.float32) * np.float32(TARGET_SCALE)
        y = torch.from_numpy(y).unsqueeze(-1)
        s = self.shots
        return task_batch(x[:, :s].contiguous(), y[:, :s].contiguous(), x[:, s:].contiguous(),
                          y[:, s:].contiguous(), {"object": torch.from_numpy(obj), "view": torch.from_numpy(views)})

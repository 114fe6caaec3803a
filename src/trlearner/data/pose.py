"""Pascal 3D pose regression: one object instance = one task; 128x128 grey view -> angle (MSE).

File format (google-research ``meta_learning_without_memorization/pose_data/data_gen.py``, read
by its ``pose_code/maml_vanilla.py`` and by huaxiuyao/MetaMix ``Pose/main.py``): a pickle of
``[images, labels]`` where ``images[o][v]`` is view ``v`` of object ``o``, a uint8 ``[128, 128]``
grey render (``resize_images.py``: Lanczos to 128x128, mode ``L``), and ``labels[o][v]`` is a
list of 3 floats ``[x, (y + 1) / 2, angle / (2 pi)]`` (``mujoco_render.py`` renders 100 views
per object at ``angle ~ U[0, 2 pi)``). Both references read it as
``x, y = np.array(x), np.array(y)[:, :, -1, None]``: the target is the last column, a fraction
of a turn in [0, 1).

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

from trlearner.data.episodes import as_indices, episode_rng, task_batch
from trlearner.data.errors import DataFetchError
from trlearner.data.fetch import require
from trlearner.data.safe_pickle import load_pickle

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


# --------------------------------------------------------------------------- converter

def _bad(fname: str, dataset: str, problem: str) -> DataFetchError:
    return DataFetchError(problem, file=fname, dataset=dataset,
                          todo="use the pose pickles of MR-MAML / MetaMix (pickle of [images, labels], "
                               "images uint8 [objects][views][128, 128], labels [objects][views][3]; see docs/DATA.md)")


def read_pose_pickle(path: Path, dataset: str = "pascal3d_pose") -> tuple[np.ndarray, np.ndarray]:
    """One pose pickle -> (uint8 images [objects, views, 128, 128], float32 labels [objects,
    views, k]); refuses anything but the layout described in the module docstring."""
    fname = Path(path).name
    try:
        obj = load_pickle(path, encoding="latin1")  # restricted: arrays and containers only, never code
    except Exception as exc:
        raise _bad(fname, dataset, f"cannot be unpickled ({exc})") from exc
    if not isinstance(obj, (list, tuple)) or len(obj) != 2:
        raise _bad(fname, dataset, f"is a pickled {type(obj).__name__}, not a 2-element [images, labels]")
    try:
        x, y = np.asarray(obj[0]), np.asarray(obj[1], dtype=np.float64)
    except (ValueError, TypeError) as exc:  # ragged: objects with different view counts
        raise _bad(fname, dataset, f"images or labels are not a regular [objects][views] grid ({exc})") from exc
    if x.dtype == object or x.ndim != 4 or x.shape[2:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise _bad(fname, dataset, f"images have shape {x.shape} (dtype {x.dtype}), expected "
                                   f"[objects, views, {IMAGE_SIZE}, {IMAGE_SIZE}] grey")
    if y.ndim != 3 or y.shape[:2] != x.shape[:2]:
        raise _bad(fname, dataset, f"labels have shape {y.shape}, expected [{x.shape[0]}, {x.shape[1]}, k]")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.number):
            raise _bad(fname, dataset, f"images have dtype {x.dtype}, expected uint8 grey levels")
        xf = x.astype(np.float64)
        if xf.min(initial=0) < 0 or xf.max(initial=0) > 255 or not np.array_equal(xf, np.rint(xf)):
            raise _bad(fname, dataset, f"images of dtype {x.dtype} are not grey levels 0..255 "
                                       f"(range {xf.min():.3g}..{xf.max():.3g})")
        x = xf.astype(np.uint8)
    last = y[:, :, -1]
    if not np.isfinite(last).all() or last.min() < 0 or last.max() > 1:
        raise _bad(fname, dataset, f"the angle label (last column) spans {last.min():.4g}..{last.max():.4g}, "
                                   "expected a fraction of a turn in [0, 1] (angle / 2 pi)")
    return x, y.astype(np.float32)


def convert_pose(dataset: str, archives: Path, cache: Path, train: str, test: str) -> None:
    """The two pickles -> ``{train,test}_images.npy`` (uint8 [objects, views, 128, 128]),
    ``{train,test}_label.npy`` (float32 [objects, views], the pickle's last label column) and
    ``pose.json``."""
    out = {"cache_layout": CACHE_LAYOUT, "target_scale": TARGET_SCALE, "image_size": IMAGE_SIZE}
    for split, fname in (("train", train), ("test", test)):
        x, y = read_pose_pickle(Path(archives) / fname, dataset)
        np.save(cache / f"{split}_images.npy", x)
        np.save(cache / f"{split}_label.npy", np.ascontiguousarray(y[:, :, -1]))
        out[split] = {"file": fname, "objects": int(x.shape[0]), "views": int(x.shape[1]),
                      "label_columns": int(y.shape[2])}
        del x, y
    (cache / "pose.json").write_text(json.dumps(out))

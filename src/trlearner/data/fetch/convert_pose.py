"""Pascal 3D pose: the MR-MAML / MetaMix pickles -> the cache of
:class:`trlearner.data.sources.pose.PoseSource` (the file format: that module's docstring).

Example::

    >>> x, y = read_pose_pickle(Path("data/manual/pascal3d_pose/train_data_ins.pkl"))  # doctest: +SKIP
    >>> x.shape[2:], x.dtype                                                              # doctest: +SKIP
    ((128, 128), dtype('uint8'))
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trlearner.data.errors import DataFetchError
from trlearner.data.safe_pickle import load_pickle
from trlearner.data.sources.pose import CACHE_LAYOUT, IMAGE_SIZE, TARGET_SCALE


def _bad(fname: str, dataset: str, problem: str) -> DataFetchError:
    return DataFetchError(problem, file=fname, dataset=dataset,
                          todo="use the pose pickles of MR-MAML / MetaMix (pickle of [images, labels], "
                               "images uint8 [objects][views][128, 128], labels [objects][views][3]; see docs/DATA.md)")


def read_pose_pickle(path: Path, dataset: str = "pascal3d_pose") -> tuple[np.ndarray, np.ndarray]:
    """One pose pickle -> (uint8 images [objects, views, 128, 128], float32 labels [objects,
    views, k]); refuses anything but the layout described in :mod:`trlearner.data.sources.pose`."""
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

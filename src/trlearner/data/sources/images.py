"""Few-shot image classification episodes from the memory-mapped uint8 cache.

An episode is a pure function of (dataset, split, seed, index): ``ways`` classes of the
split drawn without replacement, then ``shots + queries`` distinct images of each class.
Gathering is one vectorised fancy-index into the memory map per batch.

Example (:func:`trlearner.data.sources.dispatch.image_source` builds it by name)::

    >>> src = image_source("omniglot_small", "test", ways=5, shots=1, queries=15, seed=0)  # doctest: +SKIP
    >>> b = src.batch(range(4))                                                          # doctest: +SKIP
    >>> tuple(b.xs.shape), tuple(b.xq.shape), b.ys[0].tolist()                           # doctest: +SKIP
    ((4, 5, 1, 28, 28), (4, 75, 1, 28, 28), [0, 1, 2, 3, 4])
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from trlearner.data.registry import get, split_file
from trlearner.data.sources.episodes import as_indices, episode_rng, task_batch
from trlearner.data.store import require

SPLITS = ("train", "val", "test")


class ImageStore:
    """The image cache of one dataset: ``images`` (memory-mapped uint8), class offsets, names."""

    def __init__(self, cache: Path):
        self.images = np.load(cache / "images.npy", mmap_mode="r")
        self.offsets = np.load(cache / "class_offsets.npy")
        self.meta = json.loads((cache / "classes.json").read_text())
        self.classes: list[str] = self.meta["classes"]
        self.index = {c: k for k, c in enumerate(self.classes)}

    def count(self, k: np.ndarray) -> np.ndarray:
        return self.offsets[k + 1] - self.offsets[k]


@lru_cache(maxsize=16)
def _store(cache: str) -> ImageStore:
    return ImageStore(Path(cache))


def _rule_mod4(names: list[str], split: str) -> list[str]:
    s = sorted(names)
    keep = {"train": lambda i: i % 2 == 0, "val": lambda i: i % 4 == 1, "test": lambda i: i % 4 == 3}[split]
    return [c for i, c in enumerate(s) if keep(i)]


def split_classes(dataset: str, split: str, store: ImageStore) -> list[tuple[str, int]]:
    """The classes of ``split`` as (cache class name, rotation in degrees)."""
    spec = get(dataset)
    sp = spec.split
    if split not in SPLITS + ("trainval",):
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    fmt = sp.get("format")
    if fmt == "vinyals":  # lines Alphabet/characterNN/rotDDD
        out = []
        for line in split_file(sp["file"].format(split=split)):
            alpha, char, rot = line.split("/")
            out.append((f"{alpha}/{char}", int(rot[3:])))
        return out
    if fmt == "alphabets":  # whole alphabets per split, each rotation a further class
        d = split_file(sp["file"])
        alphabets = d["train"] + d["val"] if split == "trainval" else d[split]
        chars = [c for c in store.classes if c.split("/")[0] in alphabets]
        return [(c, r) for c in chars for r in d.get("rotations", [0])]
    if sp.get("rule") == "mod4":
        if split == "trainval":
            return [(c, 0) for c in _rule_mod4(store.classes, "train") + _rule_mod4(store.classes, "val")]
        return [(c, 0) for c in _rule_mod4(store.classes, split)]
    if fmt == "class_lists":
        d = split_file(sp["file"])
        keys = {"val": ["val", "valid"], "trainval": ["train", "val", "valid"]}.get(split, [split])
        return [(c, 0) for k in keys for c in d.get(k, [])]
    raise ValueError(f"dataset {dataset!r} has no image split {split!r}")


def rotate(images: np.ndarray, k: int) -> np.ndarray:
    """Rotate a stack of square grey images by ``k`` quarter turns counter-clockwise
    (Omniglot's rotated classes), with :func:`torchvision.transforms.v2.functional.rotate`.

    Arguments:
        images: uint8 ``[n, h, h]``.
        k: 1, 2 or 3 (90, 180, 270 degrees).

    Returns:
        uint8 ``[n, h, h]``, identical to ``np.rot90(images, k, axes=(1, 2))``
        (tests/test_data_imagecache.py).

    Example::

        >>> a = np.arange(4, dtype=np.uint8).reshape(1, 2, 2)
        >>> rotate(a, 1).tolist()
        [[[1, 3], [0, 2]]]
    """
    from torchvision.transforms.v2 import functional as F

    return F.rotate(torch.from_numpy(np.ascontiguousarray(images))[:, None], 90.0 * k).squeeze(1).numpy()


class ImageEpisodes:
    """N-way K-shot episodes of an image dataset (see the module docstring).

    ``batch(indices)`` -> TaskBatch with ``xs`` [T, ways*shots, C, H, W], ``ys`` [T, ways*shots]
    (``[0]*shots + [1]*shots + ...``), ``xq`` [T, ways*queries, C, H, W], ``yq`` [T, ways*queries],
    ``info["class_ids"]`` [T, ways] (indices into ``self.classes``).
    """

    kind = "classification"

    def __init__(self, dataset: str, split: str, ways: int, shots: int, queries: int, seed: int = 0,
                 root: str | Path = "data"):
        self.dataset, self.split, self.ways, self.shots, self.queries, self.seed = \
            dataset, split, int(ways), int(shots), int(queries), int(seed)
        self.store = _store(str(Path(require(dataset, root)).resolve()))
        self.classes = split_classes(dataset, split, self.store)
        missing = [c for c, _ in self.classes if c not in self.store.index]
        if missing:
            raise ValueError(f"{dataset}/{split}: {len(missing)} split classes are not in the cache, e.g. {missing[:3]}")
        self.cls_row = np.array([self.store.index[c] for c, _ in self.classes], dtype=np.int64)
        self.cls_start = self.store.offsets[self.cls_row]
        self.cls_count = self.store.count(self.cls_row)
        self.cls_rot = np.array([r // 90 for _, r in self.classes], dtype=np.int64)
        per = self.shots + self.queries
        if ways < 1 or shots < 1 or queries < 0:
            raise ValueError(f"need ways >= 1, shots >= 1, queries >= 0 (got {ways}, {shots}, {queries})")
        if ways > len(self.classes):
            raise ValueError(f"{dataset}/{split} has {len(self.classes)} classes; cannot draw {ways}-way episodes")
        usable = self.cls_count >= per
        if not usable.all():
            self.cls_row, self.cls_start, self.cls_count, self.cls_rot = (
                a[usable] for a in (self.cls_row, self.cls_start, self.cls_count, self.cls_rot))
            self.classes = [c for c, u in zip(self.classes, usable) if u]
            if ways > len(self.classes):
                raise ValueError(f"{dataset}/{split}: only {len(self.classes)} classes have >= {per} images")
        self.uniform = int(self.cls_count.min()) == int(self.cls_count.max())
        shape = self.store.images.shape[1:]
        self.color = len(shape) == 3
        self.input_shape = (3, shape[0], shape[1]) if self.color else (1, shape[0], shape[1])
        self.n_out = self.ways
        self._rotates = not self.color and bool(self.cls_rot.any())

    def __len__(self) -> int:  # number of distinct classes, for information
        return len(self.classes)

    def _rows(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = episode_rng(self.dataset, self.split, self.seed, index)
        chosen = rng.choice(len(self.classes), self.ways, replace=False)
        per = self.shots + self.queries
        if self.uniform:
            n = int(self.cls_count[0])
            picks = np.argsort(rng.random((self.ways, n)), axis=1)[:, :per]
        else:
            picks = np.stack([rng.choice(int(self.cls_count[c]), per, replace=False) for c in chosen])
        return chosen, self.cls_start[chosen][:, None] + picks  # [ways], [ways, per]

    def batch(self, indices: Sequence[int]):
        idx = as_indices(indices)
        T, W, S, Q = len(idx), self.ways, self.shots, self.queries
        chosen = np.empty((T, W), dtype=np.int64)
        rows = np.empty((T, W, S + Q), dtype=np.int64)
        for t, i in enumerate(idx):
            chosen[t], rows[t] = self._rows(i)
        # support rows of every episode, then query rows: both blocks end up contiguous (no copies)
        flat = np.concatenate([rows[:, :, :S].reshape(-1), rows[:, :, S:].reshape(-1)])
        imgs = self.store.images[flat]  # one vectorised gather from the memory map, uint8
        if self._rotates:
            rot = self.cls_rot[chosen]  # [T, W]
            rot = np.concatenate([np.repeat(rot.reshape(-1), S), np.repeat(rot.reshape(-1), Q)])
            for k in (1, 2, 3):
                m = rot == k
                if m.any():
                    imgs[m] = rotate(imgs[m], k)
        if self.color:
            imgs = imgs.transpose(0, 3, 1, 2)
        x = imgs.astype(np.float32)  # numpy: one pass, much faster than torch's uint8->float on few cores
        x *= np.float32(1.0 / 255.0)
        x = torch.from_numpy(x)
        n_s = T * W * S
        xs = x[:n_s].view(T, W * S, *self.input_shape)
        xq = x[n_s:].view(T, W * Q, *self.input_shape)
        ys = torch.arange(W).repeat_interleave(S).expand(T, -1).contiguous()
        yq = torch.arange(W).repeat_interleave(Q).expand(T, -1).contiguous()
        info = {"class_ids": torch.from_numpy(chosen), "rotation": torch.from_numpy(self.cls_rot[chosen] * 90)}
        return task_batch(xs, ys, xq, yq, info)

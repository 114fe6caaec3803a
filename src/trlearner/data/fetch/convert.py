"""The converters: verified, extracted files -> the fast cache of a dataset (run once per fetch).

:data:`CONVERTERS` is the one table from a registry entry's ``converter`` to the function
that writes its cache; :func:`convert` looks it up. The image converters write the layout of
:mod:`trlearner.data.fetch.imagecache` (read by :class:`trlearner.data.sources.images.ImageStore`);
Meta-Dataset, pQSAR and pose have readers of their raw formats of their own
(:mod:`~trlearner.data.fetch.convert_metadataset`, :mod:`~trlearner.data.fetch.convert_pqsar`,
:mod:`~trlearner.data.fetch.convert_pose`).

Omniglot strokes are stored bright on black (``255 - pixel``), as in Vinyals et al.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from trlearner.data.errors import DataFetchError
from trlearner.data.fetch import convert_metadataset
from trlearner.data.fetch.imagecache import load_image, write_image_cache
from trlearner.data.registry import DatasetSpec, split_file
from trlearner.data.safe_pickle import UnsafePickleError, load_pickle

CONVERTERS: dict[str, Callable] = {}


def converter(name):
    def deco(fn):
        CONVERTERS[name] = fn
        return fn
    return deco


def convert(spec: DatasetSpec, *, archives: Path, extracted: Path, cache: Path) -> None:
    if spec.converter not in CONVERTERS:
        raise DataFetchError(f"no converter {spec.converter!r} (known: {sorted(CONVERTERS)})", dataset=spec.name)
    CONVERTERS[spec.converter](spec, archives=archives, extracted=extracted, cache=cache, **spec.converter_args)


def _rel(p: Path, base: Path) -> PurePosixPath:
    return PurePosixPath(p.relative_to(base).as_posix())


# --------------------------------------------------------------------------- Omniglot

@converter("omniglot")
def omniglot(spec, *, archives, extracted, cache, size=28):
    """Characters from every zip, keyed ``Alphabet/characterNN``; duplicates across zips are
    dropped (Greek and Latin occur in both small zips with identical images)."""
    found: dict[str, list[Path]] = {}
    duplicates = []
    for zipdir in sorted(p for p in extracted.iterdir() if p.is_dir()):
        chars: dict[str, list[Path]] = {}
        for png in zipdir.rglob("*.png"):
            parts = _rel(png, zipdir).parts
            key = f"{parts[-3]}/{parts[-2]}"
            chars.setdefault(key, []).append(png)
        for key, pngs in chars.items():
            if key in found:
                if sorted(p.name for p in found[key]) != sorted(p.name for p in pngs):
                    raise DataFetchError(f"character {key} differs between archives", dataset=spec.name)
                duplicates.append(key)
                continue
            found[key] = sorted(pngs, key=lambda p: p.name)
    classes = [(k, found[k]) for k in sorted(found)]
    write_image_cache(cache, classes, size, "L", invert=True,
                      extra={"duplicates_dropped": sorted(set(duplicates))})


# --------------------------------------------------------------------------- miniImageNet

@converter("miniimagenet")
def miniimagenet(spec, *, archives, extracted, cache, size=84):
    ravi = split_file(spec.split["file"])
    parts = {"train": "mini-imagenet-cache-train.pkl", "val": "mini-imagenet-cache-validation.pkl",
             "test": "mini-imagenet-cache-test.pkl"}
    data = {}
    n = 0
    for split, fname in parts.items():
        try:
            d = load_pickle(archives / fname, encoding="latin1")
        except UnsafePickleError as exc:
            raise DataFetchError(f"refused: {exc}", file=fname, dataset=spec.name,
                                 todo="the file is not the learn2learn pickle (it names code to run): delete it "
                                      "and fetch from a trusted source (data/pins/ records the hash of the "
                                      "first download)") from exc
        except Exception as exc:
            raise DataFetchError(f"cannot be unpickled ({exc})", file=fname, dataset=spec.name,
                                 todo="the file is corrupt: delete data/downloads and refetch") from exc
        if not isinstance(d, dict) or not {"image_data", "class_dict"} <= set(d):
            raise DataFetchError("is not a dict with 'image_data' and 'class_dict'", file=fname, dataset=spec.name,
                                 todo="use the learn2learn pickles of Zenodo record 7978538")
        got = sorted(d["class_dict"])
        if got != sorted(ravi[split]):
            raise DataFetchError(f"classes of split {split!r} differ from the Ravi split "
                                 f"({len(got)} vs {len(ravi[split])} classes)", file=fname, dataset=spec.name,
                                 todo="use the learn2learn pickles of Zenodo record 7978538")
        data[split] = d
        n += sum(len(v) for v in d["class_dict"].values())
    images = np.lib.format.open_memmap(cache / "images.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    offsets, names, splits = [0], [], {}
    row = 0
    for split in parts:
        d = data.pop(split)
        img = d["image_data"]
        splits[split] = []
        for cls in sorted(d["class_dict"]):
            idx = np.asarray(d["class_dict"][cls], dtype=np.int64)
            block = np.asarray(img[idx], dtype=np.uint8)
            if block.shape[1:3] != (size, size):
                block = np.stack([load_image(b, size, "RGB") for b in block])
            images[row:row + len(idx)] = block
            row += len(idx)
            offsets.append(row)
            names.append(cls)
            splits[split].append(cls)
        del d, img
    images.flush()
    del images
    np.save(cache / "class_offsets.npy", np.asarray(offsets, dtype=np.int64))
    (cache / "classes.json").write_text(json.dumps({"classes": names, "image_shape": [size, size, 3],
                                                     "mode": "RGB", "splits": splits}))


# --------------------------------------------------------------------------- class-per-folder images

@converter("class_folders")
def class_folders(spec, *, archives, extracted, cache, size=84, mode="RGB", glob="*/*"):
    """Images at ``<glob>`` inside any extracted archive; the class is the parent folder's name."""
    found: dict[str, list[Path]] = {}
    for zipdir in sorted(p for p in extracted.iterdir() if p.is_dir()):
        for img in zipdir.glob(glob):
            if img.is_file():
                found.setdefault(img.parent.name, []).append(img)
    classes = [(k, sorted(found[k], key=lambda p: p.name)) for k in sorted(found)]
    write_image_cache(cache, classes, size, mode)


@converter("places")
def places(spec, *, archives, extracted, cache, size=84, per_class=200, prefix="places365_standard/train/"):
    """Read the (24 GB, uncompressed) tar in place: only the first ``per_class`` images (sorted
    file names) of every class under ``prefix`` are decoded; nothing else is extracted."""
    from trlearner.data.fetch.archives import check_member_name

    (archive,) = [archives / f.name for f in spec.files]
    members: dict[str, list[tarfile.TarInfo]] = {}
    with tarfile.open(archive) as tf:
        for m in tf:
            check_member_name(m.name, archive, spec.files[0].urls[0] if spec.files[0].urls else None)
            if not m.isfile() or not m.name.startswith(prefix):
                continue
            rel = m.name[len(prefix):]
            if "/" not in rel:
                continue
            cls, _ = rel.rsplit("/", 1)
            members.setdefault(cls, []).append(m)
        classes = []
        for cls in sorted(members):
            chosen = sorted(members[cls], key=lambda m: m.name)[:per_class]
            classes.append((cls, chosen))
        write_image_cache(cache, classes, size, "RGB",
                          loader=lambda m: load_image(tf.extractfile(m).read(), size, "RGB"),
                          extra={"per_class": per_class})


# --------------------------------------------------------------------------- pQSAR

@converter("pqsar")
def pqsar(spec, *, archives, extracted, cache, bits=1024):
    """MetaMix's processed pQSAR archive -> the cache of :class:`trlearner.data.sources.drug.PQSARSource`
    (the archive's layout: :mod:`trlearner.data.fetch.convert_pqsar`)."""
    from trlearner.data.fetch.convert_pqsar import convert_pqsar

    convert_pqsar(spec.name, extracted, cache, bits=bits)


# --------------------------------------------------------------------------- Pascal 3D pose

@converter("pose")
def pose(spec, *, archives, extracted, cache):
    """MR-MAML / MetaMix pose pickles -> the cache of :class:`trlearner.data.sources.pose.PoseSource`
    (the pickles' layout: :mod:`trlearner.data.fetch.convert_pose`)."""
    from trlearner.data.fetch.convert_pose import convert_pose

    convert_pose(spec.name, archives, cache, train=spec.split.get("train", "train_data_ins.pkl"),
                 test=spec.split.get("test", "val_data_ins.pkl"))


# --------------------------------------------------------------------------- generated regression

@converter("regression_test_sets")
def regression_test_sets(spec, *, archives, extracted, cache, shots=(5, 10), queries=100, episodes=600, seed=0):
    """The fixed test tasks (episodes 0..episodes-1 of split ``test``) for every shot setting."""
    from trlearner.data.sources.regression import RegressionSource

    for s in shots:
        b = RegressionSource(spec.name, "test", s, queries, seed).batch(range(episodes))
        np.savez(cache / f"test_{s}shot.npz", xs=b.xs.numpy(), ys=b.ys.numpy(), xq=b.xq.numpy(),
                 yq=b.yq.numpy(), **{f"info_{k}": v.numpy() for k, v in b.info.items()})


CONVERTERS.update(convert_metadataset.CONVERTERS)  # md_aircraft, md_vgg_flower, ... (Meta-Dataset sources)

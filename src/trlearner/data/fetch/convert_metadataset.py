"""Converters of the Meta-Dataset sources into the common image cache (84x84 RGB).

:data:`CONVERTERS` (registry ``converter`` name -> function) joins the one table of
:mod:`trlearner.data.fetch.convert`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trlearner.data.errors import DataFetchError
from trlearner.data.fetch.imagecache import load_image, write_image_cache
from trlearner.data.registry import split_file

CONVERTERS: dict = {}


def converter(name):
    """Register a Meta-Dataset converter under ``name`` in :data:`CONVERTERS`."""
    def deco(fn):
        CONVERTERS[name] = fn
        return fn
    return deco


def _split_classes(spec) -> list[str]:
    d = split_file(spec.split["file"])
    return sorted({c for part in d.values() for c in part})


def _one(extracted: Path, pattern: str, spec) -> Path:
    hits = sorted(extracted.rglob(pattern))
    if not hits:
        raise DataFetchError(f"{pattern} not found in the extracted archives", dataset=spec.name,
                             todo="check that the archive is the published one")
    return hits[0]


@converter("md_aircraft")
def md_aircraft(spec, *, archives, extracted, cache, size=84):
    """FGVC-Aircraft 2013b (``fgvc-aircraft-2013b/data/``): the class of an image is its variant
    (``images_variant_trainval.txt`` + ``images_variant_test.txt``, lines ``<image id> <variant>``,
    the variant may contain spaces and ``/``); every image is cropped to its box in
    ``images_box.txt`` (lines ``<image id> xmin ymin xmax ymax``), which also removes the 20-pixel
    copyright banner at the bottom (as the meta-dataset conversion does)."""
    data = _one(extracted, "images_variant_trainval.txt", spec).parent
    label = {}
    for part in ("trainval", "test"):
        p = data / f"images_variant_{part}.txt"
        if not p.exists():
            raise DataFetchError(f"{p.name} is missing from fgvc-aircraft-2013b/data/", dataset=spec.name,
                                 todo="use the published fgvc-aircraft-2013b.tar.gz")
        for line in p.read_text().splitlines():
            if line.strip():
                img, var = line.strip().split(" ", 1)
                label[img] = var
    boxes = {}
    for line in (data / "images_box.txt").read_text().splitlines():
        if line.strip():
            img, *b = line.split()
            boxes[img] = tuple(int(v) for v in b)
    by_cls: dict[str, list[str]] = {}
    for img, var in label.items():
        by_cls.setdefault(var, []).append(img)
    missing = [c for c in _split_classes(spec) if c not in by_cls]
    if missing:
        raise DataFetchError(f"{len(missing)} variants of the split file are not in images_variant_*.txt, "
                             f"e.g. {missing[:3]}", dataset=spec.name,
                             todo="use the published fgvc-aircraft-2013b.tar.gz (variant labels)")
    no_box = sorted(img for c in _split_classes(spec) for img in by_cls[c] if img not in boxes)
    if no_box:
        raise DataFetchError(f"{len(no_box)} images have no line in images_box.txt, e.g. {no_box[:3]}",
                             dataset=spec.name, todo="use the published fgvc-aircraft-2013b.tar.gz")
    classes = [(c, sorted(by_cls[c])) for c in _split_classes(spec)]
    write_image_cache(cache, classes, size, "RGB",
                      loader=lambda img: load_image(data / "images" / f"{img}.jpg", size, "RGB", box=boxes[img]))


@converter("md_vgg_flower")
def md_vgg_flower(spec, *, archives, extracted, cache, size=84):
    """102 Flowers: ``jpg/image_%05d.jpg``, labels 1..102 in imagelabels.mat; class k is the
    split file's name whose numeric prefix is k."""
    from scipy.io import loadmat

    labels = loadmat(archives / "imagelabels.mat")["labels"].reshape(-1)
    jpg = _one(extracted, "image_00001.jpg", spec).parent
    names = {int(c.split(".", 1)[0]): c for c in _split_classes(spec)}
    by = {}
    for i, lab in enumerate(labels, start=1):
        by.setdefault(int(lab), []).append(jpg / f"image_{i:05d}.jpg")
    classes = [(names[k], by.get(k, [])) for k in sorted(names)]
    write_image_cache(cache, classes, size, "RGB")


@converter("md_traffic_sign")
def md_traffic_sign(spec, *, archives, extracted, cache, size=84):
    """GTSRB: ``GTSRB/Final_Training/Images/000NN/*.ppm``; class NN is the split name ``NN.<label>``."""
    names = {int(c.split(".", 1)[0]): c for c in _split_classes(spec)}
    by = {}
    for ppm in extracted.rglob("*.ppm"):
        by.setdefault(int(ppm.parent.name), []).append(ppm)
    classes = [(names[k], sorted(by.get(k, []), key=lambda p: p.name)) for k in sorted(names)]
    write_image_cache(cache, classes, size, "RGB")


@converter("md_quickdraw")
def md_quickdraw(spec, *, archives, extracted, cache, size=84, per_class=1000):
    """QuickDraw: one ``<class>.npy`` of 28x28 bitmaps (uint8 ``[n, 784]``, 0 = background,
    255 = stroke) per class; the first ``per_class`` drawings of each class are kept (a CPU-sized
    cap; Meta-Dataset keeps all). Strokes stay bright on black, as in the meta-dataset conversion
    (which does not invert QuickDraw) and as our Omniglot."""
    classes = []
    for c in _split_classes(spec):
        arr = np.load(archives / f"{c}.npy", mmap_mode="r")
        if arr.ndim != 2 or arr.shape[1] != 28 * 28:
            raise DataFetchError(f"has shape {arr.shape}, expected [n, 784] (28x28 bitmaps)", file=f"{c}.npy",
                                 dataset=spec.name, todo="use the numpy_bitmap files of the QuickDraw dataset")
        classes.append((c, list(np.asarray(arr[:per_class]).reshape(-1, 28, 28))))
    write_image_cache(cache, classes, size, "RGB", extra={"per_class": per_class},
                      loader=lambda a: load_image(_pil(a), size, "RGB"))


def _pil(a):
    from PIL import Image
    return Image.fromarray(np.asarray(a, dtype=np.uint8))


@converter("md_fungi")
def md_fungi(spec, *, archives, extracted, cache, size=84):
    """FGVCx Fungi 2018: ``train.json``/``val.json`` (COCO-style ``images`` with ``file_name``
    ``images/<folder>/<file>``, ``annotations`` image -> category, ``categories`` id/name) from
    train_val_annotations.tgz; the images from fungi_train_val.tgz. Train and val images are pooled
    (the meta-dataset conversion ignores the original split). The split names are
    ``NNNN.<species>`` where NNNN is the category id (0..1393) and <species> its name."""
    import json

    roots = sorted(p for p in extracted.iterdir() if p.is_dir())
    cats, by_id = None, {}
    for part in ("train.json", "val.json"):
        a = json.loads(_one(extracted, part, spec).read_text())
        these = {int(c["id"]): c["name"] for c in a["categories"]}
        if cats is not None and these != cats:
            raise DataFetchError("train.json and val.json list different categories", dataset=spec.name,
                                 todo="use the published train_val_annotations.tgz")
        cats = these
        id2cat = {x["image_id"]: int(x["category_id"]) for x in a["annotations"]}
        for im in a["images"]:
            by_id.setdefault(id2cat[im["id"]], []).append(im["file_name"])
    wanted = {}
    for c in _split_classes(spec):
        k, name = c.split(".", 1)
        if cats.get(int(k)) != name:
            raise DataFetchError(f"split class {c!r}: category {int(k)} is {cats.get(int(k))!r} in train.json",
                                 dataset=spec.name, todo="use the FGVCx Fungi 2018 annotations "
                                 "(train_val_annotations.tgz) that the meta-dataset split refers to")
        wanted[c] = int(k)

    def path(fname):
        for r in roots:
            if (r / fname).is_file():
                return r / fname
        raise DataFetchError(f"image {fname} (listed in the annotations) is not in the extracted archives",
                             dataset=spec.name, todo="use the published fungi_train_val.tgz")

    classes = [(c, [path(f) for f in sorted(by_id.get(k, []))]) for c, k in wanted.items()]
    classes.sort(key=lambda x: x[0])
    write_image_cache(cache, classes, size, "RGB")


def coco_crop_box(bbox, scale, width, height):
    """The meta-dataset crop of a COCO box ``[x, y, w, h]``: enlarged ``scale`` times around its
    centre, COCO's half-integer pixel coordinates turned into PIL's corners, clipped to the image."""
    x, y, w, h = (float(v) for v in bbox)
    x, y, w, h = x - 0.5 * w * (scale - 1.0), y - 0.5 * h * (scale - 1.0), w * scale, h * scale
    return (max(int(round(x - 0.5)), 0), max(int(round(y - 0.5)), 0),
            min(int(round(x + w - 0.5)) + 1, width), min(int(round(y + h - 0.5)) + 1, height))


@converter("md_mscoco")
def md_mscoco(spec, *, archives, extracted, cache, size=84, box_scale_ratio=1.2):
    """MSCOCO 2017 train: every instance annotation of ``annotations/instances_train2017.json``
    (box ``[x, y, w, h]``) is an image of its category: the box enlarged ``box_scale_ratio`` times
    (:func:`coco_crop_box`), cut from ``train2017/<file_name>``. Class names are category names."""
    import json

    from PIL import Image

    ann = json.loads(_one(extracted, "instances_train2017.json", spec).read_text())
    cats = {c["id"]: c["name"] for c in ann["categories"]}
    missing = sorted(set(_split_classes(spec)) - set(cats.values()))
    if missing:
        raise DataFetchError(f"split classes {missing[:3]} are not categories of instances_train2017.json",
                             dataset=spec.name, todo="use the published annotations_trainval2017.zip")
    img_dirs = [p for p in extracted.glob("*/train2017") if p.is_dir()]
    if not img_dirs:
        raise DataFetchError("train2017/ not found in the extracted archives", dataset=spec.name,
                             todo="use the published train2017.zip")
    img_dir = img_dirs[0]
    files = {im["id"]: (im["file_name"], im.get("width"), im.get("height")) for im in ann["images"]}
    by: dict[str, list] = {}
    for a in ann["annotations"]:
        fname, _, _ = files[a["image_id"]]
        by.setdefault(cats[a["category_id"]], []).append((fname, a["id"], tuple(a["bbox"])))
    classes = [(c, sorted(by.get(c, []))) for c in _split_classes(spec)]

    def load(item):
        fname, _, bbox = item
        with Image.open(img_dir / fname) as im:
            img = im.convert("RGB")
        box = coco_crop_box(bbox, box_scale_ratio, img.width, img.height)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DataFetchError(f"box {bbox} of {fname} is empty after cropping", dataset=spec.name)
        return load_image(img, size, "RGB", box=box)

    write_image_cache(cache, classes, size, "RGB", loader=load, extra={"box_scale_ratio": box_scale_ratio})


@converter("md_omniglot")
def md_omniglot(spec, *, archives, extracted, cache, size=84):
    """Omniglot for Meta-Dataset: every character of images_background.zip and
    images_evaluation.zip is a class ``Alphabet/characterNN`` (alphabet names are unique across
    the two zips); strokes bright on black (inverted, as the meta-dataset conversion does)."""
    found: dict[str, list[Path]] = {}
    for zipdir in sorted(p for p in extracted.iterdir() if p.is_dir()):
        for png in zipdir.rglob("*.png"):
            key = f"{png.parent.parent.name}/{png.parent.name}"
            found.setdefault(key, []).append(png)
    classes = [(k, sorted(found[k], key=lambda p: p.name)) for k in sorted(found)]
    write_image_cache(cache, classes, size, "RGB", invert=True)


class _TarClass:
    """The images of one synset: a member ``<wnid>.tar`` of the ILSVRC train tar, decoded lazily
    (one class in memory at a time, so the 1.28M images stream into the memory-mapped cache)."""

    def __init__(self, outer, member, names, size, archive):
        self.outer, self.member, self.names, self.size, self.archive = outer, member, names, size, archive

    def __len__(self):
        return len(self.names)

    def __iter__(self):
        import tarfile

        inner = tarfile.open(fileobj=self.outer.extractfile(self.member))
        byname = {m.name: m for m in inner.getmembers()}
        for n in self.names:
            yield load_image(inner.extractfile(byname[n]).read(), self.size, "RGB")


def _duplicates(files) -> set[str]:
    """Image file names listed (``<wnid>/<file>  # ...``) in shipped duplicate lists."""
    from trlearner.data.registry import split_path

    out = set()
    for f in files:
        for line in split_path(f).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                out.add(line.rsplit("/", 1)[-1])
    return out


@converter("md_ilsvrc")
def md_ilsvrc(spec, *, archives, extracted, cache, size=84, per_class=1300, skip=()):
    """ILSVRC-2012 ``ILSVRC2012_img_train.tar``: one member ``<wnid>.tar`` per synset holding
    ``<wnid>_<n>.JPEG``; the first ``per_class`` images (sorted names) of every synset, read from
    the tar in place. Classes are the WordNet ids. Images named in the ``skip`` lists (shipped
    split files, e.g. the ILSVRC/CUB duplicates) are left out, as the meta-dataset conversion does."""
    import tarfile

    from trlearner.data.fetch.archives import check_member_name

    (archive,) = [archives / f.name for f in spec.files]
    drop = _duplicates(skip)
    skipped = []
    with tarfile.open(archive) as outer:
        classes = []
        for m in outer.getmembers():
            check_member_name(m.name, archive, None)
            if not (m.isfile() and m.name.endswith(".tar")):
                continue
            inner = tarfile.open(fileobj=outer.extractfile(m))
            names = []
            for im in inner.getmembers():
                check_member_name(im.name, archive, None)
                if im.isfile():
                    if Path(im.name).name in drop:
                        skipped.append(im.name)
                    else:
                        names.append(im.name)
            wnid = Path(m.name).name[:-4]
            classes.append((wnid, _TarClass(outer, m, sorted(names)[:per_class], size, archive)))
        if not classes:
            raise DataFetchError("no per-synset <wnid>.tar members in the archive", file=archive.name,
                                 dataset=spec.name, todo="use ILSVRC2012_img_train.tar as published by image-net.org")
        classes.sort(key=lambda c: c[0])
        write_image_cache(cache, classes, size, "RGB", loader=lambda a: a,
                          extra={"per_class": per_class, "skipped_duplicates": sorted(skipped)})

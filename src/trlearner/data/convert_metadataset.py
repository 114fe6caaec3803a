"""Converters of the Meta-Dataset sources into the common image cache (84x84 RGB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trlearner.data.convert import converter, load_image, write_image_cache
from trlearner.data.errors import DataFetchError
from trlearner.data.registry import split_file


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
    """FGVC-Aircraft: variant labels from images_variant_{train,val,test}.txt, crops from images_box.txt."""
    data = _one(extracted, "images_variant_trainval.txt", spec).parent
    label = {}
    for part in ("train", "val", "test"):
        p = data / f"images_variant_{part}.txt"
        if p.exists():
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
    classes = [(c, sorted(by_cls.get(c, []))) for c in _split_classes(spec)]
    write_image_cache(cache, classes, size, "RGB",
                      loader=lambda img: load_image(data / "images" / f"{img}.jpg", size, "RGB", box=boxes.get(img)))


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
    """QuickDraw: one ``<class>.npy`` of 28x28 bitmaps ``[n, 784]`` per class; the first
    ``per_class`` drawings of each class are kept (a CPU-sized cap; Meta-Dataset keeps all)."""
    classes = []
    for c in _split_classes(spec):
        arr = np.load(archives / f"{c}.npy", mmap_mode="r")[:per_class]
        classes.append((c, list(np.asarray(arr).reshape(-1, 28, 28))))
    write_image_cache(cache, classes, size, "RGB", extra={"per_class": per_class},
                      loader=lambda a: load_image(_pil(255 - a), size, "RGB"))


def _pil(a):
    from PIL import Image
    return Image.fromarray(np.asarray(a, dtype=np.uint8))


@converter("md_fungi")
def md_fungi(spec, *, archives, extracted, cache, size=84):
    """FGVCx Fungi: ``images/<class folder>/*.jpg``; the split names are ``NNNN.<species>``
    where NNNN indexes the sorted categories of train.json."""
    import json

    ann = json.loads(_one(extracted, "train.json", spec).read_text())
    cats = {c["id"]: c["name"] for c in ann["categories"]}
    names = {c.split(".", 1)[1]: c for c in _split_classes(spec)}
    by: dict[str, list[Path]] = {}
    for part in ("train.json", "val.json"):
        for p in extracted.rglob(part):
            a = json.loads(p.read_text())
            id2cat = {x["image_id"]: x["category_id"] for x in a["annotations"]}
            for im in a["images"]:
                cname = cats[id2cat[im["id"]]]
                if cname in names:
                    hits = list(extracted.glob(f"*/{im['file_name']}"))
                    if hits:
                        by.setdefault(names[cname], []).append(hits[0])
    classes = [(c, sorted(by.get(c, []))) for c in _split_classes(spec)]
    write_image_cache(cache, classes, size, "RGB")


@converter("md_mscoco")
def md_mscoco(spec, *, archives, extracted, cache, size=84, box_scale_ratio=1.2):
    """MSCOCO 2017 train: every instance box (enlarged by ``box_scale_ratio``) is an image of its category."""
    import json

    ann = json.loads(_one(extracted, "instances_train2017.json", spec).read_text())
    cats = {c["id"]: c["name"] for c in ann["categories"]}
    files = {im["id"]: im["file_name"] for im in ann["images"]}
    img_dir = _one(extracted, files[ann["annotations"][0]["image_id"]], spec).parent
    by: dict[str, list] = {}
    for a in ann["annotations"]:
        x, y, w, h = a["bbox"]
        if w < 1 or h < 1:
            continue
        cx, cy, s = x + w / 2, y + h / 2, box_scale_ratio
        box = (cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2)
        by.setdefault(cats[a["category_id"]], []).append((files[a["image_id"]], box))
    classes = [(c, sorted(by.get(c, []))) for c in _split_classes(spec)]

    def load(item):
        from PIL import Image
        fname, box = item
        img = Image.open(img_dir / fname).convert("RGB")
        box = (max(0, box[0]), max(0, box[1]), min(img.width, box[2]), min(img.height, box[3]))
        return load_image(img, size, "RGB", box=tuple(int(round(v)) for v in box))

    write_image_cache(cache, classes, size, "RGB", loader=load)


@converter("md_omniglot")
def md_omniglot(spec, *, archives, extracted, cache, size=84):
    """Omniglot for Meta-Dataset: classes ``background|evaluation/Alphabet/characterNN``."""
    found = {}
    for zipdir in sorted(p for p in extracted.iterdir() if p.is_dir()):
        part = "evaluation" if "evaluation" in zipdir.name else "background"
        for png in zipdir.rglob("*.png"):
            found.setdefault(f"{part}/{png.parent.parent.name}/{png.parent.name}", []).append(png)
    classes = [(k, sorted(found[k])) for k in sorted(found)]
    write_image_cache(cache, classes, size, "RGB", invert=True)


@converter("md_ilsvrc")
def md_ilsvrc(spec, *, archives, extracted, cache, size=84, per_class=1300):
    """ILSVRC-2012 train tar of per-synset tars; classes are the synsets of the manual split JSON."""
    import io
    import tarfile

    from trlearner.data.archives import _check_name

    (archive,) = [archives / f.name for f in spec.files]
    classes = []
    with tarfile.open(archive) as outer:
        for m in outer:
            _check_name(m.name, archive, None)
            if not m.name.endswith(".tar"):
                continue
            inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(m).read()))
            imgs = []
            for im in sorted(inner.getmembers(), key=lambda x: x.name)[:per_class]:
                _check_name(im.name, archive, None)
                if im.isfile():
                    imgs.append(load_image(inner.extractfile(im).read(), size, "RGB"))
            classes.append((m.name[:-4], imgs))
    classes.sort()
    write_image_cache(cache, classes, size, "RGB", loader=lambda a: a)

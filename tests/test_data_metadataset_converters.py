"""Meta-Dataset sources aircraft, cu_birds, fungi, mscoco, quickdraw, omniglot and ilsvrc_2012:
tiny fixtures in each source's real published layout (tar/zip/json/npy, real file and class
names, classes taken from the shipped split files) go through fetch (loopback HTTP server on
127.0.0.1, or the manual drop folder for ILSVRC) -> verify -> extract -> convert -> cache ->
variable-way episodes, and the episodes are checked pixel by pixel: every image of a class has
the class's own colour (or stroke position), so a wrong crop, label or inversion fails."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import zipfile
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from fixtures_data import Server, omniglot_zip, sha256, tar_of
from trlearner.data.errors import DataFetchError
from trlearner.data.fetch import fetch, is_fetched
from trlearner.data.sources.dispatch import image_source
from trlearner.data.sources.metadataset import MetaDatasetSource
from trlearner.data.registry import FileSpec, get, override, split_file

SIZE = 84


# --------------------------------------------------------------------------- helpers

def shipped(source: str) -> dict:
    return split_file(f"metadataset_{source}_splits.json")


def colours(n: int) -> list[tuple[int, int, int]]:
    """``n`` well separated RGB colours (every pair differs by >= 60 in some channel)."""
    out = []
    for r in (40, 110, 180, 250):
        for g in (40, 110, 180, 250):
            for b in (60, 200):
                out.append((r, g, b))
    rng = np.random.default_rng(0)
    return [out[i] for i in rng.permutation(len(out))[:n]]


def jpg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def solid(w: int, h: int, rgb) -> np.ndarray:
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:] = rgb
    return a


def make_spec(dataset: str, folder: Path, url: str | None, names: list[str], *, split_file_path=None,
              converter_args=None, split_extra=None):
    """The registry entry of ``dataset`` with the fixture files (checksums computed here, URLs on
    the loopback server, names URL-quoted as the registry does), the real converter kept."""
    spec = get(dataset)
    extract = {f.name: f.extract for f in spec.files}
    files = tuple(FileSpec(name=n, urls=((url + quote(n)),) if url else (), checksum=sha256(folder / n),
                           size=(folder / n).stat().st_size, extract=extract.get(n, False)) for n in names)
    split = dict(spec.split)
    if split_file_path is not None:
        split["file"] = str(split_file_path)
    split.update(split_extra or {})
    args = dict(spec.converter_args)
    args.update(converter_args or {})
    return dataclasses.replace(spec, files=files, split=split, converter_args=args)


def serve_and_fetch(dataset, folder, root, names, **kw):
    """Serve ``folder`` on 127.0.0.1 (files stored under their URL-quoted names) and fetch."""
    served = folder.parent / (folder.name + "_served")
    served.mkdir(exist_ok=True)
    for n in names:
        (served / quote(n)).write_bytes((folder / n).read_bytes())
    with Server(served) as srv:
        spec = make_spec(dataset, folder, srv.url, names, **kw)
        with override(spec):
            fetch(dataset, root, progress=False)
            assert is_fetched(dataset, root)
        assert {n for n, _ in srv.log} == {quote(n) for n in names}
    return spec


def write_split(folder: Path, name: str, d: dict) -> Path:
    p = folder / name
    p.write_text(json.dumps(d))
    return p


def check_colour_episodes(src: MetaDatasetSource, colour: dict, n_episodes=8, tol=14.0, centre=False):
    """Every image of an episode has the colour of the class its label names (in its centre
    half only with ``centre``), labels 0..N-1 name N distinct classes of the split."""
    names = src.class_names
    b = src.batch(range(n_episodes))
    for t in range(n_episodes):
        chosen = src.episode(t)[0]
        w = len(chosen)
        assert int(b.info["ways"][t]) == w and 5 <= w <= min(50, src.n_classes)
        assert len({names[c] for c in chosen}) == w
        for x, y, m in ((b.xs, b.ys, b.info["support_mask"]), (b.xq, b.yq, b.info["query_mask"])):
            ys = y[t][m[t]]
            assert sorted(set(ys.tolist())) == list(range(w))
            imgs = (x[t][m[t]].numpy() * 255.0)  # [n, 3, 84, 84]
            if centre:
                imgs = imgs[:, :, SIZE // 4:3 * SIZE // 4, SIZE // 4:3 * SIZE // 4]
            for img, j in zip(imgs, ys.tolist()):
                want = np.asarray(colour[names[chosen[j]]], dtype=np.float32)[:, None, None]
                err = np.abs(img - want).mean()
                assert err < tol, (names[chosen[j]], err)
    return b


def cache_rows(src: MetaDatasetSource, name: str) -> np.ndarray:
    st = src._img.store
    k = st.index[name]
    return np.asarray(st.images[st.offsets[k]:st.offsets[k + 1]])


# --------------------------------------------------------------------------- aircraft

def build_aircraft(folder: Path) -> dict:
    sp = shipped("aircraft")
    split = {"train": sp["train"][:5], "valid": sp["valid"][:5], "test": sp["test"][:5]}
    classes = split["train"] + split["valid"] + split["test"]
    col = dict(zip(classes, colours(len(classes))))
    entries, trainval, test, boxes = {}, [], [], []
    img_id = 1000000
    for k, c in enumerate(classes):
        for i in range(4):
            img_id += 1
            a = solid(64, 56, (15, 15, 15))  # dark background
            a[-16:] = 255  # the copyright banner at the bottom of every FGVC image
            x0, y0 = 8 * (i % 2), 8 * (k % 3)
            a[y0:y0 + 24, x0 + 8:x0 + 48] = col[c]  # the aircraft, exactly its box
            boxes.append(f"{img_id} {x0 + 8} {y0} {x0 + 48} {y0 + 24}")
            entries[f"fgvc-aircraft-2013b/data/images/{img_id}.jpg"] = jpg(a)
            (test if c in split["test"] else trainval).append(f"{img_id} {c}")
    d = "fgvc-aircraft-2013b/data/"
    half = len(trainval) // 2
    entries[d + "images_variant_trainval.txt"] = ("\n".join(trainval) + "\n").encode()
    entries[d + "images_variant_train.txt"] = ("\n".join(trainval[:half]) + "\n").encode()
    entries[d + "images_variant_val.txt"] = ("\n".join(trainval[half:]) + "\n").encode()
    entries[d + "images_variant_test.txt"] = ("\n".join(test) + "\n").encode()
    entries[d + "images_box.txt"] = ("\n".join(boxes) + "\n").encode()
    entries[d + "variants.txt"] = ("\n".join(sorted(set(classes))) + "\n").encode()
    entries["fgvc-aircraft-2013b/README.html"] = b"<html>FGVC-Aircraft</html>"
    tar_of(folder / "fgvc-aircraft-2013b.tar.gz", entries)
    return {"split": write_split(folder, "aircraft_split.json", split), "colour": col, "classes": split,
            "names": ["fgvc-aircraft-2013b.tar.gz"]}


# --------------------------------------------------------------------------- CUB

def build_cu_birds(folder: Path) -> dict:
    sp = shipped("cu_birds")
    split = {"train": sp["train"][:5], "valid": sp["valid"][:5], "test": sp["test"][:5]}
    classes = sorted(split["train"] + split["valid"] + split["test"])
    col = dict(zip(classes, colours(len(classes))))
    entries, images, labels = {}, [], []
    n = 0
    for c in classes:
        species = c.split(".", 1)[1]
        for i in range(4):
            n += 1
            name = f"{c}/{species}_{i + 1:04d}_{700000 + n}.jpg"
            entries[f"CUB_200_2011/images/{name}"] = jpg(solid(40, 32, col[c]))
            images.append(f"{n} {name}")
            labels.append(f"{n} {int(c.split('.')[0])}")
    entries["CUB_200_2011/classes.txt"] = "".join(f"{int(c.split('.')[0])} {c}\n" for c in classes).encode()
    entries["CUB_200_2011/images.txt"] = ("\n".join(images) + "\n").encode()
    entries["CUB_200_2011/image_class_labels.txt"] = ("\n".join(labels) + "\n").encode()
    entries["CUB_200_2011/README"] = b"CUB-200-2011\n"
    entries["attributes.txt"] = b"1 has_bill_shape::curved_(up_or_down)\n"
    tar_of(folder / "CUB_200_2011.tgz", entries)
    return {"split": write_split(folder, "cub_split.json", split), "colour": col, "classes": split,
            "names": ["CUB_200_2011.tgz"]}


# --------------------------------------------------------------------------- Fungi

def build_fungi(folder: Path) -> dict:
    sp = shipped("fungi")
    split = {"train": sp["train"][:5], "valid": sp["valid"][:5], "test": sp["test"][:5]}
    classes = split["train"] + split["valid"] + split["test"]
    col = dict(zip(classes, colours(len(classes))))
    cats = [{"id": int(c.split(".", 1)[0]), "name": c.split(".", 1)[1], "supercategory": "Fungi"} for c in classes]
    cats.sort(key=lambda c: c["id"])
    entries = {}
    js = {p: {"info": {"year": 2018}, "licenses": [], "images": [], "annotations": [], "categories": cats}
          for p in ("train", "val")}
    n = 0
    for c in classes:
        cid = int(c.split(".", 1)[0])
        folder_name = f"{10000 + cid}_{c.split('.', 1)[1].replace(' ', '_')}"
        for i in range(4):
            n += 1
            part = "val" if i == 3 else "train"  # the converter pools both
            fname = f"images/{folder_name}/FVL2009PIC{49049490 + n}.JPG"
            entries[fname] = jpg(solid(36, 28, col[c]))
            js[part]["images"].append({"id": n, "file_name": fname, "width": 36, "height": 28, "license": 0})
            js[part]["annotations"].append({"id": n, "image_id": n, "category_id": cid})
    tar_of(folder / "fungi_train_val.tgz", entries)
    tar_of(folder / "train_val_annotations.tgz", {f"{p}.json": json.dumps(js[p]).encode() for p in js})
    return {"split": write_split(folder, "fungi_split.json", split), "colour": col, "classes": split,
            "names": ["fungi_train_val.tgz", "train_val_annotations.tgz"]}


# --------------------------------------------------------------------------- MSCOCO

COCO_BOXES = ([8, 16, 32, 32], [56, 16, 32, 32])  # two instances per image, [x, y, w, h]
# the meta-dataset crop of these boxes enlarged 1.2x, computed by hand:
#   x = 8 - 0.5*32*0.2 = 4.8, w = 38.4: xmin = round(4.3) = 4, xmax = round(42.7) + 1 = 44
#   y = 16 - 3.2 = 12.8, h = 38.4:      ymin = round(12.3) = 12, ymax = round(50.7) + 1 = 52
#   x = 56 - 3.2 = 52.8:                xmin = round(52.3) = 52, xmax = round(90.7) + 1 = 92
COCO_CROPS = ((4, 12, 44, 52), (52, 12, 92, 52))


def build_mscoco(folder: Path) -> dict:
    sp = shipped("mscoco")
    split = {"train": [], "valid": sp["valid"][:5], "test": sp["test"][:5]}
    classes = split["valid"] + split["test"]
    col = dict(zip(classes, colours(len(classes))))
    cat_id = {c: 2 * k + 1 for k, c in enumerate(classes)}
    images, anns, jpgs = [], [], {}
    rng = np.random.default_rng(3)
    n_ann = 0
    for i in range(10):
        image_id = 9 + 7 * i
        a = solid(100, 64, (0, 0, 0))
        pair = [classes[(2 * i) % 10], classes[(2 * i + 1) % 10]]
        if i >= 5:
            pair = pair[::-1]
        for c, (x, y, w, h) in zip(pair, COCO_BOXES):
            a[y:y + h, x:x + w] = col[c]
            n_ann += 1
            anns.append({"id": 100 + n_ann, "image_id": image_id, "category_id": cat_id[c], "iscrowd": 0,
                         "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h),
                         "segmentation": [[x, y, x + w, y, x + w, y + h]]})
        a[60:, :] = rng.integers(0, 30, (4, 100, 3))  # some texture outside every crop
        fname = f"{image_id:012d}.jpg"
        jpgs[fname] = jpg(a)
        images.append({"id": image_id, "file_name": fname, "width": 100, "height": 64, "license": 1,
                       "coco_url": f"http://images.cocodataset.org/train2017/{fname}"})
    inst = {"info": {"year": 2017}, "licenses": [], "images": images, "annotations": anns,
            "categories": [{"id": cat_id[c], "name": c, "supercategory": "thing"} for c in classes]}
    with zipfile.ZipFile(folder / "train2017.zip", "w") as zf:
        zf.writestr("train2017/", b"")
        for fname, data in jpgs.items():
            zf.writestr(f"train2017/{fname}", data)
    with zipfile.ZipFile(folder / "annotations_trainval2017.zip", "w") as zf:
        zf.writestr("annotations/instances_train2017.json", json.dumps(inst))
        zf.writestr("annotations/captions_train2017.json", json.dumps({"annotations": []}))
    return {"split": write_split(folder, "coco_split.json", split), "colour": col, "classes": split,
            "names": ["train2017.zip", "annotations_trainval2017.zip"], "jpgs": jpgs, "inst": inst}


# --------------------------------------------------------------------------- QuickDraw

def build_quickdraw(folder: Path) -> dict:
    sp = shipped("quickdraw")
    split = {"train": sp["train"][:5], "valid": sp["valid"][:5], "test": sp["test"][:5]}
    assert "police car" in split["train"]  # a class name with a space: file 'police car.npy', URL %20
    classes = split["train"] + split["valid"] + split["test"]
    for k, c in enumerate(classes):
        arr = np.zeros((6, 28, 28), dtype=np.uint8)
        for i in range(6):
            arr[i, k + 1, 2:26] = 255  # the class: a stroke in row k+1
            arr[i, 18:26, 2 + 3 * i] = 255  # the drawing: a stroke in column 2+3i
        np.save(folder / f"{c}.npy", arr.reshape(6, 784))
    return {"split": write_split(folder, "qd_split.json", split), "classes": split,
            "names": [f"{c}.npy" for c in classes], "row": {c: k + 1 for k, c in enumerate(classes)}}


# --------------------------------------------------------------------------- Omniglot

OMNI_BG = {"Greek": 6, "Latin": 5, "Tagalog": 5, "Alphabet_of_the_Magi": 5}
OMNI_EVAL = {"Angelic": 5, "Gurmukhi": 7}


def build_omniglot(folder: Path) -> dict:
    omniglot_zip(folder / "images_background.zip", "images_background", OMNI_BG, drawers=4)
    omniglot_zip(folder / "images_evaluation.zip", "images_evaluation", OMNI_EVAL, drawers=4, seed=7)
    return {"names": ["images_background.zip", "images_evaluation.zip"]}


# --------------------------------------------------------------------------- ILSVRC-2012

# real synsets: 5 finches and cock, hen under bird; 3 sharks and 2 rays under elasmobranch
ILSVRC_TRAIN = {
    "n01471682": ["n01503061", "n01482071"],                       # vertebrate
    "n01503061": ["n01529672", "n01514668", "n01514859"],          # bird
    "n01529672": ["n01530575", "n01531178", "n01532829", "n01534433", "n01537544"],  # finch
    "n01482071": ["n01482330", "n01495701"],                       # elasmobranch
    "n01482330": ["n01484850", "n01491361", "n01494475"],          # shark
    "n01495701": ["n01496331", "n01498041"],                       # ray
}
ILSVRC_TEST = {"n02084071": ["n02085620", "n02085782", "n02085936", "n02086079", "n02086240"]}  # dog


def _leaves(children):
    kids = {k for v in children.values() for k in v}
    return sorted(k for k in kids if k not in children)


def build_ilsvrc(folder: Path) -> dict:
    train, test = _leaves(ILSVRC_TRAIN), _leaves(ILSVRC_TEST)
    classes = train + test
    col = dict(zip(classes, colours(len(classes))))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as outer:
        for c in classes:
            inner_buf = io.BytesIO()
            with tarfile.open(fileobj=inner_buf, mode="w") as inner:
                names = [f"{c}_{20001 + i}.JPEG" for i in range(5)]
                if c == "n01531178":  # a listed ILSVRC/CUB duplicate, sorted first: must be skipped
                    names.insert(0, "n01531178_1502.JPEG")
                for name in names:
                    # black: the duplicate, and the 5th image (sorted last) that per_class=4 drops
                    black = name.endswith("_1502.JPEG") or name.endswith("_20005.JPEG")
                    data = jpg(solid(48, 40, (0, 0, 0) if black else col[c]))
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    inner.addfile(info, io.BytesIO(data))
            data = inner_buf.getvalue()
            info = tarfile.TarInfo(f"{c}.tar")
            info.size = len(data)
            outer.addfile(info, io.BytesIO(data))
    (folder / "ILSVRC2012_img_train.tar").write_bytes(buf.getvalue())
    split = {"train": train, "valid": [], "test": test}
    # the hierarchy in the meta-dataset's own format (dataset_specs/ilsvrc_2012_dataset_spec.json)
    def nodes(children):
        out = [{"wn_id": n, "words": n, "children_ids": kids, "parents_ids": []} for n, kids in children.items()]
        return out + [{"wn_id": n, "words": n, "children_ids": [], "parents_ids": []} for n in _leaves(children)]
    spec = {"name": "ilsvrc_2012", "split_subgraphs": {"TRAIN": nodes(ILSVRC_TRAIN), "VALID": [],
                                                       "TEST": nodes(ILSVRC_TEST)}}
    return {"split": write_split(folder, "ilsvrc_split.json", split), "colour": col, "classes": split,
            "names": ["ILSVRC2012_img_train.tar"], "hierarchy": spec}


# --------------------------------------------------------------------------- fetched once per module

BUILDERS = {"aircraft": build_aircraft, "cu_birds": build_cu_birds, "fungi": build_fungi,
            "mscoco": build_mscoco, "quickdraw": build_quickdraw, "omniglot": build_omniglot}


@pytest.fixture(scope="module")
def md(tmp_path_factory):
    """source -> (data root, spec, facts): each fixture fetched over HTTP from 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("md")
    out = {}
    for source, build in BUILDERS.items():
        folder = tmp / "files" / source
        folder.mkdir(parents=True)
        facts = build(folder)
        root = tmp / "data"
        args = {"per_class": 4} if source == "quickdraw" else None
        spec = serve_and_fetch(f"metadataset_{source}", folder, root, facts["names"],
                               split_file_path=facts.get("split"), converter_args=args)
        out[source] = (root, spec, facts)
    return out


def _src(md, source, split, **kw):
    root, spec, facts = md[source]
    with override(spec):
        return MetaDatasetSource(f"metadataset_{source}", split, seed=0, root=root, **kw)


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("source", ["aircraft", "cu_birds", "fungi"])
def test_image_sources_classes_and_pixels(md, source):
    root, spec, facts = md[source]
    for split, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        src = _src(md, source, split)
        assert src.class_names == facts["classes"][key]  # the (shipped) split, in its order
        assert src.input_shape == (3, SIZE, SIZE)
        check_colour_episodes(src, facts["colour"])
        for c in src.class_names:
            rows = cache_rows(src, c)
            assert len(rows) == 4  # fungi: 3 images from train.json + 1 from val.json
            assert np.abs(rows.astype(np.float32) - np.asarray(facts["colour"][c])).max() <= 12, c


def test_aircraft_crop_removes_background_and_banner(md):
    """Without the box crop the dark background and the white banner would be in the image."""
    src = _src(md, "aircraft", "train")
    rows = np.concatenate([cache_rows(src, c) for c in src.class_names])
    assert rows.shape[1:] == (SIZE, SIZE, 3)
    assert rows.min() > 25  # the class colours are >= 40 in every channel
    dark = (rows.astype(int).sum(-1) < 3 * 25).mean()
    white = (rows.min(-1) > 245).mean()
    assert dark == 0.0 and white == 0.0


def test_mscoco_instances_are_enlarged_box_crops(md):
    root, spec, facts = md["mscoco"]
    src = _src(md, "mscoco", "val")
    assert src.class_names == facts["classes"]["valid"]
    check_colour_episodes(src, facts["colour"], centre=True)  # crops keep a 10% black margin
    by_cat = {c["id"]: c["name"] for c in facts["inst"]["categories"]}
    files = {im["id"]: im["file_name"] for im in facts["inst"]["images"]}
    n_checked = 0
    for split in ("val", "test"):
        s = _src(md, "mscoco", split)
        for c in s.class_names:
            rows = cache_rows(s, c)
            anns = sorted((files[a["image_id"]], a["id"], a["bbox"]) for a in facts["inst"]["annotations"]
                          if by_cat[a["category_id"]] == c)
            assert len(rows) == len(anns) == 2  # every instance of the category is one image
            for row, (fname, _, bbox) in zip(rows, anns):
                crop = COCO_CROPS[COCO_BOXES.index([int(v) for v in bbox])]
                img = Image.open(io.BytesIO(facts["jpgs"][fname])).convert("RGB")
                want = np.asarray(img.crop(crop).resize((SIZE, SIZE), Image.LANCZOS))
                assert np.array_equal(row, want)
                # the 1.2x box keeps a black margin (a tight crop would be colour to the corners)
                assert row[:4, :4].max() < 40 and row[-4:, -4:].max() < 40
                assert np.abs(row[42, 42].astype(int) - np.asarray(facts["colour"][c])).max() < 20
                n_checked += 1
    assert n_checked == 20


def test_coco_crop_box_clips_at_the_border():
    from trlearner.data.fetch.convert_metadataset import coco_crop_box

    # x = -1.6, w = 19.2: xmin = max(round(-2.1), 0) = 0, xmax = round(17.1) + 1 = 18
    assert coco_crop_box([0, 0, 16, 16], 1.2, 100, 64) == (0, 0, 18, 18)
    # x = 89, y = 48.6: xmin = round(88.5) = 88 (Python rounds half to even, as the meta-dataset
    # code does), ymin = round(48.1) = 48; the far corner is clipped to the 100x64 image
    assert coco_crop_box([90, 50, 10, 14], 1.2, 100, 64) == (88, 48, 100, 64)
    assert coco_crop_box([8, 16, 32, 32], 1.0, 100, 64) == (8, 16, 41, 49)


def test_quickdraw_bitmaps_classes_and_cap(md):
    root, spec, facts = md["quickdraw"]
    for split, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        src = _src(md, "quickdraw", split)
        assert src.class_names == facts["classes"][key]
        for c in src.class_names:
            rows = cache_rows(src, c)
            assert len(rows) == 4  # per_class=4 keeps the first 4 of 6 drawings
            g = rows[..., 0].astype(int)
            assert (rows[..., 0] == rows[..., 1]).all()  # grey in RGB
            assert g[:, 80:, :].max() < 40 and g[:, :, :3].max() < 40  # background stays black (not inverted)
            r = facts["row"][c]  # the class stroke: 28 -> 84 is x3
            assert g[:, 3 * r + 1, 20:60].min() > 200
            for i in range(4):  # the drawing stroke of drawing i (the first 4 kept, in order)
                col = 3 * (2 + 3 * i) + 1
                assert g[i, 60:70, col].min() > 200
        b = src.batch(range(4))
        for t in range(4):
            chosen = src.episode(t)[0]
            ys = b.ys[t][b.info["support_mask"][t]]
            xs = (b.xs[t][b.info["support_mask"][t]].numpy() * 255).round()
            for img, j in zip(xs, ys.tolist()):
                r = facts["row"][src.class_names[chosen[j]]]
                assert img[0, 3 * r + 1, 20:60].min() > 200


def test_omniglot_split_matches_the_shipped_alphabets(md):
    root, spec, facts = md["omniglot"]
    shipped_split = split_file("metadataset_omniglot_splits.json")
    assert len(shipped_split["train"]) == 25 and len(shipped_split["val"]) == 5 and len(shipped_split["test"]) == 20
    want = {"train": ["Greek", "Latin"], "val": ["Alphabet_of_the_Magi", "Tagalog"], "test": ["Angelic", "Gurmukhi"]}
    for split, alphabets in want.items():
        src = _src(md, "omniglot", split)
        assert sorted({c.split("/")[0] for c in src.class_names}) == alphabets
        assert all(a in shipped_split[split] for a in alphabets)
        n = sum({**OMNI_BG, **OMNI_EVAL}[a] for a in alphabets)
        assert src.n_classes == n and src.input_shape == (3, SIZE, SIZE)
    # pixels: the PNG inverted (strokes bright on black), in RGB, resized to 84
    src = _src(md, "omniglot", "test")
    rows = cache_rows(src, "Angelic/character03")
    with zipfile.ZipFile(root / "raw" / "metadataset_omniglot" / "archives" / "images_evaluation.zip") as zf:
        names = sorted(n for n in zf.namelist() if "/Angelic/character03/" in n)
        pngs = [Image.open(io.BytesIO(zf.read(n))).convert("RGB").resize((SIZE, SIZE), Image.LANCZOS)
                for n in names]
    assert len(rows) == len(pngs) == 4
    for row, png in zip(rows, pngs):
        assert np.array_equal(row, 255 - np.asarray(png))
    assert rows.mean() < 100  # mostly black background


def test_omniglot_episodes_draw_one_alphabet(md):
    for split in ("train", "val", "test"):
        src = _src(md, "omniglot", split)
        assert src.class_sampling == "alphabet"
        sizes = {a: len(g) for a, g in zip(src.group_names, src.groups)}
        seen = set()
        for i in range(40):
            names = [src.class_names[c] for c in src.episode(i)[0]]
            alphabets = {n.split("/")[0] for n in names}
            assert len(alphabets) == 1
            a = alphabets.pop()
            seen.add(a)
            assert 5 <= len(names) <= min(50, sizes[a]) and len(set(names)) == len(names)
        assert seen == set(sizes)  # every alphabet of the split is drawn
    # uniform fallback mixes alphabets
    src = _src(md, "omniglot", "train", class_sampling="uniform")
    mixed = [len({src.class_names[c].split("/")[0] for c in src.episode(i)[0]}) for i in range(20)]
    assert max(mixed) > 1


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ilsvrc")
    folder = tmp / "files"
    folder.mkdir()
    facts = build_ilsvrc(folder)
    root = tmp / "data"
    spec = make_spec("metadataset_ilsvrc_2012", folder, None, facts["names"], split_file_path=facts["split"],
                     converter_args={"per_class": 4}, split_extra={"hierarchy": None})
    with override(spec):
        with pytest.raises(DataFetchError) as e:  # no public URL: the manual drop folder
            fetch("metadataset_ilsvrc_2012", root, progress=False)
        assert "manual/metadataset_ilsvrc_2012" in str(e.value) and "image-net.org" in str(e.value)
        manual = root / "manual" / "metadataset_ilsvrc_2012"
        manual.mkdir(parents=True)
        (manual / "ILSVRC2012_img_train.tar").write_bytes((folder / "ILSVRC2012_img_train.tar").read_bytes())
        fetch("metadataset_ilsvrc_2012", root, progress=False)
        assert is_fetched("metadataset_ilsvrc_2012", root)
    return root, spec, facts


def test_ilsvrc_manual_tar_to_episodes(ilsvrc):
    root, spec, facts = ilsvrc
    with override(spec):
        with pytest.raises(FileNotFoundError, match="ilsvrc_2012_dataset_spec.json.*github.com/google-research"):
            MetaDatasetSource("metadataset_ilsvrc_2012", "train", root=root)
        manual = root / "manual" / "metadataset_ilsvrc_2012"
        (manual / "ilsvrc_2012_dataset_spec.json").write_text(json.dumps(facts["hierarchy"]))
        src = MetaDatasetSource("metadataset_ilsvrc_2012", "train", root=root)
        assert src.class_names == facts["classes"]["train"] and src.class_sampling == "wordnet"
        meta = json.loads((root / "raw" / "metadataset_ilsvrc_2012" / "cache" / "classes.json").read_text())
        assert meta["skipped_duplicates"] == ["n01531178_1502.JPEG"]
        for c in src.class_names:
            rows = cache_rows(src, c)
            assert len(rows) == 4  # per_class=4: the 5th (black) image is dropped
            assert np.abs(rows.astype(np.float32) - np.asarray(facts["colour"][c])).max() <= 12
        check_colour_episodes(src, facts["colour"])
        test = MetaDatasetSource("metadataset_ilsvrc_2012", "test", root=root)
        assert test.class_names == facts["classes"]["test"]
        check_colour_episodes(test, facts["colour"], n_episodes=3)


def test_ilsvrc_episodes_are_the_leaves_of_one_wordnet_node(ilsvrc):
    root, spec, facts = ilsvrc
    manual = root / "manual" / "metadataset_ilsvrc_2012"
    (manual / "ilsvrc_2012_dataset_spec.json").write_text(json.dumps(facts["hierarchy"]))
    finch = set(ILSVRC_TRAIN["n01529672"])
    bird = finch | {"n01514668", "n01514859"}
    elasmo = set(ILSVRC_TRAIN["n01482330"]) | set(ILSVRC_TRAIN["n01495701"])
    eligible = [finch, bird, elasmo, bird | elasmo]  # shark (3) and ray (2) span < 5 leaves
    with override(spec):
        src = MetaDatasetSource("metadataset_ilsvrc_2012", "train", root=root)
        assert sorted(map(frozenset, eligible), key=sorted) == sorted(
            (frozenset(src.class_names[i] for i in g) for g in src.groups), key=sorted)
        drawn = []
        for i in range(60):
            got = {src.class_names[c] for c in src.episode(i)[0]}
            assert got in eligible
            drawn.append(frozenset(got))
        assert len(set(drawn)) == 4
        again = MetaDatasetSource("metadataset_ilsvrc_2012", "train", root=root)
        for i in range(10):  # a pure function of (dataset, split, seed, index)
            a, b = src.episode(i), again.episode(i)
            assert np.array_equal(a[0], b[0]) and all(np.array_equal(x, y) for x, y in zip(a[1] + a[2], b[1] + b[2]))
        other = MetaDatasetSource("metadataset_ilsvrc_2012", "train", seed=1, root=root)
        assert any(not np.array_equal(src.episode(i)[0], other.episode(i)[0]) for i in range(10))
        uni = MetaDatasetSource("metadataset_ilsvrc_2012", "train", root=root, class_sampling="uniform")
        assert any({uni.class_names[c] for c in uni.episode(i)[0]} not in eligible for i in range(20))


def test_image_source_builds_the_hierarchical_sampler(md):
    root, spec, facts = md["omniglot"]
    with override(spec):
        src = image_source("metadataset_omniglot", "test", None, 1, None, seed=0, root=root)
    assert isinstance(src, MetaDatasetSource) and src.class_sampling == "alphabet"

"""Data-test helpers: a loopback HTTP server with fault injection, and tiny fixtures of every
dataset in its real published file format (zips, tars, pickles, text, .mat)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import pickle
import tarfile
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from trlearner.data.registry import FileSpec, get

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _real_omniglot() -> Path:
    """The folder of the real omniglot_small zips: a local folder of ``TRLEARNER_MIRROR`` that
    holds them (``<dir>/<file>`` or ``<dir>/omniglot_small/<file>``, as the fetch looks them
    up), else ``../shared/data/omniglot`` (tests that need them skip when neither has them)."""
    for entry in os.environ.get("TRLEARNER_MIRROR", "").split(","):
        entry = entry.strip()
        if not entry or "://" in entry:
            continue
        for folder in (Path(entry), Path(entry) / "omniglot_small"):
            if (folder / "images_background_small1.zip").is_file():
                return folder.resolve()
    return SHARED / "data" / "omniglot"


SHARED_OMNIGLOT = _real_omniglot()

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


# --------------------------------------------------------------------------- loopback server

class Server:
    """Serves files from a folder on 127.0.0.1 with HTTP Range support.

    ``faults[name]`` injects a fault for that file name: ``"truncate"`` (declare the full
    length, send half, close), ``"html"`` (a Google-Drive-like quota page with status 200),
    ``"404"``, or bytes to serve instead of the file (corruption). ``log`` records
    (path, range header) per request. ``hold[name]`` (a ``threading.Event``) makes the
    server answer that file only once the event is set (a fetch caught mid-download).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.faults: dict[str, object] = {}
        self.hold: dict[str, threading.Event] = {}
        self.log: list[tuple[str, str | None]] = []
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.lstrip("/").split("?")[0]
                rng = self.headers.get("Range")
                srv.log.append((name, rng))
                if name in srv.hold:
                    srv.hold[name].wait(timeout=120)
                fault = srv.faults.get(name)
                if fault == "404" or not (srv.folder / name).is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "html":
                    body = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
                            b"<body>Too many users have viewed or downloaded this file recently.</body></html>")
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = fault if isinstance(fault, bytes) else (srv.folder / name).read_bytes()
                start = 0
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        default_error = self.httpd.handle_error

        def handle_error(request, client_address):
            # a client that hangs up mid-download (a fetch under test that gave up: a full disk)
            # is the test's subject, not a server error: its report would land in the test's stderr
            if not isinstance(sys.exc_info()[1], ConnectionError):
                default_error(request, client_address)

        self.httpd.handle_error = handle_error
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- specs for fixtures

def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fixture_spec(dataset: str, folder: Path, url: str | None = None, *, split_file: Path | None = None,
                 checksums: bool = True, converter_args: dict | None = None, name: str | None = None):
    """The registry entry of ``dataset`` with its files replaced by the fixture files in
    ``folder`` (checksums computed here; URLs on the loopback server), the real converter and
    split format kept."""
    spec = get(dataset)
    files = []
    for f in spec.files:
        p = folder / f.name
        files.append(FileSpec(name=f.name, urls=((url + f.name),) if url else (),
                              checksum=sha256(p) if checksums else None, size=p.stat().st_size, extract=f.extract))
    split = dict(spec.split)
    if split_file is not None:
        split["file"] = str(split_file)
    args = dict(spec.converter_args)
    args.update(converter_args or {})
    return dataclasses.replace(spec, name=name or dataset, files=tuple(files), split=split, converter_args=args)


# --------------------------------------------------------------------------- file builders

def _png(seed: int, size=105) -> bytes:
    rng = np.random.default_rng(seed)
    arr = (rng.random((size, size)) > 0.2)
    arr[size // 4: size // 2, size // 4: 3 * size // 4] = False  # a stroke, so rotations differ
    buf = io.BytesIO()
    Image.fromarray(arr).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def _jpg(seed: int, size=(40, 32), fmt="JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def omniglot_zip(path: Path, top: str, chars: dict[str, int], drawers: int = 20, seed: int = 0):
    """``top/<Alphabet>/characterNN/<id>_<drawer>.png`` for ``chars = {alphabet: n_characters}``."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}/", b"")
        for a, n in chars.items():
            for c in range(1, n + 1):
                for d in range(1, drawers + 1):
                    zf.writestr(f"{top}/{a}/character{c:02d}/{abs(hash((a, c))) % 9000 + 1000}_{d:02d}.png",
                                _png(seed + 1000 * c + d + 7 * len(a)))


def tar_of(path: Path, entries: dict[str, bytes], mode="w:gz"):
    with tarfile.open(path, mode) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


# pQSAR: the layout of the MetaMix/ATS processed archive (huaxiuyao/ATS README "Drug"; read by
# huaxiuyao/MetaMix Drug/data.py + Drug/preprocess.py), see trlearner.data.sources.drug.
PQSAR_TRAIN, PQSAR_VAL, PQSAR_TEST = (688231, 688245, 737101, 737230, 809032, 809118), (872940,), \
    (1001287, 1002544, 1003190)


def pqsar_archive(folder: Path) -> dict:
    """``drug.zip`` = one folder ``drug/`` with ci9b00375_si_001..003.txt, compound_fp.npy
    (np.save of a dict compound -> int32[1024] of 0/1), drug_split_id_group{1,17}.pickle
    ({"train", "val", "test"} -> assay ids) and important_readme.md. si_002 lines are
    ``<compound> <assay> <pIC50> <pIC50 pred> <TRN|TST>``, interleaved across assays, with the
    PDF export's header/page lines and one measured pIC50 behind a U+2010 minus sign.

    Every test assay has >= 20 TST and >= 8 TRN measurements. Returns ``split`` (group 1,
    sorted), ``split17``, ``rows`` (assay -> [(compound, measured, predicted, flag)]),
    ``fp`` (compound -> bits), ``families`` (assay -> family), ``negative`` ((compound, assay,
    value) of the U+2010 line)."""
    rng = np.random.default_rng(1)
    comps = [f"CHEMBL{31000 + 7 * i}" for i in range(90)]
    fp = {}
    for c in comps:  # distinct fingerprints, so a test can map an input row back to its compound
        while True:
            v = (rng.random(1024) < 0.08).astype(np.int32)
            if all(not np.array_equal(v, w) for w in fp.values()):
                break
        fp[c] = v
    assays = PQSAR_TRAIN + PQSAR_VAL + PQSAR_TEST
    families = {a: ["Kinase", "GPCR", "Protease", "Ion channel"][k % 4] for k, a in enumerate(assays)}
    rows, lines = {}, []
    for k, a in enumerate(assays):
        n_trn, n_tst = 8 + k % 3, 20 + k % 4
        chosen = rng.choice(len(comps), n_trn + n_tst, replace=False)
        rows[a] = []
        for j, ci in enumerate(chosen):
            y = round(float(rng.normal(6.0, 1.2)), 2)
            pred = round(y + float(rng.uniform(1.5, 3.0)), 2)  # the pQSAR prediction: never the label
            rows[a].append((comps[ci], y, pred, "TRN" if j < n_trn else "TST"))
            lines.append(f"{comps[ci]} {a} {y:.2f} {pred:.2f} {'TRN' if j < n_trn else 'TST'}")
    order = rng.permutation(len(lines))
    lines = [lines[i] for i in order]
    # a negative measured value exported with U+2010 (MetaMix reads it as -float(field[1:]))
    c0, a0, y0, p0, f0 = rows[PQSAR_TEST[0]][0][0], PQSAR_TEST[0], -0.37, 1.91, "TRN"
    rows[a0][0] = (c0, y0, p0, f0)
    lines = [ln for ln in lines if not ln.startswith(f"{c0} {a0} ")]
    lines.insert(5, f"{c0} {a0} \u20100.37 {p0:.2f} {f0}")
    text = ["Table S2. Experimental and predicted pIC50 of the 4276 ChEMBL assays", ""] + lines[:40] + \
        ["", "Page 2", ""] + lines[40:]
    si1 = ["assay_id\tcol1\tcol2\tfamily"] + [f"{a}\tx\t{n}\t{families[a]}" for n, a in enumerate(assays)]
    si3 = ["Table S3. SMILES", "compound,SMILES"]
    for c in comps:
        si3 += [f"{c},CC(=O)N\u2010c1ccc(O)cc1", "CCN(CC)CC"]  # wrapped continuation line
    split1 = {"train": list(PQSAR_TRAIN[::-1]), "val": list(PQSAR_VAL), "test": list(PQSAR_TEST[::-1])}
    split17 = {"train": [PQSAR_TRAIN[0], PQSAR_TEST[0], PQSAR_TEST[1], PQSAR_VAL[0], PQSAR_TEST[2]],
               "val": [PQSAR_TRAIN[1]], "test": list(PQSAR_TRAIN[2:])}
    buf = io.BytesIO()
    np.save(buf, np.array(fp, dtype=object), allow_pickle=True)
    with zipfile.ZipFile(folder / "drug.zip", "w") as zf:
        zf.writestr("drug/", b"")
        zf.writestr("drug/ci9b00375_si_001.txt", "\n".join(si1) + "\n")
        zf.writestr("drug/ci9b00375_si_002.txt", "\n".join(text) + "\n")
        zf.writestr("drug/ci9b00375_si_003.txt", "\n".join(si3) + "\n")
        zf.writestr("drug/compound_fp.npy", buf.getvalue())
        zf.writestr("drug/drug_split_id_group1.pickle", pickle.dumps(split1))
        zf.writestr("drug/drug_split_id_group17.pickle", pickle.dumps(split17))
        zf.writestr("drug/important_readme.md", "processed pQSAR data\n")
    return {"split": {k: sorted(v) for k, v in split1.items()},
            "split17": {k: sorted(v) for k, v in split17.items()},
            "rows": rows, "fp": fp, "families": families, "negative": (c0, a0, y0)}


# Pascal 3D pose: the pickles of google-research meta_learning_without_memorization
# pose_data/data_gen.py (read by its pose_code/maml_vanilla.py and huaxiuyao/MetaMix Pose/main.py),
# see trlearner.data.sources.pose.
POSE_OBJECTS = {"train_data_ins.pkl": 4, "val_data_ins.pkl": 3}
POSE_VIEWS = 100  # mujoco_render.py renders 100 views per object


def _pose_render(angle: float, obj: int) -> np.ndarray:
    """A 128x128 grey 'render' of object ``obj`` turned by ``angle`` (radians)."""
    from PIL import ImageDraw

    img = Image.new("L", (128, 128), 255)
    d = ImageDraw.Draw(img)
    r = 30 + 6 * obj
    c, s = np.cos(angle), np.sin(angle)
    d.polygon([(64 + r * c, 64 + r * s), (64 - r * s / 2, 64 + r * c / 2), (64 - r * c, 64 - r * s)], fill=40 + 20 * obj)
    return np.asarray(img, dtype=np.uint8)


def pose_pickles(folder: Path) -> dict:
    """train_data_ins.pkl / val_data_ins.pkl: ``pickle.dump([all_images, all_labels])`` with
    ``all_images[o][v]`` a uint8 [128, 128] array and ``all_labels[o][v]`` the list
    ``[x, (y + 1) / 2, angle / (2 pi)]`` of mujoco_render.py's label ``[i, x=0.5, y=0, angle]``
    normalised as data_gen.py does. Returns ``angles`` (file -> radians [objects, views])."""
    rng = np.random.default_rng(2)
    angles = {}
    for fname, n_obj in POSE_OBJECTS.items():
        all_images, all_labels, ang = [], [], np.empty((n_obj, POSE_VIEWS))
        for o in range(n_obj):
            images, labels = [], []
            for v in range(POSE_VIEWS):
                a = float(rng.uniform(0, 2 * np.pi))
                ang[o, v] = a
                raw = np.array([[v, 0.5, 0.0, a]])
                normed = (raw[:, 1:] - np.array([0, -1, 0])) / np.array([1, 2, 2 * np.pi])
                labels.append(normed[0].tolist())
                images.append(_pose_render(a, o))
            all_images.append(images)
            all_labels.append(labels)
        with open(folder / fname, "wb") as fh:
            pickle.dump([all_images, all_labels], fh)
        angles[fname] = ang
    return {"angles": angles}


def fetch_fixture(dataset: str, tmp: Path) -> tuple[Path, object, dict]:
    """Build ``dataset``'s fixture files in ``tmp/served/<dataset>``, serve them on 127.0.0.1 and
    fetch them into ``tmp/data``: returns (data root, registry spec, facts of :func:`build`)."""
    from trlearner.data.fetch import fetch
    from trlearner.data.registry import override

    files = tmp / "served" / dataset
    facts = build(dataset, files)
    with Server(files) as srv:
        spec = fixture_spec(dataset, files, srv.url, split_file=facts.get("split_file"),
                            converter_args=facts.get("converter_args"))
        with override(spec):
            fetch(dataset, tmp / "data", progress=False)
    return tmp / "data", spec, facts


def build(dataset: str, folder: Path) -> dict:
    """Write the fixture files of ``dataset`` into ``folder``; returns facts for assertions
    (e.g. ``split_file`` to use, expected class counts)."""
    folder.mkdir(parents=True, exist_ok=True)
    if dataset == "omniglot":
        omniglot_zip(folder / "images_background.zip", "images_background", {"Angelic": 3, "Hebrew": 2})
        omniglot_zip(folder / "images_evaluation.zip", "images_evaluation", {"Gurmukhi": 2}, seed=5)
        lines = {"train": ["Angelic/character01", "Angelic/character02", "Angelic/character03"],
                 "val": ["Hebrew/character01", "Hebrew/character02"],
                 "test": ["Gurmukhi/character01", "Gurmukhi/character02"]}
        for split, chars in lines.items():
            (folder / f"vinyals_{split}.txt").write_text(
                "".join(f"{c}/rot{r:03d}\n" for c in chars for r in (0, 90, 180, 270)))
        return {"split_file": folder / "vinyals_{split}.txt", "classes": {"train": 12, "val": 8, "test": 8}}
    if dataset == "omniglot_small":
        omniglot_zip(folder / "images_background_small1.zip", "images_background_small1",
                     {"Balinese": 2, "Greek": 2, "Latin": 2, "Korean": 1, "Early_Aramaic": 1})
        omniglot_zip(folder / "images_background_small2.zip", "images_background_small2",
                     {"Greek": 2, "Latin": 2, "Japanese_(katakana)": 2, "Sanskrit": 2, "Tagalog": 2})
        return {"classes": {"train": 4 * 8, "val": 4 * 2, "test": 4 * 4}}
    if dataset == "miniimagenet":
        rng = np.random.default_rng(0)
        lists = {"train": ["n01000001", "n01000002", "n01000003", "n01000004", "n01000005", "n01000006"],
                 "val": ["n02000001", "n02000002", "n02000003", "n02000004", "n02000005"],
                 "test": ["n03000001", "n03000002", "n03000003", "n03000004", "n03000005"]}
        for split, fname in (("train", "train"), ("val", "validation"), ("test", "test")):
            n = 7
            imgs = rng.integers(0, 255, (n * len(lists[split]), 84, 84, 3), dtype=np.uint8)
            cd = {c: list(range(k * n, (k + 1) * n)) for k, c in enumerate(lists[split])}
            with open(folder / f"mini-imagenet-cache-{fname}.pkl", "wb") as fh:
                pickle.dump({"image_data": imgs, "class_dict": cd}, fh)
        (folder / "ravi.json").write_text(json.dumps(lists))
        return {"split_file": folder / "ravi.json", "classes": {k: len(v) for k, v in lists.items()}}
    if dataset == "cub":
        entries = {}
        for k in range(8):
            for i in range(6):
                entries[f"CUB_200_2011/images/{k + 1:03d}.Bird_{k}/Bird_{k}_{i:04d}.jpg"] = _jpg(10 * k + i)
        entries["CUB_200_2011/classes.txt"] = b"".join(f"{k + 1} {k + 1:03d}.Bird_{k}\n".encode() for k in range(8))
        tar_of(folder / "CUB_200_2011.tgz", entries)
        return {"classes": {"train": 4, "val": 2, "test": 2}}
    if dataset == "places":
        entries = {}
        for k, cls in enumerate(["airfield", "alley", "bakery-shop", "beach", "canyon", "desert-sand", "field-road",
                                 "igloo"]):
            for i in range(5):
                entries[f"places365_standard/train/{cls}/{i + 1:08d}.jpg"] = _jpg(100 + 10 * k + i)
            entries[f"places365_standard/val/{cls}/{k + 1:08d}.jpg"] = _jpg(999)
        entries["places365_standard/train.txt"] = b"listing\n"
        tar_of(folder / "places365standard_easyformat.tar", entries, mode="w")
        return {"classes": {"train": 4, "val": 2, "test": 2}, "converter_args": {"per_class": 3}}
    if dataset == "pqsar":
        return pqsar_archive(folder)
    if dataset == "pascal3d_pose":
        return pose_pickles(folder)
    if dataset == "metadataset_vgg_flower":
        from scipy.io import savemat

        names = ["001.pink primrose", "002.hard-leaved pocket orchid", "003.canterbury bells", "004.sweet pea",
                 "005.english marigold", "006.tiger lily", "007.moon orchid", "008.bird of paradise",
                 "009.monkshood", "010.globe thistle", "011.snapdragon", "012.colt's foot", "013.king protea",
                 "014.spear thistle", "015.yellow iris"]
        labels = np.repeat(np.arange(1, 16), 4)
        tar_of(folder / "102flowers.tgz", {f"jpg/image_{i:05d}.jpg": _jpg(i) for i in range(1, len(labels) + 1)})
        savemat(folder / "imagelabels.mat", {"labels": labels[None, :]})
        split = {"train": names[:5], "valid": names[5:10], "test": names[10:]}
        (folder / "vgg_split.json").write_text(json.dumps(split))
        return {"split_file": folder / "vgg_split.json", "classes": {"train": 5, "val": 5, "test": 5}}
    if dataset == "metadataset_traffic_sign":
        names = [f"{k:02d}.Sign {k}" for k in range(6)]
        with zipfile.ZipFile(folder / "GTSRB_Final_Training_Images.zip", "w") as zf:
            for k in range(6):
                zf.writestr(f"GTSRB/Final_Training/Images/{k:05d}/GT-{k:05d}.csv", "Filename;Width\n")
                for i in range(24):
                    zf.writestr(f"GTSRB/Final_Training/Images/{k:05d}/00000_{i:05d}.ppm",
                                _jpg(1000 + 30 * k + i, fmt="PPM"))
        (folder / "ts_split.json").write_text(json.dumps({"train": [], "valid": [], "test": names}))
        return {"split_file": folder / "ts_split.json", "classes": {"test": 6}}
    if dataset == "metadataset_dtd":
        names = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered"]
        entries = {f"dtd/images/{c}/{c}_{i:04d}.jpg": _jpg(50 * k + i) for k, c in enumerate(names) for i in range(6)}
        entries["dtd/labels/labels_joint_anno.txt"] = b"x\n"
        tar_of(folder / "dtd-r1.0.1.tar.gz", entries)
        (folder / "dtd_split.json").write_text(json.dumps({"train": names, "valid": [], "test": names}))
        return {"split_file": folder / "dtd_split.json", "classes": {"train": 6, "test": 6}}
    raise KeyError(dataset)


def evil_zip(path: Path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images_background_small1/Greek/character01/0394_01.png", _png(1))
        zf.writestr("../../escaped.txt", b"owned")


def evil_tar(path: Path):
    tar_of(path, {"CUB_200_2011/images/001.A/a.jpg": _jpg(1), "/tmp/absolute_escape.txt": b"owned"})


__all__ = ["Server", "build", "fixture_spec", "sha256", "evil_zip", "evil_tar", "SHARED_OMNIGLOT", "REPO"]

"""Fault injection, data and downloads (issue 14): code in a downloaded pickle, files without a
published checksum, decompression bombs, a cache modified after fetching, and two fetches of
the same dataset at once. Every probe uses the real input (a pickle whose ``__reduce__`` calls
``os.system``, a 306 KB zip of 300 MB, an 8x8 patch inverted in ``images.npy``, two processes
against the loopback server). The table of results is docs/FAULTS.md, "Data and downloads"."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import SHARED_OMNIGLOT, Server, build, fixture_spec, tar_of
from trlearner.data.fetch.archives import MAX_MEMBER_RATIO, MAX_RATIO, extract, safe_members
from trlearner.data.errors import DataFetchError
from trlearner.data.fetch import (MANIFEST, RECORDED, check_cache, fetch, forget_verified, is_fetched, manifest,
                                  pins_path, raw_dir, status, verify)
from trlearner.data.registry import override
from trlearner.data.safe_pickle import UnsafePickleError, load_npy, load_pickle

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


class RunsShell:
    """The attack: unpickling calls ``os.system(cmd)`` (``pickle`` stores ``posix.system``)."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class WritesFile:
    """The attack, second form: unpickling calls ``builtins.exec`` to write a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').write('owned')",))


def _cli(*args) -> tuple[int, str, str]:
    """``python -m trlearner.data.cli *args`` in this process (registry overrides apply)."""
    from contextlib import redirect_stderr, redirect_stdout

    from trlearner.data.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def _served(tmp_path: Path, dataset: str):
    files = tmp_path / "served"
    facts = build(dataset, files)
    return files, facts


# --------------------------------------------------------------------------- pickles run nothing

def test_restricted_unpickler_refuses_code_and_the_side_effect_never_happens(tmp_path):
    marker = tmp_path / "pwned-by-system"
    written = tmp_path / "pwned-by-exec"
    for evil in (RunsShell(f"touch {marker}"), WritesFile(written)):
        blob = pickle.dumps({"image_data": evil, "class_dict": {"n01": [0]}})
        with pytest.raises(UnsafePickleError, match="not allowed"):
            load_pickle(io.BytesIO(blob))
    assert not marker.exists() and not written.exists()
    # the same pickle through the full unpickler really runs the command (the probe is real)
    pickle.loads(pickle.dumps(RunsShell(f"touch {marker}")))
    assert marker.exists()


def test_restricted_loaders_read_the_real_formats_with_identical_values(tmp_path):
    """Every fixture pickle of tests/fixtures_data.py (miniImageNet, pose, pQSAR splits and the
    fingerprint dict), and numpy arrays under pickle protocols 2, 4 and 5, load identically."""
    mini, pose, drug = tmp_path / "mini", tmp_path / "pose", tmp_path / "drug"
    build("miniimagenet", mini)
    build("pascal3d_pose", pose)
    build("pqsar", drug)
    for p in sorted(mini.glob("*.pkl")) + sorted(pose.glob("*.pkl")):
        ref = pickle.loads(p.read_bytes())  # our own fixture: the full unpickler is the reference
        got = load_pickle(p)
        if isinstance(ref, dict):
            assert np.array_equal(got["image_data"], ref["image_data"]) and got["class_dict"] == ref["class_dict"]
        else:
            assert np.array_equal(np.asarray(got[0]), np.asarray(ref[0])) and got[1] == ref[1]
    with zipfile.ZipFile(drug / "drug.zip") as zf:
        for name in ("drug/drug_split_id_group1.pickle", "drug/drug_split_id_group17.pickle"):
            assert load_pickle(io.BytesIO(zf.read(name))) == pickle.loads(zf.read(name))
        (tmp_path / "fp.npy").write_bytes(zf.read("drug/compound_fp.npy"))
    ref = np.load(tmp_path / "fp.npy", allow_pickle=True).item()
    got = load_npy(tmp_path / "fp.npy").item()
    assert sorted(got) == sorted(ref) and all(np.array_equal(got[k], ref[k]) and got[k].dtype == ref[k].dtype
                                              for k in ref)
    arrays = {"u8": np.arange(24, dtype=np.uint8).reshape(2, 3, 4), "f32": np.linspace(0, 1, 7, dtype=np.float32),
              "scalar": np.int64(7), "ids": [np.int64(3), 4], "od": __import__("collections").OrderedDict(a=1)}
    for proto in (2, 4, 5):
        got = load_pickle(io.BytesIO(pickle.dumps(arrays, protocol=proto)))
        assert all(np.array_equal(got[k], arrays[k]) for k in ("u8", "f32")) and got["scalar"] == 7
        assert got["ids"] == [3, 4] and got["od"] == {"a": 1}
    plain = tmp_path / "plain.npy"
    np.save(plain, np.eye(3))
    assert np.array_equal(load_npy(plain), np.eye(3))


def test_crafted_miniimagenet_pickle_from_a_mirror_runs_nothing(tmp_path):
    """The probe: the mirror serves mini-imagenet-cache-train.pkl holding a __reduce__ to os.system."""
    files, facts = _served(tmp_path, "miniimagenet")
    marker = tmp_path / "pwned"
    good = pickle.loads((files / "mini-imagenet-cache-train.pkl").read_bytes())
    good["image_data"] = RunsShell(f"touch {marker}")
    (files / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps(good))
    root = tmp_path / "data"
    with Server(files) as srv, override(fixture_spec("miniimagenet", files, srv.url, checksums=False,
                                                     split_file=facts["split_file"])):
        with pytest.raises(DataFetchError) as ei:
            fetch("miniimagenet", root, progress=False)
    msg = str(ei.value)
    assert "refused" in msg and "posix.system" in msg and "mini-imagenet-cache-train.pkl" in msg
    assert not marker.exists()
    assert not is_fetched("miniimagenet", root)
    assert not pins_path("miniimagenet", root).exists()  # a refused file is never trusted on first use


@pytest.mark.parametrize("member", ["drug/compound_fp.npy", "drug/drug_split_id_group1.pickle"])
def test_crafted_pqsar_archive_runs_nothing(tmp_path, member):
    """The probe: drug.zip (no published checksum) whose fingerprint .npy or split pickle runs code."""
    files, _ = _served(tmp_path, "pqsar")
    marker = tmp_path / "pwned"
    with zipfile.ZipFile(files / "drug.zip") as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    if member.endswith(".npy"):
        buf = io.BytesIO()
        np.save(buf, np.array(RunsShell(f"touch {marker}"), dtype=object), allow_pickle=True)
        entries[member] = buf.getvalue()
    else:
        entries[member] = pickle.dumps({"train": RunsShell(f"touch {marker}"), "val": [], "test": []})
    with zipfile.ZipFile(files / "drug.zip", "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    root = tmp_path / "data"
    with Server(files) as srv, override(fixture_spec("pqsar", files, srv.url, checksums=False)):
        with pytest.raises(DataFetchError) as ei:
            fetch("pqsar", root, progress=False)
    assert "refused" in str(ei.value) and "posix.system" in str(ei.value)
    assert not marker.exists() and not is_fetched("pqsar", root)


def test_crafted_pose_pickle_runs_nothing(tmp_path):
    files, _ = _served(tmp_path, "pascal3d_pose")
    written = tmp_path / "pwned"
    (files / "val_data_ins.pkl").write_bytes(pickle.dumps([WritesFile(written), []]))
    with Server(files) as srv, override(fixture_spec("pascal3d_pose", files, srv.url, checksums=False)):
        with pytest.raises(DataFetchError, match="builtins.exec"):
            fetch("pascal3d_pose", tmp_path / "data", progress=False)
    assert not written.exists()


# --------------------------------------------------------------------------- trust on first use

def test_unpublished_checksum_is_recorded_at_first_download_and_enforced_later(tmp_path):
    """pQSAR's drug.zip has no published checksum: the first fetch pins its sha256; a teammate
    (fresh data root, the committed pin file) whose mirror serves another drug.zip is refused
    before the file is opened; `data list` and `data manifest` say how it is verified."""
    files, _ = _served(tmp_path, "pqsar")
    root = tmp_path / "data"
    with Server(files) as srv, override(fixture_spec("pqsar", files, srv.url, checksums=False)):
        fetch("pqsar", root, progress=False)
        pins = json.loads(pins_path("pqsar", root).read_text())["files"]
        assert pins == {"drug.zip": "sha256:" + __import__("hashlib").sha256(
            (files / "drug.zip").read_bytes()).hexdigest()}
        rc, out, _ = _cli("--root", str(root), "list")
        line = next(ln for ln in out.splitlines() if ln.startswith("pqsar "))
        assert rc == 0 and " fetched " in line and RECORDED in line
        assert manifest("pqsar", root)["checksums"] == {"drug.zip": RECORDED}
        assert verify("pqsar", root) == []

        mate = tmp_path / "mate"
        (mate / "pins").mkdir(parents=True)
        shutil.copy(pins_path("pqsar", root), pins_path("pqsar", mate))
        marker = tmp_path / "pwned"
        with zipfile.ZipFile(files / "drug.zip") as zf:
            entries = {i.filename: zf.read(i) for i in zf.infolist()}
        entries["drug/drug_split_id_group1.pickle"] = pickle.dumps({"train": RunsShell(f"touch {marker}")})
        tampered = io.BytesIO()
        with zipfile.ZipFile(tampered, "w") as zf:
            for name, data in entries.items():
                zf.writestr(name, data)
        srv.faults["drug.zip"] = tampered.getvalue()
        with pytest.raises(DataFetchError) as ei:
            fetch("pqsar", mate, progress=False)
    msg = str(ei.value)
    assert "checksum mismatch" in msg and "recorded at its first download" in msg and "drug.zip" in msg
    assert not marker.exists() and not is_fetched("pqsar", mate)
    assert not (mate / "downloads" / "pqsar" / "drug.zip").exists()


def test_registry_lists_no_checksum_for_exactly_the_unpublished_files():
    from trlearner.data.fetch import checksum_status

    assert checksum_status("pqsar") == RECORDED and checksum_status("miniimagenet") == RECORDED
    assert checksum_status("metadataset_fungi") == RECORDED
    assert checksum_status("omniglot_small") == "published (sha256)"


# --------------------------------------------------------------------------- decompression bombs

def _zeros_member(zf: zipfile.ZipFile, name: str, mib: int) -> None:
    """Stream ``mib`` MiB of zeros into member ``name`` (compressed as ``zf`` says)."""
    block = bytes(1 << 20)
    with zf.open(name, "w") as dst:
        for _ in range(mib):
            dst.write(block)


def test_zip_bomb_of_300_mb_is_refused_before_anything_is_written(tmp_path):
    """The probe: images_background_small1.zip replaced by a ~300 KB zip that expands to 300 MB."""
    files, _ = _served(tmp_path, "omniglot_small")
    bomb = files / "images_background_small1.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("images_background_small1/Greek/character01/0394_01.png", b"\x89PNG")
        _zeros_member(zf, "images_background_small1/zeros.bin", 300)
    assert bomb.stat().st_size < 400_000
    root = tmp_path / "data"
    with Server(files) as srv, override(fixture_spec("omniglot_small", files, srv.url)):
        with pytest.raises(DataFetchError) as ei:
            fetch("omniglot_small", root, progress=False)
    msg = str(ei.value)
    assert "decompression bomb" in msg and "images_background_small1.zip" in msg and "max_ratio" in msg
    assert not is_fetched("omniglot_small", root)
    assert not [p for p in (root / "tmp").rglob("*") if p.is_file()]  # nothing was extracted
    target = tmp_path / "direct"
    with pytest.raises(DataFetchError, match="decompression bomb"):
        extract(bomb, target)
    assert list(target.rglob("*")) == []


def test_one_bomb_member_among_normal_members_is_refused(tmp_path):
    """Total ratio below MAX_RATIO (5 MB of incompressible data + a 50 MB member of zeros), but the
    member's own ratio is ~1000: refused by MAX_MEMBER_RATIO."""
    z = tmp_path / "mixed.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("a/noise.bin", np.random.default_rng(0).bytes(5 << 20))
        _zeros_member(zf, "a/zeros.bin", 50)
    total = sum(i.file_size for i in zipfile.ZipFile(z).infolist())
    assert total < MAX_RATIO * z.stat().st_size
    with pytest.raises(DataFetchError, match="member 'a/zeros.bin'.*decompression bomb"):
        safe_members(z)
    assert MAX_MEMBER_RATIO <= 1000


def test_tar_gz_bomb_is_refused(tmp_path):
    files = tmp_path / "served"
    files.mkdir()
    t = files / "CUB_200_2011.tgz"
    with tarfile.open(t, "w:gz") as tf:
        info = tarfile.TarInfo("CUB_200_2011/images/001.A/zeros.jpg")
        info.size = 100 << 20
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    assert t.stat().st_size < 200_000
    with Server(files) as srv, override(fixture_spec("cub", files, srv.url)):
        with pytest.raises(DataFetchError, match="decompression bomb") as ei:
            fetch("cub", tmp_path / "data", progress=False)
    assert "CUB_200_2011.tgz" in str(ei.value)


def test_registry_max_ratio_lets_a_genuine_high_ratio_archive_through(tmp_path):
    z = tmp_path / "sparse.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        _zeros_member(zf, "sparse/zeros.bin", 8)
    with pytest.raises(DataFetchError, match="decompression bomb"):
        extract(z, tmp_path / "a")
    extract(z, tmp_path / "b", max_ratio=5000)
    assert (tmp_path / "b" / "sparse" / "zeros.bin").stat().st_size == 8 << 20


def test_real_and_fixture_archives_are_within_the_limits(tmp_path):
    """The real omniglot_small zips (ratio 0.50) and every fixture archive pass the checks."""
    for dataset in ("omniglot_small", "omniglot", "cub", "pqsar", "metadataset_dtd", "metadataset_traffic_sign"):
        folder = tmp_path / dataset
        build(dataset, folder)
        for a in folder.iterdir():
            if zipfile.is_zipfile(a) or (a.suffix in (".tgz", ".gz", ".tar") and tarfile.is_tarfile(a)):
                assert safe_members(a)
    if not SHARED_OMNIGLOT.is_dir():
        pytest.skip(f"real omniglot_small zips not at {SHARED_OMNIGLOT}")
    for a in sorted(SHARED_OMNIGLOT.glob("images_background_small*.zip")):
        assert len(safe_members(a)) > 1000


def test_path_traversal_and_links_are_still_refused(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ok/a.txt", b"a")
        zf.writestr("../escape.txt", b"owned")
    with pytest.raises(DataFetchError, match="outside the target"):
        extract(z, tmp_path / "x")
    t = tmp_path / "link.tar"
    with tarfile.open(t, "w") as tf:
        info = tarfile.TarInfo("a/link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataFetchError, match="is a link"):
        extract(t, tmp_path / "y")
    tar_of(tmp_path / "abs.tgz", {"/tmp/abs-escape-probe.txt": b"owned"})
    with pytest.raises(DataFetchError, match="outside the target"):
        extract(tmp_path / "abs.tgz", tmp_path / "z")
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/abs-escape-probe.txt").exists()


# --------------------------------------------------------------------------- a modified cache

@pytest.fixture
def small(tmp_path):
    """omniglot_small fixture zips served on 127.0.0.1 and fetched; yields (server, root)."""
    files, _ = _served(tmp_path, "omniglot_small")
    with Server(files) as srv, override(fixture_spec("omniglot_small", files, srv.url)):
        fetch("omniglot_small", tmp_path / "data", progress=False)
        yield srv, tmp_path / "data"


def _invert_patch(images: Path) -> None:
    """The probe: invert an 8x8 patch of image 0 in place."""
    arr = np.load(images, mmap_mode="r+")
    arr[0, :8, :8] = 255 - arr[0, :8, :8]
    arr.flush()
    del arr


def _subprocess_check(raw: Path, root: Path, full: bool = False) -> dict:
    code = ("import json, sys; from pathlib import Path; from trlearner.data.fetch import check_cache; "
            "how, problems = check_cache(Path(sys.argv[1]), root=sys.argv[2], full=sys.argv[3] == '1'); "
            "print(json.dumps({'how': how, 'problems': problems}))")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    r = subprocess.run([sys.executable, "-c", code, str(raw), str(root), "1" if full else "0"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_modified_cache_is_refused_when_a_run_opens_it(small):
    from trlearner.data.sources.dispatch import image_source

    srv, root = small
    before = image_source("omniglot_small", "test", ways=5, shots=1, queries=2, seed=0, root=root).batch(range(3))
    raw = raw_dir("omniglot_small", root)
    _invert_patch(raw / "cache" / "images.npy")
    forget_verified()  # a new run: this process has not checked the cache yet
    with pytest.raises(DataFetchError) as ei:
        image_source("omniglot_small", "train", ways=5, shots=1, queries=2, seed=0, root=root)
    msg = str(ei.value)
    assert "modified after fetching" in msg and "images.npy" in msg and "data fetch omniglot_small" in msg
    # a fresh process sees it too (the check a new training run makes)
    got = _subprocess_check(raw, root)
    assert got["how"] == "sha256" and any("images.npy" in p for p in got["problems"])

    assert status("omniglot_small", root) == "modified"
    rc, out, _ = _cli("--root", str(root), "list")
    line = next(ln for ln in out.splitlines() if ln.startswith("omniglot_small "))
    assert " modified " in line and " fetched " not in line
    rc, out, err = _cli("--root", str(root), "manifest", "omniglot_small")
    assert rc == 1 and out == "" and "modified after fetching" in err  # never the stale hash
    with pytest.raises(DataFetchError):
        manifest("omniglot_small", root)
    rc, out, _ = _cli("--root", str(root), "verify", "omniglot_small")
    assert rc == 1 and "FAILED" in out and "images.npy" in out

    n = len(srv.log)
    fetch("omniglot_small", root, progress=False)  # re-converted from the kept, verified archives
    assert len(srv.log) == n and status("omniglot_small", root) == "fetched"
    after = image_source("omniglot_small", "test", ways=5, shots=1, queries=2, seed=0, root=root).batch(range(3))
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(before[:4], after[:4]))


def test_cache_check_is_a_stat_after_the_first_full_hash_and_still_sees_a_restored_mtime(small):
    """A new process skips the hash when size, mtime, ctime and inode equal the record of the last
    full check; restoring the mtime after a write does not hide it (the ctime changed)."""
    _, root = small
    raw = raw_dir("omniglot_small", root)
    assert _subprocess_check(raw, root) == {"how": "sha256", "problems": []}
    assert _subprocess_check(raw, root) == {"how": "stat", "problems": []}
    images = raw / "cache" / "images.npy"
    st = images.stat()
    _invert_patch(images)
    os.utime(images, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert images.stat().st_size == st.st_size and images.stat().st_mtime_ns == st.st_mtime_ns
    got = _subprocess_check(raw, root)
    assert got["how"] == "sha256" and got["problems"] and "images.npy" in got["problems"][0]


def test_missing_cache_file_is_named(small):
    _, root = small
    (raw_dir("omniglot_small", root) / "cache" / "class_offsets.npy").unlink()
    forget_verified()
    assert status("omniglot_small", root) == "modified"
    assert any("class_offsets.npy is missing" in p for p in verify("omniglot_small", root))


# --------------------------------------------------------------------------- two fetches at once

_CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from fixtures_data import fixture_spec
from trlearner.data.registry import override
from trlearner.data.cli import main
files, url, root = sys.argv[1:4]
with override(fixture_spec("omniglot_small", Path(files), url)):
    sys.exit(main(["--root", root, "fetch", "omniglot_small", "--quiet"]))
"""


def _start(script: Path, files: Path, url: str, root: Path, log: Path, **env) -> subprocess.Popen:
    e = dict(os.environ, PYTHONPATH=str(SRC), **env)
    return subprocess.Popen([sys.executable, str(script), str(files), url, str(root)], env=e,
                            stdout=open(log.with_suffix(".out"), "w"), stderr=open(log.with_suffix(".err"), "w"))


def _wait_for(cond, what: str, limit: float = 120.0) -> None:
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("second_waits", [True, False], ids=["second-waits", "second-times-out"])
def test_two_concurrent_fetches_of_one_dataset(tmp_path, second_waits):
    """Process A is caught mid-download (the server holds its first file); process B starts the
    same fetch. B waits for A's lock (or, with a 1 s timeout, refuses naming A), and A's staging
    folder survives: A completes. Before the lock, B deleted A's staging folder as "stale"."""
    import threading

    files, _ = _served(tmp_path, "omniglot_small")
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(tests=str(TESTS)))
    root = tmp_path / "data"
    with Server(files) as srv, override(fixture_spec("omniglot_small", files, srv.url)):
        gate = srv.hold["images_background_small1.zip"] = threading.Event()
        a = _start(script, files, srv.url, root, tmp_path / "a")
        _wait_for(lambda: any(n == "images_background_small1.zip" for n, _ in srv.log), "A's download")
        stage = list((root / "tmp").glob("omniglot_small.*"))
        assert len(stage) == 1  # A's staging folder
        env = {} if second_waits else {"TRLEARNER_FETCH_LOCK_TIMEOUT": "1"}
        b = _start(script, files, srv.url, root, tmp_path / "b", **env)
        if second_waits:
            _wait_for(lambda: "waiting for another fetch" in (tmp_path / "b.err").read_text(), "B to wait")
        else:
            assert b.wait(timeout=120) == 1
        assert stage[0].is_dir()  # B did not delete it
        gate.set()
        assert a.wait(timeout=120) == 0, (tmp_path / "a.err").read_text()
        rc_b = b.wait(timeout=120)
        err_b = (tmp_path / "b.err").read_text()
        assert f"pid {a.pid}" in err_b
        if second_waits:
            assert rc_b == 0 and "omniglot_small: ok" in (tmp_path / "b.out").read_text(), err_b
            downloads = [n for n, _ in srv.log if n == "images_background_small1.zip"]
            assert len(downloads) == 1  # B found the dataset complete: nothing downloaded twice
        else:
            assert rc_b == 1 and "still holds" in err_b and "TRLEARNER_FETCH_LOCK_TIMEOUT" in err_b
        assert "omniglot_small: ok" in (tmp_path / "a.out").read_text()
        assert is_fetched("omniglot_small", root) and (raw_dir("omniglot_small", root) / MANIFEST).is_file()
        assert status("omniglot_small", root) == "fetched"
        assert not list((root / "tmp").glob("omniglot_small.*"))


def test_stale_staging_folder_of_a_dead_fetch_is_still_cleaned(small):
    """With the lock held by nobody, a staging folder left by a killed fetch is removed."""
    srv, root = small
    stale = root / "tmp" / "omniglot_small.4242.deadbeef"
    (stale / "cache").mkdir(parents=True)
    fetch("omniglot_small", root, progress=False, force=True)
    assert not stale.exists() and is_fetched("omniglot_small", root)


def test_train_refuses_a_modified_cache_in_one_line(small, tmp_path, capsys):
    """`trlearner train` on the probe's cache: exit 2 naming the file and the fix, no traceback,
    no run folder."""
    from trlearner.cli import main

    _, root = small
    _invert_patch(raw_dir("omniglot_small", root) / "cache" / "images.npy")
    forget_verified()
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "omniglot_small", "--algorithm", "maml", "--ways", "5", "--shots", "1",
               "--iterations", "1",
               "--data-root", str(root), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "modified after fetching" in err and "images.npy" in err and "data fetch omniglot_small" in err
    assert not out.exists()

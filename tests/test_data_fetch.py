"""Fetch behaviour: verify, resume, mirrors, drop folder, and every data fault (issue 4, issue 9.5)."""

from __future__ import annotations

import errno
import shutil
import zipfile
from pathlib import Path

import pytest

from fixtures_data import Server, build, evil_tar, evil_zip, fixture_spec
from trlearner.data.errors import DataFetchError
from trlearner.data.fetch import MANIFEST, fetch, is_fetched, looks_like_html, raw_dir
from trlearner.data.registry import override


@pytest.fixture
def small(tmp_path):
    """omniglot_small fixture zips served on 127.0.0.1; yields (server, spec, data root)."""
    files = tmp_path / "served"
    build("omniglot_small", files)
    with Server(files) as srv:
        spec = fixture_spec("omniglot_small", files, srv.url)
        with override(spec):
            yield srv, spec, tmp_path / "data"


def assert_nothing_trusted(root: Path, name="omniglot_small"):
    out = raw_dir(name, root)
    assert not (out / MANIFEST).exists()
    assert not is_fetched(name, root)
    leftovers = [p for p in (root / "tmp").glob("*")] if (root / "tmp").exists() else []
    assert leftovers == []


def _failed_fetch(srv, root, name: str, fault) -> str:
    """Inject ``fault`` for file ``name``, fetch omniglot_small, return the error message."""
    srv.faults[name] = fault
    with pytest.raises(DataFetchError) as ei:
        fetch("omniglot_small", root, progress=False)
    return str(ei.value)


def test_fetch_verifies_and_publishes_atomically(small):
    srv, spec, root = small
    out = fetch("omniglot_small", root, progress=False)
    assert (out / MANIFEST).is_file() and is_fetched("omniglot_small", root)
    assert sorted(p.name for p in (out / "archives").iterdir()) == [f.name for f in spec.files]
    assert (out / "cache" / "images.npy").is_file()
    assert not any((root / "tmp").iterdir())
    n = len(srv.log)
    assert fetch("omniglot_small", root, progress=False) == out  # complete: no second download
    assert len(srv.log) == n


def test_checksum_mismatch_names_file_url_and_action_then_retry(small):
    srv, spec, root = small
    good = (srv.folder / "images_background_small2.zip").read_bytes()
    msg = _failed_fetch(srv, root, "images_background_small2.zip", good[:-10] + b"corrupted!")
    assert "images_background_small2.zip" in msg and srv.url in msg
    assert "checksum mismatch" in msg and "What to do" in msg
    assert_nothing_trusted(root)
    srv.faults.clear()  # cause gone: a retry succeeds
    fetch("omniglot_small", root, progress=False)
    assert is_fetched("omniglot_small", root)


def test_truncated_download_is_reported_and_resumed(small):
    srv, spec, root = small
    msg = _failed_fetch(srv, root, "images_background_small1.zip", "truncate")
    assert "truncated" in msg and "images_background_small1.zip" in msg and srv.url in msg and "resume" in msg
    assert_nothing_trusted(root)
    part = root / "downloads" / "omniglot_small" / "images_background_small1.zip.part"
    assert part.is_file() and 0 < part.stat().st_size < (srv.folder / part.stem).stat().st_size
    srv.faults.clear()
    srv.log.clear()
    fetch("omniglot_small", root, progress=False)
    assert is_fetched("omniglot_small", root)
    ranges = [r for name, r in srv.log if name == "images_background_small1.zip"]
    assert ranges and ranges[0] and ranges[0].startswith("bytes=") and ranges[0] != "bytes=0-"  # resumed


def test_html_page_instead_of_archive(small):
    srv, spec, root = small
    msg = _failed_fetch(srv, root, "images_background_small1.zip", "html")
    assert "HTML" in msg and "images_background_small1.zip" in msg and srv.url in msg
    assert "data/manual" in msg and "browser" in msg
    assert_nothing_trusted(root)
    assert not (root / "downloads" / "omniglot_small" / "images_background_small1.zip.part").exists()
    srv.faults.clear()
    fetch("omniglot_small", root, progress=False)
    assert is_fetched("omniglot_small", root)


def test_html_detected_without_checksum(tmp_path):
    """Sources with no published checksum (Google Drive) still never take a quota page for data."""
    files = tmp_path / "served"
    build("pascal3d_pose", files)
    with Server(files) as srv:
        spec = fixture_spec("pascal3d_pose", files, srv.url, checksums=False)
        srv.faults["val_data_ins.pkl"] = "html"
        with override(spec), pytest.raises(DataFetchError, match="HTML page") as ei:
            fetch("pascal3d_pose", tmp_path / "data", progress=False)
        assert "val_data_ins.pkl" in str(ei.value)
        assert not is_fetched("pascal3d_pose", tmp_path / "data")


def test_archive_with_parent_entries_is_refused(tmp_path):
    files = tmp_path / "served"
    build("omniglot_small", files)
    evil_zip(files / "images_background_small1.zip")
    root = tmp_path / "deep" / "data"
    with Server(files) as srv, override(fixture_spec("omniglot_small", files, srv.url)):
        with pytest.raises(DataFetchError) as ei:
            fetch("omniglot_small", root, progress=False)
        msg = str(ei.value)
        assert "../../escaped.txt" in msg and "outside" in msg and "images_background_small1.zip" in msg
        assert srv.url in msg
        assert not list(tmp_path.rglob("escaped.txt"))
        assert_nothing_trusted(root)
        build("omniglot_small", files)  # the source is fixed (and the registry checksum with it)
        with override(fixture_spec("omniglot_small", files, srv.url)):
            fetch("omniglot_small", root, progress=False)
            assert is_fetched("omniglot_small", root)


def test_tar_with_absolute_entry_is_refused(tmp_path):
    files = tmp_path / "served"
    files.mkdir()
    evil_tar(files / "CUB_200_2011.tgz")
    with Server(files) as srv, override(fixture_spec("cub", files, srv.url)):
        with pytest.raises(DataFetchError, match="outside the target") as ei:
            fetch("cub", tmp_path / "data", progress=False)
        assert "CUB_200_2011.tgz" in str(ei.value)
    assert not Path("/tmp/absolute_escape.txt").exists()


def test_disk_full_during_extraction(small, monkeypatch):
    """ENOSPC while writing extracted files: clear error, nothing half-written, retry works."""
    srv, spec, root = small
    real_copy = shutil.copyfileobj
    calls = {"n": 0}

    def full_disk(src, dst, length=0):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src, dst, length)

    monkeypatch.setattr("trlearner.data.fetch.archives.shutil.copyfileobj", full_disk)
    with pytest.raises(DataFetchError) as ei:
        fetch("omniglot_small", root, progress=False)
    assert "disk full" in str(ei.value) and "free disk space" in str(ei.value)
    assert_nothing_trusted(root)
    monkeypatch.setattr("trlearner.data.fetch.archives.shutil.copyfileobj", real_copy)
    n = len(srv.log)
    fetch("omniglot_small", root, progress=False)
    assert is_fetched("omniglot_small", root)
    assert len(srv.log) == n  # verified files were kept: the retry downloaded nothing


def test_killed_fetch_leaves_nothing_trusted(small):
    """A stage folder left by a killed run (no MANIFEST) is never taken for the dataset."""
    srv, spec, root = small
    stale = root / "tmp" / "omniglot_small.999.deadbeef"
    (stale / "cache").mkdir(parents=True)
    (stale / "cache" / "images.npy").write_bytes(b"half")
    half = raw_dir("omniglot_small", root)
    (half / "cache").mkdir(parents=True)
    assert not is_fetched("omniglot_small", root)
    fetch("omniglot_small", root, progress=False)
    assert is_fetched("omniglot_small", root) and not stale.exists()


def test_mirror_directory_and_manual_drop_folder(tmp_path, monkeypatch):
    files = tmp_path / "mirror"
    build("omniglot_small", files)
    spec = fixture_spec("omniglot_small", files, "http://127.0.0.1:9/")  # public URL unreachable
    with override(spec):
        monkeypatch.setenv("TRLEARNER_MIRROR", f"http://127.0.0.1:9/nothing, {files}")
        fetch("omniglot_small", tmp_path / "a", progress=False)
        assert is_fetched("omniglot_small", tmp_path / "a")
        monkeypatch.delenv("TRLEARNER_MIRROR")
        manual = tmp_path / "b" / "manual" / "omniglot_small"
        manual.mkdir(parents=True)
        for f in spec.files:
            shutil.copy(files / f.name, manual / f.name)
        fetch("omniglot_small", tmp_path / "b", progress=False)
        assert is_fetched("omniglot_small", tmp_path / "b")


def test_mirror_url_is_tried_before_public_url(tmp_path, monkeypatch):
    files = tmp_path / "served"
    build("omniglot_small", files)
    with Server(files) as srv:
        spec = fixture_spec("omniglot_small", files, "http://127.0.0.1:9/")
        monkeypatch.setenv("TRLEARNER_MIRROR", srv.url)
        with override(spec):
            fetch("omniglot_small", tmp_path / "data", progress=False)
        assert {n for n, _ in srv.log} == {f.name for f in spec.files}


def test_no_source_gives_manual_instructions(tmp_path):
    files = tmp_path / "served"
    build("pascal3d_pose", files)
    spec = fixture_spec("pascal3d_pose", files, None, checksums=False)
    with override(spec), pytest.raises(DataFetchError) as ei:
        fetch("pascal3d_pose", tmp_path / "data", progress=False)
    msg = str(ei.value)
    assert "train_data_ins.pkl" in msg and "manual" in msg and "pascal3d_pose" in msg


def test_html_sniffer(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"\n  <!DOCTYPE html><html>quota</html>")
    assert looks_like_html(p)
    p.write_bytes(b"PK\x03\x04" + b"<html>" * 3)
    assert not looks_like_html(p)
    p.write_bytes(b"CHEMBL1 123 5.0 5.1 TRN\n")
    assert not looks_like_html(p)


def test_real_registry_keeps_published_checksums():
    from trlearner.data.registry import get

    small = get("omniglot_small")
    assert small.files[0].checksum == "sha256:f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4"
    assert get("omniglot").files[0].checksum == "md5:68d2efa1b9178cc56df9314c21c6e718"
    assert get("cub").files[0].checksum == "md5:97eceeb196236b17998738112f37df78"
    assert zipfile  # imported for fixtures

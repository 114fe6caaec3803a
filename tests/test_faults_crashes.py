"""Crashes and unclear errors (issue 27): a full disk, a read-only data root, broken and huge
images, hostile archive members and mirrors, a checkpoint of other shapes, a file name too long,
Ctrl-C, a bad environment variable, a corrupt DVC cache, and lines that named the wrong thing.

Every probe is the real input (a real full disk: a small tmpfs mounted for the test, skipped
when it cannot be mounted; a real symlink; the real string) through the real command, and checks
one line naming the file or option and what to do, a non-zero exit, and no partial output left
behind (docs/FAULTS.md, "Crashes and unclear errors (issue 27)").
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from conftest import REPO
from fixtures_data import Server, build, fixture_spec

TRAIN = ["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "20", "--test-tasks", "5",
         "--test-queries", "5", "--curve-steps", "1", "--threads", "1", "--no-progress"]


def _run(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """``python -m <args>`` from the checkout's sources."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=timeout)


def _one_line(err: str) -> str:
    """The one line a failure prints (no traceback); the loopback server's own report of the
    connection the client dropped (between lines of dashes, from its thread) is not ours."""
    import re

    err = re.sub(r"-{40}\nException occurred during processing of request.*?\n-{40}\n", "", err, flags=re.S)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@contextmanager
def tmpfs(where: Path, size: str, *options: str):
    """A real small file system mounted at ``where`` for the block (root only, else skip)."""
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last block."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _data_cli(*args) -> tuple[int, str, str]:
    """``python -m trlearner.data.cli *args`` in this process (registry overrides apply)."""
    from trlearner.data.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- item 1: a full disk

def test_disk_full_during_fetch_is_one_line_and_leaves_no_partial_dataset(tmp_path):
    """Was a traceback (``OSError: [Errno 28] ... -> ....zip.tmp-0a4a07d7``) from the copy."""
    from trlearner.data.registry import override

    files = tmp_path / "served"
    build("omniglot_small", files)
    with Server(files) as srv, tmpfs(tmp_path / "full", "128k") as full:
        spec = fixture_spec("omniglot_small", files, srv.url)
        with override(spec):
            rc, out, err = _data_cli("fetch", "omniglot_small", "--data-root", str(full / "data"), "-q")
        line = _one_line(err)
        assert rc == 1 and "no space left on the disk of" in line and "images_background_small" in line, line
        assert "free space there" in line and "--data-root" in line, line
        assert not (full / "data" / "raw").exists()
        assert list((full / "data" / "tmp").iterdir()) == []  # the stage was removed
        left = {p.name for p in (full / "data" / "downloads" / "omniglot_small").iterdir()}
        assert left <= {".fetch.lock", "images_background_small1.zip.part", "images_background_small2.zip.part"}, left


def test_disk_full_during_train_is_one_line_naming_the_file(tmp_path):
    """Was a traceback ending ``OSError: [Errno 28] No space left on device`` (no file named)."""
    with tmpfs(tmp_path / "full", "16k") as full:
        r = _run("trlearner", "train", "-q", *TRAIN, "--seed", "0", "--out", str(full / "run"))
        line = _one_line(r.stderr)
        assert r.returncode == 1, r.stderr
        assert line.startswith("error: no space left on the disk of") and "checkpoint.pt" in line, line
        assert "rerun the same command" in line
        assert sorted(p.name for p in (full / "run").iterdir()) == ["log.txt"]  # no temporary, no half file


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """One finished sinusoid run to report."""
    root = tmp_path_factory.mktemp("results")
    r = _run("trlearner", "train", *TRAIN, "--seed", "0", "--out", str(root / "sinusoid/5shot/maml/baseline/seed0"))
    assert r.returncode == 0, r.stderr
    return root


def test_disk_full_during_report_leaves_the_old_report_and_no_empty_table(tmp_path, results):
    """Was ``error: [Errno 28] No space left on device`` naming no file, and a 0-byte
    ``tables/regression.md`` beside the old REPORT.md."""
    with tmpfs(tmp_path / "full", "64k") as full:
        (full / "REPORT.md").write_text("# the previous report\n")
        _fill(full)
        before = _files(full)
        r = _run("trlearner", "report", "--results", str(results), "--out", str(full))
        line = _one_line(r.stderr)
        assert r.returncode == 2 and line.startswith("trlearner report: error: no space left on the disk of"), line
        assert "tables/regression.md" in line and "free space there" in line, line
        assert _files(full) == before  # nothing new, nothing emptied, no temporary file
        (full / "filler").unlink()  # room for part of it: the tables fit, the figure does not
        r = _run("trlearner", "report", "--results", str(results), "--out", str(full))
        assert r.returncode == 2 and "figures/main_results" in _one_line(r.stderr)
        assert (full / "REPORT.md").read_text() == "# the previous report\n"
        assert not [p for p in full.rglob("*") if p.is_file() and (p.stat().st_size == 0 or ".trlearner-tmp" in p.name)]

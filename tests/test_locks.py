"""trlearner.util.locks, the filelock behind the GPU claim, the fetch lock and the run lock: a
SIGKILLed holder frees it, a failed attempt leaves the holder's record readable, and a link
planted as a run folder's lock file is refused, never written through. (The three locks'
own behaviour: tests/test_workflow_e2e.py (GPU claims), tests/test_faults_data.py (concurrent
fetches), tests/test_faults_run.py (run folders).)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import Timeout

from trlearner.run import folder as runio
from trlearner.util.locks import process_lock, write_holder

SRC = Path(__file__).resolve().parents[1] / "src"
HOLDER = """
import sys, time
sys.path.insert(0, {src!r})
from trlearner.util.locks import process_lock, write_holder
lock = process_lock(sys.argv[1], lambda fd: write_holder(fd, "held by the child"))
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_holder_frees_the_lock_and_a_waiter_reads_its_record(tmp_path):
    path = tmp_path / "x.lock"
    child = subprocess.Popen([sys.executable, "-c", HOLDER.format(src=str(SRC)), str(path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        lock = process_lock(path, lambda fd: write_holder(fd, "held by the test"))
        assert lock.fallback_to_soft is False  # a soft lock's marker would outlive a SIGKILL
        with pytest.raises(Timeout):
            lock.acquire(blocking=False)
        assert path.read_text() == "held by the child"  # the failed attempt did not truncate it
        child.kill()
        child.wait()
        start = time.monotonic()
        lock.acquire(timeout=10, poll_interval=0.02)
        assert time.monotonic() - start < 10 and path.read_text() == "held by the test"
        lock.release()
    finally:
        child.kill()
        child.wait()


def test_a_run_lock_link_planted_after_the_folder_check_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "thesis.tex"
    target.write_text("my thesis\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / runio.LOCK_NAME).symlink_to(target)
    monkeypatch.setattr(runio, "check_run_folder", lambda folder: None)  # the link comes after the check
    with pytest.raises(runio.RunFolderLinkError, match=r"\.run\.lock is a symbolic link"):
        with runio.run_lock(run):
            pass
    assert target.read_text() == "my thesis\n" and (run / runio.LOCK_NAME).is_symlink()


def test_a_run_lock_names_its_holder_and_is_removed_on_release(tmp_path):
    with runio.run_lock(tmp_path / "run") as previous:
        assert previous is None
        info = runio._read_lock_file(tmp_path / "run" / runio.LOCK_NAME)
        assert info["pid"] == os.getpid() and info["command"] == sys.argv
    assert not (tmp_path / "run" / runio.LOCK_NAME).exists()

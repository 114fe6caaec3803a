"""trlearner.util.atomic, the package's one atomic write: old or new content under a failure at
any step, the data fsynced before the rename, no temporary file left behind, errors naming the
target, permissions of any new file."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from trlearner.run.folder import is_run_file, remove_temp_files
from trlearner.util import atomic
from trlearner.util.atomic import (TEMP_FILE, atomic_write_bytes, atomic_write_json, atomic_write_text, temp_path,
                                   written)


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_new_file_is_written_whole_with_the_umask_and_its_folder_created(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "sub" / "a.bin", b"\x00new")
    finally:
        os.umask(old)
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"\x00new"
    assert stat.S_IMODE((tmp_path / "sub" / "a.bin").stat().st_mode) == 0o640
    assert _names(tmp_path / "sub") == ["a.bin"]


def test_the_temporary_file_is_fsynced_before_it_is_renamed(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.fstat(fd).st_ino)), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", os.stat(a).st_ino, str(b))),
                                                     real_replace(a, b))[1])
    target = tmp_path / "m.json"
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert [e[0] for e in events] == ["fsync", "replace"]
    assert events[0][1] == events[1][1] == target.stat().st_ino  # the file fsynced is the one renamed
    assert events[1][2] == str(target)
    assert target.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'


@pytest.mark.parametrize("step", ["write", "fsync", "replace"])
def test_a_failure_at_any_step_leaves_the_old_content_no_temporary_and_names_the_file(tmp_path, monkeypatch, step):
    target = tmp_path / "state.json"
    target.write_text("old\n")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if step == "write":
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[:3])
                self.f.flush()
                disk_full()

        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    else:
        monkeypatch.setattr(os, step, disk_full)
    with pytest.raises(OSError) as info:
        atomic_write_text(target, "new content\n")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    monkeypatch.undo()
    assert target.read_text() == "old\n" and _names(tmp_path) == ["state.json"]


def test_written_removes_its_temporary_file_on_any_exception_even_an_interrupt(tmp_path):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old figure")
    for exc in (ValueError("the writer failed"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with written(target) as tmp:
                tmp.write_bytes(b"half")
                raise exc
        assert target.read_bytes() == b"old figure" and _names(tmp_path) == ["fig.png"]
    with written(target) as tmp:  # a writer that takes a file name
        tmp.write_bytes(b"new figure")
    assert target.read_bytes() == b"new figure" and _names(tmp_path) == ["fig.png"]


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not yours")
    planted = tmp_path / (atomic.TEMP_PREFIX + "a.txt.0123456789abcdef")
    planted.symlink_to(elsewhere)
    monkeypatch.setattr(atomic, "temp_path", lambda path: planted)
    with pytest.raises(FileExistsError) as info:
        atomic_write_text(tmp_path / "a.txt", "x")
    assert info.value.filename == str(tmp_path / "a.txt")
    assert elsewhere.read_text() == "not yours" and not (tmp_path / "a.txt").exists()


def test_the_temporary_names_are_those_a_run_folder_cleans_up(tmp_path):
    tmp = temp_path(tmp_path / "metrics.json")
    assert TEMP_FILE.match(tmp.name) and is_run_file(tmp.name) and tmp.parent == tmp_path
    tmp.write_bytes(b"half a file")  # what a SIGKILL between the write and the rename leaves
    (tmp_path / "notes.tmp").write_text("a user's")
    assert remove_temp_files(tmp_path) == [tmp]
    assert _names(tmp_path) == ["notes.tmp"]


def test_json_keeps_the_formats_of_its_callers(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"z": 1, "a": {"y": 2}}, indent=1)
    assert (tmp_path / "a.json").read_text() == '{\n "a": {\n  "y": 2\n },\n "z": 1\n}\n'
    atomic_write_json(tmp_path / "b.json", {"z": 1}, indent=None)
    assert json.loads((tmp_path / "b.json").read_text()) == {"z": 1}

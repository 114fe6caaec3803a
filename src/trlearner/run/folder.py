"""Run-folder integrity: atomic writes, checked checkpoints, code identity and the run lock.

- :func:`atomic_write_bytes` writes through a temporary file ``.<name>.<8 hex>.tmp`` in the
  same folder (fsync, rename). The file is created with mode 0666 minus the umask, like any
  other file of the user (``tempfile.mkstemp`` would give 0600). :func:`remove_temp_files`
  deletes the ones a killed process left behind.
- :func:`save_checked` / :func:`load_checked` store a sha256 of every tensor and value of a
  checkpoint and verify it on load, with ``torch.load(weights_only=True)``: a file holding
  anything but tensors, numbers, strings, lists and dicts is refused, and nothing in it runs.
- :func:`code_hash` is the identity of the package source (all ``.py`` files, sorted by path,
  content only), computed once per process.
- :func:`run_lock` is an exclusive lock on a run folder: an ``flock`` on ``<folder>/.run.lock``,
  which names its holder (pid, host, start time, command). The kernel drops the lock when its
  process dies, even on SIGKILL; the next run takes it over and says whose it was.

Example::

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> with run_lock(d) as previous:
    ...     save_checked(d / "ckpt.pt", {"w": torch.ones(2), "iteration": 3})
    ...     load_checked(d / "ckpt.pt")["iteration"]
    3
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import io
import json
import os
import re
import socket
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import torch

LOCK_NAME = ".run.lock"
CHECKSUM_KEY = "checksum"
# ".<name>.<8 chars>.tmp": this module's temporary files (and tempfile.mkstemp's, used before)
TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


class RunFolderError(ValueError):
    """A run folder cannot be used as asked (another run's results, a lock held by a live run)."""


class RunLockedError(RunFolderError):
    """Another live process holds the run folder's lock."""


class CheckpointError(ValueError):
    """A checkpoint that must not be resumed: not plain data, or its checksum does not match."""


# --------------------------------------------------------------------------- atomic writes

def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a
    half-written one (temporary file in the same folder, fsync, rename). The file gets the
    permissions of any new file (0666 minus the umask: 0644 under umask 022).

    Arguments:
        path: the file to write (its folder is created when missing).
        data: the whole new content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path, obj) -> None:
    """:func:`atomic_write_bytes` of ``obj`` as indented JSON with sorted keys."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(path, obj) -> None:
    """:func:`atomic_write_bytes` of ``torch.save(obj)``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def remove_temp_files(folder) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes in ``folder`` (not recursive).
    Call it only while holding the folder's :func:`run_lock`, when no write can be under way.

    Returns:
        the paths removed.
    """
    removed = []
    for p in sorted(Path(folder).iterdir()):
        if TEMP_FILE.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# --------------------------------------------------------------------------- checked checkpoints

def payload_checksum(obj) -> str:
    """sha256 (hex) of a nest of dicts, lists/tuples, tensors (dtype, shape and bytes),
    strings, numbers, booleans and None, independent of dict order.

    Raises:
        TypeError: for any other type (store plain data only: it must load with
            ``torch.load(weights_only=True)``).
    """
    h = hashlib.sha256()
    _feed(h, obj, "checkpoint")
    return h.hexdigest()


def _feed(h, x, where: str) -> None:
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(x.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(x, dict):
        h.update(f"D{len(x)}:".encode())
        for k in sorted(x, key=lambda k: (type(k).__name__, str(k))):
            _feed(h, k, where)
            _feed(h, x[k], f"{where}[{k!r}]")
    elif isinstance(x, (list, tuple)):
        h.update(f"L{len(x)}:".encode())
        for i, v in enumerate(x):
            _feed(h, v, f"{where}[{i}]")
    elif x is None or isinstance(x, bool):
        h.update(f"B{x}:".encode())
    elif isinstance(x, int):
        h.update(f"I{x}:".encode())
    elif isinstance(x, float):
        h.update(f"F{x.hex()}:".encode())
    elif isinstance(x, str):
        h.update(f"S{len(x)}:".encode() + x.encode())
    else:
        raise TypeError(f"{where} is a {type(x).__name__}; a checkpoint may hold only tensors, numbers, "
                        f"strings, None, lists and dicts (convert it first)")


def save_checked(path, obj: dict) -> None:
    """Atomically save the dict ``obj`` with ``obj["checksum"]`` = :func:`payload_checksum` of
    the rest.

    Arguments:
        path: the checkpoint file.
        obj: plain data (see :func:`payload_checksum`); must not have a ``checksum`` key.
    """
    if CHECKSUM_KEY in obj:
        raise ValueError(f"the key {CHECKSUM_KEY!r} is reserved for the checkpoint's checksum")
    atomic_torch_save(path, {**obj, CHECKSUM_KEY: payload_checksum(obj)})


def load_plain(path):
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain data only; a file
    that asks the unpickler for anything else (e.g. to call a function) raises
    :class:`CheckpointError` and nothing in it runs."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for a forbidden global; others for a truncated file
        raise CheckpointError(f"{path} is not a plain tensor file ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc


def load_checked(path) -> dict:
    """Load a checkpoint written by :func:`save_checked` and verify its checksum.

    Returns:
        the dict as saved (without the ``checksum`` key).

    Raises:
        CheckpointError: not plain data, no checksum (written before checksums existed), or a
            checksum mismatch (flipped bits, a partial overwrite).
    """
    obj = load_plain(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict")
    stored = obj.pop(CHECKSUM_KEY, None)
    if stored is None:
        raise CheckpointError(f"{path} has no checksum (written by an older version)")
    actual = payload_checksum(obj)
    if actual != stored:
        raise CheckpointError(f"{path} fails its checksum (stored {stored[:16]}, content "
                              f"{actual[:16]}): its tensors were altered after it was written")
    return obj


# --------------------------------------------------------------------------- code identity

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/trlearner


@functools.lru_cache(maxsize=None)
def code_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """Identity of the code: sha256 (first 16 hex digits) over every ``.py`` file under
    ``package_dir`` (default: this package), sorted by relative path, of the path and content
    (not the modification time). Computed once per process (about 1 ms for the package)."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(package_dir).rglob("*.py") if "__pycache__" not in p.parts)
    for p in files:
        rel = p.relative_to(package_dir).as_posix().encode()
        data = p.read_bytes()
        h.update(b"%d:%s%d:" % (len(rel), rel, len(data)))
        h.update(data)
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- run lock

_HELD: dict[str, list] = {}  # lock path -> [open file, nesting depth]: re-entrant in a process


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder_text(info: dict) -> str:
    cmd = " ".join(info.get("command") or [])
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started "
            f"{info.get('started', '?')}" + (f" ({cmd})" if cmd else ""))


def _read_info(f) -> dict:
    f.seek(0)
    text = f.read()
    try:
        info = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        info = {"raw": text[:200]}
    return info if isinstance(info, dict) else {"raw": str(info)[:200]}


@contextmanager
def run_lock(folder):
    """Hold the exclusive lock of run folder ``folder`` for the ``with`` block (re-entrant
    within one process). Yields ``None``, or a message naming the previous holder when its
    lock was taken over (a process that died without releasing it, e.g. on SIGKILL).

    Raises:
        RunLockedError: another live process holds it; the message names it (pid, host, start
            time, command).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield None
        finally:
            _HELD[key][1] -= 1
        return
    while True:
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            info = _read_info(f)
            f.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RunLockedError(
                    f"{folder} is in use by another run: {_holder_text(info)}. Wait for it to end or use "
                    f"another --out; if that process no longer exists on any machine, delete {path}") from None
            raise RunFolderError(f"cannot lock {path} ({exc}); this filesystem does not support file "
                                 f"locks: use a run folder on a local disk") from exc
        try:  # the file may have been unlinked by its releasing holder between open and flock
            same = os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    previous = _read_info(f)
    taken_over = None
    if previous:
        alive = previous.get("host") == socket.gethostname() and isinstance(previous.get("pid"), int) \
            and _pid_alive(previous["pid"])
        taken_over = (f"took over the lock of {folder} from {_holder_text(previous)}: that process "
                      + ("no longer holds it (its pid now belongs to another process)" if alive
                         else "is gone"))
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": sys.argv}) + "\n")
    f.flush()
    _HELD[key] = [f, 1]
    try:
        yield taken_over
    finally:
        del _HELD[key]
        try:
            path.unlink()  # while still locked: a waiting process re-checks the inode
        except FileNotFoundError:
            pass
        f.close()

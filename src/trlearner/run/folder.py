"""Run-folder integrity: atomic writes, checked checkpoints, code identity and the run lock.

- :func:`check_run_folder` says whether a folder may be a run folder: new, empty, or holding
  a run of its own (:func:`is_run_file`), and none of the run's files a symbolic link.
  :func:`run_lock` checks it before it writes anything; :func:`open_append` opens ``log.txt``
  (and the lock) without following a link planted after that check.
- :func:`atomic_write_bytes` (from :mod:`trlearner.util.atomic`, the package's one atomic
  write) writes through a temporary file ``.trlearner-tmp.<name>.<16 hex>`` in the same folder
  (fsync, rename), with mode 0666 minus the umask. :func:`remove_temp_files` deletes the ones a
  killed process left behind, and no other file.
- :func:`save_checked` / :func:`load_checked` store a sha256 of every tensor and value of a
  checkpoint and verify it on load, with ``torch.load(weights_only=True)``: a file holding
  anything but tensors, numbers, strings, lists and dicts is refused, and nothing in it runs.
- :func:`code_hash` is the identity of the package source (all ``.py`` files, sorted by path,
  content only), computed once per process.
- :func:`run_lock` is an exclusive lock on a run folder: a :class:`filelock.FileLock` on
  ``<folder>/.run.lock`` (:func:`trlearner.util.locks.process_lock`), which names its holder
  (pid, host, start time, command). The kernel drops the lock when its process dies, even on
  SIGKILL; the next run takes it over and says whose it was.

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
import functools
import hashlib
import io
import json
import os
import re
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from trlearner.util.atomic import (TEMP_FILE, TEMP_PREFIX, atomic_write_bytes,  # noqa: F401 (this module's API)
                                   atomic_write_json)
from trlearner.util.locks import process_lock, write_holder

LOCK_NAME = ".run.lock"
CHECKSUM_KEY = "checksum"
# the temporary files of util.atomic (TEMP_PREFIX, TEMP_FILE: ".trlearner-tmp.<name>.<16 hex>")
# the form before issue 27, ".<name>.<8 chars>.tmp" (also tempfile.mkstemp's), still removed, but
# only for the files a run writes: ".thesis.20261206.tmp" of a user is not this module's
LEGACY_TEMP_FILE = re.compile(r"^\.(metrics\.json|provenance\.json|relation\.pt|checkpoint\.pt|checkpoint\.prev\.pt)"
                              r"\.[A-Za-z0-9_]{8}\.tmp$")
# what makes a folder a run folder ("a run of its own"): the files a run writes, the lock,
# checkpoints (also checkpoint.stale.pt of the pipeline's train job) and this module's temp files
RUN_FILES = ("metrics.json", "provenance.json", "log.txt", "relation.pt", LOCK_NAME)
CHECKPOINT_FILE = re.compile(r"^checkpoint(\.[A-Za-z0-9_-]+)*\.pt$")


class RunFolderError(ValueError):
    """A run folder cannot be used as asked (another run's results, a lock held by a live run)."""


class RunLockedError(RunFolderError):
    """Another live process holds the run folder's lock."""


class RunFolderLinkError(RunFolderError):
    """A run file of the folder is a symbolic link: the run would write (or read) outside it."""


class CheckpointError(ValueError):
    """A checkpoint that must not be resumed: not plain data, or its checksum does not match."""


# --------------------------------------------------------------------------- the folder itself

def is_run_file(name: str) -> bool:
    """True for the name of a file a run writes in its folder: ``metrics.json``,
    ``provenance.json``, ``log.txt``, ``relation.pt``, ``.run.lock``, ``checkpoint*.pt`` and this
    module's temporary files (both forms, see :data:`TEMP_FILE`, :data:`LEGACY_TEMP_FILE`).

    Example:
        >>> [is_run_file(n) for n in ("checkpoint.stale.pt", "thesis.tex", ".thesis.20261206.tmp")]
        [True, False, False]
    """
    return (name in RUN_FILES or bool(CHECKPOINT_FILE.match(name)) or bool(TEMP_FILE.match(name))
            or bool(LEGACY_TEMP_FILE.match(name)))


def _link_error(path: Path) -> RunFolderLinkError:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return RunFolderLinkError(
        f"{path} is a symbolic link (to {target}); a run folder follows no link out of itself: replace it "
        f"by the file itself (or delete it), or use another --out")


def check_run_folder(folder) -> None:
    """Refuse a folder a run must not write into, before anything is written.

    A run folder is new (absent), empty, or holds a run of its own: at least one file named by
    :func:`is_run_file`. None of those files may be a symbolic link (a planted ``log.txt`` link
    would make the run append to a file elsewhere; the lock file would be truncated). The folder
    itself, and the folders above it, may be links.

    Arguments:
        folder: the run folder (``--out``).

    Raises:
        RunFolderLinkError: a run file is a symbolic link; the message names it and its target.
        RunFolderError: ``folder`` is not a folder, or holds other files and no run of its own
            (``--out ~/thesis``): the message names the folder and what to do.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); (d / "thesis.tex").write_text("x")
        1
        >>> check_run_folder(d)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trlearner.run.folder.RunFolderError: --out ... holds other files (thesis.tex) and no run of its own ...
    """
    folder = Path(folder)
    if not os.path.lexists(folder):
        return
    if not folder.is_dir():
        raise RunFolderError(f"--out {folder} is not a folder; allowed: a folder (new, or a run folder to resume)")
    names = sorted(os.listdir(folder))
    for name in names:
        if is_run_file(name) and (folder / name).is_symlink():
            raise _link_error(folder / name)
    if names and not any(is_run_file(n) for n in names):
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise RunFolderError(
            f"--out {folder} holds other files ({shown}) and no run of its own (no metrics.json, provenance.json, "
            f"log.txt, checkpoint*.pt or .run.lock); a run writes and deletes files in its folder, so give "
            f"another --out: a new folder, or a run folder to resume")


def open_append(path, encoding: str = "utf-8"):
    """Open ``path`` to append text (created with mode 0666 minus the umask), refusing a
    symbolic link (``O_NOFOLLOW``) even one planted after :func:`check_run_folder`.

    Raises:
        RunFolderLinkError: ``path`` is a symbolic link.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_error(Path(path)) from None
        raise
    return os.fdopen(fd, "a", encoding=encoding)


# --------------------------------------------------------------------------- atomic writes

def atomic_torch_save(path, obj) -> None:
    """:func:`atomic_write_bytes` of ``torch.save(obj)``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def remove_temp_files(folder) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes in ``folder`` (not recursive):
    the names :mod:`trlearner.util.atomic` gives them (:data:`TEMP_FILE`; and :data:`LEGACY_TEMP_FILE`, the
    form before, for a run's own files only), nothing else. Call it only while holding the
    folder's :func:`run_lock`, when no write can be under way.

    Returns:
        the paths removed.
    """
    removed = []
    for p in sorted(Path(folder).iterdir()):
        if (TEMP_FILE.match(p.name) or LEGACY_TEMP_FILE.match(p.name)) and (p.is_symlink() or p.is_file()):
            p.unlink(missing_ok=True)  # a link is removed itself, never followed
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

_HELD: dict[str, list] = {}  # lock path -> [held FileLock, nesting depth]: re-entrant in a process


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


def _parse_info(text: str) -> dict:
    try:
        info = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        info = {"raw": text[:200]}
    return info if isinstance(info, dict) else {"raw": str(info)[:200]}


def _read_lock_file(path: Path) -> dict | None:
    """The holder record in the lock file ``path``, or None when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_error(path) from None
        raise
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        return _parse_info(f.read())


@contextmanager
def run_lock(folder):
    """Hold the exclusive lock of run folder ``folder`` for the ``with`` block (re-entrant
    within one process). Yields ``None``, or a message naming the previous holder when its
    lock was taken over (a process that died without releasing it, e.g. on SIGKILL).
    The folder is checked first (:func:`check_run_folder`) and created when absent.

    Raises:
        RunLockedError: another live process holds it; the message names it (pid, host, start
            time, command).
        RunFolderError: the folder is no run folder (:func:`check_run_folder`); nothing written.
        RunFolderLinkError: ``.run.lock`` is a symbolic link, even one planted after the check.
    """
    from filelock import Timeout

    folder = Path(folder)
    path = folder / LOCK_NAME
    key = str(path.resolve())
    if key not in _HELD:
        check_run_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield None
        finally:
            _HELD[key][1] -= 1
        return
    found: list[dict] = []

    def take_over(fd: int) -> None:
        # filelock opens the lock file with O_NOFOLLOW; the run folder's rule (no run file may be
        # a link, see check_run_folder) is checked here too, on the locked file itself, so that
        # the holder record below is never written through a link, whatever filelock's version
        if not os.path.samestat(os.fstat(fd), os.lstat(path)):
            raise _link_error(path) if path.is_symlink() else RunFolderError(f"{path} was replaced while locking")
        size = os.fstat(fd).st_size
        found.append(_parse_info(os.pread(fd, size, 0).decode("utf-8", "replace")))
        write_holder(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": sys.argv}) + "\n")

    lock = process_lock(path, on_acquired=take_over)
    while True:
        try:
            lock.acquire(blocking=False)
            break
        except Timeout:
            info = _read_lock_file(path)
            if info is None:  # its holder released it (and removed the file) just now: try again
                continue
            raise RunLockedError(
                f"{folder} is in use by another run: {_holder_text(info)}. Wait for it to end or use "
                f"another --out; if that process no longer exists on any machine, delete {path}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _link_error(path) from None
            if exc.errno in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP):
                raise RunFolderError(f"cannot lock {path} ({exc}); this filesystem does not support file "
                                     f"locks: use a run folder on a local disk") from exc
            raise
    previous = found[-1] if found else {}
    taken_over = None
    if previous:  # a record left in the file: its holder ended without releasing (released locks are removed)
        alive = previous.get("host") == socket.gethostname() and isinstance(previous.get("pid"), int) \
            and _pid_alive(previous["pid"])
        taken_over = (f"took over the lock of {folder} from {_holder_text(previous)}: that process "
                      + ("no longer holds it (its pid now belongs to another process)" if alive
                         else "is gone"))
    _HELD[key] = [lock, 1]
    try:
        yield taken_over
    finally:
        del _HELD[key]
        try:
            path.unlink()  # while still locked: a process waiting on this inode sees it unlinked and retries
        except FileNotFoundError:
            pass
        lock.release()

"""Every file the package writes whole is written atomically: readers see the old file or the
new one, never a half-written one, and a crash or a full disk leaves the old file as it was.

- :func:`written` yields a temporary path beside the target, ``.trlearner-tmp.<name>.<16 hex>``
  (:data:`TEMP_PREFIX`, :data:`TEMP_FILE`), for writers that take a file name
  (``fig.savefig(tmp)``); when the block ends it fsyncs the temporary file and renames it onto
  the target. On any error it deletes the temporary file and re-raises; an ``OSError`` names
  the target, not the temporary name (a full disk names the file the user asked for).
- :func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_write_json` write given
  content through :func:`written`. The temporary file is created with ``O_EXCL | O_NOFOLLOW``
  (a new file, never a link planted in its place) and mode 0666 minus the umask, like any
  other file of the user (``tempfile.mkstemp`` would give 0600).

The data reach the disk before the rename (fsync of the file), so after a power loss the target
holds the old content or the new, never an empty file. The folder itself is not fsynced: the
rename may then be lost, which leaves the old content.

The temporary names are the marker :func:`trlearner.run.folder.remove_temp_files` looks for:
no user file has them.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_text(d / "a.md", "new\\n")
    >>> (d / "a.md").read_text(), sorted(p.name for p in d.iterdir())
    ('new\\n', ['a.md'])
"""

from __future__ import annotations

import json
import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path

# the temporary files of this module: ".trlearner-tmp.<name>.<16 hex>", a marker no user file has
TEMP_PREFIX = ".trlearner-tmp."
TEMP_FILE = re.compile(r"^\.trlearner-tmp\..+\.[0-9a-f]{16}$")


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path``: ``.trlearner-tmp.<name>.<16 hex>``."""
    path = Path(path)
    return path.with_name(f"{TEMP_PREFIX}{path.name}.{uuid.uuid4().hex[:16]}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def written(path: str | os.PathLike):
    """Yield a temporary path beside ``path`` (see the module); when the block ends without
    error, fsync it and rename it onto ``path``; otherwise delete it (``path`` untouched) and
    re-raise, an ``OSError`` naming ``path``. The folder of ``path`` must exist.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with written(d / "b.txt") as tmp:
        ...     _ = tmp.write_text("whole")
        >>> (d / "b.txt").read_text()
        'whole'
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)):
            exc.filename = str(path)  # name the file being written, not our temporary name
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module); the folder is created when missing.
    The file gets the permissions of any new file (0666 minus the umask: 0644 under umask 022).

    Arguments:
        path: the file to write.
        data: the whole new content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written(path) as tmp:
        # O_EXCL: a new file, never a link planted in its place; the umask applies
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded (UTF-8 unless told)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """:func:`atomic_write_bytes` of ``obj`` as JSON with sorted keys (indented by ``indent``)
    and a final newline."""
    atomic_write_bytes(path, (json.dumps(obj, indent=indent, sort_keys=True) + "\n").encode())

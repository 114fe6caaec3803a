"""Every file the report writes is written whole or not at all.

:func:`write_text` and :func:`written` write to a temporary file beside the target (a name
starting ``.trlearner-tmp.``) and rename it into place; on any error (a full disk, a read-only
folder) the temporary file is removed and the old file, if any, is left as it was. So a report
that stops half-way never leaves an empty or truncated ``tables/<family>.md`` beside the
previous ``REPORT.md``.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_text(d / "a.md", "new\\n")
    >>> (d / "a.md").read_text(), sorted(p.name for p in d.iterdir())
    ('new\\n', ['a.md'])
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

TEMP_PREFIX = ".trlearner-tmp."


@contextmanager
def written(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; when the block ends without error, rename it to
    ``path``; otherwise delete it (``path`` untouched) and re-raise, an ``OSError`` naming
    ``path`` (not the temporary name). For writers that take a file name (``fig.savefig(tmp, format=...)``)."""
    path = Path(path)
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}.{uuid.uuid4().hex[:16]}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)):
            exc.filename = str(path)  # name the file the user asked for, not our temporary name
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see the module)."""
    with written(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

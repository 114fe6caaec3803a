"""Every file the report writes is written whole or not at all.

:func:`write_text` and :func:`written` are :mod:`trlearner.util.atomic`'s (the package's one
atomic write): a temporary file beside the target (a name starting ``.trlearner-tmp.``),
fsynced and renamed into place; on any error (a full disk, a read-only folder) the temporary
file is removed and the old file, if any, is left as it was. So a report that stops half-way
never leaves an empty or truncated ``tables/<family>.md`` beside the previous ``REPORT.md``.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_text(d / "a.md", "new\\n")
    >>> (d / "a.md").read_text(), sorted(p.name for p in d.iterdir())
    ('new\\n', ['a.md'])
"""

from __future__ import annotations

from trlearner.util.atomic import TEMP_PREFIX, written  # noqa: F401 (this module's API: figures use written)
from trlearner.util.atomic import atomic_write_text as write_text  # noqa: F401

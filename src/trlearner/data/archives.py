"""Safe extraction of zip and tar archives: no entry may land outside the target folder."""

from __future__ import annotations

import errno
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from trlearner.data.errors import DataFetchError


def _check_name(name: str, archive: Path, url: str | None) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in p.parts:
        raise DataFetchError(
            f"archive entry {name!r} would be written outside the target folder (path traversal)",
            file=archive.name, url=url,
            todo="the archive is corrupt or malicious: it was NOT extracted. Delete it, check the "
                 "source (TRLEARNER_MIRROR / data/manual/) and fetch again from a trusted URL.")
    return p


def safe_members(archive: Path, url: str | None = None) -> list[str]:
    """Names of the regular-file entries of ``archive``; raises on any unsafe entry."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            out = []
            for info in zf.infolist():
                _check_name(info.filename, archive, url)
                if not info.is_dir():
                    out.append(info.filename)
            return out
    with tarfile.open(archive) as tf:
        out = []
        for m in tf:
            _check_name(m.name, archive, url)
            if m.issym() or m.islnk():
                raise DataFetchError(f"archive entry {m.name!r} is a link (to {m.linkname!r}); links are refused",
                                     file=archive.name, url=url,
                                     todo="use an archive without links, or unpack it by hand into data/manual/.")
            if m.isfile():
                out.append(m.name)
        return out


def extract(archive: Path, target: Path, url: str | None = None) -> None:
    """Extract ``archive`` (zip or tar, any compression) into ``target`` safely.

    Every entry is checked before anything is written; links and device files are refused.
    A full disk is reported as such. ``target`` is the caller's staging folder: on error the
    caller deletes it, so nothing half-extracted survives.
    """
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    _check_name(info.filename, archive, url)
                for info in infos:
                    dest = target.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
                    if info.is_dir():
                        dest.mkdir(parents=True, exist_ok=True)
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            return
        if not tarfile.is_tarfile(archive):
            raise DataFetchError("is neither a zip nor a tar archive (truncated or wrong file?)", file=archive.name,
                                 url=url, todo="delete it and fetch again; if it persists the source serves a "
                                               "different file than the registry describes.")
        safe_members(archive, url)  # full check first: nothing is written when any entry is unsafe
        with tarfile.open(archive) as tf:
            for m in tf:
                if not (m.isfile() or m.isdir()):
                    continue
                dest = target.joinpath(*PurePosixPath(m.name).parts)
                if m.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                with src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except DataFetchError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(target).free
            raise DataFetchError(f"disk full while extracting into {target} ({free} bytes free)", file=archive.name,
                                 url=url, todo="free disk space (or point --root at a bigger disk) and rerun the "
                                               "fetch; the partial extraction was removed.") from exc
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DataFetchError(f"cannot be read as an archive: {exc}", file=archive.name, url=url,
                             todo="the file is truncated or corrupt: delete it and fetch again.") from exc


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


"""Safe extraction of zip and tar archives: no entry may land outside the target folder, and
no archive may expand to an absurd size (a decompression bomb).

Limits, checked on the archive's own listing before anything is written:

- ``MAX_RATIO``: the members' total uncompressed size over the archive's size on disk. The
  real archives are far below it (the omniglot_small zips: 0.50, their largest member 1.07;
  archives of JPEG/PNG images stay near 1, text and sparse arrays at tens); a zip bomb of
  zeros reaches ~1000 (deflate's limit), e.g. 306 KB -> 300 MB. A registry file may raise it
  (``max_ratio``) when a genuine archive needs more.
- ``MAX_MEMBER_RATIO``: the same per zip member of at least ``RATIO_MIN_MEMBER`` bytes (small
  text members compress well and harmlessly), so one bomb member hidden among many normal
  ones is refused too (tar.gz has one compressed stream: only the total applies).
- the total must fit in the free space of the target's disk.
"""

from __future__ import annotations

import errno
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from trlearner.data.errors import DataFetchError

MAX_RATIO = 200.0
MAX_MEMBER_RATIO = 200.0
RATIO_MIN_MEMBER = 1 << 20

_BOMB_TODO = ("nothing was extracted. The file is corrupt or malicious (a decompression bomb): delete it "
              "and fetch from a trusted source. If it really is the published archive, set max_ratio for "
              "this file in src/trlearner/data/registry.yaml (default {limit:g}).")


def check_member_name(name: str, archive: Path, url: str | None) -> PurePosixPath:
    """The archive member ``name`` as a relative path, or :class:`DataFetchError` when it would
    be written outside the target folder (absolute, a drive letter, or ``..``): every extractor
    and converter checks each member with it before writing anything."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in p.parts:
        raise DataFetchError(
            f"archive entry {name!r} would be written outside the target folder (path traversal)",
            file=archive.name, url=url,
            todo="the archive is corrupt or malicious: it was NOT extracted. Delete it, check the "
                 "source (TRLEARNER_MIRROR / data/manual/) and fetch again from a trusted URL.")
    return p


def _check_tree(files: list[str], archive: Path, url: str | None) -> None:
    """Refuse an archive where one name is both a file and a folder (members ``a`` and ``a/b``):
    one of them could not be written (extraction stopped with ``FileExistsError``)."""
    norm = {str(PurePosixPath(n.replace("\\", "/"))): n for n in files}
    folders = {str(parent) for n in norm for parent in PurePosixPath(n).parents}
    clash = sorted(set(norm) & folders)
    if clash:
        inside = next(n for n in sorted(norm) if n.startswith(clash[0] + "/"))
        raise DataFetchError(f"archive members {norm[clash[0]]!r} (a file) and {norm[inside]!r} (inside a folder of "
                             f"the same name) cannot both be extracted: the archive is corrupt or not the published "
                             f"one; nothing was extracted: delete it and fetch it from a trusted source",
                             file=archive.name, url=url)


def _bomb(archive: Path, url: str | None, what: str, limit: float) -> DataFetchError:
    return DataFetchError(what, file=archive.name, url=url, todo=_BOMB_TODO.format(limit=limit))


def _check_total(archive: Path, url: str | None, total: int, max_ratio: float) -> None:
    size = max(archive.stat().st_size, 1)
    if total > max_ratio * size:
        raise _bomb(archive, url, f"expands to {total} bytes from {size} (ratio {total / size:.0f}, more than the "
                                  f"limit {max_ratio:g}): refused as a decompression bomb", max_ratio)


def safe_members(archive: Path, url: str | None = None, *, max_ratio: float | None = None) -> list[str]:
    """Names of the regular-file entries of ``archive``; raises on any unsafe entry.

    Unsafe: a path outside the target (absolute, ``..``), a link or device (tar), a total
    uncompressed size above ``max_ratio`` (default ``MAX_RATIO``) times the archive's size,
    or a zip member above ``MAX_MEMBER_RATIO``. Nothing is decompressed to find out: zip
    sizes come from the central directory, tar sizes from the member headers (the walk stops
    as soon as the total passes the limit).
    """
    return _scan(archive, url, max_ratio)[0]


def _scan(archive: Path, url: str | None, max_ratio: float | None) -> tuple[list[str], int]:
    limit = MAX_RATIO if max_ratio is None else float(max_ratio)
    member_limit = max(MAX_MEMBER_RATIO, limit)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            out, total = [], 0
            for info in zf.infolist():
                check_member_name(info.filename, archive, url)
                total += info.file_size
                if info.file_size >= RATIO_MIN_MEMBER and info.file_size > member_limit * max(info.compress_size, 1):
                    raise _bomb(archive, url, f"member {info.filename!r} expands to {info.file_size} bytes from "
                                              f"{info.compress_size} (ratio {info.file_size / max(info.compress_size, 1):.0f}, "
                                              f"more than the limit {member_limit:g}): refused as a decompression bomb",
                                limit)
                if not info.is_dir():
                    out.append(info.filename)
            _check_total(archive, url, total, limit)
            _check_tree(out, archive, url)
            return out, total
    cap = limit * max(archive.stat().st_size, 1)
    with tarfile.open(archive) as tf:
        out, total = [], 0
        for m in tf:
            check_member_name(m.name, archive, url)
            if m.issym() or m.islnk():
                raise DataFetchError(f"archive entry {m.name!r} is a link (to {m.linkname!r}); links are refused",
                                     file=archive.name, url=url,
                                     todo="use an archive without links, or unpack it by hand into data/manual/.")
            if m.isfile():
                out.append(m.name)
                total += m.size
                if total > cap:  # stop before decompressing the rest of a bomb
                    _check_total(archive, url, total, limit)
        _check_tree(out, archive, url)
        return out, total


def _fits(archive: Path, target: Path, url: str | None, total: int) -> None:
    free = shutil.disk_usage(target).free
    if total > free:
        raise DataFetchError(f"disk full: extracting needs {total} bytes, {free} are free in {target}",
                             file=archive.name, url=url,
                             todo="free disk space (or point --data-root at a bigger disk) and rerun the fetch; nothing "
                                  "was extracted.")


def extract(archive: Path, target: Path, url: str | None = None, *, max_ratio: float | None = None) -> None:
    """Extract ``archive`` (zip or tar, any compression) into ``target`` safely.

    Arguments:
        archive: the verified archive.
        target: the caller's staging folder (on error the caller deletes it, so nothing
            half-extracted survives).
        url: where the archive came from (named in errors).
        max_ratio: the registry's ``max_ratio`` for this file (default ``MAX_RATIO``).

    Every entry is checked before anything is written (:func:`safe_members`: paths, links,
    devices, total size and compression ratio, free disk space). The declared sizes bound
    what is written: ``zipfile`` stops a member at its declared size (then fails its CRC
    check) and a tar member is exactly its header's size. A full disk is reported as such.
    """
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            _, total = _scan(archive, url, max_ratio)
            _fits(archive, target, url, total)
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
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
        _, total = _scan(archive, url, max_ratio)  # full check first: nothing is written when any entry is unsafe
        _fits(archive, target, url, total)
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
                                 url=url, todo="free disk space (or point --data-root at a bigger disk) and rerun the "
                                               "fetch; the partial extraction was removed.") from exc
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DataFetchError(f"cannot be read as an archive: {exc}", file=archive.name, url=url,
                             todo="the file is truncated or corrupt: delete it and fetch again.") from exc


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


"""Fetch a dataset: obtain every file, verify it, extract it safely, convert it once into a
fast cache, and publish the result atomically under ``<root>/raw/<dataset>/``.

Where a file is looked for, in order:

1. ``<root>/manual/<dataset>/<file>`` (drop folder for files a user downloads by hand);
2. every entry of ``TRLEARNER_MIRROR`` (comma-separated base URLs or local directories; a file
   is looked up by its file name, in ``<dir>/<file>`` or ``<dir>/<dataset>/<file>``);
3. the public URLs of the registry, in order.

Downloads go through :func:`pooch.retrieve` (checksum verification, temporary name then
rename) with a downloader that resumes an interrupted transfer (HTTP ``Range``), shows a
progress bar, and refuses an HTML page served in place of the file (Google Drive quota
pages) before anything is extracted.

The published folder ``<root>/raw/<dataset>/`` holds ``archives/`` (the verified files as
published), ``cache/`` (the converted arrays) and ``MANIFEST.json``, written last: it is the
completion marker. Everything is built in ``<root>/tmp/`` and renamed into place, so a failed
or killed fetch leaves nothing that a later run would take for complete; a later run
starts again (resuming partial downloads kept in ``<root>/downloads/<dataset>/``).

Trust:

- every file is verified before it is opened: against the registry's published checksum, or,
  where none is published, against the sha256 recorded at its first download in
  ``<root>/pins/<dataset>.json`` (trust on first use; commit that file);
- one fetch of a dataset at a time: a second waits on the lock
  ``<root>/downloads/<dataset>/.fetch.lock`` (``TRLEARNER_FETCH_LOCK_TIMEOUT`` seconds, then
  it refuses, naming the holder);
- a run opening a dataset (:func:`trlearner.data.store.require`) checks the cache against the MANIFEST's sha256s:
  the full hash once per process and per cache, skipped when every file's size, mtime,
  ctime and inode equal those recorded at the last full check (``<root>/state/``); a
  modified cache is refused (``data fetch <dataset>`` re-converts it from the kept archives).

Example::

    >>> from trlearner.data.fetch import fetch
    >>> out = fetch("omniglot_small")            # doctest: +SKIP
    >>> sorted(p.name for p in out.iterdir())    # doctest: +SKIP
    ['MANIFEST.json', 'archives', 'cache']
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from trlearner.data.errors import DataFetchError
from trlearner.data.registry import DatasetSpec, FileSpec, get
from trlearner.data.store import (MANIFEST, MANIFEST_FORMAT, check_cache, file_hash, is_fetched,
                                  manual_dir, raw_dir, read_manifest, require, status)
from trlearner.util.atomic import atomic_write_text
from trlearner.util.locks import process_lock, write_holder

logger = logging.getLogger(__name__)

MIRROR_ENV = "TRLEARNER_MIRROR"
LOCK_TIMEOUT_ENV = "TRLEARNER_FETCH_LOCK_TIMEOUT"
LOCK_TIMEOUT = 2 * 3600.0  # seconds a second fetch of the same dataset waits for the first
PUBLISHED = "published"
RECORDED = "recorded at first download (not published)"

_HTML_TODO = ("the server sent a web page instead of the file (for Google Drive: a quota or "
              "virus-scan page). Open the URL in a browser, download the file by hand, put it in "
              "{manual} and rerun the fetch; or set TRLEARNER_MIRROR to a mirror that holds it; or "
              "retry after the quota resets (about 24 h).")


_WARNED: set[str] = set()


def mirrors() -> list[str]:
    """The entries of ``TRLEARNER_MIRROR``; a local folder that does not exist is warned about
    once per process (it was silently never looked in)."""
    out = [m.strip() for m in os.environ.get(MIRROR_ENV, "").split(",") if m.strip()]
    for m in out:
        if (m.lower().startswith("file://") or "://" not in m) and m not in _WARNED:
            from urllib.parse import urlsplit
            from urllib.request import url2pathname

            folder = url2pathname(urlsplit(m).path) if "://" in m else m
            if not Path(folder).is_dir():
                _WARNED.add(m)
                logger.warning(f"{MIRROR_ENV} names {m}, which does not exist"
                               + (" as a folder" if Path(folder).exists() else "") + "; no file is looked up there")
    return out


# --------------------------------------------------------------------------- full check

def verify(dataset: DatasetSpec | str, root: str | Path = "data") -> list[str]:
    """Full check of a fetched dataset: every cache file and every kept archive against the
    MANIFEST, and every archive against its published or recorded checksum. Returns the
    problems (empty: intact). A dataset that is not fetched is one problem."""
    spec = get(dataset)
    if spec.kind == "collection":
        return [f"{m}: {p}" for m in spec.members for p in verify(m, root)]
    st = status(spec, root, full=True)
    raw = raw_dir(spec.name, root)
    if st in ("not fetched", "out of date"):
        return [f"{st} (run `python -m trlearner data fetch {spec.name}`)"]
    problems = check_cache(raw, root=root, full=True)[1]
    man = read_manifest(spec.name, root)
    pins = read_pins(spec.name, root)
    for f in spec.files:
        a = raw / "archives" / f.name
        if not a.is_file():
            continue  # fetched with keep_archives=False
        if file_hash(a) != man["files"].get(f.name):
            problems.append(f"archives/{f.name} differs from the sha256 in the MANIFEST")
        want = f.checksum or pins.get(f.name)
        if want and not _check(a, want)[0]:
            problems.append(f"archives/{f.name} does not match its checksum {want} ({checksum_origin(f)})")
    return problems


# --------------------------------------------------------------------------- trust on first use

def pins_path(dataset: str, root: str | Path = "data") -> Path:
    """``<root>/pins/<dataset>.json``: sha256 of each file without a published checksum,
    recorded at its first successful fetch (commit it: teammates then verify against it)."""
    return Path(root) / "pins" / f"{dataset}.json"


def read_pins(dataset: str, root: str | Path = "data") -> dict[str, str]:
    try:
        return dict(json.loads(pins_path(dataset, root).read_text()).get("files", {}))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise DataFetchError(f"{pins_path(dataset, root)} is not valid JSON ({exc})", dataset=dataset,
                             todo="restore it from git (it records the hashes of the first download)") from exc


def _write_pins(spec: DatasetSpec, root: Path, pins: dict[str, str]) -> None:
    p = pins_path(spec.name, root)
    doc = {"dataset": spec.name,
           "note": "sha256 of files with no published checksum, recorded at their first download "
                   "(trlearner.data.fetch); every later download and `data verify` must match",
           "files": dict(sorted(pins.items()))}
    atomic_write_text(p, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def checksum_origin(f: FileSpec) -> str:
    """How ``f`` is verified: ``"published"`` or ``"recorded at first download (not published)"``."""
    return PUBLISHED if f.checksum else RECORDED


def checksum_status(spec: DatasetSpec | str) -> str:
    """One line for ``data list`` and reports: how the files of ``spec`` are verified."""
    spec = get(spec)
    if spec.kind == "collection":
        states = {checksum_status(m) for m in spec.members}
        return states.pop() if len(states) == 1 else "per source"
    if spec.kind == "generated" or not spec.files:
        return "n/a (generated)" if spec.kind == "generated" else "n/a"
    origins = [checksum_origin(f) for f in spec.files]
    if len(set(origins)) == 1:
        if origins[0] == PUBLISHED:
            return PUBLISHED + " (" + "/".join(sorted({f.checksum.split(":")[0] for f in spec.files})) + ")"
        return RECORDED
    n = origins.count(RECORDED)
    return f"{PUBLISHED}; {n} of {len(origins)} files {RECORDED}"


def _expected(spec: DatasetSpec, f: FileSpec, root: Path) -> str | None:
    return f.checksum or read_pins(spec.name, root).get(f.name)


def _mismatch_todo(spec: DatasetSpec, f: FileSpec, root: Path) -> str:
    if f.checksum:
        return ("the copy is corrupt or a different version: replace it with the published file (or remove it "
                "from this location) and rerun.")
    return (f"no checksum is published for {f.name}; the one expected is the sha256 recorded at its first download "
            f"in {pins_path(spec.name, root)}. This source serves a different file: use another source, or, only "
            "if you know the publisher changed it, delete its entry there and rerun.")


# --------------------------------------------------------------------------- one fetch at a time

@contextmanager
def fetch_lock(dataset: str, root: str | Path = "data", timeout: float | None = None):
    """Hold ``<root>/downloads/<dataset>/.fetch.lock`` (a :class:`filelock.FileLock`,
    :func:`trlearner.util.locks.process_lock`: released when the process ends, even by SIGKILL)
    for the duration of a fetch. The file names its holder (pid, host, since when).

    Arguments:
        dataset: the dataset name.
        root: the data root.
        timeout: seconds to wait for another holder (default ``TRLEARNER_FETCH_LOCK_TIMEOUT``
            or ``LOCK_TIMEOUT``); then :class:`DataFetchError` names the holder.

    Example::

        >>> with fetch_lock("omniglot_small", "data"):    # doctest: +SKIP
        ...     pass
    """
    from filelock import Timeout

    if timeout is None:
        timeout = lock_timeout()
    path = Path(root) / "downloads" / dataset / ".fetch.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = process_lock(path, on_acquired=_name_fetch_holder)
    start = time.monotonic()
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if timeout > 0:  # say once whom it waits for, then wait for the rest of the timeout
            logger.warning(f"[{dataset}] waiting for another fetch of this dataset ({_holder(path)}; lock {path}), "
                           f"at most {timeout:.0f} s")
            try:
                lock.acquire(timeout=max(timeout - (time.monotonic() - start), 0.0), poll_interval=0.5)
            except Timeout:
                pass
        if not lock.is_locked:
            raise DataFetchError(
                f"another fetch of this dataset ({_holder(path)}) still holds {path} after "
                f"{time.monotonic() - start:.0f} s", dataset=dataset,
                todo=f"let it finish, then rerun (it returns at once when the dataset is complete); or "
                     f"wait longer with {LOCK_TIMEOUT_ENV}=<seconds>.") from None
    try:
        yield path
    finally:
        lock.release()


def _name_fetch_holder(fd: int) -> None:
    write_holder(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}))


def lock_timeout() -> float:
    """Seconds a fetch waits for another fetch of its dataset: ``TRLEARNER_FETCH_LOCK_TIMEOUT``
    (a number >= 0), else ``LOCK_TIMEOUT``; any other value is refused in one line."""
    text = os.environ.get(LOCK_TIMEOUT_ENV)
    if text is None or not text.strip():
        return LOCK_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value != float("inf")):
        raise DataFetchError(f"{LOCK_TIMEOUT_ENV}={text!r} is not a number of seconds: set it to one (e.g. "
                             f"{LOCK_TIMEOUT_ENV}=600), or unset it for the default {LOCK_TIMEOUT:.0f}")
    return value


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text() or "{}")
        return f"pid {h['pid']} on {h['host']} since {h['since']}"
    except (OSError, ValueError, KeyError):
        return "a process that has not written its name yet"


# --------------------------------------------------------------------------- hashing

def _check(path: Path, checksum: str | None) -> tuple[bool, str]:
    if checksum is None:
        return True, ""
    alg, _, want = checksum.partition(":")
    got = file_hash(path, alg)
    return got == want.lower(), f"{alg}:{got}"


def looks_like_html(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(2048)
    low = head.lstrip().lower()
    return low.startswith((b"<!doctype html", b"<html")) or (low.startswith(b"<") and b"<html" in low)


# --------------------------------------------------------------------------- downloading

class ResumableDownloader:
    """A pooch downloader that keeps a ``.part`` file and resumes it with an HTTP Range request.

    The ``.part`` file survives an interrupted transfer (so a rerun resumes) and is moved to
    pooch's temporary output only when complete; pooch then verifies the checksum and renames.
    """

    def __init__(self, partial: Path, *, progress: bool = True, timeout: float = 60.0):
        self.partial, self.progress, self.timeout = partial, progress, timeout

    def __call__(self, url, output_file, pooch_obj=None, check_only=False):
        import requests
        from tqdm.auto import tqdm

        part = self.partial
        part.parent.mkdir(parents=True, exist_ok=True)
        start = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={start}-"} if start else {}
        fname = Path(str(output_file)).name
        try:
            with requests.get(url, headers=headers, stream=True, timeout=(15, self.timeout),
                              allow_redirects=True) as r:
                if r.status_code == 416:  # our partial is already whole (or stale): start again
                    part.unlink()
                    return self(url, output_file, pooch_obj)
                r.raise_for_status()
                mode = "ab" if (start and r.status_code == 206) else "wb"
                if mode == "wb":
                    start = 0
                length = r.headers.get("Content-Length")
                total = start + int(length) if length is not None else None
                ctype = r.headers.get("Content-Type", "")
                with open(part, mode) as fh, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                                 desc=Path(part.name).stem, disable=None if self.progress else True,
                                                 file=sys.stderr, leave=False) as bar:
                    for chunk in r.iter_content(chunk_size=1 << 16):
                        fh.write(chunk)
                        bar.update(len(chunk))
        except requests.exceptions.HTTPError as exc:
            raise DataFetchError(f"HTTP error {exc.response.status_code}", url=url, file=part.stem,
                                 todo="check the URL or mirror; the next source is tried automatically.") from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
            got = part.stat().st_size if part.exists() else 0
            if got > start or start:
                raise DataFetchError(
                    f"truncated download: the connection broke after {got} bytes"
                    + (f" of {total}" if 'total' in locals() and total else "") + f" ({type(exc).__name__})",
                    url=url, file=part.stem,
                    todo=f"rerun the fetch: it resumes from byte {got} (partial data kept in {part}, never "
                         "used before its checksum is verified).") from exc
            raise DataFetchError(f"cannot connect ({type(exc).__name__}: {exc})", url=url, file=part.stem,
                                 todo="check the network or set TRLEARNER_MIRROR to a reachable mirror.") from exc
        except OSError as exc:  # after requests' own errors (OSErrors too)
            if isinstance(exc, requests.exceptions.RequestException) or exc.filename is not None:
                raise
            exc.filename = str(part)  # a full disk while writing the download: name the file
            raise
        size = part.stat().st_size
        if total is not None and size < total:
            raise DataFetchError(f"truncated download: got {size} of {total} bytes", url=url, file=part.stem,
                                 todo=f"rerun the fetch: it resumes from byte {size}.")
        if "text/html" in ctype.lower() or looks_like_html(part):
            part.unlink()
            raise DataFetchError("got an HTML page instead of the file", url=url, file=part.stem,
                                 todo=_HTML_TODO.format(manual="data/manual/<dataset>/"))
        shutil.move(str(part), str(output_file))


def _copy_local(src: Path, dest: Path, f: FileSpec, origin: str, dataset: str, manual: Path,
                checksum: str | None = None, todo: str | None = None) -> None:
    """Copy ``src`` to ``dest`` if it is ``checksum`` (default: the published one) and no HTML page."""
    checksum = checksum or f.checksum
    tmp = dest.with_name(dest.name + f".tmp-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copyfile(src, tmp)
        if looks_like_html(tmp):
            raise DataFetchError("is an HTML page, not the published file", file=f.name, url=origin,
                                 dataset=dataset, todo=_HTML_TODO.format(manual=manual))
        ok, got = _check(tmp, checksum)
        if not ok:
            raise DataFetchError(f"checksum mismatch: expected {checksum}, got {got}", file=f.name, url=origin,
                                 dataset=dataset, todo=todo or "the copy is corrupt or a different version: replace "
                                 "it with the published file (or remove it from this location) and rerun.")
        os.replace(tmp, dest)
    except OSError as exc:
        if str(tmp) in (exc.filename, exc.filename2):  # name the file being written, not our temporary name
            exc.filename, exc.filename2 = str(dest), None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def _sources(spec: DatasetSpec, f: FileSpec, root: Path) -> list[tuple[str, str]]:
    """Candidate locations of ``f`` in order: ('path', p) or ('url', u). First the archive
    kept by the previous fetch (verified like any source), so a refetch of a modified cache
    converts again without downloading."""
    out: list[tuple[str, str]] = [("path", str(raw_dir(spec.name, root) / "archives" / f.name))]
    man = manual_dir(spec.name, root) / f.name
    out.append(("path", str(man)))
    for m in mirrors():
        if m.lower().startswith("file://"):  # a local folder written as a URL (requests cannot open it)
            from urllib.parse import urlsplit
            from urllib.request import url2pathname

            m = url2pathname(urlsplit(m).path)
        if "://" in m:
            out.append(("url", m.rstrip("/") + "/" + f.name))
        else:
            out.append(("path", str(Path(m) / f.name)))
            out.append(("path", str(Path(m) / spec.name / f.name)))
    out += [("url", u) for u in f.urls]
    return out


def obtain(spec: DatasetSpec, f: FileSpec, root: Path, *, progress: bool = True,
           origins: dict[str, str] | None = None) -> Path:
    """Get one verified file into ``<root>/downloads/<dataset>/``; raise listing every attempt.
    ``origins[f.name]`` is set to where it came from (a mirror, a folder, a URL)."""
    origins = {} if origins is None else origins
    import pooch
    import requests

    dl = Path(root) / "downloads" / spec.name
    dl.mkdir(parents=True, exist_ok=True)
    dest = dl / f.name
    checksum = _expected(spec, f, root)  # published, or recorded at the first download
    todo = _mismatch_todo(spec, f, root)
    if dest.exists():
        ok, _ = _check(dest, checksum)
        if ok and not looks_like_html(dest):
            origins[f.name] = str(dest)
            return dest
        dest.unlink()
    attempts: list[DataFetchError] = []
    for kind, where in _sources(spec, f, root):
        try:
            if kind == "path":
                p = Path(where)
                if not p.is_file():
                    continue
                _copy_local(p, dest, f, str(p), spec.name, manual_dir(spec.name, root), checksum, todo)
                origins[f.name] = str(p)
                return dest
            downloader = ResumableDownloader(dl / (f.name + ".part"), progress=progress)
            try:
                pooch.retrieve(where, known_hash=checksum, fname=f.name, path=dl, downloader=downloader,
                               progressbar=False)
            except ValueError as exc:  # pooch: hash mismatch (its temporary file is already deleted)
                if isinstance(exc, requests.exceptions.RequestException):  # InvalidSchema, InvalidURL, ...
                    raise DataFetchError(f"download failed ({type(exc).__name__}: {exc})", file=f.name, url=where,
                                         todo="give TRLEARNER_MIRROR local folders or http(s):// addresses.") from None
                if "hash" not in str(exc).lower():
                    raise
                raise DataFetchError(f"checksum mismatch: expected {checksum} ({exc})", file=f.name,
                                     url=where, todo=todo if not f.checksum else "the download is corrupt or the "
                                     "source serves another version: rerun (it starts afresh); if it persists use "
                                     "another mirror or report the changed file.") from None
            except requests.exceptions.RequestException as exc:
                raise DataFetchError(f"download failed ({type(exc).__name__}: {exc})", file=f.name, url=where,
                                     todo="check the network or set TRLEARNER_MIRROR.") from exc
            origins[f.name] = where
            return dest
        except DataFetchError as exc:
            exc.dataset = exc.dataset or spec.name
            exc.file = exc.file or f.name
            attempts.append(exc)
            if exc.problem.startswith("truncated"):
                break  # keep the .part for resuming from this source; do not mix sources
    if not attempts:
        todo = (spec.manual or "") + (" " if spec.manual else "")
        todo += (f"Put {f.name} in {manual_dir(spec.name, root)}/ or in a TRLEARNER_MIRROR directory, "
                 "then rerun.")
        raise DataFetchError("no source has this file (no public URL is registered, and neither the manual "
                             "drop folder nor TRLEARNER_MIRROR holds it)", file=f.name, dataset=spec.name,
                             url=", ".join(f.urls) or None, todo=todo)
    raise _all_failed(attempts, spec, f, root)


def _all_failed(attempts: list[DataFetchError], spec: DatasetSpec, f: FileSpec, root: Path) -> DataFetchError:
    """One error for the failed sources of ``f``: each attempt on a line of its own, each distinct
    piece of advice once (not once per source), and the manual drop folder named."""
    manual = manual_dir(spec.name, root)
    todos = list(dict.fromkeys(a.todo for a in attempts if a.todo))
    if not any(str(manual) in t for t in todos):
        todos.append(f"Or download {f.name} by hand and put it in {manual}/ (the manual drop folder), then rerun.")
    if len(attempts) == 1:
        a = attempts[0]
        return DataFetchError(a.problem, file=a.file, url=a.url, dataset=a.dataset, todo=" ".join(todos))
    lines = "\n".join(f"  - {a.headline}" for a in attempts)
    return DataFetchError(f"every source failed:\n{lines}", file=f.name, dataset=spec.name, url=attempts[-1].url,
                          todo=" ".join(todos))


# --------------------------------------------------------------------------- the whole fetch

def _write_manifest(stage: Path, spec: DatasetSpec, hashes: dict[str, str]) -> None:
    cache_files = {}
    for p in sorted((stage / "cache").rglob("*")):
        if p.is_file():
            cache_files[str(p.relative_to(stage / "cache"))] = file_hash(p)
    content = hashlib.sha256(json.dumps([hashes, cache_files], sort_keys=True).encode()).hexdigest()
    man = {
        "format": MANIFEST_FORMAT,
        "dataset": spec.name,
        "identity": spec.identity(),
        "files": hashes,  # sha256 of every published file as fetched
        "cache": cache_files,
        "content_hash": content,
    }  # no timestamp: the same inputs give byte-identical outputs (DVC hashes stay stable)
    atomic_write_text(stage / MANIFEST, json.dumps(man, indent=1, sort_keys=True) + "\n")


def fetch(dataset: str | DatasetSpec, root: str | Path = "data", *, force: bool = False,
          progress: bool = True, keep_archives: bool = True) -> Path:
    """Fetch ``dataset`` into ``<root>/raw/<dataset>/`` and return that folder.

    Idempotent: a complete, up-to-date dataset whose cache matches its MANIFEST is returned
    at once (``force`` rebuilds it; a modified cache is rebuilt from the kept archives).
    A concurrent fetch of the same dataset waits for this one (:func:`fetch_lock`), then
    finds it complete. Raises :class:`DataFetchError` naming the file, the URL and what to do.
    """
    spec = get(dataset)
    root = Path(root)
    if spec.kind == "collection":
        for m in spec.members:
            fetch(m, root, force=force, progress=progress, keep_archives=keep_archives)
        return root / "raw"
    out = raw_dir(spec.name, root)
    if not force and status(spec, root) == "fetched":
        return out
    try:
        with fetch_lock(spec.name, root):
            if not force and status(spec, root) == "fetched":  # another process fetched it while we waited
                return out
            return _fetch_locked(spec, root, progress=progress, keep_archives=keep_archives)
    except OSError as exc:  # a full disk, a read-only data root: one line, the folder and what to do
        from trlearner.util.cli import os_error_line

        line = os_error_line(exc)
        if line is None:
            raise
        raise DataFetchError(f"{line} (data root {root}; {out} is left as it was; "
                             f"--data-root chooses another folder)", dataset=spec.name) from exc


def _fetch_locked(spec: DatasetSpec, root: Path, *, progress: bool, keep_archives: bool) -> Path:
    from trlearner.data.fetch.convert import convert

    out = raw_dir(spec.name, root)
    tmp_root = root / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    for stale in tmp_root.glob(f"{spec.name}.*"):  # left by a killed run (we hold the lock: no live owner)
        shutil.rmtree(stale, ignore_errors=True)
    stage = tmp_root / f"{spec.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        (stage / "archives").mkdir(parents=True)
        (stage / "cache").mkdir()
        hashes: dict[str, str] = {}
        local: dict[str, Path] = {}
        origins: dict[str, str] = {}  # where each file came from, for the errors of extraction
        for f in spec.files:
            local[f.name] = obtain(spec, f, root, progress=progress, origins=origins)
        for f in spec.files:  # only after every file is verified: move them into the stage
            dest = stage / "archives" / f.name
            os.replace(local[f.name], dest)
            local[f.name] = dest
            hashes[f.name] = file_hash(dest)
        extracted = stage / "extracted"
        from trlearner.data.fetch.archives import extract
        for f in spec.files:
            if f.extract:
                url = origins.get(f.name) or (f.urls[0] if f.urls else None)  # the mirror it came from
                extract(local[f.name], extracted / Path(f.name).name.split(".")[0], url=url, max_ratio=f.max_ratio)
        try:
            convert(spec, archives=stage / "archives", extracted=extracted, cache=stage / "cache")
        except DataFetchError as exc:
            if exc.dataset or exc.todo or not exc.problem.startswith("image "):
                raise
            raise DataFetchError(  # an image that cannot be decoded or is too large: which dataset, what to do
                f"{exc.problem}; nothing was cached: delete the archive from {root / 'downloads' / spec.name}/ "
                f"and fetch it from a trusted source (TRLEARNER_MIRROR, or the public URL)",
                dataset=spec.name) from None
        except OSError as exc:
            from trlearner.data.fetch.archives import disk_full
            if disk_full(exc):
                raise DataFetchError("disk full while converting", dataset=spec.name,
                                     todo="free disk space and rerun the fetch") from exc
            raise
        shutil.rmtree(extracted, ignore_errors=True)
        if not keep_archives:
            shutil.rmtree(stage / "archives")
            (stage / "archives").mkdir()
        pins = read_pins(spec.name, root)
        new_pins = {f.name: "sha256:" + hashes[f.name] for f in spec.files if not f.checksum and f.name not in pins}
        if new_pins:  # trust on first use: recorded once the files were converted without error
            _write_pins(spec, root, {**pins, **new_pins})
            logger.warning(f"[{spec.name}] no checksum is published for {', '.join(sorted(new_pins))}: recorded the "
                           f"sha256 of this first download in {pins_path(spec.name, root)} (commit it); later "
                           f"fetches must match")
        _write_manifest(stage, spec, hashes)  # the completion marker, written last
        if out.exists() or out.is_symlink():
            trash = tmp_root / f"{spec.name}.old.{uuid.uuid4().hex[:8]}"
            os.replace(out, trash)
            shutil.rmtree(trash, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage, out)
    finally:
        if stage.exists():
            # files already verified stay available for a retry (no second download)
            for f in spec.files:
                a = stage / "archives" / f.name
                if a.exists():
                    try:
                        os.replace(a, root / "downloads" / spec.name / f.name)
                    except OSError:
                        pass
            shutil.rmtree(stage, ignore_errors=True)
    return out


def manifest(dataset: str, root: str | Path = "data") -> dict:
    """A small record of a fetched dataset's content for pipelines to depend on."""
    spec = get(dataset)
    if spec.kind == "collection":
        parts = {m: manifest(m, root) for m in spec.members if is_fetched(m, root)}
        h = hashlib.sha256(json.dumps({k: v["content_hash"] for k, v in parts.items()}, sort_keys=True).encode())
        return {"dataset": spec.name, "content_hash": h.hexdigest(), "members": parts}
    require(spec, root)  # refuses a cache modified after fetching: never a stale hash
    man = read_manifest(spec.name, root)
    return {"dataset": spec.name, "content_hash": man["content_hash"], "cache_version": spec.cache_version,
            "files": man["files"], "checksums": {f.name: checksum_origin(f) for f in spec.files}}

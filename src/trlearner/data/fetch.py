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

Example::

    >>> from trlearner.data.fetch import fetch
    >>> out = fetch("omniglot_small")            # doctest: +SKIP
    >>> sorted(p.name for p in out.iterdir())    # doctest: +SKIP
    ['MANIFEST.json', 'archives', 'cache']
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

from trlearner.data.errors import DataFetchError
from trlearner.data.registry import DatasetSpec, FileSpec, get

MIRROR_ENV = "TRLEARNER_MIRROR"
MANIFEST = "MANIFEST.json"
MANIFEST_FORMAT = 1

_HTML_TODO = ("the server sent a web page instead of the file (for Google Drive: a quota or "
              "virus-scan page). Open the URL in a browser, download the file by hand, put it in "
              "{manual} and rerun the fetch; or set TRLEARNER_MIRROR to a mirror that holds it; or "
              "retry after the quota resets (about 24 h).")


# --------------------------------------------------------------------------- locations

def raw_dir(dataset: str, root: str | Path = "data") -> Path:
    return Path(root) / "raw" / dataset


def cache_dir(dataset: str, root: str | Path = "data") -> Path:
    return raw_dir(dataset, root) / "cache"


def manual_dir(dataset: str, root: str | Path = "data") -> Path:
    return Path(root) / "manual" / dataset


def mirrors() -> list[str]:
    return [m.strip() for m in os.environ.get(MIRROR_ENV, "").split(",") if m.strip()]


def read_manifest(dataset: str, root: str | Path = "data") -> dict | None:
    p = raw_dir(dataset, root) / MANIFEST
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def is_fetched(spec: DatasetSpec | str, root: str | Path = "data") -> bool:
    """True when ``<root>/raw/<dataset>`` is complete and matches the registry entry."""
    spec = get(spec)
    if spec.kind == "collection":
        return all(is_fetched(m, root) for m in spec.members)
    man = read_manifest(spec.name, root)
    return bool(man) and man.get("format") == MANIFEST_FORMAT and man.get("identity") == spec.identity()


def require(spec: DatasetSpec | str, root: str | Path = "data") -> Path:
    """The cache folder of a fetched dataset, or a clear error saying how to fetch it."""
    spec = get(spec)
    if not is_fetched(spec, root):
        raise FileNotFoundError(
            f"dataset {spec.name!r} is not fetched (or is out of date) under {Path(root) / 'raw' / spec.name}. "
            f"Run `python -m trlearner data fetch {spec.name}` (or `dvc pull fetch@{spec.name}` / "
            f"`dvc repro fetch@{spec.name}`).")
    return cache_dir(spec.name, root)


# --------------------------------------------------------------------------- hashing

def file_hash(path: Path, alg: str = "sha256") -> str:
    h = hashlib.new(alg)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
                                                 desc=Path(part.name).stem, disable=not self.progress,
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
        size = part.stat().st_size
        if total is not None and size < total:
            raise DataFetchError(f"truncated download: got {size} of {total} bytes", url=url, file=part.stem,
                                 todo=f"rerun the fetch: it resumes from byte {size}.")
        if "text/html" in ctype.lower() or looks_like_html(part):
            part.unlink()
            raise DataFetchError("got an HTML page instead of the file", url=url, file=part.stem,
                                 todo=_HTML_TODO.format(manual="data/manual/<dataset>/"))
        shutil.move(str(part), str(output_file))


def _copy_local(src: Path, dest: Path, f: FileSpec, origin: str, dataset: str, manual: Path) -> None:
    tmp = dest.with_name(dest.name + f".tmp-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copyfile(src, tmp)
        if looks_like_html(tmp):
            raise DataFetchError("is an HTML page, not the published file", file=f.name, url=origin,
                                 dataset=dataset, todo=_HTML_TODO.format(manual=manual))
        ok, got = _check(tmp, f.checksum)
        if not ok:
            raise DataFetchError(f"checksum mismatch: expected {f.checksum}, got {got}", file=f.name, url=origin,
                                 dataset=dataset, todo="the copy is corrupt or a different version: replace it "
                                 "with the published file (or remove it from this location) and rerun.")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def _sources(spec: DatasetSpec, f: FileSpec, root: Path) -> list[tuple[str, str]]:
    """Candidate locations of ``f`` in order: ('path', p) or ('url', u)."""
    out: list[tuple[str, str]] = []
    man = manual_dir(spec.name, root) / f.name
    out.append(("path", str(man)))
    for m in mirrors():
        if "://" in m:
            out.append(("url", m.rstrip("/") + "/" + f.name))
        else:
            out.append(("path", str(Path(m) / f.name)))
            out.append(("path", str(Path(m) / spec.name / f.name)))
    out += [("url", u) for u in f.urls]
    return out


def obtain(spec: DatasetSpec, f: FileSpec, root: Path, *, progress: bool = True) -> Path:
    """Get one verified file into ``<root>/downloads/<dataset>/``; raise listing every attempt."""
    import pooch
    import requests

    dl = Path(root) / "downloads" / spec.name
    dl.mkdir(parents=True, exist_ok=True)
    dest = dl / f.name
    if dest.exists():
        ok, _ = _check(dest, f.checksum)
        if ok and not looks_like_html(dest):
            return dest
        dest.unlink()
    attempts: list[DataFetchError] = []
    for kind, where in _sources(spec, f, root):
        try:
            if kind == "path":
                p = Path(where)
                if not p.is_file():
                    continue
                _copy_local(p, dest, f, str(p), spec.name, manual_dir(spec.name, root))
                return dest
            downloader = ResumableDownloader(dl / (f.name + ".part"), progress=progress)
            try:
                pooch.retrieve(where, known_hash=f.checksum, fname=f.name, path=dl, downloader=downloader,
                               progressbar=False)
            except ValueError as exc:  # pooch: hash mismatch (its temporary file is already deleted)
                if "hash" not in str(exc).lower():
                    raise
                raise DataFetchError(f"checksum mismatch: expected {f.checksum} ({exc})", file=f.name,
                                     url=where, todo="the download is corrupt or the source serves another "
                                     "version: rerun (it starts afresh); if it persists use another mirror "
                                     "or report the changed file.") from None
            except requests.exceptions.RequestException as exc:
                raise DataFetchError(f"download failed ({type(exc).__name__}: {exc})", file=f.name, url=where,
                                     todo="check the network or set TRLEARNER_MIRROR.") from exc
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
    if len(attempts) == 1:
        raise attempts[0]
    lines = "\n".join(f"  - {a}" for a in attempts)
    last = attempts[-1]
    raise DataFetchError(f"every source failed:\n{lines}", file=f.name, dataset=spec.name, url=last.url,
                         todo=last.todo)


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
    tmp = stage / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, stage / MANIFEST)


def fetch(dataset: str | DatasetSpec, root: str | Path = "data", *, force: bool = False,
          progress: bool = True, keep_archives: bool = True) -> Path:
    """Fetch ``dataset`` into ``<root>/raw/<dataset>/`` and return that folder.

    Idempotent: a complete, up-to-date dataset is returned at once (``force`` rebuilds it).
    Raises :class:`DataFetchError` naming the file, the URL and what to do.
    """
    from trlearner.data.convert import convert

    spec = get(dataset)
    root = Path(root)
    if spec.kind == "collection":
        for m in spec.members:
            fetch(m, root, force=force, progress=progress, keep_archives=keep_archives)
        return root / "raw"
    out = raw_dir(spec.name, root)
    if not force and is_fetched(spec, root):
        return out
    tmp_root = root / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    for stale in tmp_root.glob(f"{spec.name}.*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    stage = tmp_root / f"{spec.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        (stage / "archives").mkdir(parents=True)
        (stage / "cache").mkdir()
        hashes: dict[str, str] = {}
        local: dict[str, Path] = {}
        for f in spec.files:
            local[f.name] = obtain(spec, f, root, progress=progress)
        for f in spec.files:  # only after every file is verified: move them into the stage
            dest = stage / "archives" / f.name
            os.replace(local[f.name], dest)
            local[f.name] = dest
            hashes[f.name] = file_hash(dest)
        extracted = stage / "extracted"
        from trlearner.data.archives import extract
        for f in spec.files:
            if f.extract:
                url = f.urls[0] if f.urls else None
                extract(local[f.name], extracted / Path(f.name).name.split(".")[0], url=url)
        try:
            convert(spec, archives=stage / "archives", extracted=extracted, cache=stage / "cache")
        except DataFetchError:
            raise
        except OSError as exc:
            from trlearner.data.archives import disk_full
            if disk_full(exc):
                raise DataFetchError("disk full while converting", dataset=spec.name,
                                     todo="free disk space and rerun the fetch") from exc
            raise
        shutil.rmtree(extracted, ignore_errors=True)
        if not keep_archives:
            shutil.rmtree(stage / "archives")
            (stage / "archives").mkdir()
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
    require(spec, root)
    man = read_manifest(spec.name, root)
    return {"dataset": spec.name, "content_hash": man["content_hash"], "cache_version": spec.cache_version,
            "files": man["files"]}

"""The published cache of a dataset, as the sources read it: where it is, whether it is
complete, and whether it is intact. Nothing here downloads or converts (that is
:mod:`trlearner.data.fetch`, which writes what this module reads).

The published folder ``<root>/raw/<dataset>/`` holds ``archives/`` (the verified files as
published), ``cache/`` (the converted arrays) and ``MANIFEST.json``, written last by the fetch:
it is the completion marker (:func:`is_fetched`). A run opening a dataset (:func:`require`)
checks the cache against the MANIFEST's sha256s: the full hash once per process and per cache,
skipped when every file's size, mtime, ctime and inode equal those recorded at the last full
check (``<root>/state/``); a modified cache is refused (``data fetch <dataset>`` re-converts it
from the kept archives).

Example::

    >>> from trlearner.data.store import is_fetched, require
    >>> is_fetched("omniglot_small", "data")              # doctest: +SKIP
    True
    >>> require("omniglot_small", "data")                 # doctest: +SKIP
    PosixPath('data/raw/omniglot_small/cache')
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from trlearner.data.errors import DataFetchError
from trlearner.data.registry import DatasetSpec, get
from trlearner.util.atomic import atomic_write_text

MANIFEST = "MANIFEST.json"
MANIFEST_FORMAT = 1


# --------------------------------------------------------------------------- locations

def raw_dir(dataset: str, root: str | Path = "data") -> Path:
    return Path(root) / "raw" / dataset


def cache_dir(dataset: str, root: str | Path = "data") -> Path:
    return raw_dir(dataset, root) / "cache"


def manual_dir(dataset: str, root: str | Path = "data") -> Path:
    return Path(root) / "manual" / dataset



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
    """The cache folder of a fetched dataset whose cache matches its MANIFEST.

    Raises ``FileNotFoundError`` (not fetched, or out of date) or :class:`DataFetchError`
    (the cache was modified after fetching), each saying what to do. The check is
    :func:`check_cache` (cheap after the first full hash, see the module docstring).
    """
    spec = get(spec)
    if not is_fetched(spec, root):
        raise FileNotFoundError(
            f"dataset {spec.name!r} is not fetched (or is out of date) under {Path(root) / 'raw' / spec.name}. "
            f"Run `python -m trlearner data fetch {spec.name}` (or `dvc pull fetch@{spec.name}` / "
            f"`dvc repro fetch@{spec.name}`).")
    problems = check_cache(raw_dir(spec.name, root), root=root)[1]
    if problems:
        raise DataFetchError(
            "the cache was modified after fetching: " + "; ".join(problems), dataset=spec.name,
            url=str(cache_dir(spec.name, root)),
            todo=f"nothing was read. Run `python -m trlearner data fetch {spec.name}` (it re-converts the cache "
                 f"from the verified archives kept in {raw_dir(spec.name, root) / 'archives'}, or downloads them "
                 f"again), or `dvc checkout data/raw/{spec.name}`.")
    return cache_dir(spec.name, root)


def status(spec: DatasetSpec | str, root: str | Path = "data", *, full: bool = False) -> str:
    """``"fetched"``, ``"modified"`` (cache differs from its MANIFEST), ``"out of date"``
    (fetched for another registry entry) or ``"not fetched"``; a collection is ``"fetched"``
    when every member is. ``full`` hashes every cache file (else :func:`check_cache`'s
    shortcut applies)."""
    spec = get(spec)
    if spec.kind == "collection":
        states = {status(m, root, full=full) for m in spec.members}
        return "fetched" if states == {"fetched"} else ("modified" if "modified" in states else "not fetched")
    man = read_manifest(spec.name, root)
    if not man or man.get("format") != MANIFEST_FORMAT:
        return "not fetched"
    if man.get("identity") != spec.identity():
        return "out of date"
    return "modified" if check_cache(raw_dir(spec.name, root), root=root, full=full)[1] else "fetched"


# --------------------------------------------------------------------------- cache verification

_VERIFIED: set[tuple[str, str]] = set()  # (raw folder, content hash) fully checked in this process


def forget_verified() -> None:
    """Forget which caches this process has checked: the next open checks again (for a
    long-lived process, e.g. a notebook, that wants the check a new run would do)."""
    _VERIFIED.clear()


def _state_path(raw: Path, root: str | Path) -> Path:
    return Path(root) / "state" / f"{raw.name}.verified.json"


def _stat(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def check_cache(raw: Path, *, root: str | Path = "data", full: bool = False) -> tuple[str, list[str]]:
    """Check ``raw/cache`` against the sha256s of ``raw/MANIFEST.json``.

    Arguments:
        raw: a published dataset folder (``<root>/raw/<dataset>``).
        root: the data root (its ``state/`` keeps the stat record of the last full check).
        full: hash every file, whatever the shortcuts say.

    Returns:
        ``(how, problems)``: ``how`` is ``"memo"`` (already fully checked in this process),
        ``"stat"`` (every file's size, mtime, ctime and inode equal the record of the last
        full check, which was written after them: nothing hashed) or ``"sha256"``;
        ``problems`` names every missing or modified file (empty: the cache is intact).

    Example::

        >>> how, problems = check_cache(Path("data/raw/omniglot_small"))   # doctest: +SKIP
        >>> how, problems                                                  # doctest: +SKIP
        ('sha256', [])
    """
    raw = Path(raw)
    man = json.loads((raw / MANIFEST).read_text())
    want: dict[str, str] = man.get("cache", {})
    key = (str(raw.resolve()), str(man.get("content_hash")))
    if not full and key in _VERIFIED:
        return "memo", []
    cache = raw / "cache"
    state = _state_path(raw, root)
    record = None
    if not full:
        try:
            record = json.loads(state.read_text())
            written = state.stat().st_mtime_ns
        except (OSError, ValueError):
            record = None
    stats: dict[str, list[int] | None] = {}
    missing = [rel for rel in want if not (cache / rel).is_file()]
    for rel in want:
        if rel not in missing:
            stats[rel] = _stat(cache / rel)
    if (record is not None and not missing and record.get("content_hash") == key[1]
            and record.get("files") == stats
            and all(max(st[1], st[2]) < written for st in stats.values())):  # not changed in the record's tick
        _VERIFIED.add(key)
        return "stat", []
    problems = [f"{rel} is missing" for rel in missing]
    for rel, digest in want.items():
        got = None if rel in missing else file_hash(cache / rel)
        if got is not None and got != digest:
            problems.append(f"{rel} has sha256 {got[:16]}..., the MANIFEST records {digest[:16]}...")
    if problems:
        _VERIFIED.discard(key)
        try:
            state.unlink()
        except OSError:
            pass
        return "sha256", problems
    _VERIFIED.add(key)
    try:  # the record of this full check (machine-local state, not versioned)
        atomic_write_text(state, json.dumps({"content_hash": key[1], "files": stats}, sort_keys=True))
    except OSError:
        pass  # read-only data root: every process hashes once
    return "sha256", []


# --------------------------------------------------------------------------- hashing

def file_hash(path: Path, alg: str = "sha256") -> str:
    """The ``alg`` digest (hex) of the file ``path``: :func:`hashlib.file_digest`."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, alg).hexdigest()

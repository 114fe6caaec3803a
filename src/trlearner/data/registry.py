"""The dataset registry: one place (``registry.yaml``) that says, for every dataset of the
paper, which files it needs, where they come from, how they are verified and split.

Example::

    >>> from trlearner.data.registry import get, names
    >>> "omniglot_small" in names()
    True
    >>> [f.name for f in get("omniglot_small").files]
    ['images_background_small1.zip', 'images_background_small2.zip']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from trlearner.util.yamlsafe import safe_load

SPLITS_PACKAGE = "trlearner.data"


@dataclass(frozen=True)
class FileSpec:
    """One published file: ``checksum`` is ``"md5:<hex>"``/``"sha256:<hex>"`` or None (none
    published: the sha256 of the first download is recorded, see ``trlearner.data.fetch``);
    ``max_ratio`` raises the decompression-bomb limit of ``trlearner.data.fetch.archives`` for a
    genuine archive that needs it (None: ``archives.MAX_RATIO``)."""

    name: str
    urls: tuple[str, ...] = ()
    checksum: str | None = None
    size: int | None = None
    extract: bool = False
    max_ratio: float | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # archive | generated | collection
    description: str = ""
    licence: str = ""
    size: str = ""
    converter: str | None = None
    converter_args: dict = field(default_factory=dict)
    cache_version: int = 1
    split: dict = field(default_factory=dict)
    files: tuple[FileSpec, ...] = ()
    manual: str | None = None
    members: tuple[str, ...] = ()

    def identity(self) -> dict:
        """What determines this dataset's content: the stage of DVC depends on exactly this."""
        return {
            "dataset": self.name,
            "cache_version": self.cache_version,
            "converter": self.converter,
            "converter_args": self.converter_args,
            "files": [{"name": f.name, "checksum": f.checksum} for f in self.files],
        }


def _parse(name: str, raw: dict) -> DatasetSpec:
    files = [FileSpec(name=f["name"], urls=tuple(f.get("urls") or ()), checksum=f.get("checksum"),
                      size=f.get("size"), extract=bool(f.get("extract", False)),
                      max_ratio=None if f.get("max_ratio") is None else float(f["max_ratio"]))
             for f in raw.get("files") or ()]
    gen = raw.get("files_from_split")
    if gen:  # one file per class of the split file (Meta-Dataset QuickDraw)
        classes = []
        for part in split_file(raw["split"]["file"]).values():
            classes.extend(part)
        files += [FileSpec(name=gen["name"].format(cls=c), urls=(gen["url"].format(cls=c.replace(" ", "%20")),))
                  for c in sorted(set(classes))]
    known = {"kind", "description", "licence", "size", "converter", "converter_args", "cache_version",
             "split", "files", "manual", "members", "files_from_split"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"registry entry {name!r}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
    return DatasetSpec(name=name, kind=raw["kind"], description=raw.get("description", ""),
                       licence=raw.get("licence", ""), size=str(raw.get("size", "")),
                       converter=raw.get("converter"), converter_args=dict(raw.get("converter_args") or {}),
                       cache_version=int(raw.get("cache_version", 1)), split=dict(raw.get("split") or {}),
                       files=tuple(files), manual=raw.get("manual"), members=tuple(raw.get("members") or ()))


def load_registry(path: str | Path | None = None) -> dict[str, DatasetSpec]:
    """Parse a registry YAML (default: the one shipped with the package)."""
    if path is None:
        text = resources.files(SPLITS_PACKAGE).joinpath("registry.yaml").read_text()
    else:
        text = Path(path).read_text()
    raw = safe_load(text, name=str(path or 'registry.yaml (package)'))
    return {name: _parse(name, entry) for name, entry in raw["datasets"].items()}


@lru_cache(maxsize=1)
def _default() -> dict[str, DatasetSpec]:
    return load_registry()


class override:
    """Temporarily replace or add registry entries (tests use it for fixture datasets)::

        with override(DatasetSpec(name="omniglot_small", ...)):
            fetch("omniglot_small")
    """

    def __init__(self, *specs: DatasetSpec):
        self.specs = specs
        self.saved: dict = {}

    def __enter__(self):
        reg = _default()
        for s in self.specs:
            self.saved.setdefault(s.name, reg.get(s.name))  # entered twice: still restores the original
            reg[s.name] = s
        return self

    def __exit__(self, *exc):
        reg = _default()
        for name, old in self.saved.items():
            if old is None:
                reg.pop(name, None)
            else:
                reg[name] = old
        return False


def names() -> list[str]:
    return list(_default())


def get(dataset: str | DatasetSpec) -> DatasetSpec:
    """The spec of ``dataset``; a DatasetSpec passes through (tests build their own)."""
    if isinstance(dataset, DatasetSpec):
        return dataset
    reg = _default()
    if dataset not in reg:
        raise KeyError(f"unknown dataset {dataset!r}; known datasets: {', '.join(reg)}")
    return reg[dataset]


def split_path(filename: str) -> Path:
    """Path of a split file shipped in ``trlearner/data/splits/`` (an absolute path is used as is)."""
    if Path(filename).is_absolute():
        return Path(filename)
    p = resources.files(SPLITS_PACKAGE).joinpath("splits", filename)
    if not p.is_file():
        raise FileNotFoundError(f"split file {filename!r} is not shipped in trlearner/data/splits/")
    return Path(str(p))


def split_file(filename: str) -> Any:
    """Contents of a shipped split file: JSON parsed, text as a list of lines."""
    p = split_path(filename)
    if p.suffix == ".json":
        return json.loads(p.read_text())
    return [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]

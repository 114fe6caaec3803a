"""The reference numbers (``reference.yaml`` of this package, next to this module): the
paper's known cells and the baselines' own published numbers, plus the dataset-to-family map
used by the tables. It ships inside the package (package data), so an installed wheel reads it
without a checkout.

Example:
    >>> ref = Reference.load()                      # the packaged reference.yaml
    >>> ref.paper_value("sinusoid", "5shot", "maml", "trlearner")["value"]
    0.4
    >>> ref.paper_value("sinusoid", "10shot", "maml", "trlearner") is None
    True
    >>> ref.family_of("omniglot"), ref.family_of("miniimagenet_cub")
    ('classification', 'cross_domain')
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from trlearner.engine.algorithms.names import ALGORITHMS  # no torch: the algorithms' table
from trlearner.util.yamlsafe import safe_load_file

REQUIRED_KEYS = ("dataset", "setting", "algorithm", "variant", "metric", "value", "source")
VARIANTS = ("baseline", "trlearner")


def default_reference_path() -> Path:
    """The packaged reference file, ``trlearner/report/reference.yaml`` (in a checkout:
    ``src/trlearner/report/reference.yaml``). A file on disk in every install this package
    supports (editable, wheel, ``--target``); not a zip import."""
    return Path(str(resources.files(__package__).joinpath("reference.yaml")))


@dataclass
class Reference:
    """Parsed reference file. ``paper`` and ``context`` are lists of entry dicts."""

    paper: list[dict[str, Any]] = field(default_factory=list)
    context: list[dict[str, Any]] = field(default_factory=list)
    families: dict[str, Any] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    display: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "Reference":
        """Read and validate a reference YAML file (default: :func:`default_reference_path`).

        Raises ``ValueError`` naming the entry and key for a malformed entry.
        """
        path = Path(path) if path is not None else default_reference_path()
        data = safe_load_file(path) or {}
        ref = cls(paper=list(data.get("paper") or []), context=list(data.get("context") or []),
                  families=dict(data.get("families") or {}),
                  aliases={str(k): str(v) for k, v in (data.get("aliases") or {}).items()},
                  display=dict(data.get("display") or {}))
        for section in ("paper", "context"):
            seen = set()
            for i, entry in enumerate(getattr(ref, section)):
                missing = [k for k in REQUIRED_KEYS if k not in entry]
                if missing:
                    raise ValueError(f"{path}: {section}[{i}] lacks {missing}")
                if entry["variant"] not in VARIANTS:
                    raise ValueError(f"{path}: {section}[{i}].variant={entry['variant']!r}, "
                                     f"allowed: {VARIANTS}")
                if not isinstance(entry["value"], (int, float)):
                    raise ValueError(f"{path}: {section}[{i}].value={entry['value']!r} is not a number")
                key = ref._key(entry["dataset"], entry["setting"], entry["algorithm"], entry["variant"])
                if key in seen:
                    raise ValueError(f"{path}: {section}[{i}] duplicates {key}")
                seen.add(key)
        return ref

    def canonical(self, dataset: str) -> str:
        """The reference spelling of a dataset name (via ``aliases``)."""
        return self.aliases.get(str(dataset), str(dataset))

    def _key(self, dataset: str, setting: str, algorithm: str, variant: str) -> tuple:
        return (self.canonical(dataset), str(setting), str(algorithm), str(variant))

    def _find(self, entries: list[dict[str, Any]], *key: str) -> dict[str, Any] | None:
        want = self._key(*key)
        for entry in entries:
            if self._key(entry["dataset"], entry["setting"], entry["algorithm"], entry["variant"]) == want:
                return entry
        return None

    def paper_value(self, dataset: str, setting: str, algorithm: str, variant: str) -> dict[str, Any] | None:
        """The TRLearner paper's entry for this cell, or None when the paper value is unknown."""
        return self._find(self.paper, dataset, setting, algorithm, variant)

    def context_value(self, dataset: str, setting: str, algorithm: str, variant: str = "baseline") -> dict[str, Any] | None:
        """The baseline authors' own published entry for this cell, or None."""
        return self._find(self.context, dataset, setting, algorithm, variant)

    def family_of(self, dataset: str) -> str:
        """Experiment family of a dataset: exact name in ``families.datasets``, then the first
        matching regular expression in ``families.patterns``, else ``"other"``."""
        name = self.canonical(dataset)
        for family, names in (self.families.get("datasets") or {}).items():
            if name in names or dataset in names:
                return family
        for family, patterns in (self.families.get("patterns") or {}).items():
            if any(re.search(p, str(dataset), re.IGNORECASE) for p in patterns):
                return family
        return "other"

    def family_order(self) -> list[str]:
        """Families in the order the report shows them."""
        return list(self.families.get("order") or ["other"])

    def family_title(self, family: str) -> str:
        """Human title of a family (its key when no title is configured)."""
        return (self.families.get("titles") or {}).get(family, family)

    def algorithm_label(self, algorithm: str) -> str:
        """Display name of an algorithm, its label in ``trlearner.engine.algorithms.names``
        (``tnet`` -> ``T-NET``); an unknown name as it is."""
        entry = ALGORITHMS.get(algorithm)
        return entry.label if entry else algorithm

    def algorithm_rank(self, algorithm: str) -> tuple[int, str]:
        """Sort key: the order of ``trlearner.engine.algorithms.names`` first, then alphabetical."""
        order = list(ALGORITHMS)
        return (order.index(algorithm) if algorithm in order else len(order), str(algorithm))

    def decimals(self, metric: str | None) -> int:
        """Decimals used to print values of a metric (3 when not configured)."""
        return int((self.display.get("decimals") or {}).get(metric, 3))

    @property
    def alpha(self) -> float:
        """Significance level of the paired test (default 0.05)."""
        return float(self.display.get("alpha", 0.05))

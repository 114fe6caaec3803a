"""Read run records (``metrics.json`` + ``provenance.json``) from a results folder.

The report never trains and never invents a number: every value it prints comes from a
``metrics.json`` read here. A run folder without a readable ``metrics.json`` is kept as a
*failed* run (with the path of its log), so the report can say why a cell is empty.

Example:
    >>> import tempfile, json, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> d = root / "sinusoid/5shot/maml/baseline/seed0"; d.mkdir(parents=True)
    >>> _ = (d / "metrics.json").write_text(json.dumps({"dataset": "sinusoid",
    ...     "algorithm": "maml", "variant": "baseline", "shots": 5, "ways": None, "seed": 0,
    ...     "metric": "mse", "higher_is_better": False, "mean": 0.5, "ci95": 0.1,
    ...     "n_tasks": 2, "per_task": [0.4, 0.6], "status": "ok", "wall_time_s": 3.0,
    ...     "protocol": {"reduced": False, "preset": "default"}}))
    >>> runs = load_runs(root, relative_to=root)
    >>> print(*runs.loc[0, ["dataset", "setting", "algorithm", "variant", "seed", "status", "mean"]])
    sinusoid 5shot maml baseline 0 ok 0.5
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

#: Columns of the frame returned by :func:`load_runs`, in order.
RUN_COLUMNS = [
    "dataset", "setting", "algorithm", "variant", "seed", "status", "metric",
    "higher_is_better", "unit", "mean", "ci95", "n_tasks", "per_task", "episodes_hash",
    "reduced", "preset", "wall_time_s", "diverged_at", "message", "path", "log", "provenance",
]


def setting_name(shots: Any, ways: Any) -> str:
    """The setting key of a run: ``"{shots}shot"`` (regression) or ``"{ways}way{shots}shot"``.

    >>> setting_name(5, None), setting_name(1, 5)
    ('5shot', '5way1shot')
    """
    if ways in (None, "", 0):
        return f"{shots}shot"
    return f"{ways}way{shots}shot"


def _display_path(path: Path, relative_to: str | os.PathLike | None) -> str:
    base = Path(relative_to) if relative_to is not None else Path.cwd()
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()


def _key_from_path(run_dir: Path, root: Path) -> dict[str, Any]:
    """dataset/setting/algorithm/variant/seed from ``.../{dataset}/{setting}/{alg}/{variant}/seed{N}``."""
    parts = run_dir.relative_to(root).parts
    key: dict[str, Any] = {"dataset": None, "setting": None, "algorithm": None,
                           "variant": None, "seed": None}
    if len(parts) >= 5:
        dataset, setting, algorithm, variant, seed = parts[-5:]
        key.update(dataset=dataset, setting=setting, algorithm=algorithm, variant=variant)
        if seed.startswith("seed") and seed[4:].lstrip("-").isdigit():
            key["seed"] = int(seed[4:])
    return key


def _accuracy_scale(metrics: dict[str, Any]) -> tuple[float, str]:
    """Accuracy is reported in percent. metrics.json may say its unit ("fraction" or
    "percent"); without one, an accuracy whose mean and per-task values all lie in [0, 1] is
    read as a fraction (a 5-way accuracy of at most 1 % is not a realistic result)."""
    unit = metrics.get("unit")
    if metrics.get("metric") != "accuracy":
        return 1.0, unit or str(metrics.get("metric"))
    if unit == "percent":
        return 1.0, "percent"
    if unit == "fraction":
        return 100.0, "percent"
    values = [metrics.get("mean")] + list(metrics.get("per_task") or [])
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if finite and all(0.0 <= v <= 1.0 for v in finite):
        return 100.0, "percent"
    return 1.0, "percent"


def _diverged_at(metrics: dict[str, Any]) -> Any:
    for key in ("diverged_at_iteration", "diverged_at", "divergence_iteration"):
        if metrics.get(key) is not None:
            return metrics[key]
    div = metrics.get("divergence")
    if isinstance(div, dict) and div.get("iteration") is not None:
        return div["iteration"]
    return None


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_run(run_dir: str | os.PathLike, root: str | os.PathLike,
             relative_to: str | os.PathLike | None = None) -> dict[str, Any]:
    """One run folder as a dict with the keys of :data:`RUN_COLUMNS`.

    ``status`` is ``ok`` or ``diverged`` (from metrics.json), or ``failed`` when the folder
    has no readable metrics.json. Accuracies are converted to percent (see ``unit``).
    """
    run_dir, root = Path(run_dir), Path(root)
    metrics_path = run_dir / "metrics.json"
    log_path = run_dir / "log.txt"
    row: dict[str, Any] = {c: None for c in RUN_COLUMNS}
    row.update(_key_from_path(run_dir, root))
    row.update(path=_display_path(run_dir, relative_to),
               log=_display_path(log_path, relative_to) if log_path.exists() else None,
               per_task=(), provenance={}, reduced=False, mean=math.nan, ci95=math.nan)
    prov_path = run_dir / "provenance.json"
    if prov_path.exists():
        try:
            row["provenance"] = json.loads(prov_path.read_text())
        except (OSError, ValueError):
            row["provenance"] = {}
    try:
        metrics = json.loads(metrics_path.read_text())
        if not isinstance(metrics, dict):
            raise ValueError("metrics.json is not an object")
    except FileNotFoundError:
        row.update(status="failed", message="no metrics.json")
        return row
    except (OSError, ValueError) as err:
        row.update(status="failed", message=f"unreadable metrics.json ({type(err).__name__})")
        return row

    scale, unit = _accuracy_scale(metrics)
    protocol = metrics.get("protocol") or {}
    for key in ("dataset", "algorithm", "variant"):
        if metrics.get(key) is not None:
            row[key] = str(metrics[key])
    if metrics.get("seed") is not None:
        row["seed"] = int(metrics["seed"])
    if metrics.get("setting"):
        row["setting"] = str(metrics["setting"])
    elif metrics.get("shots") is not None:
        row["setting"] = setting_name(metrics.get("shots"), metrics.get("ways"))
    status = str(metrics.get("status", "ok"))
    row.update(
        status=status if status in ("ok", "diverged") else "failed",
        metric=metrics.get("metric"),
        higher_is_better=bool(metrics.get("higher_is_better", metrics.get("metric") != "mse")),
        unit=unit,
        mean=_num(metrics.get("mean")) * scale,
        ci95=_num(metrics.get("ci95")) * scale,
        n_tasks=metrics.get("n_tasks"),
        per_task=tuple(_num(v) * scale for v in (metrics.get("per_task") or ())),
        episodes_hash=metrics.get("episodes_hash"),
        reduced=bool(protocol.get("reduced", False)),
        preset=protocol.get("preset"),
        wall_time_s=_num(metrics.get("wall_time_s")),
        diverged_at=_diverged_at(metrics),
        message=metrics.get("status_message") or metrics.get("message"),
    )
    if status not in ("ok", "diverged"):
        row["message"] = f"status {status!r} in metrics.json"
    if row["status"] == "ok" and not math.isfinite(row["mean"]):
        # A non-finite mean is never shown as a number.
        row.update(status="diverged", message=row["message"] or "non-finite mean in metrics.json")
    return row


def expand_multi_source(row: dict[str, Any], metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The report rows of one run: the run's row, or for a multi-source Meta-Dataset run
    (dataset ``metadataset``) one row per report cell (``trlearner.protocols.metadataset_cells``):
    ``overall`` and ``ood`` (metrics.json ``summary``) and every source (``sources``), each with
    its own mean, CI, per-task values and episode hash. A failed or diverged multi-source run
    gives ``overall`` and ``ood`` rows with its status, so those cells say why they are empty."""
    from trlearner.protocols import METADATASET_PER_SOURCE, METADATASET_SUMMARIES, per_source_setting

    if row.get("dataset") != "metadataset":
        return [row]
    summary = (metrics or {}).get("summary")
    sources = (metrics or {}).get("sources")
    if row["status"] != "ok" or not summary or not sources:
        return [{**row, "setting": name} for name in METADATASET_SUMMARIES]
    scale, _ = _accuracy_scale({"metric": metrics.get("metric"), "unit": metrics.get("unit")})
    out = []

    def cell(dataset, setting, names, mean, ci95):
        per_task = tuple(_num(v) * scale for n in names for v in sources[n]["per_task"])
        digest = "+".join(str(sources[n].get("episodes_hash")) for n in names)
        return {**row, "dataset": dataset, "setting": setting, "mean": _num(mean) * scale,
                "ci95": _num(ci95) * scale, "n_tasks": len(per_task), "per_task": per_task,
                "episodes_hash": digest}

    for name in METADATASET_SUMMARIES:
        s = summary.get(name)
        if s:
            out.append(cell("metadataset", name, s["sources"], s["mean"], s["ci95"]))
    for name, src in sources.items():
        setting = per_source_setting(name, src.get("role") == "heldout")
        out.append(cell(METADATASET_PER_SOURCE, setting, [name], src["mean"], src["ci95"]))
    return out


def _metrics_of(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_runs(results_dir: str | os.PathLike,
              relative_to: str | os.PathLike | None = None) -> pd.DataFrame:
    """All runs under ``results_dir`` as a DataFrame with :data:`RUN_COLUMNS`, sorted.

    A run folder is any folder holding ``metrics.json``, ``provenance.json`` or ``log.txt``.
    Paths in the ``path`` and ``log`` columns are relative to ``relative_to`` (default: the
    current directory). A missing ``results_dir`` gives an empty frame.
    """
    root = Path(results_dir)
    dirs: set[Path] = set()
    if root.is_dir():
        for name in ("metrics.json", "provenance.json", "log.txt"):
            dirs.update(p.parent for p in root.rglob(name))
    rows = [r for d in sorted(dirs)
            for r in expand_multi_source(read_run(d, root, relative_to), _metrics_of(d))]
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    if frame.empty:
        return frame
    frame = frame[frame["dataset"].notna() & frame["algorithm"].notna()].copy()
    frame["seed"] = frame["seed"].astype("Int64")
    return frame.sort_values(["dataset", "setting", "algorithm", "variant", "seed", "path"],
                             na_position="last").reset_index(drop=True)

"""Read run records (``metrics.json`` + ``provenance.json``) from a results folder.

The report never trains and never invents a number: every value it prints comes from a
``metrics.json`` read here. A run folder without a readable ``metrics.json`` is kept as a
*failed* run (with the path of its log), so the report can say why a cell is empty. A
``metrics.json`` that breaks the schema (:mod:`trlearner.run.records.schema`) makes an *invalid*
run: never counted, and named with its problems by :func:`scan_runs`. One run is counted
once: a copy of a run folder (same key, same results) is skipped as a duplicate, and two
folders claiming the same seed with different results are both skipped as a conflict.

Example:
    >>> import tempfile, json, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> d = root / "sinusoid/5shot/maml/baseline/seed0"; d.mkdir(parents=True)
    >>> _ = (d / "metrics.json").write_text(json.dumps({"dataset": "sinusoid",
    ...     "algorithm": "maml", "variant": "baseline", "shots": 5, "ways": None, "seed": 0,
    ...     "metric": "mse", "higher_is_better": False, "mean": 0.5, "ci95": 0.196,
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .schema import VARIANTS, is_integer, validate_metrics

#: Columns of the frame returned by :func:`load_runs`, in order.
RUN_COLUMNS = [
    "dataset", "setting", "algorithm", "variant", "seed", "status", "metric",
    "higher_is_better", "unit", "mean", "ci95", "n_tasks", "per_task", "episodes_hash",
    "reduced", "preset", "wall_time_s", "diverged_at", "message", "path", "log", "provenance",
    "code", "run",
]
#: Columns of :attr:`RunScan.skipped`.
SKIPPED_COLUMNS = ["path", "kind", "reason"]


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
    if isinstance(value, bool):  # JSON true is not 1.0
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def code_version(prov: dict[str, Any]) -> str | None:
    """The code a run was made with, from its provenance: the git commit (``+dirty`` for a
    modified tree) and the package's code hash when one is recorded; None when neither is.

    >>> code_version({"git_commit": "a46f11d", "git_dirty": True})
    'a46f11d+dirty'
    >>> code_version({"git_commit": "a46f11d", "git_dirty": False, "code_hash": "c0de"})
    'a46f11d code c0de'
    """
    commit = prov.get("git_commit") or prov.get("commit")
    code_hash = prov.get("code_hash") or prov.get("source_hash")
    if not commit and not code_hash:
        return None
    text = f"{commit}{'+dirty' if prov.get('git_dirty') else ''}" if commit else "no commit"
    return f"{text} code {code_hash}" if code_hash else text


def _relative(run_dir: Path, root: Path) -> str:
    try:
        return run_dir.relative_to(root).as_posix()
    except ValueError:
        return run_dir.as_posix()


def stored_figures_problems(metrics: dict[str, Any]) -> list[str]:
    """Why the stored ``mean``/``ci95`` of a metrics.json are not those of its ``per_task``
    values (``1.96 sd / sqrt(n)``, sample sd: :func:`trlearner.run.results.summarise`), or
    ``[]``. The report never trusts a stored figure it can recompute (an edited ``ci95`` of
    0.0001 was printed as is); multi-source runs, whose figures are per source, are checked there.

    Example:
        >>> stored_figures_problems({"status": "ok", "dataset": "sinusoid", "mean": 2.0, "ci95": 0.0001,
        ...                          "per_task": [1.0, 3.0]})
        ['stored ci95 0.0001 is not that of its per-task values (1.96); a tampered or corrupt record']
    """
    if metrics.get("status") != "ok" or metrics.get("dataset") == "metadataset":
        return []
    values = metrics.get("per_task") or []
    if len(values) < 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return []
    n = len(values)
    mean = math.fsum(v / n for v in values)  # v / n first: values near 1e308 do not overflow
    scale = max(abs(v - mean) for v in values) or 1.0
    half = 1.96 * scale * math.sqrt(math.fsum(((v - mean) / scale) ** 2 for v in values) / (n - 1)) / math.sqrt(n)
    problems = []
    for key, want in (("mean", mean), ("ci95", half)):
        have = metrics.get(key)  # within 0.1 %: a record rounded to 4 digits is not refused
        if isinstance(have, (int, float)) and not math.isclose(have, want, rel_tol=1e-3, abs_tol=1e-9):
            problems.append(f"stored {key} {have:.4g} is not that of its per-task values ({want:.4g}); "
                            f"a tampered or corrupt record")
    return problems


def read_run(run_dir: str | os.PathLike, root: str | os.PathLike,
             relative_to: str | os.PathLike | None = None) -> dict[str, Any]:
    """One run folder as a dict with the keys of :data:`RUN_COLUMNS`.

    ``status`` is ``ok`` or ``diverged`` (from metrics.json), ``failed`` when the folder has
    no readable metrics.json, or ``invalid`` when its metrics.json breaks the schema
    (``message`` lists the problems). Accuracies are converted to percent (see ``unit``).
    """
    return _read(Path(run_dir), Path(root), relative_to)[0]


def _read(run_dir: Path, root: Path, relative_to) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(row, parsed metrics.json or None) of one run folder (see :func:`read_run`)."""
    metrics_path = run_dir / "metrics.json"
    log_path = run_dir / "log.txt"
    row: dict[str, Any] = {c: None for c in RUN_COLUMNS}
    row.update(_key_from_path(run_dir, root))
    row.update(path=_display_path(run_dir, relative_to), run=_relative(run_dir, root),
               log=_display_path(log_path, relative_to) if log_path.exists() else None,
               per_task=(), provenance={}, reduced=False, mean=math.nan, ci95=math.nan)
    prov_path = run_dir / "provenance.json"
    if prov_path.exists():
        try:
            prov = json.loads(prov_path.read_text())
        except (OSError, ValueError):
            prov = {}
        row["provenance"] = prov if isinstance(prov, dict) else {}
    row["code"] = code_version(row["provenance"])
    try:
        metrics = json.loads(metrics_path.read_text())
    except FileNotFoundError:
        row.update(status="failed", message="no metrics.json")
        return row, None
    except (OSError, ValueError) as err:
        row.update(status="failed", message=f"unreadable metrics.json ({type(err).__name__}: {err})")
        return row, None
    problems = validate_metrics(metrics) or stored_figures_problems(metrics)
    if problems:
        if isinstance(metrics, dict):  # the key fields that are valid name the cell
            for key in ("dataset", "algorithm"):
                if isinstance(metrics.get(key), str) and metrics[key]:
                    row[key] = metrics[key]
            if metrics.get("variant") in VARIANTS:
                row["variant"] = metrics["variant"]
            if is_integer(metrics.get("seed")):
                row["seed"] = int(metrics["seed"])
            shots, ways = metrics.get("shots"), metrics.get("ways")
            if isinstance(metrics.get("setting"), str) and metrics["setting"]:
                row["setting"] = metrics["setting"]
            elif is_integer(shots) and (ways is None or is_integer(ways)):
                row["setting"] = setting_name(int(shots), None if ways is None else int(ways))
        row.update(status="invalid", message="invalid metrics.json: " + "; ".join(problems))
        return row, None

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
    status = metrics["status"]
    row.update(
        status=status,
        metric=metrics["metric"],
        higher_is_better=metrics["higher_is_better"],
        unit=unit,
        mean=_num(metrics.get("mean")) * scale,
        ci95=_num(metrics.get("ci95")) * scale,
        n_tasks=metrics.get("n_tasks"),
        per_task=tuple(_num(v) * scale for v in (metrics.get("per_task") or ())),
        episodes_hash=metrics.get("episodes_hash"),
        reduced=protocol["reduced"],
        preset=protocol.get("preset"),
        wall_time_s=_num(metrics.get("wall_time_s")),
        diverged_at=_diverged_at(metrics),
        message=metrics.get("status_message") or metrics.get("message"),
    )
    if row["status"] == "ok" and not math.isfinite(row["mean"]):
        # A non-finite mean is never shown as a number.
        row.update(status="diverged", message=row["message"] or "non-finite mean in metrics.json")
    return row, metrics


def expand_multi_source(row: dict[str, Any], metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The report rows of one run: the run's row, or for a multi-source Meta-Dataset run
    (dataset ``metadataset``) one row per report cell (``trlearner.run.protocols.metadataset_cells``):
    ``overall`` and ``ood`` (metrics.json ``summary``) and every source (``sources``), each with
    its own mean, CI, per-task values and episode hash. A failed or diverged multi-source run
    gives ``overall`` and ``ood`` rows with its status, so those cells say why they are empty."""
    from trlearner.run.protocols import METADATASET_PER_SOURCE, METADATASET_SUMMARIES, per_source_setting

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


@dataclass
class RunScan:
    """What :func:`scan_runs` found: ``runs`` (DataFrame with :data:`RUN_COLUMNS`: every run
    that names a cell, counted or not) and ``skipped`` (DataFrame with
    :data:`SKIPPED_COLUMNS`: every run folder left out, with ``kind`` ``invalid``,
    ``duplicate`` or ``conflict`` and the reason, sorted by path)."""

    runs: pd.DataFrame
    skipped: pd.DataFrame


def _fingerprint(row: dict[str, Any]) -> str:
    """The results of a run, as text (NaN compares equal to NaN here)."""
    return repr(((row.get("provenance") or {}).get("config_hash"), row["status"], row["mean"],
                 tuple(row["per_task"]), row["episodes_hash"]))


def _canonical_first(row: dict[str, Any], root: Path) -> tuple:
    """Sort key preferring the folder at the pipeline's own path for the run's key, then the
    shortest path: the copy kept among duplicates."""
    own = f"{row['dataset']}/{row['setting']}/{row['algorithm']}/{row['variant']}/seed{row['seed']}"
    rel = Path(row["_dir"]).relative_to(root).as_posix()
    return (rel != own, rel.count("/"), rel)


def deduplicate(rows: list[dict[str, Any]], root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Count one run once. Returns (rows kept, skipped entries).

    The identity of a run is its key (dataset, setting, algorithm, variant, seed): a cell
    counts each seed once. Folders with the same key and the same results (provenance
    ``config_hash``, status, mean, per-task values, ``episodes_hash``) are copies: the one at
    the pipeline's path (else the shortest path) is kept, the others are skipped as
    duplicates. Folders with the same key and different results are a conflict: none is
    counted (each becomes ``invalid``). Within a cell, an ok run whose per-task values
    (two or more) equal another seed's is a copy with an edited seed: skipped as a duplicate.
    """
    skipped: list[dict[str, Any]] = []
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] in ("ok", "diverged"):
            key = (row["dataset"], row["setting"], row["algorithm"], row["variant"], row["seed"])
            groups.setdefault(key, []).append(row)
    drop: set[int] = set()
    for key, group in groups.items():
        if len(group) < 2:
            continue
        group = sorted(group, key=lambda r: _canonical_first(r, root))
        first_of: dict[str, dict[str, Any]] = {}
        for row in group:
            same = first_of.setdefault(_fingerprint(row), row)
            if same is not row:
                drop.add(id(row))
                skipped.append(dict(path=row["path"], kind="duplicate",
                                    reason=f"copy of {same['path']} (same seed and results): counted once"))
        if len(first_of) > 1:
            kept = list(first_of.values())
            for row in kept:
                others = ", ".join(r["path"] for r in kept if r is not row)
                row.update(status="invalid",
                           message=f"conflicts with {others}: same seed {key[4]}, different results; "
                                   "keep one of these folders")
                skipped.append(dict(path=row["path"], kind="conflict", reason=row["message"]))
    cells: dict[tuple, dict[tuple, dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: _canonical_first(r, root)):
        if row["status"] == "ok" and id(row) not in drop and len(row["per_task"]) >= 2:
            seen = cells.setdefault((row["dataset"], row["setting"], row["algorithm"], row["variant"]), {})
            other = seen.setdefault(tuple(row["per_task"]), row)
            if other is not row:
                drop.add(id(row))
                skipped.append(dict(path=row["path"], kind="duplicate",
                                    reason=f"same per-task values as {other['path']} (seed {other['seed']}): "
                                           f"a copy of that run, not seed {row['seed']}"))
    return [r for r in rows if id(r) not in drop], skipped


def scan_runs(results_dir: str | os.PathLike,
              relative_to: str | os.PathLike | None = None) -> RunScan:
    """Every run folder under ``results_dir``: the runs that name a cell and the ones left out.

    A run folder is any folder holding ``metrics.json``, ``provenance.json`` or ``log.txt``.
    Each metrics.json is checked against the schema (:func:`trlearner.run.records.schema.validate_metrics`);
    an invalid one is never counted and is listed in ``skipped`` with its problems (and kept
    in ``runs`` with status ``invalid`` when its key is known, so its cell says why it is
    empty). Copies are counted once (:func:`deduplicate`). Paths in ``path``, ``log`` and
    ``skipped`` are relative to ``relative_to`` (default: the current directory). A missing
    ``results_dir`` gives empty frames.

    Arguments:
        results_dir: the folder of run folders (the pipeline's ``results/runs``).
        relative_to: base of the printed paths.

    Returns:
        A :class:`RunScan`.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "x").mkdir(); _ = (root / "x" / "metrics.json").write_text('{"mean": 0.001}')
        >>> scan = scan_runs(root, relative_to=root)
        >>> len(scan.runs), scan.skipped.loc[0, "path"], scan.skipped.loc[0, "kind"]
        (0, 'x', 'invalid')
    """
    root = Path(results_dir)
    dirs: set[Path] = set()
    if root.is_dir():
        for name in ("metrics.json", "provenance.json", "log.txt"):
            dirs.update(p.parent for p in root.rglob(name))
    rows, metrics_of, skipped = [], {}, []
    for d in sorted(dirs):
        row, metrics = _read(d, root, relative_to)
        row["_dir"] = d
        metrics_of[id(row)] = metrics
        rows.append(row)
    rows, skipped = deduplicate(rows, root)
    out = []
    for row in rows:
        if row["status"] == "invalid" and not row["message"].startswith("conflicts with"):
            skipped.append(dict(path=row["path"], kind="invalid", reason=row["message"]))
        elif row["status"] == "failed" and str(row["message"]).startswith("unreadable"):
            skipped.append(dict(path=row["path"], kind="unreadable", reason=row["message"]))
        try:
            expanded = expand_multi_source(row, metrics_of[id(row)])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            row.update(status="invalid", message=f"invalid metrics.json: {type(err).__name__}: {err}")
            skipped.append(dict(path=row["path"], kind="invalid", reason=row["message"]))
            expanded = [row]
        out += [{k: v for k, v in r.items() if k != "_dir"} for r in expanded]
    skipped_frame = pd.DataFrame(sorted(skipped, key=lambda e: (e["path"], e["kind"])),
                                 columns=SKIPPED_COLUMNS)
    frame = pd.DataFrame(out, columns=RUN_COLUMNS)
    if frame.empty:
        return RunScan(frame, skipped_frame)
    named = frame[["dataset", "setting", "algorithm", "variant"]].notna().all(axis=1)
    frame = frame[named].copy()
    frame["seed"] = frame["seed"].astype("Int64")
    frame = frame.sort_values(["dataset", "setting", "algorithm", "variant", "seed", "path"],
                              na_position="last").reset_index(drop=True)
    return RunScan(frame, skipped_frame)


def load_runs(results_dir: str | os.PathLike,
              relative_to: str | os.PathLike | None = None) -> pd.DataFrame:
    """All runs under ``results_dir`` as a DataFrame with :data:`RUN_COLUMNS`, sorted: the
    ``runs`` of :func:`scan_runs` (duplicates left out, invalid runs with status ``invalid``).

    Paths in the ``path`` and ``log`` columns are relative to ``relative_to`` (default: the
    current directory). A missing ``results_dir`` gives an empty frame.
    """
    return scan_runs(results_dir, relative_to).runs

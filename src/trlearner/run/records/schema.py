"""The schema a run's ``metrics.json`` must satisfy before the report counts it.

Explicit checks (one message per problem, naming the field), not a silent coercion: a run
whose file breaks one of them is skipped, and the report names its path and the problem
(docs/REPORT_FORMAT.md, "Inputs"). The fields are those ``trlearner train`` writes
(``trlearner.run.results.METRICS_FIELDS``, docs/CONTRACTS.md):

=================== ======================================================================
field               rule
=================== ======================================================================
dataset, algorithm  non-empty string
variant             ``"baseline"`` or ``"trlearner"``
seed                integer (not a boolean)
shots / ways        integer >= 1 / integer >= 2, or null; a run without ``shots`` needs a
                    string ``setting``
metric              ``"mse"``, ``"accuracy"`` or ``"r2"``
higher_is_better    boolean, and the metric's own direction (mse: false; accuracy, r2: true)
unit                null or a string; for accuracy ``"fraction"`` or ``"percent"``
status              ``"ok"`` or ``"diverged"``
protocol            object; ``protocol.reduced`` boolean
episodes_hash       string or null
wall_time_s         number >= 0 or null
``status: ok``      ``mean`` a number (null or non-finite: read as diverged), ``ci95`` a
                    number >= 0 or null, ``n_tasks`` integer >= 1, ``per_task`` a list of
                    ``n_tasks`` finite numbers whose mean is ``mean`` (to 1e-5; Meta-Dataset
                    runs average per source instead); Meta-Dataset runs (``dataset:
                    metadataset``) also ``sources`` and ``summary.overall``
=================== ======================================================================

"Number" excludes booleans: JSON ``true`` is not 1.0.

Example:
    >>> validate_metrics({"mean": 0.001})[:3]
    ['dataset: missing', 'algorithm: missing', 'variant: missing']
    >>> ok = {"dataset": "sinusoid", "algorithm": "maml", "variant": "baseline", "seed": 0,
    ...       "shots": 5, "ways": None, "metric": "mse", "higher_is_better": False,
    ...       "status": "ok", "mean": 0.5, "ci95": 0.1, "n_tasks": 2, "per_task": [0.4, 0.6],
    ...       "protocol": {"reduced": False}, "episodes_hash": "e", "wall_time_s": 1.0}
    >>> validate_metrics(ok)
    []
    >>> validate_metrics({**ok, "higher_is_better": "false"})
    ["higher_is_better: 'false' is not a boolean"]
"""

from __future__ import annotations

import math
from typing import Any

#: Metrics a run may report, with their direction (``higher_is_better``). A test checks this
#: against ``trlearner.engine.algorithms.base.METRICS``.
METRIC_DIRECTION = {"mse": False, "accuracy": True, "r2": True}
STATUSES = ("ok", "diverged")
VARIANTS = ("baseline", "trlearner")
ACCURACY_UNITS = ("fraction", "percent")
#: Tolerance of ``mean`` against the mean of ``per_task`` (per-task values are rounded to
#: 6 decimals when written).
MEAN_TOLERANCE = 1e-5



def _bad(m: dict, key: str, allowed: str) -> str:
    """The problem of a required key: missing, or its value is not ``allowed``."""
    return f"{key}: {m[key]!r} is not {allowed}" if key in m else f"{key}: missing"

def is_number(value: Any) -> bool:
    """A JSON number (int or float, not a boolean).

    >>> is_number(1.0), is_number(True), is_number("1")
    (True, False, False)
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """A JSON integer (not a boolean; ``2.0`` is accepted as 2).

    >>> is_integer(2), is_integer(2.0), is_integer(2.5), is_integer(False)
    (True, True, False, False)
    """
    return is_number(value) and math.isfinite(value) and float(value).is_integer()


def _number_list(name: str, values: Any, finite: bool) -> list[str]:
    if not isinstance(values, list):
        return [f"{name}: {values!r} is not a list" if values is not None else f"{name}: missing"]
    for i, v in enumerate(values):
        if not is_number(v) or (finite and not math.isfinite(v)):
            return [f"{name}[{i}]: {v!r} is not a {'finite ' if finite else ''}number"]
    return []


def _ok_values(m: dict[str, Any], multi_source: bool) -> list[str]:
    """Checks of a run whose status is ``ok`` and whose mean is a finite number."""
    problems = []
    ci = m.get("ci95")
    if ci is not None and not (is_number(ci) and (ci >= 0 or math.isnan(ci))):
        problems.append(f"ci95: {ci!r} is not a number >= 0 or null")
    n = m.get("n_tasks")
    if not (is_integer(n) and n >= 1):
        problems.append(f"n_tasks: {n!r} is not an integer >= 1" if "n_tasks" in m else "n_tasks: missing")
    per_task = m.get("per_task")
    bad = _number_list("per_task", per_task, finite=True)
    problems += bad
    if not bad and is_integer(n) and len(per_task) != n:
        problems.append(f"per_task: {len(per_task)} values, but n_tasks is {n}")
    if not bad and per_task and not multi_source:
        mean = sum(per_task) / len(per_task)
        if abs(mean - m["mean"]) > MEAN_TOLERANCE * max(1.0, abs(mean)):
            problems.append(f"mean: {m['mean']!r} is not the mean of per_task ({mean:.6g})")
    if multi_source:
        problems += _multi_source(m)
    return problems


def _multi_source(m: dict[str, Any]) -> list[str]:
    """``sources`` and ``summary`` of a multi-source Meta-Dataset run (docs/CONTRACTS.md)."""
    sources, summary = m.get("sources"), m.get("summary")
    if not isinstance(sources, dict) or not sources:
        return [f"sources: {sources!r} is not a non-empty object (a metadataset run needs one)"]
    problems = []
    for name, src in sorted(sources.items()):
        if not isinstance(src, dict):
            problems.append(f"sources.{name}: not an object")
            continue
        if src.get("role") not in ("train", "heldout"):
            problems.append(f"sources.{name}.role: {src.get('role')!r} is not 'train' or 'heldout'")
        if not (is_number(src.get("mean")) and math.isfinite(src["mean"])):
            problems.append(f"sources.{name}.mean: {src.get('mean')!r} is not a finite number")
        ci = src.get("ci95")
        if ci is not None and not is_number(ci):
            problems.append(f"sources.{name}.ci95: {ci!r} is not a number or null")
        problems += _number_list(f"sources.{name}.per_task", src.get("per_task"), finite=True)
    if not isinstance(summary, dict) or not isinstance(summary.get("overall"), dict):
        return problems + ["summary.overall: missing (a metadataset run needs one)"]
    for key, part in sorted(summary.items()):
        if not isinstance(part, dict):
            problems.append(f"summary.{key}: not an object")
            continue
        if not (is_number(part.get("mean")) and math.isfinite(part["mean"])):
            problems.append(f"summary.{key}.mean: {part.get('mean')!r} is not a finite number")
        names = part.get("sources")
        if not isinstance(names, list) or not names or any(n not in sources for n in names):
            problems.append(f"summary.{key}.sources: {names!r} does not name sources of 'sources'")
    return problems


def validate_metrics(m: Any) -> list[str]:
    """Every problem of a parsed ``metrics.json`` against the schema above, in field order.

    Arguments:
        m: the parsed JSON (any type).

    Returns:
        A list of messages ``"<field>: <problem>"``; empty when the run can be counted.

    Example:
        >>> validate_metrics([1, 2])
        ['metrics.json is a list, not an object']
    """
    if not isinstance(m, dict):
        return [f"metrics.json is a {type(m).__name__}, not an object"]
    problems = []
    for key in ("dataset", "algorithm"):
        if key not in m:
            problems.append(f"{key}: missing")
        elif not (isinstance(m[key], str) and m[key]):
            problems.append(f"{key}: {m[key]!r} is not a non-empty string")
    if m.get("variant") not in VARIANTS:
        problems.append(f"variant: {m['variant']!r} is not one of {list(VARIANTS)}" if "variant" in m
                        else "variant: missing")
    if not is_integer(m.get("seed")):
        problems.append(f"seed: {m['seed']!r} is not an integer" if "seed" in m else "seed: missing")
    shots, ways = m.get("shots"), m.get("ways")
    if shots is not None and not (is_integer(shots) and shots >= 1):
        problems.append(f"shots: {shots!r} is not an integer >= 1 or null")
    if ways is not None and not (is_integer(ways) and ways >= 2):
        problems.append(f"ways: {ways!r} is not an integer >= 2 or null")
    if "setting" in m and not (isinstance(m["setting"], str) and m["setting"]):
        problems.append(f"setting: {m['setting']!r} is not a non-empty string")
    if shots is None and not isinstance(m.get("setting"), str):
        problems.append("shots: missing (and no 'setting')")
    metric = m.get("metric")
    if metric not in METRIC_DIRECTION:
        problems.append(_bad(m, "metric", f"one of {sorted(METRIC_DIRECTION)}"))
    hib = m.get("higher_is_better")
    if not isinstance(hib, bool):
        problems.append(_bad(m, "higher_is_better", "a boolean"))
    elif metric in METRIC_DIRECTION and hib != METRIC_DIRECTION[metric]:
        problems.append(f"higher_is_better: {hib} contradicts metric {metric!r} "
                        f"({'higher' if METRIC_DIRECTION[metric] else 'lower'} is better)")
    unit = m.get("unit")
    if unit is not None and not isinstance(unit, str):
        problems.append(f"unit: {unit!r} is not a string or null")
    elif metric == "accuracy" and unit is not None and unit not in ACCURACY_UNITS:
        problems.append(f"unit: {unit!r} is not one of {list(ACCURACY_UNITS)} for accuracy")
    status = m.get("status")
    if status not in STATUSES:
        problems.append(_bad(m, "status", f"one of {list(STATUSES)}"))
    protocol = m.get("protocol")
    if not isinstance(protocol, dict):
        problems.append(_bad(m, "protocol", "an object"))
    elif not isinstance(protocol.get("reduced"), bool):
        problems.append(f"protocol.reduced: {protocol.get('reduced')!r} is not a boolean")
    if m.get("episodes_hash") is not None and not isinstance(m["episodes_hash"], str):
        problems.append(f"episodes_hash: {m['episodes_hash']!r} is not a string or null")
    wall = m.get("wall_time_s")
    if wall is not None and not (is_number(wall) and wall >= 0):
        problems.append(f"wall_time_s: {wall!r} is not a number >= 0 or null")
    mean = m.get("mean")
    if "mean" not in m:
        problems.append("mean: missing")
    elif mean is not None and not is_number(mean):
        problems.append(f"mean: {mean!r} is not a number or null")
    elif status == "ok" and mean is not None and math.isfinite(mean):
        problems += _ok_values(m, multi_source=m.get("dataset") == "metadataset")
    return problems

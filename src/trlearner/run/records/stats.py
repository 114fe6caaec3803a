"""Aggregation over seeds and the paired TRLearner - baseline effect (pandas + scipy.stats).

Formulas (also in docs/REPORT_FORMAT.md):

* Cell (dataset, setting, algorithm, variant) with ``n >= 2`` seeds whose status is ``ok``:
  ``mean = (1/n) sum_s m_s`` over the run means ``m_s``, and the 95 % CI half-width
  ``t_{0.975, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation (ddof = 1) of the
  ``m_s`` (Student-t over seeds; ``scipy.stats.t.ppf`` and ``scipy.stats.sem``).
* With ``n = 1`` seed the CI is the run's own ``ci95`` from metrics.json
  (``1.96 sigma / sqrt(n_tasks)`` over test tasks); ``ci_kind`` says ``"tasks (1 seed)"``.
* Paired effect (dataset, setting, algorithm): seeds where both variants are ``ok`` are
  paired by seed; ``d_s = m_s(trlearner) - m_s(baseline)``; ``diff = mean(d_s)``, CI
  ``t_{0.975, n-1} * sd(d) / sqrt(n)``, ``p`` from ``scipy.stats.ttest_rel`` (two-sided).
  With one shared seed the pairs are the per-task values of that seed (the same test tasks,
  checked by ``episodes_hash`` when both runs record it), so the CI and p-value reflect
  task-to-task variation only, not seed-to-seed variation; ``pairing`` says which.
* Minimum detectable effect of a paired effect (:func:`min_detectable_effect`): the smallest
  ``|delta|`` whose two-sided paired t-test at ``alpha`` = 0.05 has power 0.80 with ``n`` pairs
  and the observed sd ``s_d`` of the differences (noncentral t; roughly
  ``(t_{0.975, n-1} + t_{0.80, n-1}) * s_d / sqrt(n)``).
* Seeds for a target CI half-width (:func:`seeds_for_halfwidth`): the smallest ``n >= 2``
  with ``t_{0.975, n-1} * s_d / sqrt(n) <= halfwidth``.

Example:
    >>> import pandas as pd
    >>> runs = pd.DataFrame({"dataset": "sinusoid", "setting": "5shot", "algorithm": "maml",
    ...     "variant": "baseline", "seed": [0, 1, 2], "status": "ok", "metric": "mse",
    ...     "higher_is_better": False, "mean": [0.5, 0.6, 0.7], "ci95": 0.1, "n_tasks": 2,
    ...     "per_task": [(0.5, 0.5)] * 3, "reduced": False, "diverged_at": None})
    >>> cell = aggregate_cells(runs).iloc[0]
    >>> print(f"{cell['mean']:.4f} {cell['ci95']:.4f} {cell['n']}")
    0.6000 0.2484 3
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

#: Verdicts on a known paper cell, in the order the summary lists them.
VERDICTS = ("compatible", "incompatible", "could not be tested")
#: Relative tolerance of "inside the CI" (a paper effect on the boundary is inside).
BOUNDARY_RTOL = 1e-9

CELL_KEYS = ["dataset", "setting", "algorithm", "variant"]
# pQSAR (Martin et al. 2019): an assay counts as modelled when its R^2 exceeds 0.3.
R2_THRESHOLD = 0.3


def r2_task_summary(per_task: Iterable[Sequence[float]]) -> tuple[float, float, float]:
    """(median R^2 over tasks, tasks with R^2 > 0.3, tasks), each averaged over seeds.

    >>> r2_task_summary([(0.1, 0.5, 0.4, 0.2), (0.6, 0.35, 0.1, 0.0)])
    (0.2625, 2.0, 4.0)
    """
    runs = [np.asarray(t, float) for t in per_task if len(t)]
    if not runs:
        return math.nan, math.nan, math.nan
    return (float(np.mean([np.median(r) for r in runs])),
            float(np.mean([(r > R2_THRESHOLD).sum() for r in runs])),
            float(np.mean([r.size for r in runs])))
PAIR_KEYS = ["dataset", "setting", "algorithm"]

#: The ``ci_kind`` labels.
CI_SEEDS = "t over seeds"
CI_TASKS = "tasks (1 seed)"
PAIR_SEEDS = "paired over seeds"
PAIR_TASKS = "paired over tasks (1 seed)"


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts, with missing values of non-numeric columns as None (pandas stores them
    as NaN in string columns), numeric NaN kept.

    >>> records(pd.DataFrame({"a": ["x", None], "b": [1.0, float("nan")]}))[1]["a"] is None
    True
    """
    out = frame.to_dict("records")
    text_cols = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    for rec in out:
        for c in text_cols:
            value = rec[c]
            if not isinstance(value, (list, tuple, dict)) and pd.isna(value):
                rec[c] = None
    return out


def t_halfwidth(values: Sequence[float], confidence: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean of ``values``.

    ``t_{(1+confidence)/2, n-1} * s / sqrt(n)``; NaN when fewer than two values.

    >>> round(t_halfwidth([0.5, 0.6, 0.7]), 6)
    0.248414
    """
    arr = np.asarray(list(values), dtype=float)
    if arr.size < 2:
        return math.nan
    return float(stats.t.ppf((1 + confidence) / 2, arr.size - 1) * stats.sem(arr, ddof=1))


#: Power at which :func:`min_detectable_effect` is stated.
MDE_POWER = 0.80


def paired_t_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` with ``n`` pairs whose
    differences have mean ``effect`` and standard deviation ``sd``.

    ``P(T' > t_c) + P(T' < -t_c)`` with ``T' ~ noncentral t(df = n - 1, nc = |effect| sqrt(n) / sd)``
    and ``t_c = t_{1 - alpha/2, n - 1}``. NaN when ``n < 2`` or ``sd`` is not a positive number.

    Arguments:
        effect: true mean of the paired differences.
        sd: standard deviation of one paired difference.
        n: number of pairs (seeds).
        alpha: two-sided significance level.

    Returns:
        The power, a float in [alpha, 1].

    Example:
        >>> round(paired_t_power(0.5, 1.0, 34), 4)   # G*Power's paired test: dz = 0.5, 34 pairs
        0.8078
    """
    if n < 2 or not (isinstance(sd, (int, float)) and math.isfinite(sd) and sd > 0):
        return math.nan
    df = n - 1
    t_c = float(stats.t.ppf(1 - alpha / 2, df))
    nc = abs(effect) * math.sqrt(n) / sd
    upper = float(stats.nct.sf(t_c, df, nc))
    lower = float(stats.nct.cdf(-t_c, df, nc))
    # scipy's nct.cdf can return NaN far in its lower tail, where the value is below 1e-15
    return upper + (lower if math.isfinite(lower) else 0.0)


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = MDE_POWER) -> float:
    """The smallest effect a paired t-test over ``n`` pairs with difference sd ``sd`` detects
    at level ``alpha`` (two-sided) with the given power: the root of
    ``paired_t_power(delta, sd, n, alpha) = power`` (see :func:`paired_t_power`).

    Close to ``(t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n)``, which is slightly
    optimistic for small ``n`` (at n = 3 that formula has power 0.77, not 0.80).

    Arguments:
        sd: observed standard deviation of the paired differences (ddof = 1).
        n: number of pairs.
        alpha: two-sided significance level.
        power: the power the effect must be detected with.

    Returns:
        The effect (same unit as ``sd``, >= 0); 0 when ``sd == 0``; NaN when ``n < 2`` or
        ``sd`` is unknown.

    Example:
        >>> mde = min_detectable_effect(1.0, 34)    # 34 pairs detect dz = 0.5 with power > 0.8
        >>> mde < 0.5 < min_detectable_effect(1.0, 33)
        True
    """
    from scipy.optimize import brentq

    if n < 2 or sd is None or not math.isfinite(sd):
        return math.nan
    if sd < 0:
        raise ValueError(f"sd={sd} is negative; pass the standard deviation of the differences")
    if sd == 0:
        return 0.0
    guess = (stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n)
    hi = 2 * float(guess)
    while paired_t_power(hi, sd, n, alpha) < power:
        hi *= 2
    return float(brentq(lambda d: paired_t_power(d, sd, n, alpha) - power, 0.0, hi, xtol=1e-12 * sd))


def seeds_for_halfwidth(sd: float, halfwidth: float = 0.05, confidence: float = 0.95,
                        max_seeds: int = 100_000) -> int:
    """Seeds needed for a paired-effect CI of at most ``± halfwidth``: the smallest ``n >= 2``
    with ``t_{(1+confidence)/2, n-1} * sd / sqrt(n) <= halfwidth``.

    ``sd`` is the standard deviation of the per-seed differences TRLearner - baseline. The
    result is the n whose CI would have that half-width if ``sd`` were the true spread; an
    ``sd`` estimated from few seeds is itself uncertain (docs/REPORT_FORMAT.md).

    Arguments:
        sd: standard deviation of the paired differences (ddof = 1), e.g. from earlier runs.
        halfwidth: the wanted CI half-width (default 0.05, in the metric's unit).
        confidence: the CI's confidence level.
        max_seeds: give up (ValueError) above this many seeds.

    Returns:
        The number of seeds (int >= 2).

    Example:
        >>> seeds_for_halfwidth(0.0534), seeds_for_halfwidth(0.0070), seeds_for_halfwidth(0.0381)
        (7, 3, 5)
    """
    if not (isinstance(sd, (int, float)) and math.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd={sd!r}: pass a finite standard deviation >= 0")
    if not halfwidth > 0:
        raise ValueError(f"halfwidth={halfwidth!r}: pass a positive half-width")
    for n in range(2, max_seeds + 1):
        if stats.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n) <= halfwidth:
            return n
    raise ValueError(f"more than {max_seeds} seeds are needed for ±{halfwidth} with sd={sd}")


def pooled_sd(*samples: Sequence[float]) -> float:
    """Pooled standard deviation of several samples around their own means:
    ``sqrt(sum_i (n_i - 1) s_i^2 / sum_i (n_i - 1))`` (e.g. the paired differences measured on
    two machines, whose means may differ).

    >>> round(pooled_sd([0.1, 0.2, 0.3], [0.5, 0.5, 0.8]), 6)   # sqrt((0.02 + 0.06) / 4)
    0.141421
    """
    arrays = [np.asarray(list(s), float) for s in samples]
    dof = sum(a.size - 1 for a in arrays if a.size >= 2)
    if dof == 0:
        return math.nan
    return float(math.sqrt(sum(((a - a.mean()) ** 2).sum() for a in arrays if a.size >= 2) / dof))


def _iteration(value):
    """An iteration number as int (pandas may have turned it into a float), None if unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return int(value) if float(value).is_integer() else value
    except (TypeError, ValueError):
        return value


def pooling_note(group: pd.DataFrame) -> str | None:
    """What the ``ok`` runs of a group differ in that a pooled number should not hide: more
    than one code version (column ``code``: git commit, ``+dirty``, code hash) or more than one
    set of test episodes (``episodes_hash``). None when they agree (unrecorded values ignored).

    >>> import pandas as pd
    >>> pooling_note(pd.DataFrame({"status": "ok", "code": ["a", "b", "a"],
    ...                            "episodes_hash": ["e1", "e1", "e2"]}))
    '2 code versions, 2 episode sets'
    """
    ok = group[group["status"] == "ok"] if "status" in group else group
    notes = []
    for column, what in (("code", "code versions"), ("episodes_hash", "episode sets")):
        if column in ok:
            values = {v for v in ok[column] if isinstance(v, str) and v}
            if len(values) > 1:
                notes.append(f"{len(values)} {what}")
    return ", ".join(notes) or None


def cell_ci(means: Sequence[float], run_ci95: Sequence[float],
            confidence: float = 0.95) -> tuple[float, float, str | None]:
    """(mean, CI half-width, ``ci_kind``) of a cell from its ok seeds' run means and their own
    ``ci95``: the one rule of the report and the analyses (module doc). ``n >= 2``: Student-t
    over the seed means (:data:`CI_SEEDS`); ``n = 1``: the run's own CI over its test tasks
    (:data:`CI_TASKS`); ``n = 0``: NaN.

    >>> [round(x, 4) if isinstance(x, float) else x for x in cell_ci([0.5, 0.6, 0.7], [0.1] * 3)]
    [0.6, 0.2484, 't over seeds']
    >>> cell_ci([0.5], [0.05]), cell_ci([], [])[2]
    ((0.5, 0.05, 'tasks (1 seed)'), None)
    """
    means, cis = list(means), list(run_ci95)
    if len(means) >= 2:
        return float(np.mean(means)), t_halfwidth(means, confidence), CI_SEEDS
    if len(means) == 1:
        return float(means[0]), float(cis[0]), CI_TASKS
    return math.nan, math.nan, None


def aggregate_cells(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean and 95 % CI over seeds per cell (dataset, setting, algorithm, variant).

    Only runs with ``status == "ok"`` enter the mean. Columns: the cell keys, ``metric``,
    ``higher_is_better``, ``n`` (ok seeds), ``n_runs`` (all runs found), ``n_diverged``,
    ``n_failed``, ``mean``, ``ci95``, ``ci_kind``, ``seeds`` (tuple of ok seeds),
    ``reduced`` (any run of the cell under a reduced protocol), ``diverged_at`` (list of
    ``(seed, iteration)``), ``wall_time_s`` (sum), ``pooled`` (:func:`pooling_note`: the ok
    runs come from different code versions or test episodes, else None); for R^2 cells also
    ``median_task``, ``tasks_above`` and ``tasks`` (:func:`r2_task_summary`).

    >>> import pandas as pd
    >>> runs = pd.DataFrame({"dataset": "d", "setting": "5shot", "algorithm": "maml",
    ...     "variant": "baseline", "seed": [0], "status": "ok", "metric": "mse",
    ...     "higher_is_better": False, "mean": [0.5], "ci95": [0.05], "n_tasks": 600,
    ...     "per_task": [()], "reduced": False, "diverged_at": None})
    >>> cell = aggregate_cells(runs).iloc[0]
    >>> print(cell["n"], cell["mean"], cell["ci95"], cell["ci_kind"])
    1 0.5 0.05 tasks (1 seed)
    """
    columns = CELL_KEYS + ["metric", "higher_is_better", "n", "n_runs", "n_diverged",
                           "n_failed", "mean", "ci95", "ci_kind", "seeds", "reduced",
                           "diverged_at", "wall_time_s", "pooled", "median_task", "tasks_above", "tasks"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in runs.groupby(CELL_KEYS, sort=True, dropna=False):
        ok = group[group["status"] == "ok"].sort_values("seed")
        metric = group["metric"].dropna()
        hib = group["higher_is_better"].dropna()
        n = len(ok)
        mean, ci, kind = cell_ci(ok["mean"], ok["ci95"], confidence)
        div = group[group["status"] == "diverged"].sort_values("seed")
        is_r2 = len(metric) and metric.iloc[0] == "r2"
        median_task, tasks_above, tasks = r2_task_summary(ok["per_task"]) if is_r2 else (math.nan,) * 3
        wall = group["wall_time_s"] if "wall_time_s" in group else pd.Series(dtype=float)
        rows.append(dict(
            zip(CELL_KEYS, key),
            metric=metric.iloc[0] if len(metric) else None,
            higher_is_better=bool(hib.iloc[0]) if len(hib) else None,
            n=n, n_runs=len(group), n_diverged=len(div),
            n_failed=int((group["status"] == "failed").sum()),
            mean=mean, ci95=ci, ci_kind=kind,
            seeds=tuple(int(s) for s in ok["seed"]),
            reduced=bool(group["reduced"].fillna(False).astype(bool).any()),
            diverged_at=[(None if pd.isna(s) else int(s), _iteration(it))
                         for s, it in zip(div["seed"], div["diverged_at"])],
            wall_time_s=float(pd.to_numeric(wall, errors="coerce").sum(min_count=1))
            if len(wall) else math.nan,
            pooled=pooling_note(ok),
            median_task=median_task, tasks_above=tasks_above, tasks=tasks,
        ))
    return pd.DataFrame(rows, columns=columns)


def _paired(base: Iterable[float], trl: Iterable[float], confidence: float) -> tuple[float, float, float, float]:
    base_arr, trl_arr = np.asarray(list(base), float), np.asarray(list(trl), float)
    diff = trl_arr - base_arr
    half = t_halfwidth(diff, confidence)
    with np.errstate(all="ignore"):
        p = float(stats.ttest_rel(trl_arr, base_arr).pvalue) if diff.size >= 2 else math.nan
    sd = float(diff.std(ddof=1)) if diff.size >= 2 else math.nan
    return float(diff.mean()), half, p, sd


def paired_effect(base: dict, other: dict, confidence: float = 0.95) -> dict:
    """The paired effect ``other - base`` of two cells, each ``{seed: record}`` of its ok runs
    (a record: ``mean``, ``per_task``, optionally ``episodes_hash``): the one rule of the report
    and the analyses (module doc). Seeds in both are paired; with one shared seed its per-task
    values are (same test tasks, checked by ``episodes_hash`` when both record it).

    Returns ``n``, ``diff``, ``ci95``, ``p``, ``sd``, ``mde``, ``pairing`` (:data:`PAIR_SEEDS`,
    :data:`PAIR_TASKS` or None) and ``note``.

    >>> e = paired_effect({0: {"mean": 0.6}, 1: {"mean": 0.7}, 2: {"mean": 0.5}},
    ...                   {0: {"mean": 0.4}, 1: {"mean": 0.5}, 2: {"mean": 0.4}})
    >>> round(e["diff"], 4), round(e["ci95"], 4), e["n"], e["pairing"]
    (-0.1667, 0.1434, 3, 'paired over seeds')
    """
    row = dict(n=0, diff=math.nan, ci95=math.nan, p=math.nan, sd=math.nan, mde=math.nan, pairing=None, note=None)
    seeds = sorted(set(base) & set(other))
    if len(seeds) >= 2:
        d, half, p, sd = _paired([base[s]["mean"] for s in seeds], [other[s]["mean"] for s in seeds], confidence)
        row.update(n=len(seeds), diff=d, ci95=half, p=p, sd=sd, pairing=PAIR_SEEDS,
                   mde=min_detectable_effect(sd, len(seeds), alpha=1 - confidence))
    elif len(seeds) == 1:
        b, t = base[seeds[0]], other[seeds[0]]
        b_tasks, t_tasks = b.get("per_task") or (), t.get("per_task") or ()
        b_hash, t_hash = b.get("episodes_hash"), t.get("episodes_hash")
        same_hash = not (isinstance(b_hash, str) and isinstance(t_hash, str) and b_hash != t_hash)
        if len(b_tasks) >= 2 and len(b_tasks) == len(t_tasks) and same_hash:
            d, half, p, sd = _paired(b_tasks, t_tasks, confidence)
            row.update(n=len(b_tasks), diff=d, ci95=half, p=p, sd=sd, pairing=PAIR_TASKS,
                       mde=min_detectable_effect(sd, len(b_tasks), alpha=1 - confidence))
        else:
            row.update(n=1, diff=float(t["mean"] - b["mean"]),
                       note="1 seed and no matching per-task values: no CI or test")
    else:
        row["note"] = "no seed with both variants ok"
    return row


def paired_differences(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Paired TRLearner - baseline difference per (dataset, setting, algorithm).

    Columns: the pair keys, ``metric``, ``higher_is_better``, ``n`` (pairs), ``diff``,
    ``ci95``, ``p`` (two-sided paired t-test, NaN when not computable), ``sd`` (of the paired
    differences), ``mde`` (:func:`min_detectable_effect` at alpha = 1 - confidence and power
    0.80), ``pairing`` (``"paired over seeds"``, ``"paired over tasks (1 seed)"`` or None),
    ``reduced``, ``pooled`` (:func:`pooling_note` over the paired runs of both variants),
    ``note`` (why no difference could be computed, else None).

    >>> import pandas as pd
    >>> runs = pd.DataFrame({"dataset": "d", "setting": "5shot", "algorithm": "maml",
    ...     "variant": ["baseline"] * 2 + ["trlearner"] * 2, "seed": [0, 1, 0, 1],
    ...     "status": "ok", "metric": "mse", "higher_is_better": False,
    ...     "mean": [0.6, 0.7, 0.4, 0.45], "ci95": 0.1, "n_tasks": 1, "per_task": [()] * 4,
    ...     "reduced": False, "episodes_hash": None})
    >>> row = paired_differences(runs).iloc[0]
    >>> print(f"{row['diff']:.3f}", row["n"], row["pairing"])
    -0.225 2 paired over seeds
    """
    columns = PAIR_KEYS + ["metric", "higher_is_better", "n", "diff", "ci95", "p", "sd", "mde",
                           "pairing", "reduced", "pooled", "note"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in runs.groupby(PAIR_KEYS, sort=True, dropna=False):
        ok = group[group["status"] == "ok"]
        base = ok[ok["variant"] == "baseline"].set_index("seed")
        trl = ok[ok["variant"] == "trlearner"].set_index("seed")
        if not (group["variant"] == "baseline").any() or not (group["variant"] == "trlearner").any():
            continue  # nothing to pair: the table shows the missing variant's own reason
        metric = group["metric"].dropna()
        hib = group["higher_is_better"].dropna()
        row = dict(zip(PAIR_KEYS, key), metric=metric.iloc[0] if len(metric) else None,
                   higher_is_better=bool(hib.iloc[0]) if len(hib) else None,
                   n=0, diff=math.nan, ci95=math.nan, p=math.nan, sd=math.nan, mde=math.nan,
                   pairing=None, reduced=bool(group["reduced"].fillna(False).astype(bool).any()),
                   pooled=None, note=None)
        seeds = sorted(set(base.index) & set(trl.index))
        row["pooled"] = pooling_note(ok[ok["seed"].isin(seeds)])
        rec = lambda frame: {s: frame.loc[s].to_dict() for s in seeds}  # noqa: E731
        row.update(paired_effect(rec(base), rec(trl), confidence))
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def effect_verdict(paper_effect: float, diff: float, half: float, seeds: int) -> str:
    """The verdict on one known cell from its paired effect's CI.

    ``"compatible"`` when ``|paper_effect - diff| <= half`` (boundary included, up to a
    relative 1e-9 for float rounding), ``"incompatible"`` when it is outside, ``"could not be
    tested"`` with fewer than 2 paired seeds or an unknown effect or CI.

    Arguments:
        paper_effect: the paper's TRLearner - baseline.
        diff: our paired effect (mean of the per-seed differences).
        half: half-width of its 95 % CI.
        seeds: number of seeds paired.

    Returns:
        One of :data:`VERDICTS`.

    Example:
        >>> effect_verdict(-0.193, -0.140, 0.090, 3), effect_verdict(-0.193, -0.021, 0.017, 3)
        ('compatible', 'incompatible')
        >>> effect_verdict(-0.125, -0.25, 0.125, 2), effect_verdict(-0.193, -0.05, 0.06, 1)
        ('compatible', 'could not be tested')
    """
    values = (paper_effect, diff, half)
    if seeds < 2 or not all(v is not None and math.isfinite(v) for v in values):
        return "could not be tested"
    inside = abs(paper_effect - diff) <= half + BOUNDARY_RTOL * max(abs(half), abs(paper_effect), 1e-12)
    return "compatible" if inside else "incompatible"

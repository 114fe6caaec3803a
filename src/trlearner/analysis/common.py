"""Shared pieces of the analyses: reading run folders, statistics with stated CIs, and
writing a figure (PNG + PDF), its CSV, caption and ``summary.json``.

Records are read and checked by the report's reader and validator, and summarised by its
statistics (:mod:`trlearner.run.records`): a ``metrics.json`` that breaks the schema, or whose
stored mean or CI is not that of its per-task values, is never used and is named as incomplete;
a cell's CI is the report's (:func:`trlearner.run.records.stats.cell_ci`), so the same cell gets
the same CI in an analysis and in the report. Every CSV row says which CI it used (column
``ci_basis``):

- ``t over seeds``: with 2 or more seeds, a Student-t 95 % interval over the per-seed means;
- ``tasks (1 seed)``: one seed, its own ``1.96 sd / sqrt(n_tasks)`` over its test tasks.

Paired differences (method - reference) are the report's too
(:func:`trlearner.run.records.stats.paired_effect`): seeds in both cells are paired, a paired t
over seeds; with one shared seed its per-task values (same test tasks).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from trlearner.run.learning import learns
from trlearner.run.records.scan import stored_figures_problems
from trlearner.run.records.schema import validate_metrics
from trlearner.run.records.stats import cell_ci, paired_effect

#: The columns :func:`cell_stats` gives every analysis CSV row of a cell.
CELL_COLUMNS = ["mean", "ci95", "ci_basis", "n_seeds", "n_tasks", "seed_sd", "seeds", "seed_means",
                "zero_step", "learned"]


@dataclass
class Run:
    """One finished run folder."""

    path: Path
    rel: str  # path relative to the analysis' --runs folder, e.g. "trlearner/steps3/seed0"
    metrics: dict

    @property
    def seed(self) -> int:
        return int(self.metrics["seed"])


@dataclass
class RunSet:
    """The run folders under one analysis folder: finished ones and the others."""

    root: Path
    runs: list[Run] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # rel paths: no metrics.json or not ok

    def select(self, pred) -> list[Run]:
        return [r for r in self.runs if pred(r)]


def load_runs(root) -> RunSet:
    """Every run folder under ``root`` (a folder holding ``metrics.json``, ``log.txt`` or
    ``checkpoint.pt``). Runs whose status is not ``ok``, whose metrics.json breaks the schema or
    whose stored figures are not those of its per-task values are listed as incomplete, with
    the reason."""
    root = Path(root)
    rs = RunSet(root)
    if not root.exists():
        return rs
    dirs = {p.parent for pat in ("metrics.json", "log.txt", "checkpoint.pt") for p in root.rglob(pat)}
    for d in sorted(dirs):
        rel = d.relative_to(root).as_posix()
        m = None
        if (d / "metrics.json").exists():
            try:
                m = json.loads((d / "metrics.json").read_text())
            except (OSError, json.JSONDecodeError):
                m = None
        problems = (validate_metrics(m) + stored_figures_problems(m)) if m is not None else []
        if problems:
            rs.incomplete.append(f"{rel} (invalid record: {problems[0]})")
        elif m is not None and m.get("status") == "ok":
            rs.runs.append(Run(d, rel, m))
        else:
            rs.incomplete.append(rel + ("" if m is None else f" (status {m.get('status')})"))
    return rs


def missing_runs(rs: RunSet, expected: list[str] | None) -> list[str]:
    """Expected run folders (relative to the analysis folder) that have no finished run,
    plus any unfinished folder found on disk."""
    done = {r.rel for r in rs.runs}
    out = [e for e in (expected or []) if e not in done]
    out += [i for i in rs.incomplete if i.split(" ")[0] not in out]
    return out


def cell_stats(runs: list[Run]) -> dict:
    """Mean and 95% CI of a cell (one setting, several seeds); see the module doc."""
    if not runs:
        return {"mean": math.nan, "ci95": math.nan, "ci_basis": "none", "n_seeds": 0, "n_tasks": 0,
                "seed_sd": math.nan, "seeds": "", "seed_means": "", "zero_step": math.nan, "learned": None}
    runs = sorted(runs, key=lambda r: r.seed)
    seed_means = np.array([r.metrics["mean"] for r in runs], dtype=float)
    n_tasks = int(min(r.metrics["n_tasks"] for r in runs))
    seed_sd = float(seed_means.std(ddof=1)) if len(runs) > 1 else math.nan
    _, ci, basis = cell_ci(seed_means, [r.metrics["ci95"] for r in runs])
    zero, learned = learned_cell(runs)
    return {"mean": float(seed_means.mean()), "ci95": ci, "ci_basis": basis, "n_seeds": len(runs),
            "n_tasks": n_tasks, "seed_sd": seed_sd,
            "seeds": " ".join(str(r.seed) for r in sorted(runs, key=lambda r: r.seed)),
            "seed_means": " ".join(f"{r.metrics['mean']:.6g}" for r in sorted(runs, key=lambda r: r.seed)),
            "zero_step": zero, "learned": learned}


def learned_cell(runs: list[Run]) -> tuple[float, bool | None]:
    """(mean 0-step MSE, whether the cell learned): the seed-mean metric against the learning
    margin of :mod:`trlearner.run.learning` (MSE at most 80 % of the seed-mean 0-step MSE);
    None when the runs record no curve."""
    if not runs:
        return math.nan, None
    zeros = [((r.metrics.get("curve") or {}).get("mean") or [math.nan])[0] for r in runs]
    zero = float(np.mean(zeros))
    first = runs[0].metrics
    cell = {"metric": first.get("metric"), "unit": first.get("unit"), "ways": first.get("ways"),
            "mean": float(np.mean([r.metrics["mean"] for r in runs])), "curve": {"mean": [zero]}}
    return zero, learns(cell)[0]


def pair_learned(a: list[Run], b: list[Run]) -> bool | None:
    """Whether both cells of a difference learned (None when either cannot tell): a difference
    with a cell that did not learn reflects failed training, not the method."""
    la, lb = learned_cell(a)[1], learned_cell(b)[1]
    return None if la is None or lb is None else bool(la and lb)


#: How a verdict opens when a cell it compares did not learn (the report heads the analysis so).
UNTESTED = "could not be tested at this budget"


def not_learned(labels_and_flags) -> list[str]:
    """The labels whose ``learned`` flag is False, from (label, flag) pairs (None or NaN: cannot
    tell; numpy booleans count as booleans).

    >>> not_learned([("a", True), ("b", np.False_), ("c", None), ("d", float("nan"))])
    ['b']
    """
    return [str(label) for label, flag in labels_and_flags
            if flag is not None and not (isinstance(flag, float) and math.isnan(flag)) and not bool(flag)]


def verdict(agrees: bool, parts: list[str], failed: list[str], n_cells: int,
            in_full: bool = False) -> tuple[bool | None, str]:
    """(agrees, verdict text) of an analysis that compares its cells with the paper's claim.

    When a cell did not learn (:func:`learned_cell`), a comparison with it reflects failed
    training, not the method, so nothing was tested: ``agrees`` is None and the verdict opens with
    :data:`UNTESTED`, never with "does not reproduce".

    >>> verdict(False, ["a", "b"], [], 2)
    (False, "does not reproduce the paper's claim: a; b")
    >>> verdict(False, ["a"], ["baseline (steps 1)"], 4)[1]
    'could not be tested at this budget: 1 of 4 cells did not learn (baseline (steps 1)); measured: a'
    """
    if failed:
        return None, (f"{UNTESTED}: {len(failed)} of {n_cells} cells did not learn ({', '.join(failed)}); "
                      f"measured: " + "; ".join(parts))
    head = "agrees with the paper: " if agrees else \
        f"does not reproduce the paper's claim{' in full' if in_full else ''}: "
    return bool(agrees), head + "; ".join(parts)


def paired_diff(a: list[Run], b: list[Run]) -> dict:
    """``a - b``, the mean difference over the seeds in both, with the report's paired 95 % CI
    (:func:`trlearner.run.records.stats.paired_effect`: seeds in both cells paired; with one
    shared seed, its per-task values). ``paired`` is False, and the CI NaN, when no seed is in
    both. ``seed_diffs``: the difference per shared seed."""
    if not a or not b:
        return {"diff": math.nan, "ci95": math.nan, "paired": False, "seed_diffs": {}}
    ra, rb = {r.seed: r.metrics for r in a}, {r.seed: r.metrics for r in b}
    seed_diffs = {s: ra[s]["mean"] - rb[s]["mean"] for s in sorted(set(ra) & set(rb))}
    e = paired_effect(rb, ra)
    if not seed_diffs:
        return {"diff": float(np.mean([r.metrics["mean"] for r in a]) - np.mean([r.metrics["mean"] for r in b])),
                "ci95": math.nan, "paired": False, "seed_diffs": {}}
    return {"diff": e["diff"], "ci95": e["ci95"], "paired": e["pairing"] is not None, "seed_diffs": seed_diffs}


def interval_text(d: dict, fmt: str = ".3f") -> str:
    """``+0.123 ± 0.045``, plus the seed-matched differences when there are 2 or more seeds (the
    task CI does not cover seed-to-seed variation; differing signs flag it)."""
    text = f"{d['diff']:+{fmt}} ± {d['ci95']:{fmt}}"
    sd = d.get("seed_diffs") or {}
    if len(sd) >= 2:
        text += " [per seed: " + ", ".join(f"{v:+{fmt}}" for v in sd.values())
        signs = {v > 0 for v in sd.values() if v != 0}
        text += "; seeds disagree in sign]" if len(signs) > 1 else "]"
    return text


def protocol_text(runs: list[Run]) -> str:
    """One sentence on the protocol of ``runs`` (iterations, tasks, reduced or not)."""
    if not runs:
        return "no finished runs"
    m = runs[0].metrics
    p = m["protocol"]
    its = sorted({r.metrics["protocol"]["iterations"] for r in runs})
    tasks = sorted({r.metrics["n_tasks"] for r in runs})
    seeds = sorted({r.seed for r in runs})
    reduced = sorted({bool(r.metrics["protocol"].get("reduced")) for r in runs})
    presets = sorted({str(r.metrics["protocol"].get("preset")) for r in runs})
    datasets = sorted({r.metrics["dataset"] for r in runs})
    return (f"MAML ({p['backbone']} backbone), {', '.join(datasets)}, {m['shots']}-shot; "
            f"{'/'.join(map(str, its))} meta-training iterations, meta-batch {p['meta_batch']}, "
            f"outer lr {p['outer_lr']}, inner lr {p['inner_lr_train']}; {len(seeds)} seed(s) "
            f"({', '.join(map(str, seeds))}); {'/'.join(map(str, tasks))} fixed test tasks with "
            f"{p['queries_test']} query points each; metric {m['metric'].upper()}; "
            f"reduced protocol: {'yes' if reduced == [True] else 'no' if reduced == [False] else 'mixed'}; "
            f"preset {', '.join(presets)}.")


def save_figure(fig, out: Path, name: str) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for ext in ("png", "pdf"):
        fig.savefig(out / f"{name}.{ext}", dpi=150 if ext == "png" else None, bbox_inches="tight")
        files.append(f"{name}.{ext}")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return files


def write_caption(out: Path, name: str, title: str, body: list[str], missing: list[str],
                  planned: bool = True) -> None:
    lines = [f"**{title}**", "", *body, ""]
    if not planned and not missing:
        lines += ["No run plan given (`--scale`), so runs never started cannot be listed; "
                  "no unfinished run folder was found.", ""]
    elif missing:
        lines += [f"Missing or unfinished runs ({len(missing)}), left out of the figure:", ""]
        lines += [f"- `{m}`" for m in missing] + [""]
    else:
        lines += ["All planned runs are present.", ""]
    (out / f"{name}.caption.md").write_text("\n".join(lines))


def write_summary(out: Path, summary: dict) -> None:
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, np.generic):
            return clean(x.item())
        return x

    (out / "summary.json").write_text(json.dumps(clean(summary), indent=2) + "\n")


def write_by_method(df: pd.DataFrame, out: Path, filename: str, x: str, value: str, series: dict[str, object],
                    column: str = "variant") -> pd.DataFrame:
    """``df`` (long: one row per (``column``, ``x``)) as one column per method: ``x``, then one
    column per key of ``series`` holding ``value`` of the rows whose ``column`` equals
    ``series[key]``. ``dvc plots`` draws one line per column (a long CSV drawn as one line
    zig-zags between the methods). It draws an empty value as 0, so no value is left empty: a
    method with no point at all has no column (``dvc plots`` warns that the field named in
    ``dvc.yaml`` is missing), and an ``x`` where a method that has points lacks one (a failed
    run) is left out (the long CSV and the figure keep it).

    >>> d = pd.DataFrame({"variant": ["baseline", "trlearner", "baseline", "trlearner"], "k": [1, 1, 2, 3],
    ...                   "mean": [2.0, 1.0, 1.5, 0.9]})
    >>> s = {"baseline": "baseline", "trlearner": "trlearner", "other": "other"}
    >>> print(write_by_method(d, None, "x.csv", "k", "mean", s).to_string(index=False))
     k  baseline  trlearner
     1       2.0        1.0
    """
    xs = sorted(set(df[x].dropna())) if len(df) else []
    if xs and all(float(v).is_integer() for v in xs):
        xs = [int(v) for v in xs]  # heads, iterations: 4, not 4.0
    wide = pd.DataFrame({x: xs})
    for name, key in series.items():
        sel = df[(df[column] == key) & df[x].notna()] if len(df) else df
        wide[name] = wide[x].map(dict(zip(sel[x], sel[value])) if len(sel) else {}).astype(float)
    wide = wide[[x, *(c for c in series if wide[c].notna().any())]].dropna().reset_index(drop=True)
    if out is not None:
        wide.to_csv(Path(out) / filename, index=False, float_format="%.6g")
    return wide


def mpl():
    """pyplot with a non-interactive backend and readable defaults."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9,
                         "legend.fontsize": 8, "pdf.fonttype": 42})
    return plt


COLORS = {"baseline": "#1f77b4", "trlearner": "#d62728"}


def legend_below(fig, ax, handles=None, labels=None, ncol: int | None = None):
    """The figure's one legend, below its axes and outside all of them, so it covers no data
    (``loc="best"`` inside an axes can; tests/test_figure_layout.py measures it). The figure must
    use ``layout="constrained"``, which makes room for it. Returns the legend (None without
    labelled artists)."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return fig.legend(handles, labels, loc="outside lower center", ncol=ncol or min(len(handles), 4), fontsize=8)


def start(runs_dir, out_dir):
    """What every analysis begins with: (pyplot, the created output folder, the loaded runs)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return mpl(), out, load_runs(runs_dir)

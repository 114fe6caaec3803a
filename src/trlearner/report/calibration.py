"""The report section "Calibration": which reading of the protocol reproduces the paper's baseline.

The paper's one known baseline number (MAML, sinusoid 5-shot: MSE 0.593) anchors its operating
point. ``config/calibration.yaml`` runs that baseline under every reading of the protocol
(:mod:`trlearner.run.readings`), as a one-key ablation sweeping ``reading``
(``<results>/ablations/<ablation>/<dataset>/<setting>/<algorithm>/baseline/reading-<name>/seed<N>``).
This section gives each reading's baseline (mean ± 95 % CI over seeds, n) against the paper's
number and picks the operating point by the rule written down before the runs
(docs/CALIBRATION.md, "Selection rule"), :func:`select_operating_point`:

1. A reading is judged when it has at least :data:`MIN_SEEDS` finished seeds (status ok)
   under its own full protocol (not reduced).
2. A judged reading reproduces the paper's baseline when that number lies inside its 95 % CI
   over seeds (Student t, as every cell of the report: :func:`trlearner.run.records.stats.aggregate_cells`).
3. The operating point is the reproducing reading that comes first in the precedence order
   (:data:`trlearner.run.readings.READINGS`, closest to the paper's own text first).
4. If no judged reading reproduces it, there is no operating point; the reading with the
   smallest |mean - paper| is named as the closest, and said not to reproduce.

Example:
    >>> import pandas as pd
    >>> table = pd.DataFrame({"reading": ["b", "a"], "n": [5, 5], "reduced": [False, False],
    ...                       "lo": [0.55, 0.61], "hi": [0.62, 0.70], "mean": [0.585, 0.655]})
    >>> select_operating_point(table, 0.593, precedence=["a", "b"])
    ('b', 'reproduces')
    >>> select_operating_point(table.assign(lo=[0.60, 0.61]), 0.593, precedence=["a", "b"])
    ('b', 'closest, does not reproduce')
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd

from trlearner.run.readings import READINGS

from .admission import ablation_index, admit_points
from .reference import Reference
from trlearner.run.records.scan import scan_runs
from trlearner.run.records.stats import aggregate_cells, records
from .tables import to_markdown

#: Seeds a reading needs before it is judged (docs/CALIBRATION.md, "Selection rule").
MIN_SEEDS = 5
#: The sweep key of a calibration ablation.
KEY = "reading"
#: Columns of :func:`calibration_table`.
COLUMNS = ["dataset", "setting", "algorithm", "reading", "title", "n", "seeds", "mean", "ci95", "lo", "hi",
           "reduced", "paper", "contains", "distance", "judged", "note"]
_POINT = re.compile(rf"^{KEY}-([a-z0-9_]+)$")


def calibration_runs(ablations_dir: str | os.PathLike, relative_to: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every baseline run of a ``reading`` sweep under ``ablations_dir``, with its reading.

    Each point folder is scanned by itself (:func:`trlearner.run.records.scan.scan_runs`), so
    copies count once and invalid records are left out, as for every cell of the report; with
    the pipeline's ``index.json``, only the runs it expects with their identity count.
    """
    root = Path(ablations_dir)
    frames = []
    points = sorted({m.parent.parent for m in root.rglob("metrics.json")
                     if _POINT.match(m.parent.parent.name) and m.parent.parent.parent.name == "baseline"}) \
        if root.is_dir() else []
    index = ablation_index(root)  # the preset's expected runs: no stale or scratch run is counted
    for point in points:
        runs, _ = admit_points(scan_runs(point, relative_to=relative_to).runs, point.relative_to(root).as_posix(), index)
        if len(runs):
            frames.append(runs.assign(reading=_POINT.match(point.name).group(1)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def calibration_table(runs: pd.DataFrame, reference: Reference, min_seeds: int = MIN_SEEDS) -> pd.DataFrame:
    """One row per (known cell, reading): the baseline's mean ± 95 % CI over seeds against the
    paper's baseline number. Readings of cells whose paper baseline is unknown are left out.

    Arguments:
        runs: :func:`calibration_runs`.
        reference: the paper's numbers.
        min_seeds: ok seeds a reading needs to be judged.

    Returns:
        DataFrame with :data:`COLUMNS`, in the precedence order of the readings.
    """
    rows = []
    if not len(runs):
        return pd.DataFrame(columns=COLUMNS)
    order = {name: i for i, name in enumerate(READINGS)}
    for reading, group in runs.groupby("reading", sort=False):
        for cell in records(aggregate_cells(group)):
            paper = reference.paper_value(cell["dataset"], cell["setting"], cell["algorithm"], "baseline")
            if paper is None:
                continue
            value = float(paper["value"])
            lo, hi = cell["mean"] - cell["ci95"], cell["mean"] + cell["ci95"]
            judged = cell["n"] >= min_seeds and not cell["reduced"]
            notes = []
            if cell["n"] < min_seeds:
                notes.append(f"{cell['n']} of the {min_seeds} seeds needed to judge")
            if cell["reduced"]:
                notes.append("reduced protocol: not judged")
            if cell["n_diverged"]:
                notes.append(f"{cell['n_diverged']} diverged")
            if cell["pooled"]:
                notes.append(cell["pooled"])
            rows.append(dict(
                dataset=cell["dataset"], setting=cell["setting"], algorithm=cell["algorithm"], reading=reading,
                title=READINGS[reading].title if reading in READINGS else "(not a reading of this version)",
                n=cell["n"], seeds=cell["seeds"], mean=cell["mean"], ci95=cell["ci95"], lo=lo, hi=hi,
                reduced=cell["reduced"], paper=value,
                contains=bool(cell["n"] >= 2 and lo <= value <= hi),
                distance=abs(cell["mean"] - value) if not math.isnan(cell["mean"]) else math.nan,
                judged=judged, note="; ".join(notes)))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["dataset", "setting", "algorithm", "reading"],
                             key=lambda s: s.map(order) if s.name == "reading" else s).reset_index(drop=True)


def select_operating_point(table: pd.DataFrame, paper: float, precedence=None) -> tuple[str | None, str]:
    """The operating point of one cell's calibration table, by the rule of the module docstring.

    Arguments:
        table: rows of one cell (``reading``, ``n``, ``reduced``, ``lo``, ``hi``, ``mean``).
        paper: the paper's baseline number.
        precedence: reading names, first = closest to the paper's text (default: ``READINGS``).

    Returns:
        ``(reading, "reproduces")``, ``(reading, "closest, does not reproduce")``, or
        ``(None, "not judged")`` when no reading has enough seeds.
    """
    precedence = list(READINGS) if precedence is None else list(precedence)
    rank = {name: i for i, name in enumerate(precedence)}
    judged = [r for r in records(table)
              if r["n"] >= MIN_SEEDS and not r["reduced"] and not math.isnan(r["mean"])]
    if not judged:
        return None, "not judged"
    inside = [r for r in judged if r["lo"] <= paper <= r["hi"]]
    if inside:
        return min(inside, key=lambda r: (rank.get(r["reading"], len(rank)), r["reading"]))["reading"], "reproduces"
    return min(judged, key=lambda r: (abs(r["mean"] - paper), r["reading"]))["reading"], "closest, does not reproduce"


def calibration_markdown(results_dir: str | os.PathLike, reference: Reference | str | os.PathLike | None,
                         relative_to: str | os.PathLike | None = None) -> str:
    """The section "Calibration: the paper's baseline" of REPORT.md, or ``""`` without
    calibration runs.

    Arguments:
        results_dir: the table runs' folder (``<results>/runs``); the calibration runs are read
            from its sibling ``ablations``.
        reference: a :class:`~trlearner.report.reference.Reference`, a path, or None (packaged).
        relative_to: base of printed paths.
    """
    from .rounding import fmt

    ref = reference if isinstance(reference, Reference) else Reference.load(reference)
    table = calibration_table(calibration_runs(Path(results_dir).parent / "ablations", relative_to), ref)
    if not len(table):
        return ""
    lines = ["## Calibration: the paper's baseline", "",
             "Each reading is one documented setting of the protocol (`trlearner.run.readings`, with the "
             "file and line of every value; docs/CALIBRATION.md), run on the baseline alone. A reading "
             f"reproduces the paper's baseline when that number lies inside its 95 % CI over seeds "
             f"(judged from {MIN_SEEDS} seeds, full protocol); the operating point is the first reproducing "
             "reading in the order of the table (closest to the paper's own text first).", ""]
    for (dataset, setting, algorithm), cell in table.groupby(["dataset", "setting", "algorithm"], sort=False):
        paper = float(cell["paper"].iloc[0])
        d = ref.decimals("mse")
        chosen, how = select_operating_point(cell, paper)
        name = f"{ref.algorithm_label(algorithm)} on {dataset} {setting}"
        lines += [f"### {name}: paper's baseline {fmt(paper, d)}", ""]
        if chosen is None:
            lines.append(f"- Operating point: **not judged yet** (no reading has {MIN_SEEDS} finished seeds).")
        elif how == "reproduces":
            lines.append(f"- Operating point: **{chosen}**: its 95 % CI contains the paper's {fmt(paper, d)}.")
        else:
            lines.append(f"- Operating point: **none**: no judged reading's 95 % CI contains {fmt(paper, d)}; "
                         f"the closest is {chosen}.")
        lines.append("")
        rows = []
        for r in records(cell):
            ci = "n/a" if math.isnan(r["ci95"]) else f"{fmt(r['mean'], d)} ± {fmt(r['ci95'], d)}"
            verdict = ("contains the paper's" if r["contains"] else "excludes the paper's") if r["judged"] \
                else "not judged"
            rows.append({"reading": r["reading"], "what": r["title"], "n seeds": str(r["n"]),
                         "baseline ± 95 % CI": ci, "vs paper": verdict, "note": r["note"]})
        lines += [to_markdown(pd.DataFrame(rows)), ""]
    return "\n".join(lines)

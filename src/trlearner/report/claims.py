"""The report section on the paper's open decisions: every interpretation on a known cell.

The paper leaves choices open (docs/TRLEARNER.md, "Decisions"); ``config/claims.yaml`` runs
the known cell (MAML, sinusoid 5-shot) with each plausible alternative as a one-key ablation
(``results/ablations/<name>/<dataset>/<setting>/<algorithm>/trlearner/<key>-<value>/seed<N>``).
This section pairs each interpretation, seed by seed, with the SAME baseline runs of the table
(``results/runs/<dataset>/<setting>/<algorithm>/baseline/seed<N>``) and answers two questions:

1. Does any interpretation reach the paper's effect, i.e. does its 95 % CI contain it (the
   verdict rule of :func:`trlearner.run.records.stats.effect_verdict`)?
2. Which interpretation comes closest: the smallest ``|our effect - paper effect|`` among the
   judged ones, with its paired effect ± 95 % CI.

Statistics are :func:`trlearner.run.records.stats.paired_differences` (the paired t CI over seeds
and :func:`~trlearner.run.records.stats.min_detectable_effect`). An interpretation is judged only
under the full protocol and with at least 2 paired seeds; others are listed, not judged.
Without ablation runs on a known cell the section is empty (``""``) and the report omits it.

Example:
    >>> import tempfile, pathlib
    >>> claims_markdown(pathlib.Path(tempfile.mkdtemp()) / "none", None)
    ''
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from trlearner.method.trconfig import TRConfig

from . import escape
from .admission import ablation_index, admit_points
from .reference import Reference
from trlearner.run.records.scan import RUN_COLUMNS, scan_runs
from trlearner.run.records.stats import PAIR_SEEDS, effect_verdict, paired_differences, records
from .tables import to_markdown


def _defaults_label(d: TRConfig = TRConfig()) -> str:
    meta = "ceil(shots/2)" if d.meta_data is None else d.meta_data
    return (f"defaults (TRConfig: sampler {d.sampler}, weights {d.weights}, heads {d.heads}, lam {d.lam}, "
            f"meta-data {meta}, {'learned' if d.learn_omega else 'fixed'} omega)")


#: Label of the table's own TRLearner runs: the TRConfig defaults, read from it.
DEFAULTS_LABEL = _defaults_label()
#: Its name in the section's tables (the full label is in the text above them: short cells).
DEFAULTS_SHORT = "defaults"
#: Columns of :func:`interpretation_runs`.
INTERPRETATION_COLUMNS = RUN_COLUMNS + ["ablation", "key", "value"]
#: Columns of :func:`interpretation_effects`.
EFFECT_COLUMNS = ["dataset", "setting", "algorithm", "interpretation", "ablation", "key", "value",
                  "n", "trl_mean", "diff", "ci95", "lo", "hi", "sd", "mde", "p", "reduced",
                  "paper_effect", "verdict", "distance", "note"]
_SEED_DIR = re.compile(r"^seed-?[0-9]+$")


def interpretation_runs(ablations_dir: str | os.PathLike,
                        relative_to: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every ablation run under ``ablations_dir`` with its ablation name and swept setting.

    With the pipeline's ``index.json`` in ``ablations_dir``, only the runs it expects, each of
    the identity it expects, are counted (:func:`trlearner.report.admission.admit_points`): a
    sweep value removed from the preset, or a point trained with other settings, is not shown.
    Each point folder (``<ablation>/<dataset>/<setting>/<algorithm>/<variant>/<key>-<value>``)
    is scanned by itself with :func:`trlearner.run.records.scan.scan_runs`, so the seeds of one
    point are checked against each other (copies counted once, invalid records left out) and
    never against another point's runs of the same seed.

    Arguments:
        ablations_dir: the pipeline's ``results/ablations`` folder (missing: empty frame).
        relative_to: base of the printed paths.

    Returns:
        DataFrame with :data:`INTERPRETATION_COLUMNS` (``key``/``value`` as in the folder
        name, e.g. ``lam`` / ``0.5``), counted runs only.
    """
    root = Path(ablations_dir)
    points = sorted({m.parent.parent for m in root.rglob("metrics.json")
                     if _SEED_DIR.match(m.parent.name) and len(m.parent.relative_to(root).parts) == 7}) \
        if root.is_dir() else []
    frames = []
    index = ablation_index(root)  # the preset's expected runs: no stale or scratch run is counted
    for point in points:
        ablation = point.relative_to(root).parts[0]
        key, _, value = point.name.partition("-")
        runs, _ = admit_points(scan_runs(point, relative_to=relative_to).runs, point.relative_to(root).as_posix(), index)
        runs = runs[runs["status"].isin(["ok", "diverged"])].copy()
        if len(runs):
            runs["ablation"], runs["key"], runs["value"] = ablation, key, value
            frames.append(runs)
    if not frames:
        return pd.DataFrame(columns=INTERPRETATION_COLUMNS)
    return pd.concat(frames, ignore_index=True)[INTERPRETATION_COLUMNS]


def _paper_effects(reference: Reference) -> dict[tuple[str, str, str], tuple[float, str]]:
    """(canonical dataset, setting, algorithm) -> (paper TRLearner - baseline, metric)."""
    cells: dict[tuple, dict[str, dict]] = {}
    for e in reference.paper:
        cells.setdefault((reference.canonical(e["dataset"]), str(e["setting"]), e["algorithm"]), {})[e["variant"]] = e
    return {k: (float(v["trlearner"]["value"]) - float(v["baseline"]["value"]), v["baseline"]["metric"])
            for k, v in cells.items() if "baseline" in v and "trlearner" in v}


def interpretation_effects(table_runs: pd.DataFrame, interp_runs: pd.DataFrame,
                           reference: Reference, confidence: float = 0.95) -> pd.DataFrame:
    """The paired effect of every interpretation on a known paper cell.

    The baseline of every interpretation is the table's baseline runs of the cell (the same
    folders, so the same per-seed values); the interpretation's runs stand in for TRLearner
    and :func:`trlearner.run.records.stats.paired_differences` pairs them by seed. The table's own
    TRLearner runs are the row :data:`DEFAULTS_LABEL`.

    Arguments:
        table_runs: :func:`trlearner.run.records.scan.scan_runs` of ``results/runs``.
        interp_runs: :func:`interpretation_runs` of ``results/ablations``.
        reference: the paper's numbers (only cells with both variants known are used).
        confidence: CI level.

    Returns:
        DataFrame with :data:`EFFECT_COLUMNS`, one row per (cell, interpretation), sorted by
        cell then ``distance`` (``|diff - paper_effect|``; NaN last). ``verdict`` is that of
        :func:`trlearner.run.records.stats.effect_verdict` ("could not be tested" under a reduced
        protocol or with fewer than 2 paired seeds); ``lo``/``hi`` the CI's ends.
    """

    known = _paper_effects(reference)
    rows = []
    if not len(table_runs) and not len(interp_runs):
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    cells = {(r["dataset"], r["setting"], r["algorithm"]) for r in records(interp_runs)}
    for dataset, setting, algorithm in sorted(cells):
        paper = known.get((reference.canonical(dataset), setting, algorithm))
        if paper is None:
            continue
        in_cell = table_runs[(table_runs["dataset"] == dataset) & (table_runs["setting"] == setting) &
                             (table_runs["algorithm"] == algorithm)] if len(table_runs) else table_runs
        base = in_cell[in_cell["variant"] == "baseline"] if len(in_cell) else in_cell
        arms = [(DEFAULTS_LABEL, None, None, None, in_cell[in_cell["variant"] == "trlearner"]
                 if len(in_cell) else in_cell)]
        mine = interp_runs[(interp_runs["dataset"] == dataset) & (interp_runs["setting"] == setting) &
                           (interp_runs["algorithm"] == algorithm) & (interp_runs["variant"] == "trlearner")]
        for (ablation, key, value), group in mine.groupby(["ablation", "key", "value"], sort=True):
            arms.append((f"{key} = {value}", ablation, key, value, group))
        for label, ablation, key, value, trl in arms:
            if not len(trl):
                continue
            row = dict(dataset=dataset, setting=setting, algorithm=algorithm, interpretation=label,
                       ablation=ablation, key=key, value=value, paper_effect=paper[0], n=0,
                       trl_mean=math.nan, diff=math.nan, ci95=math.nan, lo=math.nan, hi=math.nan,
                       sd=math.nan, mde=math.nan, p=math.nan, reduced=False, verdict="could not be tested",
                       distance=math.nan, note=None)
            ok = trl[trl["status"] == "ok"]
            row["trl_mean"] = float(ok["mean"].mean()) if len(ok) else math.nan
            diverged = sorted(int(x) for x in trl.loc[trl["status"] == "diverged", "seed"])
            if diverged:  # kept out of the pairs; said in the note
                row["note"] = f"diverged: seed {', '.join(map(str, diverged))}"
            if not len(base):
                row["note"] = "no baseline runs of this cell in the table"
                rows.append(row)
                continue
            pair = pd.concat([base[RUN_COLUMNS], trl[RUN_COLUMNS].assign(variant="trlearner")], ignore_index=True)
            diff = records(paired_differences(pair, confidence))
            d = diff[0] if diff else {}
            row["reduced"] = bool(d.get("reduced")) or bool(trl["reduced"].fillna(False).astype(bool).any())
            if d.get("pairing") != PAIR_SEEDS:  # 0 or 1 seed with both runs ok: counted, not judged
                row["n"] = len(set(base.loc[base["status"] == "ok", "seed"]) & set(ok["seed"]))
                row["note"] = "; ".join(filter(None, [row["note"], "fewer than 2 seeds with both runs ok"]))
                rows.append(row)
                continue
            row.update(n=int(d["n"]), diff=d["diff"], ci95=d["ci95"], lo=d["diff"] - d["ci95"],
                       hi=d["diff"] + d["ci95"], sd=d["sd"], mde=d["mde"], p=d["p"],
                       distance=abs(d["diff"] - paper[0]))
            if row["reduced"]:
                row["note"] = "; ".join(filter(None, [row["note"], "reduced protocol: not judged against the paper"]))
            else:
                row["verdict"] = effect_verdict(paper[0], d["diff"], d["ci95"], int(d["n"]))
            rows.append(row)
    frame = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    if frame.empty:
        return frame
    return frame.sort_values(["dataset", "setting", "algorithm", "distance", "interpretation"],
                             na_position="last").reset_index(drop=True)


def _row_text(r: dict[str, Any], fallback: int) -> dict[str, str]:
    """One interpretation's numbers as text, rounded to the precision its CI supports
    (:mod:`trlearner.report.rounding`): effect, half-width, CI ends, smallest detectable effect,
    distance to the paper's effect, TRLearner mean."""
    from .rounding import ci_decimals, fmt  # imported where used: the report without this section needs none

    d = ci_decimals(r["ci95"], fallback)
    return dict(effect=fmt(r["diff"], d, True), half=fmt(r["ci95"], d), lo=fmt(r["lo"], d, True),
                hi=fmt(r["hi"], d, True), mde=fmt(r["mde"], d), distance=fmt(r["distance"], d),
                trl=fmt(r["trl_mean"], d))


def claims_markdown(results_dir: str | os.PathLike, reference: Reference | str | os.PathLike | None,
                    table_runs: pd.DataFrame | None = None,
                    relative_to: str | os.PathLike | None = None) -> str:
    """The section "Open decisions of the paper" of REPORT.md, or ``""`` without ablation
    runs of TRLearner on a known cell.

    Arguments:
        results_dir: the table runs' folder (the pipeline's ``results/runs``); the ablation
            runs are read from its sibling ``ablations`` (``results/ablations``).
        reference: a :class:`~trlearner.report.reference.Reference`, a path, or None (the
            packaged ``trlearner/report/reference.yaml``).
        table_runs: the scan of ``results_dir`` when the caller has it (else scanned here).
        relative_to: base of printed paths.

    Returns:
        Markdown: per known cell, the two answers (does any interpretation's CI contain the
        paper's effect; which comes closest, with its effect ± CI), then one table row per
        interpretation (how many paired seeds, TRLearner mean, paired effect ± CI, CI, smallest
        detectable effect, verdict).
    """
    ref = reference if isinstance(reference, Reference) else Reference.load(reference)
    results = Path(results_dir)
    interp = interpretation_runs(results.parent / "ablations", relative_to)
    if not len(interp):
        return ""
    if table_runs is None:
        table_runs = scan_runs(results, relative_to=relative_to).runs
    effects = interpretation_effects(table_runs, interp, ref)
    if not len(effects):
        return ""
    from .rounding import fmt

    known = _paper_effects(ref)
    lines = ["## Open decisions of the paper", "",
             "Each interpretation is TRLearner on a known cell with one decision the paper leaves "
             "open set otherwise (docs/TRLEARNER.md; `config/claims.yaml`, `make claims`), paired by "
             "seed against the same baseline runs as the table's TRLearner runs. The rule is the "
             "claims' rule: an interpretation reaches the paper's effect when that effect lies "
             "inside the 95 % CI of its paired effect (full protocol, at least 2 paired seeds); the "
             "closest is the judged interpretation with the smallest |our effect − paper's effect|. "
             f"In the tables, *{DEFAULTS_SHORT}* is the table's own TRLearner runs: {DEFAULTS_LABEL}.",
             ""]
    for (dataset, setting, algorithm), cell in effects.groupby(["dataset", "setting", "algorithm"], sort=True):
        paper, metric = known[(ref.canonical(dataset), setting, algorithm)]
        d = ref.decimals(metric)
        judged = cell[cell["verdict"] != "could not be tested"]
        reach = judged[judged["verdict"] == "compatible"]
        name = f"{ref.algorithm_label(algorithm)} on {escape.markdown(dataset)} {escape.markdown(setting)}"
        question = f"- Does any interpretation reach the paper's {fmt(paper, d, True)}?"
        lines += [f"### {name}: paper's effect {fmt(paper, d, True)}", ""]
        if not len(judged):
            lines.append(f"{question} Not judged: no interpretation has 2 paired seeds under the full protocol.")
        elif len(reach):
            names = "; ".join(f"{escape.markdown(r['interpretation'])} ({t['effect']} ± {t['half']})"
                              for r in records(reach) for t in [_row_text(r, d)])
            lines.append(f"{question} **Yes**, {len(reach)} of {len(judged)} judged: {names}.")
        else:
            lines.append(f"{question} **No**: the paper's effect lies outside the 95 % CI of all "
                         f"{len(judged)} judged interpretations.")
        if len(judged):
            best = records(judged)[0]  # sorted by distance
            t = _row_text(best, d)
            lines.append(f"- Closest: **{escape.markdown(best['interpretation'])}**, "
                         f"effect {t['effect']} ± {t['half']} "
                         f"(95 % CI [{t['lo']}, {t['hi']}], {best['n']} seeds; {t['distance']} from the "
                         f"paper's effect).")
        left = len(cell) - len(judged)
        if left:
            lines.append(f"- Not judged: {left} (reduced protocol, or fewer than 2 paired seeds; see the note).")
        lines.append("")
        rows = []
        for r in records(cell):
            t = _row_text(r, d)
            judged_ci = math.isfinite(r["ci95"])
            rows.append({"interpretation": DEFAULTS_SHORT if r["interpretation"] == DEFAULTS_LABEL
                         else r["interpretation"], "paired seeds": str(r["n"]), "TRLearner": t["trl"],
                         "effect ± 95 % CI": f"{t['effect']} ± {t['half']}" if judged_ci else "n/a",
                         "95 % CI": f"[{t['lo']}, {t['hi']}]" if judged_ci else "n/a",
                         "smallest detectable": t["mde"], "verdict": r["verdict"], "note": r["note"] or ""})
        lines += [to_markdown(pd.DataFrame(rows)), ""]
    return "\n".join(lines)

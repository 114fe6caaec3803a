"""Analysis 5, sensitivity of TRLearner to lambda (weight of L_TR) and K (relation heads).

Runs: ``lam<l>_heads<K>/seed<s>`` (a lambda sweep at the default K and a K sweep at the
default lambda; they share the default cell) and ``baseline/seed<s>``. Cells are read from
each run's ``trlearner`` settings. The paper publishes no lambda or K, nor a sensitivity
claim: the verdict states how flat the measured curves are.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd

from trlearner.analysis import common as C

NAME = "sensitivity"


def _write_by_method(df: pd.DataFrame, out) -> None:
    """One file per sweep, one column per method (for ``dvc plots``): ``sensitivity_lambda_by_method.csv``
    (``lam``; ``trlearner`` = the lambda sweep's mean, ``baseline`` = the baseline's mean at every lambda)
    and ``sensitivity_heads_by_method.csv`` (``heads``; the K sweep)."""
    base = df[df.sweep == "baseline"]["mean"]
    for sweep, col in (("lambda", "lam"), ("K", "heads")):
        d = df[df.sweep.str.contains(sweep, regex=False)] if len(df) else df
        rows = d.assign(variant="trlearner")[["variant", col, "mean"]] if len(d) else \
            pd.DataFrame(columns=["variant", col, "mean"])
        if len(base) and len(d):
            rows = pd.concat([rows, pd.DataFrame({"variant": "baseline", col: d[col], "mean": float(base.iloc[0])})])
        name = "lambda" if col == "lam" else "heads"
        C.write_by_method(rows, out, f"{NAME}_{name}_by_method.csv", col, "mean",
                          {"baseline": "baseline", "trlearner": "trlearner"})


def analyse(runs_dir, out_dir, expected: list[str] | None = None) -> dict:
    plt, out, rs = C.start(runs_dir, out_dir)
    base = rs.select(lambda r: r.metrics["variant"] == "baseline")
    trl = rs.select(lambda r: r.metrics["variant"] == "trlearner")
    key = lambda r: (float(r.metrics["trlearner"]["lam"]), int(r.metrics["trlearner"]["heads"]))  # noqa: E731
    cells = sorted({key(r) for r in trl})
    lam_counts, k_counts = Counter(k for _, k in cells), Counter(l for l, _ in cells)
    k0 = lam_counts.most_common(1)[0][0] if cells else None    # the K the lambda sweep holds fixed
    lam0 = k_counts.most_common(1)[0][0] if cells else None    # the lambda the K sweep holds fixed
    rows = []
    for lam, k in cells:
        sel = [r for r in trl if key(r) == (lam, k)]
        sweep = [s for s, on in (("lambda", k == k0), ("K", lam == lam0)) if on]
        d = C.paired_diff(sel, base) if base else {"diff": math.nan, "ci95": math.nan}
        rows.append({"sweep": "+".join(sweep) or "other", "lam": lam, "heads": k, **C.cell_stats(sel),
                     "diff_vs_baseline": d["diff"], "diff_ci95": d["ci95"],
                     "pair_learned": C.pair_learned(sel, base) if base else None})
    if base:
        rows.append({"sweep": "baseline", "lam": math.nan, "heads": math.nan, **C.cell_stats(base)})
    df = pd.DataFrame(rows, columns=["sweep", "lam", "heads", *C.CELL_COLUMNS, "diff_vs_baseline", "diff_ci95",
                                     "pair_learned"])
    df.to_csv(out / f"{NAME}.csv", index=False)
    _write_by_method(df, out)

    fig, grid = plt.subplots(2, 2, figsize=(8.6, 6.1), sharex="col", gridspec_kw={"height_ratios": [1.2, 1]},
                             layout="constrained")
    bst = C.cell_stats(base) if base else None
    panels = [(0, "lambda", "lam", f"λ (weight of L_TR), K = {k0}"),
              (1, "K", "heads", f"K (relation heads), λ = {lam0:g}" if lam0 is not None else "K")]
    for col_i, sweep, col, xlabel in panels:
        ax, axd = grid[0, col_i], grid[1, col_i]
        d = df[df.sweep.str.contains(sweep, regex=False)].sort_values(col) if len(df) else df
        for a in (ax, axd):
            if col == "lam":
                a.set_xscale("symlog", linthresh=0.01, linscale=0.5)
            else:
                a.set_xscale("log", base=2)
        if len(d):
            ax.errorbar(d[col], d["mean"], yerr=d["ci95"], marker="o", capsize=3, color=C.COLORS["trlearner"],
                        label="MAML + TRLearner")
            dd = d[d.diff_vs_baseline.notna()]
            axd.errorbar(dd[col], dd["diff_vs_baseline"].astype(float), yerr=dd["diff_ci95"].astype(float),
                         marker="o", capsize=3, color=C.COLORS["trlearner"])
            for a in (ax, axd):
                a.set_xticks(list(d[col]))
                a.set_xticklabels([f"{v:g}" for v in d[col]])
                a.minorticks_off()
            if col == "lam":
                ax.set_xlim(-0.002, max(d[col]) * 1.5)
        if bst:
            ax.axhline(bst["mean"], color=C.COLORS["baseline"], lw=1, label="MAML (baseline)")
            ax.axhspan(bst["mean"] - bst["ci95"], bst["mean"] + bst["ci95"], color=C.COLORS["baseline"], alpha=0.15,
                       label="MAML (baseline), 95 % CI")
        axd.axhline(0, color=C.COLORS["baseline"], lw=0.8, ls=":")
        axd.set_xlabel(xlabel)
    grid[0, 0].set_ylabel("test MSE (lower is better)")
    grid[1, 0].set_ylabel("Δ test MSE vs baseline (paired)")
    fig.suptitle("Sensitivity of TRLearner to λ and K", fontsize=9)
    handles = {}  # one legend for both panels (the same three series), below them
    for a in grid[0]:
        handles.update(zip(*reversed(a.get_legend_handles_labels())))
    C.legend_below(fig, grid[0, 0], list(handles.values()), list(handles))
    C.save_figure(fig, out, NAME)

    missing = C.missing_runs(rs, expected)
    body = [C.protocol_text(rs.runs),
            f"Left: lambda sweep at K = {k0}; right: K sweep at lambda = {lam0}. λ axis is symmetric-log "
            "(linear below 0.01) so λ = 0 can be shown; λ = 0 trains with TRLearner switched on but "
            "its loss weighted 0. Top: test MSE; line and band: baseline MAML mean and 95% CI. Bottom: "
            "TRLearner minus baseline, paired task by task on the same test tasks, with its 95% CI "
            "(much narrower: the top bars include the spread of MSE between tasks). Top error bars: 95% CI over "
            f"{'; '.join(sorted(set(df['ci_basis']))) if len(df) else 'n/a'}."]
    C.write_caption(out, NAME, "Sensitivity to lambda and K", body, missing, planned=expected is not None)
    runs_by_cell = {c: [r for r in trl if key(r) == c] for c in cells}
    summary = _summary(df, rs, missing, runs_by_cell)
    C.write_summary(out, summary)
    return summary


def _flatness(d: pd.DataFrame, runs_by_cell: dict) -> dict:
    """MSE range over a sweep, its best cell, and each cell's task-paired difference to the best."""
    if len(d) < 2:
        return {"range": math.nan, "best": None, "all_within_ci_of_best": None, "vs_best": {}}
    b = d.loc[d["mean"].idxmin()]
    best_runs = runs_by_cell[(b.lam, int(b.heads))]
    vs = {f"lam{r.lam:g}_heads{int(r.heads)}": C.paired_diff(runs_by_cell[(r.lam, int(r.heads))], best_runs)
          for _, r in d.iterrows() if (r.lam, int(r.heads)) != (b.lam, int(b.heads))}
    within = all(v["diff"] - v["ci95"] <= 0 for v in vs.values())
    return {"range": float(d["mean"].max() - d["mean"].min()),
            "best": {"lam": float(b.lam), "heads": int(b.heads), "mean": float(b["mean"]), "ci95": float(b.ci95)},
            "all_within_ci_of_best": within, "vs_best": vs}


def _summary(df, rs, missing, runs_by_cell) -> dict:
    claim = "No published claim (the paper does not give lambda or K); measured for robustness."
    if not len(df) or not (df.sweep != "baseline").any():
        return {"analysis": NAME, "claim": claim, "measured": {}, "agrees": None, "verdict": "no TRLearner runs",
                "n_runs": len(rs.runs), "missing_runs": missing}
    lam = _flatness(df[df.sweep.str.contains("lambda", regex=False) & (df.lam > 0)], runs_by_cell)
    ks = _flatness(df[df.sweep.str.contains("K", regex=False)], runs_by_cell)
    beat = df[(df.sweep != "baseline") & (df.diff_vs_baseline + df.diff_ci95 < 0)] if "diff_ci95" in df else df[:0]
    parts = []
    if lam["best"]:
        parts.append(f"over λ > 0 the MSE varies by {lam['range']:.4f}; best λ = {lam['best']['lam']:g}; "
                     f"{'none worse than the best beyond the paired CI' if lam['all_within_ci_of_best'] else 'some worse than the best beyond the paired CI'}")
    if ks["best"]:
        parts.append(f"over K the MSE varies by {ks['range']:.4f}; best K = {int(ks['best']['heads'])}; "
                     f"{'none worse than the best beyond the paired CI' if ks['all_within_ci_of_best'] else 'some worse than the best beyond the paired CI'}")
    worse = df[(df.sweep != "baseline") & (df.diff_vs_baseline - df.diff_ci95 > 0)]
    parts.append(f"{len(beat)} of {int((df.sweep != 'baseline').sum())} TRLearner settings beat the baseline "
                 f"and {len(worse)} are worse, beyond the paired CI")
    measured = {f"lam{r.lam:g}_heads{int(r.heads)}": {"mean": r["mean"], "ci95": r["ci95"]}
                for _, r in df[df.sweep != "baseline"].iterrows()}
    cells = df.assign(label=[f"lam{r.lam:g}_heads{int(r.heads)}" if r.sweep != "baseline" else "baseline"
                             for _, r in df.iterrows()])
    failed = C.not_learned(zip(cells["label"], cells["learned"]))
    verdict = (f"{C.UNTESTED}: {len(failed)} of {len(df)} cells did not learn ({', '.join(failed)}); measured: "
               if failed else "no paper claim to compare; ") + "; ".join(parts)
    return {"analysis": NAME, "claim": claim, "measured": measured, "lambda": lam, "K": ks, "agrees": None,
            "verdict": verdict, "not_learned": failed, "n_cells": len(df), "n_runs": len(rs.runs),
            "missing_runs": missing}

"""Analysis 2, meta-layer depth: test MSE against the number of inner steps ("meta-layers",
the same at training and test), with and without TRLearner.

Runs: ``<variant>/steps<k>/seed<s>`` with ``--inner-steps k --test-steps k``. The cell of a
run is read from its metrics (``protocol.inner_steps_train``, ``variant``), not its path.
"""

from __future__ import annotations


import pandas as pd

from trlearner.analysis import common as C

NAME = "depth"
VARIANTS = ("baseline", "trlearner")


def _steps(r: C.Run) -> int:
    return int(r.metrics["protocol"]["inner_steps_train"])


def analyse(runs_dir, out_dir, expected: list[str] | None = None) -> dict:
    plt, out, rs = C.start(runs_dir, out_dir)
    steps = sorted({_steps(r) for r in rs.runs})
    cell = {(v, k): rs.select(lambda r, v=v, k=k: r.metrics["variant"] == v and _steps(r) == k)
            for v in VARIANTS for k in steps}
    rows = []
    for (v, k), sel in cell.items():
        if sel:
            ref = cell[("baseline", k)]
            d = C.paired_diff(sel, ref) if v == "trlearner" else {"diff": None, "ci95": None}
            rows.append({"variant": v, "meta_layers": k, **C.cell_stats(sel),
                         "diff_vs_baseline": d["diff"], "diff_ci95": d["ci95"],
                         "pair_learned": C.pair_learned(sel, ref) if v == "trlearner" and ref else None})
    df = pd.DataFrame(rows, columns=["variant", "meta_layers", *C.CELL_COLUMNS, "diff_vs_baseline", "diff_ci95",
                                     "pair_learned"])
    df.to_csv(out / f"{NAME}.csv", index=False)
    C.write_by_method(df, out, f"{NAME}_by_method.csv", "meta_layers", "mean", {v: v for v in VARIANTS})

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8.6, 3.7), gridspec_kw={"width_ratios": [1.3, 1]},
                                  layout="constrained")
    for i, v in enumerate(VARIANTS):
        d = df[df.variant == v]
        if len(d):
            ax.errorbar(d["meta_layers"] + (i - 0.5) * 0.06, d["mean"], yerr=d["ci95"], marker="o", capsize=3,
                        color=C.COLORS[v], label="MAML + TRLearner" if v == "trlearner" else "MAML")
    ax.set_xlabel("meta-layers (inner steps at training and test)")
    ax.set_ylabel("test MSE (lower is better)")
    ax.set_xticks(steps or [1])
    if len(df):
        C.legend_below(fig, ax)
    else:
        ax.text(0.5, 0.5, "no finished runs", ha="center", transform=ax.transAxes)
    ax.set_title("Test MSE against meta-layer depth", fontsize=9)
    t = df[(df.variant == "trlearner") & df.diff_vs_baseline.notna()]
    if len(t):
        ax2.errorbar(t["meta_layers"], t["diff_vs_baseline"].astype(float), yerr=t["diff_ci95"].astype(float),
                     marker="o", capsize=3, color=C.COLORS["trlearner"])
    ax2.axhline(0, color="grey", lw=0.8, ls=":")
    ax2.set_xticks(steps or [1])
    ax2.set_xlabel("meta-layers")
    ax2.set_ylabel("Δ test MSE, TRLearner - MAML")
    ax2.set_title("Paired difference at equal depth (< 0: TRLearner better)", fontsize=9)
    C.save_figure(fig, out, NAME)

    missing = C.missing_runs(rs, expected)
    basis = "; ".join(sorted(set(df["ci_basis"]))) if len(df) else "n/a"
    body = [C.protocol_text(rs.runs),
            f"MSE after k inner steps of a model meta-trained with k inner steps, k = "
            f"{', '.join(map(str, steps)) or 'none'}. Error bars: 95% CI over {basis}. "
            "Points of the two variants are shifted sideways slightly to keep the bars apart. "
            "Right: TRLearner minus MAML at the same depth, paired task by task on the same test "
            "tasks, with its 95% CI (much narrower than the left panel's, which include the spread "
            "of MSE between tasks)."]
    C.write_caption(out, NAME, "Meta-layer depth", body, missing, planned=expected is not None)
    summary = _summary(cell, steps, df, rs, missing)
    C.write_summary(out, summary)
    return summary


def _summary(cell, steps, df, rs, missing) -> dict:
    claim = ("Without TRLearner the metric only improves with more meta-layers; with TRLearner one "
             "meta-layer is already competitive and deeper ones stay stable.")
    measured = {f"{r.variant}/steps{r.meta_layers}": {"mean": r["mean"], "ci95": r["ci95"]} for _, r in df.iterrows()}
    if not steps or not cell.get(("baseline", steps[0])) or not cell.get(("trlearner", steps[0])):
        return {"analysis": NAME, "claim": claim, "measured": measured, "agrees": None,
                "verdict": "not enough runs for a verdict", "n_runs": len(rs.runs), "missing_runs": missing}
    lo, hi = steps[0], steps[-1]
    base_gain = C.paired_diff(cell[("baseline", hi)], cell[("baseline", lo)])  # < 0: deeper is better
    trl1_vs_base_hi = C.paired_diff(cell[("trlearner", lo)], cell[("baseline", hi)])
    worst_trl = max(((k, C.paired_diff(cell[("trlearner", k)], cell[("trlearner", lo)])) for k in steps[1:]
                     if cell.get(("trlearner", k))), key=lambda t: t[1]["diff"], default=(None, None))
    base_improves = base_gain["diff"] + base_gain["ci95"] < 0
    competitive = trl1_vs_base_hi["diff"] - trl1_vs_base_hi["ci95"] <= 0  # not worse beyond CI
    stable = worst_trl[1] is None or worst_trl[1]["diff"] - worst_trl[1]["ci95"] <= 0
    comparisons = {
        f"baseline steps{hi} - baseline steps{lo}": base_gain,
        f"trlearner steps{lo} - baseline steps{hi}": trl1_vs_base_hi,
    }
    if worst_trl[0] is not None:
        comparisons[f"trlearner steps{worst_trl[0]} - trlearner steps{lo} (worst deeper TRLearner)"] = worst_trl[1]
    parts = [f"baseline {'improves' if base_improves else 'does not improve significantly'} from {lo} to {hi} "
             f"meta-layers (ΔMSE {C.interval_text(base_gain)})",
             f"TRLearner at {lo} meta-layer is {'within CI of or better than' if competitive else 'worse than'} "
             f"the baseline at {hi} (ΔMSE {C.interval_text(trl1_vs_base_hi)})",
             f"deeper TRLearner is {'stable (no depth worse than ' + str(lo) + ' beyond CI)' if stable else 'not stable'}"]
    failed = C.not_learned((f"{r.variant} (meta_layers {r.meta_layers})", r.learned) for _, r in df.iterrows())
    agrees, verdict = C.verdict(base_improves and competitive and stable, parts, failed, len(df), in_full=True)
    return {"analysis": NAME, "claim": claim, "measured": measured, "comparisons": comparisons,
            "agrees": agrees, "verdict": verdict, "not_learned": failed, "n_cells": len(df),
            "n_runs": len(rs.runs), "missing_runs": missing}

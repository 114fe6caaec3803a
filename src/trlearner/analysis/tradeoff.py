"""Analysis 4, time-accuracy trade-off: measured meta-training wall time against test MSE
for TRLearner and other regularisers of meta-learning, relative to bare MAML.

Methods (read from metrics: ``variant`` and ``regularizer.name``): ``baseline`` (none),
``trlearner``, ``weight_decay``, ``input_noise`` (inner-loop data noise) and ``meta_aug``
(task-level meta-augmentation). x = wall-time ratio to the baseline (seed-matched where the
same seed exists, else to the baseline's mean); y = ΔMSE = method - baseline, task-paired.
*Efficiency* = MSE gain (baseline - method) per unit of relative training time.

Wall times are measured on whatever machine ran the runs, with whatever else ran beside them:
compare ratios only between runs made on the same machine under the same load.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from trlearner.analysis import common as C

NAME = "tradeoff"
METHODS = ("baseline", "trlearner", "weight_decay", "input_noise", "meta_aug")
LABELS = {"baseline": "MAML (baseline)", "trlearner": "TRLearner", "weight_decay": "weight decay",
          "input_noise": "input noise", "meta_aug": "meta-augmentation"}
COLORS = {"baseline": "#1f77b4", "trlearner": "#d62728", "weight_decay": "#2ca02c", "input_noise": "#ff7f0e",
          "meta_aug": "#9467bd"}
SLIGHTLY = 1.5  # "slightly slower" read as at most this many times the baseline's time
MARKERS = {"baseline": "o", "trlearner": "*", "weight_decay": "s", "input_noise": "^", "meta_aug": "D"}


def method_of(r: C.Run) -> str:
    if r.metrics["variant"] == "trlearner":
        return "trlearner"
    return (r.metrics.get("regularizer") or {}).get("name", "none").replace("none", "baseline")


def analyse(runs_dir, out_dir, expected: list[str] | None = None) -> dict:
    plt, out, rs = C.start(runs_dir, out_dir)
    base = rs.select(lambda r: method_of(r) == "baseline")
    base_wall = {r.seed: r.metrics["wall_time_s"] for r in base}
    base_mean_wall = float(np.mean(list(base_wall.values()))) if base_wall else math.nan
    rows = []
    for meth in dict.fromkeys([*METHODS, *sorted({method_of(r) for r in rs.runs})]):
        sel = rs.select(lambda r, m=meth: method_of(r) == m)
        if not sel:
            continue
        st = C.cell_stats(sel)
        walls = np.array([r.metrics["wall_time_s"] for r in sel], dtype=float)
        ratios = np.array([r.metrics["wall_time_s"] / base_wall.get(r.seed, base_mean_wall) for r in sel])
        d = C.paired_diff(sel, base) if base else {"diff": math.nan, "ci95": math.nan, "paired": False}
        gain = -d["diff"]
        rm = float(ratios.mean())
        rows.append({
            "method": meth, "strength": (sel[0].metrics.get("regularizer") or {}).get("strength")
            if meth != "trlearner" else sel[0].metrics["trlearner"].get("lam"),
            **st, "wall_time_s": float(walls.mean()), "wall_time_sd": float(walls.std(ddof=1)) if len(walls) > 1 else math.nan,
            "time_ratio": rm, "time_ratio_lo": float(ratios.min()), "time_ratio_hi": float(ratios.max()),
            "delta_mse": d["diff"], "delta_ci95": d["ci95"], "paired": d["paired"],
            "gain_per_time": gain / rm if rm > 0 else math.nan,
            "pair_learned": C.pair_learned(sel, base) if base and meth != "baseline" else None,
        })
    df = pd.DataFrame(rows, columns=["method", "strength", *C.CELL_COLUMNS, "wall_time_s", "wall_time_sd",
                                     "time_ratio", "time_ratio_lo", "time_ratio_hi", "delta_mse", "delta_ci95",
                                     "paired", "gain_per_time", "pair_learned"])
    df.to_csv(out / f"{NAME}.csv", index=False)

    fig, ax = plt.subplots(figsize=(5.2, 4.4), layout="constrained")
    for _, r in df.iterrows():
        xerr = [[r.time_ratio - r.time_ratio_lo], [r.time_ratio_hi - r.time_ratio]]
        label = LABELS.get(r.method, r.method)
        if r.method == "baseline":
            label += f": MSE {r['mean']:.3f} ± {r.ci95:.3f}"
        ax.errorbar(r.time_ratio, r.delta_mse, xerr=xerr, yerr=None if r.method == "baseline" else r.delta_ci95,
                    fmt=MARKERS.get(r.method, "o"), ms=9 if r.method == "trlearner" else 6, capsize=3,
                    color=COLORS.get(r.method), label=label)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.axvline(1, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("meta-training wall time / baseline's (ratio)")
    ax.set_ylabel("Δ test MSE vs baseline (lower is better)")
    if len(df):
        C.legend_below(fig, ax, ncol=2)
    else:
        ax.text(0.5, 0.5, "no finished runs", ha="center", transform=ax.transAxes)
    ax.set_title("Time-accuracy trade-off of regularisers", fontsize=9)
    C.save_figure(fig, out, NAME)

    missing = C.missing_runs(rs, expected)
    strengths = ", ".join(f"{LABELS.get(r.method, r.method)}: {r.strength:g}" for _, r in df.iterrows()
                          if r.method != "baseline" and r.strength is not None and not pd.isna(r.strength))
    body = [C.protocol_text(rs.runs),
            f"Regularisers and strengths (TRLearner: lambda): {strengths or 'none'}. "
            f"Baseline training wall time: {base_mean_wall:.1f} s (mean over seeds).",
            "x: measured meta-training wall time (excluding the final test evaluation) divided by the "
            "baseline's for the same seed; bars span the seeds' ratios. y: test MSE minus the baseline's, "
            "paired task by task (same test episodes), with its 95% CI over test tasks; the baseline "
            "is the reference point (1, 0), its own MSE and CI are in the legend. Wall times depend on the machine and its load at the time; "
            "runs here shared 2 CPU cores with other work, so treat small time differences as noise."]
    C.write_caption(out, NAME, "Time-accuracy trade-off", body, missing, planned=expected is not None)
    seed_diffs = {m: C.paired_diff(rs.select(lambda r, m=m: method_of(r) == m), base)["seed_diffs"]
                  for m in set(df.method)} if base else {}
    summary = _summary(df, rs, missing, seed_diffs)
    C.write_summary(out, summary)
    return summary


def _summary(df, rs, missing, seed_diffs: dict) -> dict:
    claim = ("TRLearner is slightly slower than the bare baseline and gives the best accuracy per "
             "unit of cost among the regularisers.")
    measured = {r.method: {"mse": r["mean"], "ci95": r["ci95"], "delta_mse": r.delta_mse,
                           "delta_ci95": r.delta_ci95, "time_ratio": r.time_ratio,
                           "gain_per_time": r.gain_per_time} for _, r in df.iterrows()}
    regs = df[df.method != "baseline"]
    if "trlearner" not in set(df.method) or "baseline" not in set(df.method) or len(regs) < 2:
        return {"analysis": NAME, "claim": claim, "measured": measured, "agrees": None,
                "verdict": "not enough methods for a verdict", "n_runs": len(rs.runs), "missing_runs": missing}
    t = df[df.method == "trlearner"].iloc[0]
    td = {"diff": t.delta_mse, "ci95": t.delta_ci95, "seed_diffs": seed_diffs.get("trlearner", {})}
    best_gain = regs.loc[regs.delta_mse.idxmin(), "method"]
    # Gain per unit time ranks gains; with no gain (every ΔMSE >= 0) dividing by the time would
    # rank the slowest method first, so there is no best then.
    gains = regs[regs.delta_mse < 0]
    best_eff = gains.loc[gains.gain_per_time.idxmax(), "method"] if len(gains) else None
    sig = t.delta_mse + t.delta_ci95 < 0
    worse = t.delta_mse - t.delta_ci95 > 0
    effect = "significantly better" if sig else "significantly worse" if worse else "not significant"
    slightly = 1 < t.time_ratio <= SLIGHTLY
    parts = [f"TRLearner takes {t.time_ratio:.2f}x the baseline's training time "
             f"({'slightly slower' if slightly else 'not slightly slower'}: paper 'slightly', read as <= {SLIGHTLY}x), "
             f"ΔMSE {C.interval_text(td, '.4f')} ({effect}, paired 95% CI over test tasks); "
             + (f"largest MSE gain: {best_gain}; best gain per unit time: {best_eff}" if best_eff else
                f"no regulariser improves on the baseline's MSE (smallest loss: {best_gain}), so none has a "
                f"gain per unit time")]
    failed = C.not_learned((r.method, r.learned) for _, r in df.iterrows())
    agrees, verdict = C.verdict(best_eff == "trlearner" and sig and slightly, parts, failed, len(df))
    return {"analysis": NAME, "claim": claim, "measured": measured, "agrees": agrees, "verdict": verdict,
            "not_learned": failed, "n_cells": len(df), "n_runs": len(rs.runs), "missing_runs": missing}

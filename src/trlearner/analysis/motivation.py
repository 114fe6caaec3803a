"""Analysis 1, motivation: training and validation curves of MAML (one fixed inner step)
over meta-training, on task families D1..D4 of decreasing complexity, with and without
TRLearner on the same axes; where does it underfit, where does it overfit?

Runs: ``<family>/<variant>/seed<s>`` trained with ``--eval-every N`` (``history`` in
metrics.json: train MSE on the current meta-batch, validation MSE on fixed val tasks).

Diagnostics per (family, variant), from the seed-mean curves:

- *underfitting*: the validation MSE still falls over the last third of training by more
  than ``TOL`` (2%) of its value -- training stopped before it converged -- or training
  removed less than ``LEARN_MIN`` (10%) of the first validation MSE even at its best (the
  loss stays high).
- *overfitting*: the validation MSE at the end is above its best by more than ``TOL``, the
  best came before the last third, and the training MSE did not rise meanwhile.
- *roughness*: mean absolute change between consecutive validation points, relative to the
  final validation MSE (lower = smoother).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from trlearner.analysis import common as C

NAME = "motivation"
TOL = 0.02
LEARN_MIN = 0.10
VARIANTS = ("baseline", "trlearner")


def _family(r: C.Run) -> str:
    return r.metrics["dataset"]


def _label(family: str) -> str:
    from trlearner.data.sources.regression import MOTIVATION_BANDS

    tag = family.replace("motivation_", "").upper()
    band = MOTIVATION_BANDS.get(family)
    if band is None:
        return family
    w = f"w = {band[0]:g}" if band[0] == band[1] else f"w ~ U[{band[0]:g}, {band[1]:g}]"
    return f"{tag}: A sin(w x - phi), {w}"


SMOOTH = 5


def smooth(y: pd.Series) -> pd.Series:
    """Centred running mean over ``SMOOTH`` points (fewer at the ends), for display only."""
    return y.rolling(SMOOTH, center=True, min_periods=1).mean()


def curves(runs: list[C.Run]) -> pd.DataFrame:
    """Seed-mean train/val curves of one cell: iteration, train, val, their spread and n."""
    rows = [dict(h, seed=r.seed) for r in runs for h in (r.metrics.get("history") or [])]
    if not rows:
        return pd.DataFrame(columns=["iteration"])
    df = pd.DataFrame(rows)
    g = df.groupby("iteration")
    out = pd.DataFrame({"train": g["train"].mean(), "val": g["val"].mean(), "n_seeds": g["seed"].nunique(),
                        "train_lo": g["train"].min(), "train_hi": g["train"].max(),
                        "val_lo": g["val"].min(), "val_hi": g["val"].max()}).reset_index()
    n = out["n_seeds"]
    if int(n.min()) >= 3:  # t-interval over seeds replaces the min-max band
        from scipy import stats

        for k in ("train", "val"):
            half = stats.t.ppf(0.975, n - 1) * g[k].std(ddof=1).values / np.sqrt(n)
            out[f"{k}_lo"], out[f"{k}_hi"] = out[k] - half, out[k] + half
    return out


def diagnose(cv: pd.DataFrame) -> dict:
    if len(cv) < 3:
        return {"underfits": None, "still_improving": None, "barely_learned": None, "val_reduction": math.nan,
                "overfits": None, "roughness": math.nan, "final_train": math.nan,
                "final_val": math.nan, "best_val": math.nan, "best_val_iteration": None,
                "val_change_last_third": math.nan}
    it, val, tr = cv["iteration"].values, cv["val"].values, cv["train"].values
    cut = it[0] + (it[-1] - it[0]) * 2 / 3
    k = int(np.searchsorted(it, cut))
    k = min(max(k, 1), len(it) - 1)
    start = val[k - 1]
    change = (val[-1] - start) / abs(start)
    ib = int(np.argmin(val))
    # train level: mean of the last quarter (one meta-batch per point is noisy)
    q = max(1, len(tr) // 4)
    train_end, train_at_best = float(tr[-q:].mean()), float(tr[max(0, ib - q // 2): ib + q // 2 + 1].mean())
    still_improving = change < -TOL
    learned = float((val[0] - val.min()) / abs(val[0]))  # fraction of the first val MSE removed at best
    barely_learned = learned < LEARN_MIN
    underfits = still_improving or barely_learned
    overfits = (val[-1] > val[ib] * (1 + TOL)) and it[ib] < cut and train_end <= train_at_best
    rough = float(np.mean(np.abs(np.diff(val))) / abs(val[-1]))
    return {"underfits": bool(underfits), "still_improving": bool(still_improving),
            "barely_learned": bool(barely_learned), "val_reduction": learned, "overfits": bool(overfits), "roughness": rough,
            "final_train": train_end, "final_val": float(val[-1]), "best_val": float(val[ib]),
            "best_val_iteration": int(it[ib]), "val_change_last_third": float(change)}


def expected_runs(scale: dict | None) -> list[str] | None:
    return None


def write_by_method(long: pd.DataFrame, out) -> list[str]:
    """For ``dvc plots``: per family found, ``motivation_<tag>_by_method.csv`` (``d1``..``d4``):
    ``iteration`` and the seed-mean validation MSE of each variant as its own column
    (``baseline``, ``trlearner``). A family without runs has no file (``dvc plots`` skips its
    chart with a warning). Returns the file names."""
    names = []
    for fam in sorted(set(long["family"])) if len(long) else []:
        name = f"{NAME}_{fam.replace('motivation_', '')}_by_method.csv"
        C.write_by_method(long[long.family == fam], out, name, "iteration", "val_mse", {v: v for v in VARIANTS})
        names.append(name)
    return names


def analyse(runs_dir, out_dir, expected: list[str] | None = None) -> dict:
    plt, out, rs = C.start(runs_dir, out_dir)
    families = sorted({_family(r) for r in rs.runs})
    rows, diag, cells = [], {}, {}
    for fam in families:
        for v in VARIANTS:
            sel = rs.select(lambda r: _family(r) == fam and r.metrics["variant"] == v)
            if not sel:
                continue
            cv = curves(sel)
            cells[(fam, v)] = (sel, cv)
            d = diagnose(cv)
            st = C.cell_stats(sel)
            diag[f"{fam}/{v}"] = {**d, "test_mse": st["mean"], "test_ci95": st["ci95"],
                                  "ci_basis": st["ci_basis"], "n_seeds": st["n_seeds"], "learned": st["learned"]}
            for _, row in cv.iterrows():
                rows.append({"family": fam, "variant": v, "iteration": int(row["iteration"]),
                             "train_mse": row["train"], "val_mse": row["val"], "n_seeds": int(row["n_seeds"]),
                             "train_lo": row["train_lo"], "train_hi": row["train_hi"],
                             "val_lo": row["val_lo"], "val_hi": row["val_hi"]})
    long = pd.DataFrame(rows, columns=["family", "variant", "iteration", "train_mse", "val_mse", "n_seeds",
                                       "train_lo", "train_hi", "val_lo", "val_hi"])
    long.to_csv(out / f"{NAME}.csv", index=False)
    write_by_method(long, out)

    ncol = max(1, min(4, len(families)))
    fig, axes = plt.subplots(1, ncol, figsize=(3.4 * ncol, 3.5), squeeze=False, layout="constrained")
    axes = axes[0]
    for ax, fam in zip(axes, families):
        tags = []
        for v in VARIANTS:
            if (fam, v) not in cells:
                continue
            _, cv = cells[(fam, v)]
            c = C.COLORS[v]
            ax.plot(cv["iteration"], cv["train"], color=c, ls="-", lw=0.5, alpha=0.25)
            ax.plot(cv["iteration"], smooth(cv["train"]), color=c, ls="--", lw=1.2, label=f"{v} train ({SMOOTH}-pt mean)")
            ax.plot(cv["iteration"], cv["val"], color=c, ls="-", lw=1.6, label=f"{v} validation")
            ax.fill_between(cv["iteration"], cv["val_lo"], cv["val_hi"], color=c, alpha=0.2)
            d = diag[f"{fam}/{v}"]
            if d["underfits"] or d["overfits"]:
                tags.append(f"{v} {'underfits' if d['underfits'] else 'overfits'}")
        # the diagnoses go in the title, above the axes: a label inside would cover the curves
        ax.set_title(_label(fam) + "\n" + ("; ".join(tags) or "no under- or overfitting"), fontsize=8)
        ax.set_xlabel("meta-training iteration")
    if families:
        axes[0].set_ylabel("MSE after 1 inner step")
        C.legend_below(fig, axes[0])
    else:
        axes[0].text(0.5, 0.5, "no finished runs", ha="center", transform=axes[0].transAxes)
    fig.suptitle("Motivation: MAML (1 inner step) train/validation curves, with and without TRLearner",
                 fontsize=9)
    C.save_figure(fig, out, NAME)

    missing = C.missing_runs(rs, expected)
    body = [
        f"Families D1..D4 of decreasing complexity (D1: widest frequency band; D4: one frequency). "
        f"{C.protocol_text(rs.runs)}",
        "MAML with a fixed one-step inner loop at training and evaluation. Dashed: training MSE on "
        f"the current meta-batch (new tasks every iteration, so it is noisy: faint line raw, dashed "
        f"a centred {SMOOTH}-point running mean); solid: validation MSE on fixed validation tasks, "
        "both recorded every `--eval-every` iterations. Band around the validation curve: min-max "
        "over seeds (t-interval when there are 3 or more seeds). The CSV holds the raw values.",
        f"A panel's second title line names each curve that *underfits* (its validation MSE still falls "
        f"by more than {TOL:.0%} over the last third of training, or training removed less than "
        f"{LEARN_MIN:.0%} of the first validation MSE: the loss stays high) or *overfits* (it ends more "
        f"than {TOL:.0%} above its "
        "best, reached before the last third, while the training MSE did not rise). Meta-training "
        "tasks are drawn fresh every iteration (an unbounded task pool), so meta-overfitting in the "
        "paper's sense (a finite set of training tasks) cannot occur here by construction.",
    ]
    C.write_caption(out, NAME, "Motivation curves", body, missing, planned=expected is not None)
    summary = _summary(diag, families, rs, missing)
    C.write_summary(out, summary)
    return summary


def _summary(diag: dict, families: list[str], rs: C.RunSet, missing: list[str]) -> dict:
    claim = ("MAML with one fixed inner step underfits on complex task families and overfits on "
             "simple ones; with TRLearner the curves are smoother and better.")
    parts = []
    if families:
        complex_f, simple_f = families[0], families[-1]
        b_c, b_s = diag.get(f"{complex_f}/baseline"), diag.get(f"{simple_f}/baseline")
        if b_c:
            parts.append(f"baseline on {complex_f} {'underfits' if b_c['underfits'] else 'does not underfit'} "
                         f"(val change over last third {b_c['val_change_last_third']:+.1%}, "
                         f"val MSE reduced by {b_c['val_reduction']:.0%} overall)")
        if b_s:
            parts.append(f"baseline on {simple_f} {'overfits' if b_s['overfits'] else 'does not overfit'}")
        better = smoother = both = 0
        for f in families:
            b, t = diag.get(f"{f}/baseline"), diag.get(f"{f}/trlearner")
            if b and t:
                both += 1
                better += t["final_val"] < b["final_val"]
                smoother += t["roughness"] < b["roughness"]
        if both:
            parts.append(f"TRLearner ends with lower validation MSE on {better}/{both} families and "
                         f"a smoother validation curve on {smoother}/{both}")
        failed = C.not_learned((cell, d.get("learned")) for cell, d in diag.items())
        agrees, verdict = C.verdict(bool(b_c and b_c["underfits"] and b_s and b_s["overfits"] and both
                                         and better == both), parts, failed, len(diag), in_full=True)
    else:
        agrees, verdict, failed = None, "no finished runs", []
    return {"analysis": NAME, "claim": claim, "measured": diag, "agrees": agrees, "verdict": verdict,
            "not_learned": failed, "n_cells": len(diag), "n_runs": len(rs.runs), "missing_runs": missing}

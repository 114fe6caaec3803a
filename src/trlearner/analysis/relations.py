"""Analysis 3, task relation heatmaps: the relation matrix M of three TRLearner variants on
25 fixed validation tasks ordered by a task parameter (amplitude for the sinusoid), each with
the test MSE it gives.

Variants (read from each run's ``trlearner`` settings, not its path):

- ``fixed_cosine``: ``--fixed-omega --heads 1`` -- plain cosine of task representations;
- ``one_head``: ``--heads 1``, omega learned;
- ``k_heads``: ``--heads K`` (K > 1), omega learned.

The matrix shown is ``relation.pt["probe"]`` averaged over seeds (the probe tasks are the
same for every run). *Structure* = Spearman correlation, over the off-diagonal pairs (i < j),
between ``m_ij`` and ``-|p_i - p_j|`` (p: the ordering parameter): 1 means tasks with
similar parameters are exactly the most related.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from trlearner.analysis import common as C

NAME = "relations"
VARIANTS = ("fixed_cosine", "one_head", "k_heads")
TITLES = {"fixed_cosine": "fixed cosine (omega = 1)", "one_head": "one learned head", "k_heads": "K learned heads"}


def variant_of(r: C.Run) -> str:
    t = r.metrics.get("trlearner")
    if not t:
        return "baseline"
    if not t.get("learn_omega", True):
        return "fixed_cosine"
    return "one_head" if int(t["heads"]) == 1 else "k_heads"


def load_probe(r: C.Run):
    """(probe relation matrix [25, 25], {task parameter: values [25]}, ordering key) of a
    TRLearner run's ``relation.pt``, or None without one. Loaded with ``weights_only=True``:
    a file holding anything but tensors and plain data raises ValueError and runs nothing."""
    from trlearner.run.folder import CheckpointError, load_plain

    p = r.path / "relation.pt"
    if not p.exists():
        return None
    try:
        d = load_plain(p)
    except CheckpointError as exc:
        raise ValueError(f"{exc}; rerun that run (delete {p.parent}/metrics.json) to rewrite it") from exc
    info = {k: np.asarray(v, dtype=float) for k, v in (d.get("probe_info") or {}).items()}
    return np.asarray(d["probe"], dtype=float), info, d.get("probe_order_by")


def structure(m: np.ndarray, param: np.ndarray | None) -> float:
    if param is None or len(param) != len(m):
        return math.nan
    from scipy.stats import spearmanr

    i, j = np.triu_indices(len(m), k=1)
    a, b = m[i, j], -np.abs(param[i] - param[j])
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    rho = spearmanr(m[i, j], -np.abs(param[i] - param[j])).correlation
    return float(rho)


def analyse(runs_dir, out_dir, expected: list[str] | None = None) -> dict:
    plt, out, rs = C.start(runs_dir, out_dir)
    base = rs.select(lambda r: variant_of(r) == "baseline")
    rows, mats, entries = [], {}, []
    for v in VARIANTS:
        sel = rs.select(lambda r, v=v: variant_of(r) == v)
        if not sel:
            continue
        probes = [p for p in (load_probe(r) for r in sel) if p is not None]
        st = C.cell_stats(sel)
        heads = sorted({int(r.metrics["trlearner"]["heads"]) for r in sel})
        row = {"variant": v, "heads": " ".join(map(str, heads)), **st}
        if probes:
            m = np.mean([p[0] for p in probes], axis=0)
            info, key = probes[0][1], probes[0][2]
            param = info.get(key) if key else None
            mats[v] = (m, param, key, len(probes))
            off = m[~np.eye(len(m), dtype=bool)]
            row.update(structure=structure(m, param), offdiag_mean=float(off.mean()), offdiag_sd=float(off.std()),
                       n_probes=len(probes), order_by=key)
            for i in range(len(m)):
                for j in range(len(m)):
                    entries.append({"variant": v, "i": i, "j": j, "m_ij": m[i, j],
                                    f"{key}_i": None if param is None else param[i],
                                    f"{key}_j": None if param is None else param[j]})
        if base:
            d = C.paired_diff(sel, base)
            row.update(diff_vs_baseline=d["diff"], diff_ci95=d["ci95"], pair_learned=C.pair_learned(sel, base))
        rows.append(row)
    if base:
        rows.append({"variant": "baseline", "heads": "", **C.cell_stats(base)})
    cols = ["variant", "heads", *C.CELL_COLUMNS, "structure", "offdiag_mean", "offdiag_sd", "n_probes", "order_by",
            "diff_vs_baseline", "diff_ci95", "pair_learned"]
    df = pd.DataFrame(rows).reindex(columns=cols)
    df.to_csv(out / f"{NAME}.csv", index=False)
    pd.DataFrame(entries).to_csv(out / f"{NAME}_matrix.csv", index=False)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    im = None
    for ax, v in zip(axes, VARIANTS):
        r = df[df.variant == v]
        if v not in mats:
            ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(TITLES[v], fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
            continue
        m, param, key, n = mats[v]
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
        row = r.iloc[0]
        ax.set_title(f"{TITLES[v]}, K={row['heads']}\ntest MSE {row['mean']:.3f} ± {row['ci95']:.3f}, "
                     f"structure ρ = {row['structure']:.2f}", fontsize=8)
        ticks = list(range(0, len(m), 6))
        ax.set_xticks(ticks), ax.set_yticks(ticks)
        if param is not None:
            ax.set_xticklabels([f"{param[t]:.1f}" for t in ticks])
            ax.set_yticklabels([f"{param[t]:.1f}" for t in ticks])
        ax.set_xlabel(f"task j ({key}, ascending)")
        ax.set_ylabel(f"task i ({key}, ascending)")
    if im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.85, label="relation m_ij (mean cosine over heads)")
    fig.suptitle("Task relation matrices on 25 fixed validation tasks", fontsize=9)
    C.save_figure(fig, out, NAME)

    missing = C.missing_runs(rs, expected)
    bl = df[df.variant == "baseline"]
    body = [C.protocol_text(rs.runs),
            "Each panel: TRLearner's relation matrix M (m_ij = mean over heads of the cosine of the "
            "omega-weighted task representations) on 25 fixed validation tasks, sorted by the task "
            "parameter on the axes, averaged over the seeds' matrices. Colour scale fixed to [-1, 1]. "
            "Panel title: test MSE ± 95% CI of that variant and the structure score ρ (Spearman "
            "correlation of m_ij with -|p_i - p_j| over pairs i < j).",
            ("Baseline MAML (no TRLearner) test MSE: "
             f"{bl.iloc[0]['mean']:.3f} ± {bl.iloc[0]['ci95']:.3f}." if len(bl) else "No baseline run."),
            f"CI basis: {'; '.join(sorted(set(df['ci_basis'].dropna()))) or 'n/a'}."]
    C.write_caption(out, NAME, "Task relation heatmaps", body, missing, planned=expected is not None)
    by_v = {v: rs.select(lambda r, v=v: variant_of(r) == v) for v in VARIANTS}
    pairs = {f"k_heads - {v}": C.paired_diff(by_v["k_heads"], by_v[v]) for v in VARIANTS[:2]
             if by_v["k_heads"] and by_v[v]}
    summary = _summary(df, rs, missing, pairs)
    C.write_summary(out, summary)
    return summary


def _summary(df, rs, missing, pairs: dict) -> dict:
    claim = "The multi-head learned relation matrix shows the clearest structure and gives the best accuracy."
    have = df[df.variant.isin(VARIANTS)].set_index("variant")
    measured = {v: {k: have.loc[v, k] for k in ("mean", "ci95", "structure", "heads")} for v in have.index}
    if len(have) < 2 or "k_heads" not in have.index:
        return {"analysis": NAME, "claim": claim, "measured": measured, "agrees": None,
                "verdict": "not enough variants for a verdict", "n_runs": len(rs.runs), "missing_runs": missing}
    best_mse = have["mean"].idxmin()
    best_struct = have["structure"].idxmax() if have["structure"].notna().any() else None
    # k_heads best beyond CI? (task-paired differences k_heads - other)
    clearly = bool(pairs) and all(d["diff"] + d["ci95"] < 0 for d in pairs.values())
    within = bool(pairs) and all(abs(d["diff"]) <= d["ci95"] for d in pairs.values())
    parts = [f"lowest test MSE: {best_mse} ({have.loc[best_mse, 'mean']:.4f})"
               f"{' — clearly, beyond the CIs' if best_mse == 'k_heads' and clearly else ''}"
               f"{'; K-head MSE is within the paired CI of the other variants' if within else ''}"
               + "".join(f"; {n}: ΔMSE {C.interval_text(d, '.4f')}" for n, d in pairs.items()) + "; "
               f"clearest structure (Spearman ρ): {best_struct} ("
               + ", ".join(f"{v} ρ={have.loc[v, 'structure']:.2f}" for v in have.index) + ")"]
    failed = C.not_learned((v, r.get("learned")) for v, r in have.iterrows())
    agrees, verdict = C.verdict(best_mse == "k_heads" and best_struct == "k_heads", parts, failed, len(have))
    return {"analysis": NAME, "claim": claim, "measured": measured, "comparisons": pairs, "agrees": agrees,
            "verdict": verdict, "not_learned": failed, "n_cells": len(have), "n_runs": len(rs.runs),
            "missing_runs": missing}

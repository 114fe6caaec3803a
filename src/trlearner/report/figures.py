"""The main-results figure: baseline and TRLearner per cell with their 95 % CIs, beside the
paper's values (one panel per metric), written as PNG and PDF.

Example:
    >>> import tempfile, pathlib, pandas as pd
    >>> from trlearner.report.reference import Reference
    >>> cells = pd.DataFrame([dict(dataset="sinusoid", setting="5shot", algorithm="maml",
    ...     variant=v, state="ok", mean=m, ci95=0.05, metric="mse", reduced=False)
    ...     for v, m in (("baseline", 0.6), ("trlearner", 0.45))])
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> rows = main_results_figure(cells, Reference.load(), out / "main_results")
    >>> rows, (out / "main_results.png").exists(), (out / "main_results.pdf").exists()
    (1, True, True)
"""

from __future__ import annotations

import math
from pathlib import Path
import pandas as pd

from . import escape
from .reference import Reference
from trlearner.run.records.stats import records
from .tables import DAGGER, setting_sort_key

METRIC_NAMES = {"mse": "MSE (lower is better)", "accuracy": "accuracy % (higher is better)",
                "r2": "R² (higher is better)"}
COLORS = {"baseline": "#1f77b4", "trlearner": "#d62728"}

CAPTION = ("Main results: each row is one (dataset, setting, algorithm) cell; dots are our mean "
           "with its 95 % CI (seeds, or test tasks for 1 seed), blue the baseline, red + TRLearner; "
           "black crosses are the paper's values where known. † marks a reduced protocol (not "
           "comparable to the paper). Numbers: the tables below.")


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, stem: Path) -> None:
    from .files import written  # whole files or none (a full disk leaves the old figure)

    with written(stem.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    with written(stem.with_suffix(".pdf")) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "Producer": None})


def main_results_figure(resolved: pd.DataFrame, reference: Reference, stem: str | Path) -> int:
    """Draw every cell with a value into ``<stem>.png`` and ``<stem>.pdf``; return the row count.

    Arguments:
        resolved: the cells of :func:`trlearner.report.tables.resolve_cells` (state, mean, ci95,
            metric, reduced).
        reference: the paper's values (:class:`Reference`).
        stem: output path without suffix.

    Returns:
        The number of (dataset, setting, algorithm) rows drawn (0: the figure only says so).
    """
    ok = [r for r in records(resolved) if r.get("state") == "ok"
          and isinstance(r.get("mean"), float) and math.isfinite(r["mean"])] if len(resolved) else []
    groups: dict[str, dict[tuple, dict]] = {}
    for r in ok:
        groups.setdefault(r.get("metric") or "metric", {}).setdefault(
            (r["dataset"], r["setting"], r["algorithm"]), {})[r["variant"]] = r
    plt = pyplot()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if not groups:  # still a figure: the pipeline's output exists whatever ran
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "No cell has a value yet (see REPORT.md, Missing cells).", ha="center", va="center")
        _save(fig, stem)
        plt.close(fig)
        return 0
    metrics = sorted(groups)
    heights = [max(1, len(groups[m])) for m in metrics]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(8, 1.2 + 0.42 * sum(heights) + 0.6 * len(metrics)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        keys = sorted(groups[metric], key=lambda k: (k[0], setting_sort_key(k[1]), reference.algorithm_rank(k[2])))
        labels = []
        for y, key in enumerate(keys):
            variants = groups[metric][key]
            reduced = any(v.get("reduced") for v in variants.values())
            label = f"{key[0]} {key[1]} {reference.algorithm_label(key[2])}" + (f" {DAGGER}" if reduced else "")
            labels.append(escape.mathtext(label))
            for offset, variant in ((-0.15, "baseline"), (0.15, "trlearner")):
                rec = variants.get(variant)
                if rec is not None:
                    half = rec.get("ci95")  # accuracies are in percent already (runs.py)
                    half = half if isinstance(half, float) and math.isfinite(half) else None
                    ax.errorbar(rec["mean"], y + offset, xerr=half, fmt="o", color=COLORS[variant],
                                capsize=3, ms=4, label=("baseline" if variant == "baseline" else "+ TRLearner")
                                if y == 0 else None)
                entry = reference.paper_value(key[0], key[1], key[2], variant)
                if entry is not None:
                    ax.plot(float(entry["value"]), y + offset, "x", color="black", ms=7,
                            label="paper" if variant == "baseline" else None)
        ax.set_yticks(range(len(keys)), labels, fontsize=8)
        ax.set_ylim(len(keys) - 0.5, -0.5)
        ax.set_xlabel(METRIC_NAMES.get(metric, metric), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        uniq = dict(zip(names, handles))
        ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="best")
    axes[0, 0].set_title("Baseline vs + TRLearner per cell (95 % CI), paper values as ×", fontsize=10)
    fig.tight_layout()
    _save(fig, stem)
    plt.close(fig)
    return sum(len(groups[m]) for m in metrics)

"""A pre-registered sequential rule for the seeds of a paired arm: stop when the data decide.

An *arm* is one TRLearner interpretation paired by seed with its baseline; its numbers are the
per-seed paired differences ``d_s = m_s(TRLearner) - m_s(baseline)``. A fixed 15 seeds per arm
made the claims audit unaffordable (about 24 CPU-hours), so seeds are added in looks until the
paired CI answers the question "does the arm's effect match the paper's?":

- the looks are at ``n_1 < n_2 < ... < n_K`` seeds (:data:`LOOKS`: 4, 8, 12, 16);
- at look k the CI is the paired Student-t interval at level ``1 - alpha / K`` (Bonferroni over
  the K looks), so that the chance that *any* look's CI misses the true effect is at most
  ``alpha`` (= 0.05), whatever the stopping;
- **stop, excludes** when the paper's effect lies outside the CI: the arm is incompatible with
  the paper;
- **stop, contains** when the paper's effect lies inside the CI and its half-width is at most
  :data:`PRECISION` (0.095 MSE: a CI that narrow around -0.193 also excludes 0): compatible;
- otherwise **continue** to the next look; at the last look the arm stops either way
  (**contains, imprecise** when the CI contains the paper's effect but is wider than the
  precision).

The error rate over all looks (an arm whose true effect *is* the paper's, declared "excludes")
is at most ``alpha`` by the Bonferroni bound; ``tests/test_sequential.py`` checks it by
simulation (normal differences with the sd measured on the known cell, 0.0876) together with
the rule's power against an effect of 0. docs/CALIBRATION.md ("Seeds decided by the data")
states the rule.

Example:
    >>> look([-0.02, 0.01, -0.05, 0.03], paper_effect=-0.193).verdict
    'excludes'
    >>> look([-0.2, -0.15, -0.25, -0.18], paper_effect=-0.193).verdict   # contains, CI still wide
    'continue'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats

#: Seeds at each look (cumulative): seeds 0..3, then 0..7, 0..11, 0..15.
LOOKS = (4, 8, 12, 16)
#: Family-wise error rate over all looks.
ALPHA = 0.05
#: Half-width at which a CI that contains the paper's effect is precise enough to stop (MSE):
#: below half the paper's |effect| (0.193 / 2), such a CI also excludes 0, i.e. the effect is
#: reproduced, not merely not refuted.
PRECISION = 0.095


@dataclass(frozen=True)
class Look:
    """The rule's answer at one look."""

    n: int  # paired seeds used
    mean: float  # mean paired difference
    half: float  # CI half-width at level 1 - alpha / K
    verdict: str  # "excludes", "contains", "contains, imprecise" or "continue"

    @property
    def stop(self) -> bool:
        return self.verdict != "continue"


def look(diffs: Sequence[float], paper_effect: float, looks: Sequence[int] = LOOKS, alpha: float = ALPHA,
         precision: float = PRECISION) -> Look:
    """Apply the rule to the paired differences of the seeds so far (``len(diffs)`` must be a
    look's seed count).

    Raises:
        ValueError: ``len(diffs)`` is not one of ``looks``.
    """
    n = len(diffs)
    if n not in looks:
        raise ValueError(f"{n} paired seeds is not a look; looks are at {list(looks)} seeds")
    mean = math.fsum(diffs) / n
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = float(stats.t.ppf(1 - alpha / (2 * len(looks)), n - 1)) * sd / math.sqrt(n)
    inside = mean - half <= paper_effect <= mean + half
    if not inside:
        verdict = "excludes"
    elif half <= precision:
        verdict = "contains"
    elif n == max(looks):
        verdict = "contains, imprecise"
    else:
        verdict = "continue"
    return Look(n, mean, half, verdict)


def run_rule(diffs: Sequence[float], paper_effect: float, looks: Sequence[int] = LOOKS, alpha: float = ALPHA,
             precision: float = PRECISION) -> Look:
    """The look at which an arm with these per-seed differences (in seed order) stops."""
    for n in looks:
        answer = look(diffs[:n], paper_effect, looks, alpha, precision)
        if answer.stop:
            return answer
    raise AssertionError("the last look always stops")  # pragma: no cover


def look_reached(base: dict, trl: dict, paper_effect: float) -> Look | None:
    """The rule's answer for per-seed means ``{seed: mean}`` of both sides: over seeds 0..n-1
    paired without a gap, the first look that stops, else the last look reached; None before
    the first look."""
    n = 0
    while n in base and n in trl:
        n += 1
    at = None
    for k in (k for k in LOOKS if k <= n):
        at = look([trl[s] - base[s] for s in range(k)], paper_effect)
        if at.stop:
            break
    return at


def _arms(runs, interp):
    """(label, dataset, setting, algorithm, reduced, {seed: baseline}, {seed: TRLearner}) of every
    arm: each table cell's TRLearner against its baseline, then each interpretation (ablation
    point) of a cell against the same baseline."""
    ok = runs[runs["status"] == "ok"]
    reduced = lambda frame: bool(frame["reduced"].fillna(False).astype(bool).any())
    out = []
    for (dataset, setting, algorithm), cell in ok.groupby(["dataset", "setting", "algorithm"], sort=True):
        by = {v: dict(zip(g["seed"].astype(int), g["mean"])) for v, g in cell.groupby("variant")}
        base = by.get("baseline", {})
        if "trlearner" in by:
            out.append(("TRLearner (defaults)", dataset, setting, algorithm, reduced(cell), base, by["trlearner"]))
        if interp is None or not len(interp):
            continue
        mine = interp[(interp["status"] == "ok") & (interp["dataset"] == dataset) & (interp["setting"] == setting)
                      & (interp["algorithm"] == algorithm) & (interp["variant"] == "trlearner")]
        for (ablation, key, value), point in mine.groupby(["ablation", "key", "value"], sort=True):
            out.append((f"{key} = {value}", dataset, setting, algorithm, reduced(point) or reduced(cell), base,
                        dict(zip(point["seed"].astype(int), point["mean"]))))
    return out


def sequential_markdown(runs, reference, interp=None) -> str:
    """The section "Sequential rule" of REPORT.md: for every arm on a known paper cell (the table's
    TRLearner runs, and each interpretation of ``interp`` against the same baseline), the look at
    which the rule stopped and why, or which seeds it asks for next (seeds 0..n-1 of both sides
    ok), or ``""`` when no arm reaches the first look. An arm under a reduced protocol is listed
    with its look, marked: its verdict says nothing about the paper.

    Arguments:
        runs: the report's counted runs (``trlearner.run.records.scan.RUN_COLUMNS``).
        reference: the paper's numbers (:class:`trlearner.report.reference.Reference`).
        interp: counted ablation runs (:func:`trlearner.report.claims.interpretation_runs`), or None.
    """
    if not len(runs):
        return ""
    lines = []
    for label, dataset, setting, algorithm, reduced, base, trl in _arms(runs, interp):
        paper_base = reference.paper_value(dataset, setting, algorithm, "baseline")
        paper_trl = reference.paper_value(dataset, setting, algorithm, "trlearner")
        if paper_base is None or paper_trl is None:
            continue
        paper = float(paper_trl["value"]) - float(paper_base["value"])
        at = look_reached(base, trl, paper)
        if at is None:
            continue
        verdict = {"excludes": "**stop: incompatible** (the paper's effect lies outside the CI)",
                   "contains": "**stop: compatible** (the CI contains the paper's effect and excludes 0)",
                   "contains, imprecise": "**stop at the last look: the CI contains the paper's effect, "
                                          "but is wider than the rule's precision**",
                   "continue": f"**continue**: run seeds {at.n}..{at.n + LOOKS[0] - 1} of both sides "
                               f"(next look at {at.n + LOOKS[0]} seeds)"}[at.verdict]
        look_no = LOOKS.index(at.n) + 1
        note = " (reduced protocol: the rule ran; its verdict says nothing about the paper)" if reduced else ""
        lines.append(f"- {reference.algorithm_label(algorithm)} on {dataset} {setting}, {label}: look {look_no} "
                     f"({at.n} seeds), effect {at.mean:+.3f} ± {at.half:.3f} (level {1 - ALPHA / len(LOOKS):.4f}), "
                     f"paper {paper:+.3f}: {verdict}{note}.")
    if not lines:
        return ""
    return "\n".join(["## Sequential rule", "",
                      f"Seeds decided by the data (docs/CALIBRATION.md, \"Seeds decided by the data\"): looks at "
                      f"{', '.join(map(str, LOOKS))} paired seeds, Bonferroni CI over the looks.",
                      f"The error rate over all looks is at most {ALPHA:.0%}. An arm stops when the paper's effect "
                      f"is outside its CI, or inside it with a half-width of at most {PRECISION}.", "", *lines, ""])

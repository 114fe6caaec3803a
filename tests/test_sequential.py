"""The sequential seed rule (issue 26): its decisions by hand and its error rate over all looks
by simulation (docs/CALIBRATION.md, "Seeds decided by the data")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from trlearner.report.sequential import ALPHA, LOOKS, PRECISION, look, run_rule

PAPER = -0.193  # TRLearner - baseline on the known cell (0.400 - 0.593)
SD = 0.0876  # sd of the paired differences measured on the known cell (docs/PIPELINE.md)


def test_a_look_by_hand():
    d = [-0.02, 0.01, -0.05, 0.03]
    mean = -0.0075
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    half = stats.t.ppf(1 - 0.05 / 8, 3) * sd / 2  # Bonferroni over 4 looks, two-sided
    a = look(d, PAPER)
    assert a.n == 4 and a.mean == pytest.approx(mean) and a.half == pytest.approx(half)
    assert a.verdict == "excludes" and a.stop


def test_contains_stops_only_when_precise_and_the_last_look_always_stops():
    rng = np.random.default_rng(0)
    wide = list(PAPER + rng.normal(0, 0.3, 16))
    assert look(wide[:4], PAPER).verdict == "continue"
    last = run_rule(wide, PAPER)
    assert last.n == 16 and last.verdict in ("contains, imprecise", "excludes")
    tight = [PAPER + e for e in (0.001, -0.001, 0.002, -0.002)]
    assert look(tight, PAPER).verdict == "contains" and look(tight, PAPER).half <= PRECISION
    with pytest.raises(ValueError, match="not a look"):
        look(tight[:3], PAPER)


def test_error_rate_over_all_looks_is_at_most_alpha_and_power_against_no_effect():
    """20,000 simulated arms whose true effect is the paper's: the share declared "excludes" at
    any look is at most alpha (Bonferroni bound; plus 3 Monte-Carlo standard errors). Against a
    true effect of 0 (what the default preset measured), the rule excludes the paper's effect
    nearly always, with 8 seeds or fewer on average (16 at most)."""
    rng = np.random.default_rng(1)
    sims = 20_000
    wrong = sum(run_rule(list(PAPER + rng.normal(0, SD, max(LOOKS))), PAPER).verdict == "excludes"
                for _ in range(sims))
    assert wrong / sims <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / sims), wrong / sims
    stops = [run_rule(list(rng.normal(0, SD, max(LOOKS))), PAPER) for _ in range(2000)]
    assert sum(s.verdict == "excludes" for s in stops) / 2000 > 0.99
    assert sum(s.n for s in stops) / 2000 <= 8


def _cell(tmp_path, diffs):
    from test_report_fixtures import write_run

    from trlearner.run.records.scan import load_runs

    for seed, d in enumerate(diffs):
        base = 0.6 + 0.01 * seed
        write_run(tmp_path, "sinusoid", "maml", "baseline", seed, shots=5, per_task=[base - 0.1, base + 0.1])
        write_run(tmp_path, "sinusoid", "maml", "trlearner", seed, shots=5, per_task=[base + d - 0.1, base + d + 0.1])
    return load_runs(tmp_path)


def test_the_report_section_gives_the_rules_answer_at_the_look_reached(tmp_path):
    from trlearner.report.reference import Reference
    from trlearner.report.sequential import sequential_markdown

    ref = Reference.load()
    text = sequential_markdown(_cell(tmp_path / "a", [-0.02, 0.01, -0.05, 0.03, 0.0]), ref)
    assert "MAML on sinusoid 5shot, TRLearner (defaults): look 1 (4 seeds), effect -0.008 ± " in text
    assert "paper -0.193: **stop: incompatible**" in text
    wide = sequential_markdown(_cell(tmp_path / "b", [-0.4, 0.05, -0.3, -0.1]), ref)
    assert "**continue**: run seeds 4..7 of both sides (next look at 8 seeds)" in wide
    assert sequential_markdown(_cell(tmp_path / "c", [-0.2, -0.2, -0.2]), ref) == ""  # no look reached


def test_the_report_section_gives_each_interpretation_its_own_look(tmp_path):
    """An interpretation (ablation point) pairs with the table's baseline: its own look and verdict."""
    from trlearner.report.reference import Reference
    from trlearner.report.sequential import sequential_markdown

    runs = _cell(tmp_path / "a", [-0.02, 0.01, -0.05, 0.03])
    point = _cell(tmp_path / "b", [-0.4, 0.05, -0.3, -0.1])
    interp = point[point["variant"] == "trlearner"].assign(ablation="lam", key="lam", value="1.0")
    text = sequential_markdown(runs, Reference.load(), interp)
    rows = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(rows) == 2
    assert "TRLearner (defaults): look 1 (4 seeds)" in rows[0] and "**stop: incompatible**" in rows[0]
    assert rows[1].startswith("- MAML on sinusoid 5shot, lam = 1.0: look 1 (4 seeds), effect -0.188 ± ")
    assert "**continue**: run seeds 4..7" in rows[1]

"""Statistics of the report, checked against hand computations."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report_fixtures import standard_results, write_run  # noqa: E402

from trlearner.run.records.scan import load_runs  # noqa: E402
from trlearner.run.records.stats import (CI_SEEDS, CI_TASKS, PAIR_SEEDS, PAIR_TASKS,  # noqa: E402
                                    aggregate_cells, paired_differences, t_halfwidth)

T_975_2 = 4.302652729911275   # Student-t 0.975 quantile, 2 degrees of freedom (tables)
T_975_3 = 3.182446305284263   # 3 degrees of freedom


@pytest.fixture()
def runs(tmp_path):
    standard_results(tmp_path / "runs")
    return load_runs(tmp_path / "runs", relative_to=tmp_path)


def _cell(cells, dataset, setting, algorithm, variant):
    sel = cells[(cells.dataset == dataset) & (cells.setting == setting) &
                (cells.algorithm == algorithm) & (cells.variant == variant)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_t_halfwidth_by_hand():
    assert t_halfwidth([0.5, 0.6, 0.7]) == pytest.approx(T_975_2 * 0.1 / math.sqrt(3), rel=1e-9)
    assert t_halfwidth([0.5, 0.6, 0.7]) == pytest.approx(0.248414, abs=1e-6)
    assert math.isnan(t_halfwidth([0.5]))


def test_three_seeds_mean_and_t_ci(runs):
    cells = aggregate_cells(runs)
    base = _cell(cells, "sinusoid", "5shot", "maml", "baseline")
    assert base["n"] == 3 and base["seeds"] == (0, 1, 2)
    assert base["mean"] == pytest.approx(0.6)
    assert base["ci95"] == pytest.approx(T_975_2 * 0.1 / math.sqrt(3))
    assert base["ci_kind"] == CI_SEEDS
    trl = _cell(cells, "sinusoid", "5shot", "maml", "trlearner")
    # values 0.40, 0.45, 0.53: mean 0.46, sample sd sqrt((0.06^2+0.01^2+0.07^2)/2)
    sd = math.sqrt((0.06 ** 2 + 0.01 ** 2 + 0.07 ** 2) / 2)
    assert trl["mean"] == pytest.approx(0.46)
    assert trl["ci95"] == pytest.approx(T_975_2 * sd / math.sqrt(3))


def test_one_seed_falls_back_to_task_ci(runs):
    cell = _cell(aggregate_cells(runs), "sinusoid", "10shot", "maml", "baseline")
    assert cell["n"] == 1 and cell["ci_kind"] == CI_TASKS
    assert cell["mean"] == pytest.approx(0.30)
    assert cell["ci95"] == pytest.approx(0.0800)  # the run's own ci95 (1.96 sd / sqrt(4) of its per-task values)


def test_paired_over_seeds_by_hand(runs):
    diffs = paired_differences(runs)
    row = diffs[(diffs.dataset == "sinusoid") & (diffs.setting == "5shot")].iloc[0]
    d = [0.40 - 0.5, 0.45 - 0.6, 0.53 - 0.7]               # -0.10, -0.15, -0.17
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)     # sqrt(0.0013)
    t = mean / (sd / math.sqrt(3))
    p = 1 - abs(t) / math.sqrt(t * t + 2)                   # two-sided p, closed form for df=2
    assert row["pairing"] == PAIR_SEEDS and row["n"] == 3
    assert row["diff"] == pytest.approx(-0.14)
    assert sd == pytest.approx(math.sqrt(0.0013))
    assert row["ci95"] == pytest.approx(T_975_2 * sd / math.sqrt(3))
    assert row["p"] == pytest.approx(p, rel=1e-9)
    assert row["p"] == pytest.approx(0.02140, abs=1e-4)


def test_one_seed_pairs_over_tasks(runs):
    diffs = paired_differences(runs)
    row = diffs[(diffs.dataset == "sinusoid") & (diffs.setting == "10shot")].iloc[0]
    d = [-0.05, -0.02, -0.10, -0.03]
    sd = math.sqrt(sum((x + 0.05) ** 2 for x in d) / 3)     # sqrt(0.0038 / 3)
    assert row["pairing"] == PAIR_TASKS and row["n"] == 4
    assert row["diff"] == pytest.approx(-0.05)
    assert row["ci95"] == pytest.approx(T_975_3 * sd / 2)
    assert row["p"] == pytest.approx(0.0673, abs=1e-4)


def test_diverged_run_is_not_averaged(runs):
    cells = aggregate_cells(runs)
    cell = _cell(cells, "harmonic", "5shot", "maml", "trlearner")
    assert cell["n"] == 0 and cell["n_diverged"] == 1 and math.isnan(cell["mean"])
    assert cell["diverged_at"] == [(0, 1234)]
    diffs = paired_differences(runs)
    row = diffs[(diffs.dataset == "harmonic") & (diffs.algorithm == "maml")].iloc[0]
    assert pd.isna(row["pairing"]) and math.isnan(row["diff"])


def test_reduced_flag_propagates(runs):
    cell = _cell(aggregate_cells(runs), "harmonic", "5shot", "anil", "baseline")
    assert bool(cell["reduced"]) is True
    assert not bool(_cell(aggregate_cells(runs), "sinusoid", "5shot", "maml", "baseline")["reduced"])


def test_different_test_episodes_are_not_paired_over_tasks(tmp_path):
    write_run(tmp_path, "sinusoid", "maml", "baseline", 0, shots=5, per_task=[0.3, 0.4])
    run = write_run(tmp_path, "sinusoid", "maml", "trlearner", 0, shots=5, per_task=[0.2, 0.3])
    metrics = (run / "metrics.json").read_text().replace('"ep-sinusoid-5shot"', '"other-episodes"')
    (run / "metrics.json").write_text(metrics)
    row = paired_differences(load_runs(tmp_path)).iloc[0]
    assert pd.isna(row["pairing"]) and math.isnan(row["ci95"]) and math.isnan(row["p"])
    assert row["diff"] == pytest.approx(-0.1)


def test_accuracy_fraction_is_shown_in_percent(runs):
    cell = _cell(aggregate_cells(runs), "omniglot", "5way1shot", "maml", "baseline")
    assert cell["mean"] == pytest.approx(95.0) and cell["ci95"] == pytest.approx(5.66)


def test_failed_run_is_recorded_with_its_log(runs):
    failed = runs[runs.status == "failed"]
    assert len(failed) == 1
    assert failed.iloc[0]["log"] == "runs/omniglot/5way1shot/protonet/baseline/seed0/log.txt"


def test_r2_cells_show_median_and_count_above_threshold():
    import pandas as pd

    from trlearner.run.records.stats import aggregate_cells
    from trlearner.report.tables import _ours_text

    runs = pd.DataFrame({"dataset": "pqsar", "setting": "10shot", "algorithm": "maml", "variant": "baseline",
                         "seed": [0, 1], "status": "ok", "metric": "r2", "higher_is_better": True,
                         "mean": [0.3, 0.2625], "ci95": 0.1, "n_tasks": 4,
                         "per_task": [(0.1, 0.5, 0.4, 0.2), (0.6, 0.35, 0.1, 0.0)],
                         "reduced": False, "diverged_at": None})
    cell = aggregate_cells(runs).iloc[0]
    # medians 0.3 and 0.225 -> 0.2625; above 0.3: 2 and 2 of 4
    assert cell["median_task"] == pytest.approx(0.2625) and cell["tasks_above"] == 2 and cell["tasks"] == 4
    text = _ours_text({**cell.to_dict(), "state": "ok"}, 3)
    assert "median 0.26; R² > 0.3: 2 of 4 tasks" in text
    mse = aggregate_cells(runs.assign(metric="mse")).iloc[0]
    assert "median" not in _ours_text({**mse.to_dict(), "state": "ok"}, 3)


# ------------------------------------------------------------- power and seed counts (issue 15)

# Seeds measured for MAML sinusoid 5-shot at commit a46f11d (issue 15): (baseline, TRLearner).
AMD_EPYC = [(0.650, 0.583), (0.632, 0.601), (0.569, 0.607)]
INTEL_XEON = [(0.6118, 0.5870), (0.6158, 0.5914), (0.6010, 0.5885)]
T_975 = {1: 12.706204736174696, 2: 4.302652729911275, 3: 3.182446305284263,
         4: 2.7764451051977934, 5: 2.570581835636314, 6: 2.446911848791681}   # t tables


def _diffs(pairs):
    return [t - b for b, t in pairs]


def _sd(values):
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def test_paired_power_and_mde_match_g_power():
    from trlearner.run.records.stats import min_detectable_effect, paired_t_power

    # G*Power 3, "Means: difference from constant (one sample case)", two tails, alpha 0.05:
    # dz = 0.5 needs 34 pairs (actual power 0.8078); dz = 0.8 needs 15 (0.8213)
    assert paired_t_power(0.5, 1.0, 34) == pytest.approx(0.8078, abs=1e-4)
    assert paired_t_power(0.8, 1.0, 15) == pytest.approx(0.8213, abs=1e-4)
    assert paired_t_power(-0.5, 1.0, 34) == paired_t_power(0.5, 1.0, 34)
    assert min_detectable_effect(1.0, 34) < 0.5 < min_detectable_effect(1.0, 33)
    assert min_detectable_effect(1.0, 15) < 0.8 < min_detectable_effect(1.0, 14)
    assert paired_t_power(min_detectable_effect(0.05, 3), 0.05, 3) == pytest.approx(0.80, abs=1e-9)
    # large n: the normal formula (z_0.975 + z_0.80) * sd / sqrt(n) = 2.8016 * sd / sqrt(n)
    assert min_detectable_effect(1.0, 10_000) * 100 == pytest.approx(1.959964 + 0.841621, rel=1e-3)
    # the mde scales with sd; undefined for one pair; zero spread detects any effect
    assert min_detectable_effect(0.2, 5) == pytest.approx(2 * min_detectable_effect(0.1, 5))
    assert math.isnan(min_detectable_effect(0.1, 1)) and min_detectable_effect(0.0, 3) == 0.0


def test_paired_differences_carry_sd_and_mde(runs):
    from trlearner.run.records.stats import min_detectable_effect

    row = paired_differences(runs).set_index(["dataset", "setting"]).loc[("sinusoid", "5shot")]
    assert row["sd"] == pytest.approx(math.sqrt(0.0013))
    assert row["mde"] == pytest.approx(min_detectable_effect(math.sqrt(0.0013), 3))
    assert 0.117 < row["mde"] < 0.118      # 3.264 sd (noncentral t, df 2, power 0.80)


def test_seeds_for_halfwidth_by_hand():
    from trlearner.run.records.stats import seeds_for_halfwidth

    def half(sd, n):
        return T_975[n - 1] * sd / math.sqrt(n)

    amd, intel = _sd(_diffs(AMD_EPYC)), _sd(_diffs(INTEL_XEON))
    assert amd == pytest.approx(0.053357, abs=1e-6) and intel == pytest.approx(0.006989, abs=1e-6)
    # AMD: n = 6 gives ±0.0560, n = 7 gives ±0.0493
    assert half(amd, 6) > 0.05 >= half(amd, 7) and seeds_for_halfwidth(amd) == 7
    # Intel: n = 2 gives ±0.0628, n = 3 gives ±0.0174
    assert half(intel, 2) > 0.05 >= half(intel, 3) and seeds_for_halfwidth(intel) == 3
    with pytest.raises(ValueError, match="positive half-width"):
        seeds_for_halfwidth(0.05, halfwidth=0)
    with pytest.raises(ValueError, match="finite standard deviation"):
        seeds_for_halfwidth(float("nan"))
    assert seeds_for_halfwidth(0.0) == 2


def test_pooled_sd_of_both_machines_by_hand():
    from trlearner.run.records.stats import pooled_sd, seeds_for_halfwidth

    amd, intel = _diffs(AMD_EPYC), _diffs(INTEL_XEON)
    pooled = pooled_sd(amd, intel)
    assert pooled == pytest.approx(math.sqrt((2 * _sd(amd) ** 2 + 2 * _sd(intel) ** 2) / 4))
    assert pooled == pytest.approx(0.038052, abs=1e-6)
    # n = 4 gives 3.1824 * 0.03805 / 2 = ±0.0606, n = 5 gives 2.7764 * 0.03805 / sqrt(5) = ±0.0472
    assert seeds_for_halfwidth(pooled) == 5
    assert math.isnan(pooled_sd([0.1])) and pooled_sd([0.1], [0.2, 0.4]) == pytest.approx(_sd([0.2, 0.4]))

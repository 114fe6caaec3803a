"""The estimate counts every training job Snakemake plans (issue 25 item 1): table runs (single
and stacked), ablation runs and the analyses' runs, for every preset in config/*.yaml."""

from __future__ import annotations

import pytest
import yaml

from workflow_helpers import REPO, copy_pipeline, planned_jobs

from trlearner.pipeline.check import check_config
from trlearner.pipeline.estimate import analysis_jobs, estimate, format_estimate, training_jobs
from trlearner.pipeline.sequential import decided

PRESETS = sorted(p.stem for p in (REPO / "config").glob("*.yaml"))
TRAINING_RULES = ("train", "train_ablation", "train_analysis")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return copy_pipeline(tmp_path_factory.mktemp("fresh"))


def _config(preset: str) -> dict:
    return yaml.safe_load((REPO / "config" / f"{preset}.yaml").read_text())


@pytest.mark.parametrize("preset", PRESETS)
def test_estimate_counts_every_planned_training_job(fresh, preset):
    config = _config(preset)
    # a sequential preset plans the first look of every arm (no look record in a fresh copy)
    matrix, analyses = decided(check_config(config), {}), analysis_jobs(config)
    jobs = planned_jobs(fresh, "--configfile", f"config/{preset}.yaml")
    planned = sum(n for rule, n in jobs.items() if rule in TRAINING_RULES or rule.startswith("train_stack_"))
    assert training_jobs(matrix, analyses) == planned, jobs
    assert sum(row["jobs"] for row in estimate(matrix, None, analyses).values()) == planned
    assert jobs.get("train_analysis", 0) == len(analyses)
    assert f"{planned} training jobs" in format_estimate(matrix, set(), 2, analyses)


def test_analysis_runs_are_estimated_like_table_runs():
    config = {"preset": "x", "experiments": {"reg": {"datasets": ["sinusoid"], "algorithms": ["maml"],
                                                     "settings": [{"shots": 5}], "seeds": [0],
                                                     "protocol": {"iterations": 3000, "test_tasks": 100}}},
              "analyses": {"seeds": 1, "iterations": 3000, "test_tasks": 100}}
    matrix, analyses = check_config(config), analysis_jobs(config, "results/x")
    rows = estimate(matrix, None, analyses)
    table = {r.variant: r for r in matrix.runs}
    same = {run.variant: run for run, _ in analyses if run.group == "tradeoff"}
    from trlearner.pipeline.estimate import estimate_seconds
    for variant in ("baseline", "trlearner"):  # the same cell, the same model
        assert estimate_seconds(same[variant]) == pytest.approx(estimate_seconds(table[variant]))
    motivation = next(run for run, _ in analyses if run.dataset.startswith("motivation_"))
    assert estimate_seconds(motivation) < 120  # an MLP run, not a Conv4 image run
    assert rows["analyses"]["jobs"] == len(analyses)
    assert all(m.startswith("results/x/analyses/") and m.endswith("/metrics.json") for _, m in analyses)
    # a short preset says so, rather than "about 0 min"
    assert "under 1 min" in format_estimate(check_config(_config("tiny")), set(), 2)

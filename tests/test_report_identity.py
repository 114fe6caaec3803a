"""The report counts exactly the runs its preset expects, each of the identity it expects (issue
24): every case measured in the issue, with real records trained by `trlearner train` in the
pipeline's layout and the expected spec the pipeline writes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from trlearner.pipeline.check import check_config
from trlearner.report.render import write_report
from trlearner.cli import main as train_main

PROTOCOL = {"iterations": 20, "test_tasks": 8, "test_queries": 10, "curve_steps": 2}


def preset(seeds=(0, 1, 2), algorithms=("maml", "anil"), lam=0.1, iterations=20, sweep=(0.1, 1.0)):
    return {"preset": "p", "device": "cpu", "results": "results",
            "experiments": {"reg": {"datasets": ["sinusoid"], "settings": [{"shots": 5}],
                                    "algorithms": list(algorithms), "seeds": list(seeds),
                                    "protocol": {**PROTOCOL, "iterations": iterations},
                                    "trlearner": {"lam": lam}}},
            "ablations": {"lam": {"datasets": ["sinusoid"], "settings": [{"shots": 5}], "algorithms": ["maml"],
                                  "variants": ["trlearner"], "seeds": [0], "protocol": PROTOCOL,
                                  "sweep": {"lam": list(sweep)}}}}


def train_all(work: Path, config: dict) -> dict:
    """Train every run of ``config`` as the pipeline's jobs would (same arguments), in ``work``;
    write expected.json and ablations/index.json as its rules do; return the matrix."""
    m = check_config(config)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        for run in m.runs:
            if not (Path(run.path) / "metrics.json").exists() or _stale(run):
                args = run.train_args(m.preset, "cpu", "data") + ["--out", run.path, "--force", "-q"]
                assert train_main(["train", *args]) == 0
        Path("results/expected.json").write_text(json.dumps(m.expected_cells("results")))
        Path("results/ablations/index.json").write_text(json.dumps(m.ablation_index()))
    finally:
        os.chdir(cwd)
    return m


def _stale(run) -> bool:
    prov = json.loads((Path(run.path) / "provenance.json").read_text())
    return prov["config_hash"] != run.identity_hash()


def report(work: Path) -> str:
    results = work / "results"
    write_report(results / "runs", work / "reports", expected=results / "expected.json", relative_to=work)
    return (work / "reports" / "REPORT.md").read_text()


def _checks(text: str) -> str:
    return text.split("## Run checks", 1)[1].split("\n## ", 1)[0]


@pytest.fixture()
def work(tmp_path):
    train_all(tmp_path, preset())
    return tmp_path


def test_a_changed_preset_counts_only_its_own_runs_and_names_the_stale_ones(work):
    """Seeds [0, 1, 2] -> [0], lam 0.1 -> 1.0, iterations 20 -> 30: before, REPORT.md showed
    `n=3 of 1` pooling two stale 20-iteration runs."""
    train_all(work, preset(seeds=[0], lam=1.0, iterations=30))
    text = report(work)
    assert "n=3" not in text and "(n=1, task CI)" in text
    checks = _checks(text)
    for seed in (1, 2):
        assert re.search(rf"results/runs/sinusoid/5shot/maml/trlearner/seed{seed} \| not in the preset \| seed "
                         rf"{seed} of this cell is not in the preset", checks), checks


def test_a_stale_run_of_the_preset_is_not_pooled_but_named(work):
    m = check_config(preset(iterations=30))  # the preset changed; nothing retrained yet
    (work / "results/expected.json").write_text(json.dumps(m.expected_cells("results")))
    text = report(work)
    checks = _checks(text)
    assert checks.count("| stale ") == 12, checks
    assert "trained with other settings (config hash" in checks and "trained by preset 'p'" in checks
    assert "- Run checks: 12 run folders not counted" in text


def test_a_scratch_run_under_the_results_tree_is_not_pooled(work):
    def counted(text):  # the report without its run checks (the one place the scratch run is named)
        lines, skip = [], False
        for line in text.split("## Run checks")[0].splitlines():
            if not line.startswith("  "):  # an item's wrapped lines are indented under it
                skip = line.startswith("- Run checks:")
            if not skip:
                lines.append(line)
        return lines

    before = counted(report(work))
    cell = work / "results/runs/sinusoid/5shot/maml/baseline"
    args = ["train", "--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--seed", "7", "-q",
            "--out", str(cell / "try7")] + [f"--{k.replace('_', '-')}={v}" for k, v in PROTOCOL.items()]
    assert train_main(args) == 0
    text = report(work)
    assert counted(text) == before
    assert "try7 | not in the preset | seed 7 of this cell is not in the preset" in _checks(text)


def test_a_removed_algorithm_and_a_removed_sweep_value_are_not_shown(work):
    train_all(work, preset(algorithms=["maml"], sweep=[0.1, 0.5]))
    text = report(work)
    assert "ANIL" not in text.split("## Run checks")[0]
    assert "the cell sinusoid 5shot anil baseline is not in the preset" in _checks(text)
    assert "lam = 1.0" not in text and "lam-1.0" not in text.split("## Run checks")[0]


def test_a_symlinked_or_unreadable_seed_folder_is_named_as_missing(work):
    runs = work / "results/runs/sinusoid/5shot/maml/baseline"
    (runs / "seed1").rename(work / "elsewhere")
    (runs / "seed1").symlink_to(work / "elsewhere")
    (runs / "seed2").rename(work / "gone")
    text = report(work)
    checks = _checks(text)
    assert "seed1 | missing | expected run: a symbolic link: the report reads run folders" in checks, checks
    assert "seed2 | missing | expected run: no run folder" in checks
    assert "(n=1 of 3, task CI)" in text.split("## Run checks")[0]


def test_a_stored_ci_that_its_per_task_values_contradict_is_refused(work):
    path = work / "results/runs/sinusoid/5shot/maml/baseline/seed0/metrics.json"
    m = json.loads(path.read_text())
    m["ci95"] = 0.0001
    path.write_text(json.dumps(m))
    text = report(work)
    assert re.search(r"seed0 \| invalid \| invalid metrics.json: stored ci95 0.0001 is not that of its per-task "
                     r"values \([0-9.]+\); a tampered or corrupt record", _checks(text)), _checks(text)


def test_an_unreadable_metrics_json_is_named_under_run_checks(work):
    path = work / "results/runs/sinusoid/5shot/maml/baseline/seed2/metrics.json"
    path.write_text('{"dataset": "sinusoid", "mean": ')  # cut off mid-write
    checks = _checks(report(work))
    assert re.search(r"seed2 \| unreadable \| unreadable metrics.json \(JSONDecodeError", checks), checks


def test_per_task_values_near_1e300_render_in_scientific_notation(work):
    path = work / "results/runs/sinusoid/5shot/maml/baseline/seed0/metrics.json"
    m = json.loads(path.read_text())
    n = len(m["per_task"])
    m["per_task"] = [1e300 * (1 + i) for i in range(n)]
    mean = sum(v / n for v in m["per_task"])
    sd = (sum(((v - mean) / 1e300) ** 2 for v in m["per_task"]) / (n - 1)) ** 0.5 * 1e300
    m["mean"], m["ci95"] = mean, 1.96 * sd / n ** 0.5
    path.write_text(json.dumps(m))
    text = report(work)  # no OverflowError
    assert "e+300" in text and not re.search(r"[0-9]{40}", text)

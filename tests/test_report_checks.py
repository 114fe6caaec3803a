"""The report trusts nothing it finds: each probe of issue 14 (item 4) with its own input.

Copies of run folders are counted once, every metrics.json is checked against the schema (a
bad run is skipped and named, never aborts the report), and a cell that pools runs of
different code or test episodes is marked.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report_fixtures import write_run  # noqa: E402

from trlearner.report.reference import Reference  # noqa: E402
from trlearner.report.render import write_report  # noqa: E402
from trlearner.run.records.scan import load_runs, scan_runs  # noqa: E402
from trlearner.run.records.schema import METRIC_DIRECTION, validate_metrics  # noqa: E402
from trlearner.run.records.stats import aggregate_cells, paired_differences  # noqa: E402
from trlearner.report.tables import build_tables  # noqa: E402

T_975_2 = 4.302652729911275   # Student-t 0.975 quantile, 2 degrees of freedom (tables)
SEED_VALUES = [(0.650, 0.583), (0.632, 0.601), (0.569, 0.607)]   # measured, issue 15 (AMD)


def _three_seeds(root: Path) -> None:
    for seed, (b, t) in enumerate(SEED_VALUES):
        write_run(root, "sinusoid", "maml", "baseline", seed, shots=5, per_task=[b - 0.1, b + 0.1])
        write_run(root, "sinusoid", "maml", "trlearner", seed, shots=5, per_task=[t - 0.1, t + 0.1])


def _cell(runs, variant="baseline"):
    cells = aggregate_cells(runs)
    return cells[(cells.dataset == "sinusoid") & (cells.variant == variant)].iloc[0]


def _edit(run: Path, **changes) -> None:
    path = run / "metrics.json"
    metrics = json.loads(path.read_text())
    for key, value in changes.items():
        if value is KeyError:
            metrics.pop(key)
        else:
            metrics[key] = value
    path.write_text(json.dumps(metrics))


# ------------------------------------------------------------------ one run counted once


def test_copied_run_folders_do_not_double_n(tmp_path):
    root = tmp_path / "runs"
    _three_seeds(root)
    before = _cell(load_runs(root))
    sd = math.sqrt(((0.650 - 0.617) ** 2 + (0.632 - 0.617) ** 2 + (0.569 - 0.617) ** 2) / 2)
    assert before["n"] == 3 and before["ci95"] == pytest.approx(T_975_2 * sd / math.sqrt(3))
    # the probe: a copy of every run folder next to the originals
    shutil.copytree(root / "sinusoid", root / "backup" / "sinusoid")
    scan = scan_runs(root, relative_to=tmp_path)
    after = _cell(scan.runs)
    assert after["n"] == 3 and after["ci95"] == pytest.approx(before["ci95"])
    assert paired_differences(scan.runs).iloc[0]["n"] == 3
    dup = scan.skipped[scan.skipped.kind == "duplicate"]
    assert len(dup) == 6
    # the folder at the pipeline's own path is the one counted; the copy is named
    row = dup[dup.path == "runs/backup/sinusoid/5shot/maml/baseline/seed0"].iloc[0]
    assert row["reason"].startswith("copy of runs/sinusoid/5shot/maml/baseline/seed0")
    text = write_report(root, tmp_path / "out", relative_to=tmp_path).read_text()
    checks = text.split("## Run checks")[1]
    assert "runs/backup/sinusoid/5shot/maml/trlearner/seed2" in checks
    assert "6 copies of a counted run" in text.split("## Tables")[0]
    assert "0.62 ± 0.11 (n=3)" in text


def test_a_copy_under_another_seed_number_is_counted_once(tmp_path):
    root = tmp_path / "runs"
    _three_seeds(root)
    copy = root / "sinusoid/5shot/maml/baseline/seed3"
    shutil.copytree(root / "sinusoid/5shot/maml/baseline/seed1", copy)
    _edit(copy, seed=3)
    scan = scan_runs(root, relative_to=tmp_path)
    assert _cell(scan.runs)["n"] == 3 and _cell(scan.runs)["seeds"] == (0, 1, 2)
    reason = scan.skipped.set_index("path").loc["runs/sinusoid/5shot/maml/baseline/seed3", "reason"]
    assert "same per-task values as runs/sinusoid/5shot/maml/baseline/seed1" in reason


def test_two_folders_claiming_one_seed_with_different_results_are_both_skipped(tmp_path):
    root = tmp_path / "runs"
    _three_seeds(root)
    other = write_run(root / "elsewhere", "sinusoid", "maml", "baseline", 0, shots=5, per_task=[0.7, 0.9])
    scan = scan_runs(root, relative_to=tmp_path)
    cell = _cell(scan.runs)
    assert cell["n"] == 2 and cell["seeds"] == (1, 2)
    conflicts = scan.skipped[scan.skipped.kind == "conflict"]
    assert set(conflicts.path) == {"runs/sinusoid/5shot/maml/baseline/seed0",
                                   "runs/" + other.relative_to(root).as_posix()}
    assert all("keep one of these folders" in r for r in conflicts.reason)


# ------------------------------------------------------------------ the schema


def _bad_seed(tmp_path, **changes):
    """Three good seeds and a fourth whose metrics.json is edited; returns (scan, report text)."""
    root = tmp_path / "runs"
    _three_seeds(root)
    bad = write_run(root, "sinusoid", "maml", "baseline", 3, shots=5, per_task=[0.5, 0.7])
    _edit(bad, **changes)
    scan = scan_runs(root, relative_to=tmp_path)
    text = write_report(root, tmp_path / "out", relative_to=tmp_path).read_text()
    return scan, text


def _reason(scan, seed=3):
    return scan.skipped.set_index("path").loc[f"runs/sinusoid/5shot/maml/baseline/seed{seed}", "reason"]


def test_a_bare_mean_is_not_a_run(tmp_path):
    root = tmp_path / "runs"
    _three_seeds(root)
    probe = root / "sinusoid/5shot/maml/baseline/seed3"
    probe.mkdir()
    (probe / "metrics.json").write_text('{"mean": 0.001}')
    scan = scan_runs(root, relative_to=tmp_path)
    assert _cell(scan.runs)["n"] == 3 and _cell(scan.runs)["mean"] == pytest.approx(0.617)
    assert _reason(scan).startswith("invalid metrics.json: dataset: missing")
    text = write_report(root, tmp_path / "out", relative_to=tmp_path).read_text()
    assert "runs/sinusoid/5shot/maml/baseline/seed3" in text.split("## Run checks")[1]
    assert "0.001" not in text.split("## Run checks")[0]


def test_a_boolean_mean_is_not_read_as_one(tmp_path):
    scan, text = _bad_seed(tmp_path, mean=True)
    assert "mean: True is not a number or null" in _reason(scan)
    assert _cell(scan.runs)["n"] == 3 and _cell(scan.runs)["mean"] == pytest.approx(0.617)
    assert "1 invalid metrics.json" in text.split("## Tables")[0]


def test_a_string_direction_does_not_flip_the_caption(tmp_path):
    root = tmp_path / "runs"
    run = write_run(root, "sinusoid", "maml", "baseline", 0, shots=5, per_task=[0.5, 0.7])
    _edit(run, higher_is_better="false")
    scan = scan_runs(root, relative_to=tmp_path)
    assert "higher_is_better: 'false' is not a boolean" in _reason(scan, seed=0)
    table = next(t for t in build_tables(scan.runs, None, Reference.load()) if t.family == "regression")
    assert table.sections[0].caption == "sinusoid: MSE, lower is better"
    assert table.sections[0].frame.loc["MAML", ("5shot", "ours")] == \
        "skipped: invalid metrics.json in runs/sinusoid/5shot/maml/baseline/seed0 (see Run checks)"
    # a boolean that contradicts the metric is refused too
    _edit(run, higher_is_better=True)
    assert "higher_is_better: True contradicts metric 'mse'" in _reason(scan_runs(root, relative_to=tmp_path), 0)


@pytest.mark.parametrize("changes, problem", [
    (dict(seed="abc"), "seed: 'abc' is not an integer"),
    (dict(per_task="x"), "per_task: 'x' is not a list"),
    (dict(per_task=[0.5, "x"]), "per_task[1]: 'x' is not a finite number"),
    (dict(mean=0.9), "mean: 0.9 is not the mean of per_task (0.6)"),
    (dict(n_tasks=3), "per_task: 2 values, but n_tasks is 3"),
    (dict(protocol={"reduced": "no"}), "protocol.reduced: 'no' is not a boolean"),
    (dict(protocol="paper"), "protocol: 'paper' is not an object"),
    (dict(status="running"), "status: 'running' is not one of ['ok', 'diverged']"),
    (dict(metric="loss"), "metric: 'loss' is not one of ['accuracy', 'mse', 'r2']"),
    (dict(variant="both"), "variant: 'both' is not one of ['baseline', 'trlearner']"),
    (dict(ci95=-1.0), "ci95: -1.0 is not a number >= 0 or null"),
    (dict(shots=KeyError), "shots: missing (and no 'setting')"),
])
def test_one_bad_seed_is_skipped_and_named_and_the_report_is_written(tmp_path, changes, problem):
    scan, text = _bad_seed(tmp_path, **changes)
    assert problem in _reason(scan)
    assert _cell(scan.runs)["n"] == 3 and _cell(scan.runs)["seeds"] == (0, 1, 2)
    assert "runs/sinusoid/5shot/maml/baseline/seed3" in text.split("## Run checks")[1]
    assert "0.62 ± 0.11 (n=3)" in text


def test_unparseable_metrics_json_is_failed_with_its_path(tmp_path):
    root = tmp_path / "runs"
    _three_seeds(root)
    bad = write_run(root, "sinusoid", "maml", "baseline", 3, shots=5, per_task=[0.5, 0.7])
    (bad / "log.txt").unlink()
    (bad / "metrics.json").write_text('{"mean": 0.5,')
    runs = load_runs(root, relative_to=tmp_path)
    row = runs[runs.seed == 3].iloc[0]
    assert row["status"] == "failed" and row["message"].startswith("unreadable metrics.json (JSONDecodeError")
    assert _cell(runs)["n"] == 3


def test_diverged_runs_written_with_null_pass_the_schema():
    m = {"dataset": "sinusoid", "algorithm": "maml", "variant": "trlearner", "seed": 0, "shots": 5,
         "ways": None, "metric": "mse", "unit": None, "higher_is_better": False, "mean": None, "ci95": None,
         "n_tasks": 0, "per_task": [], "status": "diverged", "protocol": {"reduced": False},
         "episodes_hash": None, "wall_time_s": None, "diverged_at_iteration": 12}
    assert validate_metrics(m) == []


def test_metric_directions_match_the_algorithms():
    from trlearner.engine.algorithms.base import METRICS

    assert METRIC_DIRECTION == {name: hib for name, (_, hib) in METRICS.items()}


def test_a_metrics_json_written_by_train_passes_the_schema(tmp_path):
    from trlearner.run.config import resolve_config
    from trlearner.run.train import train

    train(resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=2, test_tasks=4,
                         meta_batch=2, device="cpu"), tmp_path / "run", progress=False)
    assert validate_metrics(json.loads((tmp_path / "run" / "metrics.json").read_text())) == []


# ------------------------------------------------------------------ pooled cells


def _provenance(run: Path, **changes) -> None:
    path = run / "provenance.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_cell_pooling_two_commits_is_marked(tmp_path):
    root = tmp_path / "runs"
    _three_seeds(root)
    _provenance(root / "sinusoid/5shot/maml/baseline/seed2", git_commit="def5678")
    runs = load_runs(root, relative_to=tmp_path)
    assert _cell(runs)["pooled"] == "2 code versions" and pd.isna(_cell(runs, "trlearner")["pooled"])
    assert paired_differences(runs).iloc[0]["pooled"] == "2 code versions"
    frame = build_tables(runs, None, Reference.load())[0].sections[0].frame
    assert frame.loc["MAML", ("5shot", "ours")] == "0.62 ± 0.11 (n=3) ‡"
    assert frame.loc["MAML + TRLearner", ("5shot", "ours")].endswith("(n=3)")
    assert frame.loc["MAML + TRLearner", ("5shot", "Δ vs baseline")].endswith("‡")
    text = write_report(root, tmp_path / "out", relative_to=tmp_path).read_text()
    checks = text.split("## Run checks")[1].split("## Figures")[0]
    assert "| sinusoid  | 5shot     | maml        | baseline" in checks
    assert "`abc1234` (seed 0, seed 1); `def5678` (seed 2)" in checks


def test_a_dirty_tree_is_another_code_version(tmp_path):
    root = tmp_path / "runs"
    _three_seeds(root)
    _provenance(root / "sinusoid/5shot/maml/trlearner/seed0", git_dirty=True)
    assert _cell(load_runs(root), "trlearner")["pooled"] == "2 code versions"


def test_a_cell_pooling_two_episode_sets_is_marked(tmp_path):
    root = tmp_path / "runs"
    _three_seeds(root)
    _edit(root / "sinusoid/5shot/maml/trlearner/seed1", episodes_hash="other-episodes")
    runs = load_runs(root, relative_to=tmp_path)
    assert _cell(runs, "trlearner")["pooled"] == "2 episode sets"
    text = write_report(root, tmp_path / "out", relative_to=tmp_path).read_text()
    assert "`other-episodes` (seed 1)" in text.split("## Run checks")[1]
    assert "pools 2 episode sets ‡" in text.split("## Tables")[0]

"""The calibration of the known cell (issue 26): named readings of the protocol, the preset that
runs them, the selection rule and the report section (docs/CALIBRATION.md)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml

from trlearner.pipeline.check import ConfigError, check_config
from trlearner.pipeline.schema import schema
from trlearner.report.calibration import (MIN_SEEDS, calibration_markdown, calibration_runs, calibration_table,
                                          select_operating_point)
from trlearner.report.reference import Reference
from trlearner.run import readings
from trlearner.run.cli import parse_args, run_config
from trlearner.run.protocols import paper_protocol
from trlearner.run.config import resolve_config

from workflow_helpers import REPO, copy_pipeline, snakemake


def test_the_schema_names_exactly_the_readings_of_the_package():
    assert schema()["definitions"]["protocol"]["properties"]["reading"]["enum"] == list(readings.READINGS)


@pytest.mark.parametrize("name", list(readings.READINGS))
def test_a_reading_sets_its_settings_over_the_protocol_and_explicit_options_win(name):
    r = readings.READINGS[name]
    cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, reading=name)
    want = {**paper_protocol("sinusoid", "maml", None, 5), **r.settings}
    for key, value in want.items():
        assert getattr(cfg, key) == value, key
    assert cfg.protocol_reference == want  # the reading is the reference: not "reduced"
    assert cfg.identity() == resolve_config(dataset="sinusoid", algorithm="maml", shots=5, **r.settings).identity()
    explicit = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, reading=name, meta_batch=7)
    assert explicit.meta_batch == 7 and explicit.inner_lr == want["inner_lr"]
    # every setting has a source; every setting is a protocol setting the code has
    assert set(r.settings) <= set(want) and (r.sources or name == "maml_paper")
    assert all(k in r.sources for k in r.settings), f"{name}: a setting without its source"


def test_the_command_line_resolves_a_reading_to_the_same_config():
    args = parse_args(["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--out", "x",
                       "--reading", "asr_lab_script"])
    cfg = run_config(args)
    assert (cfg.iterations, cfg.meta_batch, cfg.inner_lr, cfg.init, cfg.test_tasks) == (15000, 32, 0.001, "torch", 1024)
    with pytest.raises(SystemExit):
        parse_args(["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--out", "x",
                    "--reading", "nonsense"])


def test_a_reading_of_another_dataset_is_refused_by_the_run_and_the_config_check():
    with pytest.raises(ValueError, match="reading 'maml_paper' is defined for sinusoid; allowed for 'harmonic': none"):
        resolve_config(dataset="harmonic", algorithm="maml", shots=5, reading="maml_paper")
    cfg = {"preset": "x", "experiments": {"e": {"datasets": ["harmonic"], "algorithms": ["maml"],
                                                "settings": [{"shots": 5}], "seeds": [0],
                                                "protocol": {"reading": "maml_paper"}}}}
    with pytest.raises(ConfigError, match="experiments.e: protocol.reading 'maml_paper' is defined for sinusoid"):
        check_config(cfg)


def test_the_calibration_preset_runs_every_reading_stacked_in_its_own_folders():
    config = yaml.safe_load((REPO / "config" / "calibration.yaml").read_text())
    m = check_config(config)
    points = sorted({r.point for r in m.runs})
    assert points == sorted(f"reading-{n}" for n in readings.READINGS)
    assert {r.variant for r in m.runs} == {"baseline"} and not m.table_runs
    assert len(m.stacks) == len(readings.READINGS) and all(s.seeds == list(range(8)) for s in m.stacks)
    assert all(r.path.startswith("results/calibration/ablations/reading/sinusoid/5shot/maml/baseline/")
               for r in m.runs)


def test_a_config_with_no_runs_at_all_is_refused():
    with pytest.raises(ConfigError, match="no runs"):
        check_config({"preset": "x", "experiments": {}})


def _table(rows):
    return pd.DataFrame(rows, columns=["reading", "n", "reduced", "lo", "hi", "mean"])


def test_the_selection_rule_takes_the_first_reproducing_reading_in_precedence_order():
    order = list(readings.READINGS)
    t = _table([("torch_init", 8, False, 0.55, 0.65, 0.60), ("maml_paper", 8, False, 0.58, 0.62, 0.60),
                ("asr_lab_script", 8, False, 0.70, 0.80, 0.75)])
    assert select_operating_point(t, 0.593, order) == ("maml_paper", "reproduces")
    # a reading with too few seeds or a reduced protocol is not judged, even if its CI contains it
    t = _table([("asr_lab_script", MIN_SEEDS - 1, False, 0.5, 0.7, 0.6), ("maml_code", 8, True, 0.5, 0.7, 0.6),
                ("torch_init", 8, False, 0.60, 0.70, 0.65), ("pytorch_maml", 8, False, 0.90, 1.0, 0.95)])
    assert select_operating_point(t, 0.593, order) == ("torch_init", "closest, does not reproduce")
    assert select_operating_point(t.iloc[:2], 0.593, order) == (None, "not judged")
    # the boundary is inside
    assert select_operating_point(_table([("maml_code", 5, False, 0.593, 0.7, 0.65)]), 0.593, order)[1] == "reproduces"


def _record(reading: str, seed: int, mean: float, per_task=None, reduced=False) -> dict:
    per_task = per_task or [mean - 0.1, mean, mean + 0.1]
    n = len(per_task)
    mean = sum(per_task) / n
    ci95 = 1.96 * math.sqrt(sum((v - mean) ** 2 for v in per_task) / (n - 1)) / math.sqrt(n)
    return {"dataset": "sinusoid", "algorithm": "maml", "variant": "baseline", "shots": 5, "ways": None,
            "seed": seed, "metric": "mse", "unit": None, "higher_is_better": False, "status": "ok",
            "mean": mean, "ci95": ci95, "n_tasks": n, "per_task": per_task,
            "curve": [1.0, sum(per_task) / len(per_task)], "wall_time_s": 1.0,
            "protocol": {"iterations": 70000, "reduced": reduced, "preset": "calibration", "reading": reading}}


def test_the_report_section_gives_each_reading_against_the_paper_and_the_chosen_point(tmp_path):
    """Hand-computed: readings with per-seed means 0.58/0.60/0.62/0.59/0.61 (mean 0.60, sd
    0.0158, t(0.975; 4) = 2.776: CI 0.60 +- 0.0196 contains 0.593) and 0.68..0.72 (excludes)."""
    root = tmp_path / "results"
    values = {"maml_paper": [0.68, 0.70, 0.72, 0.69, 0.71], "torch_init": [0.58, 0.60, 0.62, 0.59, 0.61]}
    for reading, means in values.items():
        for seed, m in enumerate(means):
            d = root / "ablations" / "reading" / "sinusoid" / "5shot" / "maml" / "baseline" / f"reading-{reading}" / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps(_record(reading, seed, m, [m - 0.05, m, m + 0.05])))
    runs = calibration_runs(root / "ablations", relative_to=tmp_path)
    assert len(runs) == 10, runs
    table = calibration_table(runs, Reference.load())
    row = table.set_index("reading").loc["torch_init"]
    assert row["n"] == 5 and math.isclose(row["mean"], 0.60, abs_tol=1e-12)
    assert math.isclose(row["ci95"], 2.7764451 * 0.0158114 / math.sqrt(5), rel_tol=1e-4)
    assert bool(row["contains"]) and not bool(table.set_index("reading").loc["maml_paper", "contains"])
    assert list(table["reading"]) == ["maml_paper", "torch_init"]  # precedence order
    text = calibration_markdown(root / "runs", None, relative_to=tmp_path)
    assert "- Operating point: **torch_init**: its 95 % CI contains the paper's 0.593." in text
    assert "| maml_paper |" in text and "excludes the paper's" in text
    # the seed column counts seeds and says so ("seeds | 0" read as seed id 0; issue 25)
    header = next(line for line in text.splitlines() if line.startswith("| reading"))
    assert [c.strip() for c in header.strip("|").split("|")][2] == "n seeds" and "| seeds " not in header
    assert "| 5 " in next(line for line in text.splitlines() if line.startswith("| torch_init"))


def test_a_preset_of_ablations_only_opens_its_report_with_the_calibration(tmp_path):
    from trlearner.report.render import write_report

    root = tmp_path / "results"
    for seed, m in enumerate([0.58, 0.60, 0.62, 0.59, 0.61]):
        d = root / "ablations/reading/sinusoid/5shot/maml/baseline/reading-torch_init" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(_record("torch_init", seed, m, [m - 0.05, m, m + 0.05])))
    text = write_report(root / "runs", tmp_path / "reports", expected=[], relative_to=tmp_path).read_text()
    assert text.index("## Calibration: the paper's baseline") < text.index("## Run checks")
    assert "## Claims and verdicts" not in text and "## Main results" not in text

"""Seeds decided by the data in the workflow (trlearner.pipeline.sequential, workflow/rules/sequential.smk):
the config's `sequential: true`, the arms, the runs each decision asks for, the look records, and
the DAG that grows only those runs (end to end on a reduced cell, with the first look's records
written by hand so that both branches of the rule, stop and continue, are taken)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml

from trlearner.pipeline import sequential
from trlearner.pipeline.check import ConfigError, check_config
from trlearner.report.sequential import LOOKS, look
from workflow_helpers import REPO, copy_pipeline, planned_jobs, snakemake

PROTOCOL = {"iterations": 20, "test_tasks": 20, "test_queries": 20, "curve_steps": 2}


def _config(preset="seqtiny", **overrides) -> dict:
    cell = {"datasets": ["sinusoid"], "settings": [{"shots": 5}], "algorithms": ["maml"], "seeds": [0, 1, 2, 3],
            "sequential": True, "stack": 4, "protocol": dict(PROTOCOL)}
    config = {"preset": preset, "device": "cpu", "threads": 1, "experiments": {"known": dict(cell)},
              "ablations": {"lam": {**cell, "variants": ["trlearner"], "sweep": {"lam": [1.0]}}}}
    for key, value in overrides.items():
        config[key] = value
    return config


# ------------------------------------------------------------------------------- the matrix


def test_arms_pair_each_trlearner_cell_and_point_with_the_one_baseline():
    matrix = check_config(_config())
    arms = {a.name: a for a in sequential.arms(matrix)}
    assert set(arms) == {"sinusoid_5shot_maml", "lam_lam-1.0_sinusoid_5shot_maml"}
    # every seed up to the last look has a run (and a rule), both arms share the baseline runs
    assert [r.seed for r in arms["sinusoid_5shot_maml"].trlearner] == list(range(LOOKS[-1]))
    assert arms["lam_lam-1.0_sinusoid_5shot_maml"].baseline == arms["sinusoid_5shot_maml"].baseline
    assert all(r.variant == "baseline" and r.kind == "run" for r in arms["sinusoid_5shot_maml"].baseline)


def test_the_decided_runs_are_each_arms_seeds_and_the_baseline_seeds_any_arm_needs():
    matrix = check_config(_config())
    first = sequential.decided(matrix, {})  # no decision yet: the first look everywhere
    assert sorted({r.seed for r in first.runs}) == list(range(LOOKS[0])) and len(first.runs) == 3 * LOOKS[0]
    assert len(first.stacks) == 3  # one stacked job per variant and point at the first look
    grown = sequential.decided(matrix, {"sinusoid_5shot_maml": 4, "lam_lam-1.0_sinusoid_5shot_maml": 12})
    seeds: dict[tuple, list[int]] = {}
    for r in sorted(grown.runs, key=lambda r: r.seed):
        seeds.setdefault((r.kind, r.variant), []).append(r.seed)
    assert seeds[("run", "trlearner")] == [0, 1, 2, 3]
    assert seeds[("ablation", "trlearner")] == list(range(12))
    assert seeds[("run", "baseline")] == list(range(12))  # the continuing arm's baseline seeds
    assert [c["seeds"] for c in grown.expected_cells() if c["variant"] == "baseline"] == [list(range(12))]
    assert sorted(e["seed"] for e in grown.ablation_index()) == list(range(12))


def test_the_config_check_refuses_what_the_rule_cannot_run():
    c = _config()
    c["experiments"]["known"]["seeds"] = [0, 1, 2]
    with pytest.raises(ConfigError, match=r"experiments.known.seeds: \[0, 1, 2\] with sequential: true"):
        check_config(c)
    c = _config()
    c["ablations"]["lam"]["stack"] = 3
    with pytest.raises(ConfigError, match="ablations.lam.stack: 3 would put one job across two looks"):
        check_config(c)
    c = _config()
    del c["experiments"]["known"]["sequential"]  # the ablation's baseline is not sequential
    with pytest.raises(ConfigError, match="ablations.lam: sequential: the TRLearner runs of sinusoid 5shot maml "
                                          "have no baseline to pair with"):
        check_config(c)
    c = _config(ablations={})
    c["experiments"]["known"]["algorithms"] = ["anil"]  # the paper gives no ANIL sinusoid numbers
    with pytest.raises(ConfigError, match="sequential: sinusoid 5shot anil has no paper effect"):
        check_config(c)


def test_the_shipped_sequential_presets_start_at_the_first_look():
    for name, arms_count in (("operating_point", 1), ("claims", 12)):
        matrix = check_config(yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text()))
        assert len(sequential.arms(matrix)) == arms_count
        assert {r.seed for r in sequential.decided(matrix, {}).runs} == set(range(LOOKS[0]))


# ----------------------------------------------------------------------------- the records


def _metrics(path: Path, mean: float) -> None:
    """A finished run's metrics.json with per-task values around ``mean`` (stored figures consistent)."""
    per_task = [mean - 0.1, mean, mean + 0.1]
    ci95 = 1.96 * 0.1 / math.sqrt(3)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"status": "ok", "dataset": "sinusoid", "mean": mean, "ci95": ci95,
                                "per_task": per_task, "metric": "mse", "seed": 0}))


def test_a_look_record_is_the_rule_applied_to_the_stored_means(tmp_path):
    base, trl = [0.60, 0.62, 0.58, 0.61], [0.10, 0.72, 0.28, 0.61]
    paths = {}
    for variant, means in (("b", base), ("t", trl)):
        paths[variant] = []
        for s, m in enumerate(means):
            _metrics(tmp_path / variant / f"{s}.json", m)
            paths[variant].append(str(tmp_path / variant / f"{s}.json"))
    record = sequential.look_record("arm", paths["b"], paths["t"], -0.193)
    want = look([t - b for b, t in zip(base, trl)], -0.193)
    assert (record["n"], record["verdict"], record["stop"]) == (4, want.verdict, want.stop)
    assert math.isclose(record["effect"], want.mean) and math.isclose(record["half_width"], want.half)
    assert record["next_look"] == (None if want.stop else 8)
    # a tampered record is refused, not paired
    bad = json.loads(Path(paths["t"][0]).read_text())
    bad["mean"] = 0.9
    Path(paths["t"][0]).write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="stored mean 0.9 is not that of its per-task values"):
        sequential.look_record("arm", paths["b"], paths["t"], -0.193)


# ------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_the_workflow_grows_only_the_seeds_the_rule_asks_for(tmp_path):
    """First look written by hand: the known cell's TRLearner equals its baseline to within 0.001
    (the CI excludes -0.193: stop at 4 seeds); the lam 1.0 point scatters around -0.175 (the CI
    contains -0.193 and is wide: continue). The workflow must then train seeds 4..7 of lam 1.0
    and of the baseline, and no more of the known cell's TRLearner; the later looks decide on
    the real (reduced) runs, and every record must be the rule applied to the runs on disk."""
    work = copy_pipeline(tmp_path / "w")
    (work / "config" / "seqtiny.yaml").write_text(yaml.safe_dump(_config()))
    args = ("--cores", "2", "--configfile", "config/seqtiny.yaml")
    snakemake(work, *args, "--", "results/seqtiny/data/sinusoid.manifest.json")
    root = work / "results" / "seqtiny"
    cell = "sinusoid/5shot/maml"
    base = [0.60, 0.62, 0.58, 0.61]
    for s, m in enumerate(base):
        _metrics(root / "runs" / cell / "baseline" / f"seed{s}" / "metrics.json", m)
        _metrics(root / "runs" / cell / "trlearner" / f"seed{s}" / "metrics.json", m + 0.001 * (s % 2))
        _metrics(root / "ablations" / "lam" / cell / "trlearner" / "lam-1.0" / f"seed{s}" / "metrics.json",
                 m + [-0.5, 0.1, -0.3, 0.0][s])
    out = snakemake(work, *args)
    assert "sequential_look" in out.stdout + out.stderr

    def seeds(folder: Path) -> list[int]:
        return sorted(int(p.parent.name[4:]) for p in folder.glob("seed*/metrics.json"))

    looks = root / "sequential"
    main = json.loads((looks / "sinusoid_5shot_maml" / "decided.json").read_text())
    assert (main["n"], main["verdict"]) == (4, "excludes")
    lam_first = json.loads((looks / "lam_lam-1.0_sinusoid_5shot_maml" / "look4.json").read_text())
    assert (lam_first["verdict"], lam_first["next_look"]) == ("continue", 8)
    lam = json.loads((looks / "lam_lam-1.0_sinusoid_5shot_maml" / "decided.json").read_text())
    assert lam["n"] >= 8 and lam["stop"]
    assert seeds(root / "runs" / cell / "trlearner") == [0, 1, 2, 3]  # stopped: nothing more trained
    assert seeds(root / "ablations" / "lam" / cell / "trlearner" / "lam-1.0") == list(range(lam["n"]))
    assert seeds(root / "runs" / cell / "baseline") == list(range(lam["n"]))
    # every record is the rule on the runs on disk; a look after a stop is never written
    for arm, folder in (("sinusoid_5shot_maml", root / "runs" / cell / "trlearner"),
                        ("lam_lam-1.0_sinusoid_5shot_maml", root / "ablations" / "lam" / cell / "trlearner" / "lam-1.0")):
        written = sorted(int(p.stem[4:]) for p in (looks / arm).glob("look*.json"))
        decided_n = json.loads((looks / arm / "decided.json").read_text())["n"]
        assert written == [n for n in LOOKS if n <= decided_n]
        for n in written:
            record = json.loads((looks / arm / f"look{n}.json").read_text())
            b = [json.loads((root / "runs" / cell / "baseline" / f"seed{s}" / "metrics.json").read_text())["mean"]
                 for s in range(n)]
            t = [json.loads((folder / f"seed{s}" / "metrics.json").read_text())["mean"] for s in range(n)]
            want = look([y - x for x, y in zip(b, t)], -0.193)
            assert (record["verdict"], record["n"]) == (want.verdict, n) and math.isclose(record["effect"], want.mean)
    # the report's expectations are the decided runs
    expected = {c["variant"]: c["seeds"] for c in json.loads((root / "expected.json").read_text())}
    assert expected == {"baseline": list(range(lam["n"])), "trlearner": [0, 1, 2, 3]}
    index = json.loads((root / "ablations" / "index.json").read_text())
    assert sorted(e["seed"] for e in index) == list(range(lam["n"]))
    # the report counts trained runs only: the hand-written first look is named, not pooled
    report = (work / "reports" / "seqtiny" / "REPORT.md").read_text()
    assert re.search(r"results/seqtiny/runs/sinusoid/5shot/maml/trlearner/seed0 +\| stale", report)
    # incremental: nothing left to do
    assert planned_jobs(work, *args) == {}

"""Stacked training jobs in the workflow (an experiment's ``stack: K``, issue 18): the DAG plans
one job per chunk (seed // K) of a cell's seeds and no per-seed ``train`` job for them; their
numbers are those of ``python -m trlearner.run.stacked`` in any grouping; adding a seed reruns
only its own chunk. Tiny preset sizes (config/tiny.yaml)."""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys

import pytest
import yaml

from workflow_helpers import REPO, copy_pipeline, job_of, planned_jobs, snakemake

from trlearner.pipeline.check import ConfigError, check_config
from trlearner.pipeline.estimate import stack_factor

CELL = "results/tiny/runs/sinusoid/5shot/maml/baseline"
CHUNK = "train_stack_sinusoid_5shot_maml_baseline_chunk{}"


def _config(seeds=(0, 1, 2), stack=2) -> dict:
    """The tiny preset's sinusoid MAML baseline cell, no ablations, seeds stacked by ``stack``."""
    cfg = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    cfg.pop("ablations")
    exp = cfg["experiments"]["regression"]
    exp.update(algorithms=["maml"], variants=["baseline"], seeds=list(seeds), stack=stack)
    return cfg


def _write(workdir, cfg) -> str:
    (workdir / "config" / "stacked.yaml").write_text(yaml.safe_dump(cfg))
    return "config/stacked.yaml"


def _metrics(path) -> dict:
    m = json.loads(path.read_text())
    m.pop("wall_time_s")  # a seed's share of its stack's wall time
    return m


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return copy_pipeline(tmp_path_factory.mktemp("stacked"))


def test_dag_plans_one_job_per_chunk_and_no_per_seed_job(fresh):
    cfg = _config()
    cfg["experiments"]["regression"]["variants"] = ["baseline", "trlearner"]
    conf = _write(fresh, cfg)
    jobs = planned_jobs(fresh, "--configfile", conf)
    assert "train" not in jobs, jobs
    for variant in ("baseline", "trlearner"):
        for chunk in (0, 1):
            assert jobs[f"train_stack_sinusoid_5shot_maml_{variant}_chunk{chunk}"] == 1
    out = snakemake(fresh, "--dry-run", "--printshellcmds", "--configfile", conf).stdout
    block = out.split(f"rule {CHUNK.format(0)}:", 1)[1].split("\n\n", 1)[0]
    assert f"output: {CELL}/seed0/metrics.json, {CELL}/seed1/metrics.json" in block
    assert "stacked-job" in out
    jobs = [json.loads(shlex.split(line.split("--job ", 1)[1])[0]) for line in out.splitlines() if "stacked-job" in line]
    assert sorted([r["config"]["seed"] for r in job["runs"]] for job in jobs) == [[0, 1], [0, 1], [2], [2]]
    # without `stack`, one train job per seed as before
    cfg["experiments"]["regression"].pop("stack")
    assert planned_jobs(fresh, "--configfile", _write(fresh, cfg)).get("train") == 6


def test_chunks_follow_seed_values_not_positions():
    m = check_config(_config(seeds=(5, 0, 3, 1), stack=2))
    assert [(s.chunk, s.seeds) for s in m.stacks] == [(0, [0, 1]), (1, [3]), (2, [5])]
    assert m.stacked_paths == {r.path for r in m.runs}


@pytest.mark.parametrize("mutate,match", [
    (lambda e: e.update(stack=1), "stack: value 1 is out of range"),
    (lambda e: e.update(datasets=["omniglot_small"], settings=[{"ways": 5, "shots": 1}],
                        variants=["trlearner"], protocol={"iterations": 2}),
     "align 'match' on the classification dataset 'omniglot_small'.*cannot be stacked"),
    (lambda e: e.update(datasets=["metadataset"], settings=[{"varway": True}], variants=["baseline"],
                        protocol={"iterations": 2}),
     "Meta-Dataset run.*does not stack"),
])
def test_check_refuses_what_the_stacked_trainer_refuses(mutate, match):
    cfg = _config()
    mutate(cfg["experiments"]["regression"])
    with pytest.raises(ConfigError, match=match):
        check_config(cfg)


def test_check_accepts_trlearner_classification_with_index_alignment_and_stacked_ablations():
    cfg = _config()
    cfg["experiments"]["regression"].update(datasets=["omniglot_small"], settings=[{"ways": 5, "shots": 1}],
                                            variants=["trlearner"], trlearner={"align": "index"},
                                            protocol={"iterations": 2})
    assert len(check_config(cfg).stacks) == 2
    cfg = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    cfg["ablations"]["lam"]["stack"] = 2  # one stacked job per sweep point (config/calibration.yaml)
    stacks = check_config(cfg).stacks
    assert [s.name for s in stacks] == ["train_stack_lam_lam_0_1_sinusoid_5shot_maml_trlearner_chunk0",
                                        "train_stack_lam_lam_1_0_sinusoid_5shot_maml_trlearner_chunk0"]
    assert stacks[0].log == "results/tiny/logs/ablations/lam/sinusoid/5shot/maml/trlearner/lam-0.1/stack0.log"


def test_stack_estimate_divides_by_the_measured_speedup():
    assert stack_factor(7, "baseline") == pytest.approx(7 / 1.97)
    assert stack_factor(7, "trlearner") == pytest.approx(7 / 1.49)
    assert stack_factor(1, "baseline") == stack_factor(2, "baseline")  # a stack of one runs a twin
    assert 1 < stack_factor(2, "baseline") < 2


def _stacked_alone(tmp_path, matrix, seeds, name):
    """``python -m trlearner.run.stacked`` of ``seeds`` with the chunk job's own arguments."""
    args = matrix.table_runs[0].train_args(matrix.preset, "cpu", "data")
    i = args.index("--seed")
    args = args[:i] + ["--seeds", *map(str, seeds)] + args[i + 2:]
    out = tmp_path / name / "seed{seed}"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "trlearner.run.stacked", *args, "--threads", "1", "--out", str(out)],
                   check=True, env=env, capture_output=True, timeout=300)
    return {s: _metrics(tmp_path / name / f"seed{s}" / "metrics.json") for s in seeds}


@pytest.mark.slow
def test_stacked_jobs_end_to_end_match_the_stacked_trainer_and_adding_a_seed_reruns_one_chunk(tmp_path):
    """(b) each seed's metrics.json is the one `python -m trlearner.run.stacked` gives for that
    seed alone or in another stack; (c) a fourth seed reruns only its chunk (seed // 2 = 1)."""
    work = copy_pipeline(tmp_path / "wf")
    cfg = _config()
    conf = _write(work, cfg)
    targets = [f"{CELL}/seed{s}/metrics.json" for s in (0, 1, 2)]
    snakemake(work, "--cores", "2", *targets, "--configfile", conf)
    got = {s: _metrics(work / CELL / f"seed{s}" / "metrics.json") for s in (0, 1, 2)}
    prov = json.loads((work / CELL / "seed0" / "provenance.json").read_text())
    assert prov["stacked"]["seeds"] == [0, 1]

    matrix = check_config(copy.deepcopy(cfg))
    alone = _stacked_alone(tmp_path, matrix, [1], "alone")
    other = _stacked_alone(tmp_path, matrix, [0, 2], "other")
    assert got[1] == alone[1]
    assert got[0] == other[0] and got[2] == other[2]

    # (c) seed 3 joins chunk 1 (seeds 2, 3); chunk 0 (seeds 0, 1) is not rerun
    before = {s: ((work / CELL / f"seed{s}" / "metrics.json").stat().st_mtime_ns,
                  (work / CELL / f"seed{s}" / "metrics.json").read_bytes()) for s in (0, 1)}
    conf = _write(work, _config(seeds=(0, 1, 2, 3)))
    targets.append(f"{CELL}/seed3/metrics.json")
    assert planned_jobs(work, f"--configfile={conf}", *targets) == {CHUNK.format(1): 1}
    snakemake(work, "--cores", "2", *targets, "--configfile", conf)
    for s in (0, 1):
        path = work / CELL / f"seed{s}" / "metrics.json"
        assert (path.stat().st_mtime_ns, path.read_bytes()) == before[s]
    assert _metrics(work / CELL / "seed2" / "metrics.json") == got[2]  # re-evaluated, same numbers
    assert (work / CELL / "seed3" / "metrics.json").exists()
    assert planned_jobs(work, f"--configfile={conf}", *targets) == {}


def test_stacked_job_moves_checkpoints_of_other_settings_away(tmp_path, capsys):
    """`python -m trlearner.pipeline stacked-job` keeps train-job's stale-checkpoint handling:
    a seed's checkpoint of other settings (here: other iterations) is moved to
    checkpoint.stale.pt, and the seed trains afresh instead of the stack refusing."""
    from trlearner.pipeline.cli import main

    base = ["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5",
            "--test-tasks", "4", "--test-queries", "10", "--curve-steps", "1", "--preset", "tiny", "--device", "cpu"]
    out = ["--threads", "1", "--out", str(tmp_path / "seed{seed}")]
    assert main(["stacked-job", "--job", job_of([*base, "--iterations", "3"], seeds=[0, 1]), *out]) == 0
    for s in (0, 1):  # Snakemake deletes a job's outputs before rerunning it (params changed)
        (tmp_path / f"seed{s}" / "metrics.json").unlink()
    assert main(["stacked-job", "--job", job_of([*base, "--iterations", "4"], seeds=[0, 1]), *out]) == 0
    assert "belongs to other settings" in capsys.readouterr().err
    for s in (0, 1):
        assert (tmp_path / f"seed{s}" / "checkpoint.stale.pt").exists()
        assert json.loads((tmp_path / f"seed{s}" / "metrics.json").read_text())["protocol"]["iterations"] == 4

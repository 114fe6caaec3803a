"""The benchmark harness (quick mode, no timing assertions) and the reference loop's maths."""

import json

import pytest
import torch

from trlearner.engine.algorithms import make_algorithm
from trlearner.engine.backbones import mlp
from trlearner.bench.suite import Case, build_step, groups, main, measure_memory
from trlearner.bench.reference import ReferenceMLP, reference_maml_loss
from trlearner.engine.core import adapt_batch


def _batch(t=6, s=5, q=7, dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    xs, xq = (torch.rand(t, n, 1, generator=g, dtype=dtype) * 10 - 5 for n in (s, q))
    amp = torch.rand(t, 1, 1, generator=g, dtype=dtype) * 4 + 0.5
    return xs, amp * torch.sin(xs), xq, amp * torch.sin(xq)


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("steps,first_order", [(1, False), (2, False), (1, True)])
def test_reference_loop_meta_gradient_equals_engine(steps, first_order):
    xs, ys, xq, yq = _batch()
    algo = make_algorithm("maml", mlp([1, 40, 40], 1), "regression")
    params = algo.init_params(torch.Generator().manual_seed(0), 0.01)
    meta = {k: v.double().requires_grad_() for k, v in params.items()}
    loss = adapt_batch(algo, meta, xs, ys, xq, yq, steps, 0.01, "vmap", first_order).losses.mean()
    g_engine = torch.autograd.grad(loss, list(meta.values()))

    model = ReferenceMLP().double().load_engine_params(meta)
    ref_loss = reference_maml_loss(model, xs, ys, xq, yq, steps, 0.01, first_order)
    names = {"weight": "w", "bias": "b"}
    mod_params = {f"{n.split('.')[0]}.{names[n.split('.')[1]]}": p for n, p in model.named_parameters()}
    g_ref = torch.autograd.grad(ref_loss, [mod_params[k] for k in meta])

    assert abs(ref_loss.item() - loss.item()) <= 1e-12 * abs(loss.item())
    for k, a, b in zip(meta, g_ref, g_engine):
        assert _rel(a, b) <= 1e-6, k


def test_anil_first_order_cached_option_matches_engine():
    grp = groups(quick=True)["sinusoid_mlp"]
    grads = []
    for option in ("fo", "fo_cached"):
        _, loss_fn, params = build_step(Case(grp.name, "anil", "vmap", option=option), grp, torch.float64)
        grads.append(torch.autograd.grad(loss_fn(), params, allow_unused=True))
    for a, b in zip(*grads):
        if b is None:
            assert a is None or a.abs().max() == 0
        else:
            assert _rel(a, b) <= 1e-10


def test_quick_harness_writes_json_and_markdown(tmp_path):
    assert main(["--quick", "--repeats", "2", "--warmup", "1", "--no-memory",
                 "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "bench.json").read_text())
    assert set(res["groups"]) == {"sinusoid_mlp", "sinusoid_seeds", "omniglot_conv4", "miniimagenet_resnet12"}
    names = {c["name"] for c in res["cases"]}
    assert "sinusoid_mlp/maml/reference" in names and "sinusoid_mlp/maml/vmap/trlearner" in names
    assert {"sinusoid_seeds/maml/singles", "sinusoid_seeds/maml/stacked/trlearner"} <= names
    for c in res["cases"]:
        assert c["time"]["status"] == "ok", c
        assert len(c["time"]["samples_s"]) == 2 and c["time"]["median_s"] > 0
    comps = [r["comparison"] for r in res["ratios"]]
    assert any("reference clone-and-adapt / vmap" in c for c in comps)
    assert sum("TRLearner / baseline" in c for c in comps) >= 4
    assert sum("speed-up (singles / stacked)" in c for c in comps) == 2
    targets = {r["comparison"]: r.get("target") for r in res["ratios"]}
    assert targets["sinusoid_mlp maml: TRLearner / baseline (vmap)"] == "<= 1.5"
    assert res["loading"] and res["loading"][0]["status"] == "ok"
    md = (tmp_path / "bench.md").read_text()
    assert md.startswith("# Benchmark results (quick mode)") and "| maml | vmap |" in md
    # run from the repository root: the default preset's dry run is timed
    dag = res["pipeline"][0]
    assert dag["what"] == "DAG construction (dry run)" and dag["status"] == "ok" and dag["median_s"] > 0
    assert "## Pipeline overheads" in md


def test_pipeline_overheads_time_the_dry_run_and_the_noop_rerun(tmp_path):
    from trlearner.bench.pipeline import find_root, pipeline_overheads

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.yaml").write_text("n: 1\n")
    (tmp_path / "Snakefile").write_text(
        'rule all:\n    input: "out.txt"\n\nrule make:\n    output: "out.txt"\n    shell: "echo {config[n]} > {output}"\n')
    assert find_root(tmp_path / "config") == tmp_path
    rows = pipeline_overheads(("default", "paper"), repeats=1, root=tmp_path)
    by = {(r["what"], r["preset"]): r for r in rows}
    assert by["DAG construction (dry run)", "default"]["status"] == "ok"
    assert by["DAG construction (dry run)", "paper"]["status"] == "skipped: no config/paper.yaml"
    assert by["no-op rerun", "default"]["status"].startswith("skipped: the default pipeline has jobs left")
    assert not (tmp_path / "out.txt").exists()  # a dry run runs nothing
    (tmp_path / "out.txt").write_text("1\n")
    rows = pipeline_overheads(("default",), repeats=2, root=tmp_path)
    noop = [r for r in rows if r["what"] == "no-op rerun"][0]
    assert noop["status"] == "ok" and len(noop["samples_s"]) == 2


def test_memory_is_measured_in_a_subprocess():
    grp = groups(quick=True)["sinusoid_mlp"]
    mem = measure_memory(Case(grp.name, "maml", "vmap"), grp, threads=1)
    assert mem["status"] == "ok", mem
    assert mem["rss_peak_mib"] >= mem["rss_setup_mib"] > 0


def test_register_adds_the_bench_subcommand():
    import argparse

    from trlearner.bench.suite import register, run

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "--quick", "--repeats", "2", "--threads", "1"])
    assert args.func is run and args.quick and args.repeats == 2 and args.out == "benchmarks/results"


def test_seed_cases_step_every_seed_and_stacking_keeps_the_loss():
    """``singles`` and ``stacked`` train the same seeds from the same start: one step of each
    gives the same loss before it (float64) and moves every seed's parameters."""
    grp = groups(quick=True)["sinusoid_seeds"]
    built = {impl: build_step(Case(grp.name, "maml", impl, True), grp, torch.float64) for impl in ("singles", "stacked")}
    losses = {impl: fn().item() for impl, (_, fn, _) in built.items()}
    assert abs(losses["singles"] - losses["stacked"]) <= 1e-12 * abs(losses["singles"])
    for impl, (step, _, params) in built.items():
        before = [p.detach().clone() for p in params]
        step()
        assert len(params) == grp.seeds * 7  # 6 MLP tensors + trl.omega per seed
        assert all(not torch.equal(a, p) for a, p in zip(before, params) if p.grad is not None), impl


RUN_LOG = """Building DAG of jobs...
Execute 2 jobs...
[Tue Dec  1 14:41:28 2026]
localrule train_analysis:
    input: src/trlearner/engine/__init__.py
    output: results/analyses/sensitivity/baseline/seed0/metrics.json
    jobid: 93
    reason: Missing output files: results/analyses/sensitivity/baseline/seed0/metrics.json
    resources: tmpdir=/tmp, gpu=0, mem_mb=2000, mem=2 GB, mem_mib=1908
[Tue Dec  1 14:41:28 2026]
rule train_stack_sinusoid_5shot_maml_trlearner_chunk0:
    jobid: 7
[Tue Dec  1 14:41:58 2026]
Finished jobid: 93 (Rule: train_analysis)
1 of 4 steps (25%) done
[Tue Dec  1 14:41:59 2026]
localrule train:
    jobid: 12
[Tue Dec  1 14:42:09 2026]
Error in rule train:
    jobid: 12
[Tue Dec  1 15:21:28 2026]
Finished jobid: 7 (Rule: train_stack_sinusoid_5shot_maml_trlearner_chunk0)
"""


def test_runlog_per_rule_times_from_a_snakemake_log(tmp_path, capsys):
    from trlearner.bench.runlog import main, parse_log, summarize

    jobs = parse_log(RUN_LOG)
    assert [(j["jobid"], j["rule"], j["seconds"]) for j in jobs] == [
        (93, "train_analysis", 30.0), (7, "train_stack_sinusoid_5shot_maml_trlearner_chunk0", 2400.0)]
    s = summarize(jobs, cores=2)  # the failed train job is not counted
    assert s["wall_s"] == 2400.0 and s["busy_s"] == 2430.0
    assert s["idle_share"] == pytest.approx(1 - 2430 / 4800)
    assert [r["rule"] for r in s["rules"]] == ["train_stack_sinusoid_5shot_maml_trlearner_chunk0", "train_analysis"]
    log = tmp_path / "run.snakemake.log"
    log.write_text(RUN_LOG)
    assert main([str(log)]) == 0
    out = capsys.readouterr().out
    assert "wall time 40.0 min on 2 cores" in out and "| train_analysis | 1 | 0.5 | 1 % | 0.5 |" in out
    assert main([str(tmp_path / "missing.log")]) == 2

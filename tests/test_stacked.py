"""Stacked runs (trlearner.run.stacked): a seed's results do not depend on the seeds it is stacked
with; each seed gets a single run's folder; resume and incremental reruns stay exact."""

import json

import pytest
import torch

from trlearner.method.relation import TRConfig
from trlearner.run.folder import load_checked
from trlearner.run.stacked import check_stackable, main, stacked_objective, train_stacked
from trlearner.run.config import resolve_config
from trlearner.run.evaluation import run_source
from trlearner.run.model import build, init_meta
from trlearner.run.train import train


def _cfg(seed, trl=None, **kw):
    opts = dict(dataset="sinusoid", algorithm="maml", shots=5, seed=seed, iterations=300, test_tasks=20,
                checkpoint_every=100, trlearner=trl)
    opts.update(kw)
    return resolve_config(**opts)


def _read(folder):
    m = json.loads((folder / "metrics.json").read_text())
    m.pop("wall_time_s")
    return m


def _alone_and_stacked(tmp_path, trl, iterations):
    train_stacked([_cfg(s, trl, iterations=iterations) for s in (0, 1, 2)],
                  [tmp_path / f"three/seed{s}" for s in (0, 1, 2)], progress=False)
    train_stacked([_cfg(1, trl, iterations=iterations)], [tmp_path / "one/seed1"], progress=False)


def test_a_seed_alone_and_in_a_stack_quick(tmp_path):
    """40 iterations: without the twin of a stack of one, the weights differed from iteration 10."""
    _alone_and_stacked(tmp_path, None, 40)
    assert _read(tmp_path / "three/seed1") == _read(tmp_path / "one/seed1")
    wa, wb = (load_checked(tmp_path / f"{d}/seed1/checkpoint.pt") for d in ("three", "one"))
    for k in wb["meta"]:  # exact (metrics.json rounds the per-task values to 6 decimals)
        assert torch.equal(wa["meta"][k], wb["meta"][k]), k


@pytest.mark.slow
@pytest.mark.parametrize("trl", [None, TRConfig(), TRConfig(sampler="random")], ids=["baseline", "trlearner",
                                                                                      "trl-random"])
def test_a_seed_gives_identical_numbers_alone_and_in_a_stack(tmp_path, trl):
    """Seed 1 trained with seeds 0 and 2 and trained alone (a stack of one), 300 iterations: bit
    for bit the same metrics.json (per-task test MSEs, curve) and the same final weights."""
    _alone_and_stacked(tmp_path, trl, 300)
    a, b = _read(tmp_path / "three/seed1"), _read(tmp_path / "one/seed1")
    assert a == b
    assert a["per_task"] != _read(tmp_path / "three/seed0")["per_task"]  # the seeds differ
    wa, wb = (load_checked(tmp_path / f"{d}/seed1/checkpoint.pt") for d in ("three", "one"))
    for k in wb["meta"]:
        assert torch.equal(wa["meta"][k], wb["meta"][k]), k


def test_each_seed_gets_a_single_runs_folder_and_metrics_format(tmp_path):
    outs = [tmp_path / f"seed{s}" for s in (0, 1)]
    ms = train_stacked([_cfg(s, iterations=20) for s in (0, 1)], outs, progress=False)
    single = train(_cfg(0, iterations=20), tmp_path / "single", progress=False)
    for m, out in zip(ms, outs):
        assert {"metrics.json", "provenance.json", "checkpoint.pt", "log.txt"} <= {p.name for p in out.iterdir()}
        assert set(m) == set(single) and m["status"] == "ok" and m["n_tasks"] == 20
        prov = json.loads((out / "provenance.json").read_text())
        assert prov["stacked"] == {"seeds": [0, 1], "trainer": "stacked"}
    prov0 = json.loads((outs[0] / "provenance.json").read_text())
    assert prov0["config_hash"] == json.loads((tmp_path / "single/provenance.json").read_text())["config_hash"]
    assert [m["seed"] for m in ms] == [0, 1]


def test_wall_times_of_a_stack_add_up_to_the_stack_once(tmp_path):
    """Each seed records its share of the stack's time: the report's total (a sum over runs)
    does not count the stack once per seed."""
    import time

    t0 = time.perf_counter()
    ms = train_stacked([_cfg(s, iterations=20) for s in (0, 1, 2)], [tmp_path / f"seed{s}" for s in (0, 1, 2)],
                       progress=False)
    took = time.perf_counter() - t0
    walls = [m["wall_time_s"] for m in ms]
    assert 0 < sum(walls) <= took


def test_stacked_forward_equals_the_single_run_objective_in_float64():
    """The vmapped seed dimension computes each seed's own meta-loss and meta-gradient."""
    from trlearner.method.regularizers import make_regularizer
    from trlearner.run.model import meta_objective

    cfgs = [_cfg(s, TRConfig()) for s in (0, 1, 2)]
    algo, trl = build(cfgs[0], run_source(cfgs[0], "train", 0, None))
    reg = make_regularizer()
    metas = [{k: v.double().requires_grad_() for k, v in init_meta(c, algo, trl).items()} for c in cfgs]
    batches = []
    for c in cfgs:
        b = run_source(c, "train", c.seed, c.train_queries).batch(range(25))
        batches.append(b._replace(xs=b.xs.double(), ys=b.ys.double(), xq=b.xq.double(), yq=b.yq.double()))
    masks = [trl.sample_mask(m, b.xs, b.ys) for m, b in zip(metas, batches)]
    loss, task, tr, rel = stacked_objective(algo, trl, reg, cfgs[0], metas, batches, masks)
    grads = torch.autograd.grad(loss.sum(), [v for m in metas for v in m.values()])
    k = 0
    for j, (c, m, b) in enumerate(zip(cfgs, metas, batches)):
        ref, logs, ref_rel = meta_objective(c, algo, trl, reg, m, b, 0)
        g_ref = torch.autograd.grad(ref, list(m.values()))
        assert abs(loss[j].item() - ref.item()) <= 1e-12 * abs(ref.item())
        assert abs(tr[j].item() - logs["tr"]) <= 1e-12 * abs(logs["tr"])
        assert torch.allclose(rel[j], ref_rel, rtol=0, atol=1e-12)
        for name, g in zip(m, g_ref):
            assert ((grads[k] - g).norm() / g.norm()).item() <= 1e-10, name
            k += 1


@pytest.mark.slow
def test_resume_after_an_interruption_and_adding_a_seed_stay_exact(tmp_path, monkeypatch):
    """Stop a stack of {0, 1} after its first checkpoint, then rerun it as {0, 1, 2}: seeds 0
    and 1 resume at iteration 100 while seed 2 starts at 0; every seed ends as in one go."""
    import trlearner.run.stacked as st

    train_stacked([_cfg(s) for s in (0, 1, 2)], [tmp_path / f"ref/seed{s}" for s in (0, 1, 2)], progress=False)

    calls = {"n": 0}
    real = st.stacked_objective

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] > 150:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(st, "stacked_objective", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_stacked([_cfg(s) for s in (0, 1)], [tmp_path / f"inc/seed{s}" for s in (0, 1)], progress=False)
    monkeypatch.setattr(st, "stacked_objective", real)
    assert load_checked(tmp_path / "inc/seed0/checkpoint.pt")["iteration"] == 100
    train_stacked([_cfg(s) for s in (0, 1, 2)], [tmp_path / f"inc/seed{s}" for s in (0, 1, 2)], progress=False)
    assert "resumed at iteration 100" in (tmp_path / "inc/seed1/log.txt").read_text()
    for s in (0, 1, 2):
        assert _read(tmp_path / f"inc/seed{s}") == _read(tmp_path / f"ref/seed{s}"), s


def test_a_single_runs_checkpoint_is_not_resumed_by_a_stack(tmp_path):
    train(_cfg(0, iterations=20, checkpoint_every=10), tmp_path / "seed0", progress=False)
    train_stacked([_cfg(0, iterations=20)], [tmp_path / "seed0"], progress=False)
    assert "written by a single run" in (tmp_path / "seed0/log.txt").read_text()


def test_refuses_what_it_cannot_stack():
    with pytest.raises(ValueError, match="ONE cell"):
        check_stackable([_cfg(0), _cfg(1, TRConfig())])
    with pytest.raises(ValueError, match="seed twice"):
        check_stackable([_cfg(0), _cfg(0)])
    with pytest.raises(ValueError, match="vmap engine only"):
        check_stackable([_cfg(0, backend="loop")])


def test_command_line_trains_one_folder_per_seed(tmp_path, capsys):
    out = str(tmp_path / "cell/seed{seed}")
    rc = main(["--dataset", "sinusoid", "--algorithm", "anil", "--shots", "5", "--iterations", "5",
               "--test-tasks", "4", "--seeds", "3", "4", "--out", out, "--no-progress"])
    assert rc == 0
    assert (tmp_path / "cell/seed3/metrics.json").exists() and (tmp_path / "cell/seed4/metrics.json").exists()
    assert "seed 4: mse" in capsys.readouterr().out
    assert main(["--dataset", "sinusoid", "--algorithm", "anil", "--shots", "5", "--seeds", "0",
                 "--out", str(tmp_path / "x")]) == 2


def test_adding_a_seed_to_a_finished_stack_only_reevaluates_the_old_one(tmp_path):
    """What a Snakemake rerun does when a seed is added: the finished seed resumes from its
    final checkpoint (no training) and writes the same metrics; the new seed trains."""
    first = train_stacked([_cfg(0, iterations=20)], [tmp_path / "seed0"], progress=False)[0]
    again = train_stacked([_cfg(s, iterations=20) for s in (0, 1)], [tmp_path / f"seed{s}" for s in (0, 1)],
                          progress=False)
    assert {k: v for k, v in again[0].items() if k != "wall_time_s"} == \
        {k: v for k, v in first.items() if k != "wall_time_s"}
    assert again[0]["wall_time_s"] <= first["wall_time_s"]  # no training time added (the checkpoint's)
    assert "resumed at iteration 20" in (tmp_path / "seed0/log.txt").read_text()
    assert again[1]["status"] == "ok" and again[1]["per_task"] != first["per_task"]


def test_command_line_takes_the_pipelines_train_arguments(tmp_path):
    """What a Snakemake rule would pass: ``Run.train_args`` (with its ``--seed``, which
    ``--seeds`` replaces), ``--threads`` and an ``--out`` pattern."""
    args = ["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--seed", "0", "--iterations", "3",
            "--test-tasks", "4", "--trlearner", "--lam", "0.1", "--heads", "4", "--preset", "default",
            "--device", "cpu", "--data-root", "data", "--no-progress", "--threads", "1"]
    assert main(args + ["--seeds", "5", "6", "--out", str(tmp_path / "seed{seed}")]) == 0
    for s in (5, 6):
        m = json.loads((tmp_path / f"seed{s}/metrics.json").read_text())
        assert m["seed"] == s and m["variant"] == "trlearner" and m["protocol"]["preset"] == "default"


def test_each_trainer_resumes_only_its_own_checkpoints(tmp_path):
    """A single run in a folder holding a stacked seed's checkpoint starts again (it used to resume
    it, and so matched neither trainer's numbers), and a stacked seed in a single run's folder
    starts again, as before: each gives what it gives from scratch."""
    from trlearner.run.folder import load_checked

    cfg = _cfg(0, iterations=20, checkpoint_every=10)
    train(cfg, tmp_path / "single", progress=False)
    train_stacked([cfg], [tmp_path / "stacked"], progress=False)
    for name in ("metrics.json", "provenance.json"):  # the checkpoints stay: a rerun would resume them
        (tmp_path / "single" / name).unlink()
        (tmp_path / "stacked" / name).unlink()
    assert load_checked(tmp_path / "stacked/checkpoint.pt").get("trainer") == "stacked"
    (tmp_path / "single").rename(tmp_path / "was_single")
    (tmp_path / "stacked").rename(tmp_path / "single")  # a stacked seed's folder, now trained by `train`
    (tmp_path / "was_single").rename(tmp_path / "stacked")

    train(cfg, tmp_path / "single", progress=False)
    train_stacked([cfg], [tmp_path / "stacked"], progress=False)
    log = (tmp_path / "single/log.txt").read_text()
    assert "was written by a stacked run, whose rounding differs from a single run's: starting again" in log
    assert "resumed at iteration" not in log
    assert "was written by a single run" in (tmp_path / "stacked/log.txt").read_text()
    train(cfg, tmp_path / "fresh_single", progress=False)
    train_stacked([cfg], [tmp_path / "fresh_stacked"], progress=False)
    assert _read(tmp_path / "single")["per_task"] == _read(tmp_path / "fresh_single")["per_task"]
    assert _read(tmp_path / "stacked")["per_task"] == _read(tmp_path / "fresh_stacked")["per_task"]

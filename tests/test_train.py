"""Training runs: learning, metrics, resume after SIGKILL, determinism, divergence, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import SyntheticImages
from trlearner.cli import main
from trlearner.run.config import DivergedError, resolve_config
from trlearner.run.train import train

TINY = dict(dataset="sinusoid", algorithm="maml", shots=5, iterations=60, test_tasks=40,
            meta_batch=5, checkpoint_every=20)


def test_metrics_record_the_protocol_and_the_curve(tmp_path):
    m = train(resolve_config(**TINY), tmp_path, progress=False)
    assert m["variant"] == "baseline" and m["metric"] == "mse" and m["n_tasks"] == 40
    assert len(m["per_task"]) == 40 and len(m["curve"]["mean"]) == 11
    assert m["curve"]["mean"][1] == pytest.approx(m["mean"])
    assert m["protocol"]["reduced"] is True and m["protocol"]["inner_steps_train"] == 1
    assert m["protocol"]["queries_test"] == 100 and m["protocol"]["meta_batch"] == 5
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["packages"]["torch"] == torch.__version__ and prov["config_hash"]
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "log.txt").read_text()


@pytest.mark.parametrize("algorithm", ["maml", "anil", "metasgd", "tnet"])
def test_each_gradient_based_algorithm_learns_sinusoids(tmp_path, algorithm):
    # PyTorch's init: Finn's (the sinusoid default, std 0.01) needs thousands of iterations to
    # move (measured: MSE 3.9 -> 3.4 after 300, 2.9 after 2000); this test is about learning
    cfg = resolve_config(**dict(TINY, algorithm=algorithm, iterations=300, meta_batch=10,
                                checkpoint_every=1000, init="torch"))
    m = train(cfg, tmp_path, progress=False)
    initial = train(resolve_config(**dict(TINY, algorithm=algorithm, iterations=1, init="torch")),
                    tmp_path / "init", progress=False)
    assert m["mean"] < 0.8 * initial["mean"], (m["mean"], initial["mean"])


@pytest.mark.parametrize("algorithm", ["protonet", "maml"])
def test_classifiers_learn_a_synthetic_image_family(tmp_path, monkeypatch, algorithm):
    import trlearner.run.evaluation as ev
    from trlearner.run.protocols import paper_protocol

    def fake_source(dataset, split, shots, ways=None, queries=None, seed=0, root="data"):
        return SyntheticImages(ways=ways, shots=shots, queries=3, seed={"train": 1, "val": 2, "test": 3}[split] * 7 + seed)

    monkeypatch.setattr(ev, "make_source", fake_source)
    monkeypatch.setitem(paper_protocol.__globals__["DATASET_PROTOCOLS"], "synthetic",
                        paper_protocol("omniglot_small"))
    def run(iterations):
        cfg = resolve_config(dataset="synthetic", algorithm=algorithm, shots=1, ways=5, iterations=iterations,
                             meta_batch=4, filters=8, test_tasks=30, test_steps=3, curve_steps=3,
                             inner_lr=0.1, test_lr=0.1, downsample="maxpool", init="torch")
        # (the max-pool net with PyTorch's init: with 8 filters, MAML's strided Omniglot net
        # reaches 40-52 % here in 30 iterations, measured; this test is about learning at all)
        return train(cfg, tmp_path / str(iterations), progress=False)

    before, after = run(1), run(30)
    assert after["metric"] == "accuracy" and after["unit"] == "percent"
    assert after["mean"] > before["mean"] + 10 and after["mean"] > 60.0  # chance is 20 %


def test_same_seed_gives_identical_metrics(tmp_path):
    a = train(resolve_config(**TINY), tmp_path / "a", progress=False)
    b = train(resolve_config(**TINY), tmp_path / "b", progress=False)
    assert a["per_task"] == b["per_task"] and a["curve"] == b["curve"]


def _cli(args, **kw):
    return subprocess.run([sys.executable, "-m", "trlearner", *args], capture_output=True, text=True, **kw)


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path):
    args = ["train", "--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "1500",
            "--meta-batch", "5", "--test-tasks", "30", "--checkpoint-every", "100", "--threads", "1",
            "--trlearner", "--sampler", "random", "--no-progress"]
    full = _cli(args + ["--out", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "trlearner", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists(), "killed too late: the run had finished"
    resumed = _cli(args + ["--out", str(out)])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at iteration" in (out / "log.txt").read_text()
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert a["per_task"] == b["per_task"] and a["mean"] == b["mean"]


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys, caplog):
    run = tmp_path / "run"
    ref = train(resolve_config(**TINY), run, progress=False)  # leaves ckpt @60 and prev @40
    (run / "checkpoint.pt").write_bytes(b"garbage")
    (run / "metrics.json").unlink()
    m = train(resolve_config(**TINY), run, progress=False)
    assert "unreadable" in caplog.text and "unreadable" not in capsys.readouterr().out  # logged, not printed
    assert "resumed at iteration 40" in (run / "log.txt").read_text()
    assert m["per_task"] == ref["per_task"]


def test_checkpoint_of_other_settings_is_refused(tmp_path):
    train(resolve_config(**TINY), tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        train(resolve_config(**dict(TINY, shots=10)), tmp_path, progress=False)


def test_divergence_stops_with_a_message_and_marks_the_run(tmp_path):
    cfg = resolve_config(**dict(TINY, inner_lr=1e6, outer_lr=10.0, iterations=200))
    with pytest.raises(DivergedError, match="diverged at iteration"):
        train(cfg, tmp_path, progress=False)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == "diverged" and m["mean"] is None and m["diverged_at_iteration"] >= 0


def test_cli_divergence_exit_code_and_bad_arguments(tmp_path):
    r = _cli(["train", "--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "50",
              "--inner-lr", "1e6", "--outer-lr", "10", "--test-tasks", "5", "--no-progress", "--out", str(tmp_path)])
    assert r.returncode == 3 and "diverged at iteration" in r.stderr
    with pytest.raises(SystemExit) as e:
        main(["train", "--dataset", "sinusoid", "--algorithm", "mamll", "--shots", "5", "--out", "x"])
    assert e.value.code == 2
    assert main(["train", "--dataset", "nope", "--algorithm", "maml", "--shots", "5", "--out", str(tmp_path / "n")]) == 2
    r = _cli(["train", "--dataset", "sinusoid", "--algorithm", "maml", "--shots", "0", "--out", "x"])
    assert r.returncode == 2 and "--shots" in r.stderr and "must be > 0" in r.stderr


def test_train_command_writes_metrics(tmp_path):
    rc = main(["train", "--dataset", "harmonic", "--algorithm", "anil", "--shots", "10", "--iterations", "20",
               "--test-tasks", "10", "--trlearner", "--lam", "0.2", "--heads", "2", "--no-progress",
               "--out", str(tmp_path)])
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert rc == 0 and m["variant"] == "trlearner" and m["trlearner"]["lam"] == 0.2 and m["trlearner"]["heads"] == 2
    rel = torch.load(tmp_path / "relation.pt")
    assert rel["probe"].shape == (25, 25) and rel["last_batch"].shape == (25, 25)


def test_chunked_evaluation_equals_one_batch():
    from trlearner.data.sources.dispatch import make_source
    from trlearner.engine.core import evaluate_curve
    from trlearner.run.evaluation import evaluate
    from trlearner.run.model import build, init_meta

    cfg = resolve_config(**TINY)
    algo, _ = build(cfg, make_source("sinusoid", "train", 5))
    meta = init_meta(cfg, algo, None)
    curve, digest = evaluate(cfg, algo, meta, "test", 250, "cpu")  # chunks of 100, 100, 50
    b = make_source("sinusoid", "test", 5, queries=100).batch(range(250))
    ref = evaluate_curve(algo, meta, b.xs, b.ys, b.xq, b.yq, cfg.curve_steps, cfg.test_lr, chunk=250)
    torch.testing.assert_close(curve, ref)
    assert evaluate(cfg, algo, meta, "test", 250, "cpu")[1] == digest

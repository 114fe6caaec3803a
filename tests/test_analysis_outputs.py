"""Each analysis writes its figure (PNG, PDF), CSV, caption and summary from run folders, and
its CSV numbers are the metrics they came from. Run folders are synthetic metrics.json files
(plus one real tiny TRLearner run, to read a real relation.pt)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from trlearner.analysis.cli import main as analysis_main
from trlearner.analysis.cli import run_analysis
from trlearner.analysis.plan import analysis_outputs

N_TASKS = 30


def fake_metrics(dataset="sinusoid", seed=0, variant="baseline", mean=1.0, steps=1, lam=0.1, heads=4,
                 learn_omega=True, reg="none", strength=0.0, wall=10.0, history=None, zero=None):
    rng = np.random.default_rng(seed * 1000 + int(mean * 1000) + steps)
    per_task = (mean + 0.2 * rng.standard_normal(N_TASKS)).round(6)
    per_task += round(mean - per_task.mean(), 6)
    return {
        "dataset": dataset, "algorithm": "maml", "variant": variant, "shots": 5, "ways": None, "seed": seed,
        "metric": "mse", "higher_is_better": False, "mean": float(np.mean(per_task)),
        "ci95": float(1.96 * per_task.std(ddof=1) / math.sqrt(N_TASKS)), "n_tasks": N_TASKS,
        "per_task": per_task.tolist(),
        "curve": None if zero is None else {"steps": [0, steps], "mean": [zero, float(np.mean(per_task))]},
        "protocol": {"iterations": 100, "meta_batch": 25, "inner_steps_train": steps, "inner_lr_train": 0.01,
                     "inner_steps_test": steps, "outer_lr": 0.001, "backbone": "mlp", "queries_test": 100,
                     "reduced": True, "preset": "test"},
        "trlearner": None if variant == "baseline" else {"lam": lam, "heads": heads, "learn_omega": learn_omega},
        "regularizer": {"name": reg, "strength": strength}, "history": history or [],
        "episodes_hash": "abc", "status": "ok", "wall_time_s": wall,
    }


def put(root, rel, m, probe=None):
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(json.dumps(m))
    if probe is not None:
        torch.save(probe, d / "relation.pt")


def check_outputs(out, name):
    for f in analysis_outputs(name):
        assert (out / f).exists() and (out / f).stat().st_size > 0, f
    s = json.loads((out / "summary.json").read_text())
    assert s["analysis"] == name and isinstance(s["verdict"], str) and s["verdict"]
    return pd.read_csv(out / f"{name}.csv"), s


def test_depth(tmp_path):
    runs = tmp_path / "runs"
    means = {}
    for seed in (0, 1):
        for k in (1, 2, 3):
            for v in ("baseline", "trlearner"):
                means[(v, k, seed)] = 2.0 - 0.3 * k + 0.05 * seed if v == "baseline" else 1.0 + 0.01 * seed
                put(runs, f"{v}/steps{k}/seed{seed}", fake_metrics(seed=seed, variant=v, steps=k,
                                                                   mean=means[(v, k, seed)]))
    (runs / "baseline/steps4/seed0").mkdir(parents=True)
    (runs / "baseline/steps4/seed0/log.txt").write_text("started")
    df, s = check_outputs(*_run("depth", runs, tmp_path))
    for _, r in df.iterrows():
        seeds = [json.loads((runs / f"{r.variant}/steps{r.meta_layers}/seed{i}/metrics.json").read_text())["mean"]
                 for i in (0, 1)]
        assert r["mean"] == pytest.approx(np.mean(seeds))
        assert r.n_seeds == 2
    assert "baseline/steps4/seed0" in s["missing_runs"]
    assert "baseline/steps4/seed0" in (tmp_path / "out/depth.caption.md").read_text()
    assert s["agrees"] is True  # baseline improves with depth; TRLearner flat and competitive


def _run(name, runs, tmp_path):
    out = tmp_path / "out"
    assert analysis_main([name, "--runs", str(runs), "--out", str(out)]) == 0
    return out, name


def test_tradeoff(tmp_path):
    runs = tmp_path / "runs"
    spec = {"baseline": ("baseline", "none", 1.0, 10.0), "trlearner": ("trlearner", "none", 0.8, 12.0),
            "weight_decay": ("baseline", "weight_decay", 0.95, 10.5), "input_noise": ("baseline", "input_noise", 1.1, 10.2),
            "meta_aug": ("baseline", "meta_aug", 0.9, 11.0)}
    for m, (v, reg, mean, wall) in spec.items():
        put(runs, f"{m}/seed0", fake_metrics(variant=v, reg=reg, strength=0.1, mean=mean, wall=wall))
    df, s = check_outputs(*_run("tradeoff", runs, tmp_path))
    d = df.set_index("method")
    for m, (v, reg, mean, wall) in spec.items():
        assert d.loc[m, "mean"] == pytest.approx(mean, abs=1e-5)
        assert d.loc[m, "wall_time_s"] == pytest.approx(wall)
        assert d.loc[m, "time_ratio"] == pytest.approx(wall / 10.0)
    assert d.loc["trlearner", "delta_mse"] == pytest.approx(0.8 - 1.0, abs=1e-5)
    assert s["measured"]["trlearner"]["time_ratio"] == pytest.approx(1.2)


def test_tradeoff_without_a_gain_names_no_best(tmp_path):
    """Every regulariser worse than the baseline: gain per unit time would rank the slowest (least
    negative gain per second) first, as the default run's verdict did ('best gain per unit time:
    trlearner' with ΔMSE +0.45)."""
    runs = tmp_path / "runs"
    spec = {"baseline": ("baseline", "none", 1.0, 10.0), "trlearner": ("trlearner", "none", 1.4, 18.0),
            "weight_decay": ("baseline", "weight_decay", 1.4, 8.0), "input_noise": ("baseline", "input_noise", 1.3, 8.0)}
    for m, (v, reg, mean, wall) in spec.items():
        put(runs, f"{m}/seed0", fake_metrics(variant=v, reg=reg, strength=0.1, mean=mean, wall=wall))
    _, s = check_outputs(*_run("tradeoff", runs, tmp_path))
    assert "best gain per unit time" not in s["verdict"]
    assert "no regulariser improves on the baseline's MSE (smallest loss: input_noise)" in s["verdict"]
    assert s["agrees"] is False


def test_cells_that_did_not_learn_are_named_and_their_differences_not_counted(tmp_path):
    """A cell whose test MSE stays above 80 % of its 0-step MSE did not learn (trlearner.run.learning):
    its CSV row says so, the report's table shows it and its sentence leaves its difference out."""
    from trlearner.report.analyses import effect_sentence, small_table

    runs = tmp_path / "runs"
    cells = {("baseline", 1): (3.0, 1.0), ("trlearner", 1): (3.0, 1.5), ("baseline", 2): (3.4, 3.3),
             ("trlearner", 2): (3.0, 1.2)}
    for (v, k), (zero, mean) in cells.items():
        put(runs, f"{v}/steps{k}/seed0", fake_metrics(variant=v, steps=k, mean=mean, zero=zero))
    df, _ = check_outputs(*_run("depth", runs, tmp_path))
    learned = {(r.variant, r.meta_layers): r.learned for _, r in df.iterrows()}
    assert learned == {("baseline", 1): True, ("trlearner", 1): True, ("baseline", 2): False, ("trlearner", 2): True}
    assert df.set_index(["variant", "meta_layers"]).loc[("baseline", 2), "zero_step"] == pytest.approx(3.4)
    assert list(small_table(df)["learned"]) == ["yes", "no", "yes", "yes"]
    text = effect_sentence(pd.read_csv(tmp_path / "out" / "depth.csv"))
    assert text.startswith("At this scale 1 of 4 cells did not learn (test MSE above 80 % of their own 0-step "
                           "MSE: baseline (meta_layers 2))")
    # trlearner k=2 learned, but its difference is with the baseline k=2, which did not: 1 is left
    assert text.endswith("1 of 1 TRLearner − baseline differences between cells that learned has a 95 % CI that "
                         "excludes 0.")


def test_sensitivity_partial(tmp_path):
    runs = tmp_path / "runs"
    put(runs, "baseline/seed0", fake_metrics(mean=1.0))
    cells = {(0.0, 4): 1.0, (0.1, 4): 0.9, (1.0, 4): 0.95, (0.1, 1): 0.97, (0.1, 8): 0.92}
    for (lam, k), mean in cells.items():
        put(runs, f"lam{lam:g}_heads{k}/seed0", fake_metrics(variant="trlearner", lam=lam, heads=k, mean=mean))
    scale = tmp_path / "scale.json"
    scale.write_text(json.dumps({"analyses": {"seeds": 1, "lams": [0, 0.1, 1], "heads_grid": [1, 2, 4, 8]}}))
    out = tmp_path / "out"
    assert analysis_main(["sensitivity", "--runs", str(runs), "--out", str(out), "--scale", str(scale)]) == 0
    df, s = check_outputs(out, "sensitivity")
    t = df[df.sweep != "baseline"]
    for _, r in t.iterrows():
        assert r["mean"] == pytest.approx(cells[(r.lam, int(r.heads))], abs=1e-5)
    assert set(t[t.sweep.str.contains("lambda")].lam) == {0.0, 0.1, 1.0}
    assert set(t[t.sweep.str.contains("K")].heads) == {1, 4, 8}
    assert s["missing_runs"] == ["lam0.1_heads2/seed0"]
    assert "lam0.1_heads2/seed0" in (out / "sensitivity.caption.md").read_text()


def test_motivation(tmp_path):
    runs = tmp_path / "runs"
    its = list(range(10, 101, 10))
    # D1 underfits (val still falling fast), D4 overfits (val min at 30, then rises; train keeps falling)
    hist = {"motivation_d1": [3.0 - 0.02 * i for i in its], "motivation_d4": [1.0 + 0.01 * abs(i - 30) for i in its]}
    for fam, val in hist.items():
        for v in ("baseline", "trlearner"):
            off = 0.0 if v == "baseline" else -0.1
            h = [{"iteration": i, "train": 2.0 - 0.01 * i, "val": x + off} for i, x in zip(its, val)]
            put(runs, f"{fam}/{v}/seed0", fake_metrics(dataset=fam, variant=v, history=h, mean=val[-1] + off))
    df, s = check_outputs(*_run("motivation", runs, tmp_path))
    row = df[(df.family == "motivation_d4") & (df.variant == "baseline") & (df.iteration == 50)].iloc[0]
    assert row.val_mse == pytest.approx(1.2) and row.train_mse == pytest.approx(1.5)
    assert len(df) == 4 * len(its)
    m = s["measured"]
    assert m["motivation_d1/baseline"]["underfits"] and not m["motivation_d1/baseline"]["overfits"]
    assert m["motivation_d4/baseline"]["overfits"] and not m["motivation_d4/baseline"]["underfits"]
    assert s["agrees"] is True


def test_relations_with_a_real_run(tmp_path):
    from trlearner.cli import main as trl_main

    runs = tmp_path / "runs"
    common = ["train", "--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "5",
              "--test-tasks", "20", "--threads", "1", "--no-progress", "--curve-steps", "1"]
    assert trl_main([*common, "--trlearner", "--heads", "4", "--out", str(runs / "k_heads/seed0")]) == 0
    amp = torch.linspace(0.1, 5, 25)
    for name, heads, learn in (("fixed_cosine", 1, False), ("one_head", 1, True)):
        m = fake_metrics(variant="trlearner", heads=heads, learn_omega=learn, mean=2.0)
        probe = {"probe": torch.eye(25) * 0.5 + 0.5, "probe_info": {"amplitude": amp}, "probe_order_by": "amplitude",
                 "last_batch": None, "running_mean": None}
        put(runs, f"{name}/seed0", m, probe)
    df, s = check_outputs(*_run("relations", runs, tmp_path))
    real = json.loads((runs / "k_heads/seed0/metrics.json").read_text())
    d = df.set_index("variant")
    assert d.loc["k_heads", "mean"] == pytest.approx(real["mean"])
    assert d.loc["k_heads", "order_by"] == "amplitude"
    mat = pd.read_csv(tmp_path / "out/relations_matrix.csv")
    rel = torch.load(runs / "k_heads/seed0/relation.pt", weights_only=False)
    k = mat[mat.variant == "k_heads"].pivot(index="i", columns="j", values="m_ij").values
    assert np.allclose(k, rel["probe"].numpy(), atol=1e-6)
    assert set(s["measured"]) == {"fixed_cosine", "one_head", "k_heads"}


def test_empty_runs_folder(tmp_path):
    for name in ("depth", "tradeoff", "sensitivity", "motivation", "relations"):
        s = run_analysis(name, str(tmp_path / "none"), str(tmp_path / name), scale={"seeds": 1})
        assert s["n_runs"] == 0 and s["missing_runs"]
        for f in analysis_outputs(name):
            assert (tmp_path / name / f).exists()

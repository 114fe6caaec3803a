"""The analysis plan: unique run folders, each entry resolving to a valid run config (the one its
pipeline job receives)."""

from __future__ import annotations

import pytest

from trlearner.analysis.cli import expected_runs
from trlearner.analysis.plan import ANALYSES, DEFAULT_SCALE, ROOT, analysis_outputs, analysis_runs, run_config

SCALES = [
    {},
    {"iterations": 50, "seeds": [0, 3], "test_tasks": 20, "eval_every": 10, "preset": "tiny",
     "depth": {"iterations": 30, "depth_steps": [1, 2]}, "lams": [0, 0.001, 0.1], "heads_grid": [1, 4]},
]


@pytest.mark.parametrize("scale", SCALES)
def test_run_dirs_unique_and_configs_resolve(scale):
    runs = analysis_runs(scale)
    dirs = [r["run_dir"] for r in runs]
    assert len(dirs) == len(set(dirs))
    assert {r["analysis"] for r in runs} == set(ANALYSES)
    for r in runs:
        assert r["run_dir"].startswith(f"{ROOT}/{r['analysis']}/")
        cfg = run_config(r)
        assert cfg.algorithm == "maml" and cfg.device == "cpu"
        assert cfg.iterations == (scale.get(r["analysis"], {}).get("iterations") or scale.get("iterations")
                                  or DEFAULT_SCALE["iterations"])


def test_plan_contents():
    runs = analysis_runs({"seeds": 1})
    parse = {r["run_dir"]: _Flat(run_config(r)) for r in runs}
    mot = [a for d, a in parse.items() if "/motivation/" in d]
    assert {a.dataset for a in mot} == {f"motivation_d{i}" for i in range(1, 5)}
    assert all(a.inner_steps == 1 and a.test_steps == 1 and a.eval_every > 0 for a in mot)
    depth = {d: a for d, a in parse.items() if "/depth/" in d}
    assert sorted({a.inner_steps for a in depth.values()}) == [1, 2, 3, 4, 5]
    assert all(a.inner_steps == a.test_steps for a in depth.values())
    rel = {d.split("/")[3]: a for d, a in parse.items() if "/relations/" in d}
    assert rel["fixed_cosine"].fixed_omega and rel["fixed_cosine"].heads == 1
    assert rel["one_head"].heads == 1 and not rel["one_head"].fixed_omega and rel["one_head"].trlearner
    assert rel["k_heads"].heads == 4 and not rel["baseline"].trlearner
    regs = {a.regularizer for d, a in parse.items() if "/tradeoff/" in d}
    assert regs == {"none", "weight_decay", "input_noise", "meta_aug"}
    sens = [(a.lam, a.heads) for d, a in parse.items() if "/sensitivity/" in d and a.trlearner]
    assert {lam for lam, k in sens if k == 4} == {0, 0.01, 0.1, 0.5, 1}
    assert {k for lam, k in sens if lam == 0.1} == {1, 2, 4, 8}
    assert len(sens) == len(set(sens))


class _Flat:
    """A run config read as the options of ``trlearner train`` (``lam``, ``fixed_omega``, ...)."""

    def __init__(self, cfg):
        self.cfg, self.trlearner = cfg, cfg.trlearner is not None

    def __getattr__(self, name):
        trl = self.cfg.trlearner
        if name == "fixed_omega":
            return trl is not None and not trl.learn_omega
        if trl is not None and name in ("lam", "heads"):
            return getattr(trl, name)
        return getattr(self.cfg, name)


def test_outputs_and_expected():
    for name in ANALYSES:
        outs = analysis_outputs(name)
        assert {f"{name}.png", f"{name}.pdf", f"{name}.csv", f"{name}.caption.md", "summary.json"} <= set(outs)
    with pytest.raises(ValueError):
        analysis_outputs("nope")
    exp = expected_runs("depth", {"seeds": 1, "depth_steps": [1, 3]})
    assert sorted(exp) == ["baseline/steps1/seed0", "baseline/steps3/seed0",
                           "trlearner/steps1/seed0", "trlearner/steps3/seed0"]


def test_motivation_families_registered():
    from trlearner.data.sources.regression import FAMILIES, MOTIVATION_BANDS, RegressionSource
    from trlearner.run.protocols import paper_protocol

    for name, (lo, hi) in MOTIVATION_BANDS.items():
        assert name in FAMILIES and paper_protocol(name)["inner_steps"] == 1
        b = RegressionSource(name, "val", shots=5, queries=10).batch(range(50))
        w = b.info["frequency"]
        assert float(w.min()) >= lo - 1e-6 and float(w.max()) <= hi + 1e-6
        assert tuple(b.xq.shape) == (50, 10, 1)

"""`trlearner train` on the paper's remaining datasets (pQSAR, Pascal 3D pose, Meta-Dataset),
on the data layer's fixtures in their real file format (served on 127.0.0.1), and the padding
rules of variable-way episodes (label -1 ignored by loss, accuracy and prototypes)."""

from __future__ import annotations

import math

import pytest
import torch

from fixtures_data import fetch_fixture
from trlearner.engine.algorithms.base import accuracy_metric, ce_loss
from trlearner.engine.algorithms.protonet import ProtoNet
from trlearner.engine.backbones import mlp
from trlearner.data.registry import override
from trlearner.method.relation import TRConfig
from trlearner.run.config import resolve_config
from trlearner.run.train import train


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """dataset -> (data root, registry override context) for the fixtures, fetched once."""
    tmp = tmp_path_factory.mktemp("paper_data")
    out = {}
    for dataset in ("pqsar", "pascal3d_pose", "metadataset_vgg_flower"):
        root, spec, _ = fetch_fixture(dataset, tmp)
        out[dataset] = (root, spec)
    return out


def _run(fetched, tmp_path, dataset, algorithm, trl, **kw):
    root, spec = fetched[dataset]
    cfg = resolve_config(dataset=dataset, algorithm=algorithm, iterations=2, test_tasks=3, meta_batch=2,
                         data_root=str(root), device="cpu", trlearner=trl, **kw)
    with override(spec):
        return train(cfg, tmp_path / "run", progress=False), cfg


def _check(m, metric, n_tasks, variant):
    assert (tmp := m["metric"]) == metric, tmp
    assert m["status"] == "ok" and m["n_tasks"] == n_tasks and m["variant"] == variant
    assert math.isfinite(m["mean"]) and math.isfinite(m["ci95"])
    assert len(m["per_task"]) == n_tasks and all(math.isfinite(v) for v in m["per_task"])
    assert all(math.isfinite(v) for v in m["curve"]["mean"])


# pQSAR fixture: train assays have 25..30 measurements; pose fixture: 12 views per object.
REGRESSION_RUNS = {
    "pqsar": dict(shots=5, train_queries=5, test_queries=10, inner_steps=1, test_steps=2, curve_steps=2),
    "pascal3d_pose": dict(shots=4, train_queries=4, test_queries=6, filters=4, inner_steps=1, test_steps=2,
                          curve_steps=2),
}


@pytest.mark.parametrize("dataset", list(REGRESSION_RUNS))
@pytest.mark.parametrize("with_trl", [False, True], ids=["baseline", "trlearner"])
def test_regression_datasets_train(fetched, tmp_path, dataset, with_trl):
    trl = TRConfig() if with_trl else None
    m, cfg = _run(fetched, tmp_path, dataset, "maml", trl, **REGRESSION_RUNS[dataset])
    # the right metric: mse (pQSAR's R^2 needs train.build to apply the protocol's metric,
    # see test_pqsar_reports_r2)
    _check(m, m["metric"], 3, "trlearner" if with_trl else "baseline")
    assert m["metric"] in ("mse", "r2") and m["ways"] is None
    assert (tmp_path / "run" / "metrics.json").exists()
    if with_trl:
        assert (tmp_path / "run" / "relation.pt").exists()


def test_pqsar_reports_r2_with_the_metamix_network(fetched, tmp_path):
    m, cfg = _run(fetched, tmp_path, "pqsar", "maml", None, **REGRESSION_RUNS["pqsar"])
    assert m["metric"] == "r2" and m["higher_is_better"] is True
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert tuple(ckpt["meta"]["fc1.w"].shape) == (500, 1024) and tuple(ckpt["meta"]["fc2.w"].shape) == (500, 500)


@pytest.mark.parametrize("algorithm", ["maml", "protonet"])
def test_metadataset_trains_on_variable_way_episodes(fetched, tmp_path, algorithm):
    m, cfg = _run(fetched, tmp_path, "metadataset_vgg_flower", algorithm, None, shots=1, filters=4,
                  inner_steps=1, test_steps=1, curve_steps=1)
    _check(m, "accuracy", 3, "baseline")
    assert all(0.0 <= v <= 100.0 for v in m["per_task"])


def test_metadataset_single_source_with_trlearner(fetched, tmp_path):
    """Variable-way episodes of one source: TRLearner trains with the mean class representation."""
    m, _ = _run(fetched, tmp_path, "metadataset_vgg_flower", "maml", TRConfig(lam=0.5, heads=2), shots=1,
                filters=4, inner_steps=1, test_steps=1, curve_steps=1)
    assert m["status"] == "ok" and m["variant"] == "trlearner" and m["trlearner"]["class_repr"] == "mean"
    assert all(0.0 <= v <= 100.0 for v in m["per_task"])


# --------------------------------------------------------------------------- padding rules

def test_cross_entropy_ignores_padding_and_absent_classes():
    # a 2-way task in a 4-output head, one padded row (label -1) with huge logits
    out = torch.tensor([[2.0, 0.0, 9.0, 9.0],
                        [0.0, 1.0, 9.0, 9.0],
                        [50.0, -50.0, 9.0, 9.0]])
    y = torch.tensor([0, 1, -1])
    # hand computed over the first two rows and the first two classes only
    l0 = -(2.0 - math.log(math.exp(2.0) + 1.0))
    l1 = -(1.0 - math.log(1.0 + math.exp(1.0)))
    assert ce_loss(out, y).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    # unpadded full-width tasks: exactly the plain cross-entropy
    out2, y2 = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.equal(ce_loss(out2, y2), torch.nn.functional.cross_entropy(out2, y2))


def test_accuracy_counts_real_entries_only():
    out = torch.tensor([[1.0, 0.0, 5.0],   # label 0: right (class 2 is absent, masked)
                        [1.0, 0.0, 0.0],   # label 1: wrong
                        [0.0, 1.0, 0.0],   # padding: ignored
                        [0.0, 1.0, 0.0]])  # padding: ignored
    y = torch.tensor([0, 1, -1, -1])
    assert accuracy_metric(out, y).item() == pytest.approx(0.5)


def test_prototypes_ignore_padded_support_rows():
    algo = ProtoNet(mlp([2, 3], n_out=4), "classification")
    meta = algo.init_params(torch.Generator().manual_seed(0), 0.0)
    xs = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [100.0, 100.0]])
    ys = torch.tensor([0, 0, 1, -1])  # 2-way, 2+1 shots, one padded row
    state = algo.adapt(meta, xs, ys, steps=0, lr=0.0, grad=None)
    h = algo.backbone.features(meta, xs)
    p = state["prototypes"]
    assert p.shape == (4, h.shape[1]) and torch.isfinite(p).all()
    assert torch.allclose(p[0], (h[0] + h[1]) / 2) and torch.allclose(p[1], h[2])
    assert torch.equal(p[2:], torch.zeros_like(p[2:]))  # absent classes: zero, masked by the loss
    # under vmap over a padded batch (the engine's path)
    from trlearner.engine.core import adapt_batch
    out = adapt_batch(algo, meta, xs[None], ys[None], xs[None, :3], ys[None, :3], 0, 0.0)
    assert torch.isfinite(out.losses).all()
    assert torch.allclose(out.states["prototypes"][0], p)

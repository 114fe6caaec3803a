"""The vmap engine against the per-task autograd loop, and meta-gradients against
references computed independently."""

import pytest
import torch

from conftest import SyntheticImages, leaf_params
from trlearner.engine.algorithms import ALGORITHMS, make_algorithm
from trlearner.engine.backbones import conv4, mlp, resnet12
from trlearner.data.sources.dispatch import make_source
from trlearner.engine.core import adapt_batch, evaluate_curve


def regression_batch(tasks=4, shots=5):
    b = make_source("sinusoid", "train", shots=shots, seed=1).batch(range(tasks))
    return [t.double() for t in (b.xs, b.ys, b.xq, b.yq)]


def image_batch(tasks=3, ways=5, shots=1, queries=2):
    b = SyntheticImages(ways=ways, shots=shots, queries=queries).batch(range(tasks), dtype=torch.float64)
    return [b.xs, b.ys, b.xq, b.yq]


CASES = [(name, "mlp") for name in ("maml", "anil", "metasgd", "tnet")] + \
        [(name, "conv4") for name in ALGORITHMS] + [("maml", "resnet12"), ("protonet", "resnet12")]


def build(name, backbone):
    if backbone == "mlp":
        return make_algorithm(name, mlp([1, 40, 40], 1), "regression"), regression_batch()
    if backbone == "conv4":
        return make_algorithm(name, conv4((1, 28, 28), 5, filters=4), "classification"), image_batch()
    return make_algorithm(name, resnet12((1, 28, 28), 5, widths=(3, 4, 4, 5)), "classification"), image_batch(tasks=2)


def meta_grads(algo, meta, batch, backend, steps=2, first_order=False):
    out = adapt_batch(algo, meta, *batch, steps=steps, lr=0.1, backend=backend, first_order=first_order)
    return out.losses, torch.autograd.grad(out.losses.mean(), list(meta.values()), allow_unused=True)


@pytest.mark.parametrize("name,backbone", CASES)
@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_and_loop_give_the_same_meta_gradients(name, backbone, first_order):
    algo, batch = build(name, backbone)
    meta = leaf_params(algo.init_params(torch.Generator().manual_seed(0), 0.1))
    lv, gv = meta_grads(algo, meta, batch, "vmap", first_order=first_order)
    ll, gl = meta_grads(algo, meta, batch, "loop", first_order=first_order)
    torch.testing.assert_close(lv, ll, rtol=1e-9, atol=0)
    for key, a, b in zip(meta, gv, gl):
        assert (a is None) == (b is None), key
        if a is not None:
            rel = (a - b).norm() / b.norm().clamp_min(1e-30)
            assert rel <= 1e-6, f"{name}/{backbone} {key}: relative error {rel:.2e}"


def test_second_order_maml_gradient_matches_finite_differences():
    algo = make_algorithm("maml", mlp([1, 8, 8], 1), "regression")
    meta = leaf_params(algo.init_params(torch.Generator().manual_seed(0), 0.1))
    batch = regression_batch(tasks=2, shots=3)
    keys = list(meta)

    def loss(*values):
        m = dict(zip(keys, values))
        return adapt_batch(algo, m, *batch, steps=2, lr=0.1).losses.mean()

    assert torch.autograd.gradcheck(loss, tuple(meta.values()), eps=1e-6, atol=1e-6)


def test_first_order_maml_gradient_is_the_query_gradient_at_the_adapted_weights():
    algo = make_algorithm("maml", mlp([1, 8, 8], 1), "regression")
    meta = leaf_params(algo.init_params(torch.Generator().manual_seed(0), 0.1))
    xs, ys, xq, yq = regression_batch(tasks=1, shots=4)
    _, g = meta_grads(algo, meta, (xs, ys, xq, yq), "vmap", steps=1, first_order=True)
    # By hand: one SGD step, then the plain gradient of the query loss at those weights.
    w = {k: v.detach().requires_grad_() for k, v in meta.items()}
    gs = torch.autograd.grad(((algo.backbone(w, xs[0]) - ys[0]) ** 2).mean(), list(w.values()))
    adapted = {k: (v - 0.1 * gk).detach().requires_grad_() for (k, v), gk in zip(w.items(), gs)}
    ref = torch.autograd.grad(((algo.backbone(adapted, xq[0]) - yq[0]) ** 2).mean(), list(adapted.values()))
    for a, b in zip(g, ref):
        torch.testing.assert_close(a, b)


def test_anil_adapts_only_the_head_and_metasgd_uses_learned_step_sizes():
    xs, ys, xq, yq = regression_batch(tasks=1)
    anil = make_algorithm("anil", mlp([1, 40, 40], 1), "regression")
    meta = anil.init_params(torch.Generator().manual_seed(0), 0.01)
    from trlearner.engine.core import InnerGrad
    state = anil.adapt(meta, xs[0].float(), ys[0].float(), 1, 0.01, InnerGrad("func"))
    assert set(state) == {"head.w", "head.b"}
    msgd = make_algorithm("metasgd", mlp([1, 40, 40], 1), "regression")
    meta = msgd.init_params(torch.Generator().manual_seed(0), 0.01)
    meta["lr.fc1.w"] = torch.zeros_like(meta["lr.fc1.w"])  # a zero step size freezes fc1.w
    state = msgd.adapt(meta, xs[0].float(), ys[0].float(), 3, 0.01, InnerGrad("func"))
    assert torch.equal(state["fc1.w"], meta["fc1.w"]) and not torch.equal(state["fc2.w"], meta["fc2.w"])


def test_tnet_meta_learns_transforms_but_never_adapts_them():
    algo = make_algorithm("tnet", mlp([1, 40, 40], 1), "regression")
    meta = leaf_params(algo.init_params(torch.Generator().manual_seed(0), 0.01))
    assert all(not k.endswith(".T") for k in algo.adapt_keys(meta))
    _, g = meta_grads(algo, meta, regression_batch(), "vmap")
    grads = dict(zip(meta, g))
    assert grads["fc1.T"].abs().sum() > 0  # the outer loop trains the transforms


def test_protonet_prototypes_and_distances_by_hand():
    algo = make_algorithm("protonet", conv4((1, 28, 28), 2, filters=4), "classification")
    meta = algo.init_params(torch.Generator().manual_seed(0), 0.0)
    xs = torch.rand(4, 1, 28, 28)
    ys = torch.tensor([0, 0, 1, 1])
    state = algo.adapt(meta, xs, ys, 0, 0.0, None)
    h = algo.backbone.features(meta, xs)
    protos = torch.stack([h[:2].mean(0), h[2:].mean(0)])
    torch.testing.assert_close(state["prototypes"], protos)
    xq = torch.rand(3, 1, 28, 28)
    hq = algo.backbone.features(meta, xq)
    torch.testing.assert_close(algo.predict(meta, state, xq), -torch.cdist(hq, protos) ** 2, rtol=1e-4, atol=1e-4)


def test_evaluation_curve_starts_at_the_unadapted_model():
    algo = make_algorithm("maml", mlp([1, 40, 40], 1), "regression")
    meta = algo.init_params(torch.Generator().manual_seed(0), 0.01)
    xs, ys, xq, yq = (t.float() for t in regression_batch(tasks=6))
    curve = evaluate_curve(algo, meta, xs, ys, xq, yq, steps=3, lr=0.01, chunk=4)
    assert curve.shape == (6, 4)
    unadapted = ((algo.backbone(meta, xq.reshape(-1, 1)).reshape(6, -1, 1) - yq) ** 2).mean((1, 2))
    torch.testing.assert_close(curve[:, 0], unadapted)

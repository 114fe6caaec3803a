"""TRLearner: the relation matrix, the consistency loss and their gradients."""

import math

import pytest
import torch

from conftest import SyntheticImages, leaf_params
from trlearner.engine.algorithms import ALGORITHMS, make_algorithm
from trlearner.engine.backbones import conv4, mlp
from trlearner.data.sources.dispatch import make_source
from trlearner.data.sources.episodes import TaskBatch
from trlearner.engine.core import adapt_batch
from trlearner.method.relation import (TRConfig, TRLearner, align_classes, consistency_loss,
                                farthest_point_mask, random_mask, relation_matrix, relation_weights)


def test_relation_matrix_by_hand():
    omega = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    r = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    # head 1 (identity): cos(r0, r1) = 1/sqrt2, cos(r0, r2) = 0, cos(r1, r2) = 1/sqrt2
    # head 2 (keeps dim 0): r0 -> (1,0), r1 -> (1,0), r2 -> (0,0) (zero vector: cos 0)
    m = relation_matrix(omega, r)
    s = 1 / math.sqrt(2)
    expected = torch.tensor([[1.0, (s + 1) / 2, 0.0], [(s + 1) / 2, 1.0, s / 2], [0.0, s / 2, 0.5]])
    torch.testing.assert_close(m, expected)


def test_relation_matrix_is_symmetric_bounded_and_one_for_identical_tasks():
    g = torch.Generator().manual_seed(0)
    omega, r = torch.randn(4, 16, generator=g), torch.randn(6, 16, generator=g)
    r[3] = r[1]
    m = relation_matrix(omega, r)
    torch.testing.assert_close(m, m.T)
    assert m.min() >= -1 - 1e-6 and m.max() <= 1 + 1e-6
    torch.testing.assert_close(m[1, 3], torch.tensor(1.0))
    torch.testing.assert_close(torch.diagonal(m), torch.ones(6))


def test_consistency_loss_by_hand():
    # 3 tasks, 1 query each, scalar outputs; f^p(x_i) = cross[p, i]
    cross = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]).reshape(3, 3, 1, 1)
    m = torch.tensor([[1.0, 0.5, 0.25], [0.5, 1.0, -0.5], [0.25, -0.5, 1.0]])
    w = relation_weights(m, "relu")
    yq = torch.zeros(3, 1, 1)
    loss = consistency_loss(w, cross, yq, lambda o, y: ((o - y) ** 2).mean())
    eps = 1e-6
    # task 0: others 1 (w .5) and 2 (w .25) on x_0: (0.5*4 + 0.25*7)/0.75 = 5
    # task 1: others 0 (.5) and 2 (relu(-.5)=0) on x_1: 2 (up to eps)
    # task 2: others 0 (.25) and 1 (0) on x_2: 3
    mixed0 = ((0.5 + eps) * 4 + (0.25 + eps) * 7) / (0.75 + 2 * eps)
    mixed1 = ((0.5 + eps) * 2 + eps * 8) / (0.5 + 2 * eps)
    mixed2 = ((0.25 + eps) * 3 + eps * 6) / (0.25 + 2 * eps)
    torch.testing.assert_close(loss, torch.tensor([mixed0 ** 2, mixed1 ** 2, mixed2 ** 2]))
    raw = relation_weights(m, "raw")
    # rows 0 and 2 normalise to 1; row 1's weights cancel (0.5 - 0.5): kept finite, not 1/0
    torch.testing.assert_close(raw.sum(1)[[0, 2]], torch.ones(2))
    assert torch.isfinite(raw).all() and raw[2, 0] < 0 and torch.all(torch.diagonal(raw) == 0)


def test_farthest_point_selection_by_hand():
    z = torch.tensor([[[0.0], [1.0], [2.0], [10.0], [2.1]]])
    # centroid 3.02 -> nearest is 2.1 (index 4); farthest from it: 10 (3); then 0 (0)
    mask = farthest_point_mask(z, 3)
    assert mask.tolist() == [[1.0, 0.0, 0.0, 1.0, 1.0]]
    rnd = random_mask(4, 5, 2, torch.Generator().manual_seed(0))
    assert rnd.sum(1).tolist() == [2.0] * 4


def test_class_alignment_undoes_a_permutation():
    g = torch.Generator().manual_seed(0)
    feats0 = torch.randn(3, 8, generator=g)
    perm = torch.tensor([2, 0, 1])  # task 1's class c is task 0's class perm[c]
    class_feats = torch.stack([feats0, feats0[perm]])
    # model p's logits = one-hot of its own class index; model 0 applied to task 1 sees
    # task 1's class c, which model 0 calls perm[c]
    cross = torch.zeros(2, 2, 3, 3)
    for c in range(3):
        cross[0, 1, c, perm[c]] = 1.0
        cross[0, 0, c, c] = cross[1, 1, c, c] = 1.0
        cross[1, 0, c, (perm == c).nonzero()[0, 0]] = 1.0
    aligned = align_classes(cross, class_feats)
    for p in range(2):
        for i in range(2):
            assert torch.equal(aligned[p, i].argmax(-1), torch.arange(3)), (p, i)


def _setup(name="maml", kind="regression", lam=0.5, dtype=torch.float64, **cfg):
    if kind == "regression":
        algo = make_algorithm(name, mlp([1, 40, 40], 1), kind)
        trl = TRLearner(algo, TRConfig(lam=lam, heads=3, **cfg), shots=5)
        b = make_source("sinusoid", "train", shots=5, seed=2).batch(range(5))
        b = TaskBatch(*(t.to(dtype) for t in b[:4]), b.info)
    else:
        algo = make_algorithm(name, conv4((1, 28, 28), 5, filters=4), kind)
        trl = TRLearner(algo, TRConfig(lam=lam, heads=3, **cfg), shots=2, ways=5)
        b = SyntheticImages(ways=5, shots=2, queries=2).batch(range(3), dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    meta = leaf_params({**algo.init_params(gen, 0.1), **trl.init_params(gen)}, dtype)
    return algo, trl, meta, b


def test_lambda_zero_gives_the_baseline_meta_gradient():
    # the vmap path takes the task loss from the diagonal of the all-pairs predictions, which
    # sums in another order than the baseline's own forward: equal to float64 rounding
    algo, trl, meta, b = _setup(lam=0.0)
    out = trl.meta_loss(meta, b, steps=1, lr=0.01)
    g_trl = torch.autograd.grad(out.loss, list(meta.values()), allow_unused=True)
    base = adapt_batch(algo, meta, b.xs, b.ys, b.xq, b.yq, 1, 0.01).losses.mean()
    g_base = torch.autograd.grad(base, list(meta.values()), allow_unused=True)
    for k, a, c in zip(meta, g_trl, g_base):
        if k == "trl.omega":
            assert c is None and (a is None or torch.all(a == 0))
        else:
            assert (a - c).norm() <= 1e-12 * c.norm(), k


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_gradients_reach_omega_and_the_backbone(kind):
    algo, trl, meta, b = _setup(kind=kind, lam=1.0)
    out = trl.meta_loss(meta, b, steps=1, lr=0.01, gen=torch.Generator().manual_seed(0))
    tr_grads = dict(zip(meta, torch.autograd.grad(out.tr_loss, list(meta.values()), allow_unused=True)))
    assert tr_grads["trl.omega"].abs().sum() > 0
    body = "fc1.w" if kind == "regression" else "conv1.w"
    assert tr_grads[body].abs().sum() > 0


def test_permuting_the_tasks_permutes_m_and_keeps_the_loss():
    algo, trl, meta, b = _setup()
    perm = torch.tensor([3, 0, 4, 1, 2])
    out = trl.meta_loss(meta, b, steps=1, lr=0.01)
    pb = TaskBatch(*(t[perm] for t in b[:4]), {})
    pout = trl.meta_loss(meta, pb, steps=1, lr=0.01)
    torch.testing.assert_close(pout.relation, out.relation[perm][:, perm])
    torch.testing.assert_close(pout.loss, out.loss)


@pytest.mark.parametrize("name", ["maml", "anil", "metasgd", "tnet"])
def test_vmap_and_loop_backends_agree_with_trlearner(name):
    algo, trl, meta, b = _setup(name)
    grads = {}
    for backend in ("vmap", "loop"):
        out = trl.meta_loss(meta, b, steps=1, lr=0.01, backend=backend)
        grads[backend] = torch.autograd.grad(out.loss, list(meta.values()), allow_unused=True)
    for k, a, c in zip(meta, grads["vmap"], grads["loop"]):
        if c is not None:
            assert ((a - c).norm() / c.norm().clamp_min(1e-30)) <= 1e-6, k


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_runs_with_trlearner_on_classification(name):
    algo, trl, meta, b = _setup(name, kind="classification", dtype=torch.float32)
    out = trl.meta_loss(meta, b, steps=1, lr=0.1, gen=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss) and out.relation.shape == (3, 3)
    out.loss.backward()


def test_regression_representation_depends_on_labels():
    algo, trl, meta, b = _setup(meta_data=5)
    r1, _, mask = trl.representations(meta, b.xs, b.ys)
    r2, _, _ = trl.representations(meta, b.xs, -b.ys)
    assert mask.sum(1).tolist() == [5.0] * 5
    d = algo.backbone.feature_dim
    torch.testing.assert_close(r2[:, :d], -r1[:, :d])  # label-weighted features flip
    torch.testing.assert_close(r2[:, d:], r1[:, d:])


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="sampler"):
        TRConfig(sampler="best")
    with pytest.raises(ValueError, match="heads"):
        TRConfig(heads=0)


@pytest.mark.parametrize("backbone", ["mlp", "conv4"])
def test_cross_predict_equals_pairwise_predictions(backbone):
    from trlearner.engine.core import cross_predict

    kind = "regression" if backbone == "mlp" else "classification"
    algo, trl, meta, b = _setup(kind=kind)
    states = adapt_batch(algo, meta, b.xs, b.ys, b.xq, b.yq, 1, 0.01).states
    for backend in ("vmap", "loop"):
        cross = cross_predict(algo, meta, states, b.xq, backend)
        for p in range(b.xq.shape[0]):
            state_p = {k: v[p] for k, v in states.items()}
            for i in range(b.xq.shape[0]):
                torch.testing.assert_close(cross[p, i], algo.predict(meta, state_p, b.xq[i]))


@pytest.mark.parametrize("name", ["maml", "anil", "metasgd", "tnet"])
@pytest.mark.parametrize("first_order", [False, True])
def test_adapt_cross_equals_adapt_batch_then_cross_predict(name, first_order):
    from trlearner.engine.core import adapt_cross, cross_predict

    algo, trl, meta, b = _setup(name)
    out = adapt_batch(algo, meta, b.xs, b.ys, b.xq, b.yq, 2, 0.01, first_order=first_order)
    ref = cross_predict(algo, meta, out.states, b.xq)
    fused = adapt_cross(algo, meta, b.xs, b.ys, b.xq, 2, 0.01, first_order=first_order)
    torch.testing.assert_close(fused, ref, rtol=1e-12, atol=1e-12)
    own = torch.diagonal(fused, 0, 0, 1).movedim(-1, 0)
    torch.testing.assert_close(torch.stack([algo.loss_fn(o, y) for o, y in zip(own, b.yq)]), out.losses,
                               rtol=1e-12, atol=1e-12)
    # and the meta-gradient through both
    g = [torch.autograd.grad(x.square().sum(), list(meta.values()), allow_unused=True) for x in (fused, ref)]
    for k, a, c in zip(meta, *g):
        if c is not None:
            assert (a - c).norm() <= 1e-10 * c.norm().clamp_min(1e-30), k


def test_adapt_cross_refuses_batch_statistics():
    from trlearner.engine.core import adapt_cross

    algo, trl, meta, b = _setup(kind="classification")
    with pytest.raises(ValueError, match="batch statistics"):
        adapt_cross(algo, meta, b.xs, b.ys, b.xq, 1, 0.1)


def test_farthest_point_mask_by_hand():
    # points 0, 1, 2, 3, 10 on a line: the centroid 3.2 is nearest 3 (index 3); the farthest
    # from 3 is 10 (index 4); the farthest from {3, 10} is 0 (index 0). Second group reversed.
    line = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0])
    z = torch.stack([line, line.flip(0)]).unsqueeze(-1)  # [2, 5, 1]
    assert farthest_point_mask(z, 3).tolist() == [[1, 0, 0, 1, 1], [1, 1, 0, 0, 1]]
    assert farthest_point_mask(z, 1).tolist() == [[0, 0, 0, 1, 0], [0, 1, 0, 0, 0]]
    assert farthest_point_mask(z, 9).sum().item() == 10  # capped at n per group

"""The engine's task-batched fast path (MLP backbones) computes what the vmap path and the
per-task reference loop compute: query losses, adapted states and meta-gradients, in float64,
for every algorithm with an inner loop, first and second order, 1 and 2 inner steps, and
TRLearner's cross predictions. And it is taken only where it is exact."""

import pytest
import torch
from torch.func import vmap

from trlearner.engine.algorithms import make_algorithm
from trlearner.engine.backbones import conv4, mlp
from trlearner.engine.core import adapt_batch, adapt_cross, cross_predict, uses_tasks_path
from trlearner.method.relation import TRConfig, TRLearner

ALGOS = ("maml", "anil", "metasgd", "tnet")
T, S, Q = 6, 5, 7


def setup(name, seed=0):
    algo = make_algorithm(name, mlp([1, 40, 40], 1), "regression")
    gen = torch.Generator().manual_seed(seed)
    meta = {k: v.double().requires_grad_() for k, v in algo.init_params(gen, 0.01).items()}
    if name == "tnet":  # away from the identity, so the transforms matter
        meta = {k: (v + 0.1 * torch.randn(v.shape, generator=gen, dtype=v.dtype)).detach().requires_grad_()
                if k.endswith(".T") else v for k, v in meta.items()}
    data = [torch.randn(T, n, 1, generator=gen, dtype=torch.float64) for n in (S, S, Q, Q)]
    return algo, meta, data


def grads(loss, meta):
    return torch.autograd.grad(loss, list(meta.values()), allow_unused=True)


def assert_close(a, b):
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
        else:
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ALGOS)
@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("first_order", [False, True])
def test_same_losses_states_and_meta_gradients(name, steps, first_order):
    algo, meta, (xs, ys, xq, yq) = setup(name)
    assert uses_tasks_path(algo, meta)
    outs = {mode: adapt_batch(algo, meta, xs, ys, xq, yq, steps, 0.3, backend, first_order, tasks_batched=tb)
            for mode, backend, tb in (("fast", "vmap", True), ("vmap", "vmap", False), ("loop", "loop", None))}
    ref = outs["loop"]
    for mode in ("fast", "vmap"):
        torch.testing.assert_close(outs[mode].losses, ref.losses, rtol=1e-12, atol=1e-14)
        for k in ref.states:
            torch.testing.assert_close(outs[mode].states[k], ref.states[k], rtol=1e-12, atol=1e-14)
    g_ref = grads(ref.losses.mean(), meta)
    assert_close(grads(outs["fast"].losses.mean(), meta), g_ref)
    assert_close(grads(outs["vmap"].losses.mean(), meta), g_ref)
    # second order really is second order: its meta-gradient differs from the first-order one
    if not first_order and name != "anil":
        fo = adapt_batch(algo, meta, xs, ys, xq, yq, steps, 0.3, "vmap", True, tasks_batched=True)
        assert not torch.allclose(grads(fo.losses.mean(), meta)[0], g_ref[0])


@pytest.mark.parametrize("name", ALGOS)
def test_cross_predictions_match(name):
    algo, meta, (xs, ys, xq, _) = setup(name, seed=1)
    fast = adapt_cross(algo, meta, xs, ys, xq, 1, 0.3, tasks_batched=True)
    slow = adapt_cross(algo, meta, xs, ys, xq, 1, 0.3, tasks_batched=False)
    loop = cross_predict(algo, meta, adapt_batch(algo, meta, xs, ys, xq, xq, 1, 0.3, "loop").states, xq, "loop")
    assert fast.shape == (T, T, Q, 1)
    torch.testing.assert_close(fast, loop, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(slow, loop, rtol=1e-12, atol=1e-14)
    w = torch.randn(fast.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert_close(grads((fast * w).sum(), meta), grads((loop * w).sum(), meta))


@pytest.mark.parametrize("name", ["maml", "tnet"])
def test_trlearner_meta_gradient_matches_loop(name):
    algo, meta, (xs, ys, xq, yq) = setup(name, seed=3)
    trl = TRLearner(algo, TRConfig(lam=0.5, sampler="random", weights="softmax"), shots=S)
    meta.update({k: v.double().requires_grad_() for k, v in trl.init_params(torch.Generator().manual_seed(4)).items()})
    from trlearner.data.sources.episodes import TaskBatch

    batch = TaskBatch(xs, ys, xq, yq, {})
    outs = [trl.meta_loss(meta, batch, 1, 0.3, backend, gen=torch.Generator().manual_seed(5)) for backend in ("vmap", "loop")]
    torch.testing.assert_close(outs[0].loss, outs[1].loss, rtol=1e-12, atol=1e-14)
    assert_close(grads(outs[0].loss, meta), grads(outs[1].loss, meta))


def test_taken_only_where_exact():
    algo, meta, (xs, ys, xq, yq) = setup("maml")
    assert not uses_tasks_path(algo, meta, tasks_batched=False)
    with torch.no_grad():
        assert not uses_tasks_path(algo, meta)
    frozen = {k: v.detach() for k, v in meta.items()}
    assert not uses_tasks_path(algo, frozen)
    with pytest.raises(ValueError, match="do not require grad"):
        uses_tasks_path(algo, frozen, tasks_batched=True)
    # inside a torch.func transform (the stacked trainer's seed vmap) it falls back to vmap
    seen = []

    def one(m):
        seen.append(uses_tasks_path(algo, m))
        return adapt_batch(algo, m, xs, ys, xq, yq, 1, 0.3).losses.mean()

    stacked = {k: torch.stack([v, v]) for k, v in meta.items()}
    out = vmap(one)(stacked)
    assert seen == [False]
    torch.testing.assert_close(out[0], adapt_batch(algo, meta, xs, ys, xq, yq, 1, 0.3).losses.mean())
    # backbones without a task-batched forward (batch norm, nn.Module) and ProtoNet never take it
    cnn = make_algorithm("maml", conv4((1, 28, 28), 5, filters=8), "classification")
    cmeta = {k: v.requires_grad_() for k, v in cnn.init_params(torch.Generator(), 0.01).items()}
    assert not uses_tasks_path(cnn, cmeta)
    with pytest.raises(ValueError, match="no task-batched forward"):
        uses_tasks_path(cnn, cmeta, tasks_batched=True)
    net = make_algorithm("maml", torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)),
                         "regression")
    assert not net.supports_tasks()
    assert not make_algorithm("protonet", mlp([1, 8], 4), "classification").supports_tasks()

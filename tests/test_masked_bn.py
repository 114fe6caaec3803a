"""Exact batch norm on padded (variable-size) episodes: a padded episode gives the same losses
and meta-gradients as the same episode unpadded (float64), for both engine back-ends."""

from __future__ import annotations

import pytest
import torch

from conftest import leaf_params
from trlearner.engine.algorithms import make_algorithm
from trlearner.engine.backbones import batch_norm, conv4, make_backbone, mark_padding, masked_batch_norm, resnet12
from trlearner.data.sources.episodes import TaskBatch, mark_batch_padding
from trlearner.engine.core import adapt_batch, evaluate_curve

SHAPE = (3, 16, 16)
N_OUT = 5  # the largest way of the batch (Meta-Dataset heads have n_out = 50)


def _episode(gen, shots, queries):
    """One variable-way episode: support/query ordered by class, float64 images."""
    ys = torch.cat([torch.full((k,), c) for c, k in enumerate(shots)])
    yq = torch.cat([torch.full((queries,), c) for c in range(len(shots))])
    xs = torch.rand(len(ys), *SHAPE, generator=gen, dtype=torch.float64)
    xq = torch.rand(len(yq), *SHAPE, generator=gen, dtype=torch.float64)
    return xs, ys, xq, yq


def _pad(episodes, fill=0.0):
    """Stack episodes as MetaDatasetSource does: label -1 and ``fill`` at padding, masks in info."""
    s_max = max(len(e[1]) for e in episodes)
    q_max = max(len(e[3]) for e in episodes)
    T = len(episodes)
    xs = torch.full((T, s_max, *SHAPE), fill, dtype=torch.float64)
    xq = torch.full((T, q_max, *SHAPE), fill, dtype=torch.float64)
    ys = torch.full((T, s_max), -1, dtype=torch.int64)
    yq = torch.full((T, q_max), -1, dtype=torch.int64)
    for t, (a, b, c, d) in enumerate(episodes):
        xs[t, :len(b)], ys[t, :len(b)], xq[t, :len(d)], yq[t, :len(d)] = a, b, c, d
    return TaskBatch(xs, ys, xq, yq, {"support_mask": ys >= 0, "query_mask": yq >= 0})


@pytest.fixture(scope="module")
def episodes():
    gen = torch.Generator().manual_seed(0)
    # 3-way with unequal shots, 5-way 1-shot, 2-way: every task padded differently
    return [_episode(gen, (2, 1, 3), 2), _episode(gen, (1, 1, 1, 1, 1), 1), _episode(gen, (4, 2), 3)]


def _grads(algo, meta, xs, ys, xq, yq, backend):
    out = adapt_batch(algo, meta, xs, ys, xq, yq, steps=2, lr=0.1, backend=backend)
    g = torch.autograd.grad(out.losses.mean(), list(meta.values()), allow_unused=True)
    return out.losses, g


CASES = [(a, "conv4") for a in ("maml", "protonet", "anil", "metasgd", "tnet")] + \
        [(a, "resnet12") for a in ("maml", "protonet")]


@pytest.mark.parametrize("algorithm,backbone", CASES)
@pytest.mark.parametrize("backend", ["vmap", "loop"])
def test_padded_episode_equals_unpadded(episodes, algorithm, backend, backbone):
    make = (lambda padded: conv4(SHAPE, N_OUT, filters=4, padded=padded)) if backbone == "conv4" else \
        (lambda padded: resnet12(SHAPE, N_OUT, widths=(3, 4, 4, 5), padded=padded))
    padded_algo = make_algorithm(algorithm, make(True), "classification")
    plain_algo = make_algorithm(algorithm, make(False), "classification")  # the fixed-way code
    meta = leaf_params({k: v.double() for k, v in
                        padded_algo.init_params(torch.Generator().manual_seed(1), 0.1).items()})
    batch = mark_batch_padding(_pad(episodes))
    assert torch.isnan(batch.xs).any() and torch.isnan(batch.xq).any()
    losses, grads = _grads(padded_algo, meta, batch.xs, batch.ys, batch.xq, batch.yq, backend)
    # reference: every episode alone, unpadded, through the unmodified fixed-way backbone
    ref_losses, ref_grads = [], None
    for xs, ys, xq, yq in episodes:
        l, g = _grads(plain_algo, meta, xs[None], ys[None], xq[None], yq[None], backend)
        ref_losses.append(l[0])
        g = [None if v is None else v / len(episodes) for v in g]
        ref_grads = g if ref_grads is None else [None if a is None else a + b for a, b in zip(ref_grads, g)]
    torch.testing.assert_close(losses, torch.stack(ref_losses), rtol=1e-10, atol=1e-12)
    # relative to the whole meta-gradient: some entries are exactly zero in theory (e.g. the
    # last BN shift under ProtoNet's translation-invariant distances) and pure rounding here
    scale = torch.cat([b.flatten() for b in ref_grads if b is not None]).norm()
    for key, a, b in zip(meta, grads, ref_grads):
        assert (a is None) == (b is None), key
        if a is not None:
            assert torch.isfinite(a).all(), key
            err = (a - b).norm() / torch.maximum(b.norm(), scale)
            assert err <= 1e-9, f"{algorithm}/{backend} {key}: error {err:.2e} (|b|={b.norm():.2e})"


def test_zero_padding_without_the_mask_biases_the_statistics(episodes):
    """The test above has power: the old behaviour (zero images inside the BN statistics)
    gives other losses."""
    algo = make_algorithm("maml", conv4(SHAPE, N_OUT, filters=4), "classification")
    meta = leaf_params({k: v.double() for k, v in algo.init_params(torch.Generator().manual_seed(1), 0.1).items()})
    b = _pad(episodes)
    zero_padded, _ = _grads(algo, meta, b.xs, b.ys, b.xq, b.yq, "vmap")
    alone = torch.stack([_grads(algo, meta, xs[None], ys[None], xq[None], yq[None], "vmap")[0][0]
                         for xs, ys, xq, yq in episodes])
    assert not torch.allclose(zero_padded, alone, rtol=1e-6, atol=0)


def test_evaluation_of_a_padded_batch_equals_unpadded(episodes):
    algo = make_algorithm("maml", conv4(SHAPE, N_OUT, filters=4, padded=True), "classification")
    meta = {k: v.double() for k, v in algo.init_params(torch.Generator().manual_seed(1), 0.1).items()}
    b = mark_batch_padding(_pad(episodes))
    curve = evaluate_curve(algo, meta, b.xs, b.ys, b.xq, b.yq, steps=3, lr=0.1)
    alone = torch.cat([evaluate_curve(algo, meta, xs[None], ys[None], xq[None], yq[None], steps=3, lr=0.1)
                       for xs, ys, xq, yq in episodes])
    torch.testing.assert_close(curve, alone, rtol=1e-10, atol=1e-12)


def test_masked_batch_norm_is_batch_norm_of_the_real_rows():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(7, 4, 3, 3, generator=gen, dtype=torch.float64)
    w, b = torch.rand(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    every = torch.ones(7, dtype=torch.bool)
    torch.testing.assert_close(masked_batch_norm(h, every, w, b), batch_norm(h, w, b))
    mask = torch.tensor([1, 0, 1, 1, 0, 0, 1], dtype=torch.bool)
    torch.testing.assert_close(masked_batch_norm(h, mask, w, b)[mask], batch_norm(h[mask], w, b))


def test_padding_marks_and_refusals():
    x = torch.rand(2, 3, 1, 16, 16)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    m = mark_padding(x, mask)
    assert torch.isnan(m[~mask]).all() and torch.equal(m[mask], x[mask])
    # a fixed-way backbone fed NaN padding gives NaN (loud), never a silently biased number
    bb = conv4((1, 16, 16), 3, filters=2)
    p = bb.init(torch.Generator().manual_seed(0))
    assert torch.isnan(bb(p, m[0])).all()
    with pytest.raises(ValueError, match="no padded mode"):
        make_backbone("mlp", (1,), 1, padded=True)

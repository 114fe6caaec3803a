"""TRLearner on variable-way, variable-shot episodes (Meta-Dataset): padded supports, classes
from the labels, rectangular class alignment."""

import math

import pytest
import torch

from conftest import SyntheticImages, leaf_params
from trlearner.engine.algorithms import make_algorithm
from trlearner.engine.backbones import conv4
from trlearner.method.relation import (TRConfig, TRLearner, align_classes, class_farthest_point_mask,
                                class_random_mask, farthest_point_mask)


def test_class_sampler_equals_the_fixed_way_sampler_on_fixed_way_episodes():
    g = torch.Generator().manual_seed(0)
    t, ways, shots, d = 3, 4, 5, 6
    z = torch.randn(t, ways * shots, d, generator=g)
    labels = torch.arange(ways).repeat_interleave(shots).expand(t, -1)
    fixed = farthest_point_mask(z.reshape(t * ways, shots, d), 2).reshape(t, -1)
    assert torch.equal(class_farthest_point_mask(z, labels, 2), fixed)
    # m=None: ceil(k/2) of each class's k points
    fixed3 = farthest_point_mask(z.reshape(t * ways, shots, d), 3).reshape(t, -1)
    assert torch.equal(class_farthest_point_mask(z, labels, None), fixed3)


def test_class_sampler_on_padded_variable_shot_classes():
    # task 0: class 0 has 3 points, class 1 has 1 point, 2 padding rows; task 1: class 0 has 6
    labels = torch.tensor([[0, 1, 0, -1, 0, -1], [0, 0, 0, 0, 0, 0]])
    z = torch.tensor([[0.0, 5.0, 1.0, 0.0, 9.0, 0.0], [0.0, 1.0, 2.0, 3.0, 4.0, 10.0]]).unsqueeze(-1)
    mask = class_farthest_point_mask(z, labels, None)
    # task 0 class 0 = {0, 1, 9} at rows 0, 2, 4: centroid 3.33 -> 1 (row 2) first, then 9 (row 4)
    # class 1 = {5}: one point; task 1: centroid 3.33 -> 3 (row 3), then 10 (row 5), then 0 (row 0)
    assert mask.tolist() == [[0, 1, 1, 0, 1, 0], [1, 0, 0, 1, 0, 1]]
    assert class_farthest_point_mask(z, labels, 1).sum().item() == 3  # one per class
    rnd = class_random_mask(labels, None, torch.Generator().manual_seed(0))
    assert rnd[labels < 0].sum() == 0
    assert rnd[0][labels[0] == 0].sum() == 2 and rnd[0][labels[0] == 1].sum() == 1 and rnd[1].sum() == 3


def test_rectangular_alignment_matches_classes_and_reads_the_nearest_for_the_rest():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(4, 8, generator=g)
    # task 0 has 4 classes; task 1 has 2: its class c is task 0's class [3, 1][c]
    feats = torch.zeros(2, 4, 8)
    feats[0] = base
    feats[1, :2] = base[[3, 1]]
    ways = torch.tensor([4, 2])
    cross = torch.arange(2 * 2 * 1 * 5, dtype=torch.float).reshape(2, 2, 1, 5)  # logits = their index
    out = align_classes(cross, feats, ways)
    # model 0 on task 1: task 1's classes 0, 1 read model 0's classes 3, 1; beyond ways: identity
    assert (out[0, 1, 0] - cross[0, 1, 0, 0]).tolist() == [3, 1, 2, 3, 4]
    # model 1 (2 classes) on task 0 (4 classes): task 0's class 3 -> 0 and 1 -> 1 by matching;
    # classes 0 and 2 are unmatched and read model 1's most similar class (0 or 1)
    perm = (out[1, 0, 0] - cross[1, 0, 0, 0]).tolist()
    assert perm[3] == 0 and perm[1] == 1 and set(perm[:4]) <= {0, 1} and perm[4] == 4
    assert (out[0, 0, 0] - cross[0, 0, 0, 0]).tolist() == [0, 1, 2, 3, 4]


def _varway_batch(dtype=torch.float64):
    """Three tasks of 5/3/4 ways and 1-2 shots, stacked with padding (label -1, all-NaN image:
    the convention of ``trlearner.engine.backbones.mark_padding``), as Meta-Dataset episodes are
    stacked; plus the same tasks without padding."""
    src = SyntheticImages(ways=5, shots=2, queries=2)
    full = src.batch(range(3), dtype=dtype)
    tasks = []
    for t, ways in enumerate([5, 3, 4]):
        keep_s = (full.ys[t] < ways) & ~((full.ys[t] == 0) & (torch.arange(10) % 2 == 1))  # class 0: 1 shot
        keep_q = full.yq[t] < ways
        tasks.append((full.xs[t][keep_s], full.ys[t][keep_s], full.xq[t][keep_q], full.yq[t][keep_q]))
    s_max, q_max = max(len(x[1]) for x in tasks), max(len(x[3]) for x in tasks)

    def pad(x, n, fill):
        extra = torch.full((n - len(x), *x.shape[1:]), fill, dtype=x.dtype)
        return torch.cat([x, extra])

    from trlearner.data.sources.episodes import TaskBatch

    xs = torch.stack([pad(t[0], s_max, float("nan")) for t in tasks])
    ys = torch.stack([pad(t[1], s_max, -1) for t in tasks])
    xq = torch.stack([pad(t[2], q_max, float("nan")) for t in tasks])
    yq = torch.stack([pad(t[3], q_max, -1) for t in tasks])
    return TaskBatch(xs, ys, xq, yq, {"ways": torch.tensor([5, 3, 4])}), tasks


def test_variable_way_representation_is_the_mean_of_selected_class_means():
    algo = make_algorithm("protonet", conv4((1, 28, 28), 5, filters=4, padded=True), "classification")
    trl = TRLearner(algo, TRConfig(class_repr="mean"), shots=None, variable_ways=True)
    meta = leaf_params(algo.init_params(torch.Generator().manual_seed(0), 0.1), torch.float64)
    b, tasks = _varway_batch()
    r, class_means, mask = trl.representations(meta, b.xs, b.ys)
    assert mask[b.ys < 0].sum() == 0  # padding never selected
    for t, (xs, ys, _, _) in enumerate(tasks):
        h = algo.backbone.features(meta, xs)  # this task alone: its own batch statistics
        ways = int(ys.max()) + 1
        means = []
        for c in range(ways):
            rows = (ys == c).nonzero().flatten()
            sel = mask[t, rows].bool()
            assert sel.sum() == math.ceil(len(rows) / 2)
            means.append(h[rows[sel]].mean(0))
        torch.testing.assert_close(r[t], torch.stack(means).mean(0), rtol=1e-6, atol=1e-6)
        assert class_means[t, ways:].abs().sum() == 0


def test_variable_way_settings_are_checked():
    algo = make_algorithm("maml", conv4((1, 28, 28), 5, filters=4), "classification")
    with pytest.raises(ValueError, match="class_repr='mean'"):
        TRLearner(algo, TRConfig(), shots=None, variable_ways=True)
    with pytest.raises(ValueError, match="number of ways"):
        TRLearner(algo, TRConfig(), shots=2)


@pytest.mark.parametrize("name", ["maml", "protonet"])
def test_variable_way_meta_loss_equals_fixed_way_on_fixed_way_episodes(name):
    algo = make_algorithm(name, conv4((1, 28, 28), 5, filters=4), "classification")
    cfg = TRConfig(lam=1.0, heads=2, class_repr="mean")
    fixed = TRLearner(algo, cfg, shots=2, ways=5)
    var = TRLearner(algo, cfg, shots=None, variable_ways=True)
    gen = torch.Generator().manual_seed(0)
    meta = leaf_params({**algo.init_params(gen, 0.1), **fixed.init_params(gen)}, torch.float64)
    b = SyntheticImages(ways=5, shots=2, queries=2).batch(range(3), dtype=torch.float64)
    a = fixed.meta_loss(meta, b, steps=1, lr=0.1)
    v = var.meta_loss(meta, b, steps=1, lr=0.1)
    torch.testing.assert_close(v.loss, a.loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(v.relation, a.relation, rtol=1e-10, atol=1e-12)


def test_variable_way_meta_loss_runs_on_padded_episodes_and_trains_omega():
    algo = make_algorithm("maml", conv4((1, 28, 28), 5, filters=4, padded=True), "classification")
    trl = TRLearner(algo, TRConfig(lam=1.0, heads=2, class_repr="mean"), shots=None, variable_ways=True)
    gen = torch.Generator().manual_seed(0)
    meta = leaf_params({**algo.init_params(gen, 0.1), **trl.init_params(gen)}, torch.float64)
    b, tasks = _varway_batch()
    out = trl.meta_loss(meta, b, steps=1, lr=0.1)
    assert torch.isfinite(out.loss) and out.relation.shape == (3, 3)
    # the task term is that of the tasks adapted one by one, unpadded
    from trlearner.engine.core import InnerGrad

    own = [algo.loss_fn(algo.predict(meta, algo.adapt(meta, xs, ys, 1, 0.1, InnerGrad("autograd")), xq), yq)
           for xs, ys, xq, yq in tasks]
    torch.testing.assert_close(out.task_loss, torch.stack(own).mean(), rtol=1e-9, atol=1e-12)
    g = dict(zip(meta, torch.autograd.grad(out.tr_loss, list(meta.values()), allow_unused=True)))
    assert g["trl.omega"].abs().sum() > 0 and g["conv1.w"].abs().sum() > 0

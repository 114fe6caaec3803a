"""The regression task families follow their formulas and are pure functions of the index."""

import math

import numpy as np
import torch

from trlearner.data.sources.dispatch import make_source
from trlearner.data.sources.regression import RegressionSource, counter_uniform


def test_sinusoid_matches_its_formula_and_ranges():
    b = RegressionSource("sinusoid", "train", shots=5, queries=7, seed=3).batch(range(2000))
    a, ph = b.info["amplitude"], b.info["phase"]
    x = torch.cat([b.xs, b.xq], 1)
    y = torch.cat([b.ys, b.yq], 1)
    torch.testing.assert_close(y, a[:, None, None] * torch.sin(x - ph[:, None, None]), atol=1e-5, rtol=1e-5)
    assert 0.1 <= a.min() and a.max() <= 5.0 and 0 <= ph.min() and ph.max() <= math.pi
    assert -5 <= x.min() and x.max() <= 5
    assert abs(a.mean() - 2.55) < 0.1 and abs(x.mean()) < 0.1  # uniform means


def test_harmonic_matches_its_formula_and_distributions():
    b = RegressionSource("harmonic", "train", shots=10, queries=10, seed=0).batch(range(3000))
    w, a1, a2, mu = (b.info[k] for k in ("omega", "a1", "a2", "mu"))
    assert 5 <= w.min() and w.max() <= 7 and -4 <= mu.min() and mu.max() <= 4
    assert abs(a1.mean()) < 0.07 and abs(a1.std() - 1) < 0.05 and abs(a2.std() - 1) < 0.05
    x = torch.cat([b.xs, b.xq], 1)[..., 0]
    assert abs((x - mu[:, None]).std() - 1) < 0.02  # x = mu + N(0, 1)
    y = torch.cat([b.ys, b.yq], 1)[..., 0]
    # |y| can never exceed |a1| + |a2|
    assert torch.all(y.abs() <= a1.abs()[:, None] + a2.abs()[:, None] + 1e-5)


def test_episodes_are_pure_functions_of_split_seed_and_index():
    s1 = make_source("sinusoid", "train", shots=5, seed=1)
    s2 = make_source("sinusoid", "train", shots=5, seed=1)
    b1, b2 = s1.batch([5, 6, 7]), s2.batch([7, 6, 5])
    assert torch.equal(b1.xs, b2.xs.flip(0)) and torch.equal(b1.yq, b2.yq.flip(0))
    other_seed = make_source("sinusoid", "train", shots=5, seed=2).batch([5])
    other_split = make_source("sinusoid", "val", shots=5, seed=1).batch([5])
    assert not torch.equal(b1.xs[:1], other_seed.xs) and not torch.equal(b1.xs[:1], other_split.xs)


def test_test_set_is_600_fixed_tasks_with_100_queries():
    a = make_source("sinusoid", "test", shots=5).batch(range(600))
    b = make_source("sinusoid", "test", shots=5).batch(range(600))
    assert a.xq.shape == (600, 100, 1) and torch.equal(a.xq, b.xq)


def test_counter_uniform_is_uniform_and_independent_of_batch_composition():
    u = counter_uniform(123, range(10_000), 4)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03
    np.testing.assert_array_equal(counter_uniform(123, [9_999], 4)[0], u[9_999])

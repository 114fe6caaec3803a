"""Episodes are pure functions of (dataset, split, seed, index); the benchmark runs."""

from __future__ import annotations

import pytest
import torch

from fixtures_data import build, fixture_spec
from trlearner.bench.episodes import bench_episodes
from trlearner.data.fetch import fetch
from trlearner.data.sources.dispatch import image_source
from trlearner.data.registry import override


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ep")
    build("omniglot_small", tmp / "mirror")
    spec = fixture_spec("omniglot_small", tmp / "mirror")
    with override(spec):
        import os
        os.environ["TRLEARNER_MIRROR"] = str(tmp / "mirror")
        try:
            fetch("omniglot_small", tmp / "data", progress=False)
        finally:
            del os.environ["TRLEARNER_MIRROR"]
        yield tmp / "data"


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a[:4], b[:4])) and \
        torch.equal(a.info["class_ids"], b.info["class_ids"])


def test_same_indices_same_tensors_across_sources_and_orders(small_root):
    with override(fixture_spec("omniglot_small", small_root.parent / "mirror")):
        a = image_source("omniglot_small", "train", 3, 2, 4, seed=7, root=small_root)
        b = image_source("omniglot_small", "train", 3, 2, 4, seed=7, root=small_root)
        ba = a.batch([5, 9, 100])
        assert _same(ba, b.batch([5, 9, 100]))
        rev = b.batch([100, 9, 5])  # order does not matter: episode 9 is episode 9
        assert torch.equal(rev.xs[1], ba.xs[1]) and torch.equal(rev.xs[0], ba.xs[2])
        single = b.batch([9])
        assert torch.equal(single.xq[0], ba.xq[1])
        # a different seed, split or index gives different episodes
        c = image_source("omniglot_small", "train", 3, 2, 4, seed=8, root=small_root)
        assert not _same(ba, c.batch([5, 9, 100]))
        assert not torch.equal(ba.xs[0], ba.xs[1])


def test_support_and_query_are_disjoint_images(small_root):
    with override(fixture_spec("omniglot_small", small_root.parent / "mirror")):
        src = image_source("omniglot_small", "train", 5, 5, 15, seed=0, root=small_root)
        b = src.batch(range(8))
        for t in range(8):
            s = b.xs[t].reshape(5, 5, -1)
            q = b.xq[t].reshape(5, 15, -1)
            allc = torch.cat([s, q], 1)  # per class: 20 distinct drawers
            for w in range(5):
                assert torch.unique(allc[w], dim=0).shape[0] == 20


def test_bench_episodes_smoke(small_root):
    with override(fixture_spec("omniglot_small", small_root.parent / "mirror")):
        rate = bench_episodes("omniglot_small", 5, 1, 15, n=64, repeats=1, root=small_root)
    assert rate > 0


def test_bad_requests_are_explained(small_root):
    with override(fixture_spec("omniglot_small", small_root.parent / "mirror")):
        with pytest.raises(ValueError, match="cannot draw 99-way"):
            image_source("omniglot_small", "val", 99, 1, 1, root=small_root)
        with pytest.raises(ValueError, match="unknown split"):
            image_source("omniglot_small", "dev", 5, 1, 1, root=small_root)
    with pytest.raises(FileNotFoundError, match="data fetch omniglot_small"):
        image_source("omniglot_small", "train", 5, 1, 1, root=small_root.parent / "nowhere")

"""Every dataset: a fixture in its real file format, served on 127.0.0.1, goes through
fetch -> verify -> extract -> cache -> episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures_data import Server, build, fixture_spec
from trlearner.data.fetch import fetch, is_fetched, manifest
from trlearner.data.sources.dispatch import image_source
from trlearner.data.registry import override


def roundtrip(dataset, tmp_path, monkeypatch, via_mirror=False):
    files = tmp_path / "served"
    facts = build(dataset, files)
    root = tmp_path / "data"
    srv = Server(files).__enter__()
    try:
        if via_mirror:  # TRLEARNER_MIRROR=http://127.0.0.1:PORT/, public URLs unreachable
            monkeypatch.setenv("TRLEARNER_MIRROR", srv.url)
            spec = fixture_spec(dataset, files, "http://127.0.0.1:9/", split_file=facts.get("split_file"),
                                converter_args=facts.get("converter_args"))
        else:
            spec = fixture_spec(dataset, files, srv.url, split_file=facts.get("split_file"),
                                converter_args=facts.get("converter_args"))
        ctx = override(spec)
        ctx.__enter__()
        fetch(dataset, root, progress=False)
        assert is_fetched(dataset, root)
        assert len(manifest(dataset, root)["content_hash"]) == 64
        assert {n for n, _ in srv.log} == {f.name for f in spec.files}
    finally:
        srv.__exit__()
    return root, facts, ctx


def check_classification(b, T, ways, shots, queries, shape):
    assert b.xs.shape == (T, ways * shots, *shape) and b.xq.shape == (T, ways * queries, *shape)
    assert b.xs.dtype == torch.float32 and 0 <= float(b.xs.min()) and float(b.xs.max()) <= 1
    assert b.ys.dtype == torch.int64
    assert b.ys[0].tolist() == [c for c in range(ways) for _ in range(shots)]
    assert b.yq[0].tolist() == [c for c in range(ways) for _ in range(queries)]
    for t in range(T):  # classes of an episode are distinct
        assert len(set(b.info["class_ids"][t].tolist())) == ways


@pytest.mark.parametrize("dataset", ["omniglot", "omniglot_small"])
def test_omniglot_family(dataset, tmp_path, monkeypatch):
    root, facts, ctx = roundtrip(dataset, tmp_path, monkeypatch, via_mirror=(dataset == "omniglot"))
    with ctx:
        for split, n in facts["classes"].items():
            src = image_source(dataset, split, ways=2, shots=1, queries=3, seed=0, root=root)
            assert len(src) == n and src.input_shape == (1, 28, 28)
            check_classification(src.batch(range(4)), 4, 2, 1, 3, (1, 28, 28))
        # rotations are classes: the same character at 90 degrees is the stored image rotated
        src = image_source(dataset, "train", ways=2, shots=1, queries=3, seed=0, root=root)
        for i in range(40):
            b = src.batch([i])
            rot = b.info["rotation"][0].tolist()
            if 90 in rot:
                w = rot.index(90)
                c = src.classes[int(b.info["class_ids"][0, w])][0]
                k = src.store.index[c]
                stored = src.store.images[src.store.offsets[k]:src.store.offsets[k + 1]]
                x = (b.xs[0, w, 0].numpy() * 255).round().astype(np.uint8)
                assert any(np.array_equal(np.rot90(s), x) for s in stored)
                assert not any(np.array_equal(s, x) for s in stored)
                break
        else:
            pytest.fail("no rotated class drawn")
        if dataset == "omniglot_small":
            import json
            meta = json.loads((root / "raw" / dataset / "cache" / "classes.json").read_text())
            assert {"Greek/character01", "Latin/character02"} <= set(meta["duplicates_dropped"])
            assert len(meta["classes"]) == 14  # 8 distinct alphabets' characters, duplicates dropped


@pytest.mark.parametrize("dataset", ["miniimagenet", "cub", "places"])
def test_rgb_datasets(dataset, tmp_path, monkeypatch):
    root, facts, ctx = roundtrip(dataset, tmp_path, monkeypatch)
    with ctx:
        for split, n in facts["classes"].items():
            src = image_source(dataset, split, ways=2, shots=1, queries=2, seed=3, root=root)
            assert len(src) == n and src.input_shape == (3, 84, 84)
            check_classification(src.batch(range(3)), 3, 2, 1, 2, (3, 84, 84))
        if dataset == "places":  # first 3 (per_class) images per class only
            src = image_source(dataset, "train", ways=2, shots=1, queries=2, seed=3, root=root)
            assert set(src.cls_count.tolist()) == {3}
        if dataset == "cub":  # mod-4 rule over sorted class names
            src = image_source(dataset, "val", ways=2, shots=1, queries=2, seed=3, root=root)
            assert [c for c, _ in src.classes] == ["002.Bird_1", "006.Bird_5"]


def test_pqsar(tmp_path, monkeypatch):
    from trlearner.data.sources.drug import r2_per_task

    root, facts, ctx = roundtrip("pqsar", tmp_path, monkeypatch)
    with ctx:
        src = image_source("pqsar", "test", None, shots=5, queries=20, seed=0, root=root)
        assert src.kind == "regression" and src.input_shape == (1024,) and len(src) == 3
        b = src.batch(range(3))
        assert b.xs.shape == (3, 5, 1024) and b.ys.shape == (3, 5, 1) and b.xq.shape == (3, 20, 1024)
        assert set(torch.unique(b.xs).tolist()) <= {0.0, 1.0}
        assert b.info["assay_id"].tolist() == facts["split"]["test"]  # index i -> i-th test assay
        assert torch.allclose(r2_per_task(b.yq, b.yq), torch.ones(3))
        tr = image_source("pqsar", "train", None, shots=5, queries=20, seed=0, root=root)
        assert set(tr.batch(range(20)).info["assay_id"].tolist()) <= set(facts["split"]["train"])


def test_pascal3d_pose(tmp_path, monkeypatch):
    root, facts, ctx = roundtrip("pascal3d_pose", tmp_path, monkeypatch)
    with ctx:
        src = image_source("pascal3d_pose", "test", None, shots=5, queries=6, seed=0, root=root)
        b = src.batch(range(4))
        assert b.xs.shape == (4, 5, 1, 128, 128) and b.ys.shape == (4, 5, 1) and b.yq.shape == (4, 6, 1)
        assert int(b.info["object"].max()) < 3  # val_data_ins.pkl has 3 instances
        import pickle
        x, y = pickle.load(open(tmp_path / "served" / "val_data_ins.pkl", "rb"))
        y = np.asarray(y)
        o = int(b.info["object"][0])
        # the target is 10 x the stored angle fraction, as in the MR-MAML / MetaMix loaders
        assert any(abs(float(b.ys[0, 0, 0]) - 10 * v) < 1e-5 for v in y[o, :, -1])


@pytest.mark.parametrize("dataset", ["metadataset_vgg_flower", "metadataset_traffic_sign", "metadataset_dtd"])
def test_metadataset_sources(dataset, tmp_path, monkeypatch):
    root, facts, ctx = roundtrip(dataset, tmp_path, monkeypatch)
    with ctx:
        split = "test"
        src = image_source(dataset, split, None, 1, None, seed=0, root=root)
        assert src.n_classes == facts["classes"][split] and src.n_test_episodes == 600
        b = src.batch(range(6))
        for t in range(6):
            w = int(b.info["ways"][t])
            assert 5 <= w <= min(50, src.n_classes)
            ys = b.ys[t][b.info["support_mask"][t]]
            yq = b.yq[t][b.info["query_mask"][t]]
            assert sorted(set(ys.tolist())) == list(range(w)) == sorted(set(yq.tolist()))
            assert ys.tolist() == sorted(ys.tolist())  # ordered by class
        assert b.xs.shape[2:] == (3, 84, 84)
        ways = {int(src.batch([i]).info["ways"][0]) for i in range(30)}
        assert len(ways) > 1 or src.n_classes == 5  # variable way

"""pQSAR and Pascal 3D pose in the layout of the real files (as the reference loaders read
them: huaxiuyao/MetaMix Drug/ and Pose/, google-research meta_learning_without_memorization
pose_data/ and pose_code/; see docs/DATA.md), served on 127.0.0.1 and taken through
fetch -> verify -> extract -> cache -> episodes, with every value checked against the fixture."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest
import torch

from fixtures_data import POSE_VIEWS, Server, build, fixture_spec
from trlearner.data.fetch.convert_pqsar import convert_pqsar
from trlearner.data.sources.drug import PQSARSource, determination_per_task, r2_per_task
from trlearner.data.errors import DataFetchError
from trlearner.data.fetch import fetch
from trlearner.data.fetch.convert_pose import read_pose_pickle
from trlearner.data.sources.pose import TARGET_SCALE, PoseSource
from trlearner.data.registry import get, override


def _fetch(dataset, tmp):
    files = tmp / "served"
    facts = build(dataset, files)
    with Server(files) as srv:
        spec = fixture_spec(dataset, files, srv.url)
        with override(spec):
            fetch(dataset, tmp / "data", progress=False)
    return tmp / "data", spec, facts


@pytest.fixture(scope="module")
def pqsar(tmp_path_factory):
    return _fetch("pqsar", tmp_path_factory.mktemp("pqsar"))


@pytest.fixture(scope="module")
def pose(tmp_path_factory):
    return _fetch("pascal3d_pose", tmp_path_factory.mktemp("pose"))


# --------------------------------------------------------------------------- pQSAR

def _compound_of(x_row: torch.Tensor, fp: dict) -> str:
    key = x_row.to(torch.uint8).numpy().tobytes()
    hits = [c for c, v in fp.items() if v.astype(np.uint8).tobytes() == key]
    assert len(hits) == 1, "an input row must be exactly one compound's fingerprint"
    return hits[0]


def test_pqsar_cache_holds_every_assay_split_and_family(pqsar):
    root, spec, facts = pqsar
    meta = json.loads((root / "raw" / "pqsar" / "cache" / "assays.json").read_text())
    assert meta["assays"] == sorted(facts["rows"])
    assert meta["splits"]["1"] == facts["split"] and meta["splits"]["17"] == facts["split17"]
    assert meta["families"] == {str(a): f for a, f in facts["families"].items()}
    assert meta["measurements"] == sum(len(r) for r in facts["rows"].values())
    assert meta["measurements_without_fingerprint"] == 0 and meta["bits"] == 1024


@pytest.mark.parametrize("split", ["test", "val", "train"])
def test_pqsar_support_is_trn_query_is_tst_and_label_is_the_measured_pic50(pqsar, split):
    root, spec, facts = pqsar
    with override(spec):
        src = PQSARSource(split, shots=5, queries=12, seed=3, root=root)
        b = src.batch(range(6))
    assert b.xs.shape == (6, 5, 1024) and b.xq.shape == (6, 12, 1024) and b.yq.shape == (6, 12, 1)
    for t in range(6):
        a = int(b.info["assay_id"][t])
        assert a in facts["split"][split]
        table = {c: (y, pred, flag) for c, y, pred, flag in facts["rows"][a]}
        seen = []
        for x, y, want in [(b.xs[t, i], b.ys[t, i, 0], "TRN") for i in range(5)] + \
                          [(b.xq[t, i], b.yq[t, i, 0], "TST") for i in range(12)]:
            c = _compound_of(x, facts["fp"])
            measured, predicted, flag = table[c]  # KeyError: a compound of another assay
            assert flag == want
            assert float(y) == pytest.approx(measured, abs=1e-5) and abs(float(y) - predicted) > 1
            seen.append(c)
        assert len(set(seen)) == 17  # distinct measurements


def test_pqsar_test_episode_i_is_the_ith_test_assay_and_every_test_assay_is_visited(pqsar):
    root, spec, facts = pqsar
    with override(spec):
        src = PQSARSource("test", shots=5, queries=20, seed=0, root=root)
        assert len(src) == 3 and src.skipped == 0
        assert src.batch(range(6)).info["assay_id"].tolist() == facts["split"]["test"] * 2
        # group 17 has other test assays; too many queries for some assays leaves them out
        g17 = PQSARSource("test", shots=5, queries=20, seed=0, root=root, group=17)
        assert sorted(set(g17.batch(range(len(g17))).info["assay_id"].tolist())) == facts["split17"]["test"]
        big = PQSARSource("test", shots=5, queries=22, seed=0, root=root)  # 20 + k % 4 TST rows
        assert 0 < len(big) < 3 and big.skipped == 3 - len(big)
        with pytest.raises(ValueError, match="group 5"):
            PQSARSource("test", shots=5, queries=5, root=root, group=5)


def test_pqsar_negative_value_behind_a_unicode_minus_is_read_as_metamix_does(pqsar):
    root, spec, facts = pqsar
    c0, a0, y0 = facts["negative"]
    cache = root / "raw" / "pqsar" / "cache"
    meta = json.loads((cache / "assays.json").read_text())
    k = meta["assays"].index(a0)
    lo, hi = np.load(cache / "assay_offsets.npy")[k:k + 2]
    comps = sorted(facts["fp"])
    ys = {comps[c]: float(y) for c, y in zip(np.load(cache / "compound.npy")[lo:hi], np.load(cache / "pic50.npy")[lo:hi])}
    assert ys[c0] == pytest.approx(y0) and y0 < 0
    assert int(np.load(cache / "assay_n_trn.npy")[k]) == sum(f == "TRN" for *_, f in facts["rows"][a0])


def test_r2_is_metamix_squared_pearson_not_the_coefficient_of_determination():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(4, 30, 1, generator=g)
    pred = 0.7 * target + 0.5 * torch.randn(4, 30, 1, generator=g)
    want = [np.corrcoef(target[t, :, 0].numpy(), pred[t, :, 0].numpy())[0, 1] ** 2 for t in range(4)]
    assert torch.allclose(r2_per_task(pred, target), torch.tensor(want, dtype=torch.float32), atol=1e-6)
    # a scaled and shifted prediction: perfectly correlated (R^2 1) but a poor fit
    off = 2 * target + 1
    assert torch.allclose(r2_per_task(off, target), torch.ones(4), atol=1e-6)
    assert (determination_per_task(off, target) < 0.5).all()
    # constant predictions: undefined correlation -> 0, as MetaMix's test loop scores NaN
    assert torch.equal(r2_per_task(torch.zeros(2, 5, 1), target[:2, :5]), torch.zeros(2))


def _drug_dir(tmp_path, facts_folder):
    with zipfile.ZipFile(facts_folder / "drug.zip") as zf:
        zf.extractall(tmp_path / "x")
    return tmp_path / "x"


@pytest.mark.parametrize("fault", ["fp_array", "fp_bits", "no_types", "split_keys", "bad_line"])
def test_pqsar_converter_refuses_other_layouts(tmp_path, fault):
    build("pqsar", tmp_path / "served")
    ex = _drug_dir(tmp_path, tmp_path / "served")
    d = ex / "drug"
    if fault == "fp_array":  # a plain matrix instead of MetaMix's dict compound -> bits
        np.save(d / "compound_fp.npy", np.zeros((5, 1024), dtype=np.int32))
    elif fault == "fp_bits":
        fp = np.load(d / "compound_fp.npy", allow_pickle=True).item()
        fp[sorted(fp)[0]] = np.zeros(2048, dtype=np.int32)
        np.save(d / "compound_fp.npy", np.array(fp, dtype=object), allow_pickle=True)
    elif fault == "no_types":
        (d / "ci9b00375_si_001.txt").unlink()
    elif fault == "split_keys":
        (d / "drug_split_id_group1.pickle").write_bytes(pickle.dumps({"train": [1], "test": [2]}))
    elif fault == "bad_line":
        with open(d / "ci9b00375_si_002.txt", "a") as fh:
            fh.write("CHEMBL31000 notanassay 5.1 5.3 TRN\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(DataFetchError) as e:
        convert_pqsar("pqsar", ex, cache)
    msg = str(e.value)
    assert "[pqsar]" in msg and "What to do" in msg
    assert {"fp_array": "compound_fp.npy", "fp_bits": "2048 values", "no_types": "ci9b00375_si_001.txt",
            "split_keys": "['val']", "bad_line": "notanassay"}[fault] in msg
    assert not (cache / "assays.json").exists()


# --------------------------------------------------------------------------- Pascal 3D pose

def _pickle(facts_folder, fname):
    with open(facts_folder / fname, "rb") as fh:
        images, labels = pickle.load(fh)
    return np.asarray(images), np.asarray(labels)


@pytest.mark.parametrize("split,fname", [("test", "val_data_ins.pkl"), ("val", "val_data_ins.pkl"),
                                         ("train", "train_data_ins.pkl")])
def test_pose_task_is_one_object_target_is_ten_times_turns_input_is_pixels_over_255(pose, split, fname):
    root, spec, facts = pose
    images, labels = _pickle(root.parent / "served", fname)
    assert images.dtype == np.uint8 and images.shape[1:] == (POSE_VIEWS, 128, 128) and labels.shape[2] == 3
    with override(spec):
        src = PoseSource(split, shots=10, queries=10, seed=1, root=root)
        b = src.batch(range(8))
    assert src.input_shape == (1, 128, 128)
    assert b.xs.shape == (8, 10, 1, 128, 128) and b.ys.shape == (8, 10, 1) and b.yq.shape == (8, 10, 1)
    angles = facts["angles"][fname]
    for t in range(8):
        o, v = int(b.info["object"][t]), b.info["view"][t].numpy()
        assert o < images.shape[0] and len(set(v.tolist())) == 20  # one object, distinct views
        y = torch.cat([b.ys[t, :, 0], b.yq[t, :, 0]]).numpy()
        # the references: y[:, :, -1] * 10; -1 is angle / (2 pi) (data_gen.py normalize)
        np.testing.assert_allclose(y, labels[o, v, -1] * 10.0, rtol=1e-6)
        np.testing.assert_allclose(y, angles[o, v] / (2 * np.pi) * TARGET_SCALE, rtol=1e-5)
        assert (0 <= y).all() and (y < 10).all()
        x = torch.cat([b.xs[t, :, 0], b.xq[t, :, 0]]).numpy()
        np.testing.assert_array_equal(x, images[o, v].astype(np.float32) / 255.0)


def test_pose_test_protocol_is_1000_episodes_drawn_from_the_val_pickle_objects(pose):
    root, spec, facts = pose
    with override(spec):
        src = PoseSource("test", shots=15, queries=15, seed=0, root=root)
        objs = src.batch(range(1000)).info["object"]
    assert PoseSource.n_test_tasks == 1000
    assert set(objs.tolist()) == set(range(3))  # all 3 objects of val_data_ins.pkl, nothing else
    with override(spec), pytest.raises(ValueError, match="only 100 views"):
        PoseSource("test", shots=60, queries=41, root=root)


def _write(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)
    return path


@pytest.mark.parametrize("fault,match", [
    ("old_fake", "expected \\[objects, views, 128, 128\\]"),      # float [n, v, 128, 128, 1] in [0, 1)
    ("radians", "fraction of a turn"),                           # label not divided by 2 pi
    ("ragged", "regular"),                                       # objects with different view counts
    ("dict", "not a 2-element"),
    ("unit_pixels", "not grey levels 0..255"),                   # float pixels already divided by 255
    ("size", "expected \\[objects, views, 128, 128\\]"),
])
def test_pose_reader_refuses_anything_but_the_real_layout(tmp_path, fault, match):
    rng = np.random.default_rng(0)
    img = [[rng.integers(0, 256, (128, 128), dtype=np.uint8) for _ in range(4)] for _ in range(2)]
    lab = [[[0.5, 0.5, float(rng.random())] for _ in range(4)] for _ in range(2)]
    obj = {
        "old_fake": (rng.random((2, 4, 128, 128, 1)).astype(np.float32), rng.random((2, 4, 2)) * 10),
        "radians": [img, [[[0.5, 0.5, 2 * np.pi * l[2]] for l in o] for o in lab]],
        "ragged": [[img[0], img[1][:3]], [lab[0], lab[1][:3]]],
        "dict": {"images": img, "labels": lab},
        "unit_pixels": [np.asarray(img, dtype=np.float32) / 255.0, lab],
        "size": [[[i[:64, :64] for i in o] for o in img], lab],
    }[fault]
    with pytest.raises(DataFetchError, match=match) as e:
        read_pose_pickle(_write(tmp_path / "val_data_ins.pkl", obj))
    assert "val_data_ins.pkl" in str(e.value) and "What to do" in str(e.value)
    # the real layout itself passes (lists, uint8, labels in turns); a tuple pickle too
    x, y = read_pose_pickle(_write(tmp_path / "ok.pkl", (img, lab)))
    assert x.dtype == np.uint8 and x.shape == (2, 4, 128, 128) and y.shape == (2, 4, 3)


def test_registry_describes_the_checked_layouts():
    p, s = get("pqsar"), get("pascal3d_pose")
    assert [f.name for f in p.files] == ["drug.zip"] and p.files[0].extract
    assert "1GQtES5pt7YD4MWdEqKqxJQW1-rpXhPWZ" in p.files[0].urls[0]
    assert set(p.split["groups"]) >= {1, 2, 3, 4, 17}
    assert [f.name for f in s.files] == ["train_data_ins.pkl", "val_data_ins.pkl"]
    assert (s.split["train"], s.split["test"]) == ("train_data_ins.pkl", "val_data_ins.pkl")
    assert p.cache_version >= 2 and s.cache_version >= 2  # caches of the old layouts are rebuilt


def test_the_training_metric_r2_is_the_same_score_as_r2_per_task():
    # what metrics.json reports for pQSAR runs (Algorithm.set_metric("r2")), per task under vmap
    from torch.func import vmap

    from trlearner.engine.algorithms.base import r2_metric

    g = torch.Generator().manual_seed(1)
    target = torch.randn(5, 20, 1, generator=g)
    pred = 0.3 * target + torch.randn(5, 20, 1, generator=g)
    pred[4] = 1.5  # constant prediction: 0
    torch.testing.assert_close(vmap(r2_metric)(pred, target), r2_per_task(pred, target), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r2_metric(2 * target[0] + 1, target[0]), torch.tensor(1.0))

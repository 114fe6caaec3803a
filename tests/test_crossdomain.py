"""Cross-domain as the paper runs it (Chen et al. 2019): the cells `cub` and `places` meta-train
on miniImageNet's training classes and meta-test on the CUB / Places test classes.

On the data layer's fixtures in their real file formats (learn2learn pickles, CUB tgz, Places
tar), fetched from a loopback server: every image of a training episode is, pixel for pixel,
an image of a miniImageNet *training* class of the fixture, and every image of a test episode
one of a CUB (or Places) *test* class; a run's metrics and provenance record both datasets.
"""

from __future__ import annotations

import json
import pickle
import re
import shlex
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
import yaml

from fixtures_data import REPO, fetch_fixture
from trlearner.pipeline.check import ConfigError, check_config
from trlearner.data.sources.images import _rule_mod4
from trlearner.data.registry import override
from trlearner.run.results import tensor_hash
from trlearner.run.config import resolve_config
from trlearner.run.evaluation import run_source
from trlearner.run.train import train

MINI_TRAIN = ["n01000001", "n01000002", "n01000003", "n01000004", "n01000005", "n01000006"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """miniImageNet, CUB and Places fixtures fetched into one data root; the registry overrides
    (fixture checksums and split files) as one list of specs."""
    tmp = tmp_path_factory.mktemp("crossdomain")
    specs = {}
    for dataset in ("miniimagenet", "cub", "places"):
        root, spec, _ = fetch_fixture(dataset, tmp)
        specs[dataset] = spec
    return root, specs, tmp / "served"


def _registry(specs):
    stack = ExitStack()
    stack.enter_context(override(*specs.values()))
    return stack


def _mini_train_pixels(served: Path) -> np.ndarray:
    """The fixture's miniImageNet training images, read from the published pickle itself."""
    with open(served / "miniimagenet" / "mini-imagenet-cache-train.pkl", "rb") as fh:
        return pickle.load(fh)["image_data"]  # [N, 84, 84, 3] uint8


def _cache_rows(root: Path, dataset: str, classes: list[str]) -> np.ndarray:
    """The cached images of ``classes`` (rows of the dataset's cache, by classes.json/offsets)."""
    cache = root / "raw" / dataset / "cache"
    names = json.loads((cache / "classes.json").read_text())["classes"]
    offsets = np.load(cache / "class_offsets.npy")
    images = np.load(cache / "images.npy")
    return np.concatenate([images[offsets[k]:offsets[k + 1]] for k, c in enumerate(names) if c in classes])


def _as_uint8(x) -> np.ndarray:
    """[..., 3, H, W] float in [0, 1] -> [n, H, W, 3] uint8 (exact: the cache is uint8 / 255)."""
    a = np.rint(x.reshape(-1, *x.shape[-3:]).numpy() * 255).astype(np.uint8)
    return a.transpose(0, 2, 3, 1)


def _members(images: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """For each image, whether it equals (every pixel) some image of ``pool``."""
    keys = {p.tobytes() for p in pool}
    return np.array([im.tobytes() in keys for im in images])


def _cfg(root, dataset="cub", **kw):
    return resolve_config(dataset=dataset, algorithm="maml", shots=1, ways=2, train_queries=2,
                          test_queries=2, iterations=3, meta_batch=2, test_tasks=4, filters=4,
                          inner_steps=1, test_steps=1, curve_steps=1,
                          data_root=str(root), device="cpu", **kw)


@pytest.mark.parametrize("target", ["cub", "places"])
def test_train_episodes_are_miniimagenet_train_classes_and_test_episodes_the_targets_test_classes(data, target):
    root, specs, served = data
    with _registry(specs):
        cfg = _cfg(root, target)
        assert cfg.train_dataset == "miniimagenet"  # the protocol's default for the cross-domain cells
        mini = _mini_train_pixels(served)
        train_src = run_source(cfg, "train", cfg.seed, cfg.train_queries)
        assert train_src.dataset == "miniimagenet" and train_src.split == "train"
        assert {c for c, _ in train_src.classes} == set(MINI_TRAIN)
        # the meta-batches train() draws: iterations x meta_batch episodes 0.. of the train source
        b = train_src.batch(range(cfg.iterations * cfg.meta_batch))
        names = [train_src.classes[k][0] for k in b.info["class_ids"].reshape(-1).tolist()]
        assert set(names) <= set(MINI_TRAIN)
        imgs = np.concatenate([_as_uint8(b.xs), _as_uint8(b.xq)])
        assert _members(imgs, mini).all()  # pixel-identical to the published training pickle

        target_classes = sorted(json.loads((root / "raw" / target / "cache" / "classes.json").read_text())["classes"])
        test_classes = _rule_mod4(target_classes, "test")  # i % 4 == 3 of the sorted classes
        assert len(test_classes) == 2
        target_test = _cache_rows(root, target, test_classes)
        target_other = _cache_rows(root, target, [c for c in target_classes if c not in test_classes])
        for split in ("test", "val"):
            src = run_source(cfg, split, 0, cfg.test_queries)
            assert src.dataset == target and src.split == split
        src = run_source(cfg, "test", 0, cfg.test_queries)
        t = src.batch(range(cfg.test_tasks))
        assert {src.classes[k][0] for k in t.info["class_ids"].reshape(-1).tolist()} == set(test_classes)
        imgs = np.concatenate([_as_uint8(t.xs), _as_uint8(t.xq)])
        assert _members(imgs, target_test).all()
        assert not _members(imgs, target_other).any()
        assert not _members(imgs, mini).any()


def test_a_run_records_both_datasets_and_tests_on_the_targets_episodes(data, tmp_path):
    root, specs, _ = data
    with _registry(specs):
        cfg = _cfg(root)
        m = train(cfg, tmp_path / "run", progress=False)
        # the test episodes are exactly the CUB test source's (evaluate: chunks of 10 tasks, seed 0)
        src = run_source(cfg, "test", 0, cfg.test_queries)
        import hashlib

        digest = hashlib.sha256()
        b = src.batch(range(cfg.test_tasks))
        digest.update(tensor_hash(b.xs, b.ys, b.xq, b.yq).encode())
    assert m["episodes_hash"] == digest.hexdigest()[:16]
    assert m["dataset"] == "cub" and m["n_tasks"] == cfg.test_tasks
    assert m["protocol"]["train_dataset"] == "miniimagenet" and m["protocol"]["test_dataset"] == "cub"
    prov = json.loads((tmp_path / "run" / "provenance.json").read_text())
    for role, dataset in (("train", "miniimagenet"), ("test", "cub")):
        man = json.loads((root / "raw" / dataset / "MANIFEST.json").read_text())
        assert prov["data"][role]["dataset"] == dataset
        assert prov["data"][role]["content_hash"] == man["content_hash"]
        assert prov["data"][role]["files"] == man["files"]
    assert prov["data"]["train"]["content_hash"] != prov["data"]["test"]["content_hash"]

    # the report's cross-domain table: its caption names both datasets, from the run's provenance
    import shutil

    from trlearner.report.reference import Reference
    from trlearner.run.records.scan import load_runs
    from trlearner.report.tables import build_tables

    results = tmp_path / "results" / "runs"
    shutil.copytree(tmp_path / "run", results / "cub" / "2way1shot" / "maml" / "baseline" / "seed0")
    runs = load_runs(results)
    assert len(runs) == 1
    ref = Reference.load()
    for frame, expected in ((runs, None), (runs.iloc[0:0], [{"dataset": "cub", "setting": "5way1shot",
                                                           "algorithm": "maml", "variant": "baseline"}])):
        table = next(t for t in build_tables(frame, expected, ref) if t.family == "cross_domain")
        assert "meta-train miniImageNet, meta-test CUB" in table.title
        assert table.sections[0].caption.startswith(
            "cub (meta-trained on miniimagenet's training classes, tested on cub's test classes): accuracy")


def test_within_domain_is_an_explicit_choice_with_its_own_identity(data):
    root, specs, _ = data
    with _registry(specs):
        cross, within = _cfg(root), _cfg(root, train_dataset="cub")
        src = run_source(within, "train", 0, 2)
        assert src.dataset == "cub" and {c for c, _ in src.classes} == set(_rule_mod4(
            [c for c in json.loads((root / "raw" / "cub" / "cache" / "classes.json").read_text())["classes"]], "train"))
    assert cross.identity() != within.identity()  # a checkpoint of one is stale for the other
    with pytest.raises(ValueError, match="fixed-way image datasets"):
        resolve_config(dataset="sinusoid", algorithm="maml", shots=5, train_dataset="miniimagenet")
    # other datasets' identities are unchanged by the new field (no spurious reruns)
    assert "train_dataset" not in resolve_config(dataset="omniglot_small", algorithm="maml", shots=1,
                                                 ways=5).identity()


def test_cli_takes_train_dataset(data, tmp_path):
    from trlearner.cli import build_parser
    from trlearner.run.cli import RUN_KEYS

    args = build_parser().parse_args(["train", "--dataset", "cub", "--algorithm", "maml", "--shots", "1",
                                      "--ways", "5", "--train-dataset", "cub", "--out", str(tmp_path)])
    cfg = resolve_config(**{k: getattr(args, k) for k in RUN_KEYS})
    assert cfg.train_dataset == "cub"


# --------------------------------------------------------------------------- the paper preset

def test_paper_preset_cross_domain_cells_train_on_miniimagenet_and_read_both_manifests():
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    m = check_config(cfg)
    cross = [r for r in m.table_runs if r.dataset in ("cub", "places")]
    assert len(cross) == 2 * 2 * 5 * 2 * 3
    for r in cross:
        assert r.train_dataset == "miniimagenet"
        assert r.data_datasets() == ["miniimagenet", r.dataset]
        args = r.train_args("paper", "cuda", "data")
        assert args[args.index("--train-dataset") + 1] == "miniimagenet"
    assert [r.data_datasets() for r in m.table_runs if r.dataset == "miniimagenet"][0] == ["miniimagenet"]
    bad = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    bad["experiments"]["regression"]["protocol"] = {"train_dataset": "miniimagenet"}
    with pytest.raises(ConfigError, match="train_dataset='miniimagenet' given for dataset 'sinusoid'"):
        check_config(bad)


def test_snakemake_train_job_of_a_cross_domain_cell_depends_on_both_manifests(tmp_path):
    from workflow_helpers import copy_pipeline, snakemake

    d = copy_pipeline(tmp_path / "repo")
    target = "results/paper/runs/places/5way5shot/maml/trlearner/seed1/metrics.json"
    out = snakemake(d, target, "--dry-run", "--printshellcmds", "--configfile", "config/paper.yaml")
    text = out.stdout + out.stderr
    inputs = re.findall(r"input: (.+)", text[:text.index(f"output: {target}")])[-1]  # the job's own input line
    assert "results/paper/data/miniimagenet.manifest.json" in inputs and "results/paper/data/places.manifest.json" in inputs
    line = next(t for t in text.splitlines() if "train-job" in t and "places" in t)
    (job,) = json.loads(shlex.split(line.split("--job ", 1)[1])[0])["runs"]  # the run config it receives
    assert (job["config"]["dataset"], job["config"]["train_dataset"]) == ("places", "miniimagenet")
    planned = set(re.findall(r"output: (results/paper/data/\S+\.manifest\.json)", text))
    assert planned == {"results/paper/data/miniimagenet.manifest.json", "results/paper/data/places.manifest.json"}

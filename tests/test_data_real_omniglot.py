"""The real omniglot_small zips (../shared/data/omniglot) through fetch -> cache -> episodes,
and the command line. Skipped where ../shared is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from fixtures_data import REPO, SHARED_OMNIGLOT

pytestmark = pytest.mark.skipif(not (SHARED_OMNIGLOT / "images_background_small1.zip").is_file(),
                                reason=f"real Omniglot zips not found at {SHARED_OMNIGLOT} (TRLEARNER_MIRROR or ../shared)")


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    from trlearner.data.fetch import fetch

    root = tmp_path_factory.mktemp("real") / "data"
    old = os.environ.get("TRLEARNER_MIRROR")
    os.environ["TRLEARNER_MIRROR"] = str(SHARED_OMNIGLOT)
    try:
        fetch("omniglot_small", root, progress=False)
    finally:
        os.environ.pop("TRLEARNER_MIRROR") if old is None else os.environ.__setitem__("TRLEARNER_MIRROR", old)
    return root


def test_real_characters_alphabet_disjoint(real_root):
    from trlearner.data.sources.dispatch import image_source

    meta = json.loads((real_root / "raw" / "omniglot_small" / "cache" / "classes.json").read_text())
    assert len(meta["classes"]) == 242  # 8 distinct alphabets; Greek and Latin deduplicated
    alphabets = {}
    for split in ("train", "val", "test"):
        src = image_source("omniglot_small", split, 5, 1, 15, seed=0, root=real_root)
        alphabets[split] = {c.split("/")[0] for c, _ in src.classes}
        b = src.batch(range(10))
        assert b.xs.shape == (10, 5, 1, 28, 28) and b.xq.shape == (10, 75, 1, 28, 28)
        # real characters: bright strokes on a dark background, neither blank nor full
        ink = b.xs.mean(dim=(2, 3, 4))
        assert bool(((ink > 0.03) & (ink < 0.5)).all())
    assert alphabets["train"] == {"Balinese", "Early_Aramaic", "Japanese_(katakana)", "Korean", "Latin"}
    assert alphabets["val"] == {"Tagalog"} and alphabets["test"] == {"Greek", "Sanskrit"}
    assert not (alphabets["train"] & alphabets["test"]) and not (alphabets["val"] & alphabets["test"])


def test_real_cache_matches_published_checksums(real_root):
    from trlearner.data.fetch import manifest

    m = manifest("omniglot_small", real_root)
    assert m["files"]["images_background_small1.zip"] == \
        "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4"


def test_cli_fetch_list_manifest_offline(tmp_path):
    env = dict(os.environ, TRLEARNER_MIRROR=str(SHARED_OMNIGLOT), DVC_NO_ANALYTICS="1")
    run = lambda *a: subprocess.run([sys.executable, "-m", "trlearner.data.cli", *a], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=300)
    r = run("fetch", "omniglot_small", "--quiet")
    assert r.returncode == 0, r.stderr
    r = run("list")
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("omniglot_small ")][0]
    assert " fetched " in line and "not fetched" not in line and "published (sha256)" in line
    assert " not fetched " in [ln for ln in r.stdout.splitlines() if ln.startswith("cub ")][0]
    r = run("verify", "omniglot_small")
    assert r.returncode == 0 and "omniglot_small: ok" in r.stdout, r.stdout + r.stderr
    r = run("manifest", "omniglot_small", "--out", "m/omniglot_small.json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "m" / "omniglot_small.json").read_text())["content_hash"]) == 64
    r = run("fetch", "nonexistent")
    assert r.returncode == 2 and "unknown dataset" in r.stderr


def test_cli_error_is_clear_without_sources(tmp_path):
    env = dict(os.environ, TRLEARNER_MIRROR=str(tmp_path / "empty-mirror"), DVC_NO_ANALYTICS="1")
    r = subprocess.run([sys.executable, "-m", "trlearner.data.cli", "fetch", "pascal3d_pose", "--quiet"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "train_data_ins.pkl" in r.stderr and "data/manual/pascal3d_pose" in r.stderr
    assert REPO.is_dir() and torch

"""After a run, `python -m trlearner data status` is quiet about the datasets in the checkout
(one line: up to date with dvc.lock) and says in one line per kind what the others are, where a
bare `dvc status` prints a block for every never-run fetch@<dataset> stage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")
FILES = ["dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore", ".dvc/config", "src/trlearner/data/registry.yaml"]

pytestmark = pytest.mark.skipif(not DVC.exists() or shutil.which("git") is None, reason="dvc or git not installed")


def _env():
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    env.pop("TRLEARNER_MIRROR", None)
    return env


def _status(repo: Path, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trlearner", "data", "status", "--repo", str(repo)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_data_status_is_quiet_about_what_the_run_used(tmp_path):
    env = _env()
    repo = tmp_path / "repo"
    for f in FILES:
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / f, repo / f)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    # the run used sinusoid (a generated dataset: no download); dvc.lock pins it
    r = subprocess.run([str(DVC), "repro", "fetch@sinusoid"], cwd=repo, capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    bare = subprocess.run([str(DVC), "status"], cwd=repo, capture_output=True, text=True, env=env).stdout
    assert len(bare.splitlines()) > 40 and "fetch@cub" in bare  # the noise this command removes

    out = _status(repo, env)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3, out.stdout
    assert lines[0] == "up to date (data/raw/<dataset> is what dvc.lock pins): sinusoid"
    assert lines[1].startswith("pinned in dvc.lock, not in this checkout (`dvc pull fetch@<dataset>` restores): "
                               "harmonic, omniglot_small")
    assert lines[2].startswith("never fetched: no dvc.lock entry") and "cub, " in lines[2] and "sinusoid" not in lines[2]

    # a dataset here that differs from dvc.lock is named, with DVC's words, and the exit status is 1
    victim = next(p for p in sorted((repo / "data/raw/sinusoid").rglob("*")) if p.is_file())
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes() + b"x")
    out = _status(repo, env)
    assert out.returncode == 1
    assert "CHANGED fetch@sinusoid: changed outs: data/raw/sinusoid modified" in out.stdout, out.stdout
    assert "up to date" not in out.stdout

"""No remote that cannot work elsewhere: the committed .dvc/config names none (it named a folder
under the home directory of the machine that filled it, so `dvc pull` failed on any other). A
shared remote added as docs/DATA.md shows it carries a dataset from one checkout to another:
`dvc push` into a folder standing in for it, `dvc pull` from it in a clone, nothing fetched."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")
FILES = ["dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore", ".dvc/config", "src/trlearner/data/registry.yaml"]


def test_committed_dvc_config_names_no_remote():
    cfg = configparser.ConfigParser()
    cfg.read_string((REPO / ".dvc" / "config").read_text())
    assert not [s for s in cfg.sections() if s.strip("'\"").startswith("remote")], cfg.sections()
    assert "remote" not in cfg["core"] if cfg.has_section("core") else True
    assert "~" not in (REPO / ".dvc" / "config").read_text()


def _sh(cmd, cwd, env):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{cmd}: {r.stdout}\n{r.stderr}"
    return r


@pytest.mark.skipif(not DVC.exists() or shutil.which("git") is None, reason="dvc or git not installed")
def test_push_to_and_pull_from_a_shared_remote(tmp_path):
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("TRLEARNER_MIRROR", None)
    origin, shared = tmp_path / "origin", tmp_path / "shared-dvc-remote"
    for f in FILES:
        (origin / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / f, origin / f)
    _sh(["git", "init", "-q"], origin, env)
    _sh(["git", "add", "-A"], origin, env)
    _sh(["git", "commit", "-qm", "init"], origin, env)
    # without a remote, push says so (DVC's message), it does not write to some home folder
    r = subprocess.run([DVC, "push"], cwd=origin, env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "no remote specified" in (r.stdout + r.stderr).lower()

    # docs/DATA.md: the team's remote, for this checkout only (nothing committed changes)
    _sh([DVC, "remote", "add", "--local", "-d", "team", shared], origin, env)
    _sh([DVC, "repro", "fetch@sinusoid"], origin, env)
    _sh(["git", "diff", "--exit-code", "dvc.lock", ".dvc/config"], origin, env)  # dvc.lock pinned it already
    _sh([DVC, "push", "fetch@sinusoid"], origin, env)
    assert any(p.is_file() for p in shared.rglob("*"))

    clone = tmp_path / "clone"
    _sh(["git", "clone", "-q", origin, clone], tmp_path, env)
    _sh([DVC, "remote", "add", "--local", "-d", "team", shared], clone, env)
    _sh([DVC, "pull", "fetch@sinusoid"], clone, env)
    r = _sh([DVC, "repro", "fetch@sinusoid"], clone, env)
    assert "Running stage" not in r.stdout, r.stdout  # restored from the remote, not generated again
    man = "data/raw/sinusoid/MANIFEST.json"
    assert (clone / man).read_bytes() == (origin / man).read_bytes()
    assert "up to date" in _sh([DVC, "status", "fetch@sinusoid"], clone, env).stdout

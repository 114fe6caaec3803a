"""DVC: the committed dvc.lock pins omniglot_small; `dvc push` then, in a second clone,
`dvc pull` / `dvc repro --pull` restore it from the remote without fetching (no mirror, no
network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_data import REPO, SHARED_OMNIGLOT

DVC = Path(sys.executable).with_name("dvc")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED_OMNIGLOT / "images_background_small1.zip").is_file(),
                       reason=f"real Omniglot zips not found at {SHARED_OMNIGLOT} (TRLEARNER_MIRROR or ../shared)"),
    pytest.mark.skipif(not DVC.exists() or shutil.which("git") is None, reason="dvc or git not installed"),
]

FILES = ["dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore", ".dvc/config", "src/trlearner/data/registry.yaml"]


def sh(cmd, cwd, env, ok=True):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if ok:
        assert r.returncode == 0, f"{cmd}: {r.stdout}\n{r.stderr}"
    return r


def test_push_then_pull_and_repro_in_a_second_clone(tmp_path):
    base = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    base.pop("TRLEARNER_MIRROR", None)
    origin, remote = tmp_path / "origin", tmp_path / "remote"
    for f in FILES:
        (origin / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / f, origin / f)
    sh(["git", "init", "-q"], origin, base)
    sh(["git", "add", "-A"], origin, base)
    sh(["git", "commit", "-qm", "init"], origin, base)
    sh([str(DVC), "remote", "add", "--local", "-d", "local", str(remote)], origin, base)

    first = dict(base, TRLEARNER_MIRROR=str(SHARED_OMNIGLOT))
    sh([str(DVC), "repro", "fetch@omniglot_small"], origin, first)
    st = sh([str(DVC), "status", "fetch@omniglot_small"], origin, first)
    assert "up to date" in st.stdout  # the fetched data is exactly what dvc.lock pins
    sh(["git", "diff", "--exit-code", "dvc.lock"], origin, base)
    sh([str(DVC), "push", "--run-cache", "fetch@omniglot_small"], origin, base)

    # second machine: no mirror, no network (any HTTP request would go to a dead proxy)
    offline = dict(base, http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
                   HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    for how in ("pull", "repro"):
        clone = tmp_path / f"clone_{how}"
        sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path, base)
        sh([str(DVC), "remote", "add", "--local", "-d", "local", str(remote)], clone, base)
        if how == "pull":
            sh([str(DVC), "pull", "fetch@omniglot_small"], clone, offline)
            r = sh([str(DVC), "repro", "fetch@omniglot_small"], clone, offline)
        else:
            r = sh([str(DVC), "repro", "--pull", "fetch@omniglot_small"], clone, offline)
        assert "Running stage" not in r.stdout, r.stdout  # restored, not re-fetched
        assert not (clone / "data" / "downloads").exists()
        man = clone / "data" / "raw" / "omniglot_small" / "MANIFEST.json"
        assert man.read_bytes() == (origin / "data" / "raw" / "omniglot_small" / "MANIFEST.json").read_bytes()
        st = sh([str(DVC), "status", "fetch@omniglot_small"], clone, offline)
        assert "up to date" in st.stdout

"""Every dataset is versioned with DVC: one ``fetch@<dataset>`` stage per registry dataset,
no fetch outside DVC, and the paper preset's data jobs on fixtures leave ``dvc status`` clean,
``dvc.lock`` naming every dataset fetched, nothing untracked under ``data/``, and a second
clone restores them from a local-directory remote without fetching.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fixtures_data import REPO, build, fixture_spec
from trlearner.pipeline.check import check_config
from trlearner.pipeline.dvc import dvc_datasets, dvc_params, registry_datasets
from trlearner.pipeline.jobs import fetch_data
from workflow_helpers import copy_pipeline, snakemake

DVC = Path(sys.executable).with_name("dvc")
PRESETS = ("default", "paper", "tiny")


def _matrix(preset: str):
    return check_config(yaml.safe_load((REPO / "config" / f"{preset}.yaml").read_text()))


# --------------------------------------------------------------------------- one source of truth

def test_params_yaml_lists_every_registry_dataset():
    assert dvc_params(str(REPO / "params.yaml"), check=True) == 0
    assert dvc_datasets(str(REPO / "params.yaml")) == registry_datasets()
    assert "metadataset" not in registry_datasets()  # a collection: its members have stages
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["fetch"]
    assert stage["foreach"] == "${datasets}" and stage["do"]["outs"] == ["data/raw/${item}"]


def test_every_dataset_of_every_preset_has_a_dvc_stage_and_is_git_ignored():
    staged = set(dvc_datasets(str(REPO / "params.yaml")))
    ignored = set((REPO / "data" / "raw" / ".gitignore").read_text().split())
    for preset in PRESETS:
        for dataset in _matrix(preset).datasets:
            assert dataset in staged, (preset, dataset)
            assert f"/{dataset}" in ignored, (preset, dataset)


def test_dvc_params_check_names_what_is_missing(tmp_path, capsys):
    p = tmp_path / "params.yaml"
    p.write_text("datasets: [sinusoid, harmonic, omniglot_small]\n")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    assert dvc_params(str(p), check=True) == 1
    err = capsys.readouterr().err
    assert "'cub'" in err and "'miniimagenet'" in err and "dvc-params" in err
    assert dvc_params(str(p)) == 0 and dvc_params(str(p), check=True) == 0
    assert dvc_datasets(str(p)) == registry_datasets()


def test_no_fetch_outside_dvc(tmp_path, monkeypatch, capsys):
    """A dataset without a DVC stage fails its job; nothing is downloaded or written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRLEARNER_MIRROR", str(tmp_path / "nothing"))
    Path("params.yaml").write_text("datasets: [sinusoid]\n")
    Path("dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    out = tmp_path / "results" / "cub.manifest.json"
    assert fetch_data("cub", str(out)) == 2
    assert "no DVC stage fetch@cub" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "data").exists()
    Path("params.yaml").write_text((REPO / "params.yaml").read_text())
    assert fetch_data("cub", str(out), data_root="elsewhere") == 2
    assert "allowed: data_root 'data'" in capsys.readouterr().err


# --------------------------------------------------------------------------- the paper preset's data jobs

# datasets of the paper preset with a fixture in their real format (tests/fixtures_data.py);
# the generated ones (sinusoid, harmonic) read no data: their manifest is the generator's
# identity, made without DVC; metadataset_fungi has no fixture: offline, its job must fail
FIXTURES = ("omniglot", "miniimagenet", "cub", "places", "pqsar", "pascal3d_pose", "metadataset_dtd")
GENERATED = ("sinusoid", "harmonic")
UNFETCHABLE = "metadataset_fungi"
OFFLINE = {k: "http://127.0.0.1:9" for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}


def _fixture_registry(repo: Path, served: Path) -> None:
    """Rewrite the copy's registry.yaml: the fixture datasets get their fixture files (checksums
    computed here, no URLs: found through TRLEARNER_MIRROR), converter args and split files."""
    path = repo / "src" / "trlearner" / "data" / "registry.yaml"
    raw = yaml.safe_load(path.read_text())
    for dataset in FIXTURES:
        facts = build(dataset, served / dataset)
        spec = fixture_spec(dataset, served / dataset, split_file=facts.get("split_file"),
                            converter_args=facts.get("converter_args"))
        entry = raw["datasets"][dataset]
        entry["files"] = [{"name": f.name, "checksum": f.checksum, "size": f.size, "extract": f.extract, "urls": []}
                          for f in spec.files]
        entry["converter_args"] = dict(spec.converter_args)
        entry["split"] = dict(spec.split)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def _sh(cmd, cwd, env, ok=True):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if ok:
        assert r.returncode == 0, f"{cmd}: {r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow
@pytest.mark.skipif(not DVC.exists() or shutil.which("git") is None, reason="dvc or git not installed")
def test_paper_data_jobs_on_fixtures_are_versioned_and_restored_by_dvc(tmp_path):
    paper = _matrix("paper")
    assert set(FIXTURES + GENERATED + (UNFETCHABLE,)) <= set(paper.datasets)
    repo, served, remote = tmp_path / "repo", tmp_path / "served", tmp_path / "remote"
    copy_pipeline(repo)
    for f in ("params.yaml", ".gitignore", "data/raw/.gitignore"):
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / f, repo / f)
    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)
    shutil.rmtree(repo / ".dvc" / "tmp", ignore_errors=True)
    _fixture_registry(repo, served)
    base = {k: v for k, v in os.environ.items() if k not in ("TRLEARNER_MIRROR", "PYTHONPATH")}
    base.update(DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                GIT_COMMITTER_EMAIL="t@t", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    _sh(["git", "init", "-q"], repo, base)
    _sh(["git", "add", "-A"], repo, base)
    _sh(["git", "commit", "-qm", "fixture registry"], repo, base)
    _sh([DVC, "remote", "add", "--local", "-d", "local", remote], repo, base)

    # the data jobs of the paper preset (rule dataset_manifest), offline, fixtures via the mirror
    env = dict(base, TRLEARNER_MIRROR=str(served), **OFFLINE)
    datasets = FIXTURES + GENERATED + (UNFETCHABLE,)
    targets = [f"results/paper/data/{d}.manifest.json" for d in datasets]
    out = snakemake(repo, *targets, "--cores", "1", "--keep-going", "--configfile", "config/paper.yaml",
                    check=False, env=env)
    assert out.returncode != 0  # the unfetchable dataset's job failed ...
    for d in FIXTURES + GENERATED:  # ... and every other job finished
        man = json.loads((repo / f"results/paper/data/{d}.manifest.json").read_text())
        assert man["dataset"] == d
    assert not (repo / f"results/paper/data/{UNFETCHABLE}.manifest.json").exists()
    log = (repo / f"results/paper/logs/data/{UNFETCHABLE}.log").read_text()
    assert f"fetch@{UNFETCHABLE} failed" in log and "fungi_train_val.tgz" in log  # the fetch error itself
    assert not (repo / "data" / "raw" / UNFETCHABLE).exists()

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    fetched = FIXTURES + GENERATED + ("omniglot_small",)  # omniglot_small: the committed entry
    assert set(lock) == {f"fetch@{d}" for d in fetched}  # dvc.lock names every dataset fetched
    for d in FIXTURES:
        assert lock[f"fetch@{d}"]["outs"][0]["path"] == f"data/raw/{d}"
    stages = [f"fetch@{d}" for d in FIXTURES]
    st = _sh([DVC, "status", *stages], repo, env)
    assert "up to date" in st.stdout, st.stdout
    full = _sh([DVC, "status", "--json"], repo, env)
    # the whole repository: only the stages not run here are reported (never fetched: no dvc.lock
    # entry; or pinned by the committed dvc.lock but not pulled: omniglot_small, the generated ones)
    assert set(json.loads(full.stdout)) == {f"fetch@{d}" for d in registry_datasets() if d not in FIXTURES}
    # data/raw/ holds only DVC outputs, all git-ignored; only dvc.lock changed in git
    status = _sh(["git", "status", "--porcelain", "--untracked-files=all"], repo, env).stdout.split("\n")
    changed = {ln[3:] for ln in status if ln.strip() and not ln[3:].startswith(("results/", ".snakemake/"))}
    assert changed == {"dvc.lock"}, changed

    # a second machine: clone, pull from the remote, nothing fetched (no mirror, no network)
    _sh(["git", "commit", "-qam", "data fetched"], repo, base)
    _sh([DVC, "push", *stages], repo, base)
    clone = tmp_path / "clone"
    _sh(["git", "clone", "-q", repo, clone], tmp_path, base)
    _sh([DVC, "remote", "add", "--local", "-d", "local", remote], clone, base)
    offline = dict(base, **OFFLINE)
    _sh([DVC, "pull", *stages], clone, offline)
    r = _sh([DVC, "repro", *stages], clone, offline)
    assert "Running stage" not in r.stdout, r.stdout  # restored, not re-fetched
    assert not (clone / "data" / "downloads").exists()
    for d in FIXTURES:
        man = clone / "data" / "raw" / d / "MANIFEST.json"
        assert man.read_bytes() == (repo / "data" / "raw" / d / "MANIFEST.json").read_bytes()
    assert "up to date" in _sh([DVC, "status", *stages], clone, offline).stdout

"""`dvc metrics` compares a run with the published results: reports/ is git-ignored, so HEAD has
no report and `dvc metrics diff` could not load it; the published tree carries each preset's
summary.json (results/published/<preset>/summary.json, written from the committed records by
`python -m trlearner.pipeline.dvc published-summary`), which dvc.yaml lists as a metrics file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_dvc_metrics import _results  # noqa: E402

from trlearner.report.render import write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).with_name("dvc"))
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}
PUBLISHED = "results/published/default/summary.json"


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300, env=ENV)
    assert out.returncode == 0, f"{args}: {out.stdout}{out.stderr}"
    return out


def _git(cwd: Path, *args: str) -> None:
    _run(cwd, "git", "-c", "user.name=t", "-c", "user.email=t@t", *args)


def test_dvc_yaml_lists_the_published_summary():
    assert yaml.safe_load((REPO / "dvc.yaml").read_text())["metrics"] == ["reports/default/summary.json", PUBLISHED]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_metrics_diff_compares_a_local_run_with_the_published_results(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(REPO / name, repo / name)
    (repo / ".gitignore").write_text("/reports/\n")  # as the repository's: reports are never committed
    _git(repo, "init", "-q")
    _run(repo, DVC, "init", "-q")
    # published records of the default preset (metrics.json + provenance.json per run)
    _results(repo / "results" / "published" / "default" / "runs", 0.0)
    out = _run(repo, sys.executable, "-m", "trlearner.pipeline.dvc", "published-summary")
    assert f"wrote {PUBLISHED}" in out.stdout
    # the same file the report writes from those records (make published renders the same)
    write_report(repo / "results/published/default/runs", tmp_path / "rendered", relative_to=repo)
    assert (repo / PUBLISHED).read_bytes() == (tmp_path / "rendered" / "summary.json").read_bytes()
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "published results")

    # a local run of the default preset, baseline 0.1 worse on every seed
    _results(tmp_path / "local", 0.1)
    write_report(tmp_path / "local", repo / "reports" / "default")
    shown = json.loads(_run(repo, DVC, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]  # the workspace
    got = {f: d["data"]["cells"]["sinusoid"]["5shot"]["maml"]["baseline"]["mean"] for f, d in files.items()}
    assert got == {"reports/default/summary.json": pytest.approx(0.7), PUBLISHED: pytest.approx(0.6)}
    same = _run(repo, DVC, "metrics", "diff", "--targets", PUBLISHED, "--json")  # HEAD has it: it loads, unchanged
    assert json.loads(same.stdout) == {} and "failed to load" not in same.stdout + same.stderr

    # the change from the published numbers, metric by metric (docs/DATA.md)
    shutil.copyfile(repo / "reports/default/summary.json", repo / PUBLISHED)
    diff = json.loads(_run(repo, DVC, "metrics", "diff", "--targets", PUBLISHED, "--json").stdout)[PUBLISHED]
    base = diff["cells.sinusoid.5shot.maml.baseline.mean"]
    assert base["old"] == pytest.approx(0.6) and base["new"] == pytest.approx(0.7) and base["diff"] == pytest.approx(0.1)
    assert diff["effects.sinusoid.5shot.maml.diff"]["old"] == pytest.approx(-0.14)
    assert diff["effects.sinusoid.5shot.maml.diff"]["new"] == pytest.approx(-0.24)
    _git(repo, "checkout", "--", PUBLISHED)
    assert json.loads((repo / PUBLISHED).read_text())["cells"]["sinusoid"]["5shot"]["maml"]["baseline"]["mean"] == \
        pytest.approx(0.6)

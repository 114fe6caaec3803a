"""DVC sees the report's results: dvc.yaml's top-level `metrics:` and `plots:` name what the
report writes; `dvc metrics show`, `dvc plots show` work on a rendered report and `dvc metrics
diff` compares two commits of a temporary git repository whose results differ."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_report_fixtures import write_run  # noqa: E402

from trlearner.report.render import write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).with_name("dvc"))
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([DVC, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


def _results(root: Path, shift: float) -> None:
    for seed, (b, t) in enumerate([(0.5, 0.40), (0.6, 0.45), (0.7, 0.53)]):
        write_run(root, "sinusoid", "maml", "baseline", seed, shots=5, per_task=[b + shift - 0.1, b + shift + 0.1])
        write_run(root, "sinusoid", "maml", "trlearner", seed, shots=5, per_task=[t - 0.1, t + 0.1])


def test_dvc_yaml_names_what_the_report_writes(tmp_path):
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert spec["metrics"][0] == "reports/default/summary.json"  # [1]: the published one (test_dvc_published_metrics)
    plots = {next(iter(p)) if isinstance(p, dict) else p for p in spec["plots"]}
    assert {"reports/default/charts/cells_mse.csv", "reports/default/figures/main_results.png"} <= plots
    _results(tmp_path / "runs", 0.0)
    write_report(tmp_path / "runs", tmp_path / "reports")
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert summary["cells"]["sinusoid"]["5shot"]["maml"]["baseline"]["mean"] == pytest.approx(0.6)
    assert summary["effects"]["sinusoid"]["5shot"]["maml"]["diff"] == pytest.approx(-0.14)
    assert summary["verdicts"] == {"compatible": 1, "incompatible": 0, "could_not_be_tested": 2}
    for p in spec["plots"]:  # every cells chart's x and y are columns of the file the report writes
        if isinstance(p, dict) and next(iter(p)) == "reports/default/charts/cells_mse.csv":
            chart = pd.read_csv(tmp_path / "reports" / "charts" / "cells_mse.csv")
            assert {p["reports/default/charts/cells_mse.csv"]["x"], p["reports/default/charts/cells_mse.csv"]["y"]} \
                <= set(chart.columns)
            # only the cells the preset ran: the reference's meta_dataset cells have no mean
            assert chart["cell"].tolist() == ["sinusoid/5shot/maml/baseline", "sinusoid/5shot/maml/trlearner"]
            assert chart["mean"].tolist() == pytest.approx([0.6, 0.46])


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_metrics_show_plots_show_and_diff_between_two_commits(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(REPO / name, repo / name)
    _git(repo, "init", "-q")
    _dvc(repo, "init", "-q")
    _results(tmp_path / "a", 0.0)
    write_report(tmp_path / "a", repo / "reports" / "default")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first results")
    shown = _dvc(repo, "metrics", "show", "--json").stdout
    assert "cells" in shown and "0.6" in shown
    plots = _dvc(repo, "plots", "show", "-o", str(tmp_path / "plots"))
    assert (tmp_path / "plots" / "index.html").exists(), plots.stdout + plots.stderr
    assert "No plots were loaded" not in plots.stdout + plots.stderr
    _results(tmp_path / "b", 0.1)  # baseline 0.1 worse on every seed
    write_report(tmp_path / "b", repo / "reports" / "default")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "second results")
    diff = json.loads(_dvc(repo, "metrics", "diff", "HEAD~1", "HEAD", "--json").stdout)
    changes = diff["reports/default/summary.json"]
    base = changes["cells.sinusoid.5shot.maml.baseline.mean"]
    assert base["old"] == pytest.approx(0.6) and base["new"] == pytest.approx(0.7)
    assert base["diff"] == pytest.approx(0.1)
    assert changes["effects.sinusoid.5shot.maml.diff"]["new"] == pytest.approx(-0.24)

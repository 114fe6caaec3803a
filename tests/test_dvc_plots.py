"""`dvc plots show` draws every chart, offline: dvc.yaml's plots read what the report and the
analyses write (the cells charts, one per metric: value on x, cell on y, as the bar_horizontal
template wants;
depth, sensitivity and motivation: one line per method from their *_by_method.csv), and
`python -m trlearner.pipeline.dvc plots` (`make plots`) writes an HTML page with Vega inlined
that headless Chromium draws with the network cut off."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_analysis_outputs import fake_metrics, put  # noqa: E402
from test_dvc_metrics import _results  # noqa: E402

from trlearner.analysis.cli import run_analysis  # noqa: E402
from trlearner.report.render import write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).with_name("dvc"))
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _plots() -> dict[str, dict]:
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    return {next(iter(p)): (next(iter(p.values())) or {}) for p in spec["plots"] if isinstance(p, dict)}


def _analyses(runs: Path, reports: Path) -> None:
    """depth (k = 1..3), sensitivity (a lambda and a K sweep) and motivation (D1 and D4) from
    synthetic run records, written by the analyses themselves."""
    for k in (1, 2, 3):
        for v in ("baseline", "trlearner"):
            put(runs / "depth", f"{v}/steps{k}/seed0",
                fake_metrics(variant=v, steps=k, mean=2.0 - 0.3 * k if v == "baseline" else 1.0))
    put(runs / "sensitivity", "baseline/seed0", fake_metrics(mean=1.0))
    for (lam, k), m in {(0.0, 4): 1.0, (0.1, 4): 0.9, (1.0, 4): 0.95, (0.1, 1): 0.97, (0.1, 8): 0.92}.items():
        put(runs / "sensitivity", f"lam{lam:g}_heads{k}/seed0",
            fake_metrics(variant="trlearner", lam=lam, heads=k, mean=m))
    its = list(range(10, 101, 10))
    for fam in ("motivation_d1", "motivation_d4"):
        for v in ("baseline", "trlearner"):
            off = 0.0 if v == "baseline" else -0.1
            h = [{"iteration": i, "train": 2.0 - 0.01 * i, "val": 3.0 - 0.02 * i + off} for i in its]
            put(runs / "motivation", f"{fam}/{v}/seed0", fake_metrics(dataset=fam, variant=v, history=h, mean=1 + off))
    for name in ("depth", "sensitivity", "motivation"):
        run_analysis(name, runs / name, reports / "analyses" / name, None)


def test_plot_definitions_match_the_files_and_templates(tmp_path):
    """x and y of every plot are columns of the file it names, and the cells chart puts the
    value on x and the category on y (dvc_render's bar_horizontal: x quantitative, y nominal)."""
    from dvc_render.vega_templates import BarHorizontalTemplate

    enc = BarHorizontalTemplate.DEFAULT_CONTENT["encoding"]
    assert enc["x"]["type"] == "quantitative" and enc["y"]["type"] == "nominal"
    _results(tmp_path / "runs", 0.0)
    reports = tmp_path / "reports" / "default"
    write_report(tmp_path / "runs", reports)
    _analyses(tmp_path / "an", reports)
    plots = _plots()
    charts = {p: plots[p] for p in plots if p.startswith("reports/default/charts/cells_")}
    assert set(charts) == {"reports/default/charts/cells_accuracy.csv", "reports/default/charts/cells_mse.csv"}
    for cells in charts.values():
        assert (cells["x"], cells["y"], cells["template"]) == ("mean", "cell", "bar_horizontal")
    assert not (reports / "charts" / "cells_accuracy.csv").exists()  # no accuracy cell in this fixture
    checked = 0
    for path, p in plots.items():
        f = tmp_path / path
        if not f.exists() or f.suffix != ".csv":
            continue  # tradeoff, relations: not in this fixture
        cols = set(pd.read_csv(f).columns)
        ys = p["y"] if isinstance(p["y"], list) else [p["y"]]
        assert p["x"] in cols and set(ys) <= cols, (path, cols)
        checked += 1
    assert checked == 6  # cells_mse, depth, 2 sensitivity, motivation d1 and d4 (d2, d3 not run)
    depth = pd.read_csv(reports / "analyses/depth/depth_by_method.csv")
    assert list(depth.columns) == ["meta_layers", "baseline", "trlearner"] and list(depth.meta_layers) == [1, 2, 3]
    assert depth.baseline.tolist() == pytest.approx([1.7, 1.4, 1.1], abs=1e-5)
    lam = pd.read_csv(reports / "analyses/sensitivity/sensitivity_lambda_by_method.csv")
    assert lam.lam.tolist() == [0.0, 0.1, 1.0] and lam.trlearner.tolist() == pytest.approx([1.0, 0.9, 0.95], abs=1e-5)
    assert lam.baseline.tolist() == pytest.approx([1.0] * 3, abs=1e-5)  # the baseline at every lambda
    heads = pd.read_csv(reports / "analyses/sensitivity/sensitivity_heads_by_method.csv")
    assert heads.heads.tolist() == [1, 4, 8] and heads.trlearner.tolist() == pytest.approx([0.97, 0.9, 0.92], abs=1e-5)


def _series(dom: str) -> dict[str, dict]:
    """Per chart div of DVC's page: the fields of its line marks and its bars (Vega's SVG)."""
    body = dom[dom.index("<body"):]
    charts = {}
    for part in re.split(r'<div id\s*=\s*"', body)[1:]:
        name = part.split('"')[0]
        charts[name] = {
            "lines": set(re.findall(r'aria-label="[^"]*field: ([^";]+)[^"]*" role="graphics-symbol" '
                                    r'aria-roledescription="line mark"', part)),
            "bars": re.findall(r'aria-label="[^:"]+: ([^;"]+); cell: ([^;"]+);[^"]*" role="graphics-symbol" '
                               r'aria-roledescription="bar"', part),
            "svg": "<svg" in part,
        }
    return charts


@pytest.mark.skipif(shutil.which("git") is None or CHROMIUM is None, reason="git or chromium is not installed")
def test_make_plots_draws_every_chart_offline(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(REPO / name, repo / name)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=repo, check=True, env=ENV)
    _results(tmp_path / "runs", 0.0)
    write_report(tmp_path / "runs", repo / "reports" / "default")
    _analyses(tmp_path / "an", repo / "reports" / "default")
    out = subprocess.run([sys.executable, "-m", "trlearner.pipeline.dvc", "plots", "--out", "dvc_plots"],
                         cwd=repo, capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    page = repo / "dvc_plots" / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr.net" not in html and "<script src=" not in html  # nothing to download
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND",
                          "--proxy-server=http://127.0.0.1:9", "--virtual-time-budget=5000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=180).stdout
    charts = _series(dom)
    cells = charts["reports_default_charts_cells_mse_csv"]
    drawn = {c: float(m) for m, c in cells["bars"]}
    assert drawn["sinusoid/5shot/maml/baseline"] == pytest.approx(0.6)
    assert drawn["sinusoid/5shot/maml/trlearner"] == pytest.approx(0.46)
    assert charts["reports_default_charts_cells_accuracy_csv"]["bars"] == []  # no accuracy cell: its own chart
    for chart in ("depth_depth", "sensitivity_sensitivity_lambda", "sensitivity_sensitivity_heads"):
        assert charts[f"reports_default_analyses_{chart}_by_method_csv"]["lines"] == {"baseline", "trlearner"}, chart
    for fam in ("d1", "d4"):
        assert charts[f"reports_default_analyses_motivation_motivation_{fam}_by_method_csv"]["lines"] == {
            "baseline", "trlearner"}
    assert not charts["reports_default_analyses_motivation_motivation_d2_by_method_csv"]["lines"]  # not run
    assert all(c["svg"] for n, c in charts.items() if not n.endswith("_png"))

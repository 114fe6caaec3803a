"""REPORT.md reads right to a newcomer (issue 25): an analysis whose cells did not learn says it
could not be tested at this budget, never that it does not reproduce the paper; no prose line
is longer than 200 characters; the seed columns say they count seeds; and every file the report
links to is there, from a checkout as from an installed wheel (REPORT_FORMAT.md is written
beside REPORT.md from the package)."""

from __future__ import annotations

import json
import re
import shutil
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_analysis_outputs import fake_metrics, put  # noqa: E402
from test_claims import table, write_point  # noqa: E402
from test_report_fixtures import standard_results  # noqa: E402
from test_report_length import _analyses  # noqa: E402

from trlearner.analysis.cli import main as analysis_main  # noqa: E402
from trlearner.report.gallery import episode_picture  # noqa: E402
from trlearner.report.render import FORMAT_DOC, MAX_LINE, write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _untrained_depth(runs: Path, out: Path) -> None:
    """The depth analysis on runs that learned nothing: test MSE = 0-step MSE (as in the tiny
    preset, where 10 of 10 cells did not learn)."""
    for k in (1, 2):
        for v in ("baseline", "trlearner"):
            put(runs, f"{v}/steps{k}/seed0", fake_metrics(variant=v, steps=k, mean=2.0 - 0.1 * k, zero=2.0))
    assert analysis_main(["depth", "--runs", str(runs), "--out", str(out / "depth")]) == 0


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of everything: the standard runs, analyses (one of untrained cells, one with an
    old summary.json that does not say so, whose CSV does), the open decisions and a gallery."""
    root = tmp_path_factory.mktemp("readable")
    expected = standard_results(root / "results" / "runs")
    table(root / "results")  # MAML sinusoid 5-shot baseline seeds 0-2 (adds to the standard ones)
    write_point(root / "results", "heads", "heads-8", 0, 0.41)  # 1 paired seed: not judged
    _analyses(root / "analyses")
    shutil.rmtree(root / "analyses" / "depth")  # replaced by the real analysis of untrained runs
    _untrained_depth(root / "depth-runs", root / "analyses")
    old = root / "analyses" / "tradeoff"
    old.mkdir()
    pd.DataFrame({"method": ["baseline", "trlearner"], "mean": [2.0, 2.1], "ci95": [0.1, 0.1],
                  "delta_mse": [None, 0.1], "delta_ci95": [None, 0.05], "learned": [False, False]}
                 ).to_csv(old / "tradeoff.csv", index=False)
    (old / "summary.json").write_text(json.dumps({
        "analysis": "tradeoff", "claim": "TRLearner is slightly slower.", "agrees": False,
        "verdict": "does not reproduce the paper's claim: TRLearner takes 1.10x the baseline's time"}))
    for split in ("train", "test"):
        episode_picture("sinusoid", split, root / "gallery", shots=5)
    out = root / "reports"
    text = write_report(root / "results" / "runs", out, expected=expected, analyses_dir=root / "analyses",
                        gallery_dir=root / "gallery").read_text()
    return out, text


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    end2 = text.find("\n## ", start + len(heading))
    return text[start:min(e for e in (end, end2, len(text)) if e >= 0)]


def test_an_analysis_whose_cells_did_not_learn_could_not_be_tested(report):
    _, text = report
    for title in ("### Meta-layer depth", "### tradeoff"):
        part = _section(text, title)
        assert part.splitlines()[0] == f"{title}: could not be tested at this budget", part
        flat = " ".join(part.split())
        assert "does not reproduce" not in flat and "agrees with the paper" not in flat
        assert "**Could not be tested at this budget**" in flat
    assert "4 of 4 cells did not learn" in " ".join(_section(text, "### Meta-layer depth").split())
    assert "2 of 2 cells did not learn" in " ".join(_section(text, "### tradeoff").split())
    # the analysis itself says so: agrees is null, the verdict opens with the budget, not a verdict
    summary = json.loads((report[0].parent / "analyses" / "depth" / "summary.json").read_text())
    assert summary["agrees"] is None and summary["verdict"].startswith("could not be tested at this budget: 4 of 4")
    assert len(summary["not_learned"]) == 4 and summary["n_cells"] == 4
    # an analysis that does not know whether its cells learned keeps its own verdict
    assert "### motivation\n" in text and "Measured: underfits." in text


def test_no_prose_line_is_longer_than_200_characters(report):
    _, text = report
    long = [line for line in text.splitlines() if len(line) > MAX_LINE and not line.startswith("|")]
    assert not long, [line[:80] for line in long]
    assert len(text.splitlines()) > 100  # the report has every section


def test_seed_columns_say_they_count_seeds(report):
    _, text = report
    headers = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
               if line.startswith("| ") and not line.startswith("|:")]
    named = {c for h in headers for c in h}
    assert "seeds" not in named and "seed" not in named
    decisions = text[text.index("## Open decisions of the paper"):text.index("## Summary")]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in decisions.splitlines() if line.startswith("| ")}
    head = rows["interpretation"]
    assert head[1] == "paired seeds"
    assert rows["heads = 8"][1] == "1"  # one seed with both runs ok: counted, not judged
    # cells.csv: a count is `n`, a list of seed ids says it is one
    cells = pd.read_csv(report[0] / "cells.csv", dtype=str)
    assert {"n", "seed_ids", "expected_seed_ids"} <= set(cells.columns) and "seeds" not in cells.columns
    row = cells.set_index("cell").loc["sinusoid/5shot/maml/baseline"]
    assert row["seed_ids"] == "0 1 2" and row["n"] == "3"


def test_every_link_of_the_report_resolves_beside_it(report):
    out, text = report
    targets = [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]
    assert f"{FORMAT_DOC}" in targets
    missing = [t for t in targets if not (out / t.split("#")[0]).is_file()]
    assert not missing, missing
    assert "docs/REPORT_FORMAT.md" not in text
    beside = (out / FORMAT_DOC).read_text()
    assert "# Report format" in beside
    # its own links to the repository's other documents are text there (they are not beside it)
    assert not [t for t in LINK.findall(beside) if not re.match(r"[a-z]+:|#", t)]
    html = (out / "REPORT.html").read_text()
    assert f'href="{FORMAT_DOC}"' in html


def test_the_format_doc_ships_in_the_package():
    packaged = files("trlearner.report") / FORMAT_DOC
    assert packaged.is_file()
    assert packaged.read_text(encoding="utf-8") == (REPO / "docs" / FORMAT_DOC).read_text(encoding="utf-8")
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["trlearner"]
    assert f"report/{FORMAT_DOC}" in data  # tests/test_install.py checks the wheel holds it

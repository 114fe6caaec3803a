"""One home for run records (issue 24, item 4): the analyses and the report read the same
folders with one reader and validator and give the same cell the same mean and CI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_analysis_outputs import fake_metrics, put  # noqa: E402

from trlearner.analysis.common import cell_stats, load_runs, paired_diff  # noqa: E402
from trlearner.run.records.scan import load_runs as scan_load_runs  # noqa: E402
from trlearner.run.records.stats import aggregate_cells, paired_differences  # noqa: E402


@pytest.mark.parametrize("seeds", [(0,), (0, 1), (0, 1, 2)])
def test_the_same_cell_gets_the_same_ci_in_the_analyses_and_the_report(tmp_path, seeds):
    """1, 2 and 3 seeds (the analyses used 1.96 sd over tasks below 3 seeds, the report t from 2)."""
    for s in seeds:
        put(tmp_path, f"sinusoid/5shot/maml/baseline/seed{s}", fake_metrics(seed=s, mean=1.0 + 0.1 * s))
        put(tmp_path, f"sinusoid/5shot/maml/trlearner/seed{s}",
            fake_metrics(seed=s, variant="trlearner", mean=0.9 + 0.15 * s))
    report = aggregate_cells(scan_load_runs(tmp_path)).set_index("variant")
    effect = paired_differences(scan_load_runs(tmp_path)).iloc[0]
    rs = load_runs(tmp_path)
    by_variant = {v: rs.select(lambda r, v=v: r.metrics["variant"] == v) for v in ("baseline", "trlearner")}
    for variant, runs in by_variant.items():
        st = cell_stats(runs)
        assert st["mean"] == pytest.approx(report.loc[variant, "mean"], abs=1e-12)
        assert st["ci95"] == pytest.approx(report.loc[variant, "ci95"], abs=1e-12)
        assert st["ci_basis"] == report.loc[variant, "ci_kind"]
    d = paired_diff(by_variant["trlearner"], by_variant["baseline"])
    assert d["diff"] == pytest.approx(effect["diff"], abs=1e-12)
    assert d["ci95"] == pytest.approx(effect["ci95"], abs=1e-12, nan_ok=True)


def test_a_tampered_record_is_used_by_neither(tmp_path):
    """A stored ci95 edited to 0.0001 (the per-task values give another) is refused by the
    report's validator, and now by the analyses' reader too, which names it."""
    m = fake_metrics(seed=0)
    m["ci95"] = 0.0001
    put(tmp_path, "baseline/seed0", m)
    put(tmp_path, "baseline/seed1", fake_metrics(seed=1))
    rs = load_runs(tmp_path)
    assert [r.rel for r in rs.runs] == ["baseline/seed1"]
    assert rs.incomplete == ["baseline/seed0 (invalid record: stored ci95 0.0001 is not that of its per-task "
                             "values (" + rs.incomplete[0].split("values (")[1]]
    assert "tampered" in rs.incomplete[0]
    bad = json.loads((tmp_path / "baseline/seed0/metrics.json").read_text())
    bad.pop("per_task")  # breaks the schema
    (tmp_path / "baseline/seed0/metrics.json").write_text(json.dumps(bad))
    assert load_runs(tmp_path).incomplete[0].startswith("baseline/seed0 (invalid record: per_task")

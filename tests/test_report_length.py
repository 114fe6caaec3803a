"""REPORT.md is short and carries no more digits than its CIs support: the standard result set
plus every analysis (with their raw CSVs of 16-digit floats and a large relation matrix)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from test_report_fixtures import standard_results  # noqa: E402

from trlearner.report.render import write_report  # noqa: E402
from trlearner.report.rounding import ci_decimals, format_ci  # noqa: E402

PM = re.compile(r"([+\-−]?\d+(?:\.\d+)?) ± (\d+(?:\.\d+)?)")
MAX_LINES = 400


def _decimals(s: str) -> int:
    return len(s.split(".")[1]) if "." in s else 0


def _sig_digits(s: str) -> int:
    digits = s.replace(".", "").lstrip("0")
    return len(digits) if "." in s else len(s.rstrip("0") or "0")


def _analyses(root: Path) -> None:
    rng = np.random.default_rng(0)
    depth = root / "depth"
    depth.mkdir(parents=True)
    pd.DataFrame({"variant": ["baseline"] * 3 + ["trlearner"] * 3, "meta_layers": [1, 2, 3] * 2,
                  "mean": rng.random(6) + 1, "ci95": rng.random(6) / 10, "seed_sd": [np.nan] * 6,
                  "diff_vs_baseline": [np.nan] * 3 + list(rng.random(3) / 100),
                  "diff_ci95": [np.nan] * 3 + [0.05] * 3}).to_csv(depth / "depth.csv", index=False)
    (depth / "summary.json").write_text(json.dumps({"analysis": "depth", "claim": "c",
                                                    "verdict": "ΔMSE -0.123456 ± 0.0456789; ρ=nan"}))
    (depth / "depth.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    rel = root / "relations"
    rel.mkdir()
    pd.DataFrame({"variant": ["k_heads"], "heads": [4], "mean": [4.610125013627112],
                  "ci95": [1.8659468347470423]}).to_csv(rel / "relations.csv", index=False)
    pd.DataFrame({"variant": "k_heads", "i": np.repeat(np.arange(40), 40), "j": np.tile(np.arange(40), 40),
                  "m_ij": rng.random(1600)}).to_csv(rel / "relations_matrix.csv", index=False)
    (rel / "summary.json").write_text(json.dumps({"analysis": "relations", "verdict": "lowest (2.0000)"}))
    mot = root / "motivation"
    mot.mkdir()
    rows = [dict(family=f, variant=v, iteration=it, train_mse=1 / it + 0.1 * (v == "trlearner"),
                 val_mse=2 / it, n_seeds=3, train_lo=0.9 / it, train_hi=1.1 / it, val_lo=1.9 / it, val_hi=2.1 / it)
            for f in ("d1", "d4") for v in ("baseline", "trlearner") for it in range(10, 1010, 10)]
    pd.DataFrame(rows).to_csv(mot / "motivation.csv", index=False)
    (mot / "summary.json").write_text(json.dumps({"analysis": "motivation", "verdict": "underfits"}))


def test_report_is_short_and_rounded_to_its_cis(tmp_path):
    expected = standard_results(tmp_path / "runs")
    _analyses(tmp_path / "analyses")
    text = write_report(tmp_path / "runs", tmp_path / "reports", expected=expected,
                        analyses_dir=tmp_path / "analyses").read_text()
    assert len(text.splitlines()) < MAX_LINES
    assert text.index("## Claims and verdicts") < text.index("## Summary") < text.index("## Main results") \
        < text.index("## Tables") < text.index("## Analyses")
    assert "![main results](figures/main_results.png)" in text
    assert (tmp_path / "reports" / "figures" / "main_results.pdf").exists()
    # raw CSVs are linked, never inlined
    assert "[relations_matrix.csv](../analyses/relations/relations_matrix.csv)" in text
    assert "4.610125013627112" not in text and "| 39 " not in text
    assert not re.search(r"\bnan\b", text, flags=re.I) and "seed_sd" not in text
    # no number carries more digits than its CI supports ...
    # (the context tables copy the baselines' published numbers as their authors printed them)
    ours = re.sub(r"\*\*Context:.*?\n\n(\|.*\n)+", "", text)
    assert "48.70 ± 1.84" in text and "48.70 ± 1.84" not in ours
    pairs = PM.findall(ours)
    assert len(pairs) > 20
    for mean, half in pairs:
        assert _decimals(mean) == _decimals(half), (mean, half)
        assert _sig_digits(half) <= 2 or _decimals(half) == 0, (mean, half)
    # ... and no long float outside the ± pairs (numbers standing alone; the arXiv id aside)
    rest = PM.sub("", ours).replace("2409.08474", "")
    long = re.findall(r"(?<![\w.])[+\-−]?\d+\.\d{5,}(?![\w.])", rest)
    assert not long, long[:5]


def test_hand_computed_roundings():
    # 0.248 -> 2 significant digits 0.25, mean 0.600 -> 0.60; 0.0996 rounds to 0.10 (2 decimals)
    assert format_ci(0.6, 0.248) == "0.60 ± 0.25"
    assert format_ci(0.1234, 0.0996) == "0.12 ± 0.10"
    assert format_ci(95.0, 5.66) == "95.0 ± 5.7"
    assert format_ci(-0.0206, 0.0174, sign=True) == "-0.021 ± 0.017"
    assert format_ci(123.4, 56.0) == "123 ± 56"
    assert ci_decimals(None, fallback=2) == 2 and ci_decimals(0.0, fallback=3) == 3

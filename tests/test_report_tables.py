"""Golden and behaviour tests of the report tables and REPORT.md.

Regenerate the golden files after an intended change with
``UPDATE_GOLDEN=1 pytest tests/test_report_tables.py`` and review the diff.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report_fixtures import standard_results, write_run  # noqa: E402

from trlearner.report import cli  # noqa: E402
from trlearner.report.reference import Reference  # noqa: E402
from trlearner.report.render import write_report  # noqa: E402
from trlearner.run.records.scan import load_runs  # noqa: E402
from trlearner.report.tables import build_tables, load_expected, render_family  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
T_975_2 = 4.302652729911275   # Student-t 0.975 quantile, 2 degrees of freedom (tables)


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"golden file {path} missing; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from the golden file"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The standard result set rendered once per module; returns (folder, REPORT.md text)."""
    tmp_path = tmp_path_factory.mktemp("report")
    expected = standard_results(tmp_path / "results" / "runs")
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    figures = tmp_path / "reports" / "figures"
    figures.mkdir(parents=True)
    (figures / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (figures / "curve.caption.md").write_text("MSE against inner steps.\n")
    path = write_report(tmp_path / "results" / "runs", tmp_path / "reports",
                        expected=tmp_path / "expected.json", figures_dir=figures,
                        relative_to=tmp_path)
    return tmp_path, path.read_text()


def _tables(tmp_path):
    runs = load_runs(tmp_path / "results" / "runs", relative_to=tmp_path)
    expected = load_expected(tmp_path / "expected.json")
    return {t.family: t for t in build_tables(runs, expected, Reference.load())}


def test_golden_markdown_tables(report):
    tmp_path, _ = report
    for family in ("regression", "classification", "meta_dataset"):
        text = (tmp_path / "reports" / "tables" / f"{family}.md").read_text()
        _check_golden(f"{family}.md", text)


def test_golden_report(report):
    _, text = report
    _check_golden("REPORT.md", text)


def test_output_is_stable(report):
    tmp_path, first = report
    again = write_report(tmp_path / "results" / "runs", tmp_path / "again",
                         expected=tmp_path / "expected.json",
                         figures_dir=tmp_path / "reports" / "figures", relative_to=tmp_path)
    # the figure path is relative to the output folder, the rest must be identical
    assert again.read_text().replace("../reports/figures/", "figures/") == first
    for fmt in ("md", "tex", "html"):
        assert (tmp_path / "again" / "tables" / f"regression.{fmt}").read_text() == \
            (tmp_path / "reports" / "tables" / f"regression.{fmt}").read_text()


def test_paper_column(report):
    tmp_path, _ = report
    sinus = _tables(tmp_path)["regression"].sections[1]
    assert sinus.caption.startswith("sinusoid")
    frame = sinus.frame
    assert frame.loc["MAML", ("5shot", "paper")] == "0.593 (in our CI)"
    assert frame.loc["MAML + TRLearner", ("5shot", "paper")] == "0.400 (in our CI)"
    assert frame.loc["MAML", ("10shot", "paper")] == "n/a"
    assert frame.loc["MAML + TRLearner", ("10shot", "paper")] == "n/a"
    harmonic = _tables(tmp_path)["regression"].sections[0].frame
    assert set(harmonic.xs("paper", axis=1, level=1).stack()) == {"n/a"}
    omni = _tables(tmp_path)["classification"].sections[1].frame
    assert set(omni.xs("paper", axis=1, level=1).stack()) == {"n/a"}


def test_cells_show_value_ci_n_and_difference(report):
    tmp_path, _ = report
    frame = _tables(tmp_path)["regression"].sections[1].frame
    assert frame.loc["MAML", ("5shot", "ours")] == "0.60 ± 0.25 (n=3)"
    assert frame.loc["MAML + TRLearner", ("5shot", "ours")] == "0.46 ± 0.16 (n=3)"
    assert frame.loc["MAML + TRLearner", ("5shot", "Δ vs baseline")] == "-0.140 ± 0.090 (p=0.021, n=3)"
    assert frame.loc["MAML", ("5shot", "Δ vs baseline")] == ""
    assert frame.loc["MAML", ("10shot", "ours")] == "0.300 ± 0.080 (n=1, task CI)"
    assert frame.loc["MAML + TRLearner", ("10shot", "Δ vs baseline")] == \
        "-0.050 ± 0.057 (p=0.067, 4 tasks, 1 seed)"


def test_reduced_protocol_is_marked_and_not_judged(tmp_path):
    for seed, (b, t) in enumerate([(0.5, 0.40), (0.6, 0.45), (0.7, 0.53)]):
        write_run(tmp_path / "runs", "sinusoid", "maml", "baseline", seed, shots=5,
                  per_task=[b - 0.1, b + 0.1], reduced=True)
        write_run(tmp_path / "runs", "sinusoid", "maml", "trlearner", seed, shots=5,
                  per_task=[t - 0.1, t + 0.1], reduced=True)
    text = write_report(tmp_path / "runs", tmp_path / "out", relative_to=tmp_path).read_text()
    frame = build_tables(load_runs(tmp_path / "runs"), None, Reference.load())[0].sections[0].frame
    assert frame.loc["MAML", ("5shot", "ours")] == "0.60 ± 0.25 (n=3) †"
    assert frame.loc["MAML", ("5shot", "paper")] == "0.593 (not judged †)"
    assert frame.loc["MAML + TRLearner", ("5shot", "paper")] == "0.400 (not judged †)"
    assert frame.loc["MAML + TRLearner", ("5shot", "Δ vs baseline")].endswith("†")
    assert "in our CI" not in frame.to_string()
    claims = text.split("**Could not be tested**")[1].split("## Tables")[0]
    assert "MAML on sinusoid 5shot" in claims and "reduced protocol" in claims
    assert "Verdict: compatible" not in text and "Verdict: incompatible" not in text


def test_a_cell_of_another_experiment_points_to_its_table(tmp_path):
    """Two experiments on one dataset and setting (the default preset's known cell and the rest
    of its row): the second table's square of the first's cell points to the first table, with
    no paper value or effect of its own (it showed 'not in this preset' beside the known cell's
    effect)."""
    cells = [("maml", 5, "main"), ("maml", 10, "rest"), ("metasgd", 5, "rest")]
    for seed in range(3):
        for algorithm, shots, _ in cells:
            for variant, mse in (("baseline", 0.6 + 0.01 * seed), ("trlearner", 0.5 + 0.02 * seed * seed)):
                write_run(tmp_path / "runs", "sinusoid", algorithm, variant, seed, shots=shots,
                          per_task=[mse - 0.1, mse + 0.1])
    expected = [{"dataset": "sinusoid", "setting": f"{k}shot", "algorithm": a, "variant": v, "seeds": [0, 1, 2],
                 "family": family} for a, k, family in cells for v in ("baseline", "trlearner")]
    tables = {t.family: t for t in build_tables(load_runs(tmp_path / "runs"), expected, Reference.load())}
    main, rest = tables["main"].sections[0].frame, tables["rest"].sections[0].frame
    assert main.loc["MAML", ("5shot", "ours")].startswith("0.6")
    assert main.loc["MAML + TRLearner", ("5shot", "paper")].startswith("0.400")
    for label in ("MAML", "MAML + TRLearner"):
        assert list(rest.loc[label, "5shot"]) == ["in the main table", "", ""]
    assert rest.loc["MetaSGD + TRLearner", ("5shot", "Δ vs baseline")] == "-0.077 ± 0.080 (p=0.054, n=3)"
    assert "MetaSGD" not in main.index


def test_the_default_preset_has_one_table_per_family_not_per_experiment():
    """The default preset's known cell and the rest of its row are two experiments
    (regression_main, regression_rest, regression_anil): the report shows them in one titled
    regression table, with the Omniglot cells under image classification."""
    import pandas as pd
    import yaml

    from trlearner.pipeline.check import check_config

    root = Path(__file__).resolve().parents[1]
    matrix = check_config(yaml.safe_load((root / "config" / "default.yaml").read_text()))
    expected = matrix.expected_cells()
    assert {c["experiment"] for c in expected} >= {"regression_main", "regression_rest"}
    tables = {t.family: t for t in build_tables(pd.DataFrame(columns=["dataset", "setting", "algorithm", "variant",
                                                                      "status"]), expected, Reference.load())}
    assert set(tables) == {"regression", "classification", "meta_dataset"}  # meta_dataset: paper values only
    sinusoid = tables["regression"].sections[0]
    assert sinusoid.caption.startswith("sinusoid")
    assert {"MAML", "ANIL", "MetaSGD", "T-NET"} <= set(sinusoid.frame.index)
    assert tables["regression"].title == "Regression (Sinusoid, Harmonic)"


def test_provenance_counts_config_hashes_and_names_the_data_read(tmp_path):
    """One config hash per run is counted, not listed (88 of them made a 5,000-character line);
    the data table gives the content hash of the files read, the episode table the test-episode
    hash per setting with the algorithms that share it."""
    for seed in range(5):
        run = write_run(tmp_path / "runs", "omniglot", "maml" if seed < 3 else "protonet", "baseline", seed,
                        shots=1, ways=5, per_task=[50.0 + seed, 60.0], metric="accuracy")
        data = {"dataset": "omniglot", "kind": "archive", "content_hash": "c0dc32bd5cd61df742a1cbfd"}
        prov = {"git_commit": "abc1234", "git_dirty": False, "config_hash": f"cfg{seed}", "device": "cpu",
                "data": {"train": data, "test": data}}
        (run / "provenance.json").write_text(json.dumps(prov))
        if seed >= 3:  # ProtoNet's protocol draws 15 test queries, MAML's 1: other test episodes
            metrics = json.loads((run / "metrics.json").read_text())
            (run / "metrics.json").write_text(json.dumps({**metrics, "episodes_hash": "ep-proto"}))
    prov = write_report(tmp_path / "runs", tmp_path / "out").read_text().split("## Provenance")[1]
    assert "- Config hash: 5 distinct over 5 runs" in prov and "cfg0" not in prov
    assert "| omniglot  | c0dc32bd5cd61df7 | 5      |" in prov
    assert "| omniglot  | 5way1shot | ep-omniglot-5way1shot | maml         | 3      |" in prov
    assert "| omniglot  | 5way1shot | ep-proto              | protonet     | 2      |" in prov


def test_diverged_cell_says_diverged(report):
    tmp_path, text = report
    frame = _tables(tmp_path)["regression"].sections[0].frame
    assert frame.loc["MAML + TRLearner", ("5shot", "ours")] == "diverged at iteration 1234"
    assert not re.search(r"\bnan\b", text.lower())


def test_diverged_paper_cell_cannot_be_judged(tmp_path):
    write_run(tmp_path / "runs", "sinusoid", "maml", "baseline", 0, shots=5, per_task=[0.5, 0.6])
    write_run(tmp_path / "runs", "sinusoid", "maml", "trlearner", 0, shots=5, mean=None,
              per_task=[], status="diverged", diverged_at=77)
    text = write_report(tmp_path / "runs", tmp_path / "out", relative_to=tmp_path).read_text()
    assert "+ TRLearner: diverged at iteration 77" in text
    assert "| MAML + TRLearner | diverged at iteration 77" in text


def test_missing_cells_are_listed_with_reasons(report):
    _, text = report
    missing = text.split("## Missing cells")[1].split("## Run checks")[0]
    rows = {tuple(c.strip() for c in line.strip("|").split("|")) for line in missing.splitlines()
            if line.startswith("| ") and not line.startswith("| dataset")}
    assert ("miniimagenet", "5way1shot", "maml", "baseline", "data unavailable") in rows
    assert ("omniglot", "5way1shot", "maml", "trlearner", "not run") in rows
    assert ("omniglot", "5way1shot", "protonet", "baseline",
            "failed: see results/runs/omniglot/5way1shot/protonet/baseline/seed0/log.txt") in rows
    assert ("harmonic", "5shot", "maml", "trlearner", "diverged at iteration 1234") in rows
    assert "Known paper cells not in this preset (4): meta_dataset ood, meta_dataset overall." in missing
    assert not any(r[:2] == ("sinusoid", "5shot") for r in rows)


def test_summary_claims_and_provenance(report):
    _, text = report
    summary = " ".join(text.split("## Tables")[0].split())  # as one line: the report wraps long lines
    assert "14 runs found: 12 completed, 1 diverged, 1 failed" in summary
    assert "Total wall time: 0h 02m 10s" in summary
    assert "Rule: a known cell is **compatible** with the paper when the paper's effect" in summary
    compatible = summary.split("**Compatible with the paper**")[1].split("**Incompatible with the paper**")[0]
    assert "MAML on sinusoid 5shot" in compatible
    assert "the paper's 0.593 lies inside our CI" in compatible
    # d = -0.10, -0.15, -0.17: -0.140 ± 4.3027 * sqrt(0.0013) / sqrt(3) = ± 0.090
    assert ("ours -0.140 ± 0.090, 95 % CI [-0.230, -0.050] (paired over 3 seeds); "
            "the paper's -0.193 lies inside our CI") in compatible
    assert "Smallest effect 3 seeds could detect: 0.118 (sd of the differences 0.036" in compatible
    assert "same sign as the paper; our CI excludes 0 (p=0.021)" in compatible
    assert "Verdict: compatible with the paper." in compatible
    assert "Verdict: supported." in summary.split("### General claim")[1]
    untested = summary.split("**Could not be tested**")[1]
    assert "MAML on meta_dataset overall" in untested and "MAML on meta_dataset ood" in untested
    prov = text.split("## Provenance")[1]
    assert "`abc1234` (clean, 13 runs)" in prov and "cfg0001" in prov and "torch" in prov
    assert "![MSE against inner steps.](figures/curve.png)" in text


def _sinusoid_maml_report(tmp_path, pairs, reference=None) -> str:
    """REPORT.md of MAML sinusoid 5-shot runs: one (baseline, TRLearner) value per seed."""
    for seed, (b, t) in enumerate(pairs):
        write_run(tmp_path / "runs", "sinusoid", "maml", "baseline", seed, shots=5, per_task=[b, b])
        write_run(tmp_path / "runs", "sinusoid", "maml", "trlearner", seed, shots=5, per_task=[t, t])
    return write_report(tmp_path / "runs", tmp_path / "out", reference=reference).read_text()


def _claim(text: str, verdict_title: str) -> str:
    """The claims listed under one verdict heading of REPORT.md, as one line (the report wraps
    its long lines)."""
    return " ".join(text.split(f"**{verdict_title}**")[1].split("**")[0].split())


def _with_paper_effect(effect: float) -> Reference:
    """The packaged reference with the sinusoid cell's paper values set to 0.6 and 0.6 + effect."""
    ref = Reference.load()
    paper = [dict(e) for e in ref.paper]
    for e in paper:
        if (e["dataset"], e["setting"]) == ("sinusoid", "5shot"):
            e["value"] = 0.6 + effect if e["variant"] == "trlearner" else 0.6
    return dataclasses.replace(ref, paper=paper)


def test_verdict_rule_is_the_paper_effect_against_our_ci():
    from trlearner.run.records.stats import effect_verdict

    assert effect_verdict(-0.193, -0.140, 0.090, 3) == "compatible"      # [-0.230, -0.050]
    assert effect_verdict(-0.193, -0.100, 0.090, 3) == "incompatible"    # [-0.190, -0.010]
    assert effect_verdict(-0.125, -0.25, 0.125, 2) == "compatible"       # on the boundary: inside
    assert effect_verdict(-0.124, -0.25, 0.125, 2) == "incompatible"
    assert effect_verdict(-0.193, -0.140, 0.090, 1) == "could not be tested"
    assert effect_verdict(-0.193, float("nan"), float("nan"), 3) == "could not be tested"


def test_opposite_sign_is_incompatible(tmp_path):
    # d = 0.10, 0.12, 0.09: +0.103 ± 4.3027 * 0.015275 / sqrt(3) = ± 0.038, CI [+0.065, +0.141];
    # the paper's -0.193 is outside
    block = _claim(_sinusoid_maml_report(tmp_path, [(0.5, 0.60), (0.6, 0.72), (0.7, 0.79)]),
                   "Incompatible with the paper")
    assert "MAML on sinusoid 5shot" in block and "95 % CI [+0.065, +0.141]" in block
    assert "opposite sign as the paper" in block and "Verdict: incompatible with the paper." in block


def test_measured_seeds_of_both_machines_give_the_same_verdict(tmp_path):
    """Issue 15: AMD EPYC and Intel Xeon seeds. 'Not reproduced' and 'partially reproduced'
    before; by the CI rule both are incompatible with the paper's -0.193."""
    amd = _sinusoid_maml_report(tmp_path / "amd", [(0.650, 0.583), (0.632, 0.601), (0.569, 0.607)])
    # d = -0.067, -0.031, +0.038: -0.020 ± 4.3027 * 0.05336 / sqrt(3) = ± 0.133
    block = _claim(amd, "Incompatible with the paper")
    assert "ours -0.02 ± 0.13, 95 % CI [-0.15, +0.11] (paired over 3 seeds)" in block
    assert "our CI contains 0 (p=0.583)" in block
    intel = _sinusoid_maml_report(tmp_path / "intel", [(0.6118, 0.5870), (0.6158, 0.5914), (0.6010, 0.5885)])
    # d = -0.0248, -0.0244, -0.0125: -0.0206 ± 4.3027 * 0.006989 / sqrt(3) = ± 0.0174
    block = _claim(intel, "Incompatible with the paper")
    assert "ours -0.021 ± 0.017, 95 % CI [-0.038, -0.003] (paired over 3 seeds)" in block
    assert "same sign as the paper; our CI excludes 0 (p=0.036)" in block
    for text in (amd, intel):
        assert _claim(text, "Compatible with the paper").split() == ["(0)", "-", "none"]


def test_paper_effect_on_the_ci_boundary_is_compatible(tmp_path):
    pairs = [(0.5, 0.40), (0.6, 0.45), (0.7, 0.53)]           # d = -0.10, -0.15, -0.17
    half = T_975_2 * math.sqrt(0.0013) / math.sqrt(3)          # sd(d) = sqrt(0.0013)
    text = _sinusoid_maml_report(tmp_path / "on", pairs, _with_paper_effect(-0.14 - half))
    assert "Verdict: compatible with the paper." in _claim(text, "Compatible with the paper")
    text = _sinusoid_maml_report(tmp_path / "off", pairs, _with_paper_effect(-0.14 - half - 0.001))
    assert "Verdict: incompatible with the paper." in _claim(text, "Incompatible with the paper")


def test_one_seed_is_not_judged(tmp_path):
    # one seed each, paired over its 2 test tasks: a CI that leaves out the seed spread
    root = tmp_path / "runs"
    write_run(root, "sinusoid", "maml", "baseline", 0, shots=5, per_task=[0.6, 0.62])
    write_run(root, "sinusoid", "maml", "trlearner", 0, shots=5, per_task=[0.4, 0.41])
    text = write_report(root, tmp_path / "out").read_text()
    block = _claim(text, "Could not be tested")
    assert "MAML on sinusoid 5shot" in block and "paired over the 2 test tasks of 1 seed" in block
    assert "Not judged: a verdict needs at least 2 seeds of each variant" in block
    assert _claim(text, "Compatible with the paper").split() == ["(0)", "-", "none"]


def test_a_missing_variant_cannot_be_tested(tmp_path):
    root = tmp_path / "runs"
    for seed, b in enumerate([0.5, 0.6, 0.7]):
        write_run(root, "sinusoid", "maml", "baseline", seed, shots=5, per_task=[b, b])
    block = _claim(write_report(root, tmp_path / "out").read_text(), "Could not be tested")
    assert "MAML on sinusoid 5shot (mse, lower is better): could not be tested (+ TRLearner: not run)" in block


def test_latex_and_html_renderings(report):
    tmp_path, _ = report
    tex = (tmp_path / "reports" / "tables" / "regression.tex").read_text()
    assert r"\toprule" in tex and r"0.60 $\pm$ 0.25 (n=3)" in tex and r"\textdagger{}" in tex
    assert r"\multicolumn{3}{c}{5shot}" in tex and "±" not in tex.split(r"\begin{table}", 1)[1]
    html = (tmp_path / "reports" / "tables" / "regression.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    assert "0.593 (in our CI)" in html and html.count("<table") == 2
    assert re.search(r'id="T_regression_\d', html)  # fixed ids: stable output


def test_bad_expected_spec_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match="variant='both'"):
        load_expected([{"dataset": "sinusoid", "setting": "5shot", "algorithm": "maml", "variant": "both"}])
    with pytest.raises(ValueError, match="lacks"):
        load_expected([{"dataset": "sinusoid"}])


def test_reference_file_schema(tmp_path):
    ref = Reference.load()
    assert {(e["dataset"], e["setting"], e["variant"], e["value"]) for e in ref.paper} == {
        ("sinusoid", "5shot", "baseline", 0.593), ("sinusoid", "5shot", "trlearner", 0.400),
        ("meta_dataset", "overall", "baseline", 24.5), ("meta_dataset", "overall", "trlearner", 33.0),
        ("meta_dataset", "ood", "baseline", 19.2), ("meta_dataset", "ood", "trlearner", 29.5)}
    assert all(e["source"] for e in ref.paper + ref.context)
    assert all(e["source"].startswith("as reported by") for e in ref.context)
    assert ref.context_value("omniglot", "5way1shot", "anil") is None   # unknown: absent
    assert ref.context_value("miniimagenet", "5way1shot", "tnet")["value"] == 50.86
    bad = tmp_path / "bad.yaml"
    bad.write_text("paper:\n  - {dataset: sinusoid, setting: 5shot, algorithm: maml, variant: baseline, metric: mse}\n")
    with pytest.raises(ValueError, match=r"lacks \['value', 'source'\]"):
        Reference.load(bad)


def test_cli_standalone_and_register(tmp_path, capsys):
    standard_results(tmp_path / "results" / "runs")
    rc = cli.main(["--results", str(tmp_path / "results" / "runs"), "--out", str(tmp_path / "reports")])
    assert rc == 0 and (tmp_path / "reports" / "REPORT.md").exists()
    assert {p.name for p in (tmp_path / "reports" / "tables").iterdir()} >= {
        "regression.md", "regression.tex", "regression.html", "classification.md"}
    parser = argparse.ArgumentParser(prog="trlearner")
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    args = parser.parse_args(["report", "--results", str(tmp_path / "results" / "runs"),
                              "--out", str(tmp_path / "r2")])
    assert args.func(args) == 0 and (tmp_path / "r2" / "REPORT.md").exists()
    rc = cli.main(["--results", str(tmp_path), "--out", str(tmp_path / "r3"),
                   "--expected", str(tmp_path / "missing.json")])
    assert rc == 2 and "missing.json" in capsys.readouterr().err


def test_partial_results_render(tmp_path):
    """No results at all still gives a report that lists what is missing."""
    expected = [{"dataset": "sinusoid", "setting": "5shot", "algorithm": "maml", "variant": v}
                for v in ("baseline", "trlearner")]
    text = write_report(tmp_path / "none", tmp_path / "out", expected=expected).read_text()
    assert "0 runs found" in text and "| MAML             | not run" in text
    assert "0.593" in text and "0.400" in text


def test_analyses_are_a_figure_sentences_and_a_rounded_table_with_the_csv_linked(tmp_path):
    an = tmp_path / "an" / "depth"
    an.mkdir(parents=True)
    (an / "depth.csv").write_text("variant,meta_layers,mean,ci95,diff_vs_baseline,diff_ci95\n"
                                  "baseline,1,1.7249997166666668,0.03960408292068882,,\n"
                                  "trlearner,1,1.00500015,0.04909474242699877,-0.7199995666666668,0.061029182147648665\n")
    (an / "summary.json").write_text(json.dumps({"analysis": "depth", "verdict": "ΔMSE -0.7200 ± 0.0610"}))
    text = write_report(tmp_path / "none", tmp_path / "out", analyses_dir=tmp_path / "an").read_text()
    section = text.split("## Analyses")[1]
    assert "[depth.csv](../an/depth/depth.csv)" in section  # linked ...
    assert "1.7249997166666668" not in text and not re.search(r"\bnan\b", section)  # ... never inlined
    assert "| baseline  | 1             | 1.725 ± 0.040 | n/a" in section
    assert "-0.720 ± 0.061" in section and "ΔMSE -0.720 ± 0.061" in section
    assert not (tmp_path / "out" / "tables" / "analyses.md").exists()

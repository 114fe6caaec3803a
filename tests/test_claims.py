"""The report section on the paper's open decisions (trlearner.report.claims, config/claims.yaml).

Fixture runs are hand-written metrics.json files in the pipeline's layout (the helpers of
test_report_fixtures); every expected number below is computed by hand in the comments.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_report_fixtures import write_run  # noqa: E402

from trlearner.pipeline.check import check_config  # noqa: E402
from trlearner.pipeline.matrix import preset_roots  # noqa: E402
from trlearner.report.claims import (DEFAULTS_LABEL, claims_markdown, interpretation_effects,  # noqa: E402
                                     interpretation_runs)
from trlearner.report.reference import Reference  # noqa: E402
from trlearner.report.render import write_report  # noqa: E402
from trlearner.run.records.scan import scan_runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE = [0.60, 0.62, 0.58]          # baseline, seeds 0-2
DEFAULT = [0.58, 0.61, 0.57]       # d = -0.02, -0.01, -0.01
LAM1 = [0.40, 0.45, 0.38]          # d = -0.20, -0.17, -0.20
RANDOM = [0.55, 0.60, 0.50]        # d = -0.05, -0.02, -0.08


def write_point(results: Path, ablation: str, point: str, seed: int, mean: float, *,
                variant: str = "trlearner", reduced: bool = False, status: str = "ok") -> Path:
    """One ablation run at results/ablations/<ablation>/sinusoid/5shot/maml/<variant>/<point>/seed<N>."""
    stage = results / "_stage"
    values = dict(per_task=[mean, mean]) if status == "ok" else dict(mean=float("nan"), per_task=[], diverged_at=10)
    run = write_run(stage, "sinusoid", "maml", variant, seed, shots=5, reduced=reduced, status=status, **values)
    dest = results / "ablations" / ablation / "sinusoid" / "5shot" / "maml" / variant / point / f"seed{seed}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run), str(dest))
    shutil.rmtree(stage)
    return dest


def table(results: Path, base=BASE, default=DEFAULT) -> None:
    for seed, (b, t) in enumerate(zip(base, default)):
        write_run(results / "runs", "sinusoid", "maml", "baseline", seed, shots=5, per_task=[b, b])
        if t is not None:
            write_run(results / "runs", "sinusoid", "maml", "trlearner", seed, shots=5, per_task=[t, t])


def effects(results: Path):
    runs = scan_runs(results / "runs").runs
    frame = interpretation_effects(runs, interpretation_runs(results / "ablations"), Reference.load())
    return {r["interpretation"]: r for r in frame.to_dict("records")}


def test_paired_effects_against_the_same_baseline_by_hand(tmp_path):
    table(tmp_path)
    for seed, (lam1, rnd) in enumerate(zip(LAM1, RANDOM)):
        write_point(tmp_path, "lam", "lam-1.0", seed, lam1)
        write_point(tmp_path, "sampler", "sampler-random", seed, rnd)
    write_point(tmp_path, "sampler", "sampler-random", 3, 0.1)   # no baseline seed 3: not paired
    e = effects(tmp_path)
    t2 = 4.302653  # t(0.975; 2)
    # lam 1.0: mean -0.19, sd 0.017321, half 4.302653 * 0.017321 / sqrt(3) = 0.043027
    assert e["lam = 1.0"]["n"] == 3 and e["lam = 1.0"]["diff"] == pytest.approx(-0.19)
    assert e["lam = 1.0"]["ci95"] == pytest.approx(t2 * 0.0173205 / 3 ** 0.5, abs=1e-5)
    assert e["lam = 1.0"]["verdict"] == "compatible"       # [-0.233, -0.147] holds -0.193
    # sampler random: seeds 0-2 only; mean -0.05, sd 0.03, half 0.074524: [-0.125, +0.025]
    assert e["sampler = random"]["n"] == 3 and e["sampler = random"]["diff"] == pytest.approx(-0.05)
    assert e["sampler = random"]["ci95"] == pytest.approx(t2 * 0.03 / 3 ** 0.5, abs=1e-5)
    assert e["sampler = random"]["verdict"] == "incompatible"
    # the table's own TRLearner runs: mean -0.013333, sd 0.0057735, half 0.014343
    assert e[DEFAULTS_LABEL]["diff"] == pytest.approx(-0.0133333, abs=1e-6)
    assert e[DEFAULTS_LABEL]["ci95"] == pytest.approx(0.014343, abs=1e-5)
    assert e[DEFAULTS_LABEL]["verdict"] == "incompatible"
    assert e["lam = 1.0"]["paper_effect"] == pytest.approx(0.400 - 0.593)


def test_section_answers_both_questions(tmp_path):
    table(tmp_path)
    for seed, (lam1, rnd) in enumerate(zip(LAM1, RANDOM)):
        write_point(tmp_path, "lam", "lam-1.0", seed, lam1)
        write_point(tmp_path, "sampler", "sampler-random", seed, rnd)
    write_point(tmp_path, "heads", "heads-8", 0, 0.41)                 # 1 seed: not judged
    for seed, v in enumerate([0.40, 0.42, 0.39]):
        write_point(tmp_path, "iters", "iterations-500", seed, v, reduced=True)   # reduced: not judged
    text = claims_markdown(tmp_path / "runs", None)
    assert text.startswith("## Open decisions of the paper")
    assert "### MAML on sinusoid 5shot: paper's effect -0.193" in text
    assert "reach the paper's -0.193? **Yes**, 1 of 3 judged: lam = 1.0 (-0.190 ± 0.043)." in text
    # |-0.19 - (-0.193)| = 0.003
    assert ("Closest: **lam = 1.0**, effect -0.190 ± 0.043 (95 % CI [-0.233, -0.147], 3 seeds; "
            "0.003 from the paper's effect)") in text
    assert "Not judged: 2" in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "-0.050 ± 0.075" in rows["sampler = random"] and "[-0.125, +0.025]" in rows["sampler = random"]
    assert "incompatible" in rows["sampler = random"]
    assert "reduced protocol" in rows["iterations = 500"] and "could not be tested" in rows["iterations = 500"]
    assert "could not be tested" in rows["heads = 8"]
    # the seed column counts the paired seeds and says so ("seeds | 0" read as seed id 0; issue 25)
    cells = {k: [c.strip() for c in v.strip("|").split("|")] for k, v in rows.items()}
    assert cells["interpretation"][1] == "paired seeds"
    assert cells["heads = 8"][1] == "1" and cells["lam = 1.0"][1] == "3" and cells["defaults"][1] == "3"


def test_no_interpretation_reaches_the_paper(tmp_path):
    table(tmp_path)
    for seed, rnd in enumerate(RANDOM):
        write_point(tmp_path, "sampler", "sampler-random", seed, rnd)
    text = claims_markdown(tmp_path / "runs", None)
    assert "reach the paper's -0.193? **No**: the paper's effect lies outside the 95 % CI of all 2 judged" in text
    # distances: random |-0.05 + 0.193| = 0.143 < defaults |-0.0133 + 0.193| = 0.180
    assert "Closest: **sampler = random**, effect -0.050 ± 0.075 (95 % CI [-0.125, +0.025], 3 seeds; 0.143" in text


def test_a_diverged_seed_is_left_out_of_the_pairs_and_named(tmp_path):
    table(tmp_path)
    write_point(tmp_path, "lam", "lam-1.0", 0, LAM1[0])
    write_point(tmp_path, "lam", "lam-1.0", 1, LAM1[1])
    write_point(tmp_path, "lam", "lam-1.0", 2, 0.0, status="diverged")
    e = effects(tmp_path)["lam = 1.0"]
    # seeds 0 and 1: d = -0.20, -0.17: mean -0.185, sd 0.021213, half 12.7062 * 0.021213 / sqrt(2) = 0.1906
    assert e["n"] == 2 and e["diff"] == pytest.approx(-0.185)
    assert e["ci95"] == pytest.approx(12.7062 * 0.0212132 / 2 ** 0.5, abs=1e-4)
    assert e["note"] == "diverged: seed 2" and e["verdict"] == "compatible"


def test_baseline_variant_ablations_are_not_interpretations(tmp_path):
    table(tmp_path, default=[None, None, None])
    for seed, v in enumerate([0.5, 0.5, 0.5]):
        write_point(tmp_path, "iters", "iterations-100", seed, v, variant="baseline")
    assert claims_markdown(tmp_path / "runs", None) == ""


def test_section_is_empty_without_ablations_and_the_report_shows_it_with_them(tmp_path):
    table(tmp_path)
    assert claims_markdown(tmp_path / "runs", None) == ""
    plain = write_report(tmp_path / "runs", tmp_path / "out").read_text()
    assert "Open decisions of the paper" not in plain
    for seed, lam1 in enumerate(LAM1):
        write_point(tmp_path, "lam", "lam-1.0", seed, lam1)
    text = write_report(tmp_path / "runs", tmp_path / "out").read_text()
    # after the claims and verdicts of the summary, before the tables
    assert text.index("### General claim") < text.index("## Open decisions of the paper") < text.index("## Tables")
    # the ablation runs do not enter the table cells: the table's TRLearner still has 3 seeds
    assert "Closest: **lam = 1.0**" in text


def test_interpretations_of_one_seed_do_not_conflict_across_points(tmp_path):
    # the same seed at two points (different results) is two runs, not a conflict
    write_point(tmp_path, "lam", "lam-1.0", 0, 0.4)
    write_point(tmp_path, "lam", "lam-0.5", 0, 0.5)
    runs = interpretation_runs(tmp_path / "ablations")
    assert sorted(zip(runs["value"], runs["mean"])) == [("0.5", 0.5), ("1.0", 0.4)]
    assert set(runs["ablation"]) == {"lam"} and set(runs["key"]) == {"lam"}


# ----------------------------------------------------------------------- config/claims.yaml


def _claims_matrix():
    config = yaml.safe_load((ROOT / "config" / "claims.yaml").read_text())
    return config, check_config(config)


def test_claims_preset_runs_the_known_cell_at_the_operating_point_for_every_interpretation():
    from trlearner.report.sequential import LOOKS

    from trlearner.pipeline.sequential import decided

    config, matrix = _claims_matrix()
    matrix = decided(matrix, {})  # the first look of every arm (the rule adds the others)
    op = yaml.safe_load((ROOT / "config" / "operating_point.yaml").read_text())
    main = config["experiments"]["regression_main"]
    # the operating point's cell, protocol, seeds and stacks: the same runs (same identities)
    for key in ("datasets", "settings", "algorithms", "protocol", "seeds", "sequential", "stack"):
        assert main[key] == op["experiments"]["regression_main"][key]
    assert main["protocol"] == {"reading": "torch_init"}
    assert main["seeds"] == list(range(LOOKS[0]))          # look 1 of the sequential rule
    base = {r.seed for r in matrix.table_runs if r.variant == "baseline"}
    assert base == set(main["seeds"])
    points = {}
    for r in matrix.ablation_runs:
        assert (r.dataset, r.setting, r.algorithm, r.variant) == ("sinusoid", "5shot", "maml", "trlearner")
        assert dict(r.protocol) == {"reading": "torch_init"} and r.path.startswith("results/claims/ablations/")
        points.setdefault(r.point, set()).add(r.seed)
    assert all(seeds == base for seeds in points.values())      # paired against the same seeds
    # every open decision with an alternative, never the default value (that is the table's run)
    assert set(points) == {"sampler-random", "weights-raw", "weights-softmax", "heads-1", "heads-8",
                           "lam-0.01", "lam-0.5", "lam-1.0", "meta_data-1", "meta_data-5",
                           "fixed_omega-True"}
    assert preset_roots(config) == ("results/claims", "reports/claims")   # never over `make run`'s
    assert "analyses" not in config


def test_claims_preset_shares_the_operating_points_runs():
    """regression_main of claims is operating_point's cell: equal identities, so the published
    operating-point records are the claims audit's baseline and default TRLearner."""
    _, claims = _claims_matrix()
    op = check_config(yaml.safe_load((ROOT / "config" / "operating_point.yaml").read_text()))
    ids = lambda m: sorted((r.variant, r.seed, r.identity_hash()) for r in m.table_runs)
    assert ids(claims) == ids(op)


def test_claims_preset_train_commands_set_each_decision():
    _, matrix = _claims_matrix()
    args = {r.point: r.train_args("claims", "cpu", "data") for r in matrix.ablation_runs if r.seed == 0}
    assert args["fixed_omega-True"][-1] != "True" and "--fixed-omega" in args["fixed_omega-True"]
    assert "True" not in args["fixed_omega-True"]
    i = args["weights-softmax"].index("--weights")
    assert args["weights-softmax"][i + 1] == "softmax"
    i = args["meta_data-5"].index("--meta-data")
    assert args["meta_data-5"][i + 1] == "5"


# ------------------------------------------------------- relation weights "softmax" (relation.py)


def test_softmax_weights_by_hand():
    import math

    import torch

    from trlearner.method.relation import relation_weights

    m = torch.tensor([[1.0, 0.5, -0.5], [0.5, 1.0, 0.0], [-0.5, 0.0, 1.0]], dtype=torch.float64)
    w = relation_weights(m, "softmax")
    # row 0: exp(0.5), exp(-0.5) over their sum = 1 / (1 + e^-1), 1 / (1 + e); the diagonal is out
    a = 1 / (1 + math.exp(-1.0))
    b = 1 / (1 + math.exp(-0.5))     # row 1: exp(0.5) against exp(0)
    c = 1 / (1 + math.exp(0.5))      # row 2: exp(-0.5) against exp(0)
    expected = torch.tensor([[0.0, a, 1 - a], [b, 0.0, 1 - b], [c, 1 - c, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(w, expected)
    # every weight positive, even for negative relations (relu would give the -0.5 pair ~0)
    assert (w + torch.eye(3, dtype=torch.float64) > 0).all()


def test_softmax_weights_train_and_reach_omega():
    import torch

    from trlearner.engine.algorithms import make_algorithm
    from trlearner.engine.backbones import mlp
    from trlearner.data.sources.dispatch import make_source
    from trlearner.method.relation import TRConfig, TRLearner

    algo = make_algorithm("maml", mlp([1, 40, 40], 1), "regression")
    trl = TRLearner(algo, TRConfig(lam=0.5, heads=2, weights="softmax"), shots=5)
    gen = torch.Generator().manual_seed(0)
    meta = {k: v.requires_grad_() for k, v in {**algo.init_params(gen, 0.01), **trl.init_params(gen)}.items()}
    out = trl.meta_loss(meta, make_source("sinusoid", "train", shots=5).batch(range(4)), steps=1, lr=0.01)
    grad = torch.autograd.grad(out.loss, meta["trl.omega"])[0]
    assert torch.isfinite(out.loss) and torch.isfinite(grad).all() and grad.abs().sum() > 0
    with pytest.raises(ValueError, match="softmax"):
        TRConfig(weights="softmx")

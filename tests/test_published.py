"""Published results (issue 26): records copied into results/published/<preset>/, the spot-check
that trains them again, and the README's verdict table generated from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trlearner.pipeline import published
from trlearner.pipeline.cli import main
from trlearner.run.stacked import train_stacked
from trlearner.run.config import resolve_config
from trlearner.run.train import train

REPO = Path(__file__).resolve().parents[1]
TINY = dict(dataset="sinusoid", algorithm="maml", shots=5, iterations=15, test_tasks=6, test_queries=10,
            curve_steps=2, device="cpu")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A preset's results folder in the real layout: a reduced calibration cell trained stacked
    (3 seeds of reading torch_init) and one single run."""
    root = tmp_path_factory.mktemp("results")
    cell = root / "ablations" / "reading" / "sinusoid" / "5shot" / "maml" / "baseline" / "reading-torch_init"
    cfgs = [resolve_config(**TINY, seed=s, reading="torch_init") for s in range(3)]
    train_stacked(cfgs, [cell / f"seed{s}" for s in range(3)], progress=False)
    train(resolve_config(**TINY, seed=4), root / "runs" / "sinusoid" / "5shot" / "maml" / "baseline" / "seed4",
          progress=False)
    (root / "runs" / "half").mkdir()  # a folder without a record is not published
    (root / "runs" / "half" / "metrics.json").write_text("{}")
    return root


def test_publish_copies_only_the_records_of_finished_runs(results, tmp_path):
    dest = tmp_path / "published" / "calibration"
    assert main(["publish", "--results", str(results), "--to", str(dest)]) == 0
    runs = published.records(dest)
    assert len(runs) == 4
    assert sorted({p.name for r in runs for p in r.iterdir()}) == ["metrics.json", "provenance.json"]
    assert (dest / "runs/sinusoid/5shot/maml/baseline/seed4/metrics.json").read_bytes() == \
        (results / "runs/sinusoid/5shot/maml/baseline/seed4/metrics.json").read_bytes()


def test_a_record_carries_what_a_rerun_and_its_comparison_need(results):
    prov = json.loads((results / "runs/sinusoid/5shot/maml/baseline/seed4/provenance.json").read_text())
    assert prov["cpu"] and prov["packages"]["torch"] and "torch_build" in prov and prov["code_hash"]
    cfg = published.run_config_of(prov)
    assert (cfg.iterations, cfg.seed, cfg.test_tasks) == (15, 4, 6)
    prov["config"]["iterations"] = 16  # an edited identity no longer matches its hash
    with pytest.raises(ValueError, match="hashes to"):
        published.run_config_of(prov)


def test_spot_check_reruns_single_and_stacked_records_bit_for_bit_on_this_machine(results, tmp_path, capsys):
    dest = tmp_path / "pub"
    published.publish(results, dest)
    checks = published.spot_check(dest, n=4, seed=0, work=tmp_path)
    assert [c.mode for c in checks] == ["bit for bit"] * 4 and all(c.passed for c in checks), checks
    assert main(["spot-check", "--published", str(dest), "-n", "1", "--seed", "3", "--work", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("PASS (bit for bit) ")


def test_spot_check_fails_a_record_whose_values_were_altered(results, tmp_path, capsys):
    dest = tmp_path / "pub"
    published.publish(results, dest)
    target = dest / "runs/sinusoid/5shot/maml/baseline/seed4/metrics.json"
    m = json.loads(target.read_text())
    m["per_task"][2] += 1e-6
    target.write_text(json.dumps(m))
    run = target.parent
    check = published.check_one(run, dest, tmp_path)
    assert not check.passed and "differ (largest difference 1e-06)" in check.detail


def test_on_another_cpu_the_rerun_is_judged_against_the_published_spread(results, tmp_path):
    dest = tmp_path / "pub"
    published.publish(results, dest)
    cell = dest / "ablations/reading/sinusoid/5shot/maml/baseline/reading-torch_init"
    for seed in cell.iterdir():  # as if published on another machine
        p = json.loads((seed / "provenance.json").read_text())
        p["cpu"] = "Some Other CPU"
        (seed / "provenance.json").write_text(json.dumps(p))
    check = published.check_one(cell / "seed1", dest, tmp_path)
    assert check.mode == "within the published spread" and check.passed, check
    assert "prediction interval of one more seed from 3 published seeds" in check.detail


def test_the_readme_table_is_what_the_published_records_give():
    """The README's verdict table equals `verdicts` over the committed records (make verdicts)."""
    readme = (REPO / "README.md").read_text()
    table = published.verdict_markdown(REPO / "results" / "published")
    assert published.readme_with_table(readme, table) == readme, "README.md's table is stale: run `make verdicts`"


def test_the_readme_table_is_rewritten_between_its_markers(tmp_path):
    text = f"intro\n{published.README_START}\nold\n{published.README_END}\nrest\n"
    assert published.readme_with_table(text, "| new |") == \
        f"intro\n{published.README_START}\n| new |\n{published.README_END}\nrest\n"
    with pytest.raises(ValueError, match="lacks the marker lines"):
        published.readme_with_table("no markers", "x")


def test_the_verdict_table_gives_each_published_interpretation_its_effect_and_look(tmp_path):
    """Hand-computed: baseline seeds 0-3 at 0.60..0.63; the interpretation lam = 1.0 at +0.01 each
    (effect +0.010, sd 0: the CI excludes -0.193: incompatible, and the rule stops at 4 seeds)."""
    from test_report_fixtures import write_run

    preset = tmp_path / "published" / "claims"
    for seed in range(4):
        base = 0.60 + 0.01 * seed
        write_run(preset / "runs", "sinusoid", "maml", "baseline", seed, shots=5, per_task=[base - 0.1, base + 0.1])
        write_run(preset / "runs", "sinusoid", "maml", "trlearner", seed, shots=5, per_task=[base - 0.1, base + 0.1])
        write_run(preset / "ablations" / "lam", "sinusoid", "maml", "trlearner", seed, shots=5,
                  per_task=[base - 0.09, base + 0.11])
        point = preset / "ablations" / "lam" / "sinusoid" / "5shot" / "maml" / "trlearner"
        (point / "lam-1.0").mkdir(parents=True, exist_ok=True)
        shutil.move(str(point / f"seed{seed}"), str(point / "lam-1.0" / f"seed{seed}"))
    table = published.verdict_markdown(tmp_path / "published")
    assert "nan" not in table  # the defaults' own row is the effect row, not an interpretation
    rows = [r for r in table.splitlines() if "lam = 1.0" in r]
    assert rows == ["| MAML sinusoid 5shot: TRLearner − baseline, lam = 1.0 | preset `claims` | 4 | +0.010 ± 0.000 | "
                    "-0.193 | **incompatible**; sequential rule at 4 seeds: excludes |"], table

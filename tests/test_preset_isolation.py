"""Presets never share runs (issue 24, item 2): each preset writes only under its own
``results/<preset>/`` and ``reports/<preset>/``. Measured before: ``tiny`` (the preset the tests
and CI use), run in a checkout after a ``default`` run, replaced seed 0's metrics.json of the
default preset, moved its checkpoint aside and put "Presets: default, tiny" in its report.

Here a finished default run (its run folders, checkpoint and report, as files with content) is
in the checkout; the tiny preset then runs for real, and every file of the default preset must
be byte for byte and mtime for mtime what it was. Every other preset's dry run plans nothing
under the default preset's folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workflow_helpers import REPO, copy_pipeline, planned_outputs, snakemake

DEFAULT_RUN = "results/default/runs/sinusoid/5shot/maml/baseline/seed0"


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _plant_default_run(d: Path) -> None:
    """The files a finished default run leaves where the tiny preset's runs of the same cell
    would go if presets shared a root (sinusoid 5-shot MAML baseline seed 0 is in both)."""
    run = d / DEFAULT_RUN
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"preset": "default", "protocol": {"iterations": 70000}}))
    (run / "provenance.json").write_text(json.dumps({"config_hash": "0123456789abcdef"}))
    (run / "checkpoint.pt").write_bytes(b"the default preset's 70,000-iteration checkpoint")
    (d / "results/default/expected.json").write_text("{}")
    (d / "reports/default").mkdir(parents=True)
    (d / "reports/default/REPORT.md").write_text("# the default preset's report\n")


@pytest.mark.slow
def test_running_tiny_after_default_leaves_every_file_of_default_as_it_was(tmp_path):
    d = copy_pipeline(tmp_path / "repo")
    _plant_default_run(d)
    before = {root: _snapshot(d / root) for root in ("results/default", "reports/default")}

    snakemake(d, "--cores", "2", "--configfile", "config/tiny.yaml", timeout=1200)  # ~30 s on a quiet machine

    assert {root: _snapshot(d / root) for root in before} == before
    assert (d / "reports/tiny/REPORT.md").exists()
    tiny_runs = sorted(p.relative_to(d).as_posix() for p in (d / "results").rglob("metrics.json")
                       if not p.is_relative_to(d / "results/default"))
    assert tiny_runs and all(r.startswith("results/tiny/") for r in tiny_runs), tiny_runs
    assert re.search(r"Presets: ([^.]*)\.", (d / "reports/tiny/REPORT.md").read_text()).group(1) == "tiny"


PRESETS = sorted(p.stem for p in (REPO / "config").glob("*.yaml"))


def test_every_preset_has_its_own_results_and_reports_folders():
    import yaml

    from trlearner.pipeline.matrix import preset_roots

    roots = {p: preset_roots(yaml.safe_load((REPO / "config" / f"{p}.yaml").read_text())) for p in PRESETS}
    assert roots == {p: (f"results/{p}", f"reports/{p}") for p in PRESETS}


# the paper preset's dry run (thousands of jobs) takes minutes; the test above covers its roots
@pytest.mark.parametrize("preset", [p for p in PRESETS if p not in ("default", "paper")])
def test_no_other_preset_plans_anything_under_the_default_presets_folders(tmp_path, preset):
    d = copy_pipeline(tmp_path / "repo")
    outputs = [o for line in planned_outputs(d, "--configfile", f"config/{preset}.yaml") for o in line.split(", ")]
    assert outputs, f"{preset}: the dry run planned nothing"
    assert not [o for o in outputs if o.startswith(("results/default/", "reports/default/"))]
    assert all(o.startswith((f"results/{preset}/", f"reports/{preset}/")) for o in outputs), \
        sorted({o.split("/")[0] + "/" + o.split("/")[1] for o in outputs})

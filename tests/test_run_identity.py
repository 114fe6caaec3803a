"""One run identity from the preset to the report (issue 24): the config hash the pipeline
expects for a run is the one `trlearner train` records for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from trlearner.pipeline.check import check_config, load_config
from trlearner.run.cli import parse_args, run_config
from trlearner.run.results import config_hash

PRESETS = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "config").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_the_matrix_and_the_command_line_resolve_every_run_to_one_identity(preset):
    m = check_config(load_config(f"config/{preset}"))
    for run in m.runs:
        argv = run.train_args(m.preset, "cpu", "data") + ["--out", "x"]
        via_cli = run_config(parse_args(argv))
        assert config_hash(via_cli.identity()) == run.identity_hash(), (preset, run.path)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_document_gives_the_job_the_planned_config(preset):
    """What a Snakemake rule sends (`job_document`) is what `train-job` trains: the same
    RunConfig, field for field, and the same identity; nothing is re-parsed on the way."""
    from trlearner.pipeline.jobs import job_document, read_job

    m = check_config(load_config(f"config/{preset}"))
    for run in m.runs:
        cfg = run.run_config(m.preset, "cpu", "data")
        (got,) = read_job(job_document([cfg]))
        assert got == cfg and config_hash(got.identity()) == run.identity_hash(), (preset, run.path)


def test_a_job_document_that_resolves_to_another_identity_is_refused(tmp_path, capsys):
    """A document whose config no longer matches its identity (edited by hand, or planned by
    other code) is refused before anything is written; so is one that is not a job document."""
    import json

    from trlearner.method.trconfig import TRConfig
    from trlearner.pipeline.cli import main
    from trlearner.pipeline.jobs import job_document
    from trlearner.run.config import resolve_config

    cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=3, trlearner=TRConfig(lam=0.1))
    doc = json.loads(job_document([cfg]))
    doc["runs"][0]["config"]["trlearner"]["lam"] = 1.0
    out = tmp_path / "run"
    assert main(["train-job", "--job", json.dumps(doc), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pipeline: error: the run config of seed 0 resolves to identity" in err and "as planned" in err
    assert not out.exists()
    assert main(["train-job", "--job", "--dataset sinusoid", "--out", str(out)]) == 2
    assert "not a job document" in capsys.readouterr().err
    doc["runs"][0]["config"]["lam"] = 0.5  # a setting RunConfig does not have
    assert main(["train-job", "--job", json.dumps(doc), "--out", str(out)]) == 2
    assert "unknown run setting(s): lam" in capsys.readouterr().err and not out.exists()

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

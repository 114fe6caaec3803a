"""The Snakemake profiles: a plain `snakemake` from the root loads the default profile
(`profiles` -> `workflow/profiles`), and its keep-going takes effect; no profile passes sbatch
options in `slurm_extra` that snakemake-executor-plugin-slurm refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from workflow_helpers import REPO, copy_pipeline, snakemake

PROFILES = sorted((REPO / "workflow" / "profiles").glob("*/config.yaml"))
TABLE_RUNS = [f"results/tiny/runs/sinusoid/5shot/{a}/{v}/seed0" for a in ("maml", "anil") for v in ("baseline", "trlearner")]


def test_the_root_profiles_folder_is_workflow_profiles():
    """Snakemake looks for profiles/default next to the working directory or the Snakefile."""
    assert (REPO / "profiles").resolve() == (REPO / "workflow" / "profiles").resolve()
    assert (REPO / "profiles" / "default" / "config.yaml").is_file()


def test_a_plain_snakemake_from_the_root_uses_the_default_profile(tmp_path):
    d = copy_pipeline(tmp_path / "repo")
    out = snakemake(d, "--dry-run", "--configfile", "config/tiny.yaml")
    assert "Using workflow specific profile profiles/default" in out.stderr
    # --workflow-profile none is the documented way out
    out = snakemake(d, "--dry-run", "--workflow-profile", "none", "--configfile", "config/tiny.yaml")
    assert "profiles/default" not in out.stderr


def _slurm_extras(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "slurm_extra"] + [x for v in node.values() for x in _slurm_extras(v)]
    if isinstance(node, list):
        return [x for v in node for x in _slurm_extras(v)]
    if isinstance(node, str) and node.startswith("slurm_extra="):  # list form: "rule:slurm_extra=..."
        return [node.split("=", 1)[1]]
    return []


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.parent.name)
def test_no_profile_sets_sbatch_options_the_plugin_manages_in_slurm_extra(profile):
    from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options

    extras = _slurm_extras(yaml.safe_load(profile.read_text()))
    for extra in extras:
        for pattern, name in get_forbidden_slurm_options().items():
            assert not re.search(pattern, str(extra)), f"{profile}: slurm_extra {extra!r} sets the {name}"


def test_the_forbidden_option_check_catches_the_old_slurm_profile():
    """The check above is not vacuous: the profile of commit a46f11d is refused."""
    from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options

    old = yaml.safe_load("set-resources:\n  train:\n    slurm_extra: \"'--cpus-per-task=4'\"\n")
    extra = _slurm_extras(old)
    assert extra == ["'--cpus-per-task=4'"]
    assert any(re.search(p, extra[0]) for p in get_forbidden_slurm_options())


@pytest.mark.slow
def test_default_profile_keep_going_one_failing_run_does_not_stop_the_others(tmp_path):
    """Fault: one run folder holds a directory named log.txt, so that training run fails at run
    time (train cannot open its log). It is prioritised, so with one core it fails first.
    Without the default profile Snakemake stops there; with it (keep-going) the other three
    table runs finish and the failing one's log is shown (show-failed-logs)."""
    d = copy_pipeline(tmp_path / "repo")
    bad = d / TABLE_RUNS[0]
    (bad / "log.txt").mkdir(parents=True)
    targets = [f"{run}/metrics.json" for run in TABLE_RUNS]
    args = ("--cores", "1", "--prioritize", targets[0], "--configfile=config/tiny.yaml", *targets)

    control = snakemake(d, "--workflow-profile", "none", *args, check=False)
    assert control.returncode != 0
    assert not [t for t in targets if (d / t).exists()], "without keep-going no other run may start"

    out = snakemake(d, *args, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0, "a failed job must still fail the pipeline"
    assert "Using workflow specific profile profiles/default" in text
    assert not (d / targets[0]).exists()
    for t in targets[1:]:
        assert json.loads((d / t).read_text())["status"] == "ok", t
    assert "IsADirectoryError" in text  # show-failed-logs printed the failing job's log

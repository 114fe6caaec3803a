"""Config values reach the rules' shell lines quoted (issue 27, item 1).

The probe: a copy of the tiny preset with ``data_root: "data $(touch pwned.txt) ü"``, results
and reports under folders with a space and a non-ASCII letter, in a checkout whose path has
both. It passes ``pipeline check`` (a folder name may hold any character), so the rules must
quote it: before, Snakemake ran ``touch pwned.txt`` and every job failed with ``unrecognized
arguments: ü``. Now every value is one argument (``workflow/rules/common.smk``: ``shlex.join``;
the rules: ``{x:q}``), checked on the commands of a dry run (fast) and by a real run, then by a
failing job's partial report (``onerror``), which formats the same command (slow).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from workflow_helpers import REPO, copy_pipeline, snakemake  # noqa: E402

DATA_ROOT = "data $(touch pwned.txt) ü"
RESULTS, REPORTS = "ré sults", "ré ports"


def hostile_copy(tmp_path: Path) -> Path:
    """The pipeline in ``<tmp>/check out ü`` with ``config/hostile.yaml``: the tiny preset, the
    hostile data root, results and reports under names with a space."""
    d = copy_pipeline(tmp_path / "check out ü")
    cfg = yaml.safe_load((d / "config" / "tiny.yaml").read_text())
    cfg.update(data_root=DATA_ROOT, results=RESULTS, reports=REPORTS)
    (d / "config" / "hostile.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return d


def no_pwned(*roots: Path) -> None:
    found = [p for root in roots for p in root.rglob("pwned.txt")]
    assert not found, found


def shell_commands(text: str) -> list[str]:
    """The commands of ``snakemake --dry-run --printshellcmds`` output (``run:`` rules print None)."""
    return [c for c in re.findall(r"^Shell command: (.+)$", text, flags=re.M) if c != "None"]


def test_hostile_config_passes_the_check(tmp_path):
    d = hostile_copy(tmp_path)
    out = subprocess.run([sys.executable, "-m", "trlearner.pipeline", "check", "--config",
                          str(d / "config" / "hostile.yaml")], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=120)
    assert out.returncode == 0, out.stderr  # so the rules are the place that must quote it


def test_dry_run_commands_quote_every_value(tmp_path):
    d = hostile_copy(tmp_path)
    out = snakemake(d, "--dry-run", "--printshellcmds", "--configfile", "config/hostile.yaml")
    commands = shell_commands(out.stdout + out.stderr)
    rules = set(re.findall(r"^rule (\w+):", out.stdout + out.stderr, flags=re.M))
    assert {"dataset_manifest", "train", "train_ablation", "gallery", "report"} <= rules
    assert len(commands) >= 8
    jobs = 0
    for cmd in commands:
        argv = shlex.split(cmd)  # as the shell splits it (single quotes: no $(...) inside)
        assert argv[:3] == ["python", "-m", "trlearner.pipeline"], cmd
        if "--data-root" in argv:
            assert argv[argv.index("--data-root") + 1] == DATA_ROOT, cmd
            assert shlex.quote(DATA_ROOT) in cmd
        if "--job" in argv:  # a training job: the run configs arrive whole, as one quoted JSON word
            for run in json.loads(argv[argv.index("--job") + 1])["runs"]:
                assert run["config"]["data_root"] == DATA_ROOT, cmd
                jobs += 1
        for flag in ("--out", "--results", "--expected", "--gallery", "--figures", "--analyses"):
            if flag in argv:
                value = argv[argv.index(flag) + 1]
                assert value.startswith(("$(dirname '", RESULTS, REPORTS)), (flag, cmd)
        log = argv[argv.index(">") + 1]
        assert log.startswith(f"{RESULTS}/logs/"), cmd
    assert sum("--data-root" in c for c in commands) >= 2  # fetch, gallery
    assert jobs >= 6  # 4 runs, 2 ablation runs
    no_pwned(tmp_path)


@pytest.mark.slow
def test_hostile_paths_run_to_the_report_and_the_partial_report(tmp_path):
    """The whole tiny preset (about 1 min on 2 cores), then a failing dataset for ``onerror``."""
    d = hostile_copy(tmp_path)
    snakemake(d, "--cores", "1", "--configfile", "config/hostile.yaml")
    no_pwned(tmp_path, REPO)
    report = (d / REPORTS / "REPORT.md").read_text()
    assert report.startswith("# TRLearner reproduction report") and "sinusoid" in report
    for run in ("maml/baseline", "anil/trlearner"):
        assert (d / RESULTS / "runs/sinusoid/5shot" / run / "seed0/metrics.json").is_file()
    assert (d / REPORTS / "gallery/sinusoid_train.png").is_file()
    # a dataset that cannot be fetched (data_root is not `data`, so fetch-data refuses at once):
    # the report rule cannot run, onerror writes the partial report with the same command
    cfg = yaml.safe_load((d / "config" / "hostile.yaml").read_text())
    cfg["experiments"]["omniglot_small"] = {
        "datasets": ["omniglot_small"], "settings": [{"ways": 5, "shots": 1}], "algorithms": ["maml"],
        "variants": ["baseline"], "seeds": [0], "protocol": {"iterations": 2, "filters": 4, "test_tasks": 2}}
    (d / "config" / "failing.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    out = snakemake(d, "--cores", "1", "--keep-going", "--configfile", "config/failing.yaml", check=False)
    assert out.returncode != 0
    assert f"Some jobs failed: {REPORTS}/REPORT.md was written" in out.stderr, out.stderr[-3000:]
    partial = (d / REPORTS / "REPORT.md").read_text()
    assert f"data unavailable: omniglot_small not fetched (see {RESULTS}/logs/data/omniglot_small.log)" in partial
    assert "wrote" in (d / RESULTS / "logs/report_partial.log").read_text()
    no_pwned(tmp_path, REPO)

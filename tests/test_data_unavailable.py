"""A dataset that cannot be fetched fails its own job, every other job still runs (keep-going,
the default profile), and the report is written from the runs that finished, showing the
dataset's cells as "data unavailable" with the fetch log to read."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from workflow_helpers import copy_pipeline, snakemake

CONFIG = {
    "preset": "unavailable-test",
    "device": "cpu",
    "threads": 1,
    "experiments": {
        "regression": {"datasets": ["sinusoid"], "settings": [{"shots": 5}], "algorithms": ["maml"],
                       "variants": ["baseline"], "seeds": [0],
                       "protocol": {"iterations": 10, "test_tasks": 10, "test_queries": 10, "curve_steps": 1}},
        "images": {"datasets": ["omniglot_small"], "settings": [{"ways": 5, "shots": 1}],
                   "algorithms": ["maml"], "variants": ["baseline"], "seeds": [0],
                   "protocol": {"iterations": 2, "meta_batch": 2, "filters": 8, "test_tasks": 4}},
    },
}


def test_unfetchable_dataset_is_reported_as_data_unavailable(tmp_path):
    work = copy_pipeline(tmp_path / "pipe")
    registry = work / "src" / "trlearner" / "data" / "registry.yaml"
    # offline for certain: every public URL of the copy points at a closed loopback port
    registry.write_text(re.sub(r"https?://[^\"\s]+", "http://127.0.0.1:9/x", registry.read_text()))
    (work / "config" / "unavailable.yaml").write_text(yaml.safe_dump(CONFIG))
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)  # DVC runs in a git checkout

    out = snakemake(work, "--cores", "2", "--configfile", "config/unavailable.yaml", check=False,
                    env={"TRLEARNER_MIRROR": str(tmp_path / "no-mirror")})
    log = out.stdout + out.stderr
    assert out.returncode != 0, "a failed fetch must fail the workflow"
    assert (work / "results/unavailable-test/runs/sinusoid/5shot/maml/baseline/seed0/metrics.json").is_file(), log[-3000:]
    assert not (work / "results/unavailable-test/data/omniglot_small.manifest.json").exists()
    assert "REPORT.md was written from the runs that finished" in log, log[-3000:]

    report = (work / "reports" / "unavailable-test" / "REPORT.md").read_text()
    flat = " ".join(report.split())  # the report wraps its long lines
    assert ("data unavailable: omniglot_small not fetched (see results/unavailable-test/logs/data/omniglot_small.log"
            in flat), report
    expected = json.loads((work / "results" / "unavailable-test" / "expected.json").read_text())
    cell = next(c for c in expected if c["dataset"] == "omniglot_small")
    assert cell["data_manifests"] == ["results/unavailable-test/data/omniglot_small.manifest.json"]
    # the fetch log the report points at holds the fetch error: every source tried and refused
    fetch_log = (work / "results/unavailable-test/logs/data/omniglot_small.log").read_text()
    assert "fetch@omniglot_small failed" in fetch_log and "127.0.0.1:9" in fetch_log, fetch_log[-2000:]


pytestmark = pytest.mark.slow

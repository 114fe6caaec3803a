"""docs/DATA.md says where the training DAG lives (Snakemake's rule graph; `dvc dag` shows only
the data stages), and the command it gives prints a graph with the training rules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
COMMAND = "--configfile config/default.yaml --rulegraph | dot -Tsvg > rulegraph.svg"


def test_data_md_points_to_the_snakemake_dag():
    text = (REPO / "docs" / "DATA.md").read_text()
    assert "`dvc dag` shows the 19" in text and COMMAND in text and "`--dag`" in text


@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed")
def test_the_documented_rulegraph_has_the_training_rules(tmp_path):
    out = subprocess.run([str(SNAKEMAKE), "--configfile", "config/tiny.yaml", "--rulegraph"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.lstrip().startswith("digraph")
    for rule in ("dataset_manifest", "train", "report"):  # tiny runs no analysis
        assert f'label = "{rule}"' in out.stdout, rule
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=out.stdout, capture_output=True, text=True, timeout=120)
        assert svg.returncode == 0 and "<svg" in svg.stdout

"""A new algorithm is one module and one line (issue 24, item 6: one source for each vocabulary).

In a copy of the pipeline, a toy algorithm is added as ``engine/algorithms/toy.py`` and one line
of the table ``engine/algorithms/names.py``, nothing else; then ``trlearner train --algorithm
toy`` trains and records it, and a preset naming it plans its training runs (the config check,
the schema's enum, the Snakefile's wildcards, the estimate and the jobs' sources all read the
table).
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from workflow_helpers import REPO, copy_pipeline, planned_outputs, snakemake

NAMES = Path("src/trlearner/engine/algorithms/names.py")
TOY = '''"""A toy algorithm, a test's plug-in: MAML under another name."""

from trlearner.engine.algorithms.maml import MAML


class Toy(MAML):
    """MAML, named ``toy``."""

    name = "toy"
'''
LINE = '    "toy": Entry("Toy", "Toy"),\n'


def add_toy(copy: Path) -> None:
    """The plug-in: one module file, one line at the end of the table."""
    (copy / "src/trlearner/engine/algorithms/toy.py").write_text(TOY)
    lines = (copy / NAMES).read_text().splitlines(keepends=True)
    start = lines.index("ALGORITHMS = {\n")
    end = lines.index("}\n", start)
    (copy / NAMES).write_text("".join(lines[:end] + [LINE] + lines[end:]))


def package_files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted((root / "src/trlearner").rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_a_new_algorithm_is_one_module_and_one_line(tmp_path):
    copy = copy_pipeline(tmp_path / "repo")
    add_toy(copy)

    # the whole change: the new file and one added line of the table
    new, old = package_files(copy), package_files(REPO)
    assert set(new) - set(old) == {"src/trlearner/engine/algorithms/toy.py"} and set(old) <= set(new)
    changed = [f for f in old if new[f] != old[f]]
    assert changed == [NAMES.as_posix()], changed
    diff = [d for d in difflib.ndiff(old[NAMES.as_posix()].splitlines(keepends=True),
                                     new[NAMES.as_posix()].splitlines(keepends=True)) if d[0] in "+-"]
    assert diff == ["+ " + LINE], diff

    # (a) the train command trains it and records it
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "trlearner", "train", "--dataset", "sinusoid", "--algorithm", "toy",
                        "--shots", "5", "--iterations", "3", "--test-tasks", "4", "--curve-steps", "1",
                        "--device", "cpu", "--no-progress", "--out", str(out)],
                       cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["algorithm"], metrics["dataset"], metrics["n_tasks"]) == ("toy", "sinusoid", 4)

    # its training jobs depend on its module (imported by name, so listed explicitly)
    code = "from trlearner.pipeline.sources import train_sources; print(train_sources('toy', False))"
    r = subprocess.run([sys.executable, "-c", code], cwd=copy, env=env, capture_output=True, text=True, check=True)
    assert "src/trlearner/engine/algorithms/toy.py" in r.stdout and "engine/algorithms/anil.py" not in r.stdout

    # (b) a preset naming it plans its training runs
    preset = yaml.safe_load((copy / "config/tiny.yaml").read_text())
    preset["preset"] = "plugin"
    preset["experiments"]["regression"]["algorithms"] = ["maml", "toy"]
    (copy / "config/plugin.yaml").write_text(yaml.safe_dump(preset, sort_keys=False))
    outputs = planned_outputs(copy, "--configfile", "config/plugin.yaml")
    toy_runs = {o for o in outputs if "/toy/" in o and o.endswith("metrics.json")}
    assert {next(v for v in ("baseline", "trlearner") if f"/{v}/" in o) for o in toy_runs} == {"baseline", "trlearner"}, outputs
    # its estimate says it has no measured rate
    estimate = snakemake(copy, "--dry-run", "--quiet", "rules", "--configfile", "config/plugin.yaml")
    assert "no measured CPU rate for toy: estimated at maml's" in estimate.stdout + estimate.stderr

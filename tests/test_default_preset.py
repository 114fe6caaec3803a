"""The default preset (config/default.yaml): the known cell's seed count, and reduced cells that learn.

Learning margin (issue 17 part 3; ``trlearner.run.learning``): a reduced regression cell's
baseline must reach an MSE at least 20 % below its own 0-step MSE (``curve.mean[0]``, the
meta-learned initialisation before any adaptation); a reduced classification cell's baseline
must reach chance + 10 points (chance = 100 / ways %). docs/PIPELINE.md ("The default preset") has the measured values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trlearner.pipeline.catalog import GENERATED
from trlearner.pipeline.check import check_config
from trlearner.pipeline.matrix import Run
from trlearner.run.learning import learns

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return yaml.safe_load((ROOT / "config" / "default.yaml").read_text())


def test_known_cell_runs_at_the_operating_point_on_the_sequential_rule():
    from trlearner.pipeline.sequential import arms, decided
    from trlearner.report.sequential import LOOKS

    cfg = _config()
    main = cfg["experiments"]["regression_main"]
    assert (main["datasets"], main["settings"], main["algorithms"]) == (["sinusoid"], [{"shots": 5}], ["maml"])
    op = yaml.safe_load((ROOT / "config" / "operating_point.yaml").read_text())["experiments"]["regression_main"]
    for key in ("protocol", "seeds", "sequential", "stack"):  # the operating point's cell and rule
        assert main[key] == op[key], key
    matrix = check_config(cfg)
    assert [a.name for a in arms(matrix)] == ["sinusoid_5shot_maml"]  # the known cell is the one arm
    runs = [r for r in decided(matrix, {}).table_runs if r.group == "regression_main"]
    assert sorted((r.variant, r.seed) for r in runs) == [(v, s) for v in ("baseline", "trlearner")
                                                         for s in range(LOOKS[0])]
    op_matrix = check_config(yaml.safe_load((ROOT / "config" / "operating_point.yaml").read_text()))
    assert {r.identity_hash() for r in runs} == {r.identity_hash() for r in decided(op_matrix, {}).table_runs}


def reduced_cells(cfg: dict) -> list[Run]:
    """The seed-0 (lowest seed) baseline run of every reduced table cell of ``cfg``: a cell
    whose experiment overrides the protocol's iterations or test tasks."""
    cells: dict[tuple, Run] = {}
    for r in check_config(cfg).table_runs:
        p = dict(r.protocol)
        if r.variant == "baseline" and ("iterations" in p or "test_tasks" in p):
            key = (r.dataset, r.setting, r.algorithm)
            if key not in cells or r.seed < cells[key].seed:
                cells[key] = r
    return [cells[k] for k in sorted(cells)]


def test_every_reduced_default_cell_is_listed():
    # the cells the slow test below trains (docs/PIPELINE.md lists their measured values)
    names = {(r.dataset, r.setting, r.algorithm) for r in reduced_cells(_config())}
    assert ("sinusoid", "5shot", "maml") not in names          # the known cell is full protocol
    assert not any(d == "harmonic" for d, _, _ in names)       # left out: it does not learn (see docs)
    assert names, "the default preset has reduced cells"


def test_learning_margin_by_hand():
    assert learns({"metric": "mse", "mean": 0.79, "curve": {"mean": [1.0, 0.9]}}, None)[0] is True
    assert learns({"metric": "mse", "mean": 0.80, "curve": {"mean": [1.0, 0.9]}}, None)[0] is True  # boundary
    assert learns({"metric": "mse", "mean": 0.81, "curve": {"mean": [1.0, 0.9]}}, None)[0] is False
    assert learns({"metric": "accuracy", "unit": "percent", "mean": 30.0}, 5)[0] is True
    assert learns({"metric": "accuracy", "unit": "percent", "mean": 29.9}, 5)[0] is False
    assert learns({"metric": "accuracy", "unit": "fraction", "mean": 0.25}, 5)[0] is False
    assert learns({"metric": "accuracy", "unit": "fraction", "mean": 0.35, "ways": 5})[0] is True
    assert learns({"metric": "mse", "mean": 0.5})[0] is None  # no curve: cannot tell


def _data_root() -> Path | None:
    """A data root holding omniglot_small (``TRLEARNER_DATA_ROOT``, else ``data``), or None."""
    root = Path(os.environ.get("TRLEARNER_DATA_ROOT", ROOT / "data"))
    return root if (root / "raw" / "omniglot_small").is_dir() else None


@pytest.mark.slow
@pytest.mark.parametrize("run", reduced_cells(_config()), ids=lambda r: f"{r.dataset}-{r.setting}-{r.algorithm}")
def test_reduced_default_cell_learns(run, tmp_path):
    """Each reduced cell's baseline, trained at its default-preset protocol for 1 seed, learns."""
    data = ROOT / "data"
    if run.dataset not in GENERATED:
        data = _data_root()
        if data is None:
            pytest.skip(f"{run.dataset} is not fetched (make run fetches it; or set TRLEARNER_DATA_ROOT)")
    args = run.train_args("test", "cpu", str(data))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    subprocess.run([sys.executable, "-m", "trlearner", "train", *args, "--threads", "1", "--out", str(tmp_path)],
                   check=True, env=env, capture_output=True, text=True)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["protocol"]["reduced"] is True
    ok, text = learns(metrics, run.ways)
    assert ok, f"{run.dataset} {run.setting} {run.algorithm} does not learn at the default protocol: {text}"

"""Seeds decided by the data: the sequential rule (:mod:`trlearner.report.sequential`) as a DAG
that grows only the runs the rule asks for.

A config group (experiment or ablation) with ``sequential: true`` lists the rule's first look as
its ``seeds`` (``[0, 1, 2, 3]``); its matrix holds every seed up to the last look (0..15), so
that Snakemake has a rule for each, but only the seeds the rule's decisions ask for are
*expected*. Each **arm** pairs TRLearner runs with the baseline runs of the same cell, seed by
seed:

- in a sequential experiment, each known paper cell's ``trlearner`` runs against its own
  ``baseline`` runs;
- in a sequential ablation, each sweep point's ``trlearner`` runs against the baseline runs of
  the same cell and protocol in a sequential experiment of the preset (the claims audit: every
  interpretation against the one baseline).

At each look the checkpoint ``sequential_look`` (workflow/rules/sequential.smk) runs
``python -m trlearner.pipeline look``, which writes ``<results>/sequential/<arm>/look<n>.json``
(:func:`look_record`); Snakemake re-evaluates the DAG and asks for the next look's seeds only
where that record says ``continue``. A baseline seed is expected when any arm that pairs with it
needs it.

Example::

    >>> cfg = {"preset": "x", "experiments": {"m": {"datasets": ["sinusoid"], "algorithms": ["maml"],
    ...        "settings": [{"shots": 5}], "seeds": [0, 1, 2, 3], "sequential": True}}}
    >>> from trlearner.pipeline.matrix import build_matrix
    >>> m = build_matrix(cfg)
    >>> [a.name for a in arms(m)], len(m.runs), len(decided(m, {}).runs)
    (['sinusoid_5shot_maml'], 32, 8)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from trlearner.pipeline.matrix import ConfigError, Matrix, Run
from trlearner.report.sequential import ALPHA, LOOKS, look

#: Where the looks' records lie under a preset's results folder.
LOOKS_DIR = "sequential"


@dataclass(frozen=True)
class Arm:
    """TRLearner runs paired by seed with baseline runs, both over every seed up to the last look."""

    name: str  # folder under <results>/sequential/: [<ablation>_<point>_]<dataset>_<setting>_<algorithm>
    trlearner: tuple  # Run objects, seeds 0..LOOKS[-1]-1
    baseline: tuple  # Run objects, the same seeds

    @property
    def cell(self) -> tuple[str, str, str]:
        r = self.trlearner[0]
        return r.dataset, r.setting, r.algorithm

    def runs(self, n: int) -> tuple[list[Run], list[Run]]:
        """(baseline, trlearner) runs of seeds ``0..n-1``."""
        return [r for r in self.baseline if r.seed < n], [r for r in self.trlearner if r.seed < n]

    def metrics(self, n: int) -> list[str]:
        """Every metrics.json the look at ``n`` seeds reads: both variants, seeds 0..n-1."""
        base, trl = self.runs(n)
        return [r.metrics for r in base + trl]

    def record(self, results: str, n: int) -> str:
        """The look's record, ``<results>/sequential/<arm>/look<n>.json``."""
        return f"{results}/{LOOKS_DIR}/{self.name}/look{n}.json"


def arms(matrix: Matrix) -> list[Arm]:
    """The arms of the matrix's sequential groups, in matrix order (experiments, then ablations)."""
    by_cell: dict[tuple, dict[str, list[Run]]] = {}
    for r in matrix.runs:
        if (r.kind, r.group) in matrix.sequential:
            key = (r.kind, r.group, r.point, r.dataset, r.setting, r.algorithm, r.protocol)
            by_cell.setdefault(key, {}).setdefault(r.variant, []).append(r)
    out = []
    for (kind, group, point, dataset, setting, algorithm, protocol), variants in by_cell.items():
        trl = variants.get("trlearner")
        if not trl:
            continue  # a baseline only (its arms are TRLearner runs that pair with it)
        base = variants.get("baseline") if kind == "run" else _table_baseline(matrix, dataset, setting,
                                                                             algorithm, protocol)
        where = f"{'experiments' if kind == 'run' else 'ablations'}.{group}"
        if not base:
            raise ConfigError(
                f"{where}: sequential: the TRLearner runs of {dataset} {setting} {algorithm} have no baseline to pair "
                f"with; allowed: variants [baseline, trlearner] in a sequential experiment, or, for an ablation, a "
                f"sequential experiment of the same cell and protocol")
        prefix = "" if kind == "run" else f"{group}_{point}_"
        out.append(Arm(f"{prefix}{dataset}_{setting}_{algorithm}", tuple(sorted(trl, key=lambda r: r.seed)),
                       tuple(sorted(base, key=lambda r: r.seed))))
    return out


def _table_baseline(matrix: Matrix, dataset, setting, algorithm, protocol) -> list[Run]:
    return [r for r in matrix.table_runs if (r.kind, r.group) in matrix.sequential and r.variant == "baseline"
            and (r.dataset, r.setting, r.algorithm, r.protocol) == (dataset, setting, algorithm, protocol)]


def decided(matrix: Matrix, seeds: dict[str, int]) -> Matrix:
    """The matrix restricted to the runs the rule asks for: each arm's seeds ``0..seeds[arm]-1``
    (absent: the first look), each baseline seed that some arm of it needs, every run of the
    groups that are not sequential."""
    need: dict[str, int] = {}
    for arm in arms(matrix):
        n = seeds.get(arm.name, LOOKS[0])
        for r in arm.trlearner + arm.baseline:
            need[r.path] = max(need.get(r.path, 0), n)
    return matrix.restricted({r.path for r in matrix.runs
                              if (r.kind, r.group) not in matrix.sequential or r.seed < need.get(r.path, 0)})


def seeds_on_disk(matrix: Matrix, results: str) -> dict[str, int]:
    """Each arm's seeds as far as its records on disk decide: the stopping look's, else the look
    after the last record's (for estimates and for a partial report after a failure; the DAG
    itself reads the records through Snakemake's checkpoints)."""
    out = {}
    for arm in arms(matrix):
        n = LOOKS[0]
        for k, look_n in enumerate(LOOKS):
            path = Path(arm.record(results, look_n))
            if not path.is_file():
                break
            n = look_n if json.loads(path.read_text())["stop"] else LOOKS[min(k + 1, len(LOOKS) - 1)]
            if n == look_n:
                break
        out[arm.name] = n
    return out


def _mean(path: str) -> float:
    """The run's test mean from its metrics.json, refused when it is not ok or contradicts its
    per-task values (the report's own check, :func:`trlearner.run.records.scan.stored_figures_problems`)."""
    from trlearner.run.records.scan import stored_figures_problems

    record = json.loads(Path(path).read_text())
    if record.get("status") != "ok":
        raise ValueError(f"{path}: status {record.get('status')!r}; the rule pairs finished runs only")
    problems = stored_figures_problems(record)
    if problems:
        raise ValueError(f"{path}: {'; '.join(problems)}")
    return float(record["mean"])


def look_record(arm: str, baseline: list[str], trlearner: list[str], paper_effect: float) -> dict:
    """The rule's answer for one arm at one look, from the metrics.json of seeds 0..n-1 of both
    variants (given in seed order): the record the checkpoint writes.

    Raises:
        ValueError: unequal seed counts, a count that is not a look, or a run that is not ok.
    """
    if len(baseline) != len(trlearner):
        raise ValueError(f"{len(baseline)} baseline against {len(trlearner)} TRLearner runs; the rule pairs by seed")
    base, trl = [_mean(p) for p in baseline], [_mean(p) for p in trlearner]
    at = look([t - b for b, t in zip(base, trl)], paper_effect)
    nxt = LOOKS[LOOKS.index(at.n) + 1] if not at.stop else None
    return {"arm": arm, "n": at.n, "seeds": list(range(at.n)), "baseline": base, "trlearner": trl,
            "effect": at.mean, "half_width": at.half, "level": 1 - ALPHA / len(LOOKS), "paper_effect": paper_effect,
            "verdict": at.verdict, "stop": at.stop, "next_look": nxt}


def paper_effect(reference, dataset: str, setting: str, algorithm: str) -> float | None:
    """TRLearner - baseline of the paper's cell, or None when the paper gives not both."""
    base = reference.paper_value(dataset, setting, algorithm, "baseline")
    trl = reference.paper_value(dataset, setting, algorithm, "trlearner")
    if base is None or trl is None:
        return None
    effect = float(trl["value"]) - float(base["value"])
    return effect if math.isfinite(effect) else None

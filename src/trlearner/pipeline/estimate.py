"""Compute-time estimates of a run matrix: per job (SLURM ``runtime``, job priorities) and
per dataset (the table ``snakemake -n`` and ``python -m trlearner.pipeline estimate`` print).
Every training job the pipeline plans is counted: table runs (single or stacked), ablation
runs and the analyses' runs (:func:`analysis_jobs`, from the config's ``analyses:`` block), the
last with the same per-run time model as a table run.

The rates are measured on the 2-core dev machine (CPU) or assumed (GPU): docs/PIPELINE.md,
"Estimates".

Example::

    >>> from trlearner.pipeline.matrix import build_matrix
    >>> m = build_matrix({"preset": "x", "experiments": {"reg": {"datasets": ["sinusoid"],
    ...     "algorithms": ["maml"], "settings": [{"shots": 5}], "seeds": [0]}}})
    >>> estimate(m)["sinusoid"]["jobs"]
    2
"""

from __future__ import annotations

import os

from trlearner.analysis.plan import ROOT as ANALYSIS_ROOT
from trlearner.analysis.plan import analysis_runs
from trlearner.pipeline.catalog import METADATASET_MULTI, REGRESSION, VARIABLE_WAY
from trlearner.pipeline.matrix import PROTOCOL_KEYS, Matrix, Run, setting_name
from trlearner.run.protocols import DATASET_PROTOCOLS
from trlearner.run.protocols import REGRESSION as MLP_PROTOCOL

# Datasets trained with an MLP: the regression datasets but pascal3d_pose (a conv net), and
# the analyses' motivation families (generated sinusoid-like tasks on sinusoid's protocol).
MLP_REGRESSION = tuple(dict.fromkeys([d for d in REGRESSION if d != "pascal3d_pose"] +
                                     [d for d, p in DATASET_PROTOCOLS.items() if p is MLP_PROTOCOL]))

# Seconds per meta-iteration on ONE CPU thread (measured on the 2-core dev machine, vmap
# back-end, meta-batch 25, second order; see docs/PIPELINE.md), and fixed cost per job
# (Python + torch start-up, test evaluation of 600 tasks with 10-step curves).
# An algorithm without a measured rate (one added to trlearner.engine.algorithms.names since)
# is estimated at MAML's (:data:`UNMEASURED_LIKE`), and the estimate's table says so.
CPU_SEC_PER_ITER = {"maml": 1 / 135, "anil": 1 / 200, "metasgd": 1 / 110, "tnet": 1 / 110,
                    "protonet": 1 / 300}
UNMEASURED_LIKE = "maml"
TRLEARNER_FACTOR = 1.7
CPU_JOB_OVERHEAD_S = 8.0
# Conv4 image episodes are far heavier: seconds per iteration per (task x image) on one CPU
# thread; GPU numbers are assumed from the MAML literature (not measured here).
CPU_SEC_PER_IMAGE_ITER = 2.0e-3
# Calibrated on omniglot_small 5-way 5-shot, Conv4-16, meta-batch 8, 300 iterations, 100 test
# tasks (MAML+TRLearner ~250 s, ProtoNet ~70 s on one busy core; 2026-11-26).
CPU_SEC_PER_TEST_IMAGE = 4.0e-3
GPU_SEC_PER_ITER = {"omniglot": 0.05, "omniglot_small": 0.05, "miniimagenet": 0.25, "cub": 0.25,
                    "places": 0.25, "pqsar": 0.02, "pascal3d_pose": 0.1,
                    "sinusoid": 0.004, "harmonic": 0.004, **{d: 0.004 for d in MLP_REGRESSION},
                    **{d: 0.4 for d in VARIABLE_WAY}}
# Images per task of a variable-way episode, for the CPU estimate (Meta-Dataset episodes hold
# up to 500 support images plus up to 10 queries per class; a rough mean, chosen here).
VARWAY_IMAGES_PER_TASK = 300


def estimate_seconds(run: Run, device: str = "cpu") -> float:
    """Rough compute time of one job in seconds (on one CPU thread, or one GPU)."""
    p = run.resolved_protocol()
    iters = p.get("iterations", 60_000)
    factor = TRLEARNER_FACTOR if run.variant == "trlearner" else 1.0
    if device != "cpu":
        return 30 + iters * GPU_SEC_PER_ITER.get(run.dataset, 0.1) * factor
    if run.dataset in MLP_REGRESSION:
        rate = CPU_SEC_PER_ITER.get(run.algorithm, CPU_SEC_PER_ITER[UNMEASURED_LIKE])
        per = rate * max(1, p.get("inner_steps", 1)) ** 0.7
        return CPU_JOB_OVERHEAD_S + iters * per * factor * (run.shots / 5) ** 0.3
    if run.dataset in VARIABLE_WAY:
        images = VARWAY_IMAGES_PER_TASK
    else:
        images = (p.get("train_ways") or run.ways or 5) * (run.shots + (p.get("train_queries") or 15))
    filt = (p.get("filters") or 64) / 64
    per = CPU_SEC_PER_IMAGE_ITER * images * p.get("meta_batch", 32) * filt
    # evaluation: every test task adapted for test_steps steps on support + queries
    test_images = (run.ways or 5) * (run.shots + (p.get("test_queries") or 15))
    test_tasks = p.get("test_tasks", 600)
    if run.dataset in VARIABLE_WAY:
        test_images = VARWAY_IMAGES_PER_TASK
        if run.dataset == METADATASET_MULTI:  # test_tasks episodes of every source
            test_tasks *= len(run.data_datasets())
    evaluation = CPU_SEC_PER_TEST_IMAGE * test_tasks * test_images * (p.get("test_steps", 10) + 1) * filt
    return CPU_JOB_OVERHEAD_S + 20 + iters * per * factor + evaluation


# Speed-up of a stacked job of 7 seeds over 7 single runs, whole run (training, 600-task test
# evaluation, writing), sinusoid MAML, 1 thread: benchmarks/README.md, "Issue 18 (speed)"
# (benchmarks/results/issue18/stacked_e2e.json, benchmarks/stacked_e2e.py), 2026-12-01.
STACK_SPEEDUP_7 = {"baseline": 1.97, "trlearner": 1.49}


def stack_factor(seeds: int, variant: str) -> float:
    """A stacked job's time over ONE single run of the cell, for ``seeds`` seeds: a + b*S
    (a: the per-op overhead the stack pays once, b: each seed's arithmetic), with a + b = 1 (a
    stack of one is a single run) and fitted to the measured 7-seed speed-up; a stack of one
    seed runs with a twin (trlearner.run.stacked.stacked_objective), so it costs S = 2. Only
    the 7-seed point is measured; the linear model between 1 and 7 seeds is an assumption."""
    b = (7 / STACK_SPEEDUP_7[variant] - 1) / 6
    return (1 - b) + b * max(seeds, 2)


def stack_seconds(stack, device: str = "cpu") -> float:
    """Rough compute time of a stacked job (:class:`trlearner.pipeline.matrix.Stack`): its
    seeds' single-run time divided by the stacking speed-up (:func:`stack_factor`; CPU
    measured, GPU assumed the same)."""
    return estimate_seconds(stack.runs[0], device) * stack_factor(len(stack.runs), stack.runs[0].variant)


def analysis_jobs(config: dict, results: str = "results") -> list[tuple[Run, str]]:
    """The analyses' training jobs of ``config`` (its ``analyses:`` block; none without one), as
    the pipeline plans them (rule ``train_analysis``): each as a :class:`Run` carrying its
    ``trlearner train`` settings (for :func:`estimate_seconds`; its ``kind`` is ``"analysis"``
    and its ``path`` is not the run folder) and its metrics.json path under ``results`` (the
    preset's results folder)."""
    if not config.get("analyses"):
        return []
    jobs = []
    for entry in analysis_runs(config["analyses"]):
        opts = entry["settings"]
        protocol = tuple(sorted((k, v) for k, v in opts.items() if k in PROTOCOL_KEYS))
        trl = tuple(sorted((entry["trlearner"] or {}).items()))
        shots, ways = int(opts["shots"]), opts.get("ways")
        run = Run("analysis", entry["analysis"], opts["dataset"], setting_name(shots, ways), shots, ways,
                  opts["algorithm"], "trlearner" if entry["trlearner"] is not None else "baseline", int(opts["seed"]),
                  protocol, trl, root=results)
        jobs.append((run, f"{results}/analyses/{entry['run_dir'][len(ANALYSIS_ROOT) + 1:]}/metrics.json"))
    return jobs


def estimate(matrix: Matrix, done: set[str] | None = None,
             analyses: list[tuple[Run, str]] = ()) -> dict:
    """Jobs and estimated compute seconds per dataset (all, and still to run), and of the
    analyses' runs (``analyses``: :func:`analysis_jobs`) in one row ``"analyses"``. A stacked job
    is one job; it is still to run when one of its seeds' metrics.json is missing, and then
    counts its whole time (its done seeds are re-evaluated, not retrained: an overestimate)."""
    device = "cpu" if matrix.device == "cpu" else "gpu"
    rows: dict[str, dict] = {}
    stacked = matrix.stacked_paths
    jobs = [(r.dataset, [r.metrics], estimate_seconds(r, device)) for r in matrix.runs if r.path not in stacked]
    jobs += [(st.runs[0].dataset, [r.metrics for r in st.runs], stack_seconds(st, device)) for st in matrix.stacks]
    jobs += [("analyses", [metrics], estimate_seconds(r, device)) for r, metrics in analyses]
    for row_name, metrics, s in jobs:
        row = rows.setdefault(row_name, {"jobs": 0, "pending": 0, "seconds": 0.0, "pending_seconds": 0.0})
        row["jobs"] += 1
        row["seconds"] += s
        if done is None or any(m not in done for m in metrics):
            row["pending"] += 1
            row["pending_seconds"] += s
    return rows


def training_jobs(matrix: Matrix, analyses: list[tuple[Run, str]] = ()) -> int:
    """The number of training jobs the pipeline plans: single runs, stacked jobs, analysis runs."""
    return len(matrix.runs) - len(matrix.stacked_paths) + len(matrix.stacks) + len(analyses)


def _minutes(seconds: float) -> str:
    return "under 1 min" if seconds < 60 else f"about {seconds / 60:.0f} min"


def format_estimate(matrix: Matrix, done: set[str] | None = None, cores: int | None = None,
                    analyses: list[tuple[Run, str]] = ()) -> str:
    rows = estimate(matrix, done, analyses)
    unit = "CPU" if matrix.device == "cpu" else "GPU"
    stacked = (f", {len(matrix.stacked_paths)} of them in {len(matrix.stacks)} stacked jobs"
               if matrix.stacks else "")
    lines = [f"trlearner pipeline, preset {matrix.preset!r}: {training_jobs(matrix, analyses)} training jobs "
             f"({len(matrix.table_runs)} table runs{stacked}, {len(matrix.ablation_runs)} ablation runs, "
             f"{len(analyses)} analysis runs) "
             f"+ data, aggregate and report jobs; estimated {unit} time per dataset:",
             f"  {'dataset':<16}{'jobs':>6}{'to run':>8}{unit + '-hours':>11}{'to run':>9}"]
    tot = [0, 0, 0.0, 0.0]
    for ds in sorted(rows, key=lambda name: (name == "analyses", name)):
        r = rows[ds]
        lines.append(f"  {ds:<16}{r['jobs']:>6}{r['pending']:>8}{r['seconds'] / 3600:>11.2f}"
                     f"{r['pending_seconds'] / 3600:>9.2f}")
        for i, k in enumerate(("jobs", "pending", "seconds", "pending_seconds")):
            tot[i] += r[k]
    lines.append(f"  {'total':<16}{tot[0]:>6}{tot[1]:>8}{tot[2] / 3600:>11.2f}{tot[3] / 3600:>9.2f}")
    if cores and matrix.device == "cpu":
        lines.append(f"  wall time with {cores} cores (1 thread per job): {_minutes(tot[3] / cores)} to run")
    lines.append("  (estimates: docs/PIPELINE.md#estimates; GPU rates are assumed, not measured)")
    unmeasured = sorted({r.algorithm for r in matrix.runs} - set(CPU_SEC_PER_ITER))
    if unmeasured and matrix.device == "cpu":
        lines.append(f"  (no measured CPU rate for {', '.join(unmeasured)}: estimated at {UNMEASURED_LIKE}'s)")
    if matrix.sequential:
        lines.append("  (sequential rule: the looks decided so far; each later look of an arm adds its next seeds: "
                     "docs/CALIBRATION.md)")
    return "\n".join(lines)


def dry_run_requested(argv: list[str]) -> bool:
    """Whether a snakemake command line asks for a dry run (-n, -np, --dry-run): the Snakefile
    prints the estimate then, since Snakemake runs no onstart handler in a dry run and its
    executor (workflow.dryrun) is not set up yet while the Snakefile is parsed."""
    return any(a in ("-n", "--dry-run", "--dryrun") or
               (a.startswith("-") and not a.startswith("--") and "n" in a[1:] and a[1:].isalpha())
               for a in argv)


def done_runs(matrix: Matrix, analyses: list[tuple[Run, str]] = ()) -> set[str]:
    """The metrics.json files of the matrix's runs and of ``analyses`` that exist."""
    paths = [r.metrics for r in matrix.runs] + [metrics for _, metrics in analyses]
    return {p for p in paths if os.path.exists(p)}

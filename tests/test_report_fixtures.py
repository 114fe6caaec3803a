"""Hand-chosen run records for the report tests (helpers, no tests; written into a temporary folder)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

PROVENANCE = {"git_commit": "abc1234", "git_dirty": False, "config_hash": "cfg0001",
              "dataset_hash": "ds0001", "package_versions": {"torch": "2.14.1", "numpy": "2.0.0"},
              "device": "cpu", "command": "trlearner train"}


def write_run(root: Path, dataset: str, algorithm: str, variant: str, seed: int, *,
              shots: int, ways: int | None = None, per_task=None, mean=None, metric="mse",
              status="ok", reduced=False, diverged_at=None, ci95=None, provenance=True,
              wall_time_s=10.0) -> Path:
    """Write one run folder in the pipeline's layout; returns it."""
    setting = f"{shots}shot" if ways is None else f"{ways}way{shots}shot"
    run = root / dataset / setting / algorithm / variant / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    per_task = list(per_task) if per_task is not None else []
    if mean is None:
        mean = statistics.fmean(per_task) if per_task else None
    if ci95 is None:  # as trlearner.run.results.summarise: the report checks it against per_task
        ci95 = float(f"{1.96 * statistics.stdev(per_task) / len(per_task) ** 0.5:.4g}") if len(per_task) > 1 else 0.05
    metrics = {
        "dataset": dataset, "algorithm": algorithm, "variant": variant, "shots": shots,
        "ways": ways, "seed": seed, "metric": metric, "higher_is_better": metric != "mse",
        "mean": mean, "ci95": ci95, "n_tasks": len(per_task),
        "per_task": per_task, "curve": {"steps": [0, 1], "mean": [1.0, mean], "ci95": [0.1, 0.05]},
        "protocol": {"inner_steps_test": 10, "reduced": reduced, "preset": "test" if reduced else "paper"},
        "trlearner": None, "episodes_hash": f"ep-{dataset}-{setting}", "status": status,
        "wall_time_s": wall_time_s,
    }
    if diverged_at is not None:
        metrics["diverged_at_iteration"] = diverged_at
    (run / "metrics.json").write_text(json.dumps(metrics))
    if provenance:
        (run / "provenance.json").write_text(json.dumps(PROVENANCE))
    (run / "log.txt").write_text("log\n")
    return run


def standard_results(root: Path) -> list[dict]:
    """The fixed result set of the golden test; returns the expected-cells spec."""
    # sinusoid 5-shot MAML: 3 seeds per variant, paired by seed.
    for seed, (b, t) in enumerate([(0.5, 0.40), (0.6, 0.45), (0.7, 0.53)]):
        write_run(root, "sinusoid", "maml", "baseline", seed, shots=5, per_task=[b - 0.1, b + 0.1])
        write_run(root, "sinusoid", "maml", "trlearner", seed, shots=5, per_task=[t - 0.1, t + 0.1])
    # sinusoid 10-shot MAML: 1 seed, paired over the same 4 test tasks.
    write_run(root, "sinusoid", "maml", "baseline", 0, shots=10, per_task=[0.30, 0.20, 0.40, 0.30], ci95=0.0800)
    write_run(root, "sinusoid", "maml", "trlearner", 0, shots=10, per_task=[0.25, 0.18, 0.30, 0.27], ci95=0.0500)
    # harmonic 5-shot: MAML + TRLearner diverged; ANIL ran under a reduced protocol.
    write_run(root, "harmonic", "maml", "baseline", 0, shots=5, per_task=[1.0, 1.2])
    write_run(root, "harmonic", "maml", "trlearner", 0, shots=5, mean=float("nan"), per_task=[],
              status="diverged", diverged_at=1234)
    write_run(root, "harmonic", "anil", "baseline", 0, shots=5, per_task=[0.9, 1.1], reduced=True)
    write_run(root, "harmonic", "anil", "trlearner", 0, shots=5, per_task=[0.75, 0.85], reduced=True)
    # omniglot 5-way 1-shot: MAML accuracy as a fraction (shown in percent); ProtoNet failed.
    write_run(root, "omniglot", "maml", "baseline", 0, shots=1, ways=5, metric="accuracy",
              per_task=[0.9, 0.95, 1.0], ci95=0.0566)
    failed = root / "omniglot" / "5way1shot" / "protonet" / "baseline" / "seed0"
    failed.mkdir(parents=True)
    (failed / "log.txt").write_text("Traceback ...\n")
    cells = []
    for v in ("baseline", "trlearner"):
        cells += [dict(dataset="sinusoid", setting="5shot", algorithm="maml", variant=v, seeds=[0, 1, 2]),
                  dict(dataset="sinusoid", setting="10shot", algorithm="maml", variant=v, seeds=[0]),
                  dict(dataset="harmonic", setting="5shot", algorithm="maml", variant=v, seeds=[0]),
                  dict(dataset="harmonic", setting="5shot", algorithm="anil", variant=v, seeds=[0]),
                  dict(dataset="omniglot", setting="5way1shot", algorithm="maml", variant=v, seeds=[0]),
                  dict(dataset="omniglot", setting="5way1shot", algorithm="protonet", variant=v, seeds=[0]),
                  dict(dataset="miniimagenet", setting="5way1shot", algorithm="maml", variant=v,
                       seeds=[0], reason="data unavailable")]
    return cells

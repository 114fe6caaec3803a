"""Meta-iterations per second of every run kind of config/claims.yaml, side by side.

One process builds the training step of each interpretation (the baseline, TRLearner with the
TRConfig defaults, and each ablation point of the config) and times ``--iterations`` training
iterations of each in turn (the same code path as ``trlearner train``: batch, meta-objective,
backward, Adam step), ``--repeats`` times, interleaved so that machine load hits all alike.
It prints each one's median rate and its median cost relative to the baseline timed in the
same repeat (robust to load that changes between repeats), then multiplies out the preset's job count (iterations per
job / rate + the measured test evaluation) into CPU-hours and wall hours on ``--cores`` cores.
This is an estimate from measured rates, not a measured run of the preset.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/claims_rates.py --iterations 2000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trlearner.pipeline.check import check_config  # noqa: E402
from trlearner.pipeline.matrix import Run  # noqa: E402
from trlearner.method.regularizers import make_regularizer  # noqa: E402
from trlearner.method.relation import TRConfig  # noqa: E402
from trlearner.run.config import resolve_config  # noqa: E402
from trlearner.run.evaluation import evaluate, run_source  # noqa: E402
from trlearner.run.model import build, init_meta, make_optimizer, meta_objective  # noqa: E402


def trconfig(pairs: dict) -> TRConfig:
    """The TRConfig of a run's ``trlearner`` settings (config keys; fixed_omega -> learn_omega)."""
    pairs = dict(pairs)
    fixed = bool(pairs.pop("fixed_omega", False))
    return TRConfig(**pairs, learn_omega=not fixed)


class Step:
    """One interpretation's training state, stepped ``n`` iterations at a time."""

    def __init__(self, run: Run):
        trl = trconfig(dict(run.trlearner)) if run.variant == "trlearner" else None
        self.cfg = resolve_config(dataset=run.dataset, algorithm=run.algorithm, shots=run.shots, seed=run.seed,
                                  trlearner=trl, device="cpu", **dict(run.protocol))
        self.src = run_source(self.cfg, "train", self.cfg.seed, self.cfg.train_queries)
        self.algo, self.trl = build(self.cfg, self.src)
        self.reg = make_regularizer("none", 0.0)
        self.meta = {k: v.requires_grad_() for k, v in init_meta(self.cfg, self.algo, self.trl).items()}
        self.opt = make_optimizer(self.meta.values(), self.cfg.outer_lr)
        self.it = 0

    def run(self, n: int) -> float:
        """Seconds for ``n`` training iterations."""
        t0 = time.perf_counter()
        for _ in range(n):
            mb = self.cfg.meta_batch
            batch = self.src.batch(range(self.it * mb, (self.it + 1) * mb))
            loss, _, _ = meta_objective(self.cfg, self.algo, self.trl, self.reg, self.meta, batch, self.it)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.it += 1
        return time.perf_counter() - t0

    def test_seconds(self) -> float:
        """Seconds of the run's final test evaluation (600 tasks, curve over 0..10 steps)."""
        t0 = time.perf_counter()
        evaluate(self.cfg, self.algo, self.meta, "test", self.cfg.test_tasks, "cpu")
        return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "config" / "claims.yaml"))
    p.add_argument("--iterations", type=int, default=2000, help="iterations per timing (default 2000)")
    p.add_argument("--repeats", type=int, default=3, help="timings per interpretation (median; default 3)")
    p.add_argument("--cores", type=int, default=2, help="jobs at once for the wall-time line (default 2)")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    matrix = check_config(yaml.safe_load(Path(args.config).read_text()))
    kinds: dict[str, list[Run]] = {}
    for r in matrix.runs:
        kinds.setdefault(r.point or r.variant, []).append(r)
    steps = {name: Step(runs[0]) for name, runs in kinds.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for rep in range(args.repeats):
        for name, step in steps.items():
            times[name].append(step.run(args.iterations))
            print(f"repeat {rep + 1}/{args.repeats} {name}: {args.iterations / times[name][-1]:.1f} it/s",
                  file=sys.stderr, flush=True)
    test_s = {name: step.test_seconds() for name, step in steps.items()}
    rows, total = [], 0.0
    first = next(iter(times))  # the baseline: each timing's cost relative to it, in the same repeat
    for name, runs in kinds.items():
        rate = args.iterations / statistics.median(times[name])
        ratio = statistics.median(t / b for t, b in zip(times[name], times[first]))
        iters = steps[name].cfg.iterations
        job = iters / rate + test_s[name]
        total += job * len(runs)
        rows.append(dict(kind=name, jobs=len(runs), it_per_s=rate, vs_baseline=ratio, iterations=iters,
                         test_s=test_s[name], job_s=job, all_jobs_h=job * len(runs) / 3600))
    print(f"{'run kind':<18} {'jobs':>4} {'it/s':>7} {'x base':>7} {'test s':>7} {'job min':>8} {'CPU-h':>6}")
    for r in rows:
        print(f"{r['kind']:<18} {r['jobs']:>4} {r['it_per_s']:>7.1f} {r['vs_baseline']:>7.2f} {r['test_s']:>7.1f} "
              f"{r['job_s'] / 60:>8.1f} {r['all_jobs_h']:>6.2f}")
    jobs = sum(r["jobs"] for r in rows)
    print(f"total: {jobs} training jobs, {total / 3600:.1f} CPU-hours at these rates; "
          f"about {total / 3600 / args.cores:.1f} h wall on {args.cores} cores (an estimate from measured rates)")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(rows=rows, cpu_hours=total / 3600, jobs=jobs,
                                                   iterations=args.iterations, repeats=args.repeats), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

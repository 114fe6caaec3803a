"""End to end: the seeds of the known cell as single runs (``trlearner.train.train``, one after
the other in one process) against one stacked run (``trlearner.stacked.train_stacked``), with
the full test evaluation (600 tasks, 100 queries) and checkpoints; wall seconds of each.

    python benchmarks/stacked_e2e.py [--seeds 7] [--iterations 500] [--out /tmp/stacked_e2e]

Writes ``stacked_e2e.json`` into ``--out``. The per-iteration rates it prints are what the
70,000-iteration protocol scales by (the evaluation is paid once per seed either way).
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from trlearner.relation import TRConfig
from trlearner.stacked import train_stacked
from trlearner.train import resolve_config, train


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=7)
    p.add_argument("--iterations", type=int, default=500)
    p.add_argument("--out", default="/tmp/stacked_e2e")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    seeds = list(range(args.seeds))
    res = {"seeds": seeds, "iterations": args.iterations, "rows": []}
    for variant, trl in (("baseline", None), ("trlearner", TRConfig())):
        cfgs = [resolve_config(dataset="sinusoid", algorithm="maml", shots=5, seed=s, iterations=args.iterations,
                               trlearner=trl) for s in seeds]
        t0 = time.perf_counter()
        single = [train(c, out / f"single/{variant}/seed{c.seed}", progress=False) for c in cfgs]
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        stacked = train_stacked(cfgs, [out / f"stacked/{variant}/seed{s}" for s in seeds], progress=False)
        t_stacked = time.perf_counter() - t0
        diff = max(abs(a - b) for m, n in zip(single, stacked) for a, b in zip(m["per_task"], n["per_task"]))
        train_s = sum(m["wall_time_s"] for m in single)
        row = {"variant": variant, "single_runs_s": round(t_single, 1), "stacked_s": round(t_stacked, 1),
               "speed_up": round(t_single / t_stacked, 2), "single_training_s": round(train_s, 1),
               "stacked_training_s": stacked[0]["wall_time_s"],
               "training_speed_up": round(train_s / stacked[0]["wall_time_s"], 2),
               "ms_per_iteration_all_seeds_single": round(1e3 * train_s / args.iterations, 2),
               "ms_per_iteration_all_seeds_stacked": round(1e3 * stacked[0]["wall_time_s"] / args.iterations, 2),
               "max_abs_diff_per_task_test_mse_single_vs_stacked": diff,
               "mean_single": [m["mean"] for m in single], "mean_stacked": [m["mean"] for m in stacked]}
        res["rows"].append(row)
        print(json.dumps(row), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stacked_e2e.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""End to end: the seeds of the known cell as single runs (``trlearner.run.train.train``, one after
the other in one process) against one stacked run (``trlearner.run.stacked.train_stacked``), with
the full test evaluation (600 tasks, 100 queries) and checkpoints, interleaved: each repeat
runs both, in alternating order, so that load from other processes hits both alike.

    python benchmarks/stacked_e2e.py [--seeds 7] [--iterations 300] [--repeats 3] [--out /tmp/stacked_e2e]

Writes ``stacked_e2e.json`` into ``--out``: per variant and repeat the wall seconds of both
(training only: the runs' ``wall_time_s``; and in all, evaluation and writing included), the
median of the paired ratios, and how far the stacked seeds' test MSEs are from the single runs'.
"""

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import torch

from trlearner.method.relation import TRConfig
from trlearner.run.stacked import train_stacked
from trlearner.run.config import resolve_config
from trlearner.run.train import train


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=7)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="/tmp/stacked_e2e")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    seeds = list(range(args.seeds))
    res = {"seeds": seeds, "iterations": args.iterations, "repeats": args.repeats, "variants": {}}
    for variant, trl in (("baseline", None), ("trlearner", TRConfig())):
        cfgs = [resolve_config(dataset="sinusoid", algorithm="maml", shots=5, seed=s, iterations=args.iterations,
                               trlearner=trl) for s in seeds]
        rows = []
        for r in range(args.repeats):
            row = {}
            for mode in (("single", "stacked") if r % 2 == 0 else ("stacked", "single")):
                folder = out / f"{variant}/r{r}/{mode}"
                t0 = time.perf_counter()
                if mode == "single":
                    ms = [train(c, folder / f"seed{c.seed}", progress=False) for c in cfgs]
                    row["single_training_s"] = sum(m["wall_time_s"] for m in ms)
                else:
                    ms = train_stacked(cfgs, [folder / f"seed{s}" for s in seeds], progress=False)
                    row["stacked_training_s"] = ms[0]["wall_time_s"]
                row[f"{mode}_total_s"] = time.perf_counter() - t0
                row[f"{mode}_per_task"] = [m["per_task"] for m in ms]
            rows.append(row)
            print(variant, r, {k: round(v, 1) for k, v in row.items() if k.endswith("_s")}, flush=True)
        diff = max(abs(a - b) for sa, sb in zip(rows[0]["single_per_task"], rows[0]["stacked_per_task"])
                   for a, b in zip(sa, sb))
        res["variants"][variant] = {
            "training_speed_up_median": statistics.median(x["single_training_s"] / x["stacked_training_s"]
                                                          for x in rows),
            "total_speed_up_median": statistics.median(x["single_total_s"] / x["stacked_total_s"] for x in rows),
            "ms_per_iteration_7_seeds_single": [round(1e3 * x["single_training_s"] / args.iterations, 2) for x in rows],
            "ms_per_iteration_7_seeds_stacked": [round(1e3 * x["stacked_training_s"] / args.iterations, 2)
                                                 for x in rows],
            "max_abs_diff_per_task_test_mse_single_vs_stacked": diff,
            "repeats": [{k: v for k, v in x.items() if k.endswith("_s")} for x in rows]}
        print(variant, json.dumps({k: v for k, v in res["variants"][variant].items() if k != "repeats"}), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stacked_e2e.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""GPU check: run the engine on CUDA, compare with the CPU path, measure throughput.

    python benchmarks/gpu_check.py [--out benchmarks/results/gpu_check.json] [--repeats 20]

For each workload (MAML on the sinusoid MLP, meta-batch 25, second order; MAML and ProtoNet
on Conv4 Omniglot-shaped 5-way 1-shot, meta-batch 32, 64 filters, with and without
TRLearner for MAML):

1. correctness: the meta-gradient on the GPU equals the CPU one (float64 on both sides,
   relative error <= 1e-8; and float32 on the GPU against float64 on the CPU <= 1e-3, which
   bounds TF32/cuDNN algorithm differences -- TF32 is switched off for the check);
2. throughput: median meta-iteration time (forward + backward + Adam step, with
   ``torch.cuda.synchronize``) after warm-up, tasks per second, peak GPU memory
   (``torch.cuda.max_memory_allocated``) and, when NVML is available, the mean GPU
   utilisation sampled during the timed loop.

Exits 0 with a message when PyTorch sees no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

from trlearner.bench import Case, Group, build_step, groups

TOL_F64 = 1e-8
TOL_F32 = 1e-3


def workloads() -> list[tuple[Case, Group]]:
    g = groups(quick=False, paper_sizes=True)
    sin, omni = g["sinusoid_mlp"], g["omniglot_conv4"]
    return [(Case(sin.name, "maml", "vmap"), sin), (Case(sin.name, "maml", "vmap", True), sin),
            (Case(omni.name, "maml", "vmap"), omni), (Case(omni.name, "maml", "vmap", True), omni),
            (Case(omni.name, "protonet", "vmap"), omni)]


def meta_gradient(case, group, dtype, device):
    """Meta-gradient of the case's objective, computed on ``device``, returned on the CPU."""
    with torch.device(device):
        _, loss_fn, params = build_step(case, group, dtype)
        grads = torch.autograd.grad(loss_fn(), params, allow_unused=True)
    return [None if g is None else g.detach().double().cpu() for g in grads]


def rel_err(a, b) -> float:
    num = sum(float((x - y).norm() ** 2) for x, y in zip(a, b) if x is not None and y is not None)
    den = sum(float(y.norm() ** 2) for y in b if y is not None)
    return (num / max(den, 1e-300)) ** 0.5


def utilisation_sampler(stop: threading.Event, out: list):
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        while not stop.is_set():
            out.append(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
            time.sleep(0.05)
    except Exception as exc:  # NVML missing: utilisation is reported as unavailable
        out.append(f"unavailable: {type(exc).__name__}")


def throughput(case, group, repeats: int, warmup: int = 3) -> dict:
    with torch.device("cuda"):
        step, _, _ = build_step(case, group)
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    samples, util, stop = [], [], threading.Event()
    th = threading.Thread(target=utilisation_sampler, args=(stop, util), daemon=True)
    th.start()
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    stop.set()
    th.join(timeout=1)
    med = statistics.median(samples)
    nums = [u for u in util if isinstance(u, (int, float))]
    return {"median_s": med, "tasks_per_s": group.meta_batch / med,
            "peak_mem_mib": torch.cuda.max_memory_allocated() / 2**20,
            "gpu_util_mean_pct": statistics.mean(nums) if nums else (util[0] if util else None)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results/gpu_check.json")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: PyTorch sees no CUDA device on this machine; nothing to check.")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cases": []}
    ok = True
    for case, group in workloads():
        row = {"case": case.name, "config": group.describe()}
        try:
            cpu64 = meta_gradient(case, group, torch.float64, "cpu")
            row["rel_err_f64"] = rel_err(meta_gradient(case, group, torch.float64, "cuda"), cpu64)
            row["rel_err_f32_vs_cpu_f64"] = rel_err(meta_gradient(case, group, torch.float32, "cuda"), cpu64)
            row["correct"] = row["rel_err_f64"] <= TOL_F64 and row["rel_err_f32_vs_cpu_f64"] <= TOL_F32
            row.update(throughput(case, group, args.repeats))
        except Exception as exc:
            row["correct"], row["error"] = False, f"{type(exc).__name__}: {exc}"
        ok &= bool(row["correct"])
        res["cases"].append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(f"gpu_check: {'all checks passed' if ok else 'SOME CHECKS FAILED'}; wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

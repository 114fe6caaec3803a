"""GPU check: the training path on CUDA against the CPU, throughput at the protocol's sizes,
and ``trlearner train --device cuda`` end to end. One prepared script with its own time limit.

    python benchmarks/gpu_check.py [--out DIR] [--time-limit 330] [--dry]
    make gpu-check                      # the same, GPU_CHECK_LIMIT=330 seconds

Sections (results as ``gpu_check.json`` and ``gpu_check.md`` in ``--out``; default ``$OUT`` when
set, else ``benchmarks/results/gpu``; rewritten after every section, so a run cut short keeps
what it measured):

1. **equivalence** -- every algorithm (maml, fomaml, anil, metasgd, tnet, protonet), baseline
   and TRLearner (diverse and random sampler), on the sinusoid MLP, an Omniglot-shaped strided
   Conv4 (1x28x28, 5-way 1-shot) and a miniImageNet-shaped max-pool Conv4 (3x84x84, gradient
   clip), plus padded (Meta-Dataset) episodes, a tiny ResNet-12 and the loop back-end: 3
   meta-iterations (``train.meta_objective``, backward, clip, Adam) from the same init on the
   same batches, in float64 on the CPU and on CUDA. Pass: every loss and the total parameter
   update (non-zero) agree to a relative error <= 1e-7.
2. **throughput** -- MAML on Omniglot 5-way and miniImageNet 5-way, 1 and 5 shots, baseline and
   TRLearner, at the protocol's sizes (``trlearner.run.protocols``: meta-batch, filters, inner
   steps, queries, strided/max-pool Conv4), float32, on synthetic images of the protocol's
   shape (no data needed; batches already on the GPU, so loading is not timed; PyTorch's default
   TF32 settings, as train runs): meta-iterations
   per second, peak GPU memory, and GPU utilisation sampled every 50 ms during the timed loop
   (NVML through ``torch.cuda.utilization``, else ``nvidia-smi``).
3. **train** -- ``python -m trlearner train --device cuda`` on a tiny sinusoid run (generated
   data, nothing downloaded; 20 iterations, 50 test tasks), baseline and TRLearner with
   ``--sampler random``; the TRLearner run again on the CPU, whose per-task test MSE must agree
   within 1 % (float32 on both: a sanity check; section 1 is the exact comparison).

Without a CUDA device it prints so and exits 0. ``--dry`` runs every section on the CPU at
tiny sizes (the CPU is then both sides of the comparison), to check the script itself before
spending GPU time; tests/test_device_faithful.py runs it. Exit status: 0 when every check
passed, 1 when one failed, 2 when the time limit cut the run short.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import trlearner  # noqa: F401
except ImportError:  # a GPU machine's own Python with PyTorch, without the package installed
    sys.path.insert(0, str(REPO / "src"))

import torch

from trlearner.engine.algorithms import make_algorithm
from trlearner.engine.backbones import resnet12
from trlearner.data.sources.dispatch import make_source
from trlearner.data.sources.episodes import TaskBatch, mark_batch_padding
from trlearner.method.regularizers import make_regularizer
from trlearner.method.relation import TRConfig, TRLearner
from trlearner.run.config import resolve_config
from trlearner.run.model import build, init_meta, meta_objective

TOL_F64 = 1e-7
TOL_TRAIN = 1e-2  # relative, per test task: float32 runs drift apart a little over 20 Adam steps
ALGOS = ("maml", "fomaml", "anil", "metasgd", "tnet", "protonet")
VARIANTS = {"baseline": None, "trlearner": TRConfig(heads=2), "trlearner-random": TRConfig(heads=2, sampler="random")}
SHAPES = {"omniglot": (1, 28, 28), "miniimagenet": (3, 84, 84)}


class OutOfTime(Exception):
    """The script's own time limit was reached."""


class Clock:
    def __init__(self, limit: float):
        self.start, self.limit = time.monotonic(), limit

    def left(self) -> float:
        return self.limit - (time.monotonic() - self.start)

    def need(self, seconds: float, what: str):
        if self.left() < seconds:
            raise OutOfTime(f"{what}: {self.left():.0f} s left of the {self.limit:.0f} s limit")


# ------------------------------------------------------------------------------ batches


def image_batch(shape, tasks: int, ways: int, shots: int, queries: int, seed: int, padded: bool = False):
    """Synthetic class-contiguous episodes: class c of a task is a random pattern plus noise.
    ``padded``: variable ways/shots, label -1 and NaN-marked inputs at the padding."""
    g = torch.Generator().manual_seed(seed)
    per_task = [(shots,) * ways] * tasks if not padded else [tuple(1 + (t + c) % 3 for c in range(2 + t % (ways - 1)))
                                                             for t in range(tasks)]
    s_max, q_max = max(map(sum, per_task)), max(map(len, per_task)) * queries
    xs, xq = torch.zeros(tasks, s_max, *shape), torch.zeros(tasks, q_max, *shape)
    ys, yq = torch.full((tasks, s_max), -1), torch.full((tasks, q_max), -1)
    for t, k in enumerate(per_task):
        pattern = torch.rand(len(k), *shape, generator=g)
        ys[t, : sum(k)] = torch.cat([torch.full((n,), c) for c, n in enumerate(k)])
        yq[t, : len(k) * queries] = torch.arange(len(k)).repeat_interleave(queries)
        xs[t, : sum(k)] = pattern[ys[t, : sum(k)]] + 0.3 * torch.randn(sum(k), *shape, generator=g)
        xq[t, : len(k) * queries] = pattern[yq[t, : len(k) * queries]] + 0.3 * torch.randn(len(k) * queries, *shape,
                                                                                              generator=g)
    info = {"support_mask": ys >= 0, "query_mask": yq >= 0} if padded else {}
    return mark_batch_padding(TaskBatch(xs, ys, xq, yq, info))


def cast(b: TaskBatch, device, dtype) -> TaskBatch:
    fl = lambda t: t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)
    return TaskBatch(fl(b.xs), fl(b.ys), fl(b.xq), fl(b.yq), {k: v.to(device) for k, v in b.info.items()})


# -------------------------------------------------------------------------- 1. equivalence


def equivalence_cases(dry: bool) -> list[dict]:
    """(name, RunConfig options, task description) of every comparison."""
    cases = []
    for algo in ALGOS:
        for variant in VARIANTS:
            if algo != "protonet":
                cases.append(dict(name=f"sinusoid/{algo}/{variant}", algo=algo, variant=variant, task="sinusoid"))
            cases.append(dict(name=f"omniglot/{algo}/{variant}", algo=algo, variant=variant, task="omniglot"))
            if algo in ("maml", "anil", "protonet") and not dry:
                cases.append(dict(name=f"miniimagenet/{algo}/{variant}", algo=algo, variant=variant,
                                  task="miniimagenet"))
    cases += [dict(name="metadataset-padded/maml/trlearner-random", algo="maml", variant="trlearner-random",
                   task="padded"),
              dict(name="metadataset-padded/protonet/trlearner", algo="protonet", variant="trlearner", task="padded"),
              dict(name="resnet12-tiny/maml/trlearner", algo="maml", variant="trlearner", task="resnet12"),
              dict(name="omniglot/maml/trlearner-random/loop-backend", algo="maml", variant="trlearner-random",
                   task="omniglot", backend="loop")]
    if dry:  # one case per task kind and code path: checks the script, not the device
        keep = ("sinusoid/metasgd/trlearner-random", "omniglot/protonet/trlearner", "omniglot/fomaml/baseline")
        cases = [c for c in cases if c["name"] in keep or c["task"] in ("padded", "resnet12") or "backend" in c]
    return cases


def make_case(case: dict, dry: bool):
    """(config, algorithm, TRLearner or None, 3 batches) of one comparison."""
    algo, task = case["algo"], case["task"]
    trl = VARIANTS[case["variant"]]
    if trl is not None and task == "padded":
        trl = TRConfig(heads=trl.heads, sampler=trl.sampler, class_repr="mean")
    common = dict(algorithm="maml" if algo == "fomaml" else algo, first_order=algo == "fomaml", meta_batch=4,
                  inner_steps=2, trlearner=trl, backend=case.get("backend", "vmap"))
    if task == "sinusoid":
        cfg = resolve_config(dataset="sinusoid", shots=5, **common)
        src = make_source("sinusoid", "train", shots=5, seed=0)
        batches = [src.batch(range(4 * i, 4 * i + 4)) for i in range(3)]
        return cfg, *build(cfg, src), batches
    dataset = {"omniglot": "omniglot", "miniimagenet": "miniimagenet", "resnet12": "miniimagenet",
               "padded": "metadataset_ilsvrc_2012"}[task]
    shape = SHAPES["miniimagenet" if task in ("miniimagenet", "resnet12") else "omniglot"]
    if dry:
        shape = (shape[0], 16, 16)
    ways = {} if task == "padded" else {"ways": 5, "train_ways": 5}
    cfg = resolve_config(dataset=dataset, shots=1, filters=8 if task != "miniimagenet" else 4, train_queries=2,
                         **ways, **common)
    n_out = 5
    source = argparse.Namespace(kind="classification", input_shape=shape, n_out=n_out, padded=task == "padded")
    if task == "resnet12":  # build() makes the full 64-160-320-640 ResNet-12; the same code at tiny widths
        model = make_algorithm(cfg.algorithm, resnet12(shape, n_out, (4, 6, 6, 8)), "classification")
        tr = None if trl is None else TRLearner(model, cfg.trlearner, shots=cfg.shots, ways=cfg.ways)
    else:
        model, tr = build(cfg, source)
    batches = [image_batch(shape, 4, 5, 1, 2, seed=i, padded=task == "padded") for i in range(3)]
    return cfg, model, tr, batches


def run_iterations(cfg, algo, trl, batches, device, dtype):
    """Losses of 3 meta-iterations (as train runs them) and the total update of every parameter."""
    init = {k: v.to(dtype) for k, v in init_meta(cfg, algo, trl).items()}
    meta = {k: v.to(device, copy=True).requires_grad_() for k, v in init.items()}  # init stays as it was
    opt = torch.optim.Adam(meta.values(), lr=cfg.outer_lr)
    reg = make_regularizer(cfg.regularizer, cfg.reg_strength)
    losses = []
    for it, b in enumerate(batches):
        loss, logs, _ = meta_objective(cfg, algo, trl, reg, meta, cast(b, device, dtype), it)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_value_(list(meta.values()), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
    return losses, {k: (v.detach().cpu().double() - init[k].double()) for k, v in meta.items()}


def rel(a: list, b: list) -> float:
    num = sum(float((x - y).double().norm() ** 2) for x, y in zip(a, b))
    den = sum(float(y.double().norm() ** 2) for y in b)
    return (num / max(den, 1e-300)) ** 0.5


def equivalence(device: str, dry: bool, clock: Clock, rows: list):
    for case in equivalence_cases(dry):
        clock.need(30, f"equivalence {case['name']}")
        t0 = time.perf_counter()
        row = {"case": case["name"]}
        try:
            cfg, algo, trl, batches = make_case(case, dry)
            ref_losses, ref_update = run_iterations(cfg, algo, trl, batches, "cpu", torch.float64)
            losses, update = run_iterations(cfg, algo, trl, batches, device, torch.float64)
            row["loss_rel_err"] = max(abs(a - b) / max(abs(b), 1e-300) for a, b in zip(losses, ref_losses))
            row["update_rel_err"] = rel([update[k] for k in ref_update], list(ref_update.values()))
            row["losses_cpu"] = ref_losses
            row["update_norm_cpu"] = sum(float(u.norm() ** 2) for u in ref_update.values()) ** 0.5
            # a zero update would make the comparison empty: the iterations must move the parameters
            row["ok"] = (row["loss_rel_err"] <= TOL_F64 and row["update_rel_err"] <= TOL_F64
                         and row["update_norm_cpu"] > 0)
        except Exception as exc:  # recorded as a failed check, the other cases still run
            row["ok"], row["error"] = False, f"{type(exc).__name__}: {exc}"
        row["seconds"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
        print(f"equivalence {row['case']}: {'ok' if row['ok'] else 'FAILED'} "
              f"{ {k: row[k] for k in ('loss_rel_err', 'update_rel_err', 'error') if k in row} }", flush=True)


# --------------------------------------------------------------------------- 2. throughput


class Utilisation:
    """GPU utilisation (percent) sampled every ``period`` seconds in a thread."""

    def __init__(self, period: float = 0.05):
        self.period, self.samples, self.source = period, [], None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self):
        if self.source in (None, "nvml (torch.cuda.utilization)"):
            try:
                value = torch.cuda.utilization()
                self.source = "nvml (torch.cuda.utilization)"
                return value
            except Exception:  # no pynvml: ask nvidia-smi (slower, still well under the period)
                self.source = "nvidia-smi"
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                              "-i", str(torch.cuda.current_device())], capture_output=True, text=True, timeout=5)
        return int(out.stdout.split()[0])

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(self._read())
            except Exception as exc:
                self.source = f"unavailable ({type(exc).__name__})"
                return
            time.sleep(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> dict:
        s = self.samples
        return {"gpu_util_mean_pct": round(statistics.mean(s), 1) if s else None,
                "gpu_util_median_pct": statistics.median(s) if s else None, "gpu_util_samples": len(s),
                "gpu_util_source": self.source}


def throughput_workloads(dry: bool) -> list[dict]:
    out = []
    for dataset in ("omniglot", "miniimagenet"):
        for shots in (1, 5):
            for variant in ("baseline", "trlearner"):
                out.append(dict(dataset=dataset, shots=shots, variant=variant))
    return out[:2] if dry else out


def throughput(device: str, dry: bool, clock: Clock, rows: list, seconds: float):
    cuda = device.startswith("cuda")
    for w in throughput_workloads(dry):
        clock.need(seconds + 20, f"throughput {w}")
        trl = TRConfig() if w["variant"] == "trlearner" else None
        small = dict(meta_batch=2, filters=4, inner_steps=1) if dry else {}
        cfg = resolve_config(dataset=w["dataset"], algorithm="maml", shots=w["shots"], ways=5, trlearner=trl,
                             **small)
        shape = SHAPES[w["dataset"]] if not dry else (SHAPES[w["dataset"]][0], 16, 16)
        queries = cfg.train_queries or 15
        source = argparse.Namespace(kind="classification", input_shape=shape, n_out=5, padded=False)
        algo, tr = build(cfg, source)
        row = {"workload": f"{w['dataset']} 5-way {w['shots']}-shot maml {w['variant']}",
               "protocol": {k: getattr(cfg, k) for k in ("meta_batch", "inner_steps", "inner_lr", "filters",
                                                         "downsample", "train_queries", "first_order",
                                                         "grad_clip", "backbone")},
               "input": list(shape), "queries_per_class": queries, "dtype": "float32",
               "data": "synthetic images of the protocol's shape, already on the device"}
        try:
            batches = [cast(image_batch(shape, cfg.meta_batch, 5, w["shots"], queries, seed=i), device, torch.float32)
                       for i in range(4)]
            meta = {k: v.to(device).requires_grad_() for k, v in init_meta(cfg, algo, tr).items()}
            opt = torch.optim.Adam(meta.values(), lr=cfg.outer_lr)
            reg = make_regularizer()

            def step(it):
                loss, _, _ = meta_objective(cfg, algo, tr, reg, meta, batches[it % 4], it)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_value_(list(meta.values()), cfg.grad_clip)
                opt.step()

            for it in range(3):  # warm-up (cuDNN algorithm choice, allocator)
                step(it)
            sync = torch.cuda.synchronize if cuda else (lambda: None)
            sync()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            times, it = [], 3
            util = Utilisation() if cuda else None
            with util or _null():
                t_end = time.perf_counter() + (0.5 if dry else seconds)
                while time.perf_counter() < t_end and len(times) < (3 if dry else 500):
                    t0 = time.perf_counter()
                    step(it)
                    sync()
                    times.append(time.perf_counter() - t0)
                    it += 1
            row.update({"iterations_timed": len(times), "meta_iterations_per_s": round(len(times) / sum(times), 3),
                        "median_ms": round(1e3 * statistics.median(times), 3),
                        "tasks_per_s": round(cfg.meta_batch * len(times) / sum(times), 1)})
            if cuda:
                row["peak_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
                row.update(util.summary())
            else:
                row["gpu_util_mean_pct"] = "n/a (no GPU)"
            row["ok"] = True
        except Exception as exc:
            row["ok"], row["error"] = False, f"{type(exc).__name__}: {exc}"
        rows.append(row)
        print(f"throughput {row['workload']}: " + json.dumps({k: row.get(k) for k in (
            "meta_iterations_per_s", "median_ms", "gpu_util_mean_pct", "peak_mem_mib", "error") if k in row}),
            flush=True)
        batches = meta = opt = None
        if cuda:
            torch.cuda.empty_cache()


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------------------------- 3. train


def train_end_to_end(device: str, dry: bool, clock: Clock, rows: list):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    tiny = ["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "3" if dry else "20",
            "--test-tasks", "5" if dry else "50", "--no-progress"]
    runs = [("trlearner-random", device, ["--trlearner", "--sampler", "random"])]
    if not dry:
        runs += [("baseline", device, []), ("trlearner-random", "cpu", ["--trlearner", "--sampler", "random"])]
    work = Path(tempfile.mkdtemp(prefix="gpu_check_train_"))
    metrics = {}
    try:
        for name, dev, extra in runs:
            clock.need(60, f"train {name} on {dev}")
            out = work / f"{name}-{dev}"
            cmd = [sys.executable, "-m", "trlearner", "train", *tiny, "--device", dev, "--out", str(out), *extra]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO,
                               timeout=max(30, clock.left() - 10))
            row = {"run": f"{name} --device {dev}", "exit": p.returncode, "seconds": round(time.perf_counter() - t0, 1),
                   "command": " ".join(["python", *cmd[1:]]).replace(str(out), "<tmp>")}
            if p.returncode == 0:
                m = json.loads((out / "metrics.json").read_text())
                prov = json.loads((out / "provenance.json").read_text())
                metrics[(name, dev)] = m
                row.update({"status": m["status"], "mse": m["mean"], "ci95": m["ci95"],
                            "device_recorded": prov.get("device"), "ok": m["status"] == "ok"})
            else:
                row.update({"ok": False, "stderr_tail": p.stderr[-1500:]})
            rows.append(row)
            print(f"train {row['run']}: exit {p.returncode} " + json.dumps({k: row.get(k) for k in ("mse", "device_recorded")}),
                  flush=True)
        a, b = metrics.get(("trlearner-random", device)), metrics.get(("trlearner-random", "cpu"))
        if a and b and device != "cpu":
            diff = max(abs(x - y) / max(abs(y), 1e-6) for x, y in zip(a["per_task"], b["per_task"]))
            rows.append({"run": f"trlearner-random: {device} vs cpu", "max_rel_diff_per_task_mse": diff,
                         "ok": diff <= TOL_TRAIN})
            print(f"train {device} vs cpu: max relative per-task MSE difference = {diff:.2e}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------ output


def to_markdown(res: dict) -> str:
    lines = [f"# GPU check ({res['when']})", "",
             f"Device: {res['device']}; torch {res['torch']} (CUDA {res['cuda']}); Python {res['python']}; "
             f"command: `{res['command']}`; {res['seconds']:.0f} s of a {res['time_limit_s']:.0f} s limit; "
             f"status: **{res['status']}**." + (" DRY RUN on the CPU (checks the script, not a GPU)." if res["dry"] else ""),
             "", "## CUDA = CPU (float64, 3 meta-iterations from the same init, relative error <= "
             f"{TOL_F64:g})", "", "| case | max loss rel. err | update rel. err | ok |", "|---|---|---|---|"]
    fmt = lambda v: f"{v:.1e}" if isinstance(v, float) else "n/a"
    for r in res["equivalence"]:
        lines.append(f"| {r['case']} | {fmt(r.get('loss_rel_err'))} | {fmt(r.get('update_rel_err'))} | "
                     f"{'yes' if r['ok'] else 'NO: ' + r.get('error', 'over tolerance')} |")
    lines += ["", "## Throughput (MAML, protocol sizes, float32, synthetic images already on the device)", "",
              "| workload | meta-batch | inner steps | filters | queries/class | meta-it/s | median ms | "
              "GPU util % (mean, samples) | peak MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["throughput"]:
        p = r["protocol"]
        util = r.get("gpu_util_mean_pct")
        util = f"{util} ({r.get('gpu_util_samples', 0)}, {r.get('gpu_util_source')})" if isinstance(util, float) else util
        lines.append(f"| {r['workload']} | {p['meta_batch']} | {p['inner_steps']} | {p['filters']} | "
                     f"{r['queries_per_class']} | {r.get('meta_iterations_per_s', r.get('error', 'n/a'))} | "
                     f"{r.get('median_ms', 'n/a')} | {util} | {r.get('peak_mem_mib', 'n/a')} |")
    lines += ["", "## `trlearner train` end to end (sinusoid, tiny)", "", "| run | result | ok |", "|---|---|---|"]
    for r in res["train"]:
        what = (f"MSE {r['mse']:.4f} ± {r['ci95']:.4f}, {r['seconds']} s, device recorded: {r['device_recorded']}"
                if "mse" in r else f"max relative per-task difference {r['max_rel_diff_per_task_mse']:.2e}"
                if "max_rel_diff_per_task_mse" in r else f"exit {r.get('exit')}")
        lines.append(f"| {r['run']} | {what} | {'yes' if r['ok'] else 'NO'} |")
    if res.get("stopped"):
        lines += ["", f"Stopped early: {res['stopped']}"]
    return "\n".join(lines) + "\n"


def write(res: dict, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    res["seconds"] = round(time.monotonic() - res["_t0"], 1)
    clean = {k: v for k, v in res.items() if not k.startswith("_")}
    (out / "gpu_check.json").write_text(json.dumps(clean, indent=1))
    (out / "gpu_check.md").write_text(to_markdown(clean))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "benchmarks" / "results" / "gpu"))
    p.add_argument("--time-limit", type=float, default=330.0, help="seconds for the whole check (default 330)")
    p.add_argument("--seconds", type=float, default=12.0, help="timed seconds per throughput workload")
    p.add_argument("--dry", action="store_true", help="run every section on the CPU at tiny sizes")
    p.add_argument("--sections", default="equivalence,throughput,train")
    args = p.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        print("gpu_check: PyTorch sees no CUDA device on this machine; nothing to check "
              "(run it on a GPU machine, or with --dry to check the script on the CPU).")
        return 0
    device = "cpu" if args.dry else "cuda"
    # PyTorch's TF32 defaults stay as train runs with them: the comparison is float64, which
    # TF32 does not touch, and the throughput is that of a real run
    clock, out = Clock(args.time_limit), Path(args.out)
    res = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "dry": args.dry,
           "device": torch.cuda.get_device_name() if not args.dry else "cpu (dry run)", "torch": torch.__version__,
           "cuda": torch.version.cuda, "python": platform.python_version(),
           "command": "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "time_limit_s": args.time_limit, "status": "running", "seconds": 0.0, "equivalence": [], "throughput": [], "train": [],
           "_t0": time.monotonic()}

    def on_alarm(signum, frame):
        raise OutOfTime(f"hard time limit ({args.time_limit + 30:.0f} s) reached")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.time_limit + 30))
    sections = {"equivalence": lambda: equivalence(device, args.dry, clock, res["equivalence"]),
                "throughput": lambda: throughput(device, args.dry, clock, res["throughput"], args.seconds),
                "train": lambda: train_end_to_end(device, args.dry, clock, res["train"])}
    try:
        for name in args.sections.split(","):
            sections[name]()
            write(res, out)
    except OutOfTime as exc:
        res["stopped"] = str(exc)
        print(f"gpu_check: stopped: {exc}", flush=True)
    finally:
        signal.alarm(0)
    rows = res["equivalence"] + res["throughput"] + res["train"]
    ok = bool(rows) and all(r["ok"] for r in rows)
    res["status"] = "cut short by the time limit" if res.get("stopped") else ("all checks passed" if ok
                                                                               else "SOME CHECKS FAILED")
    write(res, out)
    print(f"gpu_check: {res['status']}; wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")
    return 2 if res.get("stopped") else (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())

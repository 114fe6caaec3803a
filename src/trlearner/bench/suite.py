"""The benchmark suite: meta-iteration time and peak memory of the engine and its baselines.

``python -m trlearner bench [--quick] [--out benchmarks/results] [--repeats N] [--threads 1]``
(or ``python -m trlearner.bench.suite ...``) measures, for every case (algorithm x backbone x
implementation, with and without TRLearner):

- **time** of one meta-iteration: forward + backward + Adam step on a fixed meta-batch that
  is already in memory (episode loading is measured separately). Every case is built and
  warmed up (``--warmup`` iterations) first; then the cases of a group are *interleaved*:
  repeat r times case A, B, C, ... in turn, so that load from other processes hits all cases
  alike. A sample is one ``torch.utils.benchmark.Timer.blocked_autorange`` of the case
  (:mod:`trlearner.bench.timing`): calls until a block of them outlasts the clock's overhead
  (a re-warm after the previous case, not timed), then blocks of that size for >=
  ``--min-sample`` seconds; the sample is the median time per iteration over its blocks. We
  report the median and the quartiles of the samples; a ratio between two cases is the median
  of the per-repeat ratios (paired, the same repeat), which is robust to slow phases of the
  machine.
- **peak memory**: each case runs in a fresh subprocess (``--memory``). After building the
  case (imports, data, parameters) the process's peak-RSS mark is reset (Linux:
  ``/proc/self/clear_refs``), 2 meta-iterations run, and ``VmHWM`` (peak RSS) is read. The
  delta over the RSS before the iterations is what a meta-iteration needs (activations,
  graph, gradients, optimizer state, allocator caches); the absolute peak is reported too.
  ``tracemalloc`` does not see PyTorch's allocations, hence RSS; ``ru_maxrss`` is not used
  on Linux because a child inherits its parent's peak across fork/exec.
- **episode loading**: episodes per second of the regression sources, and of the image
  sources when ``trlearner.data.sources.dispatch.make_source`` can build them (skipped otherwise, with
  the reason).

Implementations: ``vmap`` and ``loop`` are the two back-ends of :mod:`trlearner.engine.core`;
``reference`` is the clone-and-adapt per-task loop of the popular libraries
(:mod:`trlearner.bench.reference`); ``learn2learn`` is learn2learn's own ``MAML`` when that
package imports (an optional, benchmark-only extra).

Results go to ``<out>/bench.json`` and ``<out>/bench.md``.

Example (a few seconds)::

    >>> import contextlib, io, tempfile
    >>> from trlearner.bench.suite import main
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     rc = main(["--quick", "--repeats", "2", "--no-memory", "--groups", "sinusoid_mlp",
    ...                "--out", tempfile.mkdtemp()])
    >>> rc
    0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from trlearner.bench.timing import function_timer, sample
from trlearner.engine.algorithms import make_algorithm
from trlearner.engine.backbones import make_backbone
from trlearner.engine.core import InnerGrad, adapt_batch
from trlearner.method.relation import TRConfig, TRLearner

IMPLS = ("vmap", "loop", "reference", "learn2learn", "singles", "stacked")


# ------------------------------------------------------------------------------ groups


@dataclass(frozen=True)
class Group:
    """One workload: a backbone on a task family, a meta-batch and an inner loop."""

    name: str
    kind: str  # regression | classification
    backbone: str
    input_shape: tuple
    n_out: int
    meta_batch: int
    shots: int  # per class for classification
    queries: int  # per task (regression) or per class (classification)
    inner_steps: int
    inner_lr: float
    filters: int | None = None
    widths: tuple | None = None
    first_order: bool = False
    seeds: int = 1  # > 1: the seeds of one cell, as separate runs ("singles") or stacked

    def describe(self) -> str:
        order = "first" if self.first_order else "second"
        if self.kind == "regression":
            what = f"{self.shots}-shot, {self.queries} queries"
        else:
            what = f"{self.n_out}-way {self.shots}-shot, {self.queries} queries/class"
        size = f", filters {self.filters}" if self.filters else ""
        size += f", widths {list(self.widths)}" if self.widths else ""
        seeds = f"; {self.seeds} seeds per iteration (time of all of them)" if self.seeds > 1 else ""
        return (f"{self.backbone} {'x'.join(map(str, self.input_shape))}{size}; meta-batch "
                f"{self.meta_batch}, {what}, {self.inner_steps} inner step(s), {order} order{seeds}")


def groups(quick: bool, paper_sizes: bool = False) -> dict[str, Group]:
    """The workloads of the full suite (or of the quick one: same code paths, tiny sizes).

    The sinusoid group is the paper's protocol. The image groups are reduced by default so
    the suite runs on a 2-core CPU in minutes (one Conv4-64 meta-batch of 32 second-order
    tasks takes ~100 s there); ``paper_sizes=True`` uses the protocol's sizes (Omniglot:
    meta-batch 32, 64 filters; ResNet-12 widths 64-160-320-640) for bigger machines.
    """
    sinus = Group("sinusoid_mlp", "regression", "mlp", (1,), 1, meta_batch=25, shots=5,
                  queries=5, inner_steps=1, inner_lr=0.01)
    omni = Group("omniglot_conv4", "classification", "conv4", (1, 28, 28), 5, meta_batch=4,
                 shots=1, queries=15, inner_steps=1, inner_lr=0.4, filters=32)
    mini = Group("miniimagenet_resnet12", "classification", "resnet12", (3, 84, 84), 5,
                 meta_batch=2, shots=1, queries=1, inner_steps=1, inner_lr=0.01,
                 widths=(32, 80, 160, 320), first_order=True)
    seeds = Group(**{**asdict(sinus), "name": "sinusoid_seeds", "seeds": 7})
    if paper_sizes:
        omni = Group(**{**asdict(omni), "meta_batch": 32, "filters": 64})
        mini = Group(**{**asdict(mini), "meta_batch": 4, "queries": 15, "widths": (64, 160, 320, 640)})
    if quick:
        sinus = Group(**{**asdict(sinus), "meta_batch": 4})
        seeds = Group(**{**asdict(seeds), "meta_batch": 4, "seeds": 2})
        omni = Group(**{**asdict(omni), "meta_batch": 2, "filters": 8, "queries": 2})
        mini = Group(**{**asdict(mini), "input_shape": (3, 32, 32), "meta_batch": 2,
                        "queries": 1, "widths": (8, 8, 8, 8)})
    return {g.name: g for g in (sinus, seeds, omni, mini)}


@dataclass(frozen=True)
class Case:
    """One measured thing: ``impl`` of ``algorithm`` on ``group``, optionally with TRLearner
    or an ``option`` (``fo_cached``: first-order ANIL with the support features computed
    once without a graph; ``func``: the ``vmap`` back-end without its task-batched fast path,
    i.e. ``vmap`` + ``torch.func.grad``)."""

    group: str
    algorithm: str
    impl: str
    trlearner: bool = False
    option: str = ""

    @property
    def name(self) -> str:
        parts = [self.group, self.algorithm, self.impl]
        if self.trlearner:
            parts.append("trlearner")
        if self.option:
            parts.append(self.option)
        return "/".join(parts)


def l2l_available() -> str | None:
    """learn2learn's version when it imports beside this torch, else None."""
    try:
        import learn2learn  # noqa: F401

        return learn2learn.__version__
    except Exception:  # any import failure means "not available"; reported in the results
        return None


def default_cases(quick: bool, group_names=None) -> list[Case]:
    cases: list[Case] = []
    names = group_names or list(groups(quick))
    if "sinusoid_mlp" in names:
        g = "sinusoid_mlp"
        for algo in ("maml", "anil", "metasgd", "tnet"):
            cases += [Case(g, algo, "vmap"), Case(g, algo, "loop"), Case(g, algo, "vmap", True),
                      Case(g, algo, "vmap", option="func")]
        cases.append(Case(g, "maml", "reference"))
        if l2l_available():
            cases.append(Case(g, "maml", "learn2learn"))
        cases.append(Case(g, "anil", "vmap", option="fo_cached"))
        cases.append(Case(g, "anil", "vmap", option="fo"))
    if "sinusoid_seeds" in names:  # the seeds of one cell: 7 single runs vs one stacked run
        g = "sinusoid_seeds"
        for trl in (False, True):
            cases += [Case(g, "maml", "singles", trl), Case(g, "maml", "stacked", trl)]
    if "omniglot_conv4" in names:
        g = "omniglot_conv4"
        for algo in ("maml", "anil", "metasgd", "tnet", "protonet"):
            cases += [Case(g, algo, "vmap"), Case(g, algo, "loop")]
        cases += [Case(g, "maml", "vmap", True), Case(g, "protonet", "vmap", True)]
        cases += [Case(g, "anil", "vmap", option="fo"), Case(g, "anil", "vmap", option="fo_cached")]
    if "miniimagenet_resnet12" in names:
        g = "miniimagenet_resnet12"
        for algo in ("maml", "protonet"):
            cases += [Case(g, algo, "vmap"), Case(g, algo, "loop")]
    return cases


# -------------------------------------------------------------------------- building


def make_batch(group: Group, dtype=torch.float32, seed: int = 0):
    """A fixed meta-batch (xs, ys, xq, yq): sinusoid episodes for regression, random
    tensors of the right shapes (labels 0..N-1 in class order) for classification."""
    t = group.meta_batch
    if group.kind == "regression":
        from trlearner.data.sources.regression import RegressionSource

        b = RegressionSource("sinusoid", "train", group.shots, group.queries, seed).batch(range(t))
        return tuple(x.to(dtype) for x in (b.xs, b.ys, b.xq, b.yq))
    gen = torch.Generator().manual_seed(seed)
    n = group.n_out
    xs = torch.rand(t, n * group.shots, *group.input_shape, generator=gen, dtype=dtype)
    xq = torch.rand(t, n * group.queries, *group.input_shape, generator=gen, dtype=dtype)
    ys = torch.arange(n).repeat_interleave(group.shots).expand(t, -1).contiguous()
    yq = torch.arange(n).repeat_interleave(group.queries).expand(t, -1).contiguous()
    return xs, ys, xq, yq


def build_backbone(group: Group):
    kwargs = {"filters": group.filters} if group.filters else {}
    if group.backbone == "resnet12" and group.widths:
        from trlearner.engine.backbones import resnet12

        return resnet12(tuple(group.input_shape), group.n_out, widths=group.widths)
    return make_backbone(group.backbone, group.input_shape, group.n_out, **kwargs)


def build_step(case: Case, group: Group, dtype=torch.float32):
    """``(step, loss_fn, params)``: ``step()`` runs one meta-iteration (forward, backward,
    Adam step); ``loss_fn()`` is the meta-objective alone; ``params`` the trained tensors."""
    if case.impl in ("singles", "stacked"):
        return build_seeds_step(case, group, dtype)
    xs, ys, xq, yq = make_batch(group, dtype)
    steps, lr, fo = group.inner_steps, group.inner_lr, group.first_order
    gen = torch.Generator().manual_seed(0)
    adam = torch.optim.Adam  # what a user of the clone-and-adapt libraries writes

    if case.impl in ("reference", "learn2learn"):
        if case.algorithm != "maml" or group.backbone != "mlp":
            raise ValueError("the clone-and-adapt reference covers MAML on the MLP only")
        from trlearner.bench.reference import ReferenceMLP, learn2learn_maml_loss, reference_maml_loss

        algo = make_algorithm("maml", build_backbone(group), group.kind)
        model = ReferenceMLP().load_engine_params(algo.init_params(gen, lr)).to(dtype)
        params = list(model.parameters())
        if case.impl == "reference":
            def loss_fn():
                return reference_maml_loss(model, xs, ys, xq, yq, steps, lr, fo)
        else:
            import learn2learn as l2l

            maml = l2l.algorithms.MAML(model, lr=lr, first_order=fo)

            def loss_fn():
                return learn2learn_maml_loss(maml, xs, ys, xq, yq, steps)
    else:
        from trlearner.run.model import make_optimizer as adam  # the project's own (fused) Adam

        algo = make_algorithm(case.algorithm, build_backbone(group), group.kind)
        if case.algorithm == "protonet":
            steps = 0
        meta = algo.init_params(gen, lr)
        trl = None
        if case.trlearner:
            trl = TRLearner(algo, TRConfig(), shots=group.shots,
                            ways=group.n_out if group.kind == "classification" else None)
            meta.update(trl.init_params(gen))
        meta = {k: v.to(dtype).requires_grad_() for k, v in meta.items()}
        params = list(meta.values())
        if case.option in ("fo", "fo_cached") and case.algorithm != "anil":
            raise ValueError("the fo/fo_cached options are for ANIL")
        if case.option == "func" and (trl is not None or case.impl != "vmap"):
            raise ValueError("the func option is for the vmap back-end without TRLearner")
        if trl is not None:
            from trlearner.data.sources.episodes import TaskBatch

            batch = TaskBatch(xs, ys, xq, yq, {})
            sampler_gen = torch.Generator().manual_seed(1)

            def loss_fn():
                return trl.meta_loss(meta, batch, steps, lr, case.impl, fo, sampler_gen).loss
        elif case.option == "fo_cached":
            def loss_fn():
                return anil_first_order_cached_loss(algo, meta, xs, ys, xq, yq, steps, lr)
        else:
            first_order = fo or case.option == "fo"
            fast = False if case.option == "func" else None

            def loss_fn():
                return adapt_batch(algo, meta, xs, ys, xq, yq, steps, lr, case.impl, first_order,
                                   tasks_batched=fast).losses.mean()

    opt = adam(params, lr=1e-3)

    def step():
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, loss_fn, params


def build_seeds_step(case: Case, group: Group, dtype=torch.float32):
    """``group.seeds`` runs of one cell for one iteration: ``singles`` steps them one after
    the other as ``trlearner train`` would (its objective, one fused Adam per run); ``stacked``
    is one :func:`trlearner.run.stacked.stacked_objective` over all of them (per-seed Adams).
    Each seed has its own init and its own meta-batch (sinusoid episodes of seed s)."""
    from types import SimpleNamespace

    from trlearner.data.sources.episodes import TaskBatch
    from trlearner.method.regularizers import make_regularizer
    from trlearner.run.stacked import stacked_objective
    from trlearner.run.model import make_optimizer

    algo = make_algorithm(case.algorithm, build_backbone(group), group.kind)
    trl = TRLearner(algo, TRConfig(), shots=group.shots) if case.trlearner else None
    metas, batches = [], []
    for s in range(group.seeds):
        gen = torch.Generator().manual_seed(s)
        meta = algo.init_params(gen, group.inner_lr)
        if trl is not None:
            meta.update(trl.init_params(gen))
        metas.append({k: v.to(dtype).requires_grad_() for k, v in meta.items()})
        batches.append(TaskBatch(*make_batch(group, dtype, seed=s), {}))
    opts = [make_optimizer(m.values(), 1e-3) for m in metas]
    cfg = SimpleNamespace(inner_steps=group.inner_steps, inner_lr=group.inner_lr, first_order=group.first_order)
    reg = make_regularizer()
    steps, lr, fo = group.inner_steps, group.inner_lr, group.first_order

    def one_run_loss(meta, b):
        if trl is None:
            return adapt_batch(algo, meta, b.xs, b.ys, b.xq, b.yq, steps, lr, "vmap", fo).losses.mean()
        return trl.meta_loss(meta, b, steps, lr, "vmap", fo).loss

    def loss_fn():
        if case.impl == "singles":
            return sum(one_run_loss(m, b) for m, b in zip(metas, batches))
        masks = None if trl is None else [trl.sample_mask(m, b.xs, b.ys) for m, b in zip(metas, batches)]
        return stacked_objective(algo, trl, reg, cfg, metas, batches, masks)[0].sum()

    def step():
        if case.impl == "singles":  # each run: forward, backward, Adam, as one process per seed does
            for m, b, o in zip(metas, batches, opts):
                loss = one_run_loss(m, b)
                o.zero_grad(set_to_none=True)
                loss.backward()
                o.step()
            return
        loss = loss_fn()
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()

    return step, loss_fn, [v for m in metas for v in m.values()]


def anil_first_order_cached_loss(algo, meta, xs, ys, xq, yq, steps, lr):
    """First-order ANIL with feature caching (a benchmark option, not in the engine).

    In first-order ANIL the inner gradients are constants of the meta-gradient, so the
    support features only feed constants: compute them once per task *without* an autograd
    graph (``torch.no_grad``) and adapt the head on them. The meta-gradient equals the
    engine's ``first_order=True`` ANIL exactly; forward time and memory for the support path
    are saved.
    """
    from torch.func import vmap

    bb = algo.backbone
    with torch.no_grad():
        hs = vmap(bb.features, in_dims=(None, 0))({k: v.detach() for k, v in meta.items()}, xs)
    grad = InnerGrad("func", first_order=True)

    def one_task(hs_t, ys_t, xq_t, yq_t):
        state = {k: meta[k] for k in bb.head_keys}

        def support_loss(s):
            return algo.loss_fn(bb.head({**meta, **s}, hs_t), ys_t)

        for _ in range(steps):
            g = grad(support_loss, state)
            state = {k: state[k] - lr * g[k] for k in state}
        return algo.loss_fn(bb.head({**meta, **state}, bb.features(meta, xq_t)), yq_t)

    return vmap(one_task)(hs, ys, xq, yq).mean()


# --------------------------------------------------------------------------- timing


def _quantiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def time_group(cases: list[Case], group: Group, repeats: int, warmup: int, min_sample: float,
               log=print) -> dict[str, dict]:
    """Interleaved timing of ``cases`` (all of ``group``): returns per case the samples
    (seconds per meta-iteration, each the median of one :func:`trlearner.bench.timing.sample`
    lasting >= ``min_sample`` s), their quartiles and the iterations timed per sample (median)."""
    built, timers = {}, {}
    for c in cases:
        try:
            step, _, _ = build_step(c, group)
            for _ in range(max(1, warmup)):
                step()
            built[c.name], timers[c.name] = step, function_timer(step)
        except Exception as exc:  # reported in the results, never silently dropped
            log(f"  {c.name}: failed to build/run: {type(exc).__name__}: {exc}")
            built[c.name] = exc
    samples = {n: [] for n in timers}
    iters = {n: [] for n in timers}
    for r in range(repeats):
        order = [c.name for c in cases if c.name in timers]
        k = r % max(1, len(order))
        for name in order[k:] + order[:k]:  # rotate the order so no case always runs first
            seconds, calls = sample(timers[name], min_sample)
            samples[name].append(seconds)
            iters[name].append(calls)
    out = {}
    for c in cases:
        if c.name in samples:
            q1, med, q3 = _quantiles(samples[c.name])
            out[c.name] = {"samples_s": samples[c.name], "median_s": med, "q1_s": q1, "q3_s": q3,
                           "iters_per_sample": int(statistics.median(iters[c.name])), "status": "ok"}
            log(f"  {c.name:55s} {med * 1e3:9.2f} ms  [{q1 * 1e3:.2f}, {q3 * 1e3:.2f}]")
        else:
            exc = built[c.name]
            out[c.name] = {"status": f"failed: {type(exc).__name__}: {exc}"}
    return out


def paired_ratio(num: list[float], den: list[float]) -> dict:
    """Median (and quartiles) of the per-repeat ratios num[r] / den[r]."""
    rs = [a / b for a, b in zip(num, den)]
    q1, med, q3 = _quantiles(rs)
    return {"median": med, "q1": q1, "q3": q3, "n": len(rs)}


# --------------------------------------------------------------------------- memory


def _proc_status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for ln in f:
                if ln.startswith(field + ":"):
                    return int(ln.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_case(case: Case, group: Group, iters: int = 2) -> dict:
    """Peak resident memory of ``iters`` meta-iterations of ``case`` (run it in a fresh
    process).

    Linux: the peak-RSS mark ``VmHWM`` is reset after the case is built, so the reported
    peak is the highest RSS *during the meta-iterations*; the delta is that peak minus the
    RSS just before them. (``getrusage().ru_maxrss`` is not usable here: Linux carries the
    parent's peak across fork/exec into the child.) Elsewhere falls back to ``ru_maxrss``.
    """
    step, _, _ = build_step(case, group)
    if _reset_peak_rss() and _proc_status_mib("VmHWM") is not None:
        method = "VmHWM after clear_refs"
        before = _proc_status_mib("VmRSS")
        for _ in range(iters):
            step()
        after = _proc_status_mib("VmHWM")
    else:
        method = "ru_maxrss"
        scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        for _ in range(iters):
            step()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return {"rss_setup_mib": round(before, 1), "rss_peak_mib": round(after, 1),
            "rss_delta_mib": round(after - before, 1), "method": method}


def measure_memory(case: Case, group: Group, threads: int, timeout: float = 900) -> dict:
    spec = json.dumps({"case": asdict(case), "group": asdict(group)})
    cmd = [sys.executable, "-m", "trlearner.bench.suite", "--threads", str(threads), "--memory-case", spec]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"failed: memory subprocess timed out after {timeout:.0f}s"}
    if res.returncode != 0:
        return {"status": f"failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}"}
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "status": "ok"}


# ------------------------------------------------------------------------ loading


def _batch_time(src, n: int, repeats: int, first: int = 0) -> float:
    """Median seconds of ``src.batch`` of ``n`` episodes over ``repeats`` samples
    (:func:`trlearner.bench.timing.sample`, the shortest each); every call builds new episodes
    (batches ``first``, ``first + 1``, ...), so none is served from a cache."""
    nxt = [first]

    def next_batch():
        src.batch(range(nxt[0] * n, (nxt[0] + 1) * n))
        nxt[0] += 1

    timer = function_timer(next_batch)
    return statistics.median(sample(timer, 0.0)[0] for _ in range(repeats))


def loading_throughput(quick: bool, repeats: int) -> list[dict]:
    """Episodes per second of the task sources (regression always; images if available)."""
    from trlearner.data.sources.dispatch import make_source

    rows = []
    specs = [("sinusoid", "train", dict(shots=5), 25), ("sinusoid", "test", dict(shots=5), 600),
             ("harmonic", "train", dict(shots=5), 25)]
    for ds, split, kw, n in specs:
        src = make_source(ds, split, **kw)
        src.batch(range(n))  # warm-up
        med = _batch_time(src, n, repeats)
        rows.append({"source": f"{ds}/{split}", "episodes_per_batch": n, "median_s": med,
                     "episodes_per_s": n / med, "status": "ok"})
    for ds, ways, shots, n in (("omniglot_small", 5, 1, 4 if quick else 32), ("omniglot", 5, 1, 4 if quick else 32),
                               ("miniimagenet", 5, 1, 4)):
        try:
            src = make_source(ds, "train", shots=shots, ways=ways, queries=15)
            src.batch(range(n))
            med = _batch_time(src, n, max(2, repeats // 2), first=1)
            rows.append({"source": f"{ds}/train {ways}-way {shots}-shot", "episodes_per_batch": n,
                         "median_s": med, "episodes_per_s": n / med, "status": "ok"})
        except Exception as exc:  # data layer or data not there: say so
            rows.append({"source": f"{ds}/train {ways}-way {shots}-shot", "status":
                         f"skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"})
    return rows


# ------------------------------------------------------------------------- report


def ratio_rows(timings: dict, cases: list[Case]) -> list[dict]:
    """The comparisons the issue asks for, each measured side by side."""
    rows = []
    names = {c.name for c in cases}

    def add(what, num, den, target=None, direction=None):
        a, b = timings.get(num, {}), timings.get(den, {})
        if num in names and den in names and a.get("status") == "ok" and b.get("status") == "ok":
            r = paired_ratio(a["samples_s"], b["samples_s"])
            row = {"comparison": what, "numerator": num, "denominator": den, **r}
            if target is not None:
                row["target"] = f"{direction} {target}"
                row["met"] = r["median"] >= target if direction == ">=" else r["median"] <= target
            rows.append(row)

    for c in cases:
        base = Case(c.group, c.algorithm, "vmap").name
        if c.impl == "loop" and not c.trlearner and not c.option:
            add(f"{c.group} {c.algorithm}: loop / vmap (speed-up of vmap)", c.name, base)
        if c.impl == "stacked":
            add(f"{c.group} {c.algorithm}{' TRLearner' if c.trlearner else ''}: {c.impl} speed-up "
                f"(singles / stacked)", Case(c.group, c.algorithm, "singles", c.trlearner).name, c.name)
            if c.trlearner:
                add(f"{c.group} {c.algorithm}: TRLearner / baseline (stacked)", c.name,
                    Case(c.group, c.algorithm, "stacked").name)
        if c.impl in ("reference", "learn2learn"):
            # issue 8: >= 5x the clone-and-adapt loop; issue 18: >= 10x learn2learn's MAML
            tgt = ({"reference": 5.0, "learn2learn": 10.0}[c.impl]
                   if c.group == "sinusoid_mlp" and c.algorithm == "maml" else None)
            add(f"{c.group} {c.algorithm}: {c.impl} clone-and-adapt / vmap (speed-up of vmap)",
                c.name, base, tgt, ">=")
            add(f"{c.group} {c.algorithm}: {c.impl} clone-and-adapt / engine loop", c.name,
                Case(c.group, c.algorithm, "loop").name)
        if c.trlearner and c.impl not in ("singles", "stacked"):
            base_impl = Case(c.group, c.algorithm, c.impl).name
            tgt = 1.5 if c.group == "sinusoid_mlp" else None  # issue 18 (issue 8 asked 1.3)
            add(f"{c.group} {c.algorithm}: TRLearner / baseline ({c.impl})", c.name, base_impl, tgt, "<=")
        if c.option:
            add(f"{c.group} {c.algorithm}: option {c.option} / vmap", c.name, base)
    return rows


def machine_info(threads: int) -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "torch_threads": threads,
            "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "learn2learn": l2l_available(),
            "loadavg_at_start": load}


def to_markdown(res: dict) -> str:
    m = res["machine"]
    out = [f"# Benchmark results ({'quick' if res['settings']['quick'] else 'full'} mode)", "",
           f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']} "
           f"({m['torch_threads']} thread(s)), Python {m['python']}; learn2learn: "
           f"{m['learn2learn'] or 'not installed'}; load average at start: {m['loadavg_at_start']}.",
           f"Command: `{res['settings']['command']}`", "",
           "Time: one meta-iteration (forward + backward + Adam step), median [quartiles] of "
           f"{res['settings']['repeats']} interleaved samples after {res['settings']['warmup']} "
           "warm-up iterations. Memory: extra peak RSS of a meta-iteration over the built case "
           "(fresh subprocess per case; absolute peak in parentheses).", ""]
    for gname, g in res["groups"].items():
        out += [f"## {gname}", "", f"{g['description']}", "",
                "| algorithm | implementation | TRLearner | option | ms / meta-iteration | peak RSS delta MiB (peak) |",
                "|---|---|---|---|---|---|"]
        for c in res["cases"]:
            if c["group"] != gname:
                continue
            t = c["time"]
            ts = (f"{t['median_s'] * 1e3:.2f} [{t['q1_s'] * 1e3:.2f}, {t['q3_s'] * 1e3:.2f}]"
                  if t.get("status") == "ok" else t.get("status", "n/a"))
            mem = c.get("memory") or {}
            ms = (f"{mem['rss_delta_mib']:.1f} ({mem['rss_peak_mib']:.0f})" if mem.get("status") == "ok"
                  else mem.get("status", "not measured"))
            out.append(f"| {c['algorithm']} | {c['impl']} | {'yes' if c['trlearner'] else 'no'} | "
                       f"{c['option'] or '-'} | {ts} | {ms} |")
        out.append("")
    out += ["## Ratios (median of per-repeat paired ratios [quartiles])", "",
            "| comparison | ratio | target | met |", "|---|---|---|---|"]
    for r in res["ratios"]:
        out.append(f"| {r['comparison']} | {r['median']:.2f} [{r['q1']:.2f}, {r['q3']:.2f}] | "
                   f"{r.get('target', '')} | {'' if 'met' not in r else ('yes' if r['met'] else 'NO')} |")
    out += ["", "## Episode loading", "", "| source | episodes / batch | episodes / s |", "|---|---|---|"]
    for r in res["loading"]:
        if r["status"] == "ok":
            out.append(f"| {r['source']} | {r['episodes_per_batch']} | {r['episodes_per_s']:.0f} |")
        else:
            out.append(f"| {r['source']} | - | {r['status']} |")
    if res.get("pipeline"):
        out += ["", "## Pipeline overheads (wall time of the snakemake command, median)", "",
                "| what | preset | seconds |", "|---|---|---|"]
        for r in res["pipeline"]:
            val = f"{r['median_s']:.2f} ({len(r['samples_s'])} runs)" if r["status"] == "ok" else r["status"]
            out.append(f"| {r['what']} | {r['preset']} | {val} |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, not speed")
    p.add_argument("--out", default="benchmarks/results", help="folder for bench.json and bench.md")
    p.add_argument("--repeats", type=int, default=None, help="interleaved samples per case (default 15, quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up iterations per case (default 3, quick 1)")
    p.add_argument("--min-sample", type=float, default=None,
                   help="seconds a timing sample lasts at least (default 0.05, quick 0)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--groups", nargs="+", default=None,
                   help="workloads to run: sinusoid_mlp omniglot_conv4 miniimagenet_resnet12 (default: all)")
    p.add_argument("--repeats-heavy", type=int, default=None,
                   help="samples per case for the conv groups (default: min(repeats, 5))")
    p.add_argument("--memory", dest="memory", action="store_true", default=True,
                   help="measure peak RSS per case in a subprocess (default)")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-RSS measurement")
    p.add_argument("--no-loading", dest="loading", action="store_false", default=True,
                   help="skip the episode-loading measurement")
    p.add_argument("--paper-sizes", action="store_true",
                   help="image groups at the protocol's sizes (slow on a small CPU)")
    p.add_argument("--no-pipeline", dest="pipeline", action="store_false", default=True,
                   help="skip the pipeline overheads (snakemake dry runs of the presets, no-op rerun)")
    p.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)


def run(args) -> int:
    torch.set_num_threads(args.threads)
    if args.memory_case:  # internal: one memory measurement in this fresh process
        spec = json.loads(args.memory_case)
        print(json.dumps(memory_case(Case(**spec["case"]), Group(**{
            k: tuple(v) if isinstance(v, list) else v for k, v in spec["group"].items()}))))
        return 0
    quick = args.quick
    repeats = args.repeats or (3 if quick else 15)
    warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    min_sample = args.min_sample if args.min_sample is not None else (0.0 if quick else 0.05)
    heavy = args.repeats_heavy or min(repeats, 5)
    all_groups = groups(quick, args.paper_sizes)
    names = args.groups or list(all_groups)
    unknown = set(names) - set(all_groups)
    if unknown:
        raise SystemExit(f"unknown group(s) {sorted(unknown)}; choose from {list(all_groups)}")
    cases = default_cases(quick, names)
    words = sys.argv[1:][1:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]  # `python -m trlearner bench ...`
    command = " ".join(["python -m trlearner bench", *words])
    res = {"settings": {"quick": quick, "repeats": repeats, "repeats_heavy": heavy, "warmup": warmup,
                        "min_sample_s": min_sample, "threads": args.threads, "command": command,
                        "memory_method": "fresh subprocess per case; Linux: peak RSS (VmHWM, reset via /proc/self/clear_refs after building the case) during 2 meta-iterations minus RSS before them"},
           "machine": machine_info(args.threads), "groups": {}, "cases": [], "ratios": [], "loading": [],
           "pipeline": []}
    timings = {}
    t_start = time.perf_counter()
    for gname in names:
        g = all_groups[gname]
        gcases = [c for c in cases if c.group == gname]
        print(f"[bench] {gname}: {g.describe()}", flush=True)
        r = repeats if gname.startswith("sinusoid") else heavy
        timings.update(time_group(gcases, g, r, warmup, min_sample, log=lambda s: print(s, flush=True)))
        res["groups"][gname] = {"description": g.describe(), "config": asdict(g), "repeats": r}
        for c in gcases:
            mem = measure_memory(c, g, args.threads) if args.memory else None
            res["cases"].append({**asdict(c), "name": c.name, "time": timings[c.name], "memory": mem})
    res["ratios"] = ratio_rows(timings, cases)
    if args.loading:
        res["loading"] = loading_throughput(quick, repeats)
    if args.pipeline:
        from trlearner.bench.pipeline import pipeline_overheads

        print("[bench] pipeline overheads (snakemake dry runs)", flush=True)
        res["pipeline"] = pipeline_overheads(("default",) if quick else ("default", "paper"), 1 if quick else 3)
    res["wall_s"] = time.perf_counter() - t_start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(res, indent=1))
    (out / "bench.md").write_text(to_markdown(res))
    print(f"[bench] wrote {out / 'bench.json'} and {out / 'bench.md'} in {res['wall_s']:.0f}s", flush=True)
    for r in res["ratios"]:
        if "target" in r:
            print(f"[bench] {r['comparison']}: {r['median']:.2f} (target {r['target']}: "
                  f"{'met' if r['met'] else 'NOT met'})")
    return 0


def register(subparsers) -> None:
    """Add the ``bench`` subcommand to the ``trlearner`` CLI."""
    p = subparsers.add_parser("bench", help="benchmark suite: meta-iteration time, memory, loading",
                              description=__doc__.split("\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trlearner.bench.suite", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

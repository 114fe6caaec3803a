"""Stacked runs: the seeds of one cell meta-trained together in one process.

The seeds of a cell share architecture and protocol, so one process can train them at once,
``torch.func.vmap``-ed over a seed dimension (``torch.func.stack_module_state`` semantics:
every meta-parameter becomes [S, ...] for the step's forward and backward). The per-op
overhead that sets the time of one small run (the sinusoid MLP) is then paid once per
iteration instead of once per seed.

What stays per seed, exactly as in a single run (:func:`trlearner.run.train.train`):

- the meta-parameter init (:func:`trlearner.run.model.init_meta`), the meta-batch of iteration ``it`` (episodes
  ``it*B .. it*B+B-1`` of that seed's training source) and the sampler/regulariser generator
  seeded by (seed, it); TRLearner's sampler runs per seed, before the seed ``vmap``
  (:meth:`trlearner.method.relation.TRLearner.sample_mask`);
- the optimiser: each seed has its own leaf tensors and its own fused Adam
  (:func:`trlearner.run.model.make_optimizer`), whose tensors have the single run's shapes;
- the run folder, held by the single run's session (:mod:`trlearner.run.session`: lock,
  ``log.txt``, another run's results refused or with ``--force`` replaced, temporary files
  removed, ``checkpoint.pt`` in the same format plus ``"trainer": "stacked"``), and
  ``metrics.json`` and ``provenance.json`` written by the single run's writer
  (:func:`trlearner.run.record.write_results`; provenance adds a ``stacked`` record).

A seed's numbers do not depend on which other seeds share its process (tests/test_stacked.py
trains seeds {0, 1, 2} stacked and seed 1 alone, and compares metrics.json bit for bit), so
seeds can be added to a cell later, trained in any grouping, and resumed at different
iterations: a seed whose checkpoint is ahead waits until the stack reaches its iteration. A
stacked seed is NOT bit-identical to the same seed trained by ``train`` (batched matmuls
instead of plain ones: float32 rounding; docs/PIPELINE.md gives the measured difference), so
a stacked checkpoint resumes only in a stacked run and vice versa.

Command line (one Snakemake job per cell and variant instead of one per seed; the options
of ``trlearner train``, with ``--seeds`` for ``--seed`` and ``{seed}`` in ``--out``)::

    python -m trlearner.run.stacked --dataset sinusoid --algorithm maml --shots 5 \\
        --seeds 0 1 2 --out results/runs/sinusoid/5shot/maml/baseline/seed{seed}

Example::

    >>> import tempfile
    >>> from trlearner.run.config import resolve_config
    >>> cfgs = [resolve_config(dataset="sinusoid", algorithm="maml", shots=5, seed=s,
    ...                        iterations=3, test_tasks=4) for s in (0, 1)]
    >>> root = tempfile.mkdtemp()
    >>> ms = train_stacked(cfgs, [f"{root}/seed{s}" for s in (0, 1)], progress=False)
    >>> [m["seed"] for m in ms], ms[0]["n_tasks"]
    ([0, 1], 4)
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from pathlib import Path

import torch
from torch.func import vmap

from trlearner.data.sources.episodes import TaskBatch
from trlearner.data.sources.regression import stable_key
from trlearner.engine.core import adapt_batch
from trlearner.method.regularizers import make_regularizer
from trlearner.run.config import DIVERGED_EXIT, pick_device, resolve_config
from trlearner.run.evaluation import eval_point, run_source
from trlearner.run.folder import RunFolderError, check_run_folder
from trlearner.run.model import build, init_meta, make_optimizer
from trlearner.run.progress import Progress
from trlearner.run.record import diverged_metrics, write_results
from trlearner.run.results import atomic_write_json, config_hash, provenance, write_metrics
from trlearner.run.seeds import check_seed
from trlearner.run.session import RunSession, open_run_folder
from trlearner.util.cli import logging_to_stderr

logger = logging.getLogger(__name__)

TRAINER = "stacked"


def cell_key(cfg) -> str:
    """The hash of everything that defines a run except its seed: seeds stack only when equal."""
    return config_hash({k: v for k, v in cfg.identity().items() if k != "seed"})


def check_stackable(cfgs) -> None:
    """Refuse a stack that a single vmapped process cannot train exactly.

    Arguments:
        cfgs: resolved :class:`trlearner.run.config.RunConfig` objects, one per seed.

    Raises:
        ValueError: naming what differs or what is not supported, and what to do instead.
    """
    if not cfgs:
        raise ValueError("a stacked run needs at least one seed (--seeds 0 1 2)")
    seeds = [c.seed for c in cfgs]
    for seed in seeds:
        check_seed(seed)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a stacked run got a seed twice: {seeds}; give each seed once")
    keys = {cell_key(c) for c in cfgs}
    if len(keys) > 1:
        raise ValueError("a stacked run holds the seeds of ONE cell: every setting but the seed must be equal; "
                         "run each cell as its own `python -m trlearner.run.stacked` command")
    cfg = cfgs[0]
    if cfg.backend != "vmap":
        raise ValueError(f"a stacked run uses the vmap engine only (got --backend {cfg.backend}); "
                         f"use `trlearner train` for the loop back-end")
    if cfg.multi_source or cfg.dataset.startswith("metadataset"):
        raise ValueError("stacked runs do not stack Meta-Dataset runs (episodes of varying size per seed); "
                         "use `trlearner train` per seed")
    if cfg.trlearner is not None and cfg.trlearner.align == "match" and cfg.ways is not None:
        raise ValueError("stacked runs cannot stack TRLearner with --align match (the Hungarian matching runs "
                         "in scipy, outside vmap); use `trlearner train` per seed, or --align index")


def check_distinct_folders(outs, seeds, pattern: str | None = None) -> None:
    """Refuse two seeds whose run folders are one folder (after ``..``, ``.`` and symbolic
    links are resolved: ``st/{seed}/../same`` gives ``st/same`` for every seed), before
    anything is trained or written: the second seed would overwrite the first.

    Arguments:
        outs: the run folder of each seed. seeds: the seeds, in the same order.
        pattern: the ``--out`` pattern they came from (named in the message), or None.

    Raises:
        ValueError: naming the two seeds, the folder and what to do.

    Example:
        >>> check_distinct_folders(["st/0/../same", "st/1/../same"], [0, 1])
        Traceback (most recent call last):
        ...
        ValueError: seeds 0 and 1 would share one run folder, ... give each seed its own folder (put {seed} in its last part, e.g. runs/cell/seed{seed})
    """
    first = {}
    for seed, out in zip(seeds, outs):
        real = Path(out).resolve()
        if real in first:
            given = f"--out {pattern!r} gives" if pattern else "the run folders give"
            raise ValueError(f"seeds {first[real]} and {seed} would share one run folder, {real} ({given} "
                             f"{str(out)!r} for seed {seed}); give each seed its own folder (put {{seed}} in its "
                             f"last part, e.g. runs/cell/seed{{seed}})")
        first[real] = seed


class _StackLog:
    """A line of the whole stack (its progress): into every seed's ``log.txt``, and once to this
    module's logger at ``level`` (stderr under :func:`main`: INFO and up)."""

    def __init__(self, seed_logs: list):
        self.seed_logs = seed_logs

    def __call__(self, msg: str, level: int = logging.DEBUG) -> None:
        for log in self.seed_logs:
            log(msg)
        logger.log(level, msg)


def stacked_objective(algo, trl, reg, cfg, metas: list, batches: list, masks: list | None):
    """One forward over S seeds: ``metas`` S parameter dicts (leaves), ``batches`` S task
    batches, ``masks`` S TRLearner selections [T, S_shots] or None.

    Returns ``(loss [S], task_loss [S], tr_loss [S] or None, relation [S, T, T] or None)``;
    ``loss.sum()`` back-propagates each seed's own loss into its own leaves.

    A stack of ONE seed runs as two: the seed and a detached twin whose outputs are dropped.
    A CPU ``bmm`` of batch 1 is a plain ``mm``, whose matrix-vector products (MKL gemv) round
    differently from the batched kernel every batch >= 2 uses; with the twin, a seed's numbers
    are the same in every stack (measured, tests/test_stacked.py).
    """
    n = len(metas)
    if n == 1:
        metas = [metas[0], {k: v.detach() for k, v in metas[0].items()}]
        batches = [batches[0]] * 2
        masks = None if masks is None else [masks[0]] * 2
    out = _stacked_forward(algo, trl, reg, cfg, metas, batches, masks)
    return tuple(None if o is None else o[:n] for o in out)


def _stacked_forward(algo, trl, reg, cfg, metas, batches, masks):
    params = {k: torch.stack([m[k] for m in metas]) for k in metas[0]}
    xs, ys, xq, yq = (torch.stack([getattr(b, f) for b in batches]) for f in ("xs", "ys", "xq", "yq"))
    steps, lr, fo = cfg.inner_steps, cfg.inner_lr, cfg.first_order
    if trl is None:
        def one_seed(meta, xs_s, ys_s, xq_s, yq_s):
            loss = adapt_batch(algo, meta, xs_s, ys_s, xq_s, yq_s, steps, lr, "vmap", fo).losses.mean()
            return loss + reg.penalty(meta), loss

        loss, task = vmap(one_seed, randomness="error")(params, xs, ys, xq, yq)
        return loss, task, None, None

    def one_seed_tr(meta, xs_s, ys_s, xq_s, yq_s, mask_s):
        o = trl.meta_loss(meta, TaskBatch(xs_s, ys_s, xq_s, yq_s, {}), steps, lr, "vmap", fo, mask=mask_s)
        return o.loss + reg.penalty(meta), o.task_loss, o.tr_loss, o.relation

    return vmap(one_seed_tr, randomness="error")(params, xs, ys, xq, yq, torch.stack(masks))


class _Seed:
    """The training state of one seed of the stack, in its run folder's session
    (:class:`trlearner.run.session.RunSession`, marked ``"stacked"``)."""

    def __init__(self, cfg, out: Path, log, taken_over: str | None, algo, trl, device: str, force: bool):
        self.cfg, self.out, self.log = cfg, out, log
        self.session = RunSession(out, cfg, log, taken_over, force, trainer=TRAINER)
        self.session.start()
        self.source = run_source(cfg, "train", cfg.seed, cfg.train_queries)
        self.meta = {k: v.to(device).requires_grad_() for k, v in init_meta(cfg, algo, trl).items()}
        self.opt = make_optimizer(self.meta.values(), cfg.outer_lr)
        self.relation, self.diverged = None, None
        self.start, self.elapsed, self.history, self.rel_mean = self.session.resume(self.meta, self.opt)

    def checkpoint(self, it: int, seconds: float) -> None:
        self.session.save(it, self.elapsed + seconds, self.meta, self.opt, self.history, self.rel_mean)


def train_stacked(cfgs, outs, progress: bool = True, force: bool = False) -> list[dict]:
    """Meta-train the seeds ``cfgs`` of one cell together, each into its own folder.

    Arguments:
        cfgs: resolved :class:`trlearner.run.config.RunConfig` objects that differ only in ``seed``.
        outs: one run folder per config (locked for the whole run, as ``train`` locks one).
        progress: show a progress bar. force: replace results of other runs found in ``outs``.

    Returns:
        The metrics dict of every seed, in the order of ``cfgs``; a seed whose loss became
        NaN/inf gets ``status="diverged"`` (the others go on; ``main`` then exits 3).

    Example:
        See the module docstring.
    """
    cfgs, outs = list(cfgs), [Path(o) for o in outs]
    if len(cfgs) != len(outs):
        raise ValueError(f"{len(cfgs)} configs but {len(outs)} run folders")
    check_stackable(cfgs)
    check_distinct_folders(outs, [c.seed for c in cfgs])
    for out in outs:  # every folder before the first is created or locked
        check_run_folder(out)
    cfg0 = cfgs[0]
    device = pick_device(cfg0.device)
    algo, trl = build(cfg0, run_source(cfg0, "train", cfg0.seed, cfg0.train_queries))
    reg = make_regularizer(cfg0.regularizer, cfg0.reg_strength)
    record = {"stacked": {"seeds": [c.seed for c in cfgs], "trainer": TRAINER}}
    with contextlib.ExitStack() as locks:
        seeds = []
        for cfg, out in zip(cfgs, outs):
            log, taken_over = locks.enter_context(open_run_folder(out))
            seeds.append(_Seed(cfg, out, log, taken_over, algo, trl, device, force))
        for s in seeds:
            s.log(f"run {s.cfg.dataset} {s.cfg.algorithm} {s.cfg.variant} shots={s.cfg.shots} ways={s.cfg.ways} "
                  f"seed={s.cfg.seed} iterations={s.cfg.iterations} device={device} stacked with seeds "
                  f"{record['stacked']['seeds']}")
        iterations = cfg0.iterations
        first = min(s.start for s in seeds)
        t0 = time.perf_counter()
        # each seed's wall_time_s is its share of the stack's time, so that summing runs' wall
        # times (the report's total) counts the stack once
        share = 1.0 / len(seeds)
        # a bar on a terminal, else a plain line every 30 s to every seed's log.txt and stderr
        bar = Progress(first, iterations, f"{cfg0.algorithm}/{cfg0.variant} x{len(seeds)} seeds",
                       _StackLog([s.log for s in seeds]), progress)
        for it in bar:
            active = [s for s in seeds if s.start <= it and s.diverged is None]
            if not active:
                continue
            batches, masks = [], [] if trl is not None else None
            for s in active:
                b = s.source.batch(range(it * cfg0.meta_batch, (it + 1) * cfg0.meta_batch)).to(device)
                gen = torch.Generator().manual_seed(stable_key("sampler", s.cfg.seed, it) % 2**63)
                b = reg.transform(b, gen)
                batches.append(b)
                if trl is not None:
                    masks.append(trl.sample_mask(s.meta, b.xs, b.ys, gen))
            loss, task, tr, rel = stacked_objective(algo, trl, reg, cfg0, [s.meta for s in active], batches, masks)
            values = loss.detach().tolist()
            task, tr = task.detach(), None if tr is None else tr.detach()
            for s in active:
                s.opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            for j, s in enumerate(active):
                if not math.isfinite(values[j]):
                    s.diverged = (it, f"meta-training diverged at iteration {it}: loss is {values[j]}; the last "
                                      f"good checkpoint is kept in {s.out}")
                    continue
                if cfg0.grad_clip:
                    torch.nn.utils.clip_grad_value_(list(s.meta.values()), cfg0.grad_clip)
                s.opt.step()
                if rel is not None:
                    r = rel[j].cpu()
                    s.relation = rel[j]
                    s.rel_mean = r if s.rel_mean is None else 0.99 * s.rel_mean + 0.01 * r
                if it % 1000 == 0:
                    logs = {"loss": task[j].item()} if tr is None else {"loss": task[j].item(), "tr": tr[j].item()}
                    s.log(f"iteration {it} " + " ".join(f"{k}={v:.5f}" for k, v in logs.items()))
                if cfg0.eval_every and (it + 1) % cfg0.eval_every == 0:
                    s.history.append(eval_point(s.cfg, algo, s.meta, batches[j], it + 1, device))
                if (it + 1) % cfg0.checkpoint_every == 0 and it + 1 < iterations:
                    s.checkpoint(it + 1, (time.perf_counter() - t0) * share)
        bar.close()
        results = []
        for s in seeds:
            if s.diverged is not None:
                at, msg = s.diverged
                s.log(msg)
                atomic_write_json(s.out / "provenance.json", {**provenance(s.cfg.identity(), device), **record})
                results.append(write_metrics(s.out / "metrics.json", diverged_metrics(s.cfg, algo, at, msg)))
                continue
            if s.start < iterations:
                s.checkpoint(iterations, (time.perf_counter() - t0) * share)
            wall = s.elapsed + ((time.perf_counter() - t0) * share if s.start < iterations else 0.0)
            m = write_results(s.cfg, algo, trl, s.meta, s.out, wall, s.history, s.relation, s.rel_mean, device,
                              extra_provenance=record)
            s.log(f"done: {m['metric']} after {s.cfg.test_steps} test steps = {m['mean']} ± {m['ci95']} "
                  f"(n={m['n_tasks']}), wall {wall:.1f}s (this seed's 1/{len(seeds)} share of the stack's)")
            results.append(m)
    return results


# ----------------------------------------------------------------------------------- CLI


def build_parser():
    """``python -m trlearner.run.stacked``: the options of ``trlearner train`` (the same parser),
    with ``--seeds`` beside ``--seed`` (which it replaces) and an ``--out`` pattern with ``{seed}``."""
    import argparse

    from trlearner.run import cli as train_cli
    from trlearner.run.seeds import seed_arg

    top = argparse.ArgumentParser(prog="python -m trlearner.run.stacked")
    sub = top.add_subparsers(dest="command")
    train_cli.register(sub)
    p = sub.choices["train"]
    p.prog = "python -m trlearner.run.stacked"
    p.description = ("Meta-train the seeds of one cell together in one process (vmapped over a seed "
                     "dimension); each seed gets its own run folder, checkpoint and metrics.json.")
    p.add_argument("--seeds", type=seed_arg, nargs="+", required=True,
                   help="the seeds to train together, each 0 <= seed < 2**31 (replaces --seed)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` as ``trlearner train`` options plus ``--seeds``; train; print one line
    per seed. Exit status 0, 2 (bad options or run folder), 3 (a seed diverged).

    Example:
        ``python -m trlearner.run.stacked --dataset sinusoid --algorithm maml --shots 5 --seeds 0 1 2
        --out results/runs/sinusoid/5shot/maml/baseline/seed{seed}``
    """
    from trlearner.run.cli import RUN_KEYS, trlearner_config

    args = build_parser().parse_args(argv)
    if "{seed}" not in args.out:
        print(f"trlearner.run.stacked: error: --out {args.out!r} must contain '{{seed}}' (one run folder per "
              f"seed), e.g. --out results/cell/seed{{seed}}", file=sys.stderr)
        return 2
    try:
        trl = trlearner_config(args)
        cfgs = [resolve_config(**{**{k: getattr(args, k) for k in RUN_KEYS}, "seed": s}, trlearner=trl)
                for s in args.seeds]
    except ValueError as exc:
        print(f"trlearner.run.stacked: error: {exc}", file=sys.stderr)
        return 2
    return run_stack(cfgs, args.out, threads=args.threads, progress=not args.no_progress, force=args.force)


def run_stack(cfgs, pattern: str, *, threads: int | None = None, progress: bool = True,
              force: bool = False) -> int:
    """Train the resolved configs ``cfgs`` (the seeds of one cell) together, seed ``s`` into
    ``pattern.format(seed=s)`` (what ``python -m trlearner.run.stacked`` and the pipeline's
    stacked job run): check, train, one line per seed. Exit status 0, 2 (refused, or a run
    folder error), 3 (a seed diverged)."""
    from trlearner.run.cli import preflight

    if threads:
        torch.set_num_threads(threads)
    outs = [pattern.format(seed=c.seed) for c in cfgs]
    try:
        check_stackable(cfgs)
        check_distinct_folders(outs, [c.seed for c in cfgs], pattern)
        for cfg, out in zip(cfgs, outs):
            preflight(cfg, out, force=force)
            check_run_folder(out)
        with logging_to_stderr():  # the progress lines of a run whose stderr is a log file
            ms = train_stacked(cfgs, outs, progress=progress, force=force)
    except (ValueError, RunFolderError) as exc:
        print(f"trlearner.run.stacked: error: {exc}", file=sys.stderr)
        return 2
    for m, out in zip(ms, outs):
        print(f"seed {m['seed']}: {m['metric']} = {m['mean']} ± {m['ci95']} ({m['status']}) -> {out}/metrics.json")
    return DIVERGED_EXIT if any(m["status"] == "diverged" for m in ms) else 0


if __name__ == "__main__":
    sys.exit(main())

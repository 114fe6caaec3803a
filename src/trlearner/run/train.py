"""Meta-training of one run, with checkpoints and automatic resume.

A run is (dataset, algorithm, variant, shots/ways, seed) plus its protocol
(:class:`trlearner.run.config.RunConfig`). ``train`` writes into ``out``: ``metrics.json``,
``provenance.json``, ``checkpoint.pt`` (every ``checkpoint_every`` iterations, atomically; the
previous one is kept as ``checkpoint.prev.pt``), ``log.txt`` and, for TRLearner, ``relation.pt``.

Every random choice is a pure function of (seed, iteration): the meta-batch of iteration
``it`` is episodes ``it*B .. it*B+B-1`` of the training split, and the TRLearner random
sampler draws from a generator seeded by (seed, it). So a run killed at any point and
resumed from its checkpoint ends with the same numbers as an uninterrupted one (on CPU).

The parts, each in its own module: the run's settings (:mod:`trlearner.run.config`), its folder
(:mod:`trlearner.run.session`: lock, log, another run's results, checkpoints and resume), what it
trains (:mod:`trlearner.run.model`), its evaluation (:mod:`trlearner.run.evaluation`) and its
record (:mod:`trlearner.run.record`); this module is the loop. The stacked trainer
(:mod:`trlearner.run.stacked`) shares every part but the loop.

Example::

    >>> from trlearner.run.config import resolve_config
    >>> cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=20,
    ...                      test_tasks=10)
    >>> import tempfile; m = train(cfg, tempfile.mkdtemp(), progress=False)
    >>> m["metric"], m["n_tasks"]
    ('mse', 10)
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch

from trlearner.method.regularizers import make_regularizer
from trlearner.run.config import DivergedError, RunConfig, pick_device
from trlearner.run.evaluation import eval_point, run_source
from trlearner.run.model import build, init_meta, make_optimizer, meta_objective
from trlearner.run.progress import Progress
from trlearner.run.record import diverged_metrics, write_results
from trlearner.run.results import atomic_write_json, provenance, write_metrics
from trlearner.run.session import RunLog, RunSession, open_run_folder

logger = logging.getLogger(__name__)


def train(cfg: RunConfig, out, progress: bool = True, force: bool = False) -> dict:
    """Meta-train (resuming from ``out`` when a checkpoint of this run and this code is
    there), evaluate, write ``metrics.json`` and ``provenance.json``; return the metrics dict.

    ``out`` is held for the whole run (:mod:`trlearner.run.session`: locked, temporary files of
    writes interrupted by a kill removed first). ``force`` replaces the results of another
    run found in ``out`` (otherwise refused).

    Raises :class:`~trlearner.run.config.DivergedError` (after writing ``metrics.json`` with
    ``status="diverged"``) when the loss becomes NaN or infinite, and
    :class:`trlearner.run.folder.RunFolderError` when ``out`` is locked by a live run or holds
    another run's results (without ``force``).
    """
    out = Path(out)
    with open_run_folder(out, logger) as (log, taken_over):
        try:
            return _train_locked(cfg, out, progress, force, taken_over, log)
        except KeyboardInterrupt:  # Ctrl-C: one line naming where, and what a rerun resumes
            where = f"iteration {log.at}" if isinstance(log.at, int) else (log.at or "the start")
            msg = (f"interrupted at {where}; rerun the same command to resume from checkpoint.pt"
                   if (out / "checkpoint.pt").exists() else
                   f"interrupted at {where}, before the first checkpoint (one every {cfg.checkpoint_every} "
                   f"iterations); rerun the same command to start again")
            log(msg)
            raise TrainingInterrupted(msg) from None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`; ``str()`` is the one line to print (where it stopped and
    what a rerun resumes). ``trlearner train`` prints it and exits 130."""


def _train_locked(cfg: RunConfig, out: Path, progress: bool, force: bool, taken_over: str | None,
                  log: RunLog) -> dict:
    session = RunSession(out, cfg, log, taken_over, force)  # refuses another run's results
    device = pick_device(cfg.device)
    session.start()

    train_src = run_source(cfg, "train", cfg.seed, cfg.train_queries)
    if cfg.train_dataset not in (None, cfg.dataset):  # fail before training, not after it
        test_shape = run_source(cfg, "test", 0, cfg.test_queries).input_shape
        if tuple(test_shape) != tuple(train_src.input_shape):
            raise ValueError(f"train_dataset {cfg.train_dataset!r} gives inputs {tuple(train_src.input_shape)} but "
                             f"{cfg.dataset!r} gives {tuple(test_shape)}; both must have the same image size")
    algo, trl = build(cfg, train_src)
    reg = make_regularizer(cfg.regularizer, cfg.reg_strength)
    meta = {k: v.to(device).requires_grad_() for k, v in init_meta(cfg, algo, trl).items()}
    opt = make_optimizer(meta.values(), cfg.outer_lr)
    start, elapsed, history, rel_mean = session.resume(meta, opt)
    log(f"run {cfg.dataset} {cfg.algorithm} {cfg.variant} shots={cfg.shots} ways={cfg.ways} "
        f"seed={cfg.seed} iterations={cfg.iterations} device={device}", logging.INFO)

    def checkpoint(it: int):
        session.save(it, elapsed + time.perf_counter() - t0, meta, opt, history, rel_mean)

    t0 = time.perf_counter()
    relation = None
    # a bar on a terminal, else a plain line every 30 s to log.txt and stderr (trlearner.run.progress)
    bar = Progress(start, cfg.iterations, f"{cfg.algorithm}/{cfg.variant}", log, progress)
    for it in bar:
        log.at = it
        batch = train_src.batch(range(it * cfg.meta_batch, (it + 1) * cfg.meta_batch)).to(device)
        loss, logs, relation = meta_objective(cfg, algo, trl, reg, meta, batch, it)
        if not math.isfinite(loss.item()):
            msg = (f"meta-training diverged at iteration {it}: loss is {loss.item()}; the last good "
                   f"checkpoint is kept in {out}")
            log(msg)
            atomic_write_json(out / "provenance.json", provenance(cfg.identity(), device))  # names the run
            write_metrics(out / "metrics.json", diverged_metrics(cfg, algo, it, msg))
            raise DivergedError(msg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:  # element-wise clip of the meta-gradient (MAML's miniImageNet code)
            torch.nn.utils.clip_grad_value_(list(meta.values()), cfg.grad_clip)
        opt.step()
        if relation is not None:
            rel_mean = relation.cpu() if rel_mean is None else 0.99 * rel_mean + 0.01 * relation.cpu()
        if it % 50 == 0:
            bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
        if it % 1000 == 0:
            log(f"iteration {it} " + " ".join(f"{k}={v:.5f}" for k, v in logs.items()))
        if cfg.eval_every and (it + 1) % cfg.eval_every == 0:
            history.append(eval_point(cfg, algo, meta, batch, it + 1, device))
        if (it + 1) % cfg.checkpoint_every == 0 and it + 1 < cfg.iterations:
            checkpoint(it + 1)
    bar.close()
    if start < cfg.iterations:
        checkpoint(cfg.iterations)
    log.at = "the evaluation"
    wall = elapsed + time.perf_counter() - t0
    metrics = write_results(cfg, algo, trl, meta, out, wall, history, relation, rel_mean, device)
    log(f"done: {metrics['metric']} after {cfg.test_steps} test steps = {metrics['mean']} "
        f"± {metrics['ci95']} (n={metrics['n_tasks']}), wall {wall:.1f}s")
    return metrics

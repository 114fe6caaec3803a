"""Evaluation of meta-parameters on a run's fixed episodes.

- :func:`run_source`: the task source of a split (training episodes from ``train_dataset``
  when set: the cross-domain cells; validation and test always from ``dataset``).
- :func:`evaluate`: the per-task metric curve over ``0 .. curve_steps`` inner steps on the
  first ``n_tasks`` episodes of a split, seed 0 (the same tasks for every algorithm, run and
  machine), and the hash of those episodes; accuracy in percent.
- :func:`evaluate_sources` / :func:`mean_of_sources`: the multi-source Meta-Dataset test,
  source by source, and the mean over sources with its CI.
- :func:`eval_point`: the train and validation metric during training (``--eval-every``).

Example::

    >>> import torch
    >>> from trlearner.run.config import resolve_config
    >>> from trlearner.run.model import build, init_meta
    >>> cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, test_tasks=4)
    >>> algo, trl = build(cfg, run_source(cfg, "train", 0, None))
    >>> curve, episodes = evaluate(cfg, algo, init_meta(cfg, algo, trl), "test", 4, "cpu")
    >>> curve.shape, len(episodes)
    (torch.Size([4, 11]), 16)
"""

from __future__ import annotations

import hashlib

import torch

from trlearner.data.sources.dispatch import make_source
from trlearner.engine.core import evaluate_curve
from trlearner.run.config import RunConfig
from trlearner.run.results import tensor_hash


def run_source(cfg: RunConfig, split: str, seed: int, queries: int | None, ways: int | None = None):
    """The task source of ``split``: training episodes from ``cfg.train_dataset`` when set (the
    cross-domain cells), validation and test episodes always from ``cfg.dataset``. Training
    episodes have ``cfg.train_ways`` classes when set (ProtoNet's 60-way episodes), the others
    ``cfg.ways``; ``ways`` overrides both."""
    dataset = cfg.train_dataset if split == "train" and cfg.train_dataset else cfg.dataset
    if ways is None:
        ways = cfg.train_ways if split == "train" and cfg.train_ways else cfg.ways
    return make_source(dataset, split, cfg.shots, ways, queries, seed=seed, root=cfg.data_root,
                       **cfg.source_options())


def evaluate(cfg: RunConfig, algo, meta, split: str, n_tasks: int, device: str, src=None):
    """Per-task metric curve [n_tasks, curve_steps + 1] on the fixed episodes of ``split``
    (seed 0: the same tasks for every algorithm, run and machine) and their hash.
    ``src`` replaces the run's own source of ``split`` (e.g. one Meta-Dataset source).

    Episodes are built and evaluated a chunk at a time, so memory stays bounded for large
    image episodes (Meta-Dataset episodes are padded per chunk, not to the whole test set).
    """
    if src is None:
        src = run_source(cfg, split, 0, cfg.test_queries)
    chunk = 100 if src.kind == "regression" else 10
    curves, digest = [], hashlib.sha256()
    for start in range(0, n_tasks, chunk):
        b = src.batch(range(start, min(start + chunk, n_tasks))).to(device)
        curves.append(evaluate_curve(algo, meta, b.xs, b.ys, b.xq, b.yq, cfg.curve_steps,
                                     cfg.test_lr, chunk=chunk).cpu())
        digest.update(tensor_hash(b.xs, b.ys, b.xq, b.yq).encode())
    curve = torch.cat(curves)
    if algo.metric_name == "accuracy":
        curve = curve * 100.0
    return curve, digest.hexdigest()[:16]


def evaluate_sources(cfg: RunConfig, algo, meta, device: str) -> dict:
    """Multi-source Meta-Dataset test: source -> (curve [test_tasks, curve_steps + 1], hash)
    on ``test_tasks`` test episodes of every source (train and held-out), each source's own
    episodes (the same as a single-source run's), in the order train sources, held-out."""
    out = {}
    for name in cfg.train_sources + cfg.heldout_sources:
        src = make_source(f"metadataset_{name}", "test", cfg.shots, cfg.ways, cfg.test_queries, seed=0,
                          root=cfg.data_root)
        out[name] = evaluate(cfg, algo, meta, "test", cfg.test_tasks, device, src=src)
    return out


def mean_of_sources(curves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over sources of the per-source mean curves, and its 95% CI half-width.

    ``curves``: K tensors [n_k, steps]. The mean is (1/K) sum_k mean_k (every source weighs
    the same, whatever its number of episodes); the sources are independent samples, so
    ``ci95 = 1.96 * sqrt(sum_k sd_k^2 / n_k) / K`` (sd_k: sample sd of source k's tasks).
    """
    means = torch.stack([c.double().mean(0) for c in curves])
    var = torch.stack([c.double().var(0, unbiased=True) / c.shape[0] if c.shape[0] > 1 else
                       torch.full(c.shape[1:], float("nan"), dtype=torch.float64) for c in curves])
    k = len(curves)
    return means.mean(0), 1.96 * var.sum(0).sqrt() / k


def eval_point(cfg, algo, meta, batch, it, device) -> dict:
    """Train metric (on the current meta-batch) and validation metric at ``it``, with the
    training inner steps: the curves of the motivation analysis."""
    curve_tr = evaluate_curve(algo, meta, batch.xs, batch.ys, batch.xq, batch.yq,
                              cfg.test_steps, cfg.test_lr)[:, cfg.test_steps]
    val, _ = evaluate(cfg, algo, meta, "val", cfg.eval_tasks, device)
    scale = 100.0 if algo.metric_name == "accuracy" else 1.0
    return {"iteration": it, "train": float(curve_tr.mean()) * scale,
            "val": float(val[:, cfg.test_steps].mean())}

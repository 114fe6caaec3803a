"""What a run meta-trains: its algorithm and TRLearner, initial meta-parameters, outer
optimiser and meta-objective; shared by the single (:mod:`trlearner.run.train`) and the
stacked trainer (:mod:`trlearner.run.stacked`).

Decisions: the initial meta-parameters are a pure function of the seed (a generator seeded by
``stable_key("init", seed)``), and the sampler/regulariser generator of iteration ``it`` of
``(seed, it)``, so a resumed run draws what an uninterrupted one draws; the outer optimiser is
Adam, fused where PyTorch has the kernel.

Example::

    >>> from trlearner.data.sources.dispatch import make_source
    >>> from trlearner.method.regularizers import make_regularizer
    >>> from trlearner.run.config import resolve_config
    >>> cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5)
    >>> src = make_source("sinusoid", "train", 5)
    >>> algo, trl = build(cfg, src)
    >>> meta = {k: v.requires_grad_() for k, v in init_meta(cfg, algo, trl).items()}
    >>> loss, logs, relation = meta_objective(cfg, algo, trl, make_regularizer("none", 0.0), meta,
    ...                                       src.batch(range(cfg.meta_batch)), it=0)
    >>> loss.shape, sorted(logs), relation
    (torch.Size([]), ['loss'], None)
"""

from __future__ import annotations

import torch

from trlearner.data.sources.regression import stable_key
from trlearner.engine.algorithms import make_algorithm
from trlearner.engine.backbones import make_backbone
from trlearner.engine.core import adapt_batch
from trlearner.method.relation import TRLearner
from trlearner.run.config import RunConfig


def build(cfg: RunConfig, source):
    """The algorithm (and TRLearner wrapper, or None) for a run on ``source``."""
    options = {"filters": cfg.filters} if cfg.filters else {}
    if cfg.hidden:
        options["hidden"] = list(cfg.hidden)
    options.update({k: getattr(cfg, k) for k in ("downsample", "init") if getattr(cfg, k) is not None})
    backbone = make_backbone(cfg.backbone, source.input_shape, source.n_out,
                             padded=getattr(source, "padded", False), **options)
    algo_options = {"adapt_bn": bool(cfg.adapt_bn)}
    if cfg.algorithm == "metasgd" and cfg.metasgd_lr_init is not None:
        algo_options["lr_init"] = cfg.metasgd_lr_init
    algo = make_algorithm(cfg.algorithm, backbone, source.kind, **algo_options)
    if cfg.metric:
        algo.set_metric(cfg.metric)
    trl = None
    if cfg.trlearner is not None:
        if getattr(source, "padded", False):  # variable-way, variable-shot episodes (Meta-Dataset)
            trl = TRLearner(algo, cfg.trlearner, shots=None, variable_ways=True)
        else:
            trl = TRLearner(algo, cfg.trlearner, shots=cfg.shots, ways=cfg.train_ways or cfg.ways)
    return algo, trl


def make_optimizer(params, lr: float) -> torch.optim.Adam:
    """The outer-loop Adam of every run: ``fused=True`` where PyTorch has the fused kernel
    (CPU and CUDA): one call per step instead of ~10 small ops per tensor (measured 0.11 vs
    0.55 ms per step on the sinusoid MLP, 1 CPU thread; benchmarks/README.md). Adam is
    elementwise, so a stacked run's per-seed optimizers step exactly as a single run's.

    Example:
        >>> make_optimizer([torch.zeros(3, requires_grad=True)], 1e-3).defaults["fused"]
        True
    """
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def init_meta(cfg: RunConfig, algo, trl) -> dict:
    """The initial meta-parameters of a run (with TRLearner's ``trl.*``), a function of its seed."""
    gen = torch.Generator().manual_seed(stable_key("init", cfg.seed) % 2**63)
    meta = algo.init_params(gen, cfg.inner_lr)
    if trl is not None:
        meta.update(trl.init_params(gen))
    return meta


def meta_objective(cfg: RunConfig, algo, trl, reg, meta, batch, it: int):
    """(loss to minimise, dict of logged scalars, relation matrix or None)."""
    gen = torch.Generator().manual_seed(stable_key("sampler", cfg.seed, it) % 2**63)
    batch = reg.transform(batch, gen)
    if trl is None:
        out = adapt_batch(algo, meta, batch.xs, batch.ys, batch.xq, batch.yq,
                          cfg.inner_steps, cfg.inner_lr, cfg.backend, cfg.first_order)
        loss = out.losses.mean()
        return loss + reg.penalty(meta), {"loss": loss.item()}, None
    o = trl.meta_loss(meta, batch, cfg.inner_steps, cfg.inner_lr, cfg.backend, cfg.first_order, gen)
    return o.loss + reg.penalty(meta), {"loss": o.task_loss.item(), "tr": o.tr_loss.item()}, o.relation

"""Meta-SGD (Li et al. 2017): a learned step size per weight entry.

The meta-parameters hold ``"lr.<key>"`` (same shape as ``<key>``) for every adapted key,
trained by the outer loop; adaptation always uses them (the ``lr`` argument of the inner loop
is ignored). Their initial values (``lr_init``):

- ``uniform`` (default; Li et al. 2017, arXiv 1707.09835, draw the step sizes at random):
  every entry drawn from U[0.005, 0.1] (``LR_INIT_RANGE``) with the init generator. The range
  is the one the issue names; the paper's sentence could not be read here (docs/BASELINES.md);
- ``constant``: every entry equal to the run's inner learning rate.

Example::

    >>> import torch
    >>> from trlearner.engine.backbones import mlp
    >>> algo = MetaSGD(mlp([1, 40, 40], 1), "regression")
    >>> meta = algo.init_params(torch.Generator().manual_seed(0), inner_lr=0.01)
    >>> bool(((meta["lr.fc1.w"] >= 0.005) & (meta["lr.fc1.w"] <= 0.1)).all())
    True
    >>> const = MetaSGD(mlp([1, 40, 40], 1), "regression", lr_init="constant")
    >>> round(float(const.init_params(torch.Generator().manual_seed(0), inner_lr=0.01)["lr.fc1.w"][0, 0]), 6)
    0.01
"""

import torch

from trlearner.engine.algorithms.base import Algorithm

LR_INITS = ("uniform", "constant")
LR_INIT_RANGE = (0.005, 0.1)


class MetaSGD(Algorithm):
    """Meta-SGD: a learned step size per weight entry (meta-parameters ``"lr.<key>"``),
    trained by the outer loop with the initialisation; the inner ``lr`` is ignored.

    Arguments:
        backbone: a :class:`~trlearner.engine.backbones.Backbone` (``mlp``, ``conv4``, ...) or
            a ``torch.nn.Module`` (through ``torch.func.functional_call``; see
            :func:`~trlearner.engine.backbones.from_module`).
        kind: ``"regression"`` (MSE loss) or ``"classification"`` (cross-entropy).
        adapt_bn: adapt batch-norm scale/shift in the inner loop too (default False).
        lr_init: initial step sizes, ``"uniform"`` (U[0.005, 0.1]) or ``"constant"`` (the
            ``inner_lr`` of :meth:`init_params`).

    Returns:
        ``adapt(meta, xs, ys, steps, lr)`` returns the task state (a dict of tensors);
        ``predict(meta, state, x)`` returns the outputs [Q, n_out].

    References:
        1. Li, Zhou, Chen, Li. 2017. "Meta-SGD: Learning to Learn Quickly for Few-Shot
           Learning." arXiv:1707.09835.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
        >>> algo = MetaSGD(net, "regression", lr_init="constant")
        >>> meta = algo.init_params(torch.Generator(), inner_lr=0.01)
        >>> meta["lr.0.weight"].shape, round(float(meta["lr.0.weight"][0, 0]), 6)
        (torch.Size([40, 1]), 0.01)
    """

    name = "metasgd"

    def __init__(self, backbone, kind, adapt_bn: bool = False, lr_init: str = "uniform"):
        if lr_init not in LR_INITS:
            raise ValueError(f"unknown Meta-SGD step-size init {lr_init!r}; choose one of: {', '.join(LR_INITS)}")
        super().__init__(backbone, kind, adapt_bn)
        self.lr_init = lr_init

    def init_params(self, gen, inner_lr):
        params = self.backbone.init(gen)
        low, high = LR_INIT_RANGE
        for k in self.adapt_keys(params):
            if self.lr_init == "uniform":
                params[f"lr.{k}"] = low + (high - low) * torch.rand(params[k].shape, generator=gen)
            else:
                params[f"lr.{k}"] = torch.full_like(params[k], inner_lr)
        return params

    def step_size(self, meta, key, lr):
        return meta[f"lr.{key}"]

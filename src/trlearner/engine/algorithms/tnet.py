"""T-NET (Lee & Choi 2018): a meta-learned linear transform after every layer.

Each layer's output is multiplied by a square matrix ``"<layer>.T"`` (initialised to the
identity). The transforms are meta-parameters only: the inner loop adapts the weights, not
the transforms, so the transforms shape the inner loop's update geometry.

Example::

    >>> import torch
    >>> from trlearner.engine.backbones import mlp
    >>> algo = TNet(mlp([1, 40, 40], 1), "regression")
    >>> meta = algo.init_params(torch.Generator().manual_seed(0), inner_lr=0.01)
    >>> meta["fc1.T"].shape, "fc1.T" in algo.adapt_keys(meta)
    (torch.Size([40, 40]), False)
"""

import torch

from trlearner.engine.algorithms.base import Algorithm


class TNet(Algorithm):
    """T-NET: a meta-learned square transform ``"<layer>.T"`` (initialised to the identity)
    after every layer; the inner loop adapts the weights, the outer loop also the transforms.
    With an ``nn.Module``, every ``nn.Linear`` and ``nn.Conv`` layer (``groups=1``) gets one,
    folded into its weights.

    Arguments:
        backbone: a :class:`~trlearner.engine.backbones.Backbone` (``mlp``, ``conv4``, ...) or
            a ``torch.nn.Module`` (through ``torch.func.functional_call``; see
            :func:`~trlearner.engine.backbones.from_module`).
        kind: ``"regression"`` (MSE loss) or ``"classification"`` (cross-entropy).
        adapt_bn: adapt batch-norm scale/shift in the inner loop too (default False).

    Returns:
        ``adapt(meta, xs, ys, steps, lr)`` returns the task state (a dict of tensors);
        ``predict(meta, state, x)`` returns the outputs [Q, n_out].

    References:
        1. Lee, Choi. 2018. "Gradient-Based Meta-Learning with Learned Layerwise Metric and
           Subspace." ICML. arXiv:1801.05558.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
        >>> algo = TNet(net, "regression")
        >>> meta = algo.init_params(torch.Generator(), inner_lr=0.01)
        >>> meta["0.T"].shape, meta["2.T"].shape
        (torch.Size([40, 40]), torch.Size([1, 1]))
    """

    name = "tnet"

    def init_params(self, gen, inner_lr):
        params = self.backbone.init(gen)
        for layer, width in zip(self.backbone.layers, self.backbone.layer_width):
            params[f"{layer}.T"] = torch.eye(width)
        return params

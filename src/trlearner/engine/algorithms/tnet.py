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
    name = "tnet"

    def init_params(self, gen, inner_lr):
        params = self.backbone.init(gen)
        for layer, width in zip(self.backbone.layers, self.backbone.layer_width):
            params[f"{layer}.T"] = torch.eye(width)
        return params

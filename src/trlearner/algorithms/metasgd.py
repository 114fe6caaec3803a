"""Meta-SGD (Li et al. 2017): a learned step size per weight entry.

The meta-parameters hold ``"lr.<key>"`` (same shape as ``<key>``), initialised to the inner
learning rate and trained by the outer loop. The ``lr`` argument of the inner loop is only
the initial value; adaptation always uses the learned step sizes.

Example::

    >>> import torch
    >>> from trlearner.backbones import mlp
    >>> algo = MetaSGD(mlp([1, 40, 40], 1), "regression")
    >>> meta = algo.init_params(torch.Generator().manual_seed(0), inner_lr=0.01)
    >>> float(meta["lr.fc1.w"][0, 0])
    0.01
"""

import torch

from trlearner.algorithms.base import Algorithm


class MetaSGD(Algorithm):
    name = "metasgd"

    def init_params(self, gen, inner_lr):
        params = self.backbone.init(gen)
        for k in list(params):
            params[f"lr.{k}"] = torch.full_like(params[k], inner_lr)
        return params

    def step_size(self, meta, key, lr):
        return meta[f"lr.{key}"]

"""MAML (Finn et al. 2017): adapt every weight by gradient descent on the support loss.

Second-order by default; first-order MAML is the engine's ``first_order=True`` (the inner
gradients are treated as constants in the meta-gradient).

Example::

    >>> import torch
    >>> from trlearner.engine.backbones import mlp
    >>> from trlearner.engine.core import InnerGrad
    >>> algo = MAML(mlp([1, 40, 40], 1), "regression")
    >>> meta = algo.init_params(torch.Generator().manual_seed(0), inner_lr=0.01)
    >>> xs, ys = torch.randn(5, 1), torch.randn(5, 1)
    >>> state = algo.adapt(meta, xs, ys, steps=1, lr=0.01, grad=InnerGrad("func"))
    >>> algo.predict(meta, state, torch.randn(10, 1)).shape
    torch.Size([10, 1])
"""

from trlearner.engine.algorithms.base import Algorithm


class MAML(Algorithm):
    name = "maml"

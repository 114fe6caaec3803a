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
    """MAML: every weight is adapted by gradient descent on the task's support loss, and
    the initialisation is meta-learned through the adaptation (second-order by default;
    ``first_order=True`` in the engine is FOMAML).

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
        1. Finn, Abbeel, Levine. 2017. "Model-Agnostic Meta-Learning for Fast Adaptation of
           Deep Networks." ICML. arXiv:1703.03400.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
        >>> algo = MAML(net, "regression")
        >>> meta = algo.init_params(torch.Generator(), inner_lr=0.01)
        >>> state = algo.adapt(meta, torch.randn(5, 1), torch.randn(5, 1), steps=1, lr=0.01)
        >>> algo.predict(meta, state, torch.randn(10, 1)).shape
        torch.Size([10, 1])
    """

    name = "maml"

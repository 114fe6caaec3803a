"""ANIL (Raghu et al. 2020): adapt only the head; the body is shared and frozen per task.

The support features are computed once per task and reused in every inner step.

Example::

    >>> import torch
    >>> from trlearner.engine.backbones import mlp
    >>> from trlearner.engine.core import InnerGrad
    >>> algo = ANIL(mlp([1, 40, 40], 1), "regression")
    >>> meta = algo.init_params(torch.Generator().manual_seed(0), inner_lr=0.01)
    >>> state = algo.adapt(meta, torch.randn(5, 1), torch.randn(5, 1), 2, 0.01, InnerGrad("func"))
    >>> sorted(state)
    ['head.b', 'head.w']
"""

from trlearner.engine.algorithms.base import Algorithm
from trlearner.engine.grad import InnerGrad


class ANIL(Algorithm):
    """ANIL (Almost No Inner Loop): only the head is adapted in the inner loop; the body
    (feature extractor) is meta-learned and shared by all tasks.

    Arguments:
        backbone: a :class:`~trlearner.engine.backbones.Backbone` (``mlp``, ``conv4``, ...) or
            a ``torch.nn.Module`` (through ``torch.func.functional_call``; see
            :func:`~trlearner.engine.backbones.from_module`).
        kind: ``"regression"`` (MSE loss) or ``"classification"`` (cross-entropy).
        adapt_bn: adapt batch-norm scale/shift in the inner loop too (default False).
            With an ``nn.Sequential`` the last layer is the head.

    Returns:
        ``adapt(meta, xs, ys, steps, lr)`` returns the task state (a dict of tensors);
        ``predict(meta, state, x)`` returns the outputs [Q, n_out].

    References:
        1. Raghu, Raghu, Bengio, Vinyals. 2020. "Rapid Learning or Feature Reuse? Towards
           Understanding the Effectiveness of MAML." ICLR. arXiv:1909.09157.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
        >>> algo = ANIL(net, "regression")
        >>> meta = algo.init_params(torch.Generator(), inner_lr=0.01)
        >>> sorted(algo.adapt(meta, torch.randn(5, 1), torch.randn(5, 1), steps=2, lr=0.01))
        ['2.bias', '2.weight']
    """

    name = "anil"

    def adapt_keys(self, meta):
        return list(self.backbone.head_keys)

    def adapt_path(self, meta, xs, ys, steps, lr, grad=None):
        grad = InnerGrad("func") if grad is None else grad
        hs = self.backbone.features(meta, xs)  # once per task
        state = {k: meta[k] for k in self.adapt_keys(meta)}
        yield state

        def support_loss(s):
            return self.loss_fn(self.backbone.head({**meta, **s}, hs), ys)

        for _ in range(steps):
            g = grad(support_loss, state)
            state = {k: state[k] - lr * g[k] for k in state}
            yield state

    def predict(self, meta, state, x):
        return self.backbone.head({**meta, **state}, self.backbone.features(meta, x))

    def tasks_inputs(self, meta, x, shared=False):
        # the body is shared by every task and, on the fast path, has no batch statistics:
        # the features of all T x N rows in one call
        if shared:
            return self.backbone.features(meta, x)
        return self.backbone.features(meta, x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def tasks_forward(self, meta, state, h):
        return self.backbone.head_tasks({**meta, **state}, h)

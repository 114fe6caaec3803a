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


class ANIL(Algorithm):
    name = "anil"

    def adapt_keys(self, meta):
        return list(self.backbone.head_keys)

    def adapt_path(self, meta, xs, ys, steps, lr, grad):
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

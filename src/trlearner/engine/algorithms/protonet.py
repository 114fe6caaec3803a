"""Prototypical Networks (Snell et al. 2017): no inner gradient loop.

The task state is the class prototypes (mean support feature per class); the output for a
query is minus its squared Euclidean distance to each prototype. Inner steps do nothing: the
path yields the same prototypes after every "step", so step curves stay flat.

Padded episodes (Meta-Dataset: labels -1 at padding, ``n_out`` = 50 > the task's ways): padded
support rows do not enter any prototype, and absent classes get a zero prototype whose logit
the loss/accuracy mask. Padded rows stay out of the backbone's transductive batch-norm
statistics (NaN-marked padding, ``padded=True`` backbone): see ``trlearner.engine.algorithms.base``.

Example::

    >>> import torch
    >>> from trlearner.engine.backbones import conv4
    >>> algo = ProtoNet(conv4((1, 28, 28), n_out=5, filters=8), "classification")
    >>> meta = algo.init_params(torch.Generator().manual_seed(0), inner_lr=0.0)
    >>> xs, ys = torch.rand(5, 1, 28, 28), torch.arange(5)
    >>> state = algo.adapt(meta, xs, ys, steps=0, lr=0.0, grad=None)
    >>> algo.predict(meta, state, torch.rand(3, 1, 28, 28)).shape
    torch.Size([3, 5])
"""

import torch
import torch.nn.functional as F

from trlearner.engine.algorithms.base import Algorithm


class ProtoNet(Algorithm):
    name = "protonet"
    needs_inner_loop = False

    def __init__(self, backbone, kind, adapt_bn: bool = False):
        if kind != "classification":
            raise ValueError("ProtoNet is a classifier: it needs a classification task family")
        super().__init__(backbone, kind, adapt_bn)  # no inner loop: adapt_bn changes nothing
        self.n_way = backbone.layer_width[-1]

    def init_params(self, gen, inner_lr):
        params = self.backbone.init(gen)
        for k in self.backbone.head_keys:  # no head: the prototypes are the classifier
            del params[k]
        return params

    def adapt_keys(self, meta):
        return []

    def adapt_path(self, meta, xs, ys, steps, lr, grad):
        h = self.backbone.features(meta, xs)  # [S, d]
        # padded support rows (label -1, variable-way sources) get an all-zero one-hot row
        valid = (ys >= 0).to(h.dtype).unsqueeze(1)  # [S, 1]
        onehot = F.one_hot(ys.clamp_min(0), self.n_way).to(h.dtype) * valid  # [S, N]
        # classes the task does not have (index >= its ways) get a zero prototype; the loss
        # and accuracy mask their logits (trlearner.engine.algorithms.base.mask_absent_classes)
        protos = onehot.T @ h / onehot.sum(0).clamp_min(1).unsqueeze(1)  # [N, d]
        state = {"prototypes": protos}
        for _ in range(steps + 1):
            yield state

    def predict(self, meta, state, x):
        h = self.backbone.features(meta, x)  # [Q, d]
        protos = state["prototypes"]
        return -((h.unsqueeze(1) - protos.unsqueeze(0)) ** 2).sum(-1)  # [Q, N]

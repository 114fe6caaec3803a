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
from trlearner.engine.backbones import from_module


class ProtoNet(Algorithm):
    """Prototypical Networks: the task state is the mean embedding of each class's support
    points; a query's logits are minus its squared distances to the prototypes.

    Arguments:
        backbone: a :class:`~trlearner.engine.backbones.Backbone` (its head is dropped: the
            prototypes are the classifier) or a ``torch.nn.Module``, the whole of which is
            the embedding (``from_module(module, head=None)``; give ``ways``).
        kind: ``"classification"`` (the default; the only kind).
        adapt_bn: accepted for the common interface; there is no inner loop.
        ways: classes per task; default the backbone's ``n_out``; required with a module.

    Returns:
        ``adapt(meta, xs, ys, steps, lr)`` returns the task state (a dict of tensors);
        ``predict(meta, state, x)`` returns the outputs [Q, n_out].

    References:
        1. Snell, Swersky, Zemel. 2017. "Prototypical Networks for Few-shot Learning."
           NeurIPS. arXiv:1703.05175.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> embed = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> algo = ProtoNet(embed, ways=5)
        >>> meta = algo.init_params(torch.Generator(), inner_lr=0.0)
        >>> state = algo.adapt(meta, torch.rand(10, 1, 28, 28), torch.arange(5).repeat(2), steps=0, lr=0.0)
        >>> algo.predict(meta, state, torch.rand(3, 1, 28, 28)).shape
        torch.Size([3, 5])
    """

    name = "protonet"
    needs_inner_loop = False

    def __init__(self, backbone, kind: str = "classification", adapt_bn: bool = False, ways: int | None = None):
        if kind != "classification":
            raise ValueError("ProtoNet is a classifier: it needs a classification task family")
        if isinstance(backbone, torch.nn.Module):
            if ways is None:
                raise ValueError("ProtoNet with an nn.Module embedding needs ways= (the classes per task)")
            backbone = from_module(backbone, head=None)
        super().__init__(backbone, kind, adapt_bn)  # no inner loop: adapt_bn changes nothing
        self.n_way = self.backbone.layer_width[-1] if ways is None else int(ways)

    def init_params(self, gen, inner_lr):
        params = self.backbone.init(gen)
        for k in self.backbone.head_keys:  # no head: the prototypes are the classifier
            del params[k]
        return params

    def adapt_keys(self, meta):
        return []

    def adapt_path(self, meta, xs, ys, steps, lr, grad=None):
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

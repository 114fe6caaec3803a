"""The clone-and-adapt per-task MAML loop of the popular libraries, written out as a reference.

This is what learn2learn's ``MAML`` does (``l2l.clone_module`` + ``l2l.update_module``),
re-implemented in one screen so the benchmark does not depend on learn2learn:

- the model is an ordinary ``torch.nn.Module`` (here the 1-40-40-1 ReLU MLP of the
  sinusoid benchmark, the same network as :func:`trlearner.engine.backbones.mlp`);
- for every task of the meta-batch the module is *cloned* (a new module object whose
  parameters are ``p.clone()``, so the clone stays in the autograd graph of the original);
- each inner step computes ``torch.autograd.grad(support_loss, clone_params,
  create_graph=not first_order)`` and *replaces* the clone's parameters with
  ``p - lr * g`` (non-leaf tensors);
- the query losses of the tasks are averaged and back-propagated to the original module.

It is a benchmark baseline and a correctness reference: ``tests/test_bench.py`` checks
that its meta-gradient equals the engine's (float64).

Example::

    >>> import torch
    >>> model = ReferenceMLP()
    >>> xs, ys, xq, yq = (torch.randn(4, 5, 1) for _ in range(4))
    >>> loss = reference_maml_loss(model, xs, ys, xq, yq, steps=1, lr=0.01)
    >>> loss.backward(); model.fc1.weight.grad.shape
    torch.Size([40, 1])
"""

from __future__ import annotations

import torch
from torch import nn

from trlearner.engine.backbones import Params


class ReferenceMLP(nn.Module):
    """``sizes = [in, hidden1, ...]`` ReLU MLP with a linear head, as an ``nn.Module``.

    Layer names match :func:`trlearner.engine.backbones.mlp` (``fc1``, ``fc2``, ..., ``head``), so
    ``load_engine_params`` maps ``"fc1.w"`` to ``fc1.weight`` and so on.
    """

    def __init__(self, sizes=(1, 40, 40), n_out: int = 1):
        super().__init__()
        self.names = [f"fc{i}" for i in range(1, len(sizes))]
        for i, name in enumerate(self.names):
            setattr(self, name, nn.Linear(sizes[i], sizes[i + 1]))
        self.head = nn.Linear(sizes[-1], n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names:
            x = torch.relu(getattr(self, name)(x))
        return self.head(x)

    @torch.no_grad()
    def load_engine_params(self, params: Params) -> "ReferenceMLP":
        """Copy an engine parameter dict (``"<layer>.w"``, ``"<layer>.b"``) into the module."""
        for layer in [*self.names, "head"]:
            mod = getattr(self, layer)
            mod.weight.copy_(params[f"{layer}.w"])
            mod.bias.copy_(params[f"{layer}.b"])
        return self


def clone_module(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters are ``p.clone()`` (differentiable w.r.t. ``p``).

    The same construction as ``learn2learn.utils.clone_module``: copy the module objects
    (shallowly), replace every parameter by a clone that stays in the autograd graph.
    """
    clone = module.__new__(type(module))
    clone.__dict__ = module.__dict__.copy()
    clone._parameters = {k: (None if p is None else p.clone()) for k, p in module._parameters.items()}
    clone._buffers = module._buffers.copy()
    clone._modules = {k: (None if m is None else clone_module(m)) for k, m in module._modules.items()}
    return clone


def update_module(module: nn.Module, updates: dict[str, torch.Tensor]) -> None:
    """Replace each parameter ``name`` of ``module`` by ``updates[name]`` in place
    (``learn2learn.utils.update_module``); the new tensors are non-leaf graph nodes."""
    for name, new in updates.items():
        *path, leaf = name.split(".")
        owner = module
        for part in path:
            owner = owner._modules[part]
        owner._parameters[leaf] = new


def adapt_clone(learner: nn.Module, loss: torch.Tensor, lr: float, first_order: bool = False) -> None:
    """One inner SGD step on ``learner`` (a clone): ``p <- p - lr * dloss/dp``."""
    named = list(learner.named_parameters())
    grads = torch.autograd.grad(loss, [p for _, p in named], create_graph=not first_order,
                                allow_unused=True)
    update_module(learner, {n: p - lr * g for (n, p), g in zip(named, grads) if g is not None})


def reference_maml_loss(model: nn.Module, xs, ys, xq, yq, steps: int, lr: float,
                        first_order: bool = False) -> torch.Tensor:
    """Mean query MSE over the meta-batch after ``steps`` inner steps per task.

    Shapes: ``xs`` [T, S, in], ``ys`` [T, S, 1], ``xq`` [T, Q, in], ``yq`` [T, Q, 1].
    """
    losses = []
    for t in range(xs.shape[0]):
        learner = clone_module(model)
        for _ in range(steps):
            adapt_clone(learner, ((learner(xs[t]) - ys[t]) ** 2).mean(), lr, first_order)
        losses.append(((learner(xq[t]) - yq[t]) ** 2).mean())
    return torch.stack(losses).mean()


def learn2learn_maml_loss(maml, xs, ys, xq, yq, steps: int) -> torch.Tensor:
    """The same loss with ``learn2learn.algorithms.MAML`` (``maml``) itself, when installed."""
    losses = []
    for t in range(xs.shape[0]):
        learner = maml.clone()
        for _ in range(steps):
            learner.adapt(((learner(xs[t]) - ys[t]) ** 2).mean())
        losses.append(((learner(xq[t]) - yq[t]) ** 2).mean())
    return torch.stack(losses).mean()

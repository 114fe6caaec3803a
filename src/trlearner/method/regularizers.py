"""Other regularisers of meta-learning, for the time-accuracy comparison with TRLearner.

Each regulariser can change the meta-batch before the objective (``transform``) and add a
penalty on the meta-parameters (``penalty``); both are pure given the generator, so
training stays resumable bit for bit.

- ``none``
- ``weight_decay`` (strength c): ``c * sum ||theta||^2`` over the backbone weights.
- ``input_noise`` (strength s): Gaussian noise N(0, s^2) on the support and query inputs
  (an inner-loop data-noise regulariser).
- ``meta_aug`` (strength s), task-level meta-augmentation (Rajendran et al. 2020): regression
  labels of each task get one random offset U[-s, s], the same for support and query, so the
  offset can only be inferred from the support set; classification episodes get their class
  indices randomly permuted per task.

Example::

    >>> import torch
    >>> from trlearner.data.sources.dispatch import make_source
    >>> b = make_source("sinusoid", "train", shots=5).batch(range(4))
    >>> reg = make_regularizer("meta_aug", 1.0)
    >>> b2 = reg.transform(b, torch.Generator().manual_seed(0))
    >>> bool(torch.allclose((b2.ys - b.ys)[:, 0], (b2.yq - b.yq)[:, 0]))
    True
"""

from __future__ import annotations

import torch

from trlearner.data.sources.episodes import TaskBatch

REGULARIZERS = ("none", "weight_decay", "input_noise", "meta_aug")


class Regularizer:
    def __init__(self, name: str, strength: float):
        if name not in REGULARIZERS:
            raise ValueError(f"unknown regulariser {name!r}; choose one of: {', '.join(REGULARIZERS)}")
        if strength < 0:
            raise ValueError(f"regulariser strength must be >= 0 (got {strength})")
        self.name, self.strength = name, strength

    def transform(self, b: TaskBatch, gen: torch.Generator) -> TaskBatch:
        """The meta-batch the objective sees."""
        s = self.strength
        if self.name == "input_noise":
            return b._replace(xs=b.xs + s * torch.randn(b.xs.shape, generator=gen).to(b.xs),
                              xq=b.xq + s * torch.randn(b.xq.shape, generator=gen).to(b.xq))
        if self.name == "meta_aug":
            if b.ys.is_floating_point():
                shape = (b.ys.shape[0],) + (1,) * (b.ys.dim() - 1)
                off = ((torch.rand(shape, generator=gen) * 2 - 1) * s).to(b.ys)
                return b._replace(ys=b.ys + off, yq=b.yq + off)
            ways = int(b.ys.max()) + 1
            perm = torch.stack([torch.randperm(ways, generator=gen) for _ in range(b.ys.shape[0])]).to(b.ys.device)
            return b._replace(ys=torch.gather(perm, 1, b.ys), yq=torch.gather(perm, 1, b.yq))
        return b

    def penalty(self, meta: dict) -> torch.Tensor | float:
        """Added to the meta-loss."""
        if self.name == "weight_decay":
            return self.strength * sum((v ** 2).sum() for k, v in meta.items()
                                       if not k.startswith(("lr.", "trl.")) and not k.endswith(".T"))
        return 0.0


def make_regularizer(name: str = "none", strength: float = 0.0) -> Regularizer:
    return Regularizer(name, strength)

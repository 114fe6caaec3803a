"""The one interface every meta-learning algorithm implements.

An algorithm turns *meta-parameters* (a flat dict of tensors, trained by the outer loop)
into a *task state* for one task by adapting to that task's support set, and predicts query
outputs from a task state:

- ``adapt_path(meta, xs, ys, steps, lr, grad)`` yields the task state after 0, 1, ...,
  ``steps`` inner steps ("meta-layers");
- ``predict(meta, state, x)`` gives the model output for inputs ``x``.

Both work on ONE task (``xs`` [S, *input], ``ys`` [S] or [S, 1]); the engine batches tasks
with ``torch.func.vmap`` or loops over them. A task state is a dict of tensors, so it can be
stacked over tasks. TRLearner (``trlearner.relation``) uses only these two operations.

The inner gradient is computed by a :class:`~trlearner.engine.InnerGrad` passed in by the
engine, so the same algorithm code runs under ``vmap`` (``torch.func.grad``) and in the
per-task reference loop (``torch.autograd.grad``).
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from trlearner.backbones import Backbone, Params

State = dict[str, torch.Tensor]
# grad(loss_of_state, state) -> dict of gradients with the keys of ``state``.
GradFn = Callable[[Callable[[State], torch.Tensor], State], State]


def mse_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of one task: ``out``, ``y`` [N, 1] -> scalar."""
    return ((out - y) ** 2).mean()


def ce_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of one task: ``out`` [N, ways] logits, ``y`` [N] int64 -> scalar."""
    return F.cross_entropy(out, y)


def mse_metric(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return mse_loss(out, y)


def accuracy_metric(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions, in [0, 1]."""
    return (out.argmax(dim=-1) == y).float().mean()


TASK_KINDS = {
    # kind: (loss, metric, metric name, higher is better)
    "regression": (mse_loss, mse_metric, "mse", False),
    "classification": (ce_loss, accuracy_metric, "accuracy", True),
}


class Algorithm:
    """Base class: gradient-based adaptation of ``adapt_keys`` with a scalar step size.

    Subclasses change what is adapted (:meth:`adapt_keys`), the step size
    (:meth:`step_size`), extra meta-parameters (:meth:`init_params`) or the whole path.
    """

    name = "base"
    needs_inner_loop = True

    def __init__(self, backbone: Backbone, kind: str):
        if kind not in TASK_KINDS:
            raise ValueError(f"unknown task kind {kind!r}; choose one of {sorted(TASK_KINDS)}")
        self.backbone = backbone
        self.kind = kind
        self.loss_fn, self.metric_fn, self.metric_name, self.higher_is_better = TASK_KINDS[kind]

    # -- meta-parameters --------------------------------------------------------------
    def init_params(self, gen: torch.Generator, inner_lr: float) -> Params:
        """The meta-parameters, deterministic given ``gen``."""
        return self.backbone.init(gen)

    def adapt_keys(self, meta: Params) -> list[str]:
        """Keys of ``meta`` adapted in the inner loop (default: every backbone weight)."""
        return [k for k in meta if not k.endswith(".T") and "." in k and not k.startswith(("lr.", "trl."))]

    def step_size(self, meta: Params, key: str, lr: float):
        return lr

    # -- the interface ----------------------------------------------------------------
    def adapt_path(
        self, meta: Params, xs: torch.Tensor, ys: torch.Tensor, steps: int, lr: float, grad: GradFn
    ) -> Iterator[State]:
        """Yield the task state after 0..steps inner gradient steps on (xs, ys)."""
        state = {k: meta[k] for k in self.adapt_keys(meta)}
        yield state

        def support_loss(s: State) -> torch.Tensor:
            return self.loss_fn(self.backbone({**meta, **s}, xs), ys)

        for _ in range(steps):
            g = grad(support_loss, state)
            state = {k: state[k] - self.step_size(meta, k, lr) * g[k] for k in state}
            yield state

    def predict(self, meta: Params, state: State, x: torch.Tensor) -> torch.Tensor:
        """Model output for ``x`` [Q, *input] -> [Q, n_out] with the adapted state."""
        return self.backbone({**meta, **state}, x)

    def adapt(self, meta: Params, xs, ys, steps: int, lr: float, grad: GradFn) -> State:
        """The task state after ``steps`` inner steps."""
        state = None
        for state in self.adapt_path(meta, xs, ys, steps, lr, grad):
            pass
        return state

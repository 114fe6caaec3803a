"""The one interface every meta-learning algorithm implements.

An algorithm turns *meta-parameters* (a flat dict of tensors, trained by the outer loop)
into a *task state* for one task by adapting to that task's support set, and predicts query
outputs from a task state:

- ``adapt_path(meta, xs, ys, steps, lr, grad)`` yields the task state after 0, 1, ...,
  ``steps`` inner steps ("meta-layers");
- ``predict(meta, state, x)`` gives the model output for inputs ``x``.

Both work on ONE task (``xs`` [S, *input], ``ys`` [S] or [S, 1]); the engine batches tasks
with ``torch.func.vmap`` or loops over them. A task state is a dict of tensors, so it can be
stacked over tasks. TRLearner (``trlearner.method.relation``) uses only these two operations.

Task-batched fast path: with a backbone that has a task-batched forward (the MLP),
``adapt_tasks`` / ``predict_tasks`` / ``task_losses`` do the same for all T tasks at once
without ``vmap``: the task states are the meta-parameters expanded to [T, ...], and one
``torch.autograd.grad`` of the summed support losses gives every task's inner gradient (the
tasks are independent, so d(sum)/d(state_t) = d(loss_t)/d(state_t)). Same numbers as
``vmap`` of ``adapt`` up to float summation order (tests/test_tasks_batched.py); the engine
uses it when :meth:`supports_tasks` and falls back to ``vmap`` otherwise.

The inner gradient is computed by a :class:`~trlearner.engine.grad.InnerGrad` passed in by the
engine (default ``InnerGrad("func")`` when a user calls ``adapt`` directly), so the same algorithm code runs under ``vmap`` (``torch.func.grad``) and in the
per-task reference loop (``torch.autograd.grad``).

Padded episodes (variable-way/shot sources such as Meta-Dataset, label -1 at padding): the
classification loss and accuracy ignore padded entries and mask the logits of classes the
task does not have. Padded inputs are NaN-marked by the task source
(``trlearner.data.sources.episodes.PaddedSource``) and the backbone, built with ``padded=True``, keeps
them out of its transductive batch-norm statistics (``trlearner.engine.backbones.masked_batch_norm``),
so a padded episode gives the same losses and meta-gradients as the same episode unpadded
(tests/test_masked_bn.py). The algorithms need no mask of their own.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.func import vmap

from trlearner.engine.backbones import Backbone, Params, as_backbone, is_batch_norm_key
from trlearner.engine.grad import InnerGrad

State = dict[str, torch.Tensor]
# grad(loss_of_state, state) -> dict of gradients with the keys of ``state``.
GradFn = Callable[[Callable[[State], torch.Tensor], State], State]


def mse_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of one task: ``out``, ``y`` [N, 1] -> scalar."""
    return ((out - y) ** 2).mean()


# Padded entries: variable-way/shot sources (Meta-Dataset) stack episodes of different sizes
# and mark padding with label -1 (docs/CONTRACTS.md); their heads have ``n_out`` = the largest
# way (50), so logits of classes the task does not have (index >= the task's ways = max label
# + 1; labels are 0..ways-1) are masked too. For fixed-way sources (no -1, n_out == ways)
# both masks are no-ops and the numbers are unchanged.
PAD_LABEL = -1
MASKED_LOGIT = -1e9


def mask_absent_classes(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``out`` [N, n_out] with logits of classes >= the task's ways (max label + 1) set to
    a large negative number. Works under ``vmap`` (no data-dependent control flow)."""
    ways = y.max() + 1
    keep = torch.arange(out.shape[-1], device=out.device) < ways
    return torch.where(keep, out, torch.full_like(out, MASKED_LOGIT))


def ce_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of one task: ``out`` [N, n_out] logits, ``y`` [N] int64 -> scalar.

    Entries labelled -1 (padding) are ignored: the mean is over real entries only."""
    return F.cross_entropy(mask_absent_classes(out, y), y, ignore_index=PAD_LABEL)


def mse_metric(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return mse_loss(out, y)


def accuracy_metric(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions over the real (label >= 0) entries, in [0, 1]."""
    valid = y >= 0
    hit = (mask_absent_classes(out, y).argmax(dim=-1) == y) & valid
    return hit.sum().to(out.dtype) / valid.sum().clamp_min(1).to(out.dtype)


def r2_metric(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """pQSAR's per-assay "R^2" as MetaMix computes it: the squared Pearson correlation of
    predictions and targets of one task, 0 where it is undefined (constant predictions or
    targets): ``out``, ``y`` [N, 1] -> scalar. Same formula as
    ``trlearner.data.sources.drug.r2_per_task``; not ``1 - SS_res/SS_tot``."""
    p = out - out.mean()
    t = y - y.mean()
    cov = (p * t).sum()
    var = (p * p).sum() * (t * t).sum()
    return torch.where(var > 0, cov * cov / var.clamp_min(1e-30), torch.zeros_like(var))


# Metrics an algorithm can report instead of its kind's default (``Algorithm.set_metric``):
# name -> (metric, higher is better).
METRICS = {"mse": (mse_metric, False), "accuracy": (accuracy_metric, True), "r2": (r2_metric, True)}


TASK_KINDS = {
    # kind: (loss, metric, metric name, higher is better)
    "regression": (mse_loss, mse_metric, "mse", False),
    "classification": (ce_loss, accuracy_metric, "accuracy", True),
}


class Algorithm:
    """Base class: gradient-based adaptation of ``adapt_keys`` with a scalar step size.

    Subclasses change what is adapted (:meth:`adapt_keys`), the step size
    (:meth:`step_size`), extra meta-parameters (:meth:`init_params`) or the whole path.

    Arguments:
        backbone: the model: a :class:`~trlearner.engine.backbones.Backbone` or a
            ``torch.nn.Module`` (run through ``torch.func.functional_call``;
            :func:`~trlearner.engine.backbones.from_module` says what it supports).
        kind: ``regression`` (mean squared error) or ``classification`` (cross-entropy).
        adapt_bn: adapt the batch-norm scale/shift in the inner loop too. Default False: in
            Finn's MAML code (cbfinn/maml, utils.py ``normalize``) and MT-net's code the batch
            norm variables live outside the fast weights, so only the outer loop trains them.
    """

    name = "base"
    needs_inner_loop = True

    def __init__(self, backbone: Backbone, kind: str, adapt_bn: bool = False):
        if kind not in TASK_KINDS:
            raise ValueError(f"unknown task kind {kind!r}; choose one of {sorted(TASK_KINDS)}")
        self.backbone = as_backbone(backbone)
        self.kind = kind
        self.adapt_bn = bool(adapt_bn)
        self.loss_fn, self.metric_fn, self.metric_name, self.higher_is_better = TASK_KINDS[kind]

    def set_metric(self, name: str) -> None:
        """Report ``name`` (``mse``, ``accuracy``, ``r2``) at evaluation; the loss is unchanged."""
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; choose one of {sorted(METRICS)}")
        self.metric_fn, self.higher_is_better = METRICS[name]
        self.metric_name = name

    # -- meta-parameters --------------------------------------------------------------
    def init_params(self, gen: torch.Generator, inner_lr: float) -> Params:
        """The meta-parameters, deterministic given ``gen``."""
        return self.backbone.init(gen)

    def adapt_keys(self, meta: Params) -> list[str]:
        """Keys of ``meta`` adapted in the inner loop: every backbone weight, the batch-norm
        scale/shift only with ``adapt_bn``."""
        bn = self.backbone.bn_keys
        return [k for k in meta if not k.endswith(".T") and "." in k and not k.startswith(("lr.", "trl."))
                and (self.adapt_bn or not (is_batch_norm_key(k) or k in bn))]

    def step_size(self, meta: Params, key: str, lr: float):
        return lr

    # -- the interface ----------------------------------------------------------------
    def adapt_path(
        self, meta: Params, xs: torch.Tensor, ys: torch.Tensor, steps: int, lr: float, grad: GradFn | None = None
    ) -> Iterator[State]:
        """Yield the task state after 0..steps inner gradient steps on (xs, ys)."""
        grad = InnerGrad("func") if grad is None else grad
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

    # -- the task-batched fast path (module docstring) --------------------------------
    def supports_tasks(self) -> bool:
        """True when :meth:`adapt_tasks` computes what ``vmap`` of :meth:`adapt` does: the
        backbone has a task-batched forward, and a subclass that replaces :meth:`adapt_path`
        or :meth:`predict` also replaces :meth:`tasks_inputs` or :meth:`tasks_forward`."""
        cls, base = type(self), Algorithm
        own_tasks = cls.tasks_inputs is not base.tasks_inputs or cls.tasks_forward is not base.tasks_forward
        same = cls.adapt_path is base.adapt_path and cls.predict is base.predict
        return self.needs_inner_loop and self.backbone.features_tasks is not None and (same or own_tasks)

    def tasks_inputs(self, meta: Params, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """What the adapted layers read, computed once per call: ``x`` itself ([T, N, *input],
        or [N, *input] when ``shared``); ANIL: the body's features."""
        return x

    def tasks_forward(self, meta: Params, state: State, h: torch.Tensor) -> torch.Tensor:
        """Every task model on its inputs ``h`` [T, N, ...] (from :meth:`tasks_inputs`) -> [T, N, n_out]."""
        params = {**meta, **state}
        return self.backbone.head_tasks(params, self.backbone.features_tasks(params, h))

    def task_losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-task loss: ``out`` [T, N, n_out], ``y`` [T, N(, 1)] -> [T]."""
        if self.loss_fn is mse_loss:
            return ((out - y) ** 2).flatten(1).mean(1)
        return vmap(self.loss_fn)(out, y)

    def adapt_tasks(self, meta: Params, xs: torch.Tensor, ys: torch.Tensor, steps: int, lr: float,
                    first_order: bool = False) -> State:
        """The task states [T, ...] after ``steps`` inner steps on every task's support set
        (``xs`` [T, S, *input], ``ys`` [T, S(, 1)]); differentiable w.r.t. ``meta``
        (second-order unless ``first_order``). Needs grad mode and ``meta`` requiring grad."""
        h = self.tasks_inputs(meta, xs)
        state = {k: meta[k].expand(xs.shape[0], *meta[k].shape) for k in self.adapt_keys(meta)}
        for _ in range(steps):
            loss = self.task_losses(self.tasks_forward(meta, state, h), ys).sum()
            gs = torch.autograd.grad(loss, list(state.values()), create_graph=not first_order, retain_graph=True)
            state = {k: v - self.step_size(meta, k, lr) * g for (k, v), g in zip(state.items(), gs)}
        return state

    def predict_tasks(self, meta: Params, state: State, x: torch.Tensor, shared_x: bool = False) -> torch.Tensor:
        """Outputs of every task model: ``state`` [T, ...], ``x`` [T, N, *input] (or [N, *input]
        seen by every model with ``shared_x``) -> [T, N, n_out]."""
        h = self.tasks_inputs(meta, x, shared_x)
        if shared_x:
            h = h.expand(next(iter(state.values())).shape[0], *h.shape)
        return self.tasks_forward(meta, state, h)

    def adapt(self, meta: Params, xs, ys, steps: int, lr: float, grad: GradFn | None = None) -> State:
        """The task state after ``steps`` inner steps on one task's support set.

        Arguments:
            meta: the meta-parameters (:meth:`init_params`).
            xs, ys: the support set, ``xs`` [S, *input], ``ys`` [S, 1] or [S].
            steps, lr: inner gradient steps and their step size.
            grad: the inner gradient (default ``InnerGrad("func")``; keeps the graph to
                ``meta``, so the meta-gradient is second-order).

        Returns:
            dict of the adapted tensors, for :meth:`predict`.
        """
        state = None
        for state in self.adapt_path(meta, xs, ys, steps, lr, grad):
            pass
        return state

"""Run an algorithm over a meta-batch of tasks: the ``vmap`` engine and the reference loop.

Two back-ends compute the same thing:

- ``"vmap"``: one call of ``torch.func.vmap`` over the task dimension; inner gradients with
  ``torch.func.grad``. This is the fast path.
- ``"loop"``: a Python loop over tasks; inner gradients with ``torch.autograd.grad``. This is
  the reference the tests compare against (same meta-gradients to float64 precision).

Within ``"vmap"``, backbones with a task-batched forward (the MLP) take a faster path when it
is exact: the tasks batched by the backbone itself (``baddbmm`` over per-task weights) and one
``torch.autograd.grad`` for every task's inner gradient (``Algorithm.adapt_tasks``), which pays
``vmap``'s and ``torch.func.grad``'s per-op overhead nowhere (1.4-1.6x faster for a sinusoid
meta-iteration, paired; benchmarks/README.md). It needs grad mode, meta-parameters that require
grad and no enclosing ``torch.func`` transform (the stacked trainer's seed ``vmap`` keeps the
``vmap`` path); ``tasks_batched=False`` forces ``vmap``, ``True`` refuses to fall back.

Example::

    >>> import torch
    >>> from trlearner.engine.algorithms import make_algorithm
    >>> from trlearner.engine.backbones import mlp
    >>> algo = make_algorithm("maml", mlp([1, 40, 40], 1), "regression")
    >>> meta = {k: v.requires_grad_() for k, v in
    ...         algo.init_params(torch.Generator().manual_seed(0), 0.01).items()}
    >>> xs, ys, xq, yq = (torch.randn(4, 5, 1) for _ in range(4))
    >>> out = adapt_batch(algo, meta, xs, ys, xq, yq, steps=1, lr=0.01)
    >>> out.losses.shape
    torch.Size([4])
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.func import vmap

from trlearner.engine.algorithms.base import Algorithm, State
from trlearner.engine.backbones import Params
from trlearner.engine.grad import InnerGrad  # re-exported: trlearner.engine.core.InnerGrad

__all__ = ["BACKENDS", "InnerGrad", "BatchOutput", "adapt_batch", "adapt_cross", "cross_predict",
           "evaluate_curve", "uses_tasks_path"]

BACKENDS = ("vmap", "loop")


class BatchOutput(NamedTuple):
    """Result of adapting a meta-batch: per-task query losses [T] and stacked states."""

    losses: torch.Tensor
    states: State  # every tensor [T, ...]


def uses_tasks_path(algo: Algorithm, meta: Params, tasks_batched: bool | None = None) -> bool:
    """Whether the ``vmap`` back-end takes the task-batched fast path (module docstring).

    ``tasks_batched``: None = whenever it is exact, False = never, True = always (a
    ``ValueError`` says why when it cannot)."""
    if tasks_batched is False:
        return False
    why = None
    if not algo.supports_tasks():
        why = f"{algo.name} on the {algo.backbone.name} backbone has no task-batched forward"
    elif not torch.is_grad_enabled():
        why = "grad mode is off"
    elif not all(meta[k].requires_grad for k in algo.adapt_keys(meta)):
        why = "the adapted meta-parameters do not require grad"
    elif torch._C._functorch.peek_interpreter_stack() is not None:
        why = "it runs inside a torch.func transform"
    if why is not None and tasks_batched:
        raise ValueError(f"the task-batched path cannot run here: {why}")
    return why is None


def adapt_batch(
    algo: Algorithm,
    meta: Params,
    xs: torch.Tensor,
    ys: torch.Tensor,
    xq: torch.Tensor,
    yq: torch.Tensor,
    steps: int,
    lr: float,
    backend: str = "vmap",
    first_order: bool = False,
    tasks_batched: bool | None = None,
) -> BatchOutput:
    """Adapt to each task's support set, then score its query set.

    Shapes: ``xs`` [T, S, *input], ``ys`` [T, S(, 1)], ``xq`` [T, Q, *input],
    ``yq`` [T, Q(, 1)]. Returns the query loss of every task [T] (differentiable w.r.t.
    ``meta``) and the adapted task states, stacked over tasks. ``tasks_batched``: see
    :func:`uses_tasks_path` (``vmap`` back-end only).
    """
    if backend == "vmap" and uses_tasks_path(algo, meta, tasks_batched):
        states = algo.adapt_tasks(meta, xs, ys, steps, lr, first_order)
        return BatchOutput(algo.task_losses(algo.predict_tasks(meta, states, xq), yq), states)
    if backend == "vmap":
        grad = InnerGrad("func", first_order)

        def one_task(xs_t, ys_t, xq_t, yq_t):
            state = algo.adapt(meta, xs_t, ys_t, steps, lr, grad)
            return algo.loss_fn(algo.predict(meta, state, xq_t), yq_t), state

        losses, states = vmap(one_task, randomness="error")(xs, ys, xq, yq)
        return BatchOutput(losses, states)
    if backend == "loop":
        grad = InnerGrad("autograd", first_order)
        losses, states = [], []
        for t in range(xs.shape[0]):
            state = algo.adapt(meta, xs[t], ys[t], steps, lr, grad)
            losses.append(algo.loss_fn(algo.predict(meta, state, xq[t]), yq[t]))
            states.append(state)
        stacked = {k: torch.stack([s[k] for s in states]) for k in states[0]}
        return BatchOutput(torch.stack(losses), stacked)
    raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")


def adapt_cross(algo: Algorithm, meta: Params, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor,
                steps: int, lr: float, first_order: bool = False, tasks_batched: bool | None = None) -> torch.Tensor:
    """Adapt to every task and predict on every task's queries, in one ``vmap``.

    ``xs`` [T, S, *input], ``ys`` [T, S(, 1)], ``xq`` [T, Q, *input] -> ``out`` [T, T, Q, n_out]
    with ``out[p, i] = f^p(xq[i])``; the diagonal ``out[i, i]`` is each task's own query
    prediction, so the task loss needs no separate forward. Each adapted model sees all T*Q
    queries as one batch, which is exact only for backbones without batch statistics
    (``algo.backbone.batch_stats`` False); the same numbers as ``adapt_batch`` followed by
    ``cross_predict``, with one vmapped call instead of two (or none, on the task-batched
    path: ``tasks_batched``, see :func:`uses_tasks_path`).
    """
    if algo.backbone.batch_stats:
        raise ValueError("adapt_cross needs a backbone without batch statistics; use adapt_batch + cross_predict")
    n, q = xq.shape[:2]
    flat = xq.reshape(n * q, *xq.shape[2:])
    if uses_tasks_path(algo, meta, tasks_batched):
        states = algo.adapt_tasks(meta, xs, ys, steps, lr, first_order)
        return algo.predict_tasks(meta, states, flat, shared_x=True).reshape(n, n, q, -1)
    grad = InnerGrad("func", first_order)

    def one_task(xs_t, ys_t):
        return algo.predict(meta, algo.adapt(meta, xs_t, ys_t, steps, lr, grad), flat)

    return vmap(one_task, randomness="error")(xs, ys).reshape(n, n, q, -1)


def cross_predict(algo: Algorithm, meta: Params, states: State, xq: torch.Tensor, backend: str = "vmap"):
    """Every task model on every task's queries: ``out[p, i] = f^p(xq[i])``.

    ``states`` are stacked over T tasks, ``xq`` [T, Q, *input] -> ``out`` [T, T, Q, n_out].
    Without batch statistics each model sees all T*Q queries in one call; with batch norm,
    each (model, task) pair is its own batch, so statistics are those of task i's queries.
    """
    n, q = xq.shape[:2]
    if not algo.backbone.batch_stats:
        flat = xq.reshape(n * q, *xq.shape[2:])
        if backend == "vmap":
            out = vmap(lambda state_p: algo.predict(meta, state_p, flat))(states)
        else:
            out = torch.stack([algo.predict(meta, {k: v[p] for k, v in states.items()}, flat)
                               for p in range(n)])
        return out.reshape(n, n, q, -1)
    if backend == "vmap":

        def model_p(state_p):
            return vmap(lambda x: algo.predict(meta, state_p, x))(xq)

        return vmap(model_p)(states)
    rows = []
    for p in range(n):
        state_p = {k: v[p] for k, v in states.items()}
        rows.append(torch.stack([algo.predict(meta, state_p, xq[i]) for i in range(n)]))
    return torch.stack(rows)


@torch.no_grad()
def evaluate_curve(
    algo: Algorithm, meta: Params, xs, ys, xq, yq, steps: int, lr: float, chunk: int = 100
) -> torch.Tensor:
    """Per-task test metric after 0..steps inner steps: returns [T, steps + 1].

    Tasks are processed ``chunk`` at a time under ``vmap`` to bound memory.
    """
    grad = InnerGrad("func")

    def one_task(xs_t, ys_t, xq_t, yq_t):
        path = algo.adapt_path(meta, xs_t, ys_t, steps, lr, grad)
        return torch.stack([algo.metric_fn(algo.predict(meta, s, xq_t), yq_t) for s in path])

    out = [
        vmap(one_task)(xs[i : i + chunk], ys[i : i + chunk], xq[i : i + chunk], yq[i : i + chunk])
        for i in range(0, xs.shape[0], chunk)
    ]
    return torch.cat(out)

"""The inner-loop gradient the algorithms call: ``torch.func.grad`` or ``torch.autograd.grad``.

Its own module so that the algorithms (:mod:`.algorithms.base`, which default to it) and the
engine (:mod:`.core`, which passes it in) both import it without importing each other.

Example::

    >>> import torch
    >>> g = InnerGrad("func")(lambda s: (s["w"] ** 2).sum(), {"w": torch.tensor([3.0])})
    >>> float(g["w"])
    6.0
"""

from __future__ import annotations

import torch
from torch.func import grad as func_grad

State = dict[str, torch.Tensor]


class InnerGrad:
    """Inner-loop gradient of a scalar function of a state dict.

    ``mode="func"`` uses ``torch.func.grad`` (works under ``vmap`` and inside
    ``torch.no_grad``); ``mode="autograd"`` uses ``torch.autograd.grad`` (the reference).
    ``first_order=True`` drops the inner gradients from the meta-gradient (FOMAML).
    """

    def __init__(self, mode: str = "func", first_order: bool = False):
        if mode not in ("func", "autograd"):
            raise ValueError(f"unknown inner-gradient mode {mode!r}")
        self.mode = mode
        self.first_order = first_order

    def __call__(self, fn, state: State) -> State:
        if self.mode == "func":
            g = func_grad(fn)(state)
            return {k: v.detach() for k, v in g.items()} if self.first_order else g
        keys = list(state)
        with torch.enable_grad():
            leaves = {k: state[k] if state[k].requires_grad else state[k].requires_grad_() for k in keys}
            create = torch.is_grad_enabled() and not self.first_order
            gs = torch.autograd.grad(fn(leaves), [leaves[k] for k in keys], create_graph=create)
        return dict(zip(keys, gs))

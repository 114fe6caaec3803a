"""MAML, ANIL, Meta-SGD, T-NET and ProtoNet on one interface (see :mod:`.base`).

The algorithms are the table :data:`~.names.ALGORITHMS` (name -> class, report label); the
registry imports only the module of the algorithm asked for (``engine/algorithms/<name>.py``),
so importing this package imports no torch. The classes are attributes here too, imported on
first use (``from trlearner.engine.algorithms import MAML``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from trlearner.engine.algorithms.names import ALGORITHMS

if TYPE_CHECKING:
    from trlearner.engine.algorithms.base import Algorithm


def algorithm_class(name: str) -> type[Algorithm]:
    """The class of algorithm ``name``: ``ALGORITHMS[name].cls`` of ``engine/algorithms/<name>.py``.

    Arguments:
        name: a key of :data:`ALGORITHMS`.

    Example::

        >>> algorithm_class("tnet").__name__, algorithm_class("tnet").name
        ('TNet', 'tnet')
    """
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGORITHMS)}")
    return getattr(import_module(f"{__name__}.{name}"), ALGORITHMS[name].cls)


def make_algorithm(name: str, backbone, kind: str, **options) -> Algorithm:
    """Build an algorithm by name (``maml``, ``anil``, ``metasgd``, ``tnet``, ``protonet``).

    Arguments:
        name: the algorithm.
        backbone: a :class:`~trlearner.engine.backbones.Backbone`.
        kind: ``regression`` or ``classification``.
        options: ``adapt_bn`` (every algorithm; default False, docs/BASELINES.md) and
            ``lr_init`` (``metasgd`` only: ``uniform`` or ``constant``).

    Example::

        >>> from trlearner.engine.backbones import mlp
        >>> make_algorithm("metasgd", mlp([1, 40, 40], 1), "regression", lr_init="constant").lr_init
        'constant'
    """
    cls = algorithm_class(name)
    if "lr_init" in options and name != "metasgd":
        raise ValueError(f"lr_init (the step-size init) applies to metasgd only, not to {name!r}")
    return cls(backbone, kind, **options)


def __getattr__(attr: str):
    """``Algorithm`` and the algorithms' classes (``MAML``, ...), imported on first use (PEP 562)."""
    if attr == "Algorithm":
        from trlearner.engine.algorithms.base import Algorithm

        return Algorithm
    for name, entry in ALGORITHMS.items():
        if entry.cls == attr:
            return algorithm_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["ALGORITHMS", "Algorithm", "algorithm_class", "make_algorithm", *(e.cls for e in ALGORITHMS.values())]

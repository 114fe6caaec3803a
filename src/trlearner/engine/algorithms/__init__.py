"""MAML, ANIL, Meta-SGD, T-NET and ProtoNet on one interface (see :mod:`.base`)."""

from trlearner.engine.algorithms.anil import ANIL
from trlearner.engine.algorithms.base import Algorithm
from trlearner.engine.algorithms.maml import MAML
from trlearner.engine.algorithms.metasgd import MetaSGD
from trlearner.engine.algorithms.protonet import ProtoNet
from trlearner.engine.algorithms.tnet import TNet

ALGORITHMS = {cls.name: cls for cls in (MAML, ANIL, MetaSGD, TNet, ProtoNet)}


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
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGORITHMS)}")
    if "lr_init" in options and name != "metasgd":
        raise ValueError(f"lr_init (the step-size init) applies to metasgd only, not to {name!r}")
    return ALGORITHMS[name](backbone, kind, **options)


__all__ = ["ALGORITHMS", "Algorithm", "make_algorithm", "MAML", "ANIL", "MetaSGD", "TNet", "ProtoNet"]

"""MAML, ANIL, Meta-SGD, T-NET and ProtoNet on one interface (see :mod:`.base`)."""

from trlearner.algorithms.anil import ANIL
from trlearner.algorithms.base import Algorithm
from trlearner.algorithms.maml import MAML
from trlearner.algorithms.metasgd import MetaSGD
from trlearner.algorithms.protonet import ProtoNet
from trlearner.algorithms.tnet import TNet

ALGORITHMS = {cls.name: cls for cls in (MAML, ANIL, MetaSGD, TNet, ProtoNet)}


def make_algorithm(name: str, backbone, kind: str) -> Algorithm:
    """Build an algorithm by name (``maml``, ``anil``, ``metasgd``, ``tnet``, ``protonet``)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name](backbone, kind)


__all__ = ["ALGORITHMS", "Algorithm", "make_algorithm", "MAML", "ANIL", "MetaSGD", "TNet", "ProtoNet"]

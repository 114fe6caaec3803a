"""TRLearner: a functional meta-learning engine and the Task Relation Learner regulariser.

The public API (imported lazily: ``import trlearner`` and ``trlearner --help`` load no torch)::

    from trlearner import MAML, ANIL, MetaSGD, TNet, ProtoNet   # the algorithms
    from trlearner import TRLearner, TRConfig                    # the regulariser
    from trlearner import from_module, mlp, conv4, resnet12      # backbones (or pass an nn.Module)
    from trlearner import adapt_batch, InnerGrad, make_source    # the engine, task sources

README.md, section "Python API", meta-trains an ``nn.Sequential`` with MAML and TRLearner.
"""

__version__ = "0.1.0"

# public name -> the module that defines it (or modules, tried in order)
_EXPORTS = {
    "Algorithm": "trlearner.engine.algorithms.base",
    "MAML": "trlearner.engine.algorithms.maml",
    "ANIL": "trlearner.engine.algorithms.anil",
    "MetaSGD": "trlearner.engine.algorithms.metasgd",
    "TNet": "trlearner.engine.algorithms.tnet",
    "ProtoNet": "trlearner.engine.algorithms.protonet",
    "make_algorithm": "trlearner.engine.algorithms",
    "Backbone": "trlearner.engine.backbones",
    "from_module": "trlearner.engine.backbones",
    "mlp": "trlearner.engine.backbones",
    "conv4": "trlearner.engine.backbones",
    "resnet12": "trlearner.engine.backbones",
    "InnerGrad": "trlearner.engine.grad",
    "adapt_batch": "trlearner.engine.core",
    "TaskBatch": "trlearner.data.sources.episodes",
    "make_source": "trlearner.data.sources.dispatch",
    "TRLearner": "trlearner.method.relation",
    "TRConfig": "trlearner.method.trconfig",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trlearner' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

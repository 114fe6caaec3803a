"""A run's settings: :class:`RunConfig`, filled from its protocol and checked before any work.

A run is (dataset, algorithm, variant, shots/ways, seed) plus its protocol
(:mod:`trlearner.run.protocols`, or a named reading of it, :mod:`trlearner.run.readings`).
:func:`resolve_config` fills every ``None`` setting from the protocol and refuses a setting
that cannot give a meaningful run (:func:`check_run_config`), naming its ``trlearner train``
flag; :meth:`RunConfig.identity` is what determines the numbers, hashed into a run's
``config_hash``. Also here: the device a run asks for (:func:`pick_device`), whether it is
weaker than its protocol (:func:`is_reduced`) and how a run that diverged ends
(:class:`DivergedError`, exit status :data:`DIVERGED_EXIT`).

Example::

    >>> cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=20)
    >>> cfg.variant, cfg.backbone, is_reduced(cfg)
    ('baseline', 'mlp', True)
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, fields, replace

import torch

from trlearner.engine.algorithms import ALGORITHMS
from trlearner.engine.core import BACKENDS
from trlearner.method.trconfig import TRConfig
from trlearner.run.protocols import REDUCIBLE, paper_protocol
from trlearner.run.readings import reading_settings

DIVERGED_EXIT = 3  # the exit status of a run (or stack) whose loss became NaN or infinite
logger = logging.getLogger(__name__)


class DivergedError(RuntimeError):
    """The meta-training loss became NaN or infinite."""


@dataclass
class RunConfig:
    """Everything that defines a run. ``None`` fields are filled from the protocol."""

    dataset: str
    algorithm: str
    shots: int
    ways: int | None = None
    seed: int = 0
    iterations: int | None = None
    meta_batch: int | None = None
    inner_steps: int | None = None
    inner_lr: float | None = None
    test_steps: int | None = None
    test_lr: float | None = None
    curve_steps: int | None = None
    outer_lr: float | None = None
    first_order: bool = False
    backbone: str | None = None
    filters: int | None = None
    hidden: tuple | None = None
    metric: str | None = None
    train_queries: int | None = None
    test_tasks: int | None = None
    test_queries: int | None = None
    backend: str = "vmap"
    device: str = "auto"
    checkpoint_every: int = 1000
    eval_every: int = 0
    eval_tasks: int = 100
    preset: str = "cli"
    data_root: str = "data"
    trlearner: TRConfig | None = None
    regularizer: str = "none"
    reg_strength: float = 0.0
    # multi-source Meta-Dataset (dataset "metadataset") only: sources trained on / held out
    train_sources: tuple | None = None
    heldout_sources: tuple | None = None
    # the dataset of the TRAINING episodes when it differs from ``dataset`` (whose val/test
    # classes evaluate the run): the cross-domain cells cub/places train on miniimagenet
    # (trlearner.run.protocols.CROSS_DOMAIN); None = train on ``dataset`` itself
    train_dataset: str | None = None
    # the baselines as their authors ran them (trlearner.run.protocols, docs/BASELINES.md)
    adapt_bn: bool | None = None
    downsample: str | None = None
    init: str | None = None
    grad_clip: float | None = None
    train_ways: int | None = None
    metasgd_lr_init: str | None = None
    # a named reading of the protocol (trlearner.run.readings): its settings replace the
    # dataset protocol's, and explicit settings replace the reading's
    reading: str | None = None
    protocol_reference: dict = field(default_factory=dict)

    @property
    def variant(self) -> str:
        return "baseline" if self.trlearner is None else "trlearner"

    def identity(self) -> dict:
        """The settings that determine the numbers (not where or how fast they are made)."""
        d = asdict(self)
        for k in ("device", "checkpoint_every", "preset", "data_root", "protocol_reference"):
            d.pop(k)
        d.pop("reading")  # a name for settings that are all in the identity already
        for k in ("train_sources", "heldout_sources", "train_dataset"):  # unset elsewhere: the
            if d[k] is None:                             # identity (and hash) stays as before
                d.pop(k)
        return d

    def to_dict(self) -> dict:
        """Every setting as plain data (JSON-ready; ``trlearner`` a dict or None), without the
        derived ``protocol_reference``: what a pipeline job receives (:meth:`from_dict`).

        Example:
            >>> cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, trlearner=TRConfig(lam=0.5))
            >>> d = cfg.to_dict()
            >>> d["trlearner"]["lam"], "protocol_reference" in d, RunConfig.from_dict(d) == cfg
            (0.5, False, True)
        """
        d = asdict(self)
        d.pop("protocol_reference")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """The config of :meth:`to_dict` (lists of JSON back to tuples), resolved and checked
        again by :func:`resolve_config` (idempotent on a resolved config).

        Raises:
            ValueError: an unknown or invalid setting.
        """
        d = dict(d)
        trl = d.pop("trlearner", None)
        for name in TUPLE_FIELDS:
            if isinstance(d.get(name), list):
                d[name] = tuple(d[name])
        return resolve_config(**d, trlearner=None if trl is None else TRConfig(**trl))

    @property
    def multi_source(self) -> bool:
        """True for the multi-source Meta-Dataset run (train on some sources, test on all)."""
        return self.dataset == "metadataset"

    def source_options(self) -> dict:
        """Extra ``make_source`` options of this run's dataset."""
        if not self.multi_source:
            return {}
        return {"train_sources": self.train_sources, "heldout_sources": self.heldout_sources}


#: The fields of :class:`RunConfig` that hold tuples (JSON gives lists).
TUPLE_FIELDS = ("hidden", "train_sources", "heldout_sources")


def resolve_config(**kwargs) -> RunConfig:
    """A :class:`RunConfig` with every ``None`` setting taken from the dataset's protocol."""
    known = {f.name for f in fields(RunConfig)}
    unknown = set(kwargs) - known
    if unknown:
        raise ValueError(f"unknown run setting(s): {', '.join(sorted(unknown))}")
    cfg = RunConfig(**kwargs)
    if not cfg.multi_source and (cfg.train_sources is not None or cfg.heldout_sources is not None):
        raise ValueError(f"train_sources/heldout_sources apply to the multi-source dataset 'metadataset' only, "
                         f"not to {cfg.dataset!r}")
    if cfg.algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {cfg.algorithm!r}; choose one of: {', '.join(ALGORITHMS)}")
    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown backend {cfg.backend!r}; choose one of: {', '.join(BACKENDS)}")
    if cfg.shots < 1:
        raise ValueError(f"shots must be >= 1 (got {cfg.shots})")
    proto = paper_protocol(cfg.dataset, cfg.algorithm, cfg.ways, cfg.shots, cfg.backbone)
    if cfg.reading is not None:
        proto.update(reading_settings(cfg.reading, cfg.dataset))
    for key, value in proto.items():
        if getattr(cfg, key, None) is None:
            setattr(cfg, key, value)
    cfg.protocol_reference = proto
    if cfg.multi_source:
        from trlearner.data.sources.metadataset_multi import check_sources

        cfg.train_sources, cfg.heldout_sources = check_sources(cfg.train_sources, cfg.heldout_sources)
    if cfg.train_dataset is not None:
        from trlearner.run.protocols import FIXED_WAY_IMAGE_DATASETS as allowed

        if cfg.dataset not in allowed or cfg.train_dataset not in allowed:
            raise ValueError(f"train_dataset={cfg.train_dataset!r} with dataset={cfg.dataset!r}: a separate training "
                             f"dataset needs both to be fixed-way image datasets; allowed: {', '.join(allowed)}")
    if cfg.trlearner is not None and cfg.dataset.startswith("metadataset") and cfg.trlearner.class_repr == "concat":
        # variable ways: concatenated class means would change size with every episode
        logger.warning("TRLearner on variable-way episodes uses class_repr='mean' (concatenated class "
                       "means are undefined when the number of ways varies); recorded in metrics.json")
        cfg.trlearner = replace(cfg.trlearner, class_repr="mean")
    if cfg.algorithm == "protonet":
        cfg.inner_steps = cfg.test_steps = cfg.curve_steps = 0
    cfg.curve_steps = max(cfg.curve_steps, cfg.test_steps)
    for name in ("iterations", "meta_batch", "test_tasks", "test_queries"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1 (got {getattr(cfg, name)})")
    check_run_config(cfg)
    return cfg


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def dataset_kind(dataset: str) -> tuple[str, str] | None:
    """(task kind, input kind) of ``dataset``: kind ``regression``, ``classification`` or
    ``varway`` (variable-way classification, Meta-Dataset); input ``vector`` (the MLP's) or
    ``image`` (conv4/resnet12). None for a dataset the data registry does not know.

    Example:
        >>> dataset_kind("sinusoid"), dataset_kind("omniglot")
        (('regression', 'vector'), ('classification', 'image'))
    """
    from trlearner.data.sources.regression import FAMILIES
    from trlearner.data.registry import get

    if dataset in FAMILIES:
        return "regression", "vector"
    try:
        spec = get(dataset)
    except KeyError:
        return None
    if spec.converter == "pqsar":
        return "regression", "vector"
    if spec.converter == "pose":
        return "regression", "image"
    if dataset.startswith("metadataset"):
        return "varway", "image"
    return "classification", "image"


def check_run_config(cfg: RunConfig) -> None:
    """Refuse settings that cannot give a meaningful run, before any work is done.

    Arguments:
        cfg: a run config whose protocol settings are filled in (as :func:`resolve_config` does).

    Raises:
        ValueError: naming the option (as its ``trlearner train`` flag) and what is allowed.

    Example:
        >>> cfg = RunConfig(dataset="sinusoid", algorithm="maml", shots=5, ways=5)
        >>> check_run_config(cfg)
        Traceback (most recent call last):
        ...
        ValueError: --ways 5 given for the regression dataset 'sinusoid'; allowed: no --ways (regression tasks have no classes)
    """
    floats = {"inner_lr": ">", "test_lr": ">", "outer_lr": ">", "reg_strength": ">="}
    values = {k: getattr(cfg, k) for k in floats}
    if cfg.trlearner is not None:
        floats["lam"], values["lam"] = ">=", cfg.trlearner.lam
    for name, op in floats.items():
        v = values[name]
        if v is None:
            continue
        if not math.isfinite(v) or (v <= 0 if op == ">" else v < 0):
            raise ValueError(f"{_flag(name)} {v}: allowed: a finite number {op} 0")
    kind = dataset_kind(cfg.dataset)
    if kind is not None:
        task, inputs = kind
        if task == "regression" and cfg.ways is not None:
            raise ValueError(f"--ways {cfg.ways} given for the regression dataset {cfg.dataset!r}; "
                             f"allowed: no --ways (regression tasks have no classes)")
        if task == "varway" and cfg.ways is not None:
            raise ValueError(f"--ways {cfg.ways} given for {cfg.dataset!r}, whose episodes have a variable "
                             f"number of ways drawn by the Meta-Dataset sampler; allowed: no --ways")
        if task == "classification" and cfg.ways is None:
            raise ValueError(f"dataset {cfg.dataset!r} is classification: give --ways N (N >= 2 classes "
                             f"per episode, e.g. --ways 5)")
        if task == "regression" and cfg.algorithm == "protonet":
            raise ValueError(f"--algorithm protonet classifies by class prototypes; {cfg.dataset!r} is "
                             f"regression; allowed: --algorithm "
                             f"{', '.join(a for a in ALGORITHMS if a != 'protonet')}")
        allowed = ("mlp",) if inputs == "vector" else ("conv4", "resnet12")
        if cfg.backbone is not None and cfg.backbone not in allowed:
            raise ValueError(f"--backbone {cfg.backbone} does not fit the {inputs} inputs of {cfg.dataset!r}; "
                             f"allowed: --backbone {' or '.join(allowed)}")
    if cfg.ways is not None and cfg.ways < 2:
        raise ValueError(f"--ways {cfg.ways}: a {cfg.ways}-way episode has nothing to tell apart; "
                         f"allowed: --ways >= 2")
    if cfg.trlearner is not None:
        if cfg.meta_batch < 2:
            raise ValueError(f"--trlearner with --meta-batch {cfg.meta_batch}: TRLearner weighs the relations "
                             f"between the tasks of a meta-batch, which are 0/0 for a single task; "
                             f"allowed: --meta-batch >= 2")
        if cfg.regularizer == "meta_aug" and kind is not None and kind[0] != "regression":
            raise ValueError("--trlearner with --regularizer meta_aug on classification: meta_aug permutes "
                             "the class labels, which breaks TRLearner's class-ordered representations; "
                             "allowed: another --regularizer, or meta_aug without --trlearner")


def pick_device(device: str) -> str:
    """The device of ``--device``: ``auto`` is CUDA when PyTorch sees it, else the CPU.

    Raises:
        ValueError: a CUDA device asked for where PyTorch sees none.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} asked for, but PyTorch sees no CUDA device")
    return device


def is_reduced(cfg: RunConfig) -> bool:
    """True when the run is weaker than the protocol of its dataset."""
    return any(getattr(cfg, k) < cfg.protocol_reference[k] for k in REDUCIBLE)

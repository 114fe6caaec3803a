"""Meta-training and evaluation of one run, with checkpoints and automatic resume.

A run is (dataset, algorithm, variant, shots/ways, seed) plus its protocol. ``train``
writes into ``out``: ``metrics.json``, ``provenance.json``, ``checkpoint.pt`` (every
``checkpoint_every`` iterations, atomically; the previous one is kept as
``checkpoint.prev.pt``), ``log.txt`` and, for TRLearner, ``relation.pt``.

Every random choice is a pure function of (seed, iteration): the meta-batch of iteration
``it`` is episodes ``it*B .. it*B+B-1`` of the training split, and the TRLearner random
sampler draws from a generator seeded by (seed, it). So a run killed at any point and
resumed from its checkpoint ends with the same numbers as an uninterrupted one (on CPU).

Example::

    >>> cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=20,
    ...                      test_tasks=10)
    >>> import tempfile; m = train(cfg, tempfile.mkdtemp(), progress=False)
    >>> m["metric"], m["n_tasks"]
    ('mse', 10)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from trlearner.engine.algorithms import ALGORITHMS, make_algorithm
from trlearner.engine.backbones import make_backbone
from trlearner.data.sources.dispatch import make_source
from trlearner.data.sources.regression import stable_key
from trlearner.engine.core import BACKENDS, adapt_batch, evaluate_curve
from trlearner.run.progress import Progress
from trlearner.util.atomic import temp_path
from trlearner.run.protocols import REDUCIBLE, paper_protocol
from trlearner.run.readings import reading_settings
from trlearner.method.regularizers import make_regularizer
from trlearner.method.relation import TRConfig, TRLearner, relation_matrix
from trlearner.run.results import (atomic_torch_save, atomic_write_json, config_hash, provenance,
                               summarise, tensor_hash, write_metrics)
from trlearner.run.folder import (CheckpointError, RunFolderError, code_hash, load_checked, open_append,
                             remove_temp_files, run_lock, save_checked)

DIVERGED_EXIT = 3
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

    @property
    def multi_source(self) -> bool:
        """True for the multi-source Meta-Dataset run (train on some sources, test on all)."""
        return self.dataset == "metadataset"

    def source_options(self) -> dict:
        """Extra ``make_source`` options of this run's dataset."""
        if not self.multi_source:
            return {}
        return {"train_sources": self.train_sources, "heldout_sources": self.heldout_sources}


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
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} asked for, but PyTorch sees no CUDA device")
    return device


def is_reduced(cfg: RunConfig) -> bool:
    """True when the run is weaker than the protocol of its dataset."""
    return any(getattr(cfg, k) < cfg.protocol_reference[k] for k in REDUCIBLE)


class _LogFile(logging.FileHandler):
    """A FileHandler whose write errors fail the run (logging's default prints them and goes on)
    and that never follows a symbolic link (:func:`trlearner.run.folder.open_append`)."""

    def _open(self):
        return open_append(self.baseFilename, self.encoding or "utf-8")

    def handleError(self, record):
        raise  # called inside logging's except block: re-raises that error


class _RunLog:
    """The run's ``log.txt``, a :class:`logging.FileHandler` opened at the first line (so a run
    refused before it logs leaves no file) and closed on exit from the ``with`` block.

    ``log(msg, level)`` writes every line to ``log.txt`` whatever the logging configuration, and
    sends it at ``level`` to this module's logger (the console under the ``trlearner`` command:
    INFO and up; DEBUG lines go to ``log.txt`` only).
    """

    def __init__(self, path: Path):
        self.at: int | str | None = None  # the iteration under way (or "the evaluation"), for Ctrl-C's line
        self.handler = _LogFile(path, mode="a", encoding="utf-8", delay=True)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))

    def __call__(self, msg: str, level: int = logging.DEBUG) -> None:
        self.handler.handle(logging.makeLogRecord(
            {"name": logger.name, "msg": msg, "levelno": level, "levelname": logging.getLevelName(level)}))
        logger.log(level, msg)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handler.close()


CHECKPOINTS = ("checkpoint.pt", "checkpoint.prev.pt")


def checkpoint_mismatch(ckpt: dict, meta: dict, opt) -> str | None:
    """Why the parameters and optimizer state of ``ckpt`` cannot be loaded into ``meta`` and
    ``opt`` (other names or shapes), or None. A checkpoint of this run's settings and code
    always fits; one that does not was altered or written by a bug, and is treated as unreadable."""
    saved = ckpt.get("meta")
    if not isinstance(saved, dict) or set(saved) != set(meta):
        return f"its parameters {sorted(saved) if isinstance(saved, dict) else saved!r} are not this model's {sorted(meta)}"
    for k, v in meta.items():
        s = saved[k]
        if not isinstance(s, torch.Tensor) or tuple(s.shape) != tuple(v.shape):
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            return f"parameter {k!r} has shape {got}, this model's {tuple(v.shape)}"
    params = [p for g in opt.param_groups for p in g["params"]]
    state = ckpt.get("opt")
    if not isinstance(state, dict) or sum(len(g.get("params", ())) for g in state.get("param_groups", ())) != len(params):
        return "its optimizer state is not for this model's parameters"
    for i, p in enumerate(params):
        for name, t in (state.get("state", {}).get(i) or {}).items():
            if isinstance(t, torch.Tensor) and t.dim() > 0 and tuple(t.shape) != tuple(p.shape):
                return f"optimizer state {name!r} of parameter {i} has shape {tuple(t.shape)}, the parameter {tuple(p.shape)}"
    return None


def _load_checkpoint(out: Path, ident_hash: str, log, force: bool = False, meta: dict | None = None,
                     opt=None) -> dict | None:
    """The newest checkpoint of this run that may be resumed, or None (start at iteration 0);
    its path is under the key ``"_path"``.

    A checkpoint is skipped, with a log line, when it is unreadable, not plain data (it is
    loaded with ``weights_only=True``: nothing in it runs), fails its checksum, has no
    checksum, or (given ``meta`` and ``opt``) its tensors do not fit this model
    (:func:`checkpoint_mismatch`); then the previous one is tried. One written by other code (another
    :func:`trlearner.run.folder.code_hash`) is not resumed: the run starts again. One of other
    settings raises :class:`RunFolderError`, or with ``force`` is deleted.
    """
    for name in CHECKPOINTS:
        path = out / name
        if not path.exists():
            continue
        try:
            ckpt = load_checked(path)
            if "meta" not in ckpt:
                raise CheckpointError(f"{path} is not a trlearner checkpoint (no 'meta')")
            problem = checkpoint_mismatch(ckpt, meta, opt) if meta is not None and opt is not None else None
            if problem and ckpt.get("config_hash") == ident_hash and ckpt.get("code_hash") == code_hash():
                raise CheckpointError(f"it does not fit this model: {problem}")
        except CheckpointError as exc:  # corrupt, truncated, altered, or not plain data
            msg = f"checkpoint {path} is unreadable ({exc}); ignoring it"
            log(msg, logging.WARNING)
            continue
        if ckpt.get("config_hash") != ident_hash:
            if force:
                log(f"--force: deleting {path} of a run with other settings (config hash {ckpt.get('config_hash')})",
                    logging.INFO)
                for other in CHECKPOINTS:
                    (out / other).unlink(missing_ok=True)
                return None
            raise RunFolderError(
                f"{path} belongs to a run with other settings (config hash "
                f"{ckpt.get('config_hash')} != {ident_hash}); use another --out, delete it, or pass --force")
        if ckpt.get("code_hash") != code_hash():
            msg = (f"checkpoint from code {ckpt.get('code_hash')}, this code is {code_hash()}: starting again "
                   f"(iteration {ckpt.get('iteration')} of {path} is not resumed)")
            log(msg, logging.WARNING)
            return None
        ckpt["_path"] = path
        return ckpt
    return None


def _save_checkpoint(out: Path, ckpt: dict) -> None:
    """Write ``ckpt`` (plain data) with its checksum as ``checkpoint.pt``; the one before
    becomes ``checkpoint.prev.pt``.

    ``checkpoint.pt`` exists at every instant: the previous one is first linked (or copied)
    to ``checkpoint.prev.pt`` through a temporary name and a rename, then the new one is
    renamed over ``checkpoint.pt``. A job killed in between (scancel, a node failure) leaves
    the old checkpoint, never none (it used to rename the old one away before writing)."""
    cur, prev = out / "checkpoint.pt", out / "checkpoint.prev.pt"
    if cur.exists():
        tmp = temp_path(prev)
        try:
            os.link(cur, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(cur, tmp)
        os.replace(tmp, prev)
        tmp.unlink(missing_ok=True)  # rename() does nothing when prev already is a link to cur's file
    save_checked(cur, ckpt)


def _other_run(out: Path, cfg: RunConfig, ident_hash: str) -> str | None:
    """Why ``out`` holds the results of another run (None when it holds none, or this run's):
    its ``provenance.json`` names another config hash, or, without one, its ``metrics.json``
    names another dataset, algorithm, variant, shots, ways or seed, another protocol
    (iterations, meta-batch, inner/test steps and step sizes, outer step size, backbone, test
    tasks and queries, curve steps, ...), TRLearner or regulariser setting, or lacks one of
    them: a finished record is replaced only by the run it records, or with ``--force``."""
    mpath = out / "metrics.json"
    if not mpath.exists():
        return None
    try:
        prov = json.loads((out / "provenance.json").read_text())
        have = prov.get("config_hash") if isinstance(prov, dict) else None
    except (OSError, ValueError):
        have = None
    if have is not None:
        return None if have == ident_hash else f"config hash {have}, this run's is {ident_hash}"
    try:
        m = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        return f"an unreadable metrics.json ({exc}) and no provenance.json"
    mine = {"dataset": cfg.dataset, "algorithm": cfg.algorithm, "variant": cfg.variant, "shots": cfg.shots,
            "ways": cfg.ways, "seed": cfg.seed}
    if not isinstance(m, dict):
        return f"a metrics.json holding a {type(m).__name__}, not a run record, and no provenance.json"
    diff = [f"{k} {m.get(k)!r} (this run: {v!r})" for k, v in mine.items() if m.get(k) != v]
    proto = m.get("protocol") if isinstance(m.get("protocol"), dict) else {}
    mine = {"iterations": cfg.iterations, "meta_batch": cfg.meta_batch, "inner_steps_train": cfg.inner_steps,
            "inner_lr_train": cfg.inner_lr, "inner_steps_test": cfg.test_steps, "inner_lr_test": cfg.test_lr,
            "outer_lr": cfg.outer_lr, "first_order": cfg.first_order, "backbone": cfg.backbone,
            "filters": cfg.filters, "test_tasks": cfg.test_tasks, "queries_test": cfg.test_queries,
            "backend": cfg.backend}
    diff += [f"{k} {proto.get(k)!r} (this run: {v!r})" for k, v in mine.items() if proto.get(k) != v]
    curve = m.get("curve")
    if isinstance(curve, dict) and isinstance(curve.get("steps"), list) and len(curve["steps"]) != cfg.curve_steps + 1:
        diff.append(f"curve_steps {len(curve['steps']) - 1} (this run: {cfg.curve_steps})")
    mine = {"trlearner": None if cfg.trlearner is None else cfg.trlearner.to_dict(),
            "regularizer": {"name": cfg.regularizer, "strength": cfg.reg_strength}}
    diff += [f"{k} {m.get(k)!r} (this run: {v!r})" for k, v in mine.items()
             if json.loads(json.dumps(v)) != m.get(k)]  # as written: tuples read back as lists
    return ", ".join(diff) or None


def build(cfg: RunConfig, source):
    """The algorithm (and TRLearner wrapper, or None) for a run on ``source``."""
    options = {"filters": cfg.filters} if cfg.filters else {}
    if cfg.hidden:
        options["hidden"] = list(cfg.hidden)
    options.update({k: getattr(cfg, k) for k in ("downsample", "init") if getattr(cfg, k) is not None})
    backbone = make_backbone(cfg.backbone, source.input_shape, source.n_out,
                             padded=getattr(source, "padded", False), **options)
    algo_options = {"adapt_bn": bool(cfg.adapt_bn)}
    if cfg.algorithm == "metasgd" and cfg.metasgd_lr_init is not None:
        algo_options["lr_init"] = cfg.metasgd_lr_init
    algo = make_algorithm(cfg.algorithm, backbone, source.kind, **algo_options)
    if cfg.metric:
        algo.set_metric(cfg.metric)
    trl = None
    if cfg.trlearner is not None:
        if getattr(source, "padded", False):  # variable-way, variable-shot episodes (Meta-Dataset)
            trl = TRLearner(algo, cfg.trlearner, shots=None, variable_ways=True)
        else:
            trl = TRLearner(algo, cfg.trlearner, shots=cfg.shots, ways=cfg.train_ways or cfg.ways)
    return algo, trl


def make_optimizer(params, lr: float) -> torch.optim.Adam:
    """The outer-loop Adam of every run: ``fused=True`` where PyTorch has the fused kernel
    (CPU and CUDA): one call per step instead of ~10 small ops per tensor (measured 0.11 vs
    0.55 ms per step on the sinusoid MLP, 1 CPU thread; benchmarks/README.md). Adam is
    elementwise, so a stacked run's per-seed optimizers step exactly as a single run's.

    Example:
        >>> make_optimizer([torch.zeros(3, requires_grad=True)], 1e-3).defaults["fused"]
        True
    """
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def init_meta(cfg: RunConfig, algo, trl) -> dict:
    gen = torch.Generator().manual_seed(stable_key("init", cfg.seed) % 2**63)
    meta = algo.init_params(gen, cfg.inner_lr)
    if trl is not None:
        meta.update(trl.init_params(gen))
    return meta


def meta_objective(cfg: RunConfig, algo, trl, reg, meta, batch, it: int):
    """(loss to minimise, dict of logged scalars, relation matrix or None)."""
    gen = torch.Generator().manual_seed(stable_key("sampler", cfg.seed, it) % 2**63)
    batch = reg.transform(batch, gen)
    if trl is None:
        out = adapt_batch(algo, meta, batch.xs, batch.ys, batch.xq, batch.yq,
                          cfg.inner_steps, cfg.inner_lr, cfg.backend, cfg.first_order)
        loss = out.losses.mean()
        return loss + reg.penalty(meta), {"loss": loss.item()}, None
    o = trl.meta_loss(meta, batch, cfg.inner_steps, cfg.inner_lr, cfg.backend, cfg.first_order, gen)
    return o.loss + reg.penalty(meta), {"loss": o.task_loss.item(), "tr": o.tr_loss.item()}, o.relation


def run_source(cfg: RunConfig, split: str, seed: int, queries: int | None, ways: int | None = None):
    """The task source of ``split``: training episodes from ``cfg.train_dataset`` when set (the
    cross-domain cells), validation and test episodes always from ``cfg.dataset``. Training
    episodes have ``cfg.train_ways`` classes when set (ProtoNet's 60-way episodes), the others
    ``cfg.ways``; ``ways`` overrides both."""
    dataset = cfg.train_dataset if split == "train" and cfg.train_dataset else cfg.dataset
    if ways is None:
        ways = cfg.train_ways if split == "train" and cfg.train_ways else cfg.ways
    return make_source(dataset, split, cfg.shots, ways, queries, seed=seed, root=cfg.data_root,
                       **cfg.source_options())


def evaluate(cfg: RunConfig, algo, meta, split: str, n_tasks: int, device: str, src=None):
    """Per-task metric curve [n_tasks, curve_steps + 1] on the fixed episodes of ``split``
    (seed 0: the same tasks for every algorithm, run and machine) and their hash.
    ``src`` replaces the run's own source of ``split`` (e.g. one Meta-Dataset source).

    Episodes are built and evaluated a chunk at a time, so memory stays bounded for large
    image episodes (Meta-Dataset episodes are padded per chunk, not to the whole test set).
    """
    if src is None:
        src = run_source(cfg, split, 0, cfg.test_queries)
    chunk = 100 if src.kind == "regression" else 10
    curves, digest = [], hashlib.sha256()
    for start in range(0, n_tasks, chunk):
        b = src.batch(range(start, min(start + chunk, n_tasks))).to(device)
        curves.append(evaluate_curve(algo, meta, b.xs, b.ys, b.xq, b.yq, cfg.curve_steps,
                                     cfg.test_lr, chunk=chunk).cpu())
        digest.update(tensor_hash(b.xs, b.ys, b.xq, b.yq).encode())
    curve = torch.cat(curves)
    if algo.metric_name == "accuracy":
        curve = curve * 100.0
    return curve, digest.hexdigest()[:16]


def evaluate_sources(cfg: RunConfig, algo, meta, device: str) -> dict:
    """Multi-source Meta-Dataset test: source -> (curve [test_tasks, curve_steps + 1], hash)
    on ``test_tasks`` test episodes of every source (train and held-out), each source's own
    episodes (the same as a single-source run's), in the order train sources, held-out."""
    out = {}
    for name in cfg.train_sources + cfg.heldout_sources:
        src = make_source(f"metadataset_{name}", "test", cfg.shots, cfg.ways, cfg.test_queries, seed=0,
                          root=cfg.data_root)
        out[name] = evaluate(cfg, algo, meta, "test", cfg.test_tasks, device, src=src)
    return out


def mean_of_sources(curves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over sources of the per-source mean curves, and its 95% CI half-width.

    ``curves``: K tensors [n_k, steps]. The mean is (1/K) sum_k mean_k (every source weighs
    the same, whatever its number of episodes); the sources are independent samples, so
    ``ci95 = 1.96 * sqrt(sum_k sd_k^2 / n_k) / K`` (sd_k: sample sd of source k's tasks).
    """
    means = torch.stack([c.double().mean(0) for c in curves])
    var = torch.stack([c.double().var(0, unbiased=True) / c.shape[0] if c.shape[0] > 1 else
                       torch.full(c.shape[1:], float("nan"), dtype=torch.float64) for c in curves])
    k = len(curves)
    return means.mean(0), 1.96 * var.sum(0).sqrt() / k


def train(cfg: RunConfig, out, progress: bool = True, force: bool = False) -> dict:
    """Meta-train (resuming from ``out`` when a checkpoint of this run and this code is
    there), evaluate, write ``metrics.json`` and ``provenance.json``; return the metrics dict.

    ``out`` is locked for the whole run (:func:`trlearner.run.folder.run_lock`); temporary files of
    writes interrupted by a kill are removed first. ``force`` replaces the results of another
    run found in ``out`` (otherwise refused).

    Raises :class:`DivergedError` (after writing ``metrics.json`` with
    ``status="diverged"``) when the loss becomes NaN or infinite, and
    :class:`trlearner.run.folder.RunFolderError` when ``out`` is locked by a live run or holds
    another run's results (without ``force``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out) as taken_over, _RunLog(out / "log.txt") as log:
        try:
            return _train_locked(cfg, out, progress, force, taken_over, log)
        except KeyboardInterrupt:  # Ctrl-C: one line naming where, and what a rerun resumes
            where = f"iteration {log.at}" if isinstance(log.at, int) else (log.at or "the start")
            msg = (f"interrupted at {where}; rerun the same command to resume from checkpoint.pt"
                   if (out / "checkpoint.pt").exists() else
                   f"interrupted at {where}, before the first checkpoint (one every {cfg.checkpoint_every} "
                   f"iterations); rerun the same command to start again")
            log(msg)
            raise TrainingInterrupted(msg) from None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`; ``str()`` is the one line to print (where it stopped and
    what a rerun resumes). ``trlearner train`` prints it and exits 130."""


def _train_locked(cfg: RunConfig, out: Path, progress: bool, force: bool, taken_over: str | None,
                  log: _RunLog) -> dict:
    ident = cfg.identity()
    ident_hash = config_hash(ident)
    other = _other_run(out, cfg, ident_hash)
    if other and not force:
        raise RunFolderError(f"{out} holds the metrics.json of a run with other settings ({other}); use "
                             f"another --out, or pass --force to replace that run's results")
    device = pick_device(cfg.device)
    if taken_over:
        log(taken_over, logging.WARNING)
    for tmp in remove_temp_files(out):
        log(f"removed {tmp.name}, the temporary file of a write that was interrupted", logging.INFO)
    if other:
        log(f"--force: replacing the results of another run ({other})", logging.INFO)
        for name in ("metrics.json", "provenance.json", "relation.pt"):
            (out / name).unlink(missing_ok=True)

    train_src = run_source(cfg, "train", cfg.seed, cfg.train_queries)
    if cfg.train_dataset not in (None, cfg.dataset):  # fail before training, not after it
        test_shape = run_source(cfg, "test", 0, cfg.test_queries).input_shape
        if tuple(test_shape) != tuple(train_src.input_shape):
            raise ValueError(f"train_dataset {cfg.train_dataset!r} gives inputs {tuple(train_src.input_shape)} but "
                             f"{cfg.dataset!r} gives {tuple(test_shape)}; both must have the same image size")
    algo, trl = build(cfg, train_src)
    reg = make_regularizer(cfg.regularizer, cfg.reg_strength)
    meta = {k: v.to(device).requires_grad_() for k, v in init_meta(cfg, algo, trl).items()}
    opt = make_optimizer(meta.values(), cfg.outer_lr)
    start, elapsed, history, rel_mean = 0, 0.0, [], None

    ckpt = _load_checkpoint(out, ident_hash, log, force=force, meta=meta, opt=opt)
    if ckpt is not None:
        with torch.no_grad():
            for k, v in ckpt["meta"].items():
                meta[k].copy_(v)
        opt.load_state_dict(ckpt["opt"])
        start, elapsed = ckpt["iteration"], ckpt["elapsed"]
        history, rel_mean = ckpt["history"], ckpt.get("relation_mean")
        log(f"resumed at iteration {start} from {ckpt['_path']}", logging.INFO)
    log(f"run {cfg.dataset} {cfg.algorithm} {cfg.variant} shots={cfg.shots} ways={cfg.ways} "
        f"seed={cfg.seed} iterations={cfg.iterations} device={device}", logging.INFO)

    def checkpoint(it: int):
        _save_checkpoint(out, {
            "iteration": it, "elapsed": elapsed + time.perf_counter() - t0, "config_hash": ident_hash,
            "code_hash": code_hash(),
            "meta": {k: v.detach().cpu() for k, v in meta.items()}, "opt": opt.state_dict(),
            "history": history, "relation_mean": rel_mean,
        })

    t0 = time.perf_counter()
    relation = None
    # a bar on a terminal, else a plain line every 30 s to log.txt and stderr (trlearner.run.progress)
    bar = Progress(start, cfg.iterations, f"{cfg.algorithm}/{cfg.variant}", log, progress)
    for it in bar:
        log.at = it
        batch = train_src.batch(range(it * cfg.meta_batch, (it + 1) * cfg.meta_batch)).to(device)
        loss, logs, relation = meta_objective(cfg, algo, trl, reg, meta, batch, it)
        if not math.isfinite(loss.item()):
            msg = (f"meta-training diverged at iteration {it}: loss is {loss.item()}; the last good "
                   f"checkpoint is kept in {out}")
            log(msg)
            atomic_write_json(out / "provenance.json", provenance(ident, device))  # names the run
            write_metrics(out / "metrics.json", _diverged_metrics(cfg, algo, it, msg))
            raise DivergedError(msg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:  # element-wise clip of the meta-gradient (MAML's miniImageNet code)
            torch.nn.utils.clip_grad_value_(list(meta.values()), cfg.grad_clip)
        opt.step()
        if relation is not None:
            rel_mean = relation.cpu() if rel_mean is None else 0.99 * rel_mean + 0.01 * relation.cpu()
        if it % 50 == 0:
            bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
        if it % 1000 == 0:
            log(f"iteration {it} " + " ".join(f"{k}={v:.5f}" for k, v in logs.items()))
        if cfg.eval_every and (it + 1) % cfg.eval_every == 0:
            history.append(_eval_point(cfg, algo, meta, batch, it + 1, device))
        if (it + 1) % cfg.checkpoint_every == 0 and it + 1 < cfg.iterations:
            checkpoint(it + 1)
    bar.close()
    if start < cfg.iterations:
        checkpoint(cfg.iterations)
    log.at = "the evaluation"
    wall = elapsed + time.perf_counter() - t0
    metrics = write_results(cfg, algo, trl, meta, out, wall, history, relation, rel_mean, device)
    log(f"done: {metrics['metric']} after {cfg.test_steps} test steps = {metrics['mean']} "
        f"± {metrics['ci95']} (n={metrics['n_tasks']}), wall {wall:.1f}s")
    return metrics


def write_results(cfg: RunConfig, algo, trl, meta, out: Path, wall: float, history: list, relation, rel_mean,
                  device: str, extra_provenance: dict | None = None) -> dict:
    """Evaluate trained meta-parameters and write a run's results into ``out``.

    The end of every run, single (:func:`train`) or stacked (:mod:`trlearner.run.stacked`): the
    test curve, ``relation.pt`` (TRLearner), ``provenance.json`` (plus ``extra_provenance``)
    and ``metrics.json``.

    Arguments:
        cfg: the run's config. algo, trl: from :func:`build`. meta: the trained parameter dict.
        out: the run folder. wall: training seconds. history: :func:`_eval_point` records.
        relation, rel_mean: the last and running-mean relation matrices (TRLearner) or None.
        device: where to evaluate. extra_provenance: keys added to ``provenance.json``.

    Returns:
        The metrics dict as written (standard JSON: NaN -> null, reason in ``nulls``).
    """
    if cfg.multi_source:
        metrics = _multi_source_metrics(cfg, algo, evaluate_sources(cfg, algo, meta, device), wall, history)
        ep_hash = metrics["episodes_hash"]
    else:
        curve, ep_hash = evaluate(cfg, algo, meta, "test", cfg.test_tasks, device)
        metrics = _metrics(cfg, algo, curve, ep_hash, wall, history)
    if trl is not None:
        _save_relations(out, cfg, trl, meta, relation, rel_mean, device)
    prov = provenance(cfg.identity(), device, dataset_hash=ep_hash)
    prov["data"] = {"train": data_record(cfg.train_dataset or cfg.dataset, cfg.data_root),
                    "test": data_record(cfg.dataset, cfg.data_root)}
    prov.update(extra_provenance or {})
    atomic_write_json(out / "provenance.json", prov)
    return write_metrics(out / "metrics.json", metrics)  # standard JSON: NaN -> null, reason in "nulls"


def data_record(dataset: str, root: str = "data") -> dict:
    """The identity of the data a run read: the fetched dataset's manifest (content hash and
    file sha256s, ``trlearner.data.fetch.manifest``), or the generator's identity for datasets
    made by code (no manifest)."""
    from trlearner.data.fetch import manifest
    from trlearner.data.registry import get

    try:
        spec = get(dataset)
    except KeyError:  # task families defined in code only (e.g. motivation_d1)
        return {"dataset": dataset, "kind": "generated"}
    if spec.kind == "generated":
        return {"dataset": dataset, "kind": "generated", "identity": spec.identity()}
    return {"kind": spec.kind, **manifest(dataset, root)}


def _eval_point(cfg, algo, meta, batch, it, device) -> dict:
    """Train metric (on the current meta-batch) and validation metric at ``it``, with the
    training inner steps: the curves of the motivation analysis."""
    curve_tr = evaluate_curve(algo, meta, batch.xs, batch.ys, batch.xq, batch.yq,
                              cfg.test_steps, cfg.test_lr)[:, cfg.test_steps]
    val, _ = evaluate(cfg, algo, meta, "val", cfg.eval_tasks, device)
    scale = 100.0 if algo.metric_name == "accuracy" else 1.0
    return {"iteration": it, "train": float(curve_tr.mean()) * scale,
            "val": float(val[:, cfg.test_steps].mean())}


def _base_metrics(cfg: RunConfig, algo) -> dict:
    return {
        "dataset": cfg.dataset, "algorithm": cfg.algorithm, "variant": cfg.variant,
        "shots": cfg.shots, "ways": cfg.ways, "seed": cfg.seed,
        "metric": algo.metric_name,
        "unit": "percent" if algo.metric_name == "accuracy" else None,
        "higher_is_better": algo.higher_is_better,
        "protocol": {
            "iterations": cfg.iterations, "meta_batch": cfg.meta_batch,
            "inner_steps_train": cfg.inner_steps, "inner_lr_train": cfg.inner_lr,
            "inner_steps_test": cfg.test_steps, "inner_lr_test": cfg.test_lr,
            "outer_lr": cfg.outer_lr, "first_order": cfg.first_order, "backbone": cfg.backbone,
            "filters": cfg.filters, "bn_mode": "transductive" if cfg.backbone != "mlp" else "none",
            "test_tasks": cfg.test_tasks, "queries_test": cfg.test_queries,
            "ci": "1.96*sd/sqrt(n_tasks)", "reduced": is_reduced(cfg), "preset": cfg.preset,
            "backend": cfg.backend,
            # unset train queries: the source's default (regression: the shots; images: 15)
            "queries_train": cfg.train_queries or (cfg.shots if algo.kind == "regression" else 15),
            "ways_train": cfg.train_ways or cfg.ways,
            "bn_inner_loop": bool(cfg.adapt_bn), "init": cfg.init, "downsample": cfg.downsample,
            "grad_clip": cfg.grad_clip or None,
            **({"reading": cfg.reading} if cfg.reading else {}),
            **({"metasgd_lr_init": cfg.metasgd_lr_init} if cfg.algorithm == "metasgd" else {}),
            **({"bn_padding": "masked (padded entries excluded from the batch statistics)"}
               if cfg.dataset.startswith("metadataset") else {}),
            **({"metadataset": _multi_source_protocol(cfg)} if cfg.multi_source else {}),
            **({"train_dataset": cfg.train_dataset, "test_dataset": cfg.dataset,
                "cross_domain": f"meta-train on {cfg.train_dataset} train classes, meta-test on "
                                f"{cfg.dataset} test classes"} if cfg.train_dataset else {}),
        },
        "trlearner": None if cfg.trlearner is None else cfg.trlearner.to_dict(),
        "regularizer": {"name": cfg.regularizer, "strength": cfg.reg_strength},
    }


def _metrics(cfg, algo, curve, ep_hash, wall, history) -> dict:
    per_task = curve[:, cfg.test_steps]
    head = summarise(per_task)
    steps = list(range(curve.shape[1]))
    stats = [summarise(curve[:, s]) for s in steps]
    return {
        **_base_metrics(cfg, algo),
        "mean": head["mean"], "ci95": head["ci95"], "n_tasks": head["n"],
        "per_task": [round(float(v), 6) for v in per_task],
        "curve": {"steps": steps, "mean": [s["mean"] for s in stats], "ci95": [s["ci95"] for s in stats]},
        "history": history, "episodes_hash": ep_hash, "status": "ok", "wall_time_s": round(wall, 2),
    }


def _multi_source_protocol(cfg: RunConfig) -> dict:
    return {
        "train_sources": list(cfg.train_sources), "heldout_sources": list(cfg.heldout_sources),
        "train_episodes": "each task of a meta-batch from a train source drawn uniformly "
                          "(trlearner.data.sources.metadataset_multi)",
        "validation": "the train sources' validation classes",
        "test_episodes_per_source": cfg.test_tasks,
        "overall": "mean over all sources of the per-source accuracy",
        "ood": "mean over the held-out sources of the per-source accuracy",
        "ci_of_means": "1.96*sqrt(sum_k sd_k^2/n_k)/K over the K sources averaged",
        "sources_chosen_by": "this project (the paper does not name its held-out sources)",
    }


def _multi_source_metrics(cfg: RunConfig, algo, per_source: dict, wall, history) -> dict:
    """metrics.json of a multi-source run: ``mean``/``ci95``/``curve`` are the *overall*
    numbers (mean over all sources; ``per_task`` = every source's tasks, source by source, so
    its mean is the overall mean when all sources have the same number of test episodes);
    ``sources`` holds each source's numbers and ``summary`` the overall and OOD means."""
    s = cfg.test_steps
    sources, digest = {}, hashlib.sha256()
    for name, (curve, h) in per_source.items():
        head = summarise(curve[:, s])
        sources[name] = {"role": "heldout" if name in cfg.heldout_sources else "train", "mean": head["mean"],
                         "ci95": head["ci95"], "n_tasks": head["n"],
                         "per_task": [round(float(v), 6) for v in curve[:, s]],
                         "curve_mean": [float(v) for v in curve.double().mean(0)], "episodes_hash": h}
        digest.update(h.encode())

    def summary(names):
        mean, ci = mean_of_sources([per_source[n][0] for n in names])
        return {"mean": float(mean[s]), "ci95": float(ci[s]), "sources": list(names),
                "n_tasks": sum(sources[n]["n_tasks"] for n in names),
                "curve": {"mean": [float(v) for v in mean], "ci95": [float(v) for v in ci]}}

    groups = {"overall": cfg.train_sources + cfg.heldout_sources, "ood": cfg.heldout_sources,
              "in_domain": cfg.train_sources}
    summaries = {k: summary(v) for k, v in groups.items() if v}
    overall = summaries["overall"]
    per_task = [v for name in per_source for v in sources[name]["per_task"]]
    return {
        **_base_metrics(cfg, algo),
        "mean": overall["mean"], "ci95": overall["ci95"], "n_tasks": overall["n_tasks"], "per_task": per_task,
        "curve": {"steps": list(range(len(overall["curve"]["mean"]))), **overall["curve"]},
        "sources": sources, "summary": {k: {kk: vv for kk, vv in v.items() if kk != "curve"}
                                        for k, v in summaries.items()},
        "history": history, "episodes_hash": digest.hexdigest()[:16], "status": "ok",
        "wall_time_s": round(wall, 2),
    }


def _diverged_metrics(cfg, algo, it, msg) -> dict:
    return {**_base_metrics(cfg, algo), "mean": None, "ci95": None, "n_tasks": 0, "per_task": [],
            "curve": None, "episodes_hash": None, "status": "diverged",
            "diverged_at_iteration": it, "message": msg, "wall_time_s": None}


@torch.no_grad()
def _save_relations(out: Path, cfg, trl, meta, last, running, device):
    """Relation matrices for the heatmaps: the last meta-batch's, the running mean over
    batches, and M on 25 fixed validation tasks ordered by a task parameter."""
    if cfg.train_ways and cfg.train_ways != cfg.ways:  # TRLearner is built for the training ways;
        src = run_source(cfg, "val", 0, 1, ways=cfg.train_ways)  # the probe reads supports only
    else:
        src = run_source(cfg, "val", 0, cfg.test_queries)
    b = src.batch(range(25))
    order_key = "amplitude" if "amplitude" in b.info else ("omega" if "omega" in b.info else None)
    order = torch.argsort(b.info[order_key]) if order_key else torch.arange(25)
    xs, ys = b.xs[order].to(device), b.ys[order].to(device)
    gen = torch.Generator().manual_seed(0)
    r, _, _ = trl.representations(meta, xs, ys, gen)
    probe = relation_matrix(meta["trl.omega"], r).cpu()
    info = {k: v[order] for k, v in b.info.items() if torch.is_tensor(v)}
    atomic_torch_save(out / "relation.pt", {"last_batch": None if last is None else last.cpu(),
                                            "running_mean": running, "probe": probe,
                                            "probe_info": info, "probe_order_by": order_key})


def load_metrics(path) -> dict:
    with open(path) as f:
        return json.load(f)

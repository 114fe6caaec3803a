"""``trlearner train``: command-line front end of :mod:`trlearner.run.train`.

Building this parser imports no torch (``trlearner train --help`` is instant): the algorithms
are read from their table (:mod:`trlearner.engine.algorithms.names`), the TRLearner options,
choices and defaults from :class:`trlearner.method.trconfig.TRConfig`, both torch-free; the
other choices are the library's, written out, and ``tests/test_cli.py`` checks them against
:mod:`trlearner.engine.backbones`, :mod:`trlearner.engine.core`, :mod:`trlearner.engine.algorithms.metasgd`
and :mod:`trlearner.method.regularizers`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from trlearner.engine.algorithms.names import ALGORITHMS  # no torch: the parser stays instant
from trlearner.method.trconfig import ALIGNS, CLASS_REPRS, SAMPLERS, WEIGHTS, TRConfig, defaults
from trlearner.run.readings import READINGS
from trlearner.run.seeds import seed_arg

# choices of the library: the algorithms' table (sorted as --help shows them) and TRConfig's read;
# the others written out (backbones.DOWNSAMPLES/INITS, engine.BACKENDS, regularizers.REGULARIZERS,
# algorithms.metasgd.LR_INITS)
CHOICES = {
    "algorithm": tuple(sorted(ALGORITHMS)),
    "backbone": ("mlp", "conv4", "resnet12"),
    "downsample": ("maxpool", "stride"),
    "init": ("torch", "finn"),
    "metasgd_lr_init": ("uniform", "constant"),
    "backend": ("vmap", "loop"),
    "regularizer": ("none", "weight_decay", "input_noise", "meta_aug"),
    "sampler": SAMPLERS,
    "weights": WEIGHTS,
    "align": ALIGNS,
    "class_repr": CLASS_REPRS,
}
# every TRLearner setting with its default: TRConfig's fields
TR_DEFAULTS = defaults()
# The TRLearner settings are the fields of TRConfig; each is the option of its own name (the
# config key of the same name, trlearner.pipeline), except these, set by their negation.
TR_NEGATED = {"learn_omega": "fixed_omega"}
PROTOCOL = "default: the dataset's protocol"
READING_NAMES = tuple(READINGS)


def _number(kind, text):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}")
    if not math.isfinite(value):  # float("nan"), float("inf") parse, but no run can use them
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _positive(kind):
    def parse(text):
        value = _number(kind, text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _nonneg(kind):
    def parse(text):
        value = _number(kind, text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value
    return parse


def _source_list(text):
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    from trlearner.data.sources.metadataset_sources import METADATASET_SOURCES

    bad = [n for n in names if n not in METADATASET_SOURCES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown Meta-Dataset source(s) {bad}; allowed: "
                                         f"{','.join(METADATASET_SOURCES)}")
    return names


# run settings taken from the command line (the names of trlearner.run.config.RunConfig fields)
RUN_KEYS = ("dataset", "algorithm", "shots", "ways", "seed", "iterations", "meta_batch", "inner_steps",
            "inner_lr", "test_steps", "test_lr", "curve_steps", "outer_lr", "first_order", "backbone",
            "filters", "train_queries", "test_tasks", "test_queries", "backend", "device",
            "checkpoint_every", "eval_every", "eval_tasks", "preset", "data_root", "regularizer",
            "reg_strength", "train_sources", "heldout_sources", "train_dataset",
            "adapt_bn", "downsample", "init", "grad_clip", "train_ways", "metasgd_lr_init", "reading")


def trlearner_keys() -> tuple[str, ...]:
    """The TRLearner settings a command line or a config sets: ``dataclasses.fields`` of
    :class:`trlearner.method.trconfig.TRConfig`, with :data:`TR_NEGATED` names.

    Example:
        >>> trlearner_keys()[-1]
        'fixed_omega'
    """
    return tuple(TR_NEGATED.get(name, name) for name in TR_DEFAULTS)


def trlearner_config(args):
    """The :class:`~trlearner.method.trconfig.TRConfig` of parsed ``args`` (None without
    ``--trlearner``): every field from the option of its name (:func:`trlearner_keys`)."""
    if not args.trlearner:
        return None
    values = {}
    for name in TR_DEFAULTS:
        if name in TR_NEGATED:
            values[name] = not getattr(args, TR_NEGATED[name])
        else:
            values[name] = getattr(args, name)
    return TRConfig(**values)


def run_config(args):
    """The one :class:`trlearner.run.config.RunConfig` of parsed ``train`` arguments: what
    ``trlearner train`` trains and what the pipeline's train job checks a checkpoint against.

    Raises:
        ValueError: a setting the run cannot have (from ``resolve_config``).
    """
    from trlearner.run.config import resolve_config

    return resolve_config(**{k: getattr(args, k) for k in RUN_KEYS}, trlearner=trlearner_config(args))


def build_parser() -> argparse.ArgumentParser:
    """A parser of ``train`` alone (``parse_args(["train", ...])``): what the top-level
    ``trlearner`` parser defines for it, without the other commands.

    Example:
        >>> build_parser().parse_args(["train", "--dataset", "sinusoid", "--algorithm", "maml",
        ...                            "--shots", "5", "--out", "x"]).func.__name__
        'run'
    """
    from trlearner.util.cli import finish_parser

    parser = argparse.ArgumentParser(prog="trlearner")
    register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return finish_parser(parser)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The arguments of ``trlearner train ARGV`` (argparse exits with status 2 on bad ones)."""
    return build_parser().parse_args(["train", *argv])


def register(sub) -> None:
    """Add the ``train`` command to a subparsers object (``ArgumentParser.add_subparsers()``)."""
    p = sub.add_parser("train", help="meta-train and evaluate one run",
                       description="Meta-train one algorithm on one benchmark, then evaluate it on "
                                   "the fixed test tasks. Unset options follow the dataset's "
                                   "standard protocol (trlearner.run.protocols).")
    p.add_argument("--dataset", required=True,
                   help="sinusoid, harmonic, omniglot_small, omniglot, miniimagenet, ... (`trlearner data "
                        "list`; required)")
    p.add_argument("--algorithm", required=True, choices=CHOICES["algorithm"], help="meta-learner (required)")
    p.add_argument("--shots", required=True, type=_positive(int), help="support examples per class or task "
                                                                       "(required)")
    p.add_argument("--ways", type=_positive(int),
                   help="classes per episode (classification; default: the dataset's protocol)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="training seed, 0 <= seed < 2**31 (the test tasks do not depend on it)")
    p.add_argument("--out", required=True, help="run folder (resumed when it holds a checkpoint; required)")
    g = p.add_argument_group("protocol (default: the dataset's standard protocol, trlearner.run.protocols)")
    g.add_argument("--iterations", type=_positive(int), help=f"meta-training iterations ({PROTOCOL})")
    g.add_argument("--meta-batch", type=_positive(int), help=f"tasks per meta-batch ({PROTOCOL})")
    g.add_argument("--inner-steps", type=_nonneg(int), help=f"inner steps (meta-layers) in training ({PROTOCOL})")
    g.add_argument("--inner-lr", type=_positive(float), help=f"inner-loop step size in training ({PROTOCOL})")
    g.add_argument("--test-steps", type=_nonneg(int),
                   help=f"inner steps at test for the headline number ({PROTOCOL})")
    g.add_argument("--test-lr", type=_positive(float), help=f"inner-loop step size at test ({PROTOCOL})")
    g.add_argument("--curve-steps", type=_nonneg(int),
                   help="evaluate after 0..N inner steps (default: the dataset's protocol, 10 for most; "
                        "at least --test-steps)")
    g.add_argument("--outer-lr", type=_positive(float), help=f"Adam step size of the meta-update ({PROTOCOL})")
    g.add_argument("--first-order", action="store_true", help="first-order MAML-style meta-gradient")
    g.add_argument("--backbone", choices=CHOICES["backbone"], help=f"network ({PROTOCOL})")
    g.add_argument("--filters", type=_positive(int), help=f"conv4/resnet12 width ({PROTOCOL})")
    g.add_argument("--train-queries", type=_positive(int),
                   help=f"query examples per class or task in training ({PROTOCOL})")
    g.add_argument("--test-tasks", type=_positive(int), help=f"fixed test tasks evaluated ({PROTOCOL})")
    g.add_argument("--test-queries", type=_positive(int), help=f"query examples per class or task at test "
                                                               f"({PROTOCOL})")
    g.add_argument("--train-sources", type=_source_list,
                   help="multi-source 'metadataset' only: comma-separated sources to train on "
                        "(default: trlearner.run.protocols.METADATASET_TRAIN_SOURCES)")
    g.add_argument("--heldout-sources", type=_source_list,
                   help="multi-source 'metadataset' only: comma-separated held-out test sources "
                        "(default: traffic_sign,mscoco)")
    g.add_argument("--train-dataset",
                   help="meta-train on this dataset's training classes, evaluate on --dataset's val/test "
                        "classes (cross-domain; default for cub/places: miniimagenet, as the paper; "
                        "otherwise --dataset; --train-dataset cub gives within-domain CUB)")
    b = p.add_argument_group("the baselines' own settings (default: as their authors ran them; "
                             "docs/BASELINES.md)")
    b.add_argument("--reading", choices=READING_NAMES,
                   help="a named reading of the protocol: its settings replace the dataset's, explicit "
                        "options replace the reading's (default: none, the dataset's protocol; "
                        "trlearner.run.readings; docs/CALIBRATION.md)")
    b.add_argument("--adapt-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="adapt the batch-norm scale/shift in the inner loop (default: no, as MAML's code)")
    b.add_argument("--downsample", choices=CHOICES["downsample"],
                   help="conv4: max-pool, or MAML's strided Omniglot convs (default: per dataset)")
    b.add_argument("--init", choices=CHOICES["init"],
                   help="finn (MAML's code) or torch (PyTorch's default) (default: per dataset)")
    b.add_argument("--grad-clip", type=_nonneg(float),
                   help="clip each meta-gradient entry to [-C, C]; 0: none (default: 10 on miniImageNet)")
    b.add_argument("--train-ways", type=_positive(int),
                   help="classes per training episode (default: --ways; ProtoNet: Snell et al.'s 60/30/20)")
    b.add_argument("--metasgd-lr-init", choices=CHOICES["metasgd_lr_init"],
                   help="Meta-SGD step sizes: uniform in [0.005, 0.1] (Li et al.) or the --inner-lr constant "
                        "(default: uniform)")
    e = p.add_argument_group("execution")
    e.add_argument("--backend", choices=CHOICES["backend"], default="vmap",
                   help="tasks of a meta-batch batched with torch.func.vmap, or a per-task loop (the reference)")
    e.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    e.add_argument("--threads", type=_positive(int), help="CPU threads for PyTorch (default: PyTorch's choice)")
    e.add_argument("--checkpoint-every", type=_positive(int), default=1000, help="iterations between checkpoints")
    e.add_argument("--eval-every", type=_nonneg(int), default=0,
                   help="record train/validation metrics every N iterations (0: never)")
    e.add_argument("--eval-tasks", type=_positive(int), default=100, help="tasks per --eval-every evaluation")
    e.add_argument("--preset", default="cli", help="name of the config preset, recorded with the run")
    e.add_argument("--data-root", default="data", metavar="DIR", help="data folder (the one `trlearner data` uses)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar (-q implies it; it is off anyway "
                                                              "when stderr is not a terminal, which gets a plain "
                                                              "progress line every 30 s instead)")
    e.add_argument("--force", action="store_true",
                   help="replace the results (metrics.json, provenance, checkpoints) of another run in --out")
    t = p.add_argument_group("TRLearner")
    t.add_argument("--trlearner", action="store_true", help="add the TRLearner regulariser")
    t.add_argument("--lam", type=_nonneg(float), default=TR_DEFAULTS["lam"], help="weight of the TRLearner loss")
    t.add_argument("--heads", type=_positive(int), default=TR_DEFAULTS["heads"],
                   help="learned weight vectors (heads) of the relation matrix")
    t.add_argument("--meta-data", type=_positive(int),
                   help="meta-data points per task (per class) (default: ceil(shots / 2))")
    t.add_argument("--sampler", choices=CHOICES["sampler"], default=TR_DEFAULTS["sampler"],
                   help="how each task's meta-data points are chosen: farthest-point (diverse) or at random")
    t.add_argument("--weights", choices=CHOICES["weights"], default=TR_DEFAULTS["weights"],
                   help="consistency weights: relu of the relations (+eps), the relations as written (raw), "
                        "or their softmax over the other tasks")
    t.add_argument("--align", choices=CHOICES["align"], default=TR_DEFAULTS["align"],
                   help="pair the classes of two tasks by matching, or by index")
    t.add_argument("--class-repr", choices=CHOICES["class_repr"], default=TR_DEFAULTS["class_repr"],
                   help="classification task representation: the class feature means concatenated, or averaged")
    t.add_argument("--fixed-omega", action="store_true",
                   help="relations = plain cosine of task representations (omega all ones, not learned)")
    r = p.add_argument_group("other regularisers (for the time-accuracy comparison)")
    r.add_argument("--regularizer", choices=CHOICES["regularizer"], default="none", help="regulariser")
    r.add_argument("--reg-strength", type=_nonneg(float), default=0.0, help="its strength")
    p.set_defaults(func=run)


def preflight(cfg, out, force: bool = False) -> None:
    """Refuse a run that cannot start, before anything is written (no ``--out`` folder, no
    ``log.txt``): an unusable ``--out``, a checkpoint of other settings in it, a device PyTorch
    does not have, a dataset that is not fetched, or more ways/shots than the data holds.

    Arguments:
        cfg: the resolved :class:`trlearner.run.config.RunConfig`.
        out: the run folder (``--out``).
        force: ``--force`` (replace another run's results in ``out``): its checkpoint is no refusal.

    Raises:
        ValueError: naming the option and what is allowed.

    Example:
        >>> from trlearner.run.config import resolve_config
        >>> preflight(resolve_config(dataset="sinusoid", algorithm="maml", shots=5, device="cpu"),
        ...           "README.md")
        Traceback (most recent call last):
        ...
        ValueError: --out README.md is a file; allowed: a folder (new, or a run folder to resume)
    """
    out = Path(out)
    _check_out(out)
    _check_device(cfg.device)
    _check_data(cfg)
    if not force:  # --force: train() deletes a checkpoint of other settings
        _check_checkpoints(cfg, out)


def _check_out(out: Path) -> None:
    import tempfile

    for part in out.parts:  # was `OSError: File name too long` (ENAMETOOLONG) from Path.exists
        if len(os.fsencode(part)) > 255:
            raise ValueError(f"--out has a part of {len(os.fsencode(part))} bytes ('{part[:24]}...'), more than the "
                             f"255 a file or folder name may have; use a shorter --out")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; allowed: a folder (new, or a run folder to resume)")
    base = out
    while not base.exists() and base != base.parent:  # the folder train() would create under
        base = base.parent
    if not base.is_dir():
        raise ValueError(f"--out {out}: {base} is a file, so the run folder cannot be created there; "
                         f"allowed: a folder path whose existing part is a folder")
    try:  # a real write (O_TMPFILE where supported: nothing is left behind) also sees read-only mounts
        with tempfile.TemporaryFile(dir=base):
            pass
        writable = os.access(base, os.W_OK | os.X_OK)
    except OSError:
        writable = False
    if not writable:
        raise ValueError(f"--out {out}: {base} is read-only; allowed: a folder this user can write to")


def _check_device(device: str) -> None:
    import torch

    if device == "auto":
        return
    try:
        kind = torch.device(device).type
    except RuntimeError:
        kind = None
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r} is not a device; allowed: auto, cpu, cuda, cuda:N")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: PyTorch sees no CUDA device (torch {torch.__version__}, CUDA "
                             f"build {torch.version.cuda}); allowed: --device cpu, or auto (CUDA when present)")
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: PyTorch sees {torch.cuda.device_count()} CUDA device(s); "
                             f"allowed: cuda:0..cuda:{torch.cuda.device_count() - 1}")


def _check_data(cfg) -> None:
    """Every dataset the run reads is fetched; fixed-way image datasets hold enough classes for
    ``ways`` and enough images per class for ``shots`` + queries in every split the run uses."""
    from trlearner.data.errors import DataFetchError
    from trlearner.data.fetch import cache_dir, is_fetched, manual_dir, raw_dir, require
    from trlearner.data.registry import get

    train_ds = getattr(cfg, "train_dataset", None) or cfg.dataset
    if cfg.multi_source:
        names = [f"metadataset_{s}" for s in cfg.train_sources + cfg.heldout_sources]
    else:
        names = list(dict.fromkeys([train_ds, cfg.dataset]))
    root = cfg.data_root
    for name in names:
        try:
            spec = get(name)
        except KeyError:  # generated on the fly (regression families) or a test's own source
            continue
        if spec.kind == "generated":
            continue
        if is_fetched(spec, root):
            try:  # the cache still matches its MANIFEST (cheap after the first full hash)
                require(spec, root)
            except DataFetchError as exc:
                raise ValueError(f"--dataset {name!r}: {exc}") from None
            continue
        files = ", ".join(f.name for f in spec.files) or "its files"
        hint = f" {spec.manual.strip()}" if spec.manual else ""
        command = f"python -m trlearner data{'' if root == 'data' else f' --data-root {root}'} fetch {name}"
        raise ValueError(
            f"--dataset {name!r} is not fetched under {raw_dir(name, root)} (--data-root {root}). Fetch it: "
            f"`{command}` (internet, or TRLEARNER_MIRROR naming a local copy), or put {files} in "
            f"{manual_dir(name, root)}/ and run the same command.{hint}")
    if cfg.ways is None or cfg.multi_source or cfg.dataset.startswith("metadataset"):
        return
    from trlearner.data.sources.images import ImageStore, split_classes

    train_ways = getattr(cfg, "train_ways", None) or cfg.ways  # e.g. ProtoNet's wider training episodes
    uses = [("train", train_ds, train_ways, cfg.train_queries or 15, "--train-queries"),
            ("test", cfg.dataset, cfg.ways, cfg.test_queries, "--test-queries")]
    if cfg.eval_every or cfg.trlearner is not None:  # validation curves; TRLearner's relation probe
        uses.append(("val", cfg.dataset, cfg.ways, cfg.test_queries, "--test-queries"))
    counts = {}
    for split, name, _, _, _ in uses:
        store = ImageStore(cache_dir(name, root))
        rows = [store.index[c] for c, _ in split_classes(name, split, store) if c in store.index]
        counts[split] = sorted((int(store.count(k)) for k in rows), reverse=True)
    most = min(len(c) for c in counts.values())
    for split, name, ways, queries, flag in uses:
        n = counts[split]
        if ways > len(n):
            what = f"--ways {cfg.ways}" if ways == cfg.ways else f"{ways}-way training episodes (train_ways)"
            raise ValueError(f"{what}: the {split} classes of {name!r} are {len(n)}; allowed: --ways 2..{most}")
        per = cfg.shots + queries
        if n[ways - 1] < per:
            raise ValueError(
                f"--shots {cfg.shots} with {queries} queries per class ({flag}) needs {per} images in each of "
                f"{ways} classes; the {split} classes of {name!r} have at most {n[0]} "
                f"({sum(c >= per for c in n)} classes have {per}); allowed: --shots + {flag} <= {n[ways - 1]}")


def _check_checkpoints(cfg, out: Path) -> None:
    """The checkpoint train() would resume (the first readable one, as
    ``trlearner.run.session.load_checkpoint`` picks it) must be of this run's settings; train()
    refuses it too, but only after taking the folder's lock and opening its log."""
    from trlearner.run.results import config_hash
    from trlearner.run.folder import CheckpointError, load_checked
    from trlearner.run.session import CHECKPOINTS

    want = config_hash(cfg.identity())
    for name in CHECKPOINTS:
        path = out / name
        if not path.is_file():
            continue
        try:
            have = load_checked(path).get("config_hash")
        except CheckpointError:  # unreadable or altered: train() reports it and tries the next
            continue
        if have != want:
            raise ValueError(f"--out {out} holds {name} of a run with other settings (config hash {have}, this "
                             f"run {want}); allowed: the same settings (to resume it), another --out, "
                             f"deleting {path}, or --force")
        return


def run(args) -> int:
    """``trlearner train`` for parsed ``args``: their one :func:`run_config`, then :func:`execute`."""
    try:
        cfg = run_config(args)
    except ValueError as exc:
        print(f"trlearner train: error: {exc}", file=sys.stderr)
        return 2
    return execute(cfg, args.out, threads=args.threads,
                   progress=not (args.no_progress or getattr(args, "quiet", False)), force=args.force)


def execute(cfg, out, *, threads: int | None = None, progress: bool = True, force: bool = False) -> int:
    """Train the resolved :class:`~trlearner.run.config.RunConfig` ``cfg`` into the run folder
    ``out`` (what ``trlearner train`` and the pipeline's train job run): preflight, train, one
    summary line. Returns the exit status: 0, 2 (refused before any work, or a run folder
    error), 3 (diverged; metrics.json records it), 130 (interrupted; a rerun resumes)."""
    import torch

    from trlearner.run.folder import RunFolderError
    from trlearner.run.config import DIVERGED_EXIT, DivergedError
    from trlearner.run.train import TrainingInterrupted, train

    if threads:
        torch.set_num_threads(threads)
    try:
        preflight(cfg, out, force=force)
    except ValueError as exc:
        print(f"trlearner train: error: {exc}", file=sys.stderr)
        return 2
    try:
        m = train(cfg, out, progress=progress, force=force)
    except RunFolderError as exc:  # --out locked by a live run, or holding another run's results
        print(f"trlearner train: error: {exc}", file=sys.stderr)
        return 2
    except DivergedError as exc:
        print(f"trlearner train: {exc}", file=sys.stderr)
        return DIVERGED_EXIT
    except TrainingInterrupted as exc:  # Ctrl-C: no traceback; the checkpoint is resumed by a rerun
        print(f"trlearner train: {exc}", file=sys.stderr)
        return 130
    unit = "%" if m["unit"] == "percent" else ""

    def num(v, digits=4):  # null in metrics.json (not a finite number; the reason is recorded there)
        return "n/a" if v is None else f"{v:.{digits}f}{unit}"

    print(f"{m['dataset']} {m['algorithm']} {m['variant']} {m['shots']}-shot seed {m['seed']}: "
          f"{m['metric']} = {num(m['mean'])} ± {num(m['ci95'])} over {m['n_tasks']} test tasks "
          f"({cfg.test_steps} inner steps); wall {m['wall_time_s']:.1f}s -> {out}/metrics.json")
    for name, s in (m.get("summary") or {}).items():  # multi-source Meta-Dataset: overall, ood, ...
        print(f"  {name}: {num(s['mean'], 2)} ± {num(s['ci95'], 2)} over {', '.join(s['sources'])}")
    return 0

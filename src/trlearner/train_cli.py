"""``trlearner train``: command-line front end of :mod:`trlearner.train`."""

from __future__ import annotations

import argparse
import sys

from trlearner.algorithms import ALGORITHMS
from trlearner.engine import BACKENDS
from trlearner.regularizers import REGULARIZERS
from trlearner.relation import ALIGNS, CLASS_REPRS, SAMPLERS, WEIGHTS, TRConfig


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _nonneg(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}")
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value
    return parse


def _source_list(text):
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    from trlearner.protocols import METADATASET_SOURCES

    bad = [n for n in names if n not in METADATASET_SOURCES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown Meta-Dataset source(s) {bad}; allowed: "
                                         f"{','.join(METADATASET_SOURCES)}")
    return names


# run settings taken from the command line (the names of trlearner.train.RunConfig fields)
RUN_KEYS = ("dataset", "algorithm", "shots", "ways", "seed", "iterations", "meta_batch", "inner_steps",
            "inner_lr", "test_steps", "test_lr", "curve_steps", "outer_lr", "first_order", "backbone",
            "filters", "train_queries", "test_tasks", "test_queries", "backend", "device",
            "checkpoint_every", "eval_every", "eval_tasks", "preset", "data_root", "regularizer",
            "reg_strength", "train_sources", "heldout_sources", "train_dataset")


def register(sub) -> None:
    p = sub.add_parser("train", help="meta-train and evaluate one run",
                       description="Meta-train one algorithm on one benchmark, then evaluate it on "
                                   "the fixed test tasks. Unset options follow the dataset's "
                                   "standard protocol (trlearner.protocols).")
    p.add_argument("--dataset", required=True, help="sinusoid, harmonic, omniglot_small, omniglot, miniimagenet, ...")
    p.add_argument("--algorithm", required=True, choices=sorted(ALGORITHMS))
    p.add_argument("--shots", required=True, type=_positive(int))
    p.add_argument("--ways", type=_positive(int), help="classes per episode (classification)")
    p.add_argument("--seed", type=_nonneg(int), default=0)
    p.add_argument("--out", required=True, help="run folder (resumed when it holds a checkpoint)")
    g = p.add_argument_group("protocol (default: the dataset's standard protocol)")
    g.add_argument("--iterations", type=_positive(int))
    g.add_argument("--meta-batch", type=_positive(int))
    g.add_argument("--inner-steps", type=_nonneg(int), help="inner steps (meta-layers) in training")
    g.add_argument("--inner-lr", type=_positive(float))
    g.add_argument("--test-steps", type=_nonneg(int), help="inner steps at test for the headline number")
    g.add_argument("--test-lr", type=_positive(float))
    g.add_argument("--curve-steps", type=_nonneg(int), help="evaluate after 0..N inner steps (default 10)")
    g.add_argument("--outer-lr", type=_positive(float))
    g.add_argument("--first-order", action="store_true", help="first-order MAML-style meta-gradient")
    g.add_argument("--backbone", choices=["mlp", "conv4", "resnet12"])
    g.add_argument("--filters", type=_positive(int))
    g.add_argument("--train-queries", type=_positive(int))
    g.add_argument("--test-tasks", type=_positive(int))
    g.add_argument("--test-queries", type=_positive(int))
    g.add_argument("--train-sources", type=_source_list,
                   help="multi-source 'metadataset' only: comma-separated sources to train on "
                        "(default: trlearner.protocols.METADATASET_TRAIN_SOURCES)")
    g.add_argument("--heldout-sources", type=_source_list,
                   help="multi-source 'metadataset' only: comma-separated held-out test sources "
                        "(default: traffic_sign,mscoco)")
    g.add_argument("--train-dataset",
                   help="meta-train on this dataset's training classes, evaluate on --dataset's val/test "
                        "classes (cross-domain; default for cub/places: miniimagenet, as the paper; "
                        "--train-dataset cub gives within-domain CUB)")
    e = p.add_argument_group("execution")
    e.add_argument("--backend", choices=BACKENDS, default="vmap")
    e.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    e.add_argument("--threads", type=_positive(int), help="CPU threads for PyTorch")
    e.add_argument("--checkpoint-every", type=_positive(int), default=1000)
    e.add_argument("--eval-every", type=_nonneg(int), default=0,
                   help="record train/validation metrics every N iterations (0: never)")
    e.add_argument("--eval-tasks", type=_positive(int), default=100)
    e.add_argument("--preset", default="cli", help="name of the config preset, recorded with the run")
    e.add_argument("--data-root", default="data")
    e.add_argument("--no-progress", action="store_true")
    e.add_argument("--force", action="store_true",
                   help="replace the results (metrics.json, provenance, checkpoints) of another run in --out")
    t = p.add_argument_group("TRLearner")
    t.add_argument("--trlearner", action="store_true", help="add the TRLearner regulariser")
    t.add_argument("--lam", type=_nonneg(float), default=TRConfig.lam)
    t.add_argument("--heads", type=_positive(int), default=TRConfig.heads)
    t.add_argument("--meta-data", type=_positive(int), help="meta-data points per task (per class)")
    t.add_argument("--sampler", choices=SAMPLERS, default=TRConfig.sampler)
    t.add_argument("--weights", choices=WEIGHTS, default=TRConfig.weights)
    t.add_argument("--align", choices=ALIGNS, default=TRConfig.align)
    t.add_argument("--class-repr", choices=CLASS_REPRS, default=TRConfig.class_repr)
    t.add_argument("--fixed-omega", action="store_true",
                   help="relations = plain cosine of task representations (omega all ones, not learned)")
    r = p.add_argument_group("other regularisers (for the time-accuracy comparison)")
    r.add_argument("--regularizer", choices=REGULARIZERS, default="none")
    r.add_argument("--reg-strength", type=_nonneg(float), default=0.0)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from trlearner.runio import RunFolderError
    from trlearner.train import DIVERGED_EXIT, DivergedError, resolve_config, train

    if args.threads:
        torch.set_num_threads(args.threads)
    trl = None
    if args.trlearner:
        trl = TRConfig(lam=args.lam, heads=args.heads, meta_data=args.meta_data, sampler=args.sampler,
                       weights=args.weights, align=args.align, class_repr=args.class_repr,
                       learn_omega=not args.fixed_omega)
    try:
        cfg = resolve_config(**{k: getattr(args, k) for k in RUN_KEYS}, trlearner=trl)
    except ValueError as exc:
        print(f"trlearner train: error: {exc}", file=sys.stderr)
        return 2
    try:
        m = train(cfg, args.out, progress=not args.no_progress, force=args.force)
    except RunFolderError as exc:  # --out locked by a live run, or holding another run's results
        print(f"trlearner train: error: {exc}", file=sys.stderr)
        return 2
    except DivergedError as exc:
        print(f"trlearner train: {exc}", file=sys.stderr)
        return DIVERGED_EXIT
    unit = "%" if m["unit"] == "percent" else ""
    print(f"{m['dataset']} {m['algorithm']} {m['variant']} {m['shots']}-shot seed {m['seed']}: "
          f"{m['metric']} = {m['mean']:.4f}{unit} ± {m['ci95']:.4f}{unit} over {m['n_tasks']} test tasks "
          f"({cfg.test_steps} inner steps); wall {m['wall_time_s']:.1f}s -> {args.out}/metrics.json")
    for name, s in (m.get("summary") or {}).items():  # multi-source Meta-Dataset: overall, ood, ...
        print(f"  {name}: {s['mean']:.2f}{unit} ± {s['ci95']:.2f}{unit} over {', '.join(s['sources'])}")
    return 0

"""The standard protocol of every benchmark (TRLEARNER.md section 7), as data.

``paper_protocol(dataset, algorithm, ways, shots)`` gives the settings the paper's baselines
used, as their authors ran them (sources in docs/BASELINES.md); ``trlearner train`` starts from
them, and any run whose settings are weaker (fewer iterations, fewer test tasks, fewer test
queries) is marked ``reduced`` in its metrics.

Settings of the baselines' own code (docs/BASELINES.md has the file and line of each):
``adapt_bn`` (batch-norm scale/shift adapted in the inner loop; MAML/MT-net: no),
``downsample`` (conv4: ``maxpool`` or MAML's Omniglot ``stride``), ``init`` (``finn``: MAML's
code; ``torch``: PyTorch's default), ``grad_clip`` (element-wise clip of the meta-gradient,
0 = none; MAML's miniImageNet code: 10), ``train_ways`` (ways of the training episodes; None
= the run's ways), ``metasgd_lr_init`` (``uniform`` in [0.005, 0.1], Li et al.).
``queries_per_class="shots"`` marks the protocols whose train and test queries per class equal
the shots (MAML's Omniglot: K); ``paper_protocol`` resolves it when it is given the shots.
"""

from __future__ import annotations

# The settings above that every protocol of a gradient-based baseline carries.
AUTHORS_DEFAULTS = dict(adapt_bn=False, grad_clip=0.0)

# Sinusoid (cbfinn/maml): MLP weights truncated normal std 0.01, zero biases (maml.py l.168-177).
REGRESSION = dict(
    backbone="mlp", meta_batch=25, inner_lr=0.01, test_lr=0.01, inner_steps=1, test_steps=1,
    curve_steps=10, outer_lr=1e-3, iterations=70_000, test_tasks=600, test_queries=100,
    init="finn", **AUTHORS_DEFAULTS,
)

# Omniglot (MAML): strided convolutions, no pooling (paper section 5.2; utils.py conv_block with
# max_pool False, the flag's default); K queries per class at train and test (main.py:
# DataGenerator(update_batch_size*2)); 3 test steps for 5-way, 5 for 20-way (paper appendix A.1;
# the code evaluates 0..10 steps, the curve keeps all 10).
OMNIGLOT_5WAY = dict(
    backbone="conv4", filters=64, meta_batch=32, inner_lr=0.4, test_lr=0.4, inner_steps=1,
    test_steps=3, curve_steps=10, outer_lr=1e-3, iterations=60_000, test_tasks=600,
    queries_per_class="shots", downsample="stride", init="finn", **AUTHORS_DEFAULTS,
)
OMNIGLOT_20WAY = dict(OMNIGLOT_5WAY, meta_batch=16, inner_lr=0.1, test_lr=0.1, inner_steps=5, test_steps=5)

# miniImageNet (MAML): max-pool Conv4-32, 15 training queries per class (main.py:
# update_batch_size+15), meta-gradient clipped to [-10, 10] (maml.py l.147-148).
MINIIMAGENET = dict(
    backbone="conv4", filters=32, meta_batch=4, inner_lr=0.01, test_lr=0.01, inner_steps=5,
    test_steps=10, curve_steps=10, outer_lr=1e-3, iterations=60_000, test_tasks=600, test_queries=15,
    train_queries=15, downsample="maxpool", init="finn", adapt_bn=False, grad_clip=10.0,
)

# pQSAR (few-shot regression per ChEMBL assay, 1024-bit fingerprints). After MetaMix's Drug
# code (huaxiuyao/MetaMix Drug/main.py defaults and run.sh): 2 hidden layers of 500 units
# (``hid_dim=500, num_stages=2``; MetaMix adds batch norm, not used here), meta-batch 4,
# inner lr 0.01 (run.sh: 0.005 for some groups), 5 inner steps at train and test, Adam 1e-3,
# 100 test assays per group (episode i = the i-th test assay, so 100 test tasks visit each
# test assay once). Iterations: MetaMix trains 20-50 epochs over the 4100 training assays
# (~1,000 meta-batches per epoch); 20,000 here (chosen here). Metric: R^2 per assay
# (``metric="r2"``; needs train.build to call ``algo.set_metric``). Queries per assay: 20
# (the data layer's default; chosen here), shots set by the run (10 in config/paper.yaml).
PQSAR = dict(
    backbone="mlp", hidden=(500, 500), metric="r2", meta_batch=4, inner_lr=0.01, test_lr=0.01,
    inner_steps=5, test_steps=5, curve_steps=5, outer_lr=1e-3, iterations=20_000, test_tasks=100,
    test_queries=20, init="torch", **AUTHORS_DEFAULTS,
)

# Pascal 3D pose (one object = one task, 128x128 grey -> angle, MSE), 10/15-shot. After
# MetaMix's Pose code (MR-MAML setup; huaxiuyao/MetaMix Pose/main.py and run.sh): meta-batch
# 10, inner lr 0.01, 5 inner steps at train, 20 at test, Adam 1e-3, 30,000 iterations, as many
# queries as shots, 1000 test tasks. Backbone: conv4 with 32 filters (chosen here; MetaMix uses
# a 32/48/64-filter strided encoder that is not adapted plus an adapted MLP head).
POSE = dict(
    backbone="conv4", filters=32, meta_batch=10, inner_lr=0.01, test_lr=0.01, inner_steps=5,
    test_steps=20, curve_steps=20, outer_lr=1e-3, iterations=30_000, test_tasks=1000,
    test_queries=15, downsample="maxpool", init="torch", **AUTHORS_DEFAULTS,
)

# Meta-Dataset sources (variable way 5..50 and shot per episode, 84x84 RGB, n_out = 50; the
# sampler ignores shots/ways/queries). TRLEARNER.md section 7: 600 test episodes per source.
# Everything else chosen here, from the miniImageNet MAML protocol (84x84 images): conv4 with
# 32 filters, inner lr 0.01, 5 inner steps at train and 10 at test, Adam 1e-3; meta-batch 4;
# 60,000 iterations; MAML's miniImageNet init and meta-gradient clipping (+-10). ``test_queries``
# 10 = the sampler's cap of queries per class (recorded only; the sampler decides).
METADATASET = dict({k: v for k, v in MINIIMAGENET.items() if k != "train_queries"}, test_queries=10)
from trlearner.data.sources.metadataset_sources import (METADATASET_HELDOUT_SOURCES,  # noqa: E402
                                                        METADATASET_SOURCES, METADATASET_TRAIN_SOURCES)

# Multi-source Meta-Dataset (dataset ``metadataset``, trlearner.data.sources.metadataset_multi): the
# paper's out-of-distribution experiment, "train on some sources, test on held-out ones".
# The paper does not name the sources. Our decision: train on the 8 sources with training
# classes, hold out the 2 test-only sources (as Triantafillou et al. 2020 do); each task of a
# meta-batch comes from a training source drawn uniformly. Test: 600 episodes per source, all
# 10 sources; "overall" = mean over all sources, "ood" = mean over the held-out sources.
# Override per run with ``train_sources`` / ``heldout_sources`` (config protocol keys). The lists
# live in the data layer (trlearner.data.sources.metadataset_sources), imported above.
METADATASET_MULTI = dict(METADATASET, train_sources=METADATASET_TRAIN_SOURCES,
                         heldout_sources=METADATASET_HELDOUT_SOURCES)
# The report cells of a multi-source run: (metadataset, overall) and (metadataset, ood), the
# keys of the paper numbers in trlearner/report/reference.yaml, then one cell per source under the dataset
# name METADATASET_PER_SOURCE (its own table section; setting = the source, "(held out)" added
# for held-out ones). Used by trlearner.pipeline.matrix (expected cells) and trlearner.run.records.scan.
METADATASET_SUMMARIES = ("overall", "ood")
METADATASET_PER_SOURCE = "metadataset (per source)"


def per_source_setting(source: str, heldout: bool) -> str:
    """The report setting of one source of a multi-source run, e.g. ``mscoco (held out)``."""
    return f"{source} (held out)" if heldout else source


def metadataset_cells(train_sources, heldout_sources) -> list[tuple[str, str]]:
    """(dataset, setting) of every report cell of a multi-source Meta-Dataset run."""
    cells = [("metadataset", "overall")] + ([("metadataset", "ood")] if heldout_sources else [])
    cells += [(METADATASET_PER_SOURCE, per_source_setting(s, False)) for s in train_sources]
    cells += [(METADATASET_PER_SOURCE, per_source_setting(s, True)) for s in heldout_sources]
    return cells

# Cross-domain (TRLEARNER.md section 4; the protocol of Chen et al. 2019, "A Closer Look at
# Few-shot Classification"): the cells ``cub`` and ``places`` are named after the dataset they
# are TESTED on; they meta-train on miniImageNet's training split (Ravi & Larochelle, 64 classes)
# and meta-test on the test classes of CUB (50) or Places (mod-4 rule), all at 84x84 RGB with the
# miniImageNet MAML settings. Validation (``eval_every``) uses the target's validation classes,
# as Chen et al. do. ``train_dataset`` is the source of the training episodes; a run whose
# ``train_dataset`` equals its dataset (``--train-dataset cub``) is the within-domain variant.
# Chen et al.'s code (wyharveychen/CloserLookFewShot train.py, dataset 'cross') trains on all
# 100 miniImageNet classes ("all.json") and validates on CUB's val.json; here meta-training uses
# the 64 training classes (the protocol this project reproduces: docs/PIPELINE.md, cross-domain).
CROSS_DOMAIN = dict(MINIIMAGENET, train_dataset="miniimagenet")
# Fixed-way image datasets whose episodes may train a run tested on another of them (same input
# shape required; checked when the run's sources are built).
FIXED_WAY_IMAGE_DATASETS = ("omniglot", "omniglot_small", "miniimagenet", "cub", "places")

DATASET_PROTOCOLS = {
    "sinusoid": REGRESSION,
    "harmonic": REGRESSION,
    "omniglot": OMNIGLOT_5WAY,
    "omniglot_small": OMNIGLOT_5WAY,
    "miniimagenet": MINIIMAGENET,
    "cub": CROSS_DOMAIN,
    "places": CROSS_DOMAIN,
    # motivation task families of graded frequency content (trlearner.data.sources.regression)
    "motivation_d1": REGRESSION,
    "motivation_d2": REGRESSION,
    "motivation_d3": REGRESSION,
    "motivation_d4": REGRESSION,
    "pqsar": PQSAR,
    "pascal3d_pose": POSE,
    **{f"metadataset_{source}": METADATASET for source in METADATASET_SOURCES},
    "metadataset": METADATASET_MULTI,
}

# Settings that make a run "reduced" when they are below the protocol's value.
REDUCIBLE = ("iterations", "test_tasks", "test_queries")


# ProtoNet as Snell et al. 2017 ran it (paper section 3.1-3.2; jakesnell/prototypical-networks
# scripts/train/few_shot/run_train.py): Conv4-64 with max-pooling and PyTorch's init, no
# clipping; Omniglot: 60-way training episodes with 5 queries per class (1- and 5-shot), 15 test
# queries per class (run_train.py --data.test_query); miniImageNet: 30-way (1-shot) / 20-way
# (5-shot) training episodes, 15 queries per class. NOT taken: Snell's one episode per update
# (the meta-batch stays the dataset's: TRLearner needs >= 2 tasks per batch and its paired
# baseline must be trained alike) and the halving of Adam's rate every 2000 episodes.
PROTONET_OMNIGLOT = dict(filters=64, downsample="maxpool", init="torch", train_ways=60,
                         train_queries=5, test_queries=15, grad_clip=0.0)
PROTONET_MINIIMAGENET = dict(filters=64, downsample="maxpool", init="torch",
                             train_queries=15, test_queries=15, grad_clip=0.0)
OMNIGLOT_FAMILY = ("omniglot", "omniglot_small")
MINIIMAGENET_FAMILY = ("miniimagenet", "cub", "places")
# Settings that belong to the conv4 protocols; another backbone (``--backbone resnet12``) has its
# own architecture and init, so they are dropped for it.
CONV4_ONLY = ("downsample", "init", "filters")


def protonet_train_ways(shots: int) -> int:
    """Snell et al.'s miniImageNet training ways: 30 for 1-shot, 20 for 5-shot (and above)."""
    return 30 if shots == 1 else 20


def paper_protocol(dataset: str, algorithm: str = "maml", ways: int | None = None,
                   shots: int | None = None, backbone: str | None = None) -> dict:
    """The protocol of ``dataset`` as a fresh dict, as the baselines' authors ran it.

    Arguments:
        dataset: a key of ``DATASET_PROTOCOLS``.
        algorithm: ProtoNet gets no inner steps, and on Omniglot/miniImageNet Snell et al.'s
            training episodes (``PROTONET_*``); Meta-SGD gets ``metasgd_lr_init``.
        ways: 20 selects MAML's 20-way Omniglot settings.
        shots: resolves ``queries_per_class="shots"`` (train and test queries = shots) and
            ProtoNet's miniImageNet training ways; without it the marker stays in the dict.
        backbone: the run's backbone when it is not the protocol's (conv4-only settings are
            then dropped).

    Example::

        >>> p = paper_protocol("omniglot", "maml", ways=5, shots=1)
        >>> p["test_steps"], p["test_queries"], p["train_queries"], p["downsample"]
        (3, 1, 1, 'stride')
        >>> paper_protocol("omniglot", "protonet", ways=5, shots=1)["train_ways"]
        60
    """
    if dataset not in DATASET_PROTOCOLS:
        raise ValueError(f"no protocol for dataset {dataset!r}; known: {', '.join(DATASET_PROTOCOLS)}")
    proto = dict(DATASET_PROTOCOLS[dataset])
    if dataset.startswith("omniglot") and ways == 20:
        proto = dict(OMNIGLOT_20WAY)
    if proto.get("queries_per_class") == "shots" and shots is not None:
        del proto["queries_per_class"]
        proto.update(train_queries=shots, test_queries=shots)
    if algorithm == "protonet":
        proto.update(inner_steps=0, test_steps=0, curve_steps=0)
        if dataset in OMNIGLOT_FAMILY:
            proto.pop("queries_per_class", None)
            proto.update(PROTONET_OMNIGLOT)
        elif dataset in MINIIMAGENET_FAMILY:
            proto.update(PROTONET_MINIIMAGENET)
            if shots is not None:
                proto["train_ways"] = protonet_train_ways(shots)
    if algorithm == "metasgd":
        proto["metasgd_lr_init"] = "uniform"
    if backbone is not None and backbone != proto.get("backbone"):
        for key in CONV4_ONLY:
            proto.pop(key, None)
    return proto

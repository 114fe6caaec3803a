"""The standard protocol of every benchmark (TRLEARNER.md section 7), as data.

``paper_protocol(dataset, algorithm, ways)`` gives the settings the paper's baselines used;
``trlearner train`` starts from them, and any run whose settings are weaker (fewer
iterations, fewer test tasks, fewer test queries) is marked ``reduced`` in its metrics.
"""

from __future__ import annotations

REGRESSION = dict(
    backbone="mlp", meta_batch=25, inner_lr=0.01, test_lr=0.01, inner_steps=1, test_steps=1,
    curve_steps=10, outer_lr=1e-3, iterations=70_000, test_tasks=600, test_queries=100,
)

OMNIGLOT_5WAY = dict(
    backbone="conv4", filters=64, meta_batch=32, inner_lr=0.4, test_lr=0.4, inner_steps=1,
    test_steps=10, curve_steps=10, outer_lr=1e-3, iterations=60_000, test_tasks=600, test_queries=15,
)
OMNIGLOT_20WAY = dict(OMNIGLOT_5WAY, meta_batch=16, inner_lr=0.1, test_lr=0.1, inner_steps=5)

MINIIMAGENET = dict(
    backbone="conv4", filters=32, meta_batch=4, inner_lr=0.01, test_lr=0.01, inner_steps=5,
    test_steps=10, curve_steps=10, outer_lr=1e-3, iterations=60_000, test_tasks=600, test_queries=15,
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
    test_queries=20,
)

# Pascal 3D pose (one object = one task, 128x128 grey -> angle, MSE), 10/15-shot. After
# MetaMix's Pose code (MR-MAML setup; huaxiuyao/MetaMix Pose/main.py and run.sh): meta-batch
# 10, inner lr 0.01, 5 inner steps at train, 20 at test, Adam 1e-3, 30,000 iterations, as many
# queries as shots, 1000 test tasks. Backbone: conv4 with 32 filters (chosen here; MetaMix uses
# a 32/48/64-filter strided encoder that is not adapted plus an adapted MLP head).
POSE = dict(
    backbone="conv4", filters=32, meta_batch=10, inner_lr=0.01, test_lr=0.01, inner_steps=5,
    test_steps=20, curve_steps=20, outer_lr=1e-3, iterations=30_000, test_tasks=1000,
    test_queries=15,
)

# Meta-Dataset sources (variable way 5..50 and shot per episode, 84x84 RGB, n_out = 50; the
# sampler ignores shots/ways/queries). TRLEARNER.md section 7: 600 test episodes per source.
# Everything else chosen here, from the miniImageNet MAML protocol (84x84 images): conv4 with
# 32 filters, inner lr 0.01, 5 inner steps at train and 10 at test, Adam 1e-3; meta-batch 4;
# 60,000 iterations. ``test_queries`` 10 = the sampler's cap of queries per class (recorded
# only; the sampler decides).
METADATASET = dict(MINIIMAGENET, test_queries=10)
METADATASET_SOURCES = ("ilsvrc_2012", "omniglot", "aircraft", "cu_birds", "dtd", "quickdraw", "fungi",
                       "vgg_flower", "traffic_sign", "mscoco")

# Multi-source Meta-Dataset (dataset ``metadataset``, trlearner.data.metadataset_multi): the
# paper's out-of-distribution experiment, "train on some sources, test on held-out ones".
# The paper does not name the sources. Our decision: train on the 8 sources with training
# classes, hold out the 2 test-only sources (as Triantafillou et al. 2020 do); each task of a
# meta-batch comes from a training source drawn uniformly. Test: 600 episodes per source, all
# 10 sources; "overall" = mean over all sources, "ood" = mean over the held-out sources.
# Override per run with ``train_sources`` / ``heldout_sources`` (config protocol keys).
METADATASET_TRAIN_SOURCES = ("ilsvrc_2012", "omniglot", "aircraft", "cu_birds", "dtd", "quickdraw", "fungi",
                             "vgg_flower")
METADATASET_HELDOUT_SOURCES = ("traffic_sign", "mscoco")
METADATASET_MULTI = dict(METADATASET, train_sources=METADATASET_TRAIN_SOURCES,
                         heldout_sources=METADATASET_HELDOUT_SOURCES)
# The report cells of a multi-source run: (metadataset, overall) and (metadataset, ood), the
# keys of config/reference.yaml's paper numbers, then one cell per source under the dataset
# name METADATASET_PER_SOURCE (its own table section; setting = the source, "(held out)" added
# for held-out ones). Used by trlearner.pipeline (expected cells) and trlearner.report.runs.
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
    # motivation task families of graded frequency content (trlearner.data.regression)
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


def paper_protocol(dataset: str, algorithm: str = "maml", ways: int | None = None) -> dict:
    """The protocol of ``dataset`` as a fresh dict (ProtoNet: no inner steps)."""
    if dataset not in DATASET_PROTOCOLS:
        raise ValueError(f"no protocol for dataset {dataset!r}; known: {', '.join(DATASET_PROTOCOLS)}")
    proto = dict(DATASET_PROTOCOLS[dataset])
    if dataset.startswith("omniglot") and ways == 20:
        proto = dict(OMNIGLOT_20WAY)
    if algorithm == "protonet":
        proto.update(inner_steps=0, test_steps=0, curve_steps=0)
    return proto

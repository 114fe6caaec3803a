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

DATASET_PROTOCOLS = {
    "sinusoid": REGRESSION,
    "harmonic": REGRESSION,
    "omniglot": OMNIGLOT_5WAY,
    "omniglot_small": OMNIGLOT_5WAY,
    "miniimagenet": MINIIMAGENET,
    "cub": MINIIMAGENET,
    "places": MINIIMAGENET,
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

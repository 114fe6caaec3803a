"""Datasets of the paper: registry, fetch (verify, extract, cache), and episode sources.

Entry points (imported lazily, so ``import trlearner.data`` stays cheap)::

    from trlearner.data.fetch import fetch        # (trlearner.data.fetch is the module)
    from trlearner.data import image_source
    fetch("omniglot_small")                       # -> Path("data/raw/omniglot_small")
    src = image_source("omniglot_small", "train", ways=5, shots=1, queries=15, seed=0)
    batch = src.batch(range(32))                  # TaskBatch, see docs/CONTRACTS.md
"""

from __future__ import annotations

__all__ = ["is_fetched", "manifest", "image_source", "DataFetchError",
           "episode_rng", "episode_hash"]


def __getattr__(name):
    if name in ("is_fetched", "manifest"):
        import importlib
        return getattr(importlib.import_module("trlearner.data.fetch"), name)
    if name == "image_source":
        from trlearner.data.images import image_source
        return image_source
    if name == "DataFetchError":
        from trlearner.data.errors import DataFetchError
        return DataFetchError
    if name in ("episode_rng", "episode_hash"):
        from trlearner.data import episodes
        return getattr(episodes, name)
    raise AttributeError(name)

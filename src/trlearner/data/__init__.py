"""Layer 2, ``data``: every dataset of the paper, from its published files to the task batches a
run trains on.

Owns: the registry (``registry.yaml``, ``splits/``), the cache as sources read it
(:mod:`.store`), the safe unpickler (:mod:`.safe_pickle`), :mod:`.errors`, the
episode sources (:mod:`.sources`), fetching and converting (:mod:`.fetch`) and the ``data``
commands (:mod:`.cli`).

Inside the folder, lowest first; each part may import only the parts before it::

    registry, errors, safe_pickle, store   top-level modules
    sources/   episodes (the TaskBatch contract), regression, images, drug (pQSAR), pose,
               metadataset, metadataset_multi, and dispatch: the one table dataset -> source
               constructor (make_source)
    fetch/     core (download, verify, extract, publish) and the converters that write the
               caches the sources read (convert, imagecache, convert_metadataset,
               convert_pqsar, convert_pose)
    cli        the ``trlearner data`` commands

Sources read the cache through :mod:`.store` (paths, MANIFEST, ``require``) and never import
``fetch``; ``fetch`` sits above them because the converters write the layouts the sources
define (``CACHE_LAYOUT``, ``TARGET_SCALE``) and the regression test sets are episodes of the
regression source.

May import: ``trlearner.engine`` (the padding marks of variable-way batches), ``trlearner.util``.

Entry points (imported lazily, so ``import trlearner.data`` stays cheap)::

    from trlearner.data.fetch import fetch
    from trlearner.data.sources.dispatch import make_source
    fetch("omniglot_small")                       # -> Path("data/raw/omniglot_small")
    src = make_source("omniglot_small", "train", ways=5, shots=1, queries=15, seed=0)
    batch = src.batch(range(32))                  # TaskBatch, see docs/CONTRACTS.md
"""

from __future__ import annotations

__all__ = ["is_fetched", "manifest", "make_source", "image_source", "DataFetchError",
           "episode_rng", "episode_hash"]


def __getattr__(name):
    if name == "is_fetched":
        from trlearner.data.store import is_fetched
        return is_fetched
    if name == "manifest":
        from trlearner.data.fetch.core import manifest
        return manifest
    if name in ("make_source", "image_source"):
        from trlearner.data.sources import dispatch
        return getattr(dispatch, name)
    if name == "DataFetchError":
        from trlearner.data.errors import DataFetchError
        return DataFetchError
    if name in ("episode_rng", "episode_hash"):
        from trlearner.data.sources import episodes
        return getattr(episodes, name)
    raise AttributeError(name)

"""Episode sources: every dataset of the paper as a sampler of task batches.

``episodes`` holds the contract every source follows (:class:`TaskBatch`, per-episode random
generators, the padding of variable-way batches); ``regression``, ``images``, ``drug``
(pQSAR), ``pose``, ``metadataset`` and ``metadataset_multi`` are the sources; ``dispatch``
is the one table that maps a dataset name to its source's constructor (``make_source``).

May import: ``trlearner.data`` top-level modules (``registry``, ``errors``, ``safe_pickle``,
``store``), ``trlearner.engine``, ``trlearner.util``. Never ``trlearner.data.fetch``: a source
reads the cache through :mod:`trlearner.data.store`, and fetching sits above the sources.
"""

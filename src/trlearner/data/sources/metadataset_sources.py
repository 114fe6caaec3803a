"""The Meta-Dataset sources, and which of them the multi-source run trains on (one place).

The paper says "train on some sources, test on held-out ones" without naming them. Our
decision: train on the 8 sources that have training classes and hold out the two test-only
sources of Meta-Dataset (traffic_sign, mscoco), as Triantafillou et al. (2020) do. Names are
without the ``metadataset_`` prefix of the registry. Read by
:mod:`trlearner.data.sources.metadataset_multi` (defaults, checks) and
``trlearner.run.protocols`` (the protocol of every source and of the multi-source run).

Example::

    >>> from trlearner.data.sources.metadataset_sources import METADATASET_SOURCES
    >>> METADATASET_SOURCES[:2]
    ('ilsvrc_2012', 'omniglot')
"""

from __future__ import annotations

METADATASET_SOURCES = ("ilsvrc_2012", "omniglot", "aircraft", "cu_birds", "dtd", "quickdraw", "fungi",
                       "vgg_flower", "traffic_sign", "mscoco")
METADATASET_TRAIN_SOURCES = ("ilsvrc_2012", "omniglot", "aircraft", "cu_birds", "dtd", "quickdraw", "fungi",
                             "vgg_flower")
METADATASET_HELDOUT_SOURCES = ("traffic_sign", "mscoco")

"""Compatibility alias: the image episodes moved to :mod:`trlearner.data.sources.images`
(and ``image_source`` to :mod:`trlearner.data.sources.dispatch`).

Kept for importers outside ``trlearner.data`` that still name this module
(``trlearner.run.cli``); new code imports from ``trlearner.data.sources``. Delete once
nothing imports it.
"""

from __future__ import annotations

from trlearner.data.sources.dispatch import image_source
from trlearner.data.sources.images import ImageEpisodes, ImageStore, split_classes

__all__ = ["ImageEpisodes", "ImageStore", "image_source", "split_classes"]

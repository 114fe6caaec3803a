"""Compatibility alias: the task-batch contract and ``make_source`` moved to
:mod:`trlearner.data.sources.episodes` and :mod:`trlearner.data.sources.dispatch`.

Kept for importers outside ``trlearner.data`` that still name this module
(``trlearner.method.regularizers``); new code imports from ``trlearner.data.sources``.
Delete once nothing imports it.
"""

from __future__ import annotations

from trlearner.data.sources.dispatch import make_source
from trlearner.data.sources.episodes import PaddedSource, TaskBatch, mark_batch_padding

__all__ = ["PaddedSource", "TaskBatch", "make_source", "mark_batch_padding"]

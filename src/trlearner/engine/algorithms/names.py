"""The algorithms, written once: each name with its class and its report label.

Everything that names an algorithm reads this table (no torch; ``trlearner train --help`` and
the pipeline import it without the algorithms): the registry :func:`trlearner.engine.algorithms.make_algorithm`
(which imports ``engine/algorithms/<name>.py`` for the class), ``trlearner train --algorithm``'s
choices, the pipeline's catalog and config schema, the training jobs' source files, the
estimates and the report's labels and order. A new algorithm is its module
``engine/algorithms/<name>.py`` and one line here.

Example::

    >>> list(ALGORITHMS)[:2], ALGORITHMS["tnet"].cls, ALGORITHMS["tnet"].label
    (['maml', 'anil'], 'TNet', 'T-NET')
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    """One algorithm: ``cls``, its class in ``engine/algorithms/<name>.py``; ``label``, its
    name in the report."""

    cls: str
    label: str


#: name -> its :class:`Entry`, in the order the report shows them.
ALGORITHMS = {
    "maml": Entry("MAML", "MAML"),
    "anil": Entry("ANIL", "ANIL"),
    "metasgd": Entry("MetaSGD", "MetaSGD"),
    "tnet": Entry("TNet", "T-NET"),
    "protonet": Entry("ProtoNet", "ProtoNet"),
}

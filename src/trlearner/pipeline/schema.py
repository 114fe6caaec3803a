"""The pipeline config's JSON schema (``trlearner/pipeline/config.schema.yaml``, shipped with
the package) and the config keys it defines.

The schema is the one list of what a config may say: the Snakefile validates with
:data:`SCHEMA` (``snakemake.utils.validate``), :func:`trlearner.pipeline.check.check_config`
with the same file, and the protocol and TRLearner keys of the run matrix are read from it
(:func:`protocol_keys`, :func:`trlearner_keys`). One enum is not in the file: the algorithms,
set from their table (``trlearner.engine.algorithms.names``) when :func:`schema` loads it, so a
new algorithm needs no edit here (Snakemake's own ``validate``, run after the check, reads the
file and sees a string). Tests check the rest against the code it names:
its protocol keys are ``trlearner train`` options, its TRLearner keys are the fields of
``trlearner.method.trconfig.TRConfig`` (``trlearner.run.cli.trlearner_keys``), its dataset
enum is the data registry (``tests/test_protocol_keys.py``, ``tests/test_single_source.py``).

Example::

    >>> "lam" in trlearner_keys() and "iterations" in protocol_keys()
    True
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

SCHEMA = Path(__file__).resolve().with_name("config.schema.yaml")


@lru_cache(maxsize=1)
def schema() -> dict:
    """The parsed schema, with the algorithms' enum (do not modify it: it is shared).

    Example::

        >>> schema()["definitions"]["algorithm"]["enum"][:2]
        ['maml', 'anil']
    """
    from trlearner.engine.algorithms.names import ALGORITHMS
    from trlearner.util.yamlsafe import safe_load_file

    loaded = safe_load_file(SCHEMA)
    loaded["definitions"]["algorithm"]["enum"] = list(ALGORITHMS)
    return loaded


def definition(name: str) -> dict:
    """``definitions.<name>`` of the schema (``dataset``, ``protocol``, ``trlearner``, ...)."""
    return schema()["definitions"][name]


def protocol_keys() -> tuple[str, ...]:
    """The ``trlearner train`` options a config may set under ``protocol`` (name in config: the
    option with ``-`` for ``_``)."""
    return tuple(definition("protocol")["properties"])


def trlearner_keys() -> tuple[str, ...]:
    """The TRLearner settings a config may set under ``trlearner`` (and sweep)."""
    return tuple(definition("trlearner")["properties"])

"""The pipeline config's JSON schema (``trlearner/pipeline/config.schema.yaml``, shipped with
the package) and the config keys it defines.

The schema is the one list of what a config may say: the Snakefile validates with
:data:`SCHEMA` (``snakemake.utils.validate``), :func:`trlearner.pipeline.check.check_config`
with the same file, and the protocol and TRLearner keys of the run matrix are read from it
(:func:`protocol_keys`, :func:`trlearner_keys`). Tests check it against the code it names:
its protocol keys are ``trlearner train`` options, its TRLearner keys are the fields of
``trlearner.method.relation.TRConfig`` (``trlearner.run.cli.trlearner_keys``), its dataset
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
    """The parsed schema (do not modify it: it is shared)."""
    from trlearner.util.yamlsafe import safe_load_file

    return safe_load_file(SCHEMA)


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

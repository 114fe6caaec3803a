"""The one YAML loader of the project: PyYAML's safe loader with bounds and no silent overrides.

Every YAML file the project reads (pipeline configs, the config schema, the data registry, the
paper's reference numbers, ``params.yaml``/``dvc.lock``, an analysis scale file) goes through
:func:`safe_load`. On top of ``yaml.safe_load`` (plain data only: nothing in the file runs) it
refuses, with one line naming ``file:line:column`` and what to do:

- **a duplicate key** in one mapping (``{iterations: 20, iterations: 30}``, or a second
  ``regression:`` experiment): ``yaml.safe_load`` keeps the last one silently. Keys brought in
  by a merge (``<<: *base``) may still be overridden: that is what a merge is for;
- **alias expansion** beyond :data:`MAX_NODES` nodes (the "billion laughs" file: nine anchors
  of nine aliases each expand to 9^9 nodes; it took 56 s and 3.65 GB before a ``MemoryError``)
  and **an alias inside its own anchor** (a recursive structure no config means);
- **nesting** deeper than :data:`MAX_DEPTH` (5,000 nested ``[`` gave a ``RecursionError``).

The bounds are far above what the project's files use (the largest, the data registry, is
under 2,000 nodes and 8 levels deep; ``tests/test_yaml_safe.py`` loads each file and checks
it parses as ``yaml.safe_load`` parses it).

Example::

    >>> safe_load("a: 1\\nb: [2, 3]\\n")
    {'a': 1, 'b': [2, 3]}
    >>> safe_load("iterations: 20\\niterations: 30\\n", name="c.yaml")
    Traceback (most recent call last):
    ...
    trlearner.util.yamlsafe.YAMLInputError: c.yaml:2:1: duplicate key 'iterations' (first at line 1); keep one of them (YAML would silently use the last)
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode

MAX_NODES = 100_000  # nodes after alias expansion: a file of this size parses in ~1 s
MAX_DEPTH = 100  # nesting levels (Python's recursion limit is reached near 330 in the composer)
MERGE_TAG = "tag:yaml.org,2002:merge"

__all__ = ["MAX_DEPTH", "MAX_NODES", "YAMLInputError", "safe_load", "safe_load_file"]


class YAMLInputError(yaml.MarkedYAMLError, ValueError):
    """A YAML file the project refuses to read (duplicate key, alias bomb, nesting too deep).

    A :class:`yaml.MarkedYAMLError` (so ``except yaml.YAMLError`` handlers see it, with
    ``problem`` and ``problem_mark``) and a :class:`ValueError`; ``str()`` is one line:
    ``file:line:column: problem``.
    """

    def __init__(self, name: str, mark, problem: str):
        super().__init__(problem=problem, problem_mark=mark)
        self.name = name

    def __str__(self) -> str:
        at = f"{self.name}:{self.problem_mark.line + 1}:{self.problem_mark.column + 1}" \
            if self.problem_mark is not None else self.name
        return f"{at}: {self.problem}"


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts the nodes of the document with every alias expanded,
    bounds the nesting depth and refuses duplicate keys (see the module docstring)."""

    def __init__(self, stream, name: str = "<string>", max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH):
        super().__init__(stream)
        self.source_name, self.max_nodes, self.max_depth = name, max_nodes, max_depth
        self._expanded = 0  # nodes so far, each alias counting the whole subtree it stands for
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded size, once composed

    def _refuse(self, mark, problem: str):
        raise YAMLInputError(self.source_name, mark, problem)

    def _count(self, n: int, mark, alias: str | None = None) -> None:
        self._expanded += n
        if self._expanded > self.max_nodes:
            at = f"at alias *{alias}, " if alias else ""
            self._refuse(mark, f"{at}the document has more than {self.max_nodes} values once its aliases (*name) "
                               f"are expanded, far more than any config needs (a 'billion laughs' file?); write "
                               f"the values out, or use fewer aliases of aliases")

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)  # the anchored node, or an error for an unknown anchor
            size = self._sizes.get(id(node))
            if size is None:
                self._refuse(event.start_mark, f"the alias *{event.anchor} inside the value of its own anchor "
                                               f"&{event.anchor} makes a recursive structure; refer to an anchor "
                                               f"only after its value ends")
            self._count(size, event.start_mark, event.anchor)
            return node
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > self.max_depth:
            self._refuse(mark, f"nested more than {self.max_depth} levels deep; flatten the structure")
        before = self._expanded
        self._count(1, mark)
        node = super().compose_node(parent, index)
        self._sizes[id(node)] = self._expanded - before
        self._depth -= 1
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the base class refuses it with its own message
                    continue
                if first is not key_node:
                    self._refuse(key_node.start_mark,
                                 f"duplicate key {key!r} (first at line {first.start_mark.line + 1}); keep one of "
                                 f"them (YAML would silently use the last)")
        return super().construct_mapping(node, deep=deep)


def safe_load(text, name: str = "<string>", max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH):
    """Parse one YAML document into plain data (as ``yaml.safe_load``), within the bounds.

    Arguments:
        text: the YAML text (or an open text stream).
        name: the file name used in error messages.
        max_nodes: the most nodes the document may have with every alias expanded.
        max_depth: the deepest nesting allowed.

    Returns:
        the data (dicts, lists, strings, numbers, booleans, None, dates), ``None`` for an empty
        document.

    Raises:
        YAMLInputError: a duplicate key, too many nodes after alias expansion, a recursive alias,
            nesting too deep; one line ``name:line:column: problem; what to do``.
        yaml.YAMLError: a syntax error (PyYAML's own, with its mark).

    Example:
        >>> safe_load("base: &b {lr: 0.1}\\nrun: {<<: *b, lr: 0.2}\\n")["run"]
        {'lr': 0.2}
    """
    loader = BoundedSafeLoader(text, name=name, max_nodes=max_nodes, max_depth=max_depth)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def safe_load_file(path, **bounds):
    """:func:`safe_load` of the file ``path`` (UTF-8), errors naming it.

    Raises:
        OSError: the file cannot be read. YAMLInputError, yaml.YAMLError: as :func:`safe_load`.
    """
    return safe_load(Path(path).read_text(encoding="utf-8"), name=str(path), **bounds)

"""The package's folders are its layers: imports point one way and form no cycle.

Layers, lowest first (docs/ARCHITECTURE.md draws them)::

    util < engine < data < method < run < {analysis, report} < pipeline < bench < trlearner (cli, API)

A module may import its own folder and any lower layer; ``analysis`` and ``report`` are peers
and do not import each other. Every import counts, the lazy ones inside functions too (a lazy
import still ties the two modules together; it only changes when the cost is paid). The one
upward edge allowed is ``from trlearner import __version__``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "trlearner"
LAYERS = ("util", "engine", "data", "method", "run", ("analysis", "report"), "pipeline", "bench")
RANK = {name: rank for rank, layer in enumerate(LAYERS)
        for name in (layer if isinstance(layer, tuple) else (layer,))}
TOP = len(LAYERS)  # trlearner/__init__.py, cli.py, __main__.py


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def folder(module: str) -> str | None:
    """The layer folder of a module (``trlearner.run.train`` -> ``run``); None for the top."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def rank(module: str) -> int:
    f = folder(module)
    return TOP if f is None else RANK[f]


def resolve(name: str) -> str:
    """The module an imported dotted name lives in (``trlearner.x.y`` -> itself if a module, else
    its nearest module parent)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(module: str) -> list[tuple[str, int, set[str]]]:
    """Every ``trlearner`` import of a module: (target module, line, names imported)."""
    path = MODULES[module]
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(resolve(a.name), node.lineno, set()) for a in node.names if a.name.split(".")[0] == "trlearner"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] != "trlearner":
                continue
            names = {a.name for a in node.names}
            subs = [f"{name}.{n}" for n in names if f"{name}.{n}" in MODULES]  # from pkg import module
            rest = names - {s.rpartition(".")[2] for s in subs}
            found += [(s, node.lineno, set()) for s in subs]
            if rest or not subs:
                found.append((resolve(name), node.lineno, rest))
    return [(t, line, names) for t, line, names in found if t != module]


GRAPH = {m: imports(m) for m in MODULES}


def test_the_layers_are_the_folders():
    """Every sub-folder of the package is a layer, and the top level holds only the entry points."""
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(RANK), f"folders {sorted(folders)} != layers {sorted(RANK)}: update LAYERS and docs/ARCHITECTURE.md"
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "cli.py"], f"loose modules at the top: {loose}"


def test_no_upward_import():
    bad = []
    for module, edges in GRAPH.items():
        for target, line, names in edges:
            if target == "trlearner" and names <= {"__version__"}:
                continue
            same = folder(target) == folder(module)  # one folder, or both entry points at the top
            if not same and rank(target) >= rank(module):
                bad.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}: {module} imports {target}")
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components of more than one module."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_strongly_connected_finds_a_planted_cycle():
    """The cycle finder itself: a -> b -> c -> a is found, the tail d -> a is not part of it."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph = {m: {t for t, _, _ in edges} for m, edges in GRAPH.items()}
    cycles = strongly_connected(graph)
    assert not cycles, "modules that import each other (directly or round about):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("layer", sorted(RANK))
def test_each_folder_says_what_it_owns_and_may_import(layer):
    """Each layer's ``__init__`` docstring has ``Owns:`` and ``May import:``; the latter names
    exactly the layers below it."""
    doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text())) or ""
    assert "Owns:" in doc, f"{layer}/__init__.py: say what the folder owns ('Owns: ...')"
    match = re.search(r"May import:(.*?)(?:\n\n|\Z)", doc, re.S)
    assert match, f"{layer}/__init__.py: say what the folder may import ('May import: ...')"
    named = set(re.findall(r"trlearner\.(\w+)", match.group(1)))
    allowed = {n for n, r in RANK.items() if r < RANK[layer]}
    assert named == allowed, f"{layer}/__init__.py says it may import {sorted(named)}; the layers below it are {sorted(allowed)}"


def test_architecture_doc_names_every_layer():
    """docs/ARCHITECTURE.md's table has a row for each layer folder (and none that is gone)."""
    doc = (PACKAGE.parents[1] / "docs" / "ARCHITECTURE.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)/` \|", doc, re.M))
    assert rows == set(RANK), f"docs/ARCHITECTURE.md rows {sorted(rows)} != layers {sorted(RANK)}"


# Imports by name (importlib.import_module, __import__) are invisible to the import graph above
# and to trlearner.pipeline.sources.executed_modules (which decides what reruns a training job).
# Each module that makes one is listed here with the modules it can reach, read from its own
# tables, so that the layer rule holds for them too and a new one fails until it is listed.
def _dynamic_targets() -> dict[str, set[str]]:
    import trlearner
    import trlearner.analysis.cli as analysis_cli
    import trlearner.cli as top_cli
    import trlearner.report as report
    from trlearner.engine.algorithms.names import ALGORITHMS

    return {
        "trlearner": set(trlearner._EXPORTS.values()),  # the lazy public API (PEP 562)
        "trlearner.cli": {module for module, _ in top_cli.COMMANDS.values()},  # one per subcommand
        "trlearner.report": set(report._EXPORTS.values()),
        "trlearner.analysis.cli": {f"trlearner.analysis.{name}" for name in analysis_cli.ANALYSES},
        "trlearner.engine.algorithms": {f"trlearner.engine.algorithms.{name}" for name in ALGORITHMS},
    }


def imports_by_name(module: str) -> list[int]:
    """Lines of ``module`` that import a module by name: ``import_module(...)`` or ``__import__(...)``."""
    lines = []
    for node in ast.walk(ast.parse(MODULES[module].read_text(), str(MODULES[module]))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("import_module", "__import__"):
                lines.append(node.lineno)
    return lines


def test_every_import_by_name_is_listed_and_points_down():
    targets = _dynamic_targets()
    found = {m for m in MODULES if imports_by_name(m)}
    assert found == set(targets), (
        f"modules importing by name: {sorted(found)}, listed: {sorted(targets)}; a new one hides its "
        "imports from the layer check and from the training jobs' code inputs: import normally, or list it")
    bad = [f"{m} imports {t} by name" for m, ts in targets.items() for t in sorted(ts)
           if t not in MODULES or (folder(t) != folder(m) and rank(t) >= rank(m))]
    assert not bad, "imports by name that point up or sideways, or at no module:\n" + "\n".join(bad)


def test_a_bare_import_of_the_package_reads_only_the_version():
    """``import trlearner`` inside a layer gives every module through attribute access
    (``trlearner.report.x``) without an import edge: only ``trlearner.__version__`` may follow."""
    bad = []
    for module, path in MODULES.items():
        if folder(module) is None:
            continue
        tree = ast.parse(path.read_text(), str(path))
        if not any(isinstance(n, ast.Import) and any(a.name == "trlearner" and a.asname is None for a in n.names)
                   for n in ast.walk(tree)):
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "trlearner" and node.attr != "__version__"):
                bad.append(f"{module}:{node.lineno}: trlearner.{node.attr}")
    assert not bad, "attributes of a bare `import trlearner` other than __version__:\n" + "\n".join(bad)


def test_the_import_checks_catch_a_planted_import_by_name(tmp_path, monkeypatch):
    """The checks above fail on the real input: a report module importing the pipeline by name."""
    monkeypatch.setitem(MODULES, "trlearner.report._planted_by_test", tmp_path / "planted.py")
    (tmp_path / "planted.py").write_text("import importlib\nimportlib.import_module('trlearner.pipeline.jobs')\n")
    with pytest.raises(AssertionError, match="trlearner.report._planted_by_test"):
        test_every_import_by_name_is_listed_and_points_down()
    (tmp_path / "planted.py").write_text("import trlearner\nx = trlearner.pipeline\n")
    with pytest.raises(AssertionError, match="trlearner.pipeline"):
        test_a_bare_import_of_the_package_reads_only_the_version()


def test_no_private_name_is_imported_from_another_module():
    """A ``_name`` is its module's own: another module that needs it needs a public helper
    (the single and stacked trainers used to import five private helpers of train.py).
    Dunder names (``__version__``) are public."""
    private = lambda n: n.startswith("_") and not (n.startswith("__") and n.endswith("__"))  # noqa: E731
    bad = [f"{m}:{line} imports {sorted(filter(private, names))} from {t}"
           for m, edges in GRAPH.items() for t, line, names in edges if any(map(private, names))]
    assert not bad, "\n".join(bad)

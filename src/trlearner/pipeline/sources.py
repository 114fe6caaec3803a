"""The source files each kind of job depends on.

Snakemake does not rerun a job when a module it imports changes unless that module is one of
its inputs, so every job lists the code it runs as inputs, named relative to the repository
root (``src/trlearner/...``; Snakemake runs there). The lists are never kept by hand:

- a training run: the modules its command executes, derived from the imports
  (:func:`executed_modules`: ``trlearner.run.cli`` and ``trlearner.run.stacked`` and every
  package module they import, directly or not, at module level or lazily inside a function,
  with the ``__init__.py`` of every package on the way). So an edit of ``method/regularizers.py``,
  which every baseline run executes, reruns the baselines too. The registry imports an
  algorithm's module by name (``engine/algorithms/<name>.py``, the one a run asks for), which
  the import statements do not show: a run's own algorithm module is an entry too, so an edit
  of one algorithm reruns only its runs. Not the report, the analyses or the pipeline: none of
  them is imported by a run.
- the report: every ``.py`` under ``report/``; an analysis: every ``.py`` under ``analysis/``.
- the episode gallery: ``report/gallery.py`` and the ``report/`` modules it imports (directly
  or through another of them), so that editing the report's text does not redraw it.

Example::

    >>> files = train_sources("maml", trlearner=False)
    >>> f"{SRC}/engine/algorithms/maml.py" in files, f"{SRC}/engine/algorithms/anil.py" in files
    (True, False)
    >>> f"{SRC}/method/regularizers.py" in files, any(f.startswith(f"{SRC}/report/") for f in files)
    (True, False)
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = "src/trlearner"
PACKAGE = Path(__file__).resolve().parents[1]  # the trlearner package these names point into
# data/ parts that are not run code: fetching (download, verify, convert) and the `data` commands
DATA_EXCLUDED = ("fetch", "cli.py")


def folder_sources(folder: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """Every ``.py`` file under ``trlearner/<folder>/`` (recursively, sorted), except those under
    its sub-folders or top-level files ``exclude``, as ``src/trlearner/...`` paths."""
    root = PACKAGE / folder
    files = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if rel.parts[0] in exclude or "__pycache__" in rel.parts:
            continue
        files.append(f"{SRC}/{folder}/{rel.as_posix()}")
    return files


#: The modules a training job starts from: the command (`trlearner train` and the pipeline's
#: train job run ``trlearner.run.cli``; stacked jobs ``trlearner.run.stacked``).
TRAIN_ENTRIES = ("trlearner.run.cli", "trlearner.run.train", "trlearner.run.stacked")


def _module_file(name: str) -> Path | None:
    """The file of package module ``name`` (``trlearner.a.b``), or None when it is not one."""
    base = PACKAGE.parent / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def executed_modules(entries=TRAIN_ENTRIES) -> list[str]:
    """Every package module that importing ``entries`` and calling their functions can execute:
    the transitive closure of their ``import``/``from ... import`` statements (module level and
    inside functions: a lazy import runs when its function does), each module's parent
    packages included, as ``src/trlearner/...`` paths, sorted.

    Example::

        >>> f"{SRC}/run/train.py" in executed_modules(), f"{SRC}/report/render.py" in executed_modules()
        (True, False)
    """
    seen: dict[str, Path] = {}
    todo = list(entries)
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("trlearner")]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.startswith("trlearner"):
                    todo.append(base)
                    todo += [f"{base}.{a.name}" for a in node.names]  # a submodule imported by name
    return sorted(f"{SRC}/{p.relative_to(PACKAGE).as_posix()}" for p in seen.values())


def train_sources(algorithm: str, trlearner: bool) -> list[str]:
    """The source files a training run of ``algorithm`` executes: :func:`executed_modules` of
    the training entry points and the algorithm's own module (imported by name by
    ``trlearner.engine.algorithms.algorithm_class``). ``trlearner`` is kept for the callers:
    with or without TRLearner a run executes the same modules (``run/train.py`` imports ``method/``)."""
    return executed_modules(TRAIN_ENTRIES + (f"trlearner.engine.algorithms.{algorithm}",))


def report_sources() -> list[str]:
    """The report's code with the run-record reader, validator and statistics it reads the
    runs with (``run/records/``), and the format document the report copies beside REPORT.md
    (an edit of it alone must rerun the report, or the copy goes stale)."""
    return folder_sources("report") + folder_sources("run/records") + [f"{SRC}/report/REPORT_FORMAT.md"]


def analysis_sources() -> list[str]:
    """The analyses' code (every analysis: they share ``analysis/common.py``) with the
    run-record reader, validator and statistics they share with the report (``run/records/``)."""
    return folder_sources("analysis") + folder_sources("run/records")


def gallery_sources() -> list[str]:
    """``report/gallery.py`` and the ``report/`` modules it imports, directly or not."""
    return _imports_within("report", "gallery")


def _imports_within(folder: str, module: str) -> list[str]:
    """``trlearner/<folder>/<module>.py`` and the modules of ``folder`` it imports (any
    ``trlearner.<folder>.x`` or relative import, the lazy ones in functions too), transitively."""
    root = PACKAGE / folder
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = root / f"{name}.py"
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level == 1:
                    parts = base.split(".") if base else []
                elif base.startswith(f"trlearner.{folder}"):
                    parts = base.split(".")[2:]
                else:
                    continue
                todo += parts[:1] or [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                todo += [a.name.split(".")[2] for a in node.names
                         if a.name.startswith(f"trlearner.{folder}.")]
    return [f"{SRC}/{folder}/{name}.py" for name in sorted(seen)]

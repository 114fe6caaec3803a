"""The source files each kind of job depends on, by the package's folders.

Snakemake does not rerun a job when a module it imports changes unless that module is one of
its inputs, so every job lists the code it runs as inputs, named relative to the repository
root (``src/trlearner/...``; Snakemake runs there). The lists follow the layout (globbed: a new
file in a folder is picked up), never a hand-kept list of files:

- a training run: every ``.py`` under ``engine/`` (of ``engine/algorithms/<name>.py`` only its
  own algorithm's, so an edit of one algorithm reruns only its runs), ``run/`` and ``data/``
  except ``data/fetch/`` (the data's identity is its manifest, another input) and ``data/cli.py``; a TRLearner
  run (and every analysis run, which may use the other regularisers) also ``method/``. Not
  ``report/``, ``analysis/``, ``pipeline/``, ``bench/`` nor ``util/`` (command-line
  conventions): editing the report never reruns training.
- the report: every ``.py`` under ``report/``; an analysis: every ``.py`` under ``analysis/``.
- the episode gallery: ``report/gallery.py`` and the ``report/`` modules it imports (directly
  or through another of them), so that editing the report's text does not redraw it.

Example::

    >>> files = train_sources("maml", trlearner=True)
    >>> f"{SRC}/engine/algorithms/maml.py" in files, f"{SRC}/engine/algorithms/anil.py" in files
    (True, False)
    >>> any(f.startswith(f"{SRC}/report/") for f in files)
    False
"""

from __future__ import annotations

import ast
from pathlib import Path

from trlearner.pipeline.catalog import ALGORITHMS

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


def train_sources(algorithm: str, trlearner: bool) -> list[str]:
    """The source files a training run of ``algorithm`` executes (``trlearner``: with
    TRLearner, or any other regulariser of ``method/``)."""
    others = {f"{SRC}/engine/algorithms/{a}.py" for a in ALGORITHMS if a != algorithm}
    files = [f for f in folder_sources("engine") if f not in others]
    files += folder_sources("run") + folder_sources("data", exclude=DATA_EXCLUDED)
    if trlearner:
        files += folder_sources("method")
    return files


def report_sources() -> list[str]:
    """The report's code."""
    return folder_sources("report")


def analysis_sources() -> list[str]:
    """The analyses' code (every analysis: they share ``analysis/common.py``)."""
    return folder_sources("analysis")


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

"""Every docstring example in the package runs and prints what it shows (``doctest``).

The examples are the API's documentation (learn2learn's manner: Arguments, Returns,
References, Example); this keeps them true. They run from the repository root, as a reader
of the README would run them.
"""

from __future__ import annotations

import doctest
import importlib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "trlearner"
MODULES = sorted(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
                 for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def failures(module: types.ModuleType) -> tuple[int, str]:
    """(examples run, the report of those that failed: empty when all passed)."""
    runner, report = doctest.DocTestRunner(optionflags=FLAGS), []
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, module.__name__):
        runner.run(test, out=report.append)
    return runner.summarize(verbose=False).attempted, "".join(report)


def test_a_wrong_example_is_reported():
    planted = types.ModuleType("planted", '"""\n>>> 1 + 1\n3\n"""')
    planted.__doc__ = ">>> 1 + 1\n3\n"
    attempted, report = failures(planted)
    assert attempted == 1 and "Expected:\n    3\nGot:\n    2" in report


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    _, report = failures(importlib.import_module(name))
    assert not report, report

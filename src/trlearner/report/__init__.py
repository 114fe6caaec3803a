"""Reports: aggregate run records, compare with the paper, render tables and REPORT.md.

Reads results only; never trains. The run records are read, checked and summarised by
:mod:`trlearner.run.records` (``scan``, ``schema``, ``stats``), which the analyses share; the
exports below include them. Modules: ``reference`` (the packaged reference.yaml), ``tables``
(family tables in Markdown/LaTeX/HTML), ``render`` (REPORT.md), ``cli`` (the command),
``escape`` (every string of a results folder escaped for the format it is rendered in), ``files``
(every file written whole or not at all), ``admission`` (only the runs the preset expects, each
of its expected identity), ``calibration`` (each reading's baseline against the paper's, the
operating point) and ``sequential`` (the seed rule's answer per look).

Layer 5, ``report`` (a peer of ``analysis``; neither imports the other).
Owns: everything from results to REPORT.md, its tables, figures and the HTML pages.
May import: ``trlearner.run``, ``trlearner.method``, ``trlearner.data``, ``trlearner.engine``, ``trlearner.util``.

Example:
    >>> from trlearner.report import Reference
    >>> Reference.load().paper_value("sinusoid", "5shot", "maml", "baseline")["value"]
    0.593
"""

# Exported names and their modules, imported on first use (PEP 562): `import trlearner.report.cli`
# (the `trlearner report` parser) then costs no pandas or scipy.
_RECORDS = "trlearner.run.records"
_EXPORTS = {"Reference": f"{__name__}.reference", "summarize_claims": f"{__name__}.render",
            "write_report": f"{__name__}.render", "load_runs": f"{_RECORDS}.scan", "scan_runs": f"{_RECORDS}.scan",
            "aggregate_cells": f"{_RECORDS}.stats", "paired_differences": f"{_RECORDS}.stats",
            "t_halfwidth": f"{_RECORDS}.stats", "build_tables": f"{__name__}.tables",
            "render_family": f"{__name__}.tables", "resolve_cells": f"{__name__}.tables"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

"""Reports: aggregate run records, compare with the paper, render tables and REPORT.md.

Reads results only; never trains. Modules: ``runs`` (read metrics.json/provenance.json,
count each run once), ``schema`` (what a metrics.json must hold to be counted),
``reference`` (the packaged reference.yaml), ``stats`` (seeds, paired effects, power), ``tables``
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
_EXPORTS = {"Reference": "reference", "summarize_claims": "render", "write_report": "render",
            "load_runs": "runs", "scan_runs": "runs", "aggregate_cells": "stats",
            "paired_differences": "stats", "t_halfwidth": "stats", "build_tables": "tables",
            "render_family": "tables", "resolve_cells": "tables"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

"""Reports: aggregate run records, compare with the paper, render tables and REPORT.md.

Reads results only; never trains. Modules: ``runs`` (read metrics.json/provenance.json,
count each run once), ``schema`` (what a metrics.json must hold to be counted),
``reference`` (config/reference.yaml), ``stats`` (seeds, paired effects, power), ``tables``
(family tables in Markdown/LaTeX/HTML), ``render`` (REPORT.md), ``cli`` (the command).

Example:
    >>> from trlearner.report import Reference
    >>> Reference.load().paper_value("sinusoid", "5shot", "maml", "baseline")["value"]
    0.593
"""

from .reference import Reference
from .render import summarize_claims, write_report
from .runs import load_runs, scan_runs
from .stats import aggregate_cells, paired_differences, t_halfwidth
from .tables import build_tables, render_family, resolve_cells

__all__ = ["Reference", "aggregate_cells", "build_tables", "load_runs", "paired_differences",
           "render_family", "resolve_cells", "scan_runs", "summarize_claims", "t_halfwidth",
           "write_report"]

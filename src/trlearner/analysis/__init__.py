"""The paper's analyses (TRLEARNER.md section 4, issue 6), each from run folders to a figure
(PNG, PDF), a CSV, a caption and ``summary.json``. See docs/ANALYSES.md.

- :mod:`~trlearner.analysis.plan`: which runs each analysis needs (``analysis_runs``).
- :mod:`~trlearner.analysis.cli`: ``trlearner analysis <name> --runs DIR --out DIR``.
- one module per analysis: motivation, depth, relations, tradeoff, sensitivity.

Layer 5, ``analysis`` (a peer of ``report``; neither imports the other).
Owns: the analyses, from run folders to their outputs.
May import: ``trlearner.run``, ``trlearner.method``, ``trlearner.data``, ``trlearner.engine``, ``trlearner.util``.
"""

from trlearner.analysis.plan import ANALYSES, analysis_outputs, analysis_runs

__all__ = ["ANALYSES", "analysis_outputs", "analysis_runs"]

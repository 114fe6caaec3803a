"""Run records read back: one home for what a finished run folder says, shared by the report
(:mod:`trlearner.report`) and the analyses (:mod:`trlearner.analysis`), so that the same cell gets
the same numbers and the same CI everywhere.

- :mod:`.scan`: the folder layout (``<dataset>/<setting>/<algorithm>/<variant>/seed<k>``) and the
  one reader of ``metrics.json`` + ``provenance.json`` (each run counted once, every skipped
  folder named with its reason);
- :mod:`.schema`: the one validator (what a ``metrics.json`` must hold to be counted; the stored
  mean and CI are recomputed from ``per_task``, :func:`.scan.stored_figures_problems`);
- :mod:`.stats`: the one statistics module (mean and 95 % CI of a cell, :func:`.stats.cell_ci`;
  paired effects, power, seeds for a target precision).

The records are written by :mod:`trlearner.run.record`. Reading them needs pandas and scipy, not
torch.
"""

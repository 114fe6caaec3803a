"""Layer 4, ``run``: one training run, from its options to its run folder.

Owns: :mod:`.protocols` (the baselines' settings per dataset), :mod:`.readings` (named readings
of a protocol, each value with its source: the calibration), :mod:`.train` (meta-train and
evaluate), :mod:`.stacked` (the seeds of one cell in one process), :mod:`.results`
(metrics.json, provenance), :mod:`.folder` (what may be a run folder, atomic writes, checked
checkpoints, the run lock), :mod:`.seeds` (the seed range), :mod:`.progress` (a bar on a terminal,
plain progress lines in a log) and :mod:`.cli` (``trlearner train``).
May import: ``trlearner.method``, ``trlearner.data``, ``trlearner.engine``, ``trlearner.util``.
"""

"""Layer 4, ``run``: one training run, from its options to its run folder.

Owns: :mod:`.protocols` (the baselines' settings per dataset), :mod:`.readings` (named readings
of a protocol, each value with its source: the calibration), :mod:`.config` (a run's settings,
filled from its protocol and checked), :mod:`.model` (what a run meta-trains: algorithm,
TRLearner, initial meta-parameters, outer Adam, meta-objective), :mod:`.evaluation` (the test
and validation curves on fixed episodes), :mod:`.session` (a run folder's session: lock,
``log.txt``, another run's results, temporary files, checkpoints and resume), :mod:`.train` (the
single run's loop), :mod:`.stacked` (the seeds of one cell in one process), :mod:`.record`
(a run's metrics.json, provenance.json and relation.pt), :mod:`.results` (the record formats:
standard JSON, summaries, provenance), :mod:`.records` (the records read back, checked and
summarised: one reader, validator and statistics module for the report and the analyses), :mod:`.folder` (what may be a run folder, atomic
writes, checked checkpoints, the run lock), :mod:`.seeds` (the seed range), :mod:`.progress` (a
bar on a terminal, plain progress lines in a log), :mod:`.learning` (whether a run learned)
and :mod:`.cli` (``trlearner train``).
May import: ``trlearner.method``, ``trlearner.data``, ``trlearner.engine``, ``trlearner.util``.
"""

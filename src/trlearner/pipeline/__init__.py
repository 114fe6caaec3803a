"""Layer 6, ``pipeline``: what the Snakemake workflow calls.

Owns: one module a responsibility (lowest first; none imports this package's ``__init__``):
:mod:`.catalog` (what a config may name: the data registry's datasets, algorithms, variants),
:mod:`.schema` (``config.schema.yaml``, the config's keys), :mod:`.sources` (the source files
a job executes, from the imports), :mod:`.matrix` (the run matrix of a config: :class:`~.matrix.Run`,
each run's identity, the preset's roots), :mod:`.published` (the committed records of finished
runs: publish, spot-check, the README's verdict table),
:mod:`.sequential` (the sequential seed rule's arms and the runs its decisions ask for),
:mod:`.check` (the config check, ``ConfigError``), :mod:`.estimate` (time estimates),
:mod:`.dvc` (params.yaml, dvc.lock entries), :mod:`.gpu` (a job's claim on one GPU),
:mod:`.jobs` (the jobs rules run) and :mod:`.cli` (``python -m trlearner.pipeline``, the
one command of every rule).
May import: ``trlearner.report``, ``trlearner.analysis``, ``trlearner.run``, ``trlearner.method``,
``trlearner.data``, ``trlearner.engine``, ``trlearner.util``.
"""

"""Layer 6, ``pipeline``: what the Snakemake workflow calls.

Owns: :mod:`.core` (the run matrix of a config, the config check, time estimates and the job
wrappers that rules run) and :mod:`.gpu` (a job's claim on one GPU).
May import: ``trlearner.report``, ``trlearner.analysis``, ``trlearner.run``, ``trlearner.method``,
``trlearner.data``, ``trlearner.engine``, ``trlearner.util``.
"""

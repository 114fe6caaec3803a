"""Layer 7, ``bench``: the benchmark suite (``trlearner bench``).

Owns: :mod:`.suite` (meta-iteration time, memory, TRLearner overhead), :mod:`.reference`
(an independent ``torch.func`` MAML to compare against), :mod:`.episodes` (episode loading
rate), :mod:`.pipeline` (Snakemake's no-op and scheduling overhead), :mod:`.runlog` (where a
Snakemake run's time went, per rule, from its log) and :mod:`.timing` (how a function is timed:
``torch.utils.benchmark.Timer``).
May import: ``trlearner.pipeline``, ``trlearner.report``, ``trlearner.analysis``, ``trlearner.run``,
``trlearner.method``, ``trlearner.data``, ``trlearner.engine``, ``trlearner.util``.
"""

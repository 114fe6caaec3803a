"""Layer 3, ``method``: TRLearner and the other regularisers that plug into the engine.

Owns: :mod:`.relation` (the Task Relation Learner: meta-data sampler, relation heads, L_TR),
:mod:`.trconfig` (its settings and their defaults, ``TRConfig``, without torch)
and :mod:`.regularizers` (the comparison regularisers of the paper's tables).
May import: ``trlearner.engine``, ``trlearner.data`` (the task-batch contract), ``trlearner.util``.
"""

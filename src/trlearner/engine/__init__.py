"""Layer 1, ``engine``: the functional meta-learning core. No I/O, no files, no data sources.

Owns: :mod:`.backbones` (parameter-dict networks), :mod:`.algorithms` (MAML, ANIL, Meta-SGD,
T-NET, ProtoNet on one interface; their table, :mod:`.algorithms.names`) and :mod:`.core` (the meta-loss of a task batch, tasks
batched with ``torch.func.vmap``).
May import: ``trlearner.util``.
"""

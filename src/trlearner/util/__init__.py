"""Layer 0, ``util``: helpers every layer may use (command-line conventions, safe file writes,
inter-process locks).

Owns: :mod:`.cli` (help with defaults, ``--version``, ``-q``, logging while a command runs),
:mod:`.yamlsafe` (the one YAML loader: duplicate keys, alias expansion and nesting bounded),
:mod:`.atomic` (the one atomic write: temporary file, fsync, rename; every whole-file write) and
:mod:`.locks` (the ``filelock`` locks of a GPU claim, a fetch and a run folder).
May import: nothing of trlearner.
"""

"""Layer 0, ``util``: helpers every layer may use (command-line conventions, safe file writes).

Owns: :mod:`.cli` (help with defaults, ``--version``, ``-q``, logging while a command runs),
:mod:`.yamlsafe` (the one YAML loader: duplicate keys, alias expansion and nesting bounded) and
:mod:`.atomic` (the one atomic write: temporary file, fsync, rename; every whole-file write).
May import: nothing of trlearner.
"""

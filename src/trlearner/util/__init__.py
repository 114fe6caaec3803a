"""Layer 0, ``util``: helpers every layer may use (command-line conventions).

Owns: :mod:`.cli` (help with defaults, ``--version``, ``-q``, logging while a command runs) and
:mod:`.yamlsafe` (the one YAML loader: duplicate keys, alias expansion and nesting bounded).
May import: nothing of trlearner.
"""

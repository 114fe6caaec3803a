"""The ``trlearner`` command (also ``python -m trlearner``).

Subcommands: ``train`` (one run), and those registered by the other parts of the package
(``data``, ``report``, ``bench``). Example::

    python -m trlearner train --dataset sinusoid --algorithm maml --shots 5 --seed 0 --out results/try
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add a subcommand with ``register(subparsers)``; each sets ``func`` on its parser.
SUBCOMMAND_MODULES = ("trlearner.train_cli", "trlearner.data.cli", "trlearner.report.cli",
                      "trlearner.bench", "trlearner.analysis.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trlearner", description="Meta-learning with and without TRLearner: train, data, bench, report.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

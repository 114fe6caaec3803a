"""The ``trlearner`` command (also ``python -m trlearner``).

Subcommands: ``train`` (one run), ``data``, ``report``, ``analysis`` and ``bench``. Options go
before or after the subcommand's own words (``trlearner data fetch X --data-root D`` and
``trlearner data --data-root D fetch X`` are the same); ``-q/--quiet`` works at every level.
Example::

    python -m trlearner train --dataset sinusoid --algorithm maml --shots 5 --seed 0 --out results/try

Start-up is cheap: building the parser imports only the chosen subcommand's module, and none
of them imports torch, pandas, scipy or matplotlib before its command runs (``bench`` is the
exception: it is all torch). ``trlearner --help`` lists every subcommand without importing any.

Logging: library modules log to ``logging.getLogger("trlearner.<module>")`` and never print.
While a command runs, :func:`main` sends the ``trlearner`` loggers to stderr, INFO and up
(``-q``: WARNING and up, and no progress bars), and removes that handler afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from trlearner.util.cli import VersionAction, finish_parser, print_usage_exit, run_command

# name: (module whose ``register(subparsers)`` adds the command and sets ``func``, one-line help)
COMMANDS = {
    "train": ("trlearner.run.cli", "meta-train and evaluate one run"),
    "data": ("trlearner.data.cli", "list, fetch and verify datasets"),
    "report": ("trlearner.report.cli", "render REPORT.md and tables from results"),
    "analysis": ("trlearner.analysis.cli", "one of the paper's analyses (figure, CSV, caption, summary)"),
    "bench": ("trlearner.bench.suite", "benchmark suite: meta-iteration time, memory, loading"),
}
ALL = "all"  # build_parser(): define every command


def build_parser(command: str | None = ALL) -> argparse.ArgumentParser:
    """The ``trlearner`` parser. Every subcommand is listed; only the modules of the commands
    defined are imported (the others are placeholders that cannot parse anything). :func:`main`
    defines only the command it was given, so that ``--help`` imports none of them.

    Arguments:
        command: the subcommand to define fully (a key of :data:`COMMANDS`), :data:`ALL`
            (the default: every one; ``bench`` imports torch) or None (none).

    Returns:
        An ``argparse.ArgumentParser``; ``parse_args`` gives ``command``, ``quiet`` and ``func``.

    Example:
        >>> build_parser("data").parse_args(["data", "fetch", "omniglot_small", "--data-root", "D"]).data_root
        'D'
    """
    parser = argparse.ArgumentParser(
        prog="trlearner", description="Meta-learning with and without TRLearner: train, data, report, "
                                      "analysis, bench. `trlearner COMMAND --help` shows a command's options.")
    parser.add_argument("--version", action=VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, text) in COMMANDS.items():
        if command in (name, ALL):
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=text, add_help=False)
    parser.set_defaults(func=lambda args: print_usage_exit(parser))
    return finish_parser(parser)


def _command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``: its first word that is not an option (the top-level
    options take no value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    """``trlearner ARGV``: parse, run the chosen command, return its exit status.

    Example:
        >>> import contextlib, io
        >>> with contextlib.redirect_stderr(io.StringIO()) as err:
        ...     rc = main(["data"])
        >>> rc, err.getvalue().startswith("usage: trlearner data")
        (2, True)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command(argv))
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

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
import contextlib
import importlib
import logging
import os
import sys

# name: (module whose ``register(subparsers)`` adds the command and sets ``func``, one-line help)
COMMANDS = {
    "train": ("trlearner.train_cli", "meta-train and evaluate one run"),
    "data": ("trlearner.data.cli", "list, fetch and verify datasets"),
    "report": ("trlearner.report.cli", "render REPORT.md and tables from results"),
    "analysis": ("trlearner.analysis.cli", "one of the paper's analyses (figure, CSV, caption, summary)"),
    "bench": ("trlearner.bench", "benchmark suite: meta-iteration time, memory, loading"),
}
QUIET_HELP = "warnings and errors only, no progress bars"
ALL = "all"  # build_parser(): define every command


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already names its default,
    the default is None (then the help must say what happens) or the option is a plain flag."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is None or action.nargs == 0:
            return text
        return super()._get_help_string(action)


class _Version(argparse.Action):
    """``--version``: looked up only when asked (``importlib.metadata`` scans the installed packages)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {version()}")  # stdout, as argparse's own version action
        parser.exit()


def version() -> str:
    """The installed distribution's version (``importlib.metadata``), else ``trlearner.__version__``.

    Example:
        >>> import trlearner
        >>> version() == trlearner.__version__  # an installed checkout agrees with the package
        True
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("trlearner")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from trlearner import __version__

        return __version__


def finish_parser(parser: argparse.ArgumentParser, top: bool = True) -> argparse.ArgumentParser:
    """Give ``parser`` and every parser under it the :class:`HelpFormatter` and ``-q/--quiet``.

    The top parser's ``--quiet`` defaults to False; the lower ones default to
    ``argparse.SUPPRESS``, so a ``-q`` given before a subcommand is not undone by the
    subcommand's default (argparse copies a subparser's defaults over its parent's values).

    Arguments:
        parser: a parser whose subcommands are registered.
        top: whether ``parser`` is the outermost parser.

    Returns:
        ``parser``.

    Example:
        >>> p = argparse.ArgumentParser(prog="x")
        >>> s = p.add_subparsers(dest="cmd").add_parser("run")
        >>> finish_parser(p).parse_args(["-q", "run"]).quiet, p.parse_args(["run", "-q"]).quiet
        (True, True)
    """
    parser.formatter_class = HelpFormatter
    if "--quiet" not in parser._option_string_actions:
        parser.add_argument("-q", "--quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                            help=QUIET_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                finish_parser(sub, top=False)
    return parser


def print_usage_exit(parser: argparse.ArgumentParser) -> int:
    """For a command given without its subcommand: its help on stderr, exit status 2."""
    parser.print_help(sys.stderr)
    return 2


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
    parser.add_argument("--version", action=_Version, help="print the version and exit")
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


class _Stderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is at the time (tests and callers swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class _Format(logging.Formatter):
    """INFO as the plain message; WARNING and up prefixed ``warning: `` / ``error: ``."""

    def format(self, record):
        msg = super().format(record)
        return msg if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {msg}"


@contextlib.contextmanager
def logging_to_stderr(quiet: bool = False):
    """Send the ``trlearner`` loggers to stderr for the duration of the block (INFO and up;
    WARNING and up when ``quiet``), then restore the logger as it was.

    Example:
        >>> import contextlib, io
        >>> err = io.StringIO()
        >>> with contextlib.redirect_stderr(err), logging_to_stderr(quiet=True):
        ...     logging.getLogger("trlearner.x").info("hidden")
        ...     logging.getLogger("trlearner.x").warning("shown")
        >>> err.getvalue()
        'warning: shown\\n'
    """
    log = logging.getLogger("trlearner")
    handler, level = _Stderr(), log.level
    handler.setFormatter(_Format())
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        yield log
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def run_command(args: argparse.Namespace) -> int:
    """Run parsed ``args`` (their ``func``) with logging to stderr; returns the exit status."""
    with logging_to_stderr(getattr(args, "quiet", False)):
        try:
            return int(args.func(args) or 0)
        except BrokenPipeError:  # `trlearner data list | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141


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

"""Command-line conventions shared by every ``trlearner`` subcommand.

Help with defaults (:class:`HelpFormatter`), ``--version``, ``-q/--quiet`` at every level
(:func:`finish_parser`), logging to stderr while a command runs (:func:`logging_to_stderr`) and
running a parsed command (:func:`run_command`). Imports nothing of trlearner at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

QUIET_HELP = "warnings and errors only, no progress bars"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already names its default,
    the default is None (then the help must say what happens) or the option is a plain flag."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is None or action.nargs == 0:
            return text
        return super()._get_help_string(action)


class VersionAction(argparse.Action):
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


def os_error_line(err: OSError) -> str | None:
    """One line for an ``OSError`` the user can act on (a full disk, a read-only or forbidden
    folder, a file name too long): what failed, on which file, and what to do. None for any
    other error (a bug: its traceback is wanted).

    Example:
        >>> import errno
        >>> os_error_line(OSError(errno.ENAMETOOLONG, "File name too long", "/r/" + "x" * 300))[-74:]
        '(300 bytes) is longer than 255 bytes, the limit of a file name: shorten it'
    """
    import errno

    where = err.filename2 if getattr(err, "filename2", None) is not None else err.filename
    where = os.fsdecode(where) if where is not None else "a file"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = os.path.dirname(where) or "."
        try:
            import shutil

            free = f" ({shutil.disk_usage(folder).free} bytes free)"
        except OSError:
            free = ""
        return (f"no space left on the disk of {folder}{free} while writing {where}: free space there (or "
                f"write to another disk), then rerun the same command")
    if err.errno == errno.EROFS:
        return f"cannot write {where}: it is on a read-only file system; use a writable folder"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {where}; use a folder you may write to, or change its permissions"
    if err.errno == errno.ENAMETOOLONG:
        long = max(where.split(os.sep), key=len)
        return (f"cannot write {where}: its part '{long[:40]}...' ({len(long.encode())} bytes) is longer than "
                f"255 bytes, the limit of a file name: shorten it")
    return None


def run_command(args: argparse.Namespace) -> int:
    """Run parsed ``args`` (their ``func``) with logging to stderr; returns the exit status.

    A full disk, a read-only or forbidden folder and a file name too long end in one line naming
    the file and what to do (:func:`os_error_line`), exit 1; Ctrl-C in ``interrupted``, exit 130
    (no traceback: every command's files are written atomically)."""
    with logging_to_stderr(getattr(args, "quiet", False)):
        try:
            return int(args.func(args) or 0)
        except BrokenPipeError:  # `trlearner data list | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except OSError as err:
            line = os_error_line(err)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted; rerun the same command to carry on", file=sys.stderr)
            return 130

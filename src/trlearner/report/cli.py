"""The ``report`` command: render REPORT.md and the tables from a results folder.

Standalone::

    python -m trlearner.report.cli --results results/runs --expected expected.json \\
        --figures reports/figures --out reports

From the main CLI: ``register(subparsers)`` adds ``trlearner report`` with the same options.

A results folder that does not exist, or holds no ``metrics.json``, is refused (exit 2):
there is nothing to report, and an empty REPORT.md would look like a finished reproduction.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> main(["--results", str(out / "none"), "--out", str(out / "reports")])  # doctest: +ELLIPSIS
    2
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the report options to ``parser``."""
    parser.add_argument("--results", default="results/runs",
                        help="folder of run folders holding metrics.json (default: results/runs)")
    parser.add_argument("--out", default="reports", help="output folder (default: reports)")
    parser.add_argument("--expected", default=None,
                        help="JSON list of expected cells {dataset, setting, algorithm, variant"
                             "[, seeds, reason, family]}; cells not found are listed as missing (default: none, only the "
                             "cells found are reported)")
    parser.add_argument("--figures", default=None, help="folder of PNG figures to embed (default: none)")
    parser.add_argument("--analyses", default=None,
                        help="folder of analysis folders (figure, CSV, summary.json each) (default: none)")
    parser.add_argument("--gallery", default=None,
                        help="folder of episode pictures (python -m trlearner.report.gallery) (default: none)")
    parser.add_argument("--reference", default=None,
                        help="reference numbers YAML (default: the packaged trlearner/report/reference.yaml)")
    parser.add_argument("--relative-to", default=None,
                        help="base folder for run and log paths printed in the report "
                             "(default: current directory)")
    return parser


def check_results(results) -> str | None:
    """Why ``results`` cannot be reported (missing, not a folder, no ``metrics.json`` under it
    nor under its sibling ``ablations``), or None."""
    from pathlib import Path

    path = Path(results)
    if next((path.parent / "ablations").rglob("metrics.json"), None) is not None and not path.is_file():
        return None  # a preset of ablations only (config/calibration.yaml): its sibling has the runs
    if not path.exists():
        return (f"--results {results} does not exist; allowed: a folder of run folders holding "
                f"metrics.json (e.g. results/runs after `make run`)")
    if not path.is_dir():
        return f"--results {results} is a file; allowed: a folder of run folders holding metrics.json"
    if next(path.rglob("metrics.json"), None) is None:
        return (f"--results {results} holds no metrics.json, so there is no run to report; allowed: a "
                f"folder of run folders holding metrics.json (train first: `make run` or `trlearner train`)")
    return None


def run(args: argparse.Namespace) -> int:
    """Run the report command for parsed ``args``; returns the exit status."""
    from .render import write_report

    problem = check_results(args.results)
    if problem is None and args.expected is not None:  # before anything is written
        from .tables import load_expected

        try:
            load_expected(args.expected)
        except ValueError as err:
            problem = str(err)
    if problem:
        print(f"trlearner report: error: {problem}", file=sys.stderr)
        return 2
    try:
        path = write_report(args.results, args.out, expected=args.expected,
                            figures_dir=args.figures, analyses_dir=args.analyses,
                            gallery_dir=getattr(args, "gallery", None),
                            reference=args.reference, relative_to=args.relative_to)
    except (OSError, ValueError) as err:
        from trlearner.util.cli import os_error_line

        line = os_error_line(err) if isinstance(err, OSError) else None  # full disk: the file, what to do
        print(f"trlearner report: error: {line or err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to a main CLI's subparsers; sets ``func=run``."""
    parser = subparsers.add_parser("report", help="render REPORT.md and tables from results",
                                   description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m trlearner.report.cli [options]``."""
    from trlearner.util.cli import finish_parser, run_command

    parser = add_arguments(argparse.ArgumentParser(prog="trlearner report",
                                                   description=__doc__.split("\n\n")[0]))
    parser.set_defaults(func=run)
    return run_command(finish_parser(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

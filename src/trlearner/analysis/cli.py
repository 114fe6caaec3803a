"""``trlearner analysis <name>``: one of the paper's analyses from its run folders.

    python -m trlearner analysis depth --runs results/analyses/depth --out reports/analyses/depth
    python -m trlearner.analysis.cli depth --runs ... --out ...      # the same, standalone

Writes ``analysis_outputs(name)`` into ``--out``. Works from partial results: missing or
unfinished runs are listed in the caption and ``summary.json``. ``--scale FILE`` (YAML or
JSON: the scale dict, or a config holding it under ``analyses``) names the planned runs, so
that runs never started are listed as missing too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from trlearner.analysis.plan import ANALYSES, ROOT, analysis_outputs, analysis_runs


def expected_runs(name: str, scale: dict) -> list[str]:
    """Planned run folders of ``name``, relative to its ``--runs`` folder."""
    prefix = f"{ROOT}/{name}/"
    return [r["run_dir"][len(prefix):] for r in analysis_runs(scale, analyses=(name,))]


def load_scale(path) -> dict:
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        d = json.loads(text)
    else:
        from trlearner.util.yamlsafe import safe_load

        d = safe_load(text, name=str(path))
    return d.get("analyses", d) if isinstance(d, dict) else {}


def run_analysis(name: str, runs: str, out: str, scale: dict | None = None) -> dict:
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; choose one of: {', '.join(ANALYSES)}")
    mod = importlib.import_module(f"trlearner.analysis.{name}")
    expected = expected_runs(name, scale) if scale is not None else None
    return mod.analyse(runs, out, expected=expected)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=ANALYSES, help="which analysis")
    p.add_argument("--runs", help="its run folders (default: results/analyses/<name>)")
    p.add_argument("--out", help="output folder (default: reports/analyses/<name>)")
    p.add_argument("--scale", help="YAML/JSON with the scale dict (or a config with it under 'analyses'), "
                                   "to list planned runs that are missing (default: none; only the runs found are "
                                   "listed)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    runs = args.runs or f"{ROOT}/{args.name}"
    out = args.out or f"reports/analyses/{args.name}"
    scale = load_scale(args.scale) if args.scale else None
    s = run_analysis(args.name, runs, out, scale)
    print(f"{args.name}: {s['n_runs']} runs, {len(s['missing_runs'])} missing -> {out}/"
          f"{{{','.join(analysis_outputs(args.name))}}}")
    print(f"verdict: {s['verdict']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("analysis", help="one of the paper's analyses (figure, CSV, caption, summary)",
                              description=__doc__.split("\n\n")[0])
    _add_arguments(p)


def main(argv: list[str] | None = None) -> int:
    from trlearner.util.cli import finish_parser, run_command

    p = argparse.ArgumentParser(prog="python -m trlearner.analysis.cli", description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    return run_command(finish_parser(p).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

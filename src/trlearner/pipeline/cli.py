"""``python -m trlearner.pipeline``: the one command of the pipeline, the jobs the Snakemake
rules run and the helpers people run.

Jobs (each rule runs one; :mod:`trlearner.pipeline.jobs`)::

    python -m trlearner.pipeline train-job [--gpu-lock-dir D] -- ARGS   # ARGS: those of trlearner train
    python -m trlearner.pipeline stacked-job [--gpu-lock-dir D] -- ARGS # ARGS: python -m trlearner.run.stacked's
    python -m trlearner.pipeline fetch-data sinusoid --out FILE          # a dataset's manifest
    python -m trlearner.pipeline gallery --dataset omniglot_small --ways 5 --shots 1 --out DIR
    python -m trlearner.pipeline analysis depth --runs DIR --out DIR     # as trlearner analysis
    python -m trlearner.pipeline report --results DIR --out DIR ...      # as trlearner report
    python -m trlearner.pipeline expected --config C --out FILE          # the report's expected cells

Helpers::

    python -m trlearner.pipeline estimate --config config/default.yaml   # jobs and time per dataset
    python -m trlearner.pipeline check --config config/paper.yaml        # validate only
    python -m trlearner.pipeline dvc-params [--check]                     # params.yaml from the registry
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# jobs whose arguments are another command's, passed on as they are
PASS_ON = {"train-job": "run one training job (the options of `trlearner train` after --)",
           "stacked-job": "train the seeds of one chunk of a cell in one process (the options of "
                          "`python -m trlearner.run.stacked` after --)",
           "gallery": "draw one training and one test episode of a dataset (python -m trlearner.report.gallery)"}


def build_parser() -> argparse.ArgumentParser:
    from trlearner.pipeline.jobs import register_commands
    from trlearner.util.cli import finish_parser

    p = argparse.ArgumentParser(prog="python -m trlearner.pipeline",
                                description="The jobs of the Snakemake pipeline and its helpers.")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("estimate", help="job count and compute-time estimate per dataset")
    e.add_argument("--config", default="config/default.yaml")
    e.add_argument("--cores", type=int, default=2)
    c = sub.add_parser("check", help="validate a config (schema and dataset limits)")
    c.add_argument("--config", default="config/default.yaml")
    f = sub.add_parser("fetch-data", help="fetch a dataset and write its manifest")
    f.add_argument("dataset")
    f.add_argument("--out", required=True)
    f.add_argument("--data-root", default="data")
    d = sub.add_parser("dvc-params", help="write params.yaml (one DVC stage per registry dataset)")
    d.add_argument("--check", action="store_true", help="only check that params.yaml is up to date")
    d.add_argument("--params", default="params.yaml")
    x = sub.add_parser("expected", help="write the report's expected-cells JSON")
    x.add_argument("--config", default="config/default.yaml")
    x.add_argument("--out", required=True)
    for name, text in PASS_ON.items():
        sub.add_parser(name, help=text, add_help=False)
    register_commands(sub)  # analysis, report
    return finish_parser(p)


def _train_job(rest: list[str], stacked: bool = False) -> int:
    from trlearner.pipeline.jobs import stacked_job, train_job

    lock_dir = None
    if rest[:1] == ["--gpu-lock-dir"]:
        lock_dir, rest = rest[1], rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return (stacked_job if stacked else train_job)(rest, lock_dir)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["train-job"], ["stacked-job"]):
        return _train_job(argv[1:], stacked=argv[0] == "stacked-job")
    if argv[:1] == ["gallery"]:
        from trlearner.pipeline.jobs import gallery

        return gallery(argv[1:])
    args = build_parser().parse_args(argv)
    if args.cmd in ("analysis", "report"):
        from trlearner.util.cli import run_command

        return run_command(args)
    if args.cmd == "fetch-data":
        from trlearner.pipeline.jobs import fetch_data

        return fetch_data(args.dataset, args.out, args.data_root)
    if args.cmd == "dvc-params":
        from trlearner.pipeline.dvc import dvc_params

        return dvc_params(args.params, args.check)
    from trlearner.pipeline.check import ConfigError, check_config, load_config

    try:
        config = load_config(args.config)
        matrix = check_config(config)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    if args.cmd == "estimate":
        from trlearner.pipeline.estimate import done_runs, format_estimate

        print(format_estimate(matrix, done_runs(matrix), args.cores))
    elif args.cmd == "check":
        n_jobs = len(matrix.runs) - len(matrix.stacked_paths) + len(matrix.stacks)
        stacked = f", {len(matrix.stacks)} of them stacked" if matrix.stacks else ""
        print(f"{args.config}: ok ({len(matrix.runs)} training runs in {n_jobs} jobs{stacked})")
    elif args.cmd == "expected":
        from trlearner.run.results import atomic_write_json

        atomic_write_json(Path(args.out), matrix.expected_cells(config.get("results", "results")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

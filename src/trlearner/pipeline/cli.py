"""``python -m trlearner.pipeline``: the one command of the pipeline, the jobs the Snakemake
rules run and the helpers people run.

Jobs (each rule runs one; :mod:`trlearner.pipeline.jobs`)::

    python -m trlearner.pipeline train-job --job JSON --out DIR [--threads N] [--gpu-lock-dir D]
    python -m trlearner.pipeline stacked-job --job JSON --out 'DIR/seed{seed}' [--threads N] [--gpu-lock-dir D]
                                       # JSON: the run configs and identities (jobs.job_document)
    python -m trlearner.pipeline fetch-data sinusoid --out FILE          # a dataset's manifest
    python -m trlearner.pipeline gallery --dataset omniglot_small --ways 5 --shots 1 --out DIR
    python -m trlearner.pipeline analysis depth --runs DIR --out DIR     # as trlearner analysis
    python -m trlearner.pipeline report --results DIR --out DIR ...      # as trlearner report
    python -m trlearner.pipeline expected --config C --out FILE          # the report's expected cells

Helpers::

    python -m trlearner.pipeline estimate --config config/default.yaml   # jobs and time per dataset
    python -m trlearner.pipeline check --config config/paper.yaml        # validate only
    python -m trlearner.pipeline dvc-params [--check]                     # params.yaml from the registry
    python -m trlearner.pipeline publish --results results/calibration --to results/published/calibration
    python -m trlearner.pipeline spot-check [--published results/published] [-n 1] [--seed 0]
    python -m trlearner.pipeline verdicts [--readme README.md [--check]]  # the README's verdict table
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# jobs whose arguments are another command's, passed on as they are
PASS_ON = {"gallery": "draw one training and one test episode of a dataset (python -m trlearner.report.gallery)"}


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
    u = sub.add_parser("publish", help="copy the records (metrics.json, provenance.json) of a results folder's "
                                       "finished runs into results/published/<preset>/")
    u.add_argument("--results", required=True, help="a preset's results folder, e.g. results/calibration")
    u.add_argument("--to", required=True, help="the published folder, e.g. results/published/calibration")
    s = sub.add_parser("spot-check", help="train N randomly chosen published runs again and compare them "
                                          "(bit for bit on the same CPU type and torch build)")
    s.add_argument("--published", default="results/published",
                   help="published records (default: results/published)")
    s.add_argument("-n", type=int, default=1, help="runs to check (default: 1)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random choice (default: 0)")
    s.add_argument("--work", default=None, help="folder for the reruns (default: the system's temp folder)")
    v = sub.add_parser("verdicts", help="the README's verdict table from the published records")
    v.add_argument("--published", default="results/published", help="(default: results/published)")
    v.add_argument("--readme", default=None, help="write the table into this README between its markers")
    v.add_argument("--check", action="store_true", help="with --readme: exit 1 when the README's table differs")
    k = sub.add_parser("look", help="the sequential rule at one look of one arm (its record, JSON)")
    k.add_argument("--arm", required=True, help="the arm's name (trlearner.pipeline.sequential.Arm)")
    k.add_argument("--baseline", nargs="+", required=True, help="metrics.json of baseline seeds 0..n-1")
    k.add_argument("--trlearner", nargs="+", required=True, help="metrics.json of TRLearner seeds 0..n-1")
    k.add_argument("--paper-effect", type=float, required=True, help="the paper's TRLearner - baseline")
    k.add_argument("--out", required=True)
    for name, text in (("train-job", "train the one run of a job document into --out"),
                       ("stacked-job", "train the seeds of a job document (one chunk of a cell) together")):
        t = sub.add_parser(name, help=text)
        t.add_argument("--job", required=True, help="the job document: JSON of the run configs and their "
                                                    "identities (trlearner.pipeline.jobs.job_document)")
        t.add_argument("--out", required=True, help="the run folder" + (" pattern, with {seed}" if "stacked" in name
                                                                         else ""))
        t.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
        t.add_argument("--gpu-lock-dir", default=None, help="folder of the GPU claim locks")
    for name, text in PASS_ON.items():
        sub.add_parser(name, help=text, add_help=False)
    register_commands(sub)  # analysis, report
    return finish_parser(p)


def _published(args) -> int:
    """``publish``, ``spot-check`` and ``verdicts`` (:mod:`trlearner.pipeline.published`)."""
    from trlearner.pipeline import published

    if args.cmd == "publish":
        if not Path(args.results).is_dir():
            print(f"--results {args.results} is not a folder; allowed: a preset's results folder", file=sys.stderr)
            return 2
        done = published.publish(args.results, args.to)
        print(f"published the records of {len(done)} finished runs from {args.results} into {args.to}")
        return 0
    if args.cmd == "verdicts":
        table = published.verdict_markdown(args.published)
        if args.readme is None:
            print(table)
            return 0
        text = Path(args.readme).read_text()
        try:
            new = published.readme_with_table(text, table)
        except ValueError as exc:
            print(f"--readme {args.readme}: {exc}", file=sys.stderr)
            return 2
        if args.check:
            if new != text:
                print(f"{args.readme}: its verdict table differs from the published records; run `make verdicts`",
                      file=sys.stderr)
                return 1
            return 0
        Path(args.readme).write_text(new)
        print(f"wrote the verdict table into {args.readme}")
        return 0
    try:
        checks = published.spot_check(args.published, args.n, args.seed, args.work, progress=sys.stderr.isatty())
    except ValueError as exc:
        print(f"spot-check: error: {exc}", file=sys.stderr)
        return 2
    for c in checks:
        print(f"{'PASS' if c.passed else 'FAIL'} ({c.mode}) {c.run}: {c.detail}")
    return 0 if all(c.passed for c in checks) else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gallery"]:
        from trlearner.pipeline.jobs import gallery

        return gallery(argv[1:])
    args = build_parser().parse_args(argv)
    if args.cmd in ("train-job", "stacked-job"):
        from trlearner.pipeline.jobs import stacked_job, train_job

        job = stacked_job if args.cmd == "stacked-job" else train_job
        return job(args.job, args.out, threads=args.threads, lock_dir=args.gpu_lock_dir)
    if args.cmd in ("publish", "spot-check", "verdicts"):
        return _published(args)
    if args.cmd == "look":
        from trlearner.pipeline.sequential import look_record
        from trlearner.run.results import atomic_write_json

        try:
            record = look_record(args.arm, args.baseline, args.trlearner, args.paper_effect)
        except ValueError as exc:
            print(f"look: error: {exc}", file=sys.stderr)
            return 2
        atomic_write_json(Path(args.out), record)
        print(f"{args.arm}: look at {record['n']} seeds: effect {record['effect']:+.4f} ± {record['half_width']:.4f} "
              f"(paper {record['paper_effect']:+.4f}): {record['verdict']}")
        return 0
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
    from trlearner.pipeline import sequential
    from trlearner.pipeline.matrix import preset_roots

    # a sequential preset: the runs its look records on disk ask for so far (first look: none yet)
    full, matrix = matrix, sequential.decided(matrix, sequential.seeds_on_disk(matrix, preset_roots(config)[0]))
    if args.cmd == "estimate":
        from trlearner.pipeline.estimate import analysis_jobs, done_runs, format_estimate

        analyses = analysis_jobs(config, next((r.root for r in matrix.runs), "results"))
        print(format_estimate(matrix, done_runs(matrix, analyses), args.cores, analyses))
    elif args.cmd == "check":
        from trlearner.pipeline.estimate import analysis_jobs, training_jobs

        n_analysis = len(analysis_jobs(config))
        n_jobs = training_jobs(matrix) + n_analysis
        stacked = f", {len(matrix.stacks)} of them stacked" if matrix.stacks else ""
        upto = (f"; the sequential rule may add up to {len(full.runs) - len(matrix.runs)} runs in "
                f"{training_jobs(full) - training_jobs(matrix)} jobs") if full.sequential else ""
        print(f"{args.config}: ok ({len(matrix.runs) + n_analysis} training runs in {n_jobs} jobs{stacked}{upto})")
    elif args.cmd == "expected":
        from trlearner.run.results import atomic_write_json

        atomic_write_json(Path(args.out), matrix.expected_cells(preset_roots(config)[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

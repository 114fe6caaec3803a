"""Helpers of the workflow tests: a throw-away copy of the pipeline and Snakemake calls."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPY = ("Snakefile", "workflow", "profiles", "config", "src", "dvc.yaml", "dvc.lock", "params.yaml", ".dvc",
        ".dvcignore")


def copy_pipeline(dest: Path) -> Path:
    """A fresh-clone-like copy of the pipeline's files in ``dest`` (no results, no .snakemake)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in COPY:
        src = REPO / name
        if src.is_symlink():  # profiles -> workflow/profiles (Snakemake's default-profile lookup)
            (dest / name).symlink_to(os.readlink(src))
        elif src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 600,
              env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, *args]
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTHONPATH", None)
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """{rule: count} of what a dry run would execute (empty when nothing is to be done)."""
    out = snakemake(workdir, "--dry-run", "--quiet", "rules", *args)
    text = out.stdout + out.stderr
    counts: dict[str, int] = {}
    if "Job stats:" not in text:
        return counts
    block = text.split("Job stats:", 1)[1]
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def planned_outputs(workdir: Path, *args: str) -> list[str]:
    """Outputs of the jobs a dry run would execute, from ``--dry-run --printshellcmds``."""
    out = snakemake(workdir, "--dry-run", *args)
    text = out.stdout + out.stderr
    return re.findall(r"^\s+output: (.+)$", text, flags=re.M)


def job_of(argv: list[str], seeds: list[int] | None = None) -> str:
    """The job document of ``trlearner train ARGV`` (``--out`` and ``--threads`` ignored); with
    ``seeds``, one config per seed (a stacked job)."""
    from trlearner.pipeline.jobs import job_document
    from trlearner.run.cli import parse_args, run_config

    args = parse_args([*argv, "--out", "unused"] if "--out" not in argv else argv)
    if seeds is None:
        return job_document([run_config(args)])
    cfgs = []
    for s in seeds:
        args.seed = s
        cfgs.append(run_config(args))
    return job_document(cfgs)

"""Pipeline overheads for the benchmark suite: DAG construction and the no-op rerun.

Both are wall times of the ``snakemake`` command a user runs, started in a fresh process from
the repository root (the folder holding ``Snakefile``), median over repeats:

- **DAG construction**: ``snakemake -n --nolock --configfile config/<preset>.yaml``
  (a dry run parses the Snakefile, validates the config, builds the job DAG and checks every
  file's state, then stops);
- **no-op rerun**: ``snakemake --cores 1 --configfile config/default.yaml`` when the dry run
  says there is nothing to do (after ``make run``); otherwise it is reported as skipped with
  the reason, never estimated.

Example::

    >>> from trlearner.bench.pipeline import find_root
    >>> find_root("/") is None
    True
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

NOTHING = "Nothing to be done"


def find_root(start: str | Path = ".") -> Path | None:
    """The nearest folder at or above ``start`` that holds a ``Snakefile``, or None."""
    here = Path(start).resolve()
    for d in (here, *here.parents):
        if (d / "Snakefile").is_file() and (d / "config").is_dir():
            return d
    return None


def _snakemake() -> str | None:
    exe = Path(sys.executable).with_name("snakemake")
    return str(exe) if exe.exists() else shutil.which("snakemake")


def _timed(cmd: list[str], cwd: Path, timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - t0, proc


def pipeline_overheads(presets: tuple[str, ...] = ("default", "paper"), repeats: int = 3,
                       root: str | Path | None = None, timeout: float = 300) -> list[dict]:
    """One row per measurement: ``{"what", "preset", "status", "median_s", "samples_s"}``."""
    root = Path(root) if root is not None else find_root()
    exe = _snakemake()
    if root is None or exe is None:
        why = "no Snakefile at or above the working directory" if root is None else "snakemake is not installed"
        return [{"what": "pipeline", "preset": "-", "status": f"skipped: {why}"}]
    rows, noop_ready = [], False
    for preset in presets:
        cfg = f"config/{preset}.yaml"
        if not (root / cfg).is_file():
            rows.append({"what": "DAG construction (dry run)", "preset": preset, "status": f"skipped: no {cfg}"})
            continue
        cmd = [exe, "-n", "--nolock", "--configfile", cfg]
        samples, proc = [], None
        for _ in range(repeats):
            dt, proc = _timed(cmd, root, timeout)
            if proc.returncode != 0:
                break
            samples.append(dt)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            rows.append({"what": "DAG construction (dry run)", "preset": preset,
                         "status": f"failed (exit {proc.returncode}): {tail[0][:160]}"})
            continue
        rows.append({"what": "DAG construction (dry run)", "preset": preset, "status": "ok",
                     "median_s": statistics.median(samples), "samples_s": samples})
        if preset == "default":
            noop_ready = NOTHING in (proc.stdout + proc.stderr)
    if "default" in presets:
        if noop_ready:
            samples = [_timed([exe, "--cores", "1", "--configfile", "config/default.yaml"], root, timeout)[0]
                       for _ in range(repeats)]
            rows.append({"what": "no-op rerun", "preset": "default", "status": "ok",
                         "median_s": statistics.median(samples), "samples_s": samples})
        else:
            rows.append({"what": "no-op rerun", "preset": "default", "status":
                         "skipped: the default pipeline has jobs left to run here (run `make run` first)"})
    return rows

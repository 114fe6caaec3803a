"""DVC's view of the data, without its noise: ``python -m trlearner data status`` (also
``python -m trlearner.pipeline.dvc data-status``; docs/DATA.md, "DVC").

Example::

    python -m trlearner data status      # dvc status of the datasets here; one line for the others
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _dvc_exe() -> str:
    """The ``dvc`` beside this Python (the virtualenv's), else the one on PATH."""
    import shutil

    here = Path(sys.executable).with_name("dvc")
    return str(here) if here.exists() else (shutil.which("dvc") or "dvc")


def run_dvc(args: list[str], cwd: str | Path = ".") -> "subprocess.CompletedProcess[str]":
    """``dvc ARGS`` in ``cwd`` (the virtualenv's dvc, analytics off), its output captured."""
    import os
    import subprocess

    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([_dvc_exe(), *args], cwd=cwd, capture_output=True, text=True, env=env)


def data_status(repo: str | Path = ".") -> tuple[int, str]:
    """What ``dvc status`` says about the data, dataset by dataset, without its noise.

    A bare ``dvc status`` reports every ``fetch@<dataset>`` stage never run here (most of the 19)
    as changed. Here: the datasets present in ``data/raw/`` and pinned in ``dvc.lock`` are checked
    with ``dvc status fetch@<dataset> ...`` (one line when they match the lock; DVC's own lines for
    each that does not); every other dataset is named on one line per kind: pinned in dvc.lock but
    not in this checkout (``dvc pull``), fetched but not pinned (``dvc commit``), never fetched (no
    dvc.lock entry). Returns (exit status: 1 when a present dataset differs from dvc.lock or DVC
    failed, else 0; the text)."""
    from trlearner.util.yamlsafe import safe_load_file

    root = Path(repo)
    params = root / "params.yaml"
    datasets = list((safe_load_file(params) or {}).get("datasets") or []) \
        if params.exists() and (root / "dvc.yaml").exists() else []
    lock = root / "dvc.lock"
    stages = (safe_load_file(lock) or {}).get("stages", {}) if lock.exists() else {}
    pinned = {d for d in datasets if f"fetch@{d}" in stages}
    present = {d for d in datasets if (root / "data" / "raw" / d).is_dir()}
    check = sorted(pinned & present)
    lines, rc = [], 0
    if check:
        out = run_dvc(["status", "--json", *[f"fetch@{d}" for d in check]], cwd=root)
        if out.returncode != 0:
            return 1, f"dvc status failed (exit {out.returncode}):\n{out.stdout}{out.stderr}"
        changed = json.loads(out.stdout or "{}")
        clean = [d for d in check if f"fetch@{d}" not in changed]
        if clean:
            lines.append(f"up to date (data/raw/<dataset> is what dvc.lock pins): {', '.join(clean)}")
        for stage, items in sorted(changed.items()):
            rc = 1
            what = "; ".join(f"{k}: " + ", ".join(f"{p} {v}" for p, v in sorted(c.items())) if isinstance(c, dict)
                             else str(c) for item in items for k, c in (item.items() if isinstance(item, dict)
                                                                         else [("", item)]))
            lines.append(f"CHANGED {stage}: {what} (`dvc status {stage}`; `dvc checkout {stage}` restores what "
                         "dvc.lock pins, `dvc repro {stage}` fetches again)")
    groups = [
        (sorted(pinned - present), "pinned in dvc.lock, not in this checkout (`dvc pull fetch@<dataset>` restores)"),
        (sorted(present - pinned), "in data/raw/ but not pinned in dvc.lock (`dvc commit fetch@<dataset>` pins it)"),
        (sorted(set(datasets) - pinned - present),
         "never fetched: no dvc.lock entry, so a bare `dvc status` calls them changed and `dvc pull` missing "
         "(`dvc repro fetch@<dataset>` fetches and pins one; the pipeline fetches the ones a preset needs)"),
    ]
    for names_, text in groups:
        if names_:
            lines.append(f"{text}: {', '.join(names_)}")
    if not datasets:
        lines.append(f"no datasets: {root / 'params.yaml'} or {root / 'dvc.yaml'} is missing")
    return rc, "\n".join(lines)

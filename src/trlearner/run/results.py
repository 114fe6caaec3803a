"""Run records: atomic writes, metrics summaries and provenance.

Example::

    >>> summarise([1.0, 2.0, 3.0])["mean"]
    2.0
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

METRICS_FIELDS = (
    "dataset", "algorithm", "variant", "shots", "ways", "seed", "metric", "unit",
    "higher_is_better", "mean", "ci95", "n_tasks", "per_task", "curve", "protocol",
    "trlearner", "episodes_hash", "status", "wall_time_s",
)


# atomic writes live in trlearner.util.atomic (atomic_torch_save in trlearner.run.folder, with the
# checked checkpoints and the run lock); they are re-exported here for the modules that import them
# from this one
from trlearner.run.folder import atomic_torch_save, atomic_write_bytes, atomic_write_json  # noqa: E402,F401


def summarise(values) -> dict:
    """Mean and 95% CI half-width ``1.96 * sd / sqrt(n)`` (sample sd) of per-task values."""
    t = torch.as_tensor(values, dtype=torch.float64)
    n = t.numel()
    sd = float(t.std(unbiased=True)) if n > 1 else float("nan")
    return {"mean": float(t.mean()), "ci95": 1.96 * sd / math.sqrt(n), "n": n}


def finite_json(obj, path: str = "") -> tuple[object, dict[str, list]]:
    """``obj`` with every NaN/inf float replaced by ``None`` (standard JSON has no NaN), and
    the replaced values by where they were (list indices dropped: ``curve.ci95``).

    Example:
        >>> finite_json({"mean": 1.0, "ci95": float("nan"), "per_task": [1.0, float("inf")]})
        ({'mean': 1.0, 'ci95': None, 'per_task': [1.0, None]}, {'ci95': [nan], 'per_task': [inf]})
    """
    found: dict[str, list] = {}

    def walk(x, where):
        if isinstance(x, float) and not math.isfinite(x):
            found.setdefault(where, []).append(x)
            return None
        if isinstance(x, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, where) for v in x]
        return x

    return walk(obj, path), found


def metrics_json(metrics: dict) -> dict:
    """``metrics`` as standard JSON: a NaN/inf value becomes ``null``, and ``nulls`` says why,
    per field (e.g. ``{"ci95": "no 95% CI from 1 test task (the sample sd needs >= 2)"}``).

    Example:
        >>> metrics_json({"mean": 0.5, "ci95": float("nan"), "n_tasks": 1})["nulls"]
        {'ci95': 'no 95% CI from 1 test task (the sample sd needs >= 2)'}
    """
    clean, found = finite_json(metrics)
    if not found:
        return clean
    reasons = dict(clean.get("nulls") or {})
    for where, values in found.items():
        if where.split(".")[-1] == "ci95" and (metrics.get("n_tasks") or 0) < 2:
            reasons[where] = f"no 95% CI from {metrics.get('n_tasks')} test task (the sample sd needs >= 2)"
        else:
            kinds = ", ".join(sorted({repr(v) for v in values}))
            reasons[where] = (f"{len(values)} value(s) were {kinds}, not finite numbers: the model's outputs "
                              f"or losses on the test tasks were not finite")
    clean["nulls"] = reasons
    return clean


def write_metrics(path: Path, metrics: dict) -> dict:
    """Write ``metrics.json`` atomically as standard JSON (:func:`metrics_json`; ``allow_nan``
    off, so a NaN can never reach the file); returns what was written."""
    clean = metrics_json(metrics)
    atomic_write_bytes(path, (json.dumps(clean, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())
    return clean


def tensor_hash(*tensors: torch.Tensor) -> str:
    """sha256 (first 16 hex digits) of the bytes of ``tensors``, for episode sets."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(config: dict, device: str, dataset_hash: str | None = None) -> dict:
    """Where a number came from: code version, config, data, packages, device."""
    import numpy

    import trlearner
    from trlearner.run.folder import code_hash

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "config_hash": config_hash(config),
        "config": config,  # the run's identity (RunConfig.identity()): enough to train it again
        "code_hash": code_hash(),
        "dataset_hash": dataset_hash,
        "packages": {"trlearner": trlearner.__version__, "torch": torch.__version__,
                     "numpy": numpy.__version__, "python": platform.python_version()},
        "device": device_name(device),
        "cpu": cpu_model(),  # float rounding, hence bit-identity, depends on it (docs/CALIBRATION.md)
        "torch_build": torch.version.git_version,
        "threads": torch.get_num_threads(),
        "command": portable_command(sys.argv),
    }


def portable_command(argv) -> list[str]:
    """``argv`` with every absolute path into this package's source tree written from its
    ``trlearner/`` folder on (``src/trlearner/...`` in a checkout): a record names no machine's
    folders.

    Example:
        >>> portable_command(["/home/me/repo/src/trlearner/__main__.py", "train", "--out", "/tmp/x"])
        ['src/trlearner/__main__.py', 'train', '--out', '/tmp/x']
    """
    out = []
    for arg in argv:
        text = str(arg)
        if os.path.isabs(text) and "/trlearner/" in text:
            head, _, tail = text.rpartition("/trlearner/")
            text = f"{'src/' if head.endswith('/src') else ''}trlearner/{tail}"
        out.append(text)
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`).

    Example:
        >>> isinstance(cpu_model(), str)
        True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"

"""Claim a free GPU for one job with a per-GPU file lock.

Snakemake counts ``gpu`` resources but does not say WHICH GPU a local job may use, so every
training job claims one itself: it takes the lock ``<lock_dir>/gpu<id>.lock`` (a
:class:`filelock.FileLock`, :func:`trlearner.util.locks.process_lock`) of the first free id
without waiting, sets ``CUDA_VISIBLE_DEVICES`` to that id (before CUDA is initialised) and holds
the lock until it ends; the file names the holder (pid, time). The kernel drops the lock when
the process dies, even on SIGKILL, so a killed job never leaves a GPU claimed.

GPU ids come from, in order: ``TRLEARNER_GPUS`` (comma-separated; tests use fake ids),
``CUDA_VISIBLE_DEVICES`` (what SLURM grants a job), ``nvidia-smi``.

Example::

    >>> import os, tempfile
    >>> os.environ["TRLEARNER_GPUS"] = "0,1"
    >>> with claim_gpu(lock_dir=tempfile.mkdtemp()) as gpu:
    ...     gpu, os.environ["CUDA_VISIBLE_DEVICES"]
    ('0', '0')
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from trlearner.util.locks import process_lock, write_holder

GPUS_ENV = "TRLEARNER_GPUS"
LOCK_DIR_ENV = "TRLEARNER_GPU_LOCK_DIR"
DEFAULT_LOCK_DIR = ".snakemake/gpu-locks"


class NoGPUError(RuntimeError):
    """No GPU id is known on this machine."""


def gpu_ids() -> list[str]:
    """The GPU ids a job on this machine may claim."""
    for env in (GPUS_ENV, "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(env, "").strip()
        if value:
            return [v.strip() for v in value.split(",") if v.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()] if out.returncode == 0 else []


def _name_holder(fd: int) -> None:
    write_holder(fd, f"{os.getpid()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")


def try_claim(ids: list[str], lock_dir: Path):
    """(id, held lock) for the first free GPU, or None when all are taken (no waiting)."""
    from filelock import Timeout

    lock_dir.mkdir(parents=True, exist_ok=True)
    for gid in ids:
        lock = process_lock(lock_dir / f"gpu{gid}.lock", on_acquired=_name_holder)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            continue
        return gid, lock
    return None


@contextmanager
def claim_gpu(lock_dir: str | os.PathLike | None = None, timeout: float | None = None,
              poll: float = 0.5):
    """Claim a free GPU for the ``with`` block; yields its id (a string) and sets
    ``CUDA_VISIBLE_DEVICES``. Waits (polling) while all GPUs are busy; raises
    :class:`TimeoutError` after ``timeout`` seconds and :class:`NoGPUError` when no GPU exists."""
    ids = gpu_ids()
    if not ids:
        raise NoGPUError(f"no GPU found (set {GPUS_ENV} or CUDA_VISIBLE_DEVICES, or install nvidia-smi)")
    lock_dir = Path(lock_dir or os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)
    start = time.monotonic()
    warned = False
    while True:
        got = try_claim(ids, lock_dir)
        if got is not None:
            break
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"no free GPU among {ids} after {timeout:.0f}s (locks in {lock_dir})")
        if not warned:
            print(f"gpu: all of {ids} are claimed; waiting (locks in {lock_dir})", file=sys.stderr)
            warned = True
        time.sleep(poll)
    gid, lock = got
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = gid
    try:
        yield gid
    finally:
        if old is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old
        lock.release()


def main(argv: list[str] | None = None) -> int:
    """``python -m trlearner.pipeline.gpu [--lock-dir D] -- CMD ...``: run CMD on a claimed GPU."""
    argv = list(sys.argv[1:] if argv is None else argv)
    lock_dir = None
    if argv[:1] == ["--lock-dir"]:
        lock_dir, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m trlearner.pipeline.gpu [--lock-dir D] -- CMD ...", file=sys.stderr)
        return 2
    with claim_gpu(lock_dir) as gid:
        print(f"gpu: claimed GPU {gid}", file=sys.stderr)
        return subprocess.call(argv)


if __name__ == "__main__":
    sys.exit(main())

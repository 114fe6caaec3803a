"""The run-folder session: what a single run (:func:`trlearner.run.train.train`) and every seed
of a stacked run (:mod:`trlearner.run.stacked`) do with their run folder, in one place.

A session, in order:

1. :func:`open_run_folder`: create the folder, take its lock (:func:`trlearner.run.folder.run_lock`;
   a lock a dead process left is taken over) and open its ``log.txt`` (:class:`RunLog`, at the
   first line: a run refused before it logs leaves no file).
2. :class:`RunSession` refuses a folder holding the results of another run (:func:`other_run`;
   :class:`~trlearner.run.folder.RunFolderError`), unless ``force``. Nothing is written yet.
3. :meth:`RunSession.start`: logs whose lock was taken over, removes the temporary files of
   writes a kill interrupted, and with ``force`` deletes the other run's results.
4. :meth:`RunSession.resume`: loads the newest checkpoint of this run and this code into the
   meta-parameters and optimiser (:func:`load_checkpoint`: an unreadable one is skipped for
   the previous one, one of other code is not resumed, one of other settings is refused or,
   with ``force``, deleted); :meth:`RunSession.save` writes the next one
   (:func:`save_checkpoint`: ``checkpoint.pt`` exists at every instant).

Decisions: the log lines are the same for both trainers (a stacked seed's go to its
``log.txt`` only; a single run's also to the caller's logger, the console under
``trlearner train``); each trainer resumes only its own checkpoints: a stacked seed one marked
``trainer="stacked"``, a single run an unmarked one (their float32 rounding differs, so a run
resumed across trainers would match neither).

Example::

    >>> import tempfile, torch
    >>> from trlearner.run.config import resolve_config
    >>> cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=20)
    >>> meta = {"w": torch.zeros(2, requires_grad=True)}
    >>> opt = torch.optim.Adam(meta.values())
    >>> out = tempfile.mkdtemp()
    >>> with open_run_folder(out) as (log, taken_over):
    ...     session = RunSession(out, cfg, log, taken_over)
    ...     session.start()
    ...     session.resume(meta, opt)
    ...     session.save(10, 1.5, meta, opt, history=[], rel_mean=None)
    ...     session.resume(meta, opt)[:2]
    (0, 0.0, [], None)
    (10, 1.5)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from trlearner.run.folder import (CheckpointError, RunFolderError, code_hash, load_checked, open_append,
                                  remove_temp_files, run_lock, save_checked)
from trlearner.run.results import config_hash
from trlearner.util.atomic import temp_path

CHECKPOINTS = ("checkpoint.pt", "checkpoint.prev.pt")  # the newest first: the order they are resumed in
RESULTS = ("metrics.json", "provenance.json", "relation.pt")  # what --force deletes of another run


class _LogFile(logging.FileHandler):
    """A FileHandler whose write errors fail the run (logging's default prints them and goes on)
    and that never follows a symbolic link (:func:`trlearner.run.folder.open_append`)."""

    def _open(self):
        return open_append(self.baseFilename, self.encoding or "utf-8")

    def handleError(self, record):
        raise  # called inside logging's except block: re-raises that error


class RunLog:
    """A run's ``log.txt``, a :class:`logging.FileHandler` opened at the first line (so a run
    refused before it logs leaves no file) and closed on exit from the ``with`` block.

    ``log(msg, level)`` writes every line to ``log.txt`` (``<date> <time> <msg>``) whatever the
    logging configuration, and sends it at ``level`` to ``logger`` when one is given (a single
    run's: the console under the ``trlearner`` command, INFO and up; DEBUG lines go to
    ``log.txt`` only). A stacked seed's log has no logger: its lines are its folder's alone.

    Arguments:
        path: the ``log.txt`` file (appended to). logger: where lines also go, or None.
    """

    def __init__(self, path: Path, logger: logging.Logger | None = None):
        self.at: int | str | None = None  # the iteration under way (or "the evaluation"), for Ctrl-C's line
        self.logger = logger
        self.handler = _LogFile(path, mode="a", encoding="utf-8", delay=True)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))

    def __call__(self, msg: str, level: int = logging.DEBUG) -> None:
        self.handler.handle(logging.makeLogRecord(
            {"name": self.logger.name if self.logger else __name__, "msg": msg, "levelno": level,
             "levelname": logging.getLevelName(level)}))
        if self.logger is not None:
            self.logger.log(level, msg)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handler.close()


@contextlib.contextmanager
def open_run_folder(out, logger: logging.Logger | None = None):
    """Hold the run folder ``out`` for the ``with`` block: created when absent, locked
    (:func:`trlearner.run.folder.run_lock`, which checks it first), its ``log.txt`` open.

    Yields:
        ``(log, taken_over)``: the :class:`RunLog` (lines also to ``logger``) and the lock's
        note naming a dead previous holder, or None.

    Raises:
        RunFolderError: no run folder, or locked by a live run (:func:`~trlearner.run.folder.run_lock`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out) as taken_over, RunLog(out / "log.txt", logger) as log:
        yield log, taken_over


def checkpoint_mismatch(ckpt: dict, meta: dict, opt) -> str | None:
    """Why the parameters and optimizer state of ``ckpt`` cannot be loaded into ``meta`` and
    ``opt`` (other names or shapes), or None. A checkpoint of this run's settings and code
    always fits; one that does not was altered or written by a bug, and is treated as unreadable."""
    saved = ckpt.get("meta")
    if not isinstance(saved, dict) or set(saved) != set(meta):
        return f"its parameters {sorted(saved) if isinstance(saved, dict) else saved!r} are not this model's {sorted(meta)}"
    for k, v in meta.items():
        s = saved[k]
        if not isinstance(s, torch.Tensor) or tuple(s.shape) != tuple(v.shape):
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            return f"parameter {k!r} has shape {got}, this model's {tuple(v.shape)}"
    params = [p for g in opt.param_groups for p in g["params"]]
    state = ckpt.get("opt")
    if not isinstance(state, dict) or sum(len(g.get("params", ())) for g in state.get("param_groups", ())) != len(params):
        return "its optimizer state is not for this model's parameters"
    for i, p in enumerate(params):
        for name, t in (state.get("state", {}).get(i) or {}).items():
            if isinstance(t, torch.Tensor) and t.dim() > 0 and tuple(t.shape) != tuple(p.shape):
                return f"optimizer state {name!r} of parameter {i} has shape {tuple(t.shape)}, the parameter {tuple(p.shape)}"
    return None


def load_checkpoint(out: Path, ident_hash: str, log, force: bool = False, meta: dict | None = None,
                     opt=None) -> dict | None:
    """The newest checkpoint of this run that may be resumed, or None (start at iteration 0);
    its path is under the key ``"_path"``.

    A checkpoint is skipped, with a log line, when it is unreadable, not plain data (it is
    loaded with ``weights_only=True``: nothing in it runs), fails its checksum, has no
    checksum, or (given ``meta`` and ``opt``) its tensors do not fit this model
    (:func:`checkpoint_mismatch`); then the previous one is tried. One written by other code (another
    :func:`trlearner.run.folder.code_hash`) is not resumed: the run starts again. One of other
    settings raises :class:`RunFolderError`, or with ``force`` is deleted.
    """
    for name in CHECKPOINTS:
        path = out / name
        if not path.exists():
            continue
        try:
            ckpt = load_checked(path)
            if "meta" not in ckpt:
                raise CheckpointError(f"{path} is not a trlearner checkpoint (no 'meta')")
            problem = checkpoint_mismatch(ckpt, meta, opt) if meta is not None and opt is not None else None
            if problem and ckpt.get("config_hash") == ident_hash and ckpt.get("code_hash") == code_hash():
                raise CheckpointError(f"it does not fit this model: {problem}")
        except CheckpointError as exc:  # corrupt, truncated, altered, or not plain data
            msg = f"checkpoint {path} is unreadable ({exc}); ignoring it"
            log(msg, logging.WARNING)
            continue
        if ckpt.get("config_hash") != ident_hash:
            if force:
                log(f"--force: deleting {path} of a run with other settings (config hash {ckpt.get('config_hash')})",
                    logging.INFO)
                for other in CHECKPOINTS:
                    (out / other).unlink(missing_ok=True)
                return None
            raise RunFolderError(
                f"{path} belongs to a run with other settings (config hash "
                f"{ckpt.get('config_hash')} != {ident_hash}); use another --out, delete it, or pass --force")
        if ckpt.get("code_hash") != code_hash():
            msg = (f"checkpoint from code {ckpt.get('code_hash')}, this code is {code_hash()}: starting again "
                   f"(iteration {ckpt.get('iteration')} of {path} is not resumed)")
            log(msg, logging.WARNING)
            return None
        ckpt["_path"] = path
        return ckpt
    return None


def save_checkpoint(out: Path, ckpt: dict) -> None:
    """Write ``ckpt`` (plain data) with its checksum as ``checkpoint.pt``; the one before
    becomes ``checkpoint.prev.pt``.

    ``checkpoint.pt`` exists at every instant: the previous one is first linked (or copied)
    to ``checkpoint.prev.pt`` through a temporary name and a rename, then the new one is
    renamed over ``checkpoint.pt``. A job killed in between (scancel, a node failure) leaves
    the old checkpoint, never none (it used to rename the old one away before writing)."""
    cur, prev = out / "checkpoint.pt", out / "checkpoint.prev.pt"
    if cur.exists():
        tmp = temp_path(prev)
        try:
            os.link(cur, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(cur, tmp)
        os.replace(tmp, prev)
        tmp.unlink(missing_ok=True)  # rename() does nothing when prev already is a link to cur's file
    save_checked(cur, ckpt)


def other_run(out: Path, cfg, ident_hash: str) -> str | None:
    """Why ``out`` holds the results of another run (None when it holds none, or this run's):
    its ``provenance.json`` names another config hash, or, without one, its ``metrics.json``
    names another dataset, algorithm, variant, shots, ways or seed, another protocol
    (iterations, meta-batch, inner/test steps and step sizes, outer step size, backbone, test
    tasks and queries, curve steps, ...), TRLearner or regulariser setting, or lacks one of
    them: a finished record is replaced only by the run it records, or with ``--force``."""
    mpath = out / "metrics.json"
    if not mpath.exists():
        return None
    try:
        prov = json.loads((out / "provenance.json").read_text())
        have = prov.get("config_hash") if isinstance(prov, dict) else None
    except (OSError, ValueError):
        have = None
    if have is not None:
        return None if have == ident_hash else f"config hash {have}, this run's is {ident_hash}"
    try:
        m = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        return f"an unreadable metrics.json ({exc}) and no provenance.json"
    mine = {"dataset": cfg.dataset, "algorithm": cfg.algorithm, "variant": cfg.variant, "shots": cfg.shots,
            "ways": cfg.ways, "seed": cfg.seed}
    if not isinstance(m, dict):
        return f"a metrics.json holding a {type(m).__name__}, not a run record, and no provenance.json"
    diff = [f"{k} {m.get(k)!r} (this run: {v!r})" for k, v in mine.items() if m.get(k) != v]
    proto = m.get("protocol") if isinstance(m.get("protocol"), dict) else {}
    mine = {"iterations": cfg.iterations, "meta_batch": cfg.meta_batch, "inner_steps_train": cfg.inner_steps,
            "inner_lr_train": cfg.inner_lr, "inner_steps_test": cfg.test_steps, "inner_lr_test": cfg.test_lr,
            "outer_lr": cfg.outer_lr, "first_order": cfg.first_order, "backbone": cfg.backbone,
            "filters": cfg.filters, "test_tasks": cfg.test_tasks, "queries_test": cfg.test_queries,
            "backend": cfg.backend}
    diff += [f"{k} {proto.get(k)!r} (this run: {v!r})" for k, v in mine.items() if proto.get(k) != v]
    curve = m.get("curve")
    if isinstance(curve, dict) and isinstance(curve.get("steps"), list) and len(curve["steps"]) != cfg.curve_steps + 1:
        diff.append(f"curve_steps {len(curve['steps']) - 1} (this run: {cfg.curve_steps})")
    mine = {"trlearner": None if cfg.trlearner is None else cfg.trlearner.to_dict(),
            "regularizer": {"name": cfg.regularizer, "strength": cfg.reg_strength}}
    diff += [f"{k} {m.get(k)!r} (this run: {v!r})" for k, v in mine.items()
             if json.loads(json.dumps(v)) != m.get(k)]  # as written: tuples read back as lists
    return ", ".join(diff) or None




class RunSession:
    """One run's use of its locked run folder (see the module docstring for the order).

    Arguments:
        out: the run folder, held by :func:`open_run_folder`. cfg: the run's
            :class:`~trlearner.run.config.RunConfig` (its identity is the checkpoints' and
            records' ``config_hash``). log: the folder's :class:`RunLog`.
        taken_over: the lock's note on a dead previous holder, or None.
        force: ``--force``: replace another run's results and checkpoints instead of refusing.
        trainer: the mark written into checkpoints (``"stacked"``), and the only one resumed;
            None (a single run): unmarked checkpoints are written and only those resumed.

    Raises:
        RunFolderError: ``out`` holds another run's ``metrics.json`` (:func:`other_run`) and not
            ``force``; nothing is written.
    """

    def __init__(self, out, cfg, log, taken_over: str | None = None, force: bool = False,
                 trainer: str | None = None):
        self.out, self.log, self.taken_over, self.force, self.trainer = Path(out), log, taken_over, force, trainer
        self.ident_hash = config_hash(cfg.identity())
        self.other = other_run(self.out, cfg, self.ident_hash)
        if self.other and not force:
            raise RunFolderError(f"{out} holds the metrics.json of a run with other settings ({self.other}); use "
                                 f"another --out, or pass --force to replace that run's results")

    def start(self) -> None:
        """The session's first writes: log a taken-over lock, remove the temporary files of
        interrupted writes, and with ``force`` delete another run's results."""
        if self.taken_over:
            self.log(self.taken_over, logging.WARNING)
        for tmp in remove_temp_files(self.out):
            self.log(f"removed {tmp.name}, the temporary file of a write that was interrupted", logging.INFO)
        if self.other:
            self.log(f"--force: replacing the results of another run ({self.other})", logging.INFO)
            for name in RESULTS:
                (self.out / name).unlink(missing_ok=True)

    def resume(self, meta: dict, opt) -> tuple[int, float, list, torch.Tensor | None]:
        """Load the checkpoint to resume (:func:`load_checkpoint`) into ``meta`` (in place) and
        ``opt``, and log where it resumes.

        Returns:
            ``(iteration, elapsed seconds, history, running-mean relation or None)`` of the
            checkpoint, or ``(0, 0.0, [], None)`` when there is none to resume.
        """
        ckpt = load_checkpoint(self.out, self.ident_hash, self.log, force=self.force, meta=meta, opt=opt)
        if ckpt is not None and ckpt.get("trainer") != self.trainer:
            writer, reader = (("a single run (`trlearner train`)", "a stacked run's") if self.trainer is not None
                              else ("a stacked run", "a single run's"))
            self.log(f"checkpoint {ckpt['_path']} was written by {writer}, whose rounding differs from "
                     f"{reader}: starting again")
            ckpt = None
        if ckpt is None:
            return 0, 0.0, [], None
        with torch.no_grad():
            for k, v in ckpt["meta"].items():
                meta[k].copy_(v)
        opt.load_state_dict(ckpt["opt"])
        self.log(f"resumed at iteration {ckpt['iteration']} from {ckpt['_path']}", logging.INFO)
        return ckpt["iteration"], ckpt["elapsed"], ckpt["history"], ckpt.get("relation_mean")

    def save(self, it: int, elapsed: float, meta: dict, opt, history: list, rel_mean) -> None:
        """Checkpoint iteration ``it`` (:func:`save_checkpoint`): ``elapsed`` training seconds,
        the meta-parameters and optimiser state, the history and running-mean relation."""
        save_checkpoint(self.out, {
            "iteration": it, "elapsed": elapsed, "config_hash": self.ident_hash, "code_hash": code_hash(),
            **({"trainer": self.trainer} if self.trainer is not None else {}),
            "meta": {k: v.detach().cpu() for k, v in meta.items()}, "opt": opt.state_dict(),
            "history": history, "relation_mean": rel_mean,
        })

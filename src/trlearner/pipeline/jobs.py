"""The jobs the Snakemake rules run, each one function that calls the layer below it directly:
``train-job`` and ``stacked-job`` (:func:`train_job`, :func:`stacked_job`: the run configs of a
:func:`job_document`, trained with a GPU claim, a stale-checkpoint check and "diverged" as
success), ``fetch-data`` (:func:`fetch_data`: a dataset through DVC,
and its manifest), ``gallery`` (:func:`gallery`), ``analysis`` and ``report`` (the commands of
:mod:`trlearner.analysis.cli` and :mod:`trlearner.report.cli`, :func:`register_commands`).
``python -m trlearner.pipeline <job> ...`` (:mod:`trlearner.pipeline.cli`) runs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from trlearner.pipeline.catalog import GENERATED
from trlearner.pipeline.dvc import dvc_datasets


STALE_CHECKPOINT = "checkpoint.stale.pt"


def remove_stale_checkpoint(out: Path, cfg) -> None:
    """Move away a checkpoint left by a run with other settings than ``cfg`` (the run's
    :class:`trlearner.run.config.RunConfig`; Snakemake reruns a job when its params change), so
    that ``train`` starts afresh instead of refusing; a checkpoint of the same settings (an
    interrupted job) is kept for ``train``, which resumes it only when it passes its checksum
    and was written by the same code (``trlearner.run.folder.code_hash``): after a code edit,
    Snakemake's rerun of the job retrains it from iteration 0.

    A run folder keeps at most ONE stale checkpoint, :data:`STALE_CHECKPOINT`: the newest
    checkpoint of other settings (``checkpoint.pt`` before ``checkpoint.prev.pt``) replaces the
    one kept from an earlier change, and the other stale ones are deleted, so that parameter
    changes do not pile checkpoints up; the one kept lets a change be undone by hand (rename it
    back to ``checkpoint.pt``). A ``checkpoint.prev.stale.pt`` of older versions is deleted."""
    legacy = out / "checkpoint.prev.stale.pt"
    if legacy.is_file() and not legacy.is_symlink():
        legacy.unlink()
    ckpts = [p for p in (out / "checkpoint.pt", out / "checkpoint.prev.pt") if p.exists()]
    if not ckpts:
        return
    from trlearner.run.folder import CheckpointError, load_plain
    from trlearner.run.results import config_hash

    want = config_hash(cfg.identity())
    kept = None
    for p in ckpts:  # newest first
        try:  # weights_only: a planted file runs nothing
            have = load_plain(p).get("config_hash")
        except (CheckpointError, AttributeError):
            continue  # unreadable or not a dict: train() reports and skips it
        if have == want:
            continue
        if kept is None:
            kept = out / STALE_CHECKPOINT
            older = " (replacing the older stale checkpoint)" if kept.exists() else ""
            p.replace(kept)
            print(f"pipeline: {p} belongs to other settings ({have} != {want}); moved to {kept}{older}",
                  file=sys.stderr)
        else:
            p.unlink()
            print(f"pipeline: {p} belongs to other settings ({have} != {want}); deleted (one stale "
                  f"checkpoint is kept: {kept.name})", file=sys.stderr)


@contextmanager
def gpu_claim(device: str, lock_dir: str | None):
    """Hold a free GPU for the block when ``device`` is CUDA (``trlearner.pipeline.gpu``), and
    yield the device the job should then use: ``"cuda"`` for ``"cuda:N"`` (the claimed GPU is
    the only one visible), else ``device`` unchanged. A CPU job claims nothing."""
    if not device.startswith("cuda"):
        yield device
        return
    from trlearner.pipeline.gpu import claim_gpu

    with claim_gpu(lock_dir=lock_dir) as gpu:
        print(f"pipeline: running on GPU {gpu} (CUDA_VISIBLE_DEVICES={gpu})", file=sys.stderr)
        yield "cuda" if device.startswith("cuda:") else device


def job_document(cfgs) -> str:
    """The job of a Snakemake rule: the resolved :class:`~trlearner.run.config.RunConfig` of each
    run it trains (one, or the seeds of a stacked chunk), as JSON with each run's identity
    (``config_hash`` of :meth:`~trlearner.run.config.RunConfig.identity`, the hash its
    provenance.json records and the report checks). The rule passes it to ``train-job`` or
    ``stacked-job`` as one quoted string; no flag is built, edited or parsed on the way.

    Example:
        >>> from trlearner.run.config import resolve_config
        >>> cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=20)
        >>> read_job(job_document([cfg])) == [cfg]
        True
    """
    from trlearner.run.results import config_hash

    return json.dumps({"runs": [{"config": c.to_dict(), "identity": config_hash(c.identity())} for c in cfgs]},
                      sort_keys=True, separators=(",", ":"))


def read_job(text: str) -> list:
    """The run configs of a :func:`job_document`, each checked against the identity it was sent
    with (a config that resolves differently here, e.g. other code, is refused).

    Raises:
        ValueError: not a job document, an invalid setting, or an identity that differs.
    """
    from trlearner.run.config import RunConfig
    from trlearner.run.results import config_hash

    try:
        runs = json.loads(text)["runs"]
        pairs = [(RunConfig.from_dict(r["config"]), r["identity"]) for r in runs]
    except (TypeError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a job document ({type(exc).__name__}: {exc}); the Snakemake rules write it "
                         f"(trlearner.pipeline.jobs.job_document)") from None
    for cfg, identity in pairs:
        if config_hash(cfg.identity()) != identity:
            raise ValueError(f"the run config of seed {cfg.seed} resolves to identity {config_hash(cfg.identity())} "
                             f"here, not {identity} as planned; rerun Snakemake with this code")
    if not pairs:
        raise ValueError("the job document lists no run")
    return [cfg for cfg, _ in pairs]


def train_job(job: str, out: str, threads: int | None = None, lock_dir: str | None = None,
              quiet: bool = False) -> int:
    """Train the one run of ``job`` (:func:`job_document`) into ``out`` for the pipeline: claim
    a GPU when the device is CUDA, drop a stale checkpoint, and map "diverged" (exit 3,
    metrics.json written) to success so the report shows the cell as diverged instead of the
    DAG failing. The run folder is locked (``trlearner.run.folder.run_lock``) from the
    checkpoint check to the end of the run."""
    from trlearner.run.folder import RunFolderError, run_lock

    try:
        (cfg,) = read_job(job)
    except ValueError as exc:
        print(f"pipeline: error: {exc}", file=sys.stderr)
        return 2
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(path):
            return _train_job_locked(cfg, path, threads, lock_dir, quiet)
    except RunFolderError as exc:
        print(f"pipeline: error: {exc}", file=sys.stderr)
        return 2


def _train_job_locked(cfg, out: Path, threads: int | None, lock_dir: str | None, quiet: bool) -> int:
    from trlearner.run.cli import execute
    from trlearner.run.config import DIVERGED_EXIT
    from trlearner.util.cli import logging_to_stderr

    remove_stale_checkpoint(out, cfg)
    with gpu_claim(cfg.device, lock_dir) as device:
        cfg.device = device
        with logging_to_stderr(quiet):
            rc = execute(cfg, out, threads=threads, progress=False)
    if rc == DIVERGED_EXIT and (out / "metrics.json").exists():
        print("pipeline: run diverged; metrics.json records status 'diverged' for the report",
              file=sys.stderr)
        return 0
    return rc


def stacked_job(job: str, out: str, threads: int | None = None, lock_dir: str | None = None) -> int:
    """Train the seeds of ``job`` (:func:`job_document`; one chunk of a cell) together, seed
    ``s`` into ``out.format(seed=s)``, as :func:`train_job` trains one run: drop each seed's stale
    checkpoint, claim a GPU when the device is CUDA, and map "diverged" (exit 3, every seed's
    metrics.json written) to success. Each seed's run folder is locked by the stacked trainer
    itself (:func:`trlearner.run.stacked.train_stacked`), for the whole training; the
    stale-checkpoint check runs just before, outside that lock (Snakemake never runs two jobs of
    one output)."""
    from trlearner.run.config import DIVERGED_EXIT
    from trlearner.run.stacked import run_stack

    try:
        cfgs = read_job(job)
    except ValueError as exc:
        print(f"pipeline: error: {exc}", file=sys.stderr)
        return 2
    if "{seed}" not in out:
        print(f"pipeline: error: --out {out!r} must contain '{{seed}}' (one run folder per seed)", file=sys.stderr)
        return 2
    outs = [Path(out.format(seed=c.seed)) for c in cfgs]
    for cfg, path in zip(cfgs, outs):
        if path.is_dir():
            remove_stale_checkpoint(path, cfg)
    with gpu_claim(cfgs[0].device, lock_dir) as device:
        for cfg in cfgs:
            cfg.device = device
        rc = run_stack(cfgs, out, threads=threads, progress=False)
    if rc == DIVERGED_EXIT and all((o / "metrics.json").exists() for o in outs):
        print("pipeline: a seed diverged; its metrics.json records status 'diverged' for the report",
              file=sys.stderr)
        return 0
    return rc


def fetch_data(dataset: str, out: str, data_root: str = "data") -> int:
    """Make ``dataset`` available through its DVC stage ``fetch@<dataset>`` and write its
    manifest (the dataset's identity/hash) to ``out``.

    ``dvc --wait-for-lock repro --pull --single-item fetch@<dataset>`` restores the data from the
    DVC remote when ``dvc.lock`` pins it, else runs the stage (download, verify, convert) and
    records it in ``dvc.lock``. There is no fallback outside DVC: a dataset without a stage, or
    one that cannot be fetched (no network, nothing in ``data/manual/<dataset>/``), fails the job
    with DVC's output, which holds the fetch error. Generated datasets (sinusoid, harmonic) need
    no data: their manifest is the generator's identity.

    Arguments:
        dataset: a registry dataset name.
        out: the manifest file to write.
        data_root: the data folder; must be ``data`` (DVC's stages write ``data/raw/<dataset>``).

    Returns:
        0, or the failing command's exit status (2 for a dataset without a DVC stage).

    Example::

        python -m trlearner.pipeline fetch-data omniglot_small --out results/data/omniglot_small.manifest.json
    """
    from trlearner.run.results import atomic_write_json

    if dataset in GENERATED:
        from trlearner.data.registry import get

        man = {"dataset": dataset, "kind": "generated", "identity": get(dataset).identity()}
        atomic_write_json(Path(out), man)
        return 0
    stage = f"fetch@{dataset}"
    if dataset not in dvc_datasets():
        print(f"pipeline: dataset {dataset!r} has no DVC stage {stage} (params.yaml `datasets`, dvc.yaml); "
              f"every dataset is fetched through DVC. Run `python -m trlearner.pipeline dvc-params` to list "
              f"every registry dataset in params.yaml, then rerun.", file=sys.stderr)
        return 2
    if Path(data_root).resolve() != Path("data").resolve():
        print(f"pipeline: data_root {data_root!r}: the DVC stage {stage} writes data/raw/{dataset} of this "
              f"checkout; allowed: data_root 'data' (make data/ a link to shared storage, or share a DVC "
              f"remote: docs/DATA.md)", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--pull", "--single-item", stage]
    print("pipeline:", " ".join(cmd), file=sys.stderr)
    rc = subprocess.call(cmd)
    if rc != 0 and _corrupt_cache_advice(dataset, stage):  # DVC saw the object's damage and found no remote
        return rc
    if rc != 0:
        print(f"pipeline: {stage} failed (exit {rc}); the fetch error is above. Nothing outside DVC was "
              f"tried. Provide the files (network, TRLEARNER_MIRROR, or data/manual/{dataset}/) and rerun.",
              file=sys.stderr)
        return rc
    from trlearner.data.errors import DataFetchError
    from trlearner.data.fetch import manifest

    try:
        man = manifest(dataset, root=data_root)
    except DataFetchError as exc:  # DVC restored a cache that differs from its MANIFEST: one line, the way out
        if not _corrupt_cache_advice(dataset, stage):
            print(f"pipeline: {exc.headline}; remove it and fetch anew: dvc repro --force --single-item {stage}, "
                  f"then rerun this command", file=sys.stderr)
        return 1
    atomic_write_json(Path(out), {"dataset": dataset, "kind": "archive", "manifest": man})
    return 0


def _corrupt_cache_advice(dataset: str, stage: str) -> bool:
    """Print one line naming the corrupt objects of DVC's cache behind ``data/raw/<dataset>`` and
    the command that removes them and fetches anew (``dvc checkout`` or ``repro --pull`` would
    restore the same objects); False when none is corrupt."""
    bad = corrupt_cache_objects(dataset)
    if bad:
        print(f"pipeline: DVC's cache holds corrupt objects of data/raw/{dataset} ("
              + ", ".join(f"{rel}: {obj}" for rel, obj in bad) + "), which `dvc checkout` and `dvc pull` restore as "
              f"they are; remove them and fetch anew: rm -f {' '.join(obj for _, obj in bad)} && "
              f"dvc repro --force --single-item {stage}, then rerun this command", file=sys.stderr)
    return bool(bad)


def corrupt_cache_objects(dataset: str, lock: str | Path = "dvc.lock") -> list[tuple[str, str]]:
    """The objects of DVC's cache behind ``data/raw/<dataset>`` (as ``dvc.lock`` pins it) whose
    content does not have the md5 they are named by: ``[(path in the dataset, object path)]``.
    Reads ``dvc.lock``, the ``.dir`` listing and the objects in ``dvc cache dir`` (DVC 3 layout
    ``files/md5/<2>/<30>``); any of them missing or unreadable gives ``[]``."""
    import hashlib

    from trlearner.util.yamlsafe import safe_load

    try:
        stage = (safe_load(Path(lock).read_text()) or {}).get("stages", {}).get(f"fetch@{dataset}", {})
        want = next(o["md5"] for o in stage.get("outs", ()) if o.get("path") == f"data/raw/{dataset}")
        r = subprocess.run([sys.executable, "-m", "dvc", "cache", "dir"], capture_output=True, text=True, timeout=60)
        cache = Path(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else Path(".dvc/cache")
        obj = lambda md5: cache / "files" / "md5" / md5[:2] / md5[2:]  # noqa: E731
        listing = json.loads(obj(want).read_text())
        bad = []
        for entry in listing:
            path = obj(entry["md5"])
            with open(path, "rb") as fh:
                digest = hashlib.file_digest(fh, "md5").hexdigest()
            if digest != entry["md5"]:
                bad.append((entry["relpath"], str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd())
                            else str(path)))
        return bad
    except (OSError, ValueError, KeyError, StopIteration, TypeError, AttributeError, subprocess.SubprocessError):
        return []


def gallery(argv: list[str]) -> int:
    """The episode pictures of one dataset (``trlearner.report.gallery``'s options)."""
    from trlearner.report.gallery import main

    return main(argv)


def register_commands(sub) -> None:
    """Add the ``analysis`` and ``report`` commands (those of ``trlearner analysis`` and
    ``trlearner report``) to a subparsers object."""
    from trlearner.analysis.cli import register as analysis
    from trlearner.report.cli import register as report

    analysis(sub)
    report(sub)

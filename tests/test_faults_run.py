"""Run integrity faults (issue 14): checkpoints of other code, flipped bits, planted pickles,
two runs on one folder, another run's results, permissions, leftovers of a SIGKILL.

Every fault is injected with the real input: real checkpoints, real `python -m trlearner`
processes, a real copy of the package edited as a developer would edit it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO
from workflow_helpers import job_of
from trlearner.run import folder as runio
from trlearner.cli import main
from trlearner.run.config import resolve_config
from trlearner.run.train import train

TINY = dict(dataset="sinusoid", algorithm="maml", shots=5, iterations=60, test_tasks=30,
            meta_batch=5, checkpoint_every=20)
CLI_TINY = ["train", "--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "60",
            "--meta-batch", "5", "--test-tasks", "30", "--checkpoint-every", "20", "--threads", "1",
            "--no-progress"]


def _env(pythonpath: Path | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def _cli(args, pythonpath: Path | None = None, module: str = "trlearner"):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=_env(pythonpath), timeout=600)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path.name} no longer holds {old!r}: update this test's edit"
    path.write_text(text.replace(old, new))


def _package_copy(dest: Path, *edits) -> Path:
    """A copy of the package under ``dest`` (the folder to put on PYTHONPATH) with ``edits``
    (path inside the package, old text, new text) applied: other code, as after an edit."""
    shutil.copytree(REPO / "src" / "trlearner", dest / "trlearner",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for rel, old, new in edits:
        _edit(dest / "trlearner" / rel, old, new)
    return dest


# the loss of every baseline run scaled by 1.5: other numbers from the first iteration on
SCALE_LOSS = ("run/model.py", 'return loss + reg.penalty(meta), {"loss": loss.item()}, None',
              'return 1.5 * loss + reg.penalty(meta), {"loss": loss.item()}, None')
# the process SIGKILLs itself right after writing the checkpoint of iteration 20
KILL_AT_20 = ("run/train.py", "            checkpoint(it + 1)\n",
              "            checkpoint(it + 1)\n            if it + 1 == 20:\n"
              "                import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n")
# ANIL's inner step at half the learning rate: a one-line edit of engine/algorithms/anil.py
ANIL_EDIT = ("engine/algorithms/anil.py", "state = {k: state[k] - lr * g[k] for k in state}",
             "state = {k: state[k] - 0.5 * lr * g[k] for k in state}")


# --------------------------------------------------------------------------- code identity

def test_code_hash_follows_the_content_of_every_module_not_its_mtime(tmp_path):
    pkg = _package_copy(tmp_path)
    h = runio.code_hash.__wrapped__(pkg / "trlearner")
    assert h == runio.code_hash.__wrapped__(REPO / "src" / "trlearner")  # the same files, elsewhere
    os.utime(pkg / "trlearner" / "run" / "train.py", (time.time() + 50, time.time() + 50))
    assert runio.code_hash.__wrapped__(pkg / "trlearner") == h
    (pkg / "trlearner" / "engine" / "algorithms" / "anil.py").write_text(
        (pkg / "trlearner" / "engine" / "algorithms" / "anil.py").read_text() + "\n# edited\n")
    assert runio.code_hash.__wrapped__(pkg / "trlearner") != h


def test_resume_on_other_code_starts_again_and_equals_a_fresh_run_of_this_code(tmp_path):
    """Killed at iteration 20 on old code, resumed on this code: no mixture of the two."""
    old = _package_copy(tmp_path / "old", SCALE_LOSS, KILL_AT_20)
    run = tmp_path / "run"
    killed = _cli([*CLI_TINY, "--out", str(run)], pythonpath=old)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (run / "metrics.json").exists()
    old_hash = runio.code_hash.__wrapped__(old / "trlearner")
    ckpt = runio.load_checked(run / "checkpoint.pt")
    assert ckpt["iteration"] == 20 and ckpt["code_hash"] == old_hash

    resumed = train(resolve_config(**TINY), run, progress=False)
    log = (run / "log.txt").read_text()
    assert f"checkpoint from code {old_hash}, this code is {runio.code_hash()}: starting again" in log
    assert "resumed at iteration" not in log
    fresh = train(resolve_config(**TINY), tmp_path / "fresh", progress=False)
    assert resumed["per_task"] == fresh["per_task"] and resumed["mean"] == fresh["mean"]
    assert json.loads((run / "provenance.json").read_text())["code_hash"] == runio.code_hash()
    # the test can fail: the old code trained other weights (a resume would carry them on)
    train(resolve_config(**dict(TINY, iterations=20)), tmp_path / "fresh20", progress=False)
    new20 = runio.load_checked(tmp_path / "fresh20" / "checkpoint.pt")["meta"]
    assert any(not torch.equal(v, new20[k]) for k, v in ckpt["meta"].items())


def test_finished_job_rerun_after_an_anil_edit_retrains_on_the_new_code(tmp_path):
    """As Snakemake does after an edit of algorithms/anil.py: metrics.json deleted, the job
    rerun on the edited code. It must retrain, not re-evaluate the old weights."""
    from trlearner.pipeline.jobs import train_job

    args = ["--dataset", "sinusoid", "--algorithm", "anil", "--shots", "5", "--iterations", "40",
            "--meta-batch", "5", "--test-tasks", "30", "--checkpoint-every", "20", "--device", "cpu"]
    job = job_of(args)
    run = tmp_path / "run"
    assert train_job(job, str(run), threads=1) == 0  # the finished job, on this code
    old = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").unlink()

    new = _package_copy(tmp_path / "new", ANIL_EDIT)
    new_hash = runio.code_hash.__wrapped__(new / "trlearner")
    rerun = _cli(["train-job", "--job", job, "--threads", "1", "--out", str(run)], pythonpath=new,
                 module="trlearner.pipeline")
    assert rerun.returncode == 0, rerun.stderr
    log = (run / "log.txt").read_text()
    assert f"checkpoint from code {runio.code_hash()}, this code is {new_hash}: starting again" in log
    assert "resumed at iteration" not in log
    assert runio.load_checked(run / "checkpoint.pt")["code_hash"] == new_hash
    assert json.loads((run / "provenance.json").read_text())["code_hash"] == new_hash

    fresh = _cli(["train", *args, "--threads", "1", "--no-progress", "--out", str(tmp_path / "fresh")],
                 pythonpath=new)
    assert fresh.returncode == 0, fresh.stderr
    got = json.loads((run / "metrics.json").read_text())
    want = json.loads((tmp_path / "fresh" / "metrics.json").read_text())
    assert got["per_task"] == want["per_task"]
    assert got["per_task"] != old["per_task"]  # the edit changes the numbers: re-evaluating would show


# --------------------------------------------------------------------------- corrupted checkpoints

def _flip_a_bit_of_the_largest_tensor(path: Path) -> None:
    """Flip one bit in the middle of the largest tensor stored in a torch zip file (the data
    records are stored uncompressed: torch does not notice)."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    off = info.header_offset
    name_len = int.from_bytes(raw[off + 26:off + 28], "little")
    extra_len = int.from_bytes(raw[off + 28:off + 30], "little")
    raw[off + 30 + name_len + extra_len + info.file_size // 2] ^= 0x04
    path.write_bytes(bytes(raw))


def test_flipped_bit_in_a_checkpoint_tensor_is_refused_and_the_previous_one_resumed(tmp_path):
    run = tmp_path / "run"
    ref = train(resolve_config(**TINY), run, progress=False)  # checkpoint @60, prev @40
    before = torch.load(run / "checkpoint.pt", weights_only=True)
    _flip_a_bit_of_the_largest_tensor(run / "checkpoint.pt")
    after = torch.load(run / "checkpoint.pt", weights_only=True)  # torch alone loads it silently
    changed = [k for k in before["meta"] if not torch.equal(before["meta"][k], after["meta"][k])]
    assert len(changed) == 1 or any(not torch.equal(before["opt"]["state"][i][s], after["opt"]["state"][i][s])
                                    for i in before["opt"]["state"] for s in ("exp_avg", "exp_avg_sq"))
    with pytest.raises(runio.CheckpointError, match="fails its checksum"):
        runio.load_checked(run / "checkpoint.pt")
    (run / "metrics.json").unlink()
    m = train(resolve_config(**TINY), run, progress=False)
    log = (run / "log.txt").read_text()
    assert "fails its checksum" in log and "resumed at iteration 40" in log
    assert m["per_task"] == ref["per_task"]


class _RunsCode:
    """Unpickling this calls open(marker, "w"): proof that a load ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_planted_pickle_checkpoint_and_relation_file_run_nothing(tmp_path, capsys):
    from trlearner.analysis.relations import load_probe
    from trlearner.pipeline.jobs import remove_stale_checkpoint
    from trlearner.run.cli import parse_args, run_config

    marker = tmp_path / "code-ran"
    planted = tmp_path / "planted.pt"
    torch.save({"meta": {"w": _RunsCode(marker)}, "config_hash": "x"}, planted)
    assert not marker.exists()
    torch.load(planted, weights_only=False)  # control: the full unpickler runs it
    assert marker.exists()
    marker.unlink()

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(planted, run / "checkpoint.pt")
    m = train(resolve_config(**TINY), run, progress=False)
    assert not marker.exists()
    assert "not a plain tensor file" in (run / "log.txt").read_text()
    assert m["per_task"] == train(resolve_config(**TINY), tmp_path / "fresh", progress=False)["per_task"]

    job = tmp_path / "job"
    job.mkdir()
    shutil.copy(planted, job / "checkpoint.pt")
    remove_stale_checkpoint(job, run_config(parse_args(["--dataset", "sinusoid", "--algorithm", "maml",
                                                        "--shots", "5", "--out", str(job)])))
    assert not marker.exists() and (job / "checkpoint.pt").exists()  # left for train to report

    shutil.copy(planted, run / "relation.pt")
    with pytest.raises(ValueError, match="not a plain tensor file"):
        load_probe(SimpleNamespace(path=run))
    assert not marker.exists()


def test_a_checkpoint_holds_plain_data_only(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint\['x'\] is a \w*Path; a checkpoint may hold only"):
        runio.save_checked(tmp_path / "c.pt", {"x": tmp_path})
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- run folder

def _wait_for_lock(out: Path, pid: int, proc) -> dict:
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            info = json.loads((out / runio.LOCK_NAME).read_text())
            if info.get("pid") == pid:
                return info
        except (OSError, ValueError):
            pass
        assert proc.poll() is None, "the first run ended before it was seen holding the lock"
        time.sleep(0.02)
    raise AssertionError("the first run never took the lock")


LONG = ["train", "--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "400",
        "--meta-batch", "5", "--test-tasks", "30", "--checkpoint-every", "100", "--threads", "1", "--no-progress"]


def test_second_train_on_the_same_out_refuses_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "trlearner", *LONG, "--out", str(out)], env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = _wait_for_lock(out, first.pid, first)
        os.kill(first.pid, signal.SIGSTOP)  # holds the lock, frozen, for as long as the test needs
        second = _cli([*LONG, "--out", str(out)])
    finally:
        os.kill(first.pid, signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=600)
    assert second.returncode == 2
    assert f"pid {first.pid} on host {socket.gethostname()}, started {info['started']}" in second.stderr
    assert "in use by another run" in second.stderr
    assert first.returncode == 0, stderr
    assert (out / "log.txt").read_text().count(" run sinusoid maml") == 1  # the second wrote nothing
    assert not (out / runio.LOCK_NAME).exists()  # released at the end
    got = json.loads((out / "metrics.json").read_text())
    cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=400, meta_batch=5,
                         test_tasks=30, checkpoint_every=100)
    assert got["per_task"] == train(cfg, tmp_path / "ref", progress=False)["per_task"]


def test_lock_and_temp_files_of_a_killed_run_are_taken_over_and_removed(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "trlearner", *LONG, "--out", str(out)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_lock(out, proc.pid, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((out / runio.LOCK_NAME).read_text())["pid"] == proc.pid  # left behind
    # what a SIGKILL during atomic writes leaves: this module's marker, and the form before issue 27
    # (".<name>.<8 chars>.tmp", also mkstemp's), still removed for a run's own files only
    leftovers = [out / ".trlearner-tmp.metrics.json.3f9a0c1e5b7d9a2c", out / ".checkpoint.pt.k2_x9qzm.tmp"]
    for p in leftovers:
        p.write_bytes(b"half a file")
    cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=400, meta_batch=5,
                         test_tasks=30, checkpoint_every=100)
    train(cfg, out, progress=False)
    log = (out / "log.txt").read_text()
    assert f"took over the lock of {out} from pid {proc.pid} on host {socket.gethostname()}" in log
    assert "is gone" in log
    for p in leftovers:
        assert not p.exists() and f"removed {p.name}" in log
    assert not (out / runio.LOCK_NAME).exists()


def test_lock_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    with runio.run_lock(tmp_path) as prev:
        assert prev is None
        with runio.run_lock(tmp_path):
            pass
        assert (tmp_path / runio.LOCK_NAME).exists()  # the inner release kept the outer lock
        probe = subprocess.run([sys.executable, "-c", "import sys; from trlearner.run import folder as runio\n"
                                "try:\n  runio.run_lock(sys.argv[1]).__enter__()\n"
                                "except runio.RunLockedError as e: print(e); sys.exit(7)", str(tmp_path)],
                               capture_output=True, text=True, env=_env())
        assert probe.returncode == 7 and f"pid {os.getpid()}" in probe.stdout
    assert not (tmp_path / runio.LOCK_NAME).exists()


def test_another_runs_metrics_are_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*CLI_TINY, "--out", str(out)]) == 0  # a shots-5 run
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (out / name).unlink()
    before = (out / "metrics.json").read_bytes()
    shots10 = [a if a != "5" else "10" for a in CLI_TINY]
    capsys.readouterr()
    assert main([*shots10, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "metrics.json of a run with other settings" in err and "--force" in err
    assert (out / "metrics.json").read_bytes() == before
    (out / "provenance.json").unlink()  # no provenance: the metrics' own fields name the run
    assert main([*shots10, "--out", str(out)]) == 2
    assert "shots 5 (this run: 10)" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before
    assert main([*shots10, "--out", str(out), "--force"]) == 0
    assert json.loads((out / "metrics.json").read_text())["shots"] == 10
    assert "--force: replacing the results of another run" in (out / "log.txt").read_text()
    # the same run again, with its metrics and no checkpoint: retrained, not refused
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (out / name).unlink()
    assert main([*shots10, "--out", str(out)]) == 0


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_run_files_and_manifests_respect_the_umask(tmp_path):
    from fixtures_data import fetch_fixture
    from trlearner.data.fetch import MANIFEST, raw_dir
    from trlearner.pipeline.jobs import fetch_data

    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        assert main([*CLI_TINY, "--trlearner", "--out", str(out)]) == 0
        for name in ("metrics.json", "provenance.json", "checkpoint.pt", "checkpoint.prev.pt", "relation.pt",
                     "log.txt"):
            assert _mode(out / name) == 0o644, name
        assert fetch_data("sinusoid", str(tmp_path / "sinusoid.manifest.json")) == 0
        assert _mode(tmp_path / "sinusoid.manifest.json") == 0o644
        root, _, _ = fetch_fixture("omniglot_small", tmp_path / "fx")
        data = raw_dir("omniglot_small", root)
        assert _mode(data / MANIFEST) == 0o644 and _mode(data) == 0o755
        assert all(_mode(p) == 0o644 for p in data.rglob("*") if p.is_file())
        os.umask(0o027)
        runio.atomic_write_json(tmp_path / "group.json", {})
        assert _mode(tmp_path / "group.json") == 0o640
    finally:
        os.umask(old)


@pytest.mark.slow
def test_snakemake_rerun_after_an_anil_edit_retrains(tmp_path):
    """The issue's probe through Snakemake itself: a finished ANIL job, then a one-line edit of
    algorithms/anil.py; Snakemake reruns the job, which must retrain on the edited code."""
    from workflow_helpers import copy_pipeline, snakemake

    d = copy_pipeline(tmp_path / "repo")
    run = "results/tiny/runs/sinusoid/5shot/anil/trlearner/seed0"
    target = [f"{run}/metrics.json", "--cores", "1", "--configfile", "config/tiny.yaml"]
    snakemake(d, *target)
    old = json.loads((d / run / "metrics.json").read_text())
    _edit(d / "src/trlearner" / ANIL_EDIT[0], *ANIL_EDIT[1:])
    snakemake(d, *target)
    log = (d / run / "log.txt").read_text()
    new_hash = runio.code_hash.__wrapped__(d / "src" / "trlearner")
    assert f"this code is {new_hash}: starting again" in log and "resumed at iteration" not in log
    assert json.loads((d / run / "provenance.json").read_text())["code_hash"] == new_hash
    assert json.loads((d / run / "metrics.json").read_text())["per_task"] != old["per_task"]

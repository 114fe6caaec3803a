"""Run folder and config inputs (issue 27): planted symbolic links, a folder that is not a run
folder, a user's dot-files named like temporary files, a finished record overwritten by other
settings, two stacked seeds resolving to one folder, seeds out of range.

Every probe is the real input through the real command (``python -m trlearner train``, the
stacked runner, ``pipeline train-job``, ``pipeline check``), and checks the one-line error, the
exit status and that nothing was written (docs/FAULTS.md, "Run folder and config inputs").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from workflow_helpers import job_of
from trlearner.cli import main
from trlearner.run import folder as runio
from trlearner.run import stacked
from trlearner.run.seeds import SEED_LIMIT

# the probe of issue 27 item 4, and the run every other probe would start
ARGS = ["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "20", "--test-tasks", "5",
        "--test-queries", "5", "--curve-steps", "1", "--threads", "1", "--no-progress"]
TRAIN = ["train", *ARGS]


def _listing(folder: Path) -> dict:
    """Every file under ``folder`` (links as links) with its bytes or link target."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = ("link", os.readlink(p))
        elif p.is_file():
            out[str(p.relative_to(folder))] = p.read_bytes()
        else:
            out[str(p.relative_to(folder))] = "dir"
    return out


def _error_line(capsys, prog: str = "trlearner train") -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def _job(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "trlearner.pipeline", *args], capture_output=True, text=True,
                          env=env, timeout=600)


# --------------------------------------------------------------------------- item 1: symbolic links

@pytest.mark.parametrize("name", ["log.txt", "metrics.json", "provenance.json", "checkpoint.pt", ".run.lock"])
def test_a_planted_link_in_the_run_folder_is_refused_and_its_target_untouched(tmp_path, capsys, name):
    """Before: `train` appended its log to the target of a `log.txt` link (and truncated the
    target of a `.run.lock` link to write its holder into it)."""
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("someone's file\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(elsewhere)
    before = _listing(tmp_path)
    assert main([*TRAIN, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert f"{out / name} is a symbolic link (to {elsewhere}); a run folder follows no link out of itself" in line
    assert "another --out" in line
    assert _listing(tmp_path) == before  # the target byte-identical, nothing written in the folder


def test_a_planted_log_link_is_refused_by_the_pipeline_job_and_the_stacked_runner(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("someone's file\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.txt").symlink_to(elsewhere)
    before = _listing(tmp_path)
    r = _job(["train-job", "--job", job_of(ARGS), "--out", str(out)])
    assert r.returncode == 2 and f"pipeline: error: {out / 'log.txt'} is a symbolic link" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert _listing(tmp_path) == before
    (tmp_path / "run0").mkdir()
    (tmp_path / "run0" / "log.txt").symlink_to(elsewhere)
    before = _listing(tmp_path)
    assert stacked.main([*ARGS, "--seeds", "0", "1", "--out", str(tmp_path / "run{seed}")]) == 2
    line = _error_line(capsys, "trlearner.run.stacked")
    assert f"{tmp_path / 'run0' / 'log.txt'} is a symbolic link" in line
    assert _listing(tmp_path) == before  # run1 not created either


def test_a_link_planted_after_the_check_is_not_followed(tmp_path):
    """The log and the lock are opened with O_NOFOLLOW; a temporary file is a new file (O_EXCL)."""
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("x")
    (tmp_path / "log.txt").symlink_to(elsewhere)
    with pytest.raises(runio.RunFolderLinkError, match="log.txt is a symbolic link"):
        runio.open_append(tmp_path / "log.txt")
    assert elsewhere.read_text() == "x"


# --------------------------------------------------------------------------- item 2: temporary files

def test_only_the_run_folders_own_temp_files_are_deleted(tmp_path, monkeypatch):
    """Before: `.thesis.20261206.tmp` and `.notes.abcdefgh.tmp` (a user's, in the --out folder)
    matched `.<name>.<8 chars>.tmp` and were deleted at run start."""
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    users = {out / ".thesis.20261206.tmp": b"my thesis backup", out / ".notes.abcdefgh.tmp": b"notes"}
    for p, data in users.items():
        p.write_bytes(data)
    ours = [out / ".trlearner-tmp.metrics.json.0123456789abcdef", out / ".metrics.json.3f9a0c1e.tmp"]
    for p in ours:  # a killed write's leftover, in this module's naming and the former one
        p.write_bytes(b"half a file")
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(runio.os, "replace", lambda a, b: (seen.append(Path(a).name), real_replace(a, b)))
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (out / name).unlink(missing_ok=True)
    assert main([*TRAIN, "--out", str(out)]) == 0  # the same run again: retrained, temp files cleaned
    for p, data in users.items():
        assert p.read_bytes() == data
    log = (out / "log.txt").read_text()
    for p in ours:
        assert not p.exists() and f"removed {p.name}" in log
    assert ".thesis" not in log and ".notes" not in log
    assert seen and all(runio.TEMP_FILE.match(n) and n.startswith(".trlearner-tmp.") for n in seen), seen


# --------------------------------------------------------------------------- item 3: not a run folder

def test_a_folder_with_other_files_and_no_run_is_refused(tmp_path, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\documentclass{article}\n")
    (thesis / ".thesis.20261206.tmp").write_text("backup\n")
    before = _listing(tmp_path)
    assert main([*TRAIN, "--out", str(thesis)]) == 2
    line = _error_line(capsys)
    assert (f"--out {thesis} holds other files (.thesis.20261206.tmp, thesis.tex) and no run of its own" in line
            and "give another --out" in line), line
    assert _listing(tmp_path) == before
    r = _job(["train-job", "--job", job_of(ARGS), "--out", str(thesis)])
    assert r.returncode == 2 and f"pipeline: error: --out {thesis} holds other files" in r.stderr, r.stderr
    assert _listing(tmp_path) == before
    paper = tmp_path / "paper1"  # the stacked runner: seed 0 a new folder, seed 1 a user's
    paper.mkdir()
    (paper / "paper.tex").write_text("x")
    before = _listing(tmp_path)
    assert stacked.main([*ARGS, "--seeds", "0", "1", "--out", str(tmp_path / "paper{seed}")]) == 2
    assert f"--out {paper} holds other files (paper.tex)" in _error_line(capsys, "trlearner.run.stacked")
    assert _listing(tmp_path) == before  # paper0 not created


def test_what_counts_as_a_run_of_its_own(tmp_path):
    names = ["metrics.json", "provenance.json", "log.txt", "relation.pt", ".run.lock", "checkpoint.pt",
             "checkpoint.prev.pt", "checkpoint.stale.pt", ".trlearner-tmp.metrics.json.0123456789abcdef"]
    for name in names:
        d = tmp_path / name.strip(".")
        d.mkdir()
        (d / name).write_text("x")
        (d / "notes.txt").write_text("a file of the user beside a run")
        runio.check_run_folder(d)  # a run folder: accepted
    runio.check_run_folder(tmp_path / "new")  # absent
    (tmp_path / "empty").mkdir()
    runio.check_run_folder(tmp_path / "empty")
    for other in ("thesis.tex", ".thesis.20261206.tmp", "results.json", "checkpoint.ckpt"):
        d = tmp_path / f"other-{other.strip('.')}"
        d.mkdir()
        (d / other).write_text("x")
        with pytest.raises(runio.RunFolderError, match="and no run of its own"):
            runio.check_run_folder(d)


# --------------------------------------------------------------------------- item 4: a finished record

def test_a_finished_record_is_not_overwritten_by_other_settings_without_force(tmp_path, capsys):
    """Before: metrics.json of a 20-iteration run (no provenance.json, no checkpoint) was
    overwritten by a 10-iteration run, exit 0."""
    out = tmp_path / "x"
    assert main([*TRAIN, "--out", str(out)]) == 0
    for name in ("provenance.json", "checkpoint.pt", "checkpoint.prev.pt"):
        (out / name).unlink(missing_ok=True)
    before = _listing(tmp_path)
    ten = [a if a != "20" else "10" for a in TRAIN]
    capsys.readouterr()
    assert main([*ten, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert f"{out} holds the metrics.json of a run with other settings (iterations 20 (this run: 10))" in line
    assert "pass --force" in line
    assert _listing(tmp_path) == before
    assert main([*ten, "--out", str(out), "--force"]) == 0
    assert json.loads((out / "metrics.json").read_text())["protocol"]["iterations"] == 10


def test_every_recorded_setting_of_a_metrics_json_is_compared(tmp_path, capsys):
    from trlearner.method.relation import TRConfig
    from trlearner.run.results import config_hash
    from trlearner.run.config import resolve_config
    from trlearner.run.session import other_run

    base = dict(dataset="sinusoid", algorithm="maml", shots=5, iterations=20, test_tasks=5, test_queries=5,
                curve_steps=1)
    out = tmp_path / "x"
    assert main([*TRAIN, "--out", str(out)]) == 0
    (out / "provenance.json").unlink()
    cfg = resolve_config(**base)
    assert other_run(out, cfg, config_hash(cfg.identity())) is None  # its own record
    for change, expected in [({"test_tasks": 6}, "test_tasks 5 (this run: 6)"),
                             ({"inner_lr": 0.02}, "inner_lr_train 0.01 (this run: 0.02)"),
                             ({"curve_steps": 3}, "curve_steps 1 (this run: 3)"),
                             ({"first_order": True}, "first_order False (this run: True)"),
                             ({"trlearner": TRConfig()}, "trlearner None (this run: {'lam': 0.1"),
                             ({"regularizer": "weight_decay", "reg_strength": 0.1}, "regularizer {'name': 'none'")]:
        cfg = resolve_config(**{**base, **change})
        assert expected in (other_run(out, cfg, config_hash(cfg.identity())) or ""), change


# --------------------------------------------------------------------------- item 5: stacked seeds

def test_two_stacked_seeds_resolving_to_one_folder_are_refused_before_training(tmp_path, capsys, monkeypatch):
    """Before: `--out 'st/{seed}/../same'` trained seed 0, then seed 1 over it, exit 0."""
    monkeypatch.chdir(tmp_path)
    assert stacked.main([*ARGS, "--seeds", "0", "1", "--out", "st/{seed}/../same"]) == 2
    line = _error_line(capsys, "trlearner.run.stacked")
    assert (f"seeds 0 and 1 would share one run folder, {tmp_path / 'st' / 'same'} (--out 'st/{{seed}}/../same' "
            f"gives 'st/1/../same' for seed 1)") in line, line
    assert "give each seed its own folder" in line
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written
    # the same through symbolic links: two names of one folder
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    for s in (0, 1):
        (tmp_path / "links" / f"s{s}").symlink_to(tmp_path / "real")
    before = _listing(tmp_path)
    assert stacked.main([*ARGS, "--seeds", "0", "1", "--out", "links/s{seed}"]) == 2
    assert f"would share one run folder, {tmp_path / 'real'}" in _error_line(capsys, "trlearner.run.stacked")
    assert _listing(tmp_path) == before
    from trlearner.run.config import resolve_config

    cfgs = [resolve_config(dataset="sinusoid", algorithm="maml", shots=5, seed=s, iterations=2, test_tasks=4)
            for s in (0, 1)]
    with pytest.raises(ValueError, match="seeds 0 and 1 would share one run folder"):
        stacked.train_stacked(cfgs, ["st/0/../same", "st/1/../same"], progress=False)
    assert _listing(tmp_path) == before


# --------------------------------------------------------------------------- item 7: seeds

@pytest.mark.parametrize("seed", [str(2**63), str(SEED_LIMIT), "-1"])
def test_a_seed_out_of_range_is_refused_by_train_and_stacked(tmp_path, capsys, seed):
    """Before: `--seed 9223372036854775808` trained, then the report failed (OverflowError)."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main([*TRAIN, "--seed", seed, "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --seed: must be 0 <= seed < 2**31 ({SEED_LIMIT}), got {seed}" in err
    with pytest.raises(SystemExit) as e:
        stacked.main([*ARGS, "--seeds", "0", seed, "--out", str(tmp_path / "s{seed}")])
    assert e.value.code == 2
    assert f"argument --seeds: must be 0 <= seed < 2**31 ({SEED_LIMIT}), got {seed}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_largest_seed_trains(tmp_path):
    from trlearner.run.cli import parse_args

    assert parse_args([*ARGS, "--seed", str(SEED_LIMIT - 1), "--out", "x"]).seed == SEED_LIMIT - 1


def test_a_config_seed_out_of_range_is_refused_by_pipeline_check(tmp_path):
    config = tmp_path / "seeds.yaml"
    config.write_text((REPO / "config" / "tiny.yaml").read_text().replace("seeds: [0]", "seeds: [0, 9223372036854775808]", 1))
    r = _job(["check", "--config", str(config)])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert ("config key experiments.regression.seeds.1: value 9223372036854775808 is out of range; allowed: "
            "<= 2147483647") in r.stderr, r.stderr


def test_the_schema_and_the_command_line_allow_the_same_seeds():
    from trlearner.pipeline.schema import definition

    items = definition("experiment")["properties"]["seeds"]["items"]
    assert (items["minimum"], items["maximum"]) == (0, SEED_LIMIT - 1)


def test_the_stacked_api_refuses_a_seed_out_of_range(tmp_path):
    from trlearner.run.config import resolve_config

    cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, seed=2**63, iterations=2, test_tasks=4)
    with pytest.raises(ValueError, match=r"seed 9223372036854775808: allowed: an integer, 0 <= seed < 2\*\*31"):
        stacked.train_stacked([cfg], [tmp_path / "s"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_write_killed_midway_leaves_the_old_checkpoint_in_place(tmp_path, monkeypatch):
    """scancel (or a node failure) while a checkpoint is written: checkpoint.pt used to be renamed
    to checkpoint.prev.pt before the new one was written, so a job killed in that window left no
    checkpoint.pt (the SLURM cancel-and-resume test hit it). Now checkpoint.pt exists at every
    instant: the old one until the new one is renamed over it."""
    from trlearner.run import session
    from trlearner.run.folder import load_checked, save_checked

    save_checked(tmp_path / "checkpoint.pt", {"iteration": 100})
    save_checked(tmp_path / "checkpoint.prev.pt", {"iteration": 0})

    def killed(path, obj):  # the process dies while the new checkpoint is written
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "save_checked", killed)
    with pytest.raises(KeyboardInterrupt):
        session.save_checkpoint(tmp_path, {"iteration": 200})
    assert load_checked(tmp_path / "checkpoint.pt")["iteration"] == 100
    assert load_checked(tmp_path / "checkpoint.prev.pt")["iteration"] == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]

    monkeypatch.undo()  # and a write that completes rotates as before
    session.save_checkpoint(tmp_path, {"iteration": 200})
    assert [load_checked(tmp_path / n)["iteration"] for n in ("checkpoint.pt", "checkpoint.prev.pt")] == [200, 100]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]

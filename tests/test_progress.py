"""Progress that reaches a log (issue 25 item 2): a run whose stderr is not a terminal writes a
plain line (iteration, it/s, elapsed, ETA) to stderr and log.txt at most every 30 s of wall
time; on a terminal it keeps the tqdm bar. Fake clocks and a tiny interval, no sleeping."""

from __future__ import annotations

import itertools
import logging

import pytest

from trlearner.run import progress as progress_mod
from trlearner.run.progress import Progress
from trlearner.run.config import resolve_config
from trlearner.run.train import train
from trlearner.util.cli import logging_to_stderr

TINY = dict(dataset="sinusoid", algorithm="maml", shots=5, iterations=12, test_tasks=3, meta_batch=2,
            curve_steps=1, device="cpu")


def _run(n: int, seconds_per_reading: float, **kw) -> list[tuple[str, int]]:
    ticks = itertools.count(0, seconds_per_reading)
    lines = []
    for _ in Progress(0, n, "maml/baseline", lambda msg, level: lines.append((msg, level)),
                      progress=False, clock=lambda: next(ticks), **kw):
        pass
    return lines


def test_a_line_at_most_every_30_seconds():
    lines = _run(100, 7.0)  # 7 s per iteration: 700 s, a line every 5th iteration (35 s)
    assert len(lines) == 19  # 35 s .. 665 s, none after the last iteration
    msg, level = lines[0]
    assert msg == "maml/baseline: iteration 5/100 (5%), 0.14 it/s, elapsed 0:00:35, ETA 0:11:05"
    assert level == logging.INFO
    assert _run(100, 0.1) == []  # a 10 s run: no line at all


def test_postfix_and_resumed_start():
    ticks = itertools.count(0, 40)
    lines = []
    bar = Progress(50, 60, "anil/trlearner", lambda msg, level: lines.append(msg), progress=False,
                   clock=lambda: next(ticks))
    for it in bar:
        bar.set_postfix({"loss": "0.1234"})
    assert lines[0] == "anil/trlearner: iteration 51/60 (85%), 0.03 it/s, elapsed 0:00:40, ETA 0:06:00, loss=0.1234"


def test_terminal_keeps_the_bar_and_logs_the_line_to_log_txt_only(monkeypatch):
    monkeypatch.setattr(progress_mod, "_stderr_is_terminal", lambda: True)
    ticks = itertools.count(0, 31)
    lines = []
    bar = Progress(0, 3, "maml/baseline", lambda msg, level: lines.append(level), clock=lambda: next(ticks))
    assert bar.bar is not None
    list(bar)
    assert lines == [logging.DEBUG, logging.DEBUG]  # log.txt only: the console has the bar
    assert bar.bar is None  # closed
    assert Progress(0, 3, "x", print, progress=False).bar is None  # --no-progress: no bar


def test_train_with_stderr_a_file_writes_progress_lines_to_stderr_and_log_txt(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(progress_mod, "INTERVAL_S", 0.0)  # a line after every iteration
    with logging_to_stderr():
        train(resolve_config(**TINY), tmp_path / "run", progress=True)  # stderr is captured: not a terminal
    err = capsys.readouterr().err
    log = (tmp_path / "run" / "log.txt").read_text()
    for text in (err, log):
        assert "maml/baseline: iteration 11/12 (91%)" in text and " it/s, elapsed 0:00:" in text and "ETA" in text
        assert "\r" not in text


@pytest.mark.parametrize("seeds", [[0, 1]])
def test_stacked_writes_progress_lines_to_stderr_and_every_seed_log(tmp_path, monkeypatch, capsys, seeds):
    from trlearner.run.stacked import main

    monkeypatch.setattr(progress_mod, "INTERVAL_S", 0.0)
    rc = main(["--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "6",
               "--test-tasks", "3", "--meta-batch", "2", "--curve-steps", "1", "--no-progress",
               "--seeds", *map(str, seeds), "--out", str(tmp_path / "seed{seed}")])
    assert rc == 0
    err = capsys.readouterr().err
    assert "maml/baseline x2 seeds: iteration 5/6 (83%)" in err
    for s in seeds:
        assert "maml/baseline x2 seeds: iteration 5/6" in (tmp_path / f"seed{s}" / "log.txt").read_text()

"""The ``trlearner`` command behaves like the ecosystem's tools (issue 17 part 6): options
before or after the subcommand, one name (``--data-root``), help with defaults, ``--version``,
lazy imports, each fetch hint once with the manual drop folder, stdlib logging, and no tqdm
``\\r`` in files."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trlearner import cli
from trlearner.util import cli as util_cli
from trlearner.cli import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "scipy", "matplotlib")
TINY_TRAIN = ["train", "--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "3",
              "--test-tasks", "3", "--curve-steps", "1", "--device", "cpu"]


def run(argv, capsys) -> tuple[int, str, str]:
    """``trlearner ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def subprocess_env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")


def leaves(parser: argparse.ArgumentParser):
    """``parser`` and every parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from leaves(sub)


# --------------------------------------------------------------------------- lazy imports

def test_building_every_parser_imports_no_torch_pandas_scipy_matplotlib():
    """Fault: any of these at a module's top (train_cli's choices came from torch modules,
    report.cli imported the pandas renderer) shows up in sys.modules of a fresh process."""
    code = ("import sys, contextlib, io\n"
            "import trlearner.cli as c\n"
            "for cmd in (None, 'train', 'data', 'report', 'analysis'):\n"
            "    c.build_parser(cmd)\n"
            "for argv in (['--help'], ['train', '--help'], ['data', 'fetch', '--help'], ['report', '--help'],\n"
            "             ['analysis', '--help'], ['--version']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try:\n"
            "            c.main(argv)\n"
            "        except SystemExit:\n"
            "            pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


def test_build_parser_defines_every_command_by_default(tmp_path):
    """Library callers (tests) parse ``train ...`` with ``build_parser()``."""
    args = build_parser().parse_args(TINY_TRAIN + ["--out", str(tmp_path)])
    assert (args.command, args.func.__module__, args.iterations) == ("train", "trlearner.run.cli", 3)
    assert build_parser().parse_args(["data", "list"]).func.__name__ == "cmd_list"
    with pytest.raises(SystemExit):  # a placeholder parses nothing
        build_parser(None).parse_args(TINY_TRAIN + ["--out", str(tmp_path)])


def test_top_level_help_lists_every_command(capsys):
    rc, out, _ = run(["--help"], capsys)
    assert rc == 0
    for name in COMMANDS:
        assert name in out


# --------------------------------------------------------------------------- options and names

def test_data_options_before_or_after_the_subcommand():
    p = build_parser("data")
    for argv in (["data", "--data-root", "D", "fetch", "x"], ["data", "fetch", "x", "--data-root", "D"],
                 ["data", "fetch", "--data-root", "D", "x"]):
        args = p.parse_args(argv)
        assert (args.data_root, args.dataset, args.func.__name__) == ("D", ["x"], "cmd_fetch"), argv
    assert p.parse_args(["data", "list"]).data_root == "data"
    for argv in (["-q", "data", "list"], ["data", "-q", "list"], ["data", "list", "-q"]):
        assert p.parse_args(argv).quiet is True, argv
    assert p.parse_args(["data", "list"]).quiet is False


def test_quiet_after_train(tmp_path):
    args = build_parser("train").parse_args(TINY_TRAIN + ["--out", str(tmp_path), "-q"])
    assert args.quiet is True and args.data_root == "data"


def test_root_is_a_hidden_deprecated_alias(tmp_path, capsys):
    root = tmp_path / "d"
    rc, out, err = run(["data", "list", "--root", str(root)], capsys)
    assert rc == 0 and "sinusoid" in out
    assert "--root is deprecated; use --data-root" in err
    p = build_parser("data")
    assert p.parse_args(["data", "--root", "R", "list"]).data_root == "R"
    for leaf in leaves(p):
        assert "--root" not in leaf.format_help(), leaf.prog


def test_data_root_is_the_one_name_everywhere():
    for name in COMMANDS:
        for leaf in leaves(build_parser(name)):
            shown = {s for a in leaf._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
            assert "--root" not in shown, leaf.prog
    train_opts = build_parser("train")._subparsers._group_actions[0].choices["train"]._option_string_actions
    assert "--data-root" in train_opts


def test_every_option_has_help_with_its_default():
    """Every option of every command (bench included) has help text, and that text says its
    default, except plain on/off flags and required options."""
    missing = []
    for name in COMMANDS:
        for leaf in leaves(build_parser(name)):
            fmt = leaf._get_formatter()
            for action in leaf._actions:
                if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction, cli.VersionAction)):
                    continue
                if action.help == argparse.SUPPRESS or not action.option_strings:
                    if action.help is None:
                        missing.append((leaf.prog, action.dest, "no help"))
                    continue
                if not action.help:
                    missing.append((leaf.prog, action.option_strings[0], "no help"))
                elif action.nargs != 0 and not action.required and "default" not in fmt._expand_help(action):
                    missing.append((leaf.prog, action.option_strings[0], "no default shown"))
    assert missing == []


def test_defaults_are_rendered_in_help(capsys):
    rc, out, _ = run(["train", "--help"], capsys)
    assert rc == 0
    flat = " ".join(out.split())
    assert "--lam LAM weight of the TRLearner loss (default: 0.1)" in flat
    assert "--backend {vmap,loop}" in flat and "(default: vmap)" in flat
    assert "(default: None)" not in flat


def test_train_choices_are_the_librarys():
    """train_cli writes these out (so its parser needs no torch); they must stay the library's.
    (The algorithms and the TRLearner choices and defaults it reads from torch-free modules.)"""
    from trlearner.run import cli as train_cli
    from trlearner.engine.algorithms.metasgd import LR_INITS
    from trlearner.engine.backbones import DOWNSAMPLES, INITS
    from trlearner.engine.core import BACKENDS
    from trlearner.method.regularizers import REGULARIZERS

    c = train_cli.CHOICES
    assert set(c["metasgd_lr_init"]) == set(LR_INITS)
    assert (set(c["downsample"]), set(c["init"])) == (set(DOWNSAMPLES), set(INITS))
    assert set(c["backend"]) == set(BACKENDS) and set(c["regularizer"]) == set(REGULARIZERS)


# --------------------------------------------------------------------------- version, bare commands

def test_version(capsys, monkeypatch):
    import importlib.metadata

    import trlearner

    rc, out, _ = run(["--version"], capsys)
    assert rc == 0 and out == f"trlearner {util_cli.version()}\n"
    assert util_cli.version() == importlib.metadata.version("trlearner")

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert util_cli.version() == trlearner.__version__


@pytest.mark.parametrize("argv, prog", [(["data"], "trlearner data"), ([], "trlearner"),
                                        (["-q"], "trlearner"), (["data", "--data-root", "x"], "trlearner data")])
def test_a_bare_command_prints_its_help(capsys, argv, prog):
    rc, out, err = run(argv, capsys)
    assert rc == 2 and out == ""
    assert err.startswith(f"usage: {prog} ") and "data_command" not in err
    if prog == "trlearner data":
        assert all(w in err for w in ("list", "fetch", "verify", "manifest"))


def test_a_misspelt_command_names_the_choices(capsys):
    rc, _, err = run(["trian"], capsys)
    assert rc == 2 and "invalid choice: 'trian'" in err and "train" in err


# --------------------------------------------------------------------------- fetch hints

def dead_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed: connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mirror", [True, False])
def test_a_failed_offline_fetch_gives_its_hint_once_and_names_the_drop_folder(tmp_path, capsys, monkeypatch,
                                                                              mirror):
    """Fault: every source on a dead loopback port (a mirror and the registered URL, or the URL
    alone). Before: one "What to do" per source plus one more, and no data/manual/ folder."""
    from fixtures_data import build, fixture_spec
    from trlearner.data.registry import override

    files, root = tmp_path / "served", tmp_path / "data"
    build("omniglot_small", files)
    spec = fixture_spec("omniglot_small", files, f"http://127.0.0.1:{dead_port()}/")
    if mirror:
        monkeypatch.setenv("TRLEARNER_MIRROR", f"http://127.0.0.1:{dead_port()}/")
    else:
        monkeypatch.delenv("TRLEARNER_MIRROR", raising=False)
    with override(spec):
        rc, out, err = run(["data", "fetch", "omniglot_small", "--data-root", str(root), "-q"], capsys)
    assert rc == 1 and out == ""
    assert err.count("What to do") == 1, err
    assert err.count("check the network") == 1, err
    assert f"{root / 'manual' / 'omniglot_small'}/ (the manual drop folder)" in err
    assert err.count("cannot connect") == (2 if mirror else 1)  # every source of the first file, listed once


# --------------------------------------------------------------------------- logging and tqdm

def test_a_train_into_a_file_has_no_carriage_returns_and_logs_to_stderr(tmp_path):
    """Fault: tqdm with disable=False writes a '\\r' update per refresh into a redirected
    stderr. The progress bar is on here (no --no-progress); stderr is a file, not a terminal."""
    out_file = tmp_path / "console.txt"
    with open(out_file, "w") as fh:
        r = subprocess.run([sys.executable, "-m", "trlearner", *TINY_TRAIN, "--out", str(tmp_path / "run")],
                           stdout=fh, stderr=subprocess.STDOUT, env=subprocess_env(), cwd=tmp_path)
    text = out_file.read_text()
    assert r.returncode == 0, text
    assert "\r" not in text
    assert "run sinusoid maml baseline shots=5" in text  # INFO from trlearner.run.train on stderr
    assert "mse = " in text  # the command's result line on stdout
    log = (tmp_path / "run" / "log.txt").read_text()
    assert " run sinusoid maml baseline shots=5" in log and " done: mse after" in log and "\r" not in log

    quiet = subprocess.run([sys.executable, "-m", "trlearner", "-q", *TINY_TRAIN, "--out", str(tmp_path / "q")],
                           capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # -q: warnings only, and there are none
    assert " run sinusoid maml baseline" in (tmp_path / "q" / "log.txt").read_text()  # log.txt keeps everything


def open_files() -> set[str]:
    fds = Path("/proc/self/fd")
    out = set()
    for fd in fds.iterdir():
        try:
            out.add(os.readlink(fd))
        except OSError:
            pass
    return out


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_train_closes_its_log_file_and_prints_nothing(tmp_path, capsys, caplog):
    """Fault: the old _Log opened log.txt and never closed it. And library code logs, never prints."""
    import logging

    from trlearner.run.config import resolve_config
    from trlearner.run.train import train

    cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=3, test_tasks=3,
                         curve_steps=1, device="cpu")
    with caplog.at_level(logging.INFO, logger="trlearner"):
        train(cfg, tmp_path / "run", progress=False)
    log = tmp_path / "run" / "log.txt"
    assert str(log.resolve()) not in open_files()
    assert " run sinusoid maml baseline shots=5" in log.read_text()
    assert any(r.name == "trlearner.run.train" and "run sinusoid maml" in r.getMessage() for r in caplog.records)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_logging_is_restored_after_a_command(capsys):
    import logging

    log = logging.getLogger("trlearner")
    before = (list(log.handlers), log.level)
    run(["data", "list", "--data-root", "nowhere"], capsys)
    assert (list(log.handlers), log.level) == before


def test_a_train_refusal_names_data_root(tmp_path, capsys):
    root = tmp_path / "empty"
    rc, _, err = run(["train", "--dataset", "omniglot", "--ways", "5", "--algorithm", "maml", "--shots", "1",
                      "--data-root", str(root), "--out", str(tmp_path / "run"), "--device", "cpu"], capsys)
    assert rc == 2 and f"python -m trlearner data --data-root {root} fetch omniglot" in err
    assert "--root " not in err.replace("--data-root", "")



def test_standalone_entry_points(tmp_path, capsys):
    """``python -m trlearner.{data,report,analysis}.cli`` parse as the subcommands do (dvc.yaml
    and the Snakemake rules call them)."""
    from trlearner.analysis import cli as analysis_cli
    from trlearner.data import cli as data_cli
    from trlearner.report import cli as report_cli

    assert data_cli.main(["list", "--data-root", str(tmp_path), "-q"]) == 0
    assert "sinusoid" in capsys.readouterr().out
    assert report_cli.main(["--results", str(tmp_path / "none"), "--out", str(tmp_path / "r"), "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        analysis_cli.main(["nope"])
    assert exc.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err

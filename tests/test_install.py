"""The package installs like one (issue 16 part 4): a non-editable wheel, installed without a
checkout, runs ``trlearner --version``, ``data list``, a tiny ``train`` and ``report`` from a
folder outside the repository, reading only files it carries.

The wheel is built from a copy of the package's sources (pyproject.toml, README.md, LICENSE,
src/), so the build leaves nothing (build/, *.egg-info) in the checkout. It is installed with
``pip install --no-deps`` into a FRESH virtual environment, whose ``trlearner`` console script
runs every command. The dependencies (torch and the rest, gigabytes) are not installed again:
a ``.pth`` file puts this venv's site-packages on the fresh one's path. Python does not read the
``.pth`` files of a folder added that way, so this venv's editable install (its
``__editable__.trlearner-*.pth``) stays out: the package comes from the fresh venv (asserted).
About 30 s on a quiet 2-core machine (torch's import in each command dominates).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs a wheel, then runs torch four times

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "trlearner"
TINY_TRAIN = ["train", "--dataset", "sinusoid", "--algorithm", "maml", "--shots", "5", "--iterations", "3",
              "--test-tasks", "3", "--curve-steps", "1", "--device", "cpu", "--no-progress", "-q"]
# The data files the package is known to read: the dataset registry and its splits (trlearner.data),
# the paper's reference numbers (trlearner.report.reference), the report format's doc (written
# beside REPORT.md; a link to docs/REPORT_FORMAT.md in the checkout).
REQUIRED = ["trlearner/data/registry.yaml", "trlearner/data/splits/omniglot_vinyals_train.txt",
            "trlearner/report/reference.yaml", "trlearner/report/REPORT_FORMAT.md"]


def _data_files() -> list[str]:
    """Every file of the source package that is not Python code (wheel-relative names)."""
    return sorted(p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts)


def _pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert proc.returncode == 0, f"pip {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel, the fresh venv it is installed in, an empty working folder outside the repository)."""
    root = tmp_path_factory.mktemp("install")
    assert not root.resolve().is_relative_to(REPO), "the temporary folder must lie outside the repository"
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = root / "wheels"
    _pip("wheel", "--no-deps", "--no-build-isolation", "--quiet", str(source), "-w", str(wheels), cwd=root)
    (wheel,) = wheels.glob("trlearner-*.whl")
    fresh = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    python = fresh / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")  # this venv's packages
    _pip("--python", str(python), "install", "--no-deps", "--quiet", str(wheel), cwd=root)
    work = root / "work"
    work.mkdir()
    return wheel, fresh, work


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TRLEARNER_", "VIRTUAL_ENV"))}
    env.update(OMP_NUM_THREADS="1", PYTHONNOUSERSITE="1")
    return env


def _trlearner(args: list[str], fresh: Path, work: Path) -> str:
    """The fresh venv's ``trlearner ARGS`` (its console script) from ``work``; returns stdout."""
    proc = subprocess.run([str(fresh / "bin" / "trlearner"), *args], cwd=work, env=_env(), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, f"trlearner {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_wheel_holds_every_data_file(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = _data_files()
    assert set(REQUIRED) <= set(wanted), "a known data file is no longer in src/trlearner"
    assert not [n for n in wanted if n not in names], "package data missing from the wheel (pyproject.toml)"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "config/", "workflow/", "src/"))]


def test_installed_wheel_runs_outside_the_checkout(installed):
    _, fresh, work = installed
    probe = ("import json, trlearner; from trlearner.report.reference import default_reference_path; "
             "print(json.dumps([trlearner.__file__, str(default_reference_path())]))")
    out = subprocess.run([str(fresh / "bin" / "python"), "-c", probe], cwd=work, env=_env(), capture_output=True,
                         text=True, timeout=120, check=True).stdout
    module_file, reference = (Path(p).resolve() for p in json.loads(out))
    assert module_file.is_relative_to(fresh.resolve()), f"imported {module_file}, not the installed copy"
    assert not module_file.is_relative_to(REPO), "imported the checkout's src/, not the installed wheel"
    assert reference.is_relative_to(fresh.resolve()) and reference.is_file()

    assert _trlearner(["--version"], fresh, work).startswith("trlearner ")
    listing = _trlearner(["data", "list"], fresh, work)
    assert "sinusoid" in listing and "omniglot" in listing  # the packaged registry
    for variant, extra in (("baseline", []), ("trlearner", ["--trlearner"])):
        run = work / "results" / "runs" / "sinusoid" / "5shot" / "maml" / variant / "seed0"
        _trlearner(TINY_TRAIN + extra + ["--out", str(run)], fresh, work)
        assert json.loads((run / "metrics.json").read_text())["variant"] == variant
    _trlearner(["report", "--results", "results/runs", "--out", "reports", "-q"], fresh, work)
    report = (work / "reports" / "REPORT.md").read_text()
    # the paper's numbers for this cell come from the packaged reference.yaml
    assert "paper: baseline 0.593, + TRLearner 0.400" in " ".join(report.split())  # (long lines are wrapped)
    # the format doc it links to is written beside it from the package: the link works from a wheel
    assert "[REPORT_FORMAT.md](REPORT_FORMAT.md)" in report
    assert "# Report format" in (work / "reports" / "REPORT_FORMAT.md").read_text()
    assert not any(work.rglob("*.egg-info")) and sorted(p.name for p in work.iterdir()) == ["reports", "results"]

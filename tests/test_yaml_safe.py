"""One safe YAML loader for every YAML file the project reads (issue 27, item 6).

Each probe is the real input through the real entry point (``python -m trlearner.pipeline
check``, the Snakefile, the registry, the reference file, the analysis scale file, params.yaml):
a duplicate key, a "billion laughs" file, 5,000 levels of nesting, a recursive alias.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from trlearner.util.yamlsafe import MAX_DEPTH, MAX_NODES, YAMLInputError, safe_load, safe_load_file

TINY = (REPO / "config" / "tiny.yaml").read_text()
# a second `regression:` experiment (anil only): yaml.safe_load silently kept only this one
SECOND_REGRESSION = TINY.replace("ablations:\n", "  regression:\n    datasets: [sinusoid]\n    settings: [{shots: 5}]\n"
                                 "    algorithms: [anil]\n    seeds: [0]\nablations:\n", 1)


def _billion_laughs() -> str:
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for prev, name in zip("abcdefgh", "bcdefghi"):
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    return text


def _pipeline_check(config: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-m", "trlearner.pipeline", "check", "--config", str(config)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


# --------------------------------------------------------------------------- duplicate keys

def test_a_duplicate_key_is_refused_with_file_line_column_and_key():
    with pytest.raises(YAMLInputError) as e:
        safe_load("protocol: {iterations: 20, iterations: 30}\n", name="c.yaml")
    assert yaml.safe_load("protocol: {iterations: 20, iterations: 30}\n") == {"protocol": {"iterations": 30}}  # before
    assert str(e.value) == ("c.yaml:1:28: duplicate key 'iterations' (first at line 1); keep one of them "
                            "(YAML would silently use the last)")
    assert isinstance(e.value, ValueError) and isinstance(e.value, yaml.YAMLError)


def test_a_second_experiment_of_one_name_is_refused_by_pipeline_check(tmp_path):
    assert list(yaml.safe_load(SECOND_REGRESSION)["experiments"]["regression"]["algorithms"]) == ["anil"]  # before
    bad = tmp_path / "two.yaml"
    bad.write_text(SECOND_REGRESSION)
    line = _one_error_line(_pipeline_check(bad))
    assert f"{bad}:line 14, column 3: duplicate key 'regression' (first at line 7)" in line, line
    assert "keep one of them" in line


def test_merge_keys_may_still_be_overridden():
    """``<<: *base`` then a key of its own is what a merge is for: not a duplicate."""
    data = safe_load("base: &b {lr: 0.1, steps: 5}\nrun:\n  <<: *b\n  lr: 0.2\n")
    assert data["run"] == {"lr": 0.2, "steps": 5}
    with pytest.raises(YAMLInputError, match="duplicate key 'lr'"):
        safe_load("run:\n  <<: {steps: 5}\n  lr: 0.2\n  lr: 0.3\n")


def test_snakemake_rereads_its_configfile_with_the_safe_loader(tmp_path):
    """Snakemake parses --configfile itself (keeping the last duplicate silently); the Snakefile
    re-reads it with the project's loader before planning anything."""
    bad = tmp_path / "two.yaml"
    bad.write_text(SECOND_REGRESSION)
    snakemake = Path(sys.executable).parent / "snakemake"
    r = subprocess.run([str(snakemake), "-n", "--configfile", str(bad)], capture_output=True, text=True,
                       cwd=REPO, timeout=300)
    text = r.stdout + r.stderr
    assert r.returncode != 0 and f"{bad}:line 14, column 3: duplicate key 'regression'" in text, text
    assert "Job stats" not in text


# --------------------------------------------------------------------------- bounds

def test_billion_laughs_fails_fast_with_one_line(tmp_path):
    """Before: 56 s and 3.65 GB, then MemoryError, in `pipeline check`."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_billion_laughs())
    t0 = time.perf_counter()
    with pytest.raises(YAMLInputError) as e:
        safe_load_file(bomb)
    assert time.perf_counter() - t0 < 2.0
    assert re.fullmatch(rf"{re.escape(str(bomb))}:\d+:\d+: at alias \*\w, the document has more than {MAX_NODES} "
                        r"values once its aliases \(\*name\) are expanded, .*", str(e.value)), str(e.value)
    t0 = time.perf_counter()
    line = _one_error_line(_pipeline_check(bomb))
    assert time.perf_counter() - t0 < 30  # a fresh interpreter, on a loaded 2-core machine
    assert f"{bomb}:line 6" in line and "more than 100000 values" in line, line


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(RecursionError):  # the probe is real: PyYAML's own loader recurses
        yaml.safe_load(deep.read_text())
    with pytest.raises(YAMLInputError, match=rf"deep.yaml:1:{MAX_DEPTH + 3}: nested more than {MAX_DEPTH} levels"):
        safe_load_file(deep)
    line = _one_error_line(_pipeline_check(deep))
    assert "nested more than 100 levels deep; flatten the structure" in line
    assert safe_load("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)) is not None  # the limit itself passes


def test_a_recursive_alias_is_refused():
    with pytest.raises(YAMLInputError, match=r"1:11: the alias \*a inside the value of its own anchor &a"):
        safe_load("a: &a [1, *a]\n")


def test_a_syntax_error_is_still_pyyamls_own():
    with pytest.raises(yaml.YAMLError) as e:
        safe_load("a: [1, 2\n")
    assert not isinstance(e.value, YAMLInputError)


# --------------------------------------------------------------------------- every reader

def _project_yaml_files() -> list[Path]:
    files = [*sorted((REPO / "config").glob("*.yaml")), *sorted((REPO / "profiles").rglob("*.yaml")),
             REPO / "dvc.yaml", REPO / "dvc.lock", REPO / "params.yaml",
             *sorted((REPO / "src" / "trlearner").rglob("*.yaml"))]
    return [f for f in files if f.exists()]


@pytest.mark.parametrize("path", _project_yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_file_of_the_project_loads_as_before(path):
    assert safe_load_file(path) == yaml.safe_load(path.read_text())


def test_no_yaml_load_in_the_package_bypasses_the_safe_loader():
    calls = re.compile(r"\byaml\.(safe_load|load|full_load|unsafe_load|load_all|safe_load_all)\(")
    found = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "src" / "trlearner").rglob("*.py")
             if p.name != "yamlsafe.py" for i, line in enumerate(p.read_text().splitlines(), 1)
             if calls.search(line)]
    found += [f"{p.relative_to(REPO)}:{i}" for p in [REPO / "Snakefile", *(REPO / "workflow").rglob("*.smk")]
              for i, line in enumerate(p.read_text().splitlines(), 1) if calls.search(line)]
    assert not found, f"load YAML with trlearner.util.yamlsafe.safe_load: {found}"


def test_the_registry_reference_scale_and_params_readers_refuse_a_duplicate_key(tmp_path):
    from trlearner.analysis.cli import load_scale
    from trlearner.data.registry import load_registry
    from trlearner.pipeline.dvc import dvc_datasets
    from trlearner.report.reference import Reference

    registry = (REPO / "src" / "trlearner" / "data" / "registry.yaml").read_text()
    first = re.search(r"^  (\w+):\n", registry, re.M)
    reg = tmp_path / "registry.yaml"
    reg.write_text(registry + registry[first.start():])  # the first dataset's entry once more
    with pytest.raises(YAMLInputError, match=rf"{reg}:\d+:3: duplicate key '{first.group(1)}'"):
        load_registry(reg)
    ref = tmp_path / "reference.yaml"
    ref.write_text("paper: []\npaper: []\n")
    with pytest.raises(YAMLInputError, match=rf"{ref}:2:1: duplicate key 'paper'"):
        Reference.load(ref)
    scale = tmp_path / "scale.yaml"
    scale.write_text("analyses: {}\nanalyses: {}\n")
    with pytest.raises(YAMLInputError, match="scale.yaml:2:1: duplicate key 'analyses'"):
        load_scale(scale)
    params = tmp_path / "params.yaml"
    params.write_text("datasets: [sinusoid]\ndatasets: [omniglot]\n")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(YAMLInputError, match="params.yaml:2:1: duplicate key 'datasets'"):
        dvc_datasets(str(params))

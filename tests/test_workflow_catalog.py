"""The Snakemake workflow catalog's files (issue 25): ``config/README.md`` describes every preset
and points at the config schema, and ``.snakemake-workflow-catalog.yml`` parses, has the keys
the catalog reads (``usage``: ``mandatory-flags``, ``software-stack-deployment``, ``report``)
with values that are true of this workflow, and names only files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / ".snakemake-workflow-catalog.yml"
CONFIG_README = REPO / "config" / "README.md"
PATH = re.compile(r"(?<![\w/.-])((?:config|docs|src|workflow)/[\w./-]*\w)")
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]


def _directive(name: str) -> bool:
    """Whether a rule of the workflow uses the directive ``name:``."""
    return any(re.search(rf"^\s+{name}:", f.read_text(), flags=re.M) for f in RULE_FILES)


def test_both_files_exist():
    assert CATALOG.is_file() and CONFIG_README.is_file()


def test_the_catalog_file_parses_and_says_what_is_true():
    usage = yaml.safe_load(CATALOG.read_text())["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    flags = usage["mandatory-flags"]
    assert isinstance(flags["desc"], str) and flags["desc"].strip()
    assert isinstance(flags["flags"], (str, list)) and flags["flags"]
    stack = usage["software-stack-deployment"]
    assert set(stack) == {"conda", "apptainer", "apptainer+conda"} and all(isinstance(v, bool) for v in stack.values())
    assert stack["conda"] == _directive("conda")
    assert stack["apptainer"] == _directive("container") == stack["apptainer+conda"]
    assert usage["report"] is True and re.search(r"^report:", (REPO / "Snakefile").read_text(), flags=re.M)


def test_the_catalog_file_names_real_files():
    usage = yaml.safe_load(CATALOG.read_text())["usage"]
    flags = usage["mandatory-flags"]["flags"]
    text = " ".join(flags if isinstance(flags, list) else [flags]) + " " + usage["mandatory-flags"]["desc"]
    named = PATH.findall(text + " " + CATALOG.read_text())
    assert "config/README.md" in named and "config/default.yaml" in named
    assert not [p for p in named if not (REPO / p).exists()]


def test_config_readme_describes_every_preset_and_points_at_the_schema():
    text = CONFIG_README.read_text()
    presets = sorted(p.name for p in (REPO / "config").glob("*.yaml"))
    rows = re.findall(r"^\| `([\w.-]+\.yaml)` \|", text, flags=re.M)
    assert sorted(rows) == presets, "one table row per preset in config/"
    assert "src/trlearner/pipeline/config.schema.yaml" in text
    missing = [p for p in PATH.findall(text) if not (REPO / p.rstrip(".")).exists()]
    assert not missing, missing
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M))
    named = set(re.findall(r"`make ([\w-]+)", text))
    assert named and named <= targets, named - targets
    # the required keys of the schema are the ones it calls required
    schema = yaml.safe_load((REPO / "src/trlearner/pipeline/config.schema.yaml").read_text())
    for key in schema["required"]:
        assert f"- `{key}` (required)" in text

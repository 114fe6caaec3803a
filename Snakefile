# The TRLearner reproduction pipeline. Run from the repository root:
#   snakemake --cores 2 --configfile config/default.yaml      (the default CPU preset)
#   snakemake --cores 16 --resources gpu=4 --configfile config/paper.yaml
# See docs/PIPELINE.md. All experiment logic lives in the package (src/trlearner); rules only
# call its one command (python -m trlearner.pipeline <job>). The matrix of runs comes from
# trlearner.pipeline.check (the config check) and trlearner.pipeline.matrix.
import shlex
import sys
from pathlib import Path

# Jobs run `python` of the environment that runs Snakemake (the venv) and import the package
# from THIS checkout's src/ (the files listed as rule inputs), whatever is installed; it also
# works without `pip install -e .`. A shell prefix, not params: params are rerun triggers, and
# moving the checkout or the venv must not rerun anything.
SRC_DIR = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC_DIR)
shell.prefix(
    f"set -euo pipefail; export PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\"; "
    f"export PYTHONPATH={shlex.quote(SRC_DIR)}; "
)

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from trlearner.pipeline import catalog, estimate, sources
from trlearner.pipeline.check import ConfigError, check_config, load_config
from trlearner.pipeline.matrix import preset_roots
from trlearner.pipeline.schema import SCHEMA

min_version("9.0")


# The default preset only when no --configfile was given: a `configfile:` directive would be
# MERGED with --configfile (and the default's experiments would leak into other presets).
if "experiments" not in config:

    configfile: "config/default.yaml"


# Validate before any job runs: the schema (unknown keys, types, enums) with messages that name
# key, value and what is allowed, then dataset limits (impossible shots/ways), then Snakemake's
# own validation, which also fills schema defaults into `config`.
try:
    for _configfile in workflow.configfiles:  # Snakemake parsed them itself, keeping a duplicate key's
        load_config(_configfile)  # last value silently: re-read with the project's safe loader
    MATRIX = check_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, str(SCHEMA))  # the package's src/trlearner/pipeline/config.schema.yaml

# Each preset under its own roots (results/<preset>, reports/<preset> unless the config names them)
RESULTS, REPORTS = preset_roots(config)


report: "workflow/report/workflow.rst"


wildcard_constraints:
    dataset="|".join(catalog.DATASETS),
    setting=r"([0-9]+way)?[0-9]+shot|varway",
    algorithm="|".join(catalog.ALGORITHMS),
    variant="baseline|trlearner",
    seed=r"[0-9]+",
    ablation=r"[a-z][a-z0-9_]*",
    point=r"[a-z_]+-[A-Za-z0-9._]+",
    arm=r"[A-Za-z0-9._-]+",
    n=r"[0-9]+",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ablations.smk"
include: "workflow/rules/sequential.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


# The job count and compute-time estimate per dataset: printed by dry runs (-n) here, and at
# the start of a real run by onstart (also: python -m trlearner.pipeline estimate --config ...).
# (a sequential preset: the runs its look records on disk ask for so far)
_ESTIMATED = seqrule.decided(MATRIX, seqrule.seeds_on_disk(MATRIX, RESULTS)) if ARMS else MATRIX
if workflow.is_main_process and estimate.dry_run_requested(sys.argv[1:]):
    _analyses = estimate.analysis_jobs(config, RESULTS)
    print(estimate.format_estimate(_ESTIMATED, estimate.done_runs(_ESTIMATED, _analyses), 2, _analyses),
          file=sys.stderr)


onstart:
    # (workflow.cores is undefined under cluster executors: no wall-time line then)
    _analyses = estimate.analysis_jobs(config, RESULTS)
    print(estimate.format_estimate(_ESTIMATED, estimate.done_runs(_ESTIMATED, _analyses), None, _analyses),
          file=sys.stderr)


rule all:
    default_target: True
    input:
        rules.report.output,
        ANALYSIS_OUTPUTS,

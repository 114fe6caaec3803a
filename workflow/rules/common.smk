# Helpers shared by the rules: the run a job belongs to, its inputs, its command and resources.
# All of them read the experiment matrix built from the config by trlearner.pipeline.check.
# Every value a shell line receives is quoted: argument lists here with shlex.join, single values
# (a training job's document, trlearner.pipeline.jobs.job_document, among them) in the rules with
# Snakemake's `{x:q}` (a config value such as data_root is pasted into a
# command line: `$(...)` in it must stay text, and a space must not split it).
import re
import json

GPU = config["device"] == "cuda"
GPU_LOCK_DIR = config["gpu_lock_dir"]
# The paper's reference numbers: the package's own file (src/trlearner/report/reference.yaml,
# trlearner.report.reference knows where) unless the config's report.reference names another.
from trlearner.report.reference import default_reference_path
from trlearner.util.atomic import atomic_write_json
from trlearner.pipeline.jobs import job_document

REFERENCE = config.get("report", {}).get("reference") or os.path.relpath(default_reference_path())


def run_of(wildcards):
    """The trlearner.pipeline.matrix.Run of a training job (a table run or an ablation run)."""
    tail = f"{wildcards.dataset}/{wildcards.setting}/{wildcards.algorithm}/{wildcards.variant}"
    if "ablation" in wildcards.keys():
        path = f"{RESULTS}/ablations/{wildcards.ablation}/{tail}/{wildcards.point}/seed{wildcards.seed}"
    else:
        path = f"{RESULTS}/runs/{tail}/seed{wildcards.seed}"
    return MATRIX.lookup(path)


def train_inputs(wildcards):
    """The dataset manifest(s) and the source files the run executes (trlearner.pipeline.sources,
    by folder: editing one algorithm's module reruns only that algorithm's jobs, editing the
    report none). A multi-source Meta-Dataset run reads every source it trains or tests on: one
    manifest per source."""
    run = run_of(wildcards)
    return {"manifest": [f"{RESULTS}/data/{d}.manifest.json" for d in run.data_datasets()],
            "sources": run.sources()}


def run_job(wildcards):
    """The job document of the run (trlearner.pipeline.jobs.job_document): its resolved run
    config and identity, which `train-job` receives as they are (no flags to re-parse)."""
    return job_document([run_of(wildcards).run_config(MATRIX.preset, config["device"], config["data_root"])])


def stack_job(stack):
    """The job document of a stacked job (one config per seed), as a function evaluated when
    the job is planned."""
    return lambda wildcards: job_document(
        [r.run_config(MATRIX.preset, config["device"], config["data_root"]) for r in stack.runs])


def train_minutes(wildcards):
    """Estimated minutes (SLURM `runtime`, with a safety factor of 3 and a floor of 10)."""
    device = "cpu" if config["device"] == "cpu" else "gpu"
    return max(10, int(3 * estimate.estimate_seconds(run_of(wildcards), device) / 60))


def train_priority(wildcards):
    """Long jobs first, so that the short ones fill the gaps at the end."""
    device = "cpu" if config["device"] == "cpu" else "gpu"
    return int(estimate.estimate_seconds(run_of(wildcards), device) // 10)


def analysis_run_sources(wildcards):
    """The code a planned run executes (its algorithm's, with method/: TRLearner or another
    regulariser): an edit reruns it."""
    return sources.train_sources(ANALYSIS_RUNS[wildcards.arun]["settings"]["algorithm"], trlearner=True)


def analysis_job(wildcards):
    """The job document of an analysis run (trlearner.analysis.plan.run_config)."""
    cfg = analysis_run_config(ANALYSIS_RUNS[wildcards.arun], device=config["device"], data_root=config["data_root"])
    return job_document([cfg])


def gallery_options(dataset):
    """The episode options of ``trlearner.report.gallery`` for ``dataset``: the setting of the first
    table run that reads it (shots, ways; training ways and queries per split as that run resolves
    them), so that the gallery draws the episodes that run trains and is tested on."""
    run = next(r for r in MATRIX.table_runs if dataset in r.data_datasets())
    p = run.resolved_protocol()
    options = {"shots": run.shots, "ways": run.ways, "train_ways": p.get("train_ways"),
               "train_queries": p.get("train_queries"), "test_queries": p.get("test_queries")}
    return shlex.join(a for k, v in options.items() if v is not None for a in (f"--{k.replace('_', '-')}", str(v)))


def stack_out(stack):
    """The --out pattern of a stacked job (``.../seed{seed}``), as a function: Snakemake would
    expand ``{seed}`` in a params string as a wildcard."""
    pattern = shlex.quote(f"{stack.cell_path}/seed{{seed}}")
    return lambda wildcards: pattern


def stack_minutes(stack):
    """Estimated minutes of a stacked job (as train_minutes: safety factor 3, floor 10)."""
    device = "cpu" if config["device"] == "cpu" else "gpu"
    return max(10, int(3 * estimate.stack_seconds(stack, device) / 60))


def stack_priority(stack):
    device = "cpu" if config["device"] == "cpu" else "gpu"
    return int(estimate.stack_seconds(stack, device) // 10)


# The arms of the sequential seed rule (configs with `sequential` set; workflow/rules/sequential.smk,
# trlearner.pipeline.sequential) and the runs their decisions ask for.
from trlearner.pipeline import sequential as seqrule
from trlearner.report.reference import Reference
from trlearner.report.sequential import LOOKS

ARMS = {arm.name: arm for arm in seqrule.arms(MATRIX)}
_PAPER_EFFECTS = {name: seqrule.paper_effect(Reference.load(REFERENCE), *arm.cell) for name, arm in ARMS.items()}


def arm_looks(wildcards):
    """The look records of one arm up to the one that stops. A look not yet decided raises
    Snakemake's IncompleteCheckpointException: the DAG waits for that checkpoint, then calls this
    again (one arm per job: the arms run their looks side by side)."""
    records = []
    for n in LOOKS:
        path = checkpoints.sequential_look.get(arm=wildcards.arm, n=n).output[0]
        records.append(path)
        if json.loads(Path(path).read_text())["stop"]:
            break
    return records


# Each arm's stopping record: the rules downstream of training take these as inputs (they
# depend on every run the rule asked for through them) and read the decisions when they run.
DECIDED_RECORDS = [f"{RESULTS}/{seqrule.LOOKS_DIR}/{name}/decided.json" for name in ARMS]
# The runs of groups that are not sequential: always expected, inputs as before
FIXED = MATRIX.restricted({r.path for r in MATRIX.runs if (r.kind, r.group) not in MATRIX.sequential})


def decided_matrix():
    """The matrix of the runs the rule's decisions ask for (call when the decided records exist,
    i.e. in a job that takes DECIDED_RECORDS as input); every run without arms."""
    if not ARMS:
        return MATRIX
    seeds = {}
    for path in DECIDED_RECORDS:
        record = json.loads(Path(path).read_text())
        seeds[record["arm"]] = record["n"]
    return seqrule.decided(MATRIX, seeds)

# Seeds decided by the data (config `sequential: true`; trlearner.pipeline.sequential): a checkpoint
# per arm and look applies the sequential rule to the seeds so far and writes its record; the
# DAG is then re-evaluated and asks for the next look's seeds only where the record says
# `continue`; an arm's last record (the one that stops) is copied to its decided.json. The rules
# downstream of the training jobs (expected_cells, ablations_index, report) take those records as
# inputs and, when they run, the runs from DECIDED(): the matrix restricted to the runs the
# decisions ask for. A preset without sequential groups has no arms, and DECIDED() is MATRIX.
from trlearner.pipeline import sequential as seqrule
from trlearner.report.reference import Reference
from trlearner.report.sequential import LOOKS

ARMS = {arm.name: arm for arm in seqrule.arms(MATRIX)}
_PAPER_EFFECTS = {name: seqrule.paper_effect(Reference.load(REFERENCE), *arm.cell) for name, arm in ARMS.items()}


checkpoint sequential_look:
    input:
        metrics=lambda wildcards: ARMS[wildcards.arm].metrics(int(wildcards.n)),
        reference=REFERENCE,
    output:
        f"{RESULTS}/{seqrule.LOOKS_DIR}/{{arm}}/look{{n}}.json",
    params:
        baseline=lambda wildcards: shlex.join(r.metrics for r in ARMS[wildcards.arm].runs(int(wildcards.n))[0]),
        trlearner=lambda wildcards: shlex.join(r.metrics for r in ARMS[wildcards.arm].runs(int(wildcards.n))[1]),
        paper=lambda wildcards: repr(_PAPER_EFFECTS[wildcards.arm]),
    log:
        f"{RESULTS}/logs/{seqrule.LOOKS_DIR}/{{arm}}/look{{n}}.log",
    shell:
        "python -m trlearner.pipeline look --arm {wildcards.arm:q} --baseline {params.baseline} "
        "--trlearner {params.trlearner} --paper-effect {params.paper:q} --out {output:q} > {log:q} 2>&1"


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


rule sequential_decided:
    input:
        arm_looks,
    output:
        f"{RESULTS}/{seqrule.LOOKS_DIR}/{{arm}}/decided.json",
    log:
        f"{RESULTS}/logs/{seqrule.LOOKS_DIR}/{{arm}}/decided.log",
    run:
        Path(output[0]).write_text(Path(input[-1]).read_text())  # the stopping look's record


# Each arm's stopping record: the rules downstream of training take these as inputs (they
# depend on every run the rule asked for through them) and read the decisions when they run.
DECIDED_RECORDS = [f"{RESULTS}/{seqrule.LOOKS_DIR}/{name}/decided.json" for name in ARMS]
# The runs of groups that are not sequential: always expected, inputs as before
FIXED = MATRIX.restricted({r.path for r in MATRIX.runs if (r.kind, r.group) not in MATRIX.sequential})


def DECIDED():
    """The matrix of the runs the rule's decisions ask for (call when the decided records exist,
    i.e. in a job that takes DECIDED_RECORDS as input); every run without arms."""
    if not ARMS:
        return MATRIX
    seeds = {}
    for path in DECIDED_RECORDS:
        record = json.loads(Path(path).read_text())
        seeds[record["arm"]] = record["n"]
    return seqrule.decided(MATRIX, seeds)

# Seeds decided by the data (config `sequential: true`; trlearner.pipeline.sequential): a checkpoint
# per arm and look applies the sequential rule to the seeds so far and writes its record; the
# DAG is then re-evaluated and asks for the next look's seeds only where the record says
# `continue`; an arm's last record (the one that stops) is copied to its decided.json. The rules
# downstream of the training jobs (expected_cells, ablations_index, report) take those records as
# inputs and, when they run, the runs from decided_matrix(): the matrix restricted to the runs the
# decisions ask for. A preset without sequential groups has no arms, and decided_matrix() is MATRIX.
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


rule sequential_decided:
    input:
        arm_looks,
    output:
        f"{RESULTS}/{seqrule.LOOKS_DIR}/{{arm}}/decided.json",
    log:
        f"{RESULTS}/logs/{seqrule.LOOKS_DIR}/{{arm}}/decided.log",
    run:
        atomic_write_json(output[0], json.loads(Path(input[-1]).read_text()))  # the stopping look's record

# Training: one job per table run, results/runs/{dataset}/{setting}/{algorithm}/{variant}/seed{seed}/.
# metrics.json is the output; checkpoint.pt, provenance.json and log.txt are side files of the run
# folder (not outputs: Snakemake deletes the outputs of an incomplete job before rerunning it, and
# the checkpoint must survive so that the rerun resumes). A diverged run (exit 3) writes a
# metrics.json with status "diverged" and counts as done: the report shows it as diverged.


rule train:
    input:
        unpack(train_inputs),
    output:
        f"{RESULTS}/runs/{{dataset}}/{{setting}}/{{algorithm}}/{{variant}}/seed{{seed}}/metrics.json",
    log:
        f"{RESULTS}/logs/runs/{{dataset}}/{{setting}}/{{algorithm}}/{{variant}}/seed{{seed}}.log",
    params:
        job=run_job,
        lock_dir=GPU_LOCK_DIR,
    threads: config["threads"]
    resources:
        gpu=1 if GPU else 0,
        runtime=train_minutes,
        mem_mb=config["mem_mb"],
    priority: train_priority
    shell:
        "python -m trlearner.pipeline train-job --gpu-lock-dir {params.lock_dir:q} --job {params.job:q} "
        "--threads {threads} --out \"$(dirname {output:q})\" > {log:q} 2>&1"


# Stacked training (an experiment's `stack: K`): one job per chunk of a cell's seeds (seed // K),
# the stacked trainer (`trlearner.run.stacked`) through the pipeline's stacked-job wrapper; its outputs are
# the metrics.json of every seed of the chunk, the same files the per-seed rule `train` would
# write. One rule per chunk, defined in this loop (a rule's output list cannot depend on a
# wildcard): their outputs are explicit paths, and Snakemake prefers a rule without wildcards
# over one with wildcards for the same file (its rule-order comparison, absent a `ruleorder`),
# so `train` never plans a stacked seed and there is no AmbiguousRuleException.
for _stack in MATRIX.stacks:

    rule:
        name:
            _stack.name
        input:
            manifest=[f"{RESULTS}/data/{d}.manifest.json" for d in _stack.runs[0].data_datasets()],
            sources=_stack.sources(),
        output:
            _stack.metrics,
        log:
            _stack.log,
        params:
            job=stack_job(_stack),
            out=stack_out(_stack),
            lock_dir=GPU_LOCK_DIR,
        threads: config["threads"]
        resources:
            gpu=1 if GPU else 0,
            runtime=stack_minutes(_stack),
            mem_mb=config["mem_mb"],
        priority: stack_priority(_stack)
        shell:
            "python -m trlearner.pipeline stacked-job --gpu-lock-dir {params.lock_dir:q} --job {params.job:q} "
            "--threads {threads} --out {params.out} > {log:q} 2>&1"

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
        args=train_args,
        lock_dir=GPU_LOCK_DIR,
    threads: config["threads"]
    resources:
        gpu=1 if GPU else 0,
        runtime=train_minutes,
        mem_mb=config["mem_mb"],
    priority: train_priority
    shell:
        "python -m trlearner.pipeline train-job --gpu-lock-dir {params.lock_dir} -- {params.args} "
        "--threads {threads} --out $(dirname {output}) > {log} 2>&1"

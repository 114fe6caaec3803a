# Analyses (paper section 4): motivation curves, meta-layer depth, relation heatmaps, time vs
# accuracy, sensitivity to lambda and K. The runs each analysis needs come from
# trlearner.analysis.plan (scale: the config's `analyses:` block); each analysis then renders a
# figure (PNG, PDF), the CSV of its numbers, a caption and summary.json into
# {REPORTS}/analyses/<name>/, which the report embeds. Ablation sweeps (ablations.smk) are
# collected into an index as before.
from trlearner.analysis.plan import ANALYSES as ANALYSIS_NAMES
from trlearner.analysis.plan import ROOT as ANALYSIS_ROOT
from trlearner.analysis.plan import analysis_runs
from trlearner.analysis.plan import run_config as analysis_run_config

ANALYSIS_PLAN = analysis_runs(config["analyses"]) if config.get("analyses") else []
# run folder relative to {RESULTS}/analyses/ -> plan entry
ANALYSIS_RUNS = {r["run_dir"][len(ANALYSIS_ROOT) + 1:]: r for r in ANALYSIS_PLAN}



rule train_analysis:
    input:
        analysis_run_sources,
    output:
        f"{RESULTS}/analyses/{{arun}}/metrics.json",
    log:
        f"{RESULTS}/logs/analyses/{{arun}}.log",
    wildcard_constraints:
        arun="|".join(re.escape(k) for k in ANALYSIS_RUNS) or "^$",
    params:
        job=analysis_job,
        lock_dir=GPU_LOCK_DIR,
    threads: config["threads"]
    resources:
        gpu=1 if GPU else 0,
        mem_mb=config["mem_mb"],
    shell:
        "python -m trlearner.pipeline train-job --gpu-lock-dir {params.lock_dir:q} --job {params.job:q} "
        "--threads {threads} --out \"$(dirname {output:q})\" > {log:q} 2>&1"


rule analysis:
    input:
        runs=lambda wildcards: [f"{RESULTS}/analyses/{k}/metrics.json" for k, r in ANALYSIS_RUNS.items()
                                if r["analysis"] == wildcards.name],
        code=sources.analysis_sources(),
    output:
        png=report(f"{REPORTS}/analyses/{{name}}/{{name}}.png", category="4. Analyses",
                   caption="../report/analysis.rst"),
        pdf=f"{REPORTS}/analyses/{{name}}/{{name}}.pdf",
        csv=f"{REPORTS}/analyses/{{name}}/{{name}}.csv",
        caption=f"{REPORTS}/analyses/{{name}}/{{name}}.caption.md",
        summary=f"{REPORTS}/analyses/{{name}}/summary.json",
    wildcard_constraints:
        name="|".join(ANALYSIS_NAMES),
    params:
        runs=lambda wildcards: f"{RESULTS}/analyses/{wildcards.name}",
        out=lambda wildcards, output: str(Path(output.png).parent),
    log:
        f"{RESULTS}/logs/analyses/{{name}}.log",
    shell:
        "python -m trlearner.pipeline analysis {wildcards.name:q} --runs {params.runs:q} --out {params.out:q} "
        "> {log:q} 2>&1"


rule ablations_index:
    input:
        [r.metrics for r in FIXED.ablation_runs],
        DECIDED_RECORDS,  # a sequential ablation's runs: those its rule's decisions asked for
    output:
        f"{RESULTS}/ablations/index.json",
    params:
        runs=json.dumps(MATRIX.ablation_index()),  # a rerun trigger
    log:
        f"{RESULTS}/logs/ablations_index.log",
    run:
        # every expected ablation run with its identity: the report counts only these
        atomic_write_json(output[0], decided_matrix().ablation_index())


ANALYSIS_OUTPUTS = ([rules.ablations_index.output[0]] if MATRIX.ablation_runs else []) + [
    f"{REPORTS}/analyses/{name}/{name}.png" for name in sorted({r["analysis"] for r in ANALYSIS_PLAN})]

# Analyses (paper section 4: motivation curves, meta-layer depth, relation heatmaps, time vs
# accuracy). The analysis CLI (src/trlearner/analysis/, another engineer) is not there yet: for
# now this file collects the ablation runs (plain extra training runs, ablations.smk) into an
# index the analysis CLI will read. When the CLI lands, add a rule here that reads
# {RESULTS}/ablations/index.json and writes PNG/PDF figures to {REPORTS}/figures/, and append
# those figures to ANALYSIS_OUTPUTS: the report rule takes them as inputs and embeds them.


rule ablations_index:
    input:
        [r.metrics for r in MATRIX.ablation_runs],
    output:
        f"{RESULTS}/ablations/index.json",
    params:
        runs=json.dumps([{"ablation": r.group, "dataset": r.dataset, "setting": r.setting,
                          "algorithm": r.algorithm, "variant": r.variant, "point": r.point,
                          "seed": r.seed, "metrics": r.metrics} for r in MATRIX.ablation_runs]),
    log:
        f"{RESULTS}/logs/ablations_index.log",
    run:
        Path(output[0]).write_text(json.dumps(json.loads(params.runs), indent=1) + "\n")


ANALYSIS_OUTPUTS = [rules.ablations_index.output[0]] if MATRIX.ablation_runs else []

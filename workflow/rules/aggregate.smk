# Aggregate: the cells the config expects (dataset, setting, algorithm, variant, seeds), so the
# report lists every expected cell, including those that are missing or diverged. Mean, CI and
# the paired TRLearner - baseline effect are computed by the report itself (trlearner.report).


rule expected_cells:
    output:
        f"{RESULTS}/expected.json",
    params:
        cells=json.dumps(MATRIX.expected_cells(RESULTS), sort_keys=True),
    log:
        f"{RESULTS}/logs/expected_cells.log",
    run:
        Path(output[0]).write_text(json.dumps(json.loads(params.cells), indent=1) + "\n")

# Aggregate: the cells the config expects (dataset, setting, algorithm, variant, seeds), so the
# report lists every expected cell, including those that are missing or diverged. Mean, CI and
# the paired TRLearner - baseline effect are computed by the report itself (trlearner.report).


rule expected_cells:
    input:
        DECIDED_RECORDS,  # a sequential preset expects the seeds its rule's decisions ask for
    output:
        f"{RESULTS}/expected.json",
    params:
        cells=json.dumps(MATRIX.expected_cells(RESULTS), sort_keys=True),  # a rerun trigger
    log:
        f"{RESULTS}/logs/expected_cells.log",
    run:
        atomic_write_json(output[0], decided_matrix().expected_cells(RESULTS))

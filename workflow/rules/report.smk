# Report: reports/REPORT.md, reports/tables/* and reports/cells.csv from every table run. Inputs
# include the report's own source files, so editing plot/report code reruns only this rule.


rule report:
    input:
        runs=[r.metrics for r in MATRIX.table_runs],
        expected=rules.expected_cells.output[0],
        reference=REFERENCE,
        code=sorted(glob.glob(pipeline.REPORT_SOURCES_GLOB)),
        analyses=ANALYSIS_OUTPUTS,
    output:
        md=report(f"{REPORTS}/REPORT.md", category="Report", caption="../report/report.rst"),
        cells=report(f"{REPORTS}/cells.csv", category="Tables", caption="../report/cells.rst"),
        tables=report(directory(f"{REPORTS}/tables"), patterns=["{name}.html"], category="Tables",
                      caption="../report/tables.rst"),
    params:
        runs=lambda wildcards: f"{RESULTS}/runs",
        figures=lambda wildcards, output: str(Path(output.md).parent / "analyses"),
        out=lambda wildcards, output: str(Path(output.md).parent),
    log:
        f"{RESULTS}/logs/report.log",
    shell:
        "python -m trlearner.report.cli --results {params.runs} --expected {input.expected} "
        "--reference {input.reference} --figures {params.figures} --analyses {params.figures} "
        "--out {params.out} "
        "--relative-to . > {log} 2>&1"

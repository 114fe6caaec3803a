# Report: reports/REPORT.md (+ REPORT.html, the main figure, summary.json), reports/tables/*,
# reports/cells.csv (and charts/cells_<metric>.csv for DVC) from every table run, and the episode gallery (one training and one test
# episode per dataset). Inputs include the report's own source files, so editing plot/report
# code reruns only these rules.
from types import SimpleNamespace


# Datasets drawn in the gallery: every dataset a table run reads (multi-source Meta-Dataset
# runs read several sources; their episodes are variable-way and not drawn).
GALLERY_DATASETS = sorted({d for r in MATRIX.table_runs for d in r.data_datasets()
                           if r.dataset != "metadataset"})


rule gallery:
    input:
        manifest=f"{RESULTS}/data/{{dataset}}.manifest.json",
        code=sources.gallery_sources(),  # gallery.py and what it imports: not render.py
    output:
        train=report(f"{REPORTS}/gallery/{{dataset}}_train.png", category="5. Episode gallery",
                     caption="../report/gallery.rst"),
        test=report(f"{REPORTS}/gallery/{{dataset}}_test.png", category="5. Episode gallery",
                    caption="../report/gallery.rst"),
        info=multiext(f"{REPORTS}/gallery/{{dataset}}_", "train.json", "test.json"),
    params:
        episodes=lambda wildcards: gallery_options(wildcards.dataset),
        root=config["data_root"],
        out=lambda wildcards, output: str(Path(output.train).parent),
    log:
        f"{RESULTS}/logs/gallery/{{dataset}}.log",
    shell:
        "python -m trlearner.pipeline gallery --dataset {wildcards.dataset:q} {params.episodes} "
        "--data-root {params.root:q} --out {params.out:q} > {log:q} 2>&1"


# The report command of the report rule, and of the partial report written when a job failed
# (every value quoted: `{x:q}`, in both, as Snakemake's shell() formats the command).
REPORT_CMD = ("python -m trlearner.pipeline report --results {params.runs:q} --expected {input.expected:q} "
              "--reference {input.reference:q} --figures {params.analyses:q} --analyses {params.analyses:q} "
              "--gallery {params.gallery:q} --out {params.out:q} --relative-to . > {log:q} 2>&1")


rule report:
    input:
        runs=[r.metrics for r in FIXED.table_runs],
        decided=DECIDED_RECORDS,  # the runs of sequential groups: those the rule asked for
        expected=rules.expected_cells.output[0],
        reference=REFERENCE,
        code=sources.report_sources(),
        analyses=ANALYSIS_OUTPUTS,
        gallery=[f"{REPORTS}/gallery/{d}_train.png" for d in GALLERY_DATASETS],
    output:
        md=f"{REPORTS}/REPORT.md",
        html=report(f"{REPORTS}/REPORT.html", category="1. Verdicts", caption="../report/report.rst"),
        figure=report(f"{REPORTS}/figures/main_results.png", category="2. Main results",
                      caption="../report/main_results.rst"),
        pdf=f"{REPORTS}/figures/main_results.pdf",
        summary=f"{REPORTS}/summary.json",
        verdicts=f"{REPORTS}/verdicts.rst",
        cells=f"{REPORTS}/cells.csv",
        charts=directory(f"{REPORTS}/charts"),  # cells_<metric>.csv: DVC's cells charts
        tables=report(directory(f"{REPORTS}/tables"), patterns=["{name}.html"], category="3. Tables",
                      caption="../report/tables.rst"),
    params:
        runs=lambda wildcards: f"{RESULTS}/runs",
        analyses=lambda wildcards, output: str(Path(output.md).parent / "analyses"),
        gallery=lambda wildcards, output: str(Path(output.md).parent / "gallery"),
        out=lambda wildcards, output: str(Path(output.md).parent),
    log:
        f"{RESULTS}/logs/report.log",
    shell:
        REPORT_CMD


onerror:
    # A job failed, e.g. a dataset that could not be fetched (keep-going ran every other job):
    # the report rule cannot run without all its inputs, so the report is rendered here from
    # the runs that finished; cells without data say "data unavailable: ... (see its log)".
    # The workflow still ends in failure.
    expected = Path(rules.expected_cells.output[0])
    if not expected.is_file():
        expected.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(expected, _ESTIMATED.expected_cells(RESULTS))
    partial = dict(runs=f"{RESULTS}/runs", expected=expected, reference=REFERENCE,
                   analyses=f"{REPORTS}/analyses", gallery=f"{REPORTS}/gallery", out=REPORTS)
    log = f"{RESULTS}/logs/report_partial.log"
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    try:
        shell(REPORT_CMD, params=SimpleNamespace(**partial), input=SimpleNamespace(**partial), log=log)
        print(f"Some jobs failed: {REPORTS}/REPORT.md was written from the runs that finished "
              f"(missing cells say why; log: {log}).", file=sys.stderr)
    except Exception:
        print(f"Some jobs failed and no partial report could be written (see {log}).", file=sys.stderr)


# Snakemake's HTML report shows workflow/report/workflow.rst on its landing page and can read
# only the config there: the verdicts the report rule wrote (reports/verdicts.rst) are handed to
# it under this key, for display only (read when the Snakefile is parsed, e.g. by --report).
_VERDICTS = Path(REPORTS) / "verdicts.rst"
config["_report_verdicts"] = _VERDICTS.read_text() if _VERDICTS.is_file() else ""

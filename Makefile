# One entry point for people and CI. Every target creates the virtual environment first
# when it is missing (or older than pyproject.toml).
SHELL := /bin/bash
PY := .venv/bin/python
SNAKEMAKE := .venv/bin/snakemake
CORES ?= 2
export DVC_NO_ANALYTICS := 1

.PHONY: setup demo run paper test test-quick bench gpu-check clean-results

## The checkout, editable, with the extras the two README commands need: pipeline (Snakemake,
## DVC, the executor plugins: make run and the workflow tests) and dev (pytest).
setup: .venv/.installed

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,pipeline]'
	touch $@

## A quick look: the tiny preset end to end (meaningless numbers, every step of the pipeline).
.PHONY: demo
demo: setup
	mkdir -p reports/tiny
	$(SNAKEMAKE) --cores $(CORES) --configfile config/tiny.yaml --rerun-incomplete --quiet rules
	@echo "Report: reports/tiny/REPORT.md (and REPORT.html); runs under results/tiny/."

## The main job: the default, CPU-sized reproduction (config/default.yaml) and its report.
run: setup
	mkdir -p reports/default
	$(PY) -m trlearner.pipeline check --config config/default.yaml   # YAML errors with line and column
	$(SNAKEMAKE) --cores $(CORES) --configfile config/default.yaml --rerun-incomplete
	$(SNAKEMAKE) --cores $(CORES) --configfile config/default.yaml --report reports/default/snakemake_report.html

## The paper's full protocol on every dataset (for GPU machines; GPUS=N GPUs on this machine).
GPUS ?= 1
paper: setup
	mkdir -p reports/paper
	$(PY) -m trlearner.pipeline check --config config/paper.yaml   # YAML errors with line and column
	$(SNAKEMAKE) --cores $(CORES) --resources dvc=1 gpu=$(GPUS) --configfile config/paper.yaml --rerun-incomplete
	$(SNAKEMAKE) --cores $(CORES) --configfile config/paper.yaml --report reports/paper/snakemake_report.html

## The known cell under every interpretation of the paper's open decisions (config/claims.yaml;
## hours of CPU: docs/PIPELINE.md, "The claims preset"). Writes results/claims/, reports/claims/.
.PHONY: claims
claims: setup
	mkdir -p reports/claims
	$(PY) -m trlearner.pipeline check --config config/claims.yaml   # YAML errors with line and column
	$(SNAKEMAKE) --cores $(CORES) --configfile config/claims.yaml --rerun-incomplete
	$(SNAKEMAKE) --cores $(CORES) --configfile config/claims.yaml --report reports/claims/snakemake_report.html

## The known cell's baseline under every documented reading of the protocol (config/calibration.yaml;
## docs/CALIBRATION.md: the readings, their sources and the selection rule). Writes results/calibration/,
## reports/calibration/.
.PHONY: calibration
calibration: setup
	mkdir -p reports/calibration
	$(PY) -m trlearner.pipeline check --config config/calibration.yaml   # YAML errors with line and column
	$(SNAKEMAKE) --cores $(CORES) --configfile config/calibration.yaml --rerun-incomplete
	$(SNAKEMAKE) --cores $(CORES) --configfile config/calibration.yaml --report reports/calibration/snakemake_report.html

## The paper's operating point: the known cell at the calibrated reading, baseline and TRLearner,
## seeds by the sequential rule (config/operating_point.yaml; docs/CALIBRATION.md).
.PHONY: operating-point
operating-point: setup
	mkdir -p reports/operating_point
	$(PY) -m trlearner.pipeline check --config config/operating_point.yaml   # YAML errors with line and column
	$(SNAKEMAKE) --cores $(CORES) --configfile config/operating_point.yaml --rerun-incomplete

## Published results (results/published/<preset>/: the records of finished runs, committed):
## the reports rendered from them alone, in seconds (reports/published/<preset>/REPORT.md), the
## README's verdict table, and a spot-check that trains N randomly chosen published runs again.
.PHONY: published verdicts spot-check
published: setup
	@for d in results/published/*/; do p=$$(basename $$d); mkdir -p reports/published/$$p; \
	  exp=$$( [ -f $$d/expected.json ] && echo "--expected $$d/expected.json" ); \
	  $(PY) -m trlearner.pipeline report --results $$d/runs $$exp --out reports/published/$$p --relative-to . || exit 1; done

verdicts: setup
	$(PY) -m trlearner.pipeline verdicts --readme README.md

N ?= 1
SEED ?= 0
spot-check: setup
	$(PY) -m trlearner.pipeline spot-check --published results/published -n $(N) --seed $(SEED)

## The whole test suite, slow end-to-end and SLURM tests included (38 min on a loaded 2-core machine;
## the SLURM tests need the cluster of .ci/slurm/up.sh, which .ci/run starts).
test: setup
	$(PY) -m pytest -q

## The tests without the slow end-to-end ones (a few minutes).
test-quick: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) -m trlearner bench --out benchmarks/results

## The GPU check (benchmarks/README.md): CUDA = CPU for every algorithm, throughput at the
## protocol's sizes, `train --device cuda` end to end, within GPU_CHECK_LIMIT seconds. No setup
## step: a GPU machine may have no network, so it runs with .venv's Python when there is one,
## else with python3 (which must have PyTorch); it needs no data. Results: $OUT or
## benchmarks/results/gpu/. GPU_CHECK_ARGS=--dry checks the script on a CPU.
GPU_CHECK_LIMIT ?= 330
gpu-check:
	$(if $(wildcard $(PY)),$(PY),python3) benchmarks/gpu_check.py --time-limit $(GPU_CHECK_LIMIT) $(GPU_CHECK_ARGS)

## A single-node SLURM cluster on this machine (root, Debian 12) for tests/test_slurm_e2e.py.
.PHONY: slurm-up slurm-down
slurm-up:
	.ci/slurm/up.sh

slurm-down:
	.ci/slurm/down.sh

## `dvc plots show` readable offline: dvc_plots/index.html with Vega, Vega-Lite and Vega-Embed
## inlined (from the snakemake package) instead of loaded from a CDN (docs/REPORT_FORMAT.md, "DVC").
.PHONY: plots
plots: setup
	$(PY) -m trlearner.pipeline.dvc plots --out dvc_plots

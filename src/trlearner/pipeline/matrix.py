"""The run matrix of a pipeline config: every training job (:class:`Run`), its folder, its
``trlearner train`` arguments, the data and source files it depends on.

The config (``config/*.yaml``, schema ``trlearner/pipeline/config.schema.yaml``) names
*experiments* (groups of table cells sharing a protocol) and *ablations* (one-key sweeps).

Example::

    >>> cfg = {"preset": "x", "experiments": {"reg": {"datasets": ["sinusoid"],
    ...        "algorithms": ["maml"], "settings": [{"shots": 5}], "seeds": [0, 1]}}}
    >>> runs = build_matrix(cfg).runs
    >>> [r.path for r in runs][:1]
    ['results/x/runs/sinusoid/5shot/maml/baseline/seed0']
    >>> len(runs)
    4

An experiment with ``stack: K`` trains its seeds in stacked jobs (:class:`Stack`, one
``python -m trlearner.run.stacked`` process per chunk): the seeds of a cell go to chunk
``seed // K``, so adding a seed changes only the chunk it falls in::

    >>> cfg["experiments"]["reg"].update(seeds=[0, 1, 2], stack=2)
    >>> [(s.chunk, s.seeds) for s in build_matrix(cfg).stacks][:2]
    [(0, [0, 1]), (1, [2])]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from trlearner.data.sources.metadataset_sources import METADATASET_HELDOUT_SOURCES, METADATASET_TRAIN_SOURCES
from trlearner.pipeline.catalog import METADATASET_MULTI, VARIANTS, VARWAY_SETTING
from trlearner.pipeline.schema import protocol_keys, trlearner_keys
from trlearner.pipeline.sources import train_sources

# Train CLI options a config may set under ``protocol`` (name in config -> CLI flag), and the
# TRLearner settings it may set under ``trlearner``: the schema's (trlearner.pipeline.schema).
PROTOCOL_KEYS = protocol_keys()
TRLEARNER_KEYS = trlearner_keys()
# Protocol keys whose value is a list (passed to the CLI comma-separated).
LIST_KEYS = ("train_sources", "heldout_sources")
# Boolean protocol keys whose CLI option has a --no- form (false is passed, not left out).
NEGATABLE_KEYS = ("adapt_bn",)


class ConfigError(ValueError):
    """A config that the pipeline refuses, with a message naming key, value and what is allowed."""


def setting_name(shots: int, ways: int | None, varway: bool = False) -> str:
    """``5shot`` (regression), ``5way1shot`` (classification), as in docs/CONTRACTS.md, or
    ``varway`` (variable way/shot episodes: Meta-Dataset)."""
    if varway:
        return VARWAY_SETTING
    return f"{shots}shot" if ways is None else f"{ways}way{shots}shot"


@dataclass(frozen=True)
class Run:
    """One training job: a run folder and everything its command needs."""

    kind: str  # "run" (a table cell) or "ablation"
    group: str  # experiment or ablation name
    dataset: str
    setting: str
    shots: int
    ways: int | None
    algorithm: str
    variant: str
    seed: int
    protocol: tuple  # sorted (key, value) pairs
    trlearner: tuple  # sorted (key, value) pairs (empty for baseline)
    point: str | None = None  # ablation point, e.g. "lam-0.5"
    root: str = "results"

    @property
    def path(self) -> str:
        tail = f"{self.dataset}/{self.setting}/{self.algorithm}/{self.variant}"
        if self.kind == "ablation":
            return f"{self.root}/ablations/{self.group}/{tail}/{self.point}/seed{self.seed}"
        return f"{self.root}/runs/{tail}/seed{self.seed}"

    @property
    def metrics(self) -> str:
        return f"{self.path}/metrics.json"

    def cell(self) -> dict:
        return {"dataset": self.dataset, "setting": self.setting, "algorithm": self.algorithm,
                "variant": self.variant}

    def train_args(self, preset: str, device: str, data_root: str) -> list[str]:
        """The ``trlearner train`` command line of this run (without ``--out``/``--threads``), for a
        person who reruns one run by hand: it resolves to :meth:`run_config`, the same identity
        (tests/test_run_identity.py). The pipeline does not use it: its jobs receive the run
        config itself (:func:`trlearner.pipeline.jobs.job_document`)."""
        args = ["--dataset", self.dataset, "--algorithm", self.algorithm, "--shots", str(self.shots),
                "--seed", str(self.seed)]
        if self.ways is not None:
            args += ["--ways", str(self.ways)]
        for key, value in self.protocol:
            flag = "--" + key.replace("_", "-")
            if key in LIST_KEYS:
                args += [flag, ",".join(value)]
            elif isinstance(value, bool):
                if value:
                    args.append(flag)
                elif key in NEGATABLE_KEYS:
                    args.append("--no-" + key.replace("_", "-"))
            else:
                args += [flag, str(value)]
        if self.variant == "trlearner":
            args.append("--trlearner")
            for key, value in self.trlearner:
                if isinstance(value, bool):  # a flag (fixed_omega)
                    args += ["--" + key.replace("_", "-")] if value else []
                else:
                    args += ["--" + key.replace("_", "-"), str(value)]
        args += ["--preset", preset, "--device", device, "--data-root", data_root, "--no-progress"]
        return args

    def run_config(self, preset: str = "cli", device: str = "cpu", data_root: str = "data"):
        """The run's :class:`trlearner.run.config.RunConfig`: what its pipeline job trains (sent
        as it is, :func:`trlearner.pipeline.jobs.job_document`), and what ``trlearner train``
        resolves from :meth:`train_args` (tests/test_run_identity.py checks both agree);
        ``config_hash(run_config().identity())`` is the run's identity, which the report checks
        every record against (imports torch)."""
        from trlearner.method.trconfig import TRConfig
        from trlearner.run.cli import TR_NEGATED
        from trlearner.run.config import resolve_config

        trl = None
        if self.variant == "trlearner":
            values = dict(self.trlearner)
            for field_name, negation in TR_NEGATED.items():
                if negation in values:
                    values[field_name] = not values.pop(negation)
            trl = TRConfig(**values)
        logger = logging.getLogger("trlearner.run.config")
        level = logger.level
        logger.setLevel(logging.ERROR)  # its notes are for a run's log, not a plan
        try:
            return resolve_config(dataset=self.dataset, algorithm=self.algorithm, shots=self.shots, ways=self.ways,
                                  seed=self.seed, preset=preset, device=device, data_root=data_root, trlearner=trl,
                                  **dict(self.protocol))
        finally:
            logger.setLevel(level)

    def identity_hash(self) -> str:
        """The hash of the run's identity (``provenance.json``'s ``config_hash`` of its record)."""
        from trlearner.run.results import config_hash

        return config_hash(self.run_config().identity())

    def sources(self) -> list[str]:
        """Source files whose change must rerun this job (:mod:`trlearner.pipeline.sources`)."""
        return train_sources(self.algorithm, trlearner=self.variant == "trlearner")

    def sources_of_metadataset(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(train sources, held-out sources) of a multi-source run (protocol or defaults)."""
        p = dict(self.protocol)
        return (tuple(p.get("train_sources", METADATASET_TRAIN_SOURCES)),
                tuple(p.get("heldout_sources", METADATASET_HELDOUT_SOURCES)))

    def resolved_protocol(self) -> dict:
        """The run's protocol as ``trlearner train`` resolves it (queries = shots on Omniglot,
        ProtoNet's wider training episodes), with the config's overrides; keys the protocol
        leaves unset (e.g. a regression run's ``train_queries``) are absent."""
        from trlearner.run.protocols import DATASET_PROTOCOLS, paper_protocol

        from trlearner.run.readings import reading_settings

        overrides = dict(self.protocol)
        if self.dataset in DATASET_PROTOCOLS:
            base = paper_protocol(self.dataset, self.algorithm, self.ways, self.shots, overrides.get("backbone"))
            if "reading" in overrides:
                base.update(reading_settings(overrides["reading"], self.dataset))
        else:
            base = {"iterations": 60_000, "meta_batch": 4}
        base.update(overrides)
        return base

    @property
    def train_dataset(self) -> str:
        """The dataset of the training episodes: ``protocol.train_dataset``, else the protocol
        default (``miniimagenet`` for the cross-domain cells cub/places), else the run's dataset."""
        from trlearner.run.protocols import DATASET_PROTOCOLS

        return (dict(self.protocol).get("train_dataset")
                or DATASET_PROTOCOLS.get(self.dataset, {}).get("train_dataset") or self.dataset)

    def data_datasets(self) -> list[str]:
        """The registry datasets this run reads (a manifest each): the training dataset and its
        dataset (one entry when they are the same), or every source of a multi-source
        Meta-Dataset run."""
        if self.dataset != METADATASET_MULTI:
            return list(dict.fromkeys([self.train_dataset, self.dataset]))
        train, held = self.sources_of_metadataset()
        return [f"metadataset_{s}" for s in train + held]


@dataclass(frozen=True)
class Stack:
    """The seeds of one cell trained in one stacked job (``stack: K`` of an experiment): the
    cell's runs whose ``seed // K`` is ``chunk``, in seed order."""

    runs: tuple  # Run objects of one cell, sorted by seed
    size: int  # the experiment's stack (chunk size) K
    chunk: int  # seed // size of every run

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    @property
    def cell_path(self) -> str:
        """The cell's folder, where every seed's run folder ``seed<N>`` lies."""
        return self.runs[0].path.rsplit("/", 1)[0]

    @property
    def name(self) -> str:
        """A rule name (an identifier) unique in the matrix: cell and chunk."""
        r = self.runs[0]
        point = "" if r.kind == "run" else f"{r.group}_{r.point.replace('-', '_').replace('.', '_')}_"
        return f"train_stack_{point}{r.dataset}_{r.setting}_{r.algorithm}_{r.variant}_chunk{self.chunk}"

    @property
    def log(self) -> str:
        """The job's log, under ``<root>/logs/`` as the cell's folder is under ``<root>/``."""
        r = self.runs[0]
        return f"{r.root}/logs/{self.cell_path[len(r.root) + 1:]}/stack{self.chunk}.log"

    @property
    def metrics(self) -> list[str]:
        return [r.metrics for r in self.runs]

    def sources(self) -> list[str]:
        """The source files of a single run of the cell (run/stacked.py is under run/)."""
        return self.runs[0].sources()


def stack_runs(runs: list[Run], size: int) -> list[Stack]:
    """The stacked jobs of one experiment's ``runs`` with chunk size ``size``: per cell, the
    seeds grouped by ``seed // size`` (by value, not by position in the seed list: a seed
    added to the config changes only its own chunk, and never moves the others)."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        key = (r.group, r.point or "", r.dataset, r.setting, r.algorithm, r.variant, r.seed // size)
        groups.setdefault(key, []).append(r)
    return [Stack(tuple(sorted(g, key=lambda r: r.seed)), size, key[-1])
            for key, g in sorted(groups.items(), key=lambda kv: kv[0])]


@dataclass
class Matrix:
    preset: str
    device: str
    threads: int
    data_root: str
    runs: list[Run] = field(default_factory=list)
    by_path: dict[str, Run] = field(default_factory=dict)
    stacks: list[Stack] = field(default_factory=list)  # stacked jobs (experiments with `stack`)
    # (kind, group) of the groups with `sequential: true`: their runs cover every seed up to the
    # sequential rule's last look; trlearner.pipeline.sequential.decided keeps those the rule asks for
    sequential: set = field(default_factory=set)

    @property
    def stacked_paths(self) -> set[str]:
        """Run folders trained by a stacked job (not by a per-seed ``train`` job)."""
        return {r.path for s in self.stacks for r in s.runs}

    @property
    def table_runs(self) -> list[Run]:
        return [r for r in self.runs if r.kind == "run"]

    @property
    def ablation_runs(self) -> list[Run]:
        return [r for r in self.runs if r.kind == "ablation"]

    @property
    def datasets(self) -> list[str]:
        """The registry datasets the runs read (one dataset_manifest job each)."""
        return sorted({d for r in self.runs for d in r.data_datasets()})

    def expected_cells(self, results: str = "results", identities: bool = True) -> list[dict]:
        """The report's expected-cells spec: every table cell with its seeds, its experiment (the
        report's table is its dataset's family, e.g. one regression table for the known cell and
        the rest of its row, which are two experiments in the default preset) and the data
        manifests its runs need (``<results>/data/<dataset>.manifest.json``: a cell whose
        manifest is absent is reported as "data unavailable") and, with ``identities``, each
        expected run: its folder under ``<results>/runs`` and its identity hash
        (:meth:`Run.identity_hash`), which the report checks every record against. A multi-source Meta-Dataset run
        is one job but several cells (overall, OOD, each source:
        ``trlearner.run.protocols.metadataset_cells``)."""
        from trlearner.run.protocols import metadataset_cells

        cells: dict[tuple, dict] = {}
        for r in self.table_runs:
            names = [(r.dataset, r.setting)]
            if r.dataset == METADATASET_MULTI:
                names = metadataset_cells(*r.sources_of_metadataset())
            for dataset, setting in names:
                key = (dataset, setting, r.algorithm, r.variant)
                cell = {"dataset": dataset, "setting": setting, "algorithm": r.algorithm, "variant": r.variant,
                        "seeds": [], "experiment": r.group, "data_manifests": [], "runs": []}
                cell = cells.setdefault(key, cell)
                cell["seeds"].append(r.seed)
                if identities:
                    cell["runs"].append({"seed": r.seed, "run": r.path[len(f"{r.root}/runs/"):],
                                         "config_hash": r.identity_hash()})
                for d in r.data_datasets():
                    manifest = f"{results}/data/{d}.manifest.json"
                    if manifest not in cell["data_manifests"]:
                        cell["data_manifests"].append(manifest)
        return [cells[k] for k in sorted(cells)]

    def ablation_index(self, identities: bool = True) -> list[dict]:
        """The expected ablation runs (``<results>/ablations/index.json``): each run's point,
        seed, metrics path and, with ``identities``, its folder under ``<results>/ablations``
        and identity hash, which the report's open-decision and calibration sections check
        every record against (:func:`trlearner.report.admission.admit_points`)."""
        out = []
        for r in self.ablation_runs:
            entry = {"ablation": r.group, "dataset": r.dataset, "setting": r.setting, "algorithm": r.algorithm,
                     "variant": r.variant, "point": r.point, "seed": r.seed, "metrics": r.metrics}
            if identities:
                entry.update(run=r.path[len(f"{r.root}/ablations/"):], config_hash=r.identity_hash())
            out.append(entry)
        return out

    def restricted(self, paths: set[str]) -> Matrix:
        """The same matrix with only the runs whose folder is in ``paths`` (and the stacked jobs
        all of whose runs are kept)."""
        runs = [r for r in self.runs if r.path in paths]
        return Matrix(self.preset, self.device, self.threads, self.data_root, runs, {r.path: r for r in runs},
                      [s for s in self.stacks if all(r.path in paths for r in s.runs)], set(self.sequential))

    def lookup(self, path: str) -> Run:
        try:
            return self.by_path[path]
        except KeyError:
            raise ConfigError(f"no run {path!r} in the config's experiment matrix") from None


def _pairs(d: dict | None) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in (d or {}).items()))


def _settings(exp: dict) -> list[tuple[int, int | None, bool]]:
    """(shots, ways, varway) of each setting; ``{varway: true}`` runs with shots 1 (ignored)."""
    return [(int(s.get("shots", 1)), s.get("ways"), bool(s.get("varway", False))) for s in exp["settings"]]


def _seeds(exp: dict) -> list[int]:
    """The seeds of a group: as listed, or, with ``sequential: true``, every seed up to the
    sequential rule's last look (trlearner.report.sequential.LOOKS; the config lists the first)."""
    if exp.get("sequential"):
        from trlearner.report.sequential import LOOKS

        return list(range(LOOKS[-1]))
    return [int(s) for s in exp["seeds"]]


def _excluded(exp: dict, dataset: str, setting: str, algorithm: str, variant: str) -> bool:
    here = {"dataset": dataset, "setting": setting, "algorithm": algorithm, "variant": variant}
    return any(all(here[k] == v for k, v in rule.items()) for rule in exp.get("exclude") or ())


def preset_roots(config: dict) -> tuple[str, str]:
    """The results and reports folders of a preset: the config's ``results``/``reports``, else
    ``results/<preset>`` and ``reports/<preset>``, so that no preset (the tests' ``tiny``, ``claims``)
    ever writes into another's runs or report.

    Example:
        >>> preset_roots({"preset": "tiny"}), preset_roots({"preset": "x", "results": "r"})
        (('results/tiny', 'reports/tiny'), ('r', 'reports/x'))
    """
    preset = config.get("preset", "custom")
    return config.get("results") or f"results/{preset}", config.get("reports") or f"reports/{preset}"


def build_matrix(config: dict) -> Matrix:
    """Every run of ``config`` (experiments then ablations), as the config says: no check but
    that each cell is defined once (:class:`ConfigError`).
    :func:`trlearner.pipeline.check.check_config` checks a config and builds its matrix."""
    root = preset_roots(config)[0]
    m = Matrix(preset=config.get("preset", "custom"), device=config.get("device", "cpu"),
               threads=int(config.get("threads", 1)), data_root=config.get("data_root", "data"))
    owner: dict[str, str] = {}
    base_trl = config.get("trlearner") or {}

    def add(run: Run, where: str):
        if run.path in m.by_path:
            raise ConfigError(f"{where}: run {run.path} is already defined by {owner[run.path]}; "
                              f"allowed: each cell in one experiment (use 'exclude')")
        owner[run.path] = where
        m.by_path[run.path] = run
        m.runs.append(run)

    for name, exp in (config.get("experiments") or {}).items():
        where = f"experiments.{name}"
        protocol = exp.get("protocol") or {}
        trl = {**base_trl, **(exp.get("trlearner") or {})}
        for dataset in exp["datasets"]:
            for shots, ways, varway in _settings(exp):
                setting = setting_name(shots, ways, varway)
                for algorithm in exp["algorithms"]:
                    for variant in exp.get("variants", VARIANTS):
                        if _excluded(exp, dataset, setting, algorithm, variant):
                            continue
                        for seed in _seeds(exp):
                            add(Run("run", name, dataset, setting, shots, ways, algorithm, variant,
                                    int(seed), _pairs(protocol),
                                    _pairs(trl) if variant == "trlearner" else (), root=root), where)
        if exp.get("sequential"):
            m.sequential.add(("run", name))
        if exp.get("stack"):
            m.stacks += stack_runs([r for r in m.runs if r.kind == "run" and r.group == name], int(exp["stack"]))
    for name, abl in (config.get("ablations") or {}).items():
        where = f"ablations.{name}"
        protocol = abl.get("protocol") or {}
        trl = {**base_trl, **(abl.get("trlearner") or {})}
        (key, values), = abl["sweep"].items()
        for dataset in abl["datasets"]:
            for shots, ways, varway in _settings(abl):
                for algorithm in abl["algorithms"]:
                    for variant in abl.get("variants", VARIANTS):
                        if key in TRLEARNER_KEYS and variant == "baseline":
                            continue  # a TRLearner setting does not change the baseline
                        for value in values:
                            p, t = dict(protocol), dict(trl)
                            (t if key in TRLEARNER_KEYS else p)[key] = value
                            for seed in _seeds(abl):
                                add(Run("ablation", name, dataset, setting_name(shots, ways, varway), shots,
                                        ways, algorithm, variant, int(seed), _pairs(p),
                                        _pairs(t) if variant == "trlearner" else (),
                                        point=f"{key}-{value}", root=root), where)
        if abl.get("sequential"):
            m.sequential.add(("ablation", name))
        if abl.get("stack"):
            m.stacks += stack_runs([r for r in m.runs if r.kind == "ablation" and r.group == name],
                                   int(abl["stack"]))
    return m

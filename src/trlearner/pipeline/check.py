"""The config check: a pipeline config against its schema and the datasets' limits.

:func:`check_config` refuses a config with a :class:`ConfigError` that lists every problem,
each naming the key, the value and what is allowed (unknown keys, types, enums, impossible
shots/ways, runs ``trlearner train`` would refuse), and returns the run matrix of a good one.
:func:`load_config` reads a config file (a YAML syntax error names its line and column).

Example::

    >>> check_config({"preset": "x", "experiments": {"reg": {"datasets": ["sinusoid"],
    ...     "algorithms": ["maml"], "settings": [{"shots": 5, "ways": 5}], "seeds": [0]}}})
    Traceback (most recent call last):
    ...
    trlearner.pipeline.matrix.ConfigError: invalid config:
      experiments.reg: ways=5 given for regression dataset 'sinusoid'; allowed: no 'ways' (regression settings are {shots: K})
"""

from __future__ import annotations

from pathlib import Path

from trlearner.method.trconfig import TRConfig
from trlearner.pipeline.catalog import (ALGORITHMS, CLASSIFICATION, EXAMPLES_PER_CLASS, MAX_WAYS,
                                        METADATASET_MULTI, REGRESSION, VARIABLE_WAY, VARWAY_SETTING,
                                        VECTOR_INPUT)
from trlearner.pipeline.matrix import LIST_KEYS, ConfigError, Matrix, Run, Stack, build_matrix
from trlearner.pipeline.schema import SCHEMA, schema
from trlearner.run.protocols import FIXED_WAY_IMAGE_DATASETS
from trlearner.run.readings import reading_settings

__all__ = ["ConfigError", "SCHEMA", "check_config", "load_config"]


def load_config(path: str) -> dict:
    """The config at ``path``; :class:`ConfigError` (file, line, column) for a YAML syntax error."""
    import yaml

    from trlearner.util.yamlsafe import safe_load  # duplicate keys, alias bombs, depth: file:line:column

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}; allowed: a YAML file "
                          f"(e.g. config/default.yaml)") from None
    try:
        config = safe_load(text, name=str(path)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        problem = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
        raise ConfigError(f"YAML syntax error at {path}:{at}: {problem or exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"the config is a {type(config).__name__}, not a mapping of keys; allowed: "
                          f"a YAML mapping (preset:, experiments:, ...)")
    return config


def _describe(error) -> str:
    """One line per schema error, naming the key, the value and what is allowed."""
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        pattern = error.schema.get("patternProperties")
        if pattern:
            return (f"config key {where}: name(s) {extra} not allowed; names must match "
                    f"{', '.join(pattern)}")
        return f"config key {where}: unknown key(s) {extra}; allowed keys: {allowed}"
    if v == "enum":
        return f"config key {where}: value {error.instance!r} is not allowed; allowed: {error.validator_value}"
    if v == "type":
        return (f"config key {where}: value {error.instance!r} has the wrong type; "
                f"allowed: {error.validator_value}")
    if v == "required":
        return f"config key {where}: {error.message}"
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    if v in bounds:
        return f"config key {where}: value {error.instance!r} is out of range; allowed: {bounds[v]} {error.validator_value}"
    return f"config key {where}: value {error.instance!r}: {error.message}"


def check_config(config: dict) -> Matrix:
    """Validate ``config`` against the schema and the datasets' limits; return its matrix.
    Raises :class:`ConfigError` listing every problem."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    problems = _non_finite(config) + [_describe(e) for e in errors]  # NaN passes every JSON-schema bound
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    if config.get("preset") == "published" and not (config.get("results") and config.get("reports")):
        raise ConfigError("invalid config: preset 'published' would write into results/published/, the committed "
                          "records of finished runs; allowed: another preset name")
    matrix = build_matrix(config)
    if not matrix.runs:
        raise ConfigError("invalid config: no runs: 'experiments' and 'ablations' are both empty; allowed: at "
                          "least one experiment or ablation")
    problems = list(dict.fromkeys(p for r in matrix.runs for p in (_check_setting(r), _check_run(r)) if p))
    problems += list(dict.fromkeys(p for s in matrix.stacks if (p := _check_stack(s))))
    problems += _check_sequential(config, matrix)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return matrix


def _check_sequential(config: dict, matrix: Matrix) -> list[str]:
    """Why the sequential rule cannot run a group with ``sequential: true``: seeds that are not
    its first look, stacks that straddle two looks, an arm without a baseline or a paper effect."""
    from trlearner.pipeline import sequential
    from trlearner.report.reference import Reference, default_reference_path
    from trlearner.report.sequential import LOOKS

    problems = []
    for kind, groups in (("experiments", config.get("experiments")), ("ablations", config.get("ablations"))):
        for name, group in (groups or {}).items():
            if not group.get("sequential"):
                continue
            if [int(s) for s in group["seeds"]] != list(range(LOOKS[0])):
                problems.append(f"{kind}.{name}.seeds: {group['seeds']} with sequential: true; allowed: the rule's "
                                f"first look, {list(range(LOOKS[0]))} (it adds the others)")
            if group.get("stack") and any(n % int(group["stack"]) for n in LOOKS):
                problems.append(f"{kind}.{name}.stack: {group['stack']} would put one job across two looks of the "
                                f"sequential rule (at {list(LOOKS)} seeds); allowed: a divisor of {LOOKS[0]}")
    if problems or not matrix.sequential:
        return problems
    try:
        arms = sequential.arms(matrix)
    except ConfigError as exc:
        return [str(exc)]
    reference = Reference.load((config.get("report") or {}).get("reference") or default_reference_path())
    for arm in arms:
        if sequential.paper_effect(reference, *arm.cell) is None:
            problems.append(f"sequential: {' '.join(arm.cell)} has no paper effect (baseline and TRLearner in "
                            f"the reference) for the rule to test; allowed: sequential only on known cells")
    return list(dict.fromkeys(problems))


def _non_finite(x, where: str = "") -> list[str]:
    """A line per NaN/inf number in the config (YAML ``.nan``, ``.inf``), naming its key."""
    import math

    if isinstance(x, float) and not math.isfinite(x):
        return [f"config key {where or '(top level)'}: value {x!r} is not a finite number; allowed: a finite number"]
    if isinstance(x, dict):
        return [p for k, v in x.items() for p in _non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(x, list):
        return [p for i, v in enumerate(x) for p in _non_finite(v, f"{where}.{i}")]
    return []


def _check_run(run: Run) -> str | None:
    """Why ``run`` cannot give a meaningful number (as ``trlearner train`` would refuse it), or None."""
    where = _where(run)
    protocol = dict(run.protocol)
    backbone = protocol.get("backbone")
    vector = run.dataset in VECTOR_INPUT
    if run.algorithm == "protonet" and run.dataset in REGRESSION:
        return (f"{where}: algorithm protonet on the regression dataset {run.dataset!r} (ProtoNet classifies by "
                f"class prototypes); allowed: {', '.join(a for a in ALGORITHMS if a != 'protonet')}, or exclude it")
    if backbone is not None and (backbone == "mlp") != vector:
        allowed = "mlp" if vector else "conv4 or resnet12"
        return (f"{where}: protocol.backbone={backbone!r} does not fit the "
                f"{'vector' if vector else 'image'} inputs of {run.dataset!r}; allowed: {allowed}")
    if "reading" in protocol:
        try:
            reading_settings(protocol["reading"], run.dataset)
        except ValueError as exc:
            return f"{where}: protocol.{exc}"
    if run.variant == "trlearner" and protocol.get("meta_batch", 2) < 2:
        return (f"{where}: meta_batch={protocol['meta_batch']} with variant trlearner (TRLearner weighs the "
                f"relations between the tasks of a meta-batch: 0/0 for one task); allowed: meta_batch >= 2")
    return None


def _check_stack(stack: Stack) -> str | None:
    """Why the stacked trainer would refuse ``stack`` (the rules of
    :func:`trlearner.run.stacked.check_stackable` that a config can break), or None. The loop
    back-end, the third rule there, is no config key (every pipeline run uses vmap)."""
    run = stack.runs[0]
    where = f"{_where(run)}.stack"
    if run.dataset in VARIABLE_WAY:
        return (f"{where}: dataset {run.dataset!r} is a Meta-Dataset run (episodes of varying size per seed), "
                f"which the stacked trainer does not stack; allowed: no 'stack' for Meta-Dataset experiments")
    align = dict(run.trlearner).get("align", TRConfig.align)
    if run.variant == "trlearner" and run.ways is not None and align == "match":
        return (f"{where}: TRLearner with align 'match' on the classification dataset {run.dataset!r} (the "
                f"Hungarian matching runs in scipy, outside vmap) cannot be stacked; allowed: trlearner: "
                f"{{align: index}}, variants: [baseline], or no 'stack'")
    return None


def _where(run: Run) -> str:
    return f"{'experiments' if run.kind == 'run' else 'ablations'}.{run.group}"


def _check_setting(run: Run) -> str | None:
    """Why the setting of ``run`` is impossible for its dataset, or None."""
    return _setting_problem(_where(run), run.dataset, run.shots, run.ways, dict(run.protocol),
                            run.setting == VARWAY_SETTING) or _train_dataset_problem(
        _where(run), run.dataset, dict(run.protocol))


def _setting_problem(where: str, dataset: str, shots: int, ways: int | None, protocol: dict,
                     varway: bool = False) -> str | None:
    given = [k for k in LIST_KEYS if k in protocol]
    if given and dataset != METADATASET_MULTI:
        return (f"{where}: protocol {given} given for dataset {dataset!r}; allowed only for the "
                f"multi-source dataset {METADATASET_MULTI!r}")
    both = sorted(set(protocol.get("train_sources", ())) & set(protocol.get("heldout_sources", ())))
    if both:
        return (f"{where}: source(s) {both} are in both train_sources and heldout_sources; "
                f"allowed: disjoint lists (a held-out source is never trained on)")
    if dataset in VARIABLE_WAY or varway:
        if dataset not in VARIABLE_WAY:
            return (f"{where}: varway given for dataset {dataset!r}; allowed only for the "
                    f"variable-way sources ({', '.join(VARIABLE_WAY)})")
        if not varway or ways is not None:
            return (f"{where}: dataset {dataset!r} draws variable-way/shot episodes; "
                    f"allowed setting: {{varway: true}} (no shots/ways)")
        return None
    if dataset in REGRESSION and ways is not None:
        return (f"{where}: ways={ways} given for regression dataset {dataset!r}; "
                f"allowed: no 'ways' (regression settings are {{shots: K}})")
    if dataset in CLASSIFICATION and ways is None:
        return (f"{where}: dataset {dataset!r} is classification and needs 'ways' "
                f"(e.g. {{ways: 5, shots: 1}})")
    if ways is not None and ways < 2:
        return f"{where}: ways={ways}; allowed: ways >= 2"
    if ways is not None and ways > MAX_WAYS.get(dataset, ways):
        return (f"{where}: ways={ways} but the smaller of the train and test splits of {dataset!r} "
                f"has {MAX_WAYS[dataset]} classes; allowed: ways <= {MAX_WAYS[dataset]}")
    limit = EXAMPLES_PER_CLASS.get(dataset)
    for key in ("test_queries", "train_queries"):
        queries = protocol.get(key, 15)
        if limit is not None and shots + queries > limit:
            return (f"{where}: shots={shots} + {key}={queries} > {limit} images per "
                    f"class of {dataset!r}; allowed: shots + {key} <= {limit}")
    return None


def _train_dataset_problem(where: str, dataset: str, protocol: dict) -> str | None:
    """``protocol.train_dataset`` (a separate training dataset) is for fixed-way image datasets."""
    train = protocol.get("train_dataset")
    if train is not None and dataset not in FIXED_WAY_IMAGE_DATASETS:
        return (f"{where}: protocol train_dataset={train!r} given for dataset {dataset!r}; allowed only "
                f"for the fixed-way image datasets ({', '.join(FIXED_WAY_IMAGE_DATASETS)})")
    return None

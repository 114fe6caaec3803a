"""One table per experiment family, reproduced values beside the paper's, rendered with pandas.

Each main table has rows = algorithm x {baseline, + TRLearner} and, for every setting, three
columns: ``ours`` ("mean ± CI (n=...)" or the reason the cell is empty), ``paper`` (the
TRLearner paper's value or "n/a") and ``Δ vs baseline`` (paired TRLearner - baseline
difference, on the + TRLearner row). A cell run under a reduced protocol carries "†" and is
not judged against the paper's value. Families with published baseline numbers also get a
context table ("as published by the baseline's authors", their own protocol).

Example:
    >>> import pandas as pd
    >>> from trlearner.report.reference import Reference
    >>> ref = Reference.load()
    >>> runs = pd.DataFrame(columns=["dataset", "setting", "algorithm", "variant", "seed",
    ...     "status", "metric", "higher_is_better", "mean", "ci95", "n_tasks", "per_task",
    ...     "reduced", "diverged_at", "message", "path", "log", "episodes_hash", "wall_time_s"])
    >>> tables = build_tables(runs, expected=[], reference=ref)
    >>> t = next(t for t in tables if t.family == "regression")
    >>> t.sections[0].frame.loc["MAML + TRLearner", ("5shot", "paper")]
    '0.400'
    >>> t.sections[0].frame.loc["MAML", ("5shot", "ours")]
    'not in this preset'
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from . import escape
from .reference import Reference
from .rounding import ci_decimals, fmt, format_ci
from trlearner.run.records.stats import CI_TASKS, PAIR_TASKS, aggregate_cells, paired_differences, records

VARIANT_ORDER = ("baseline", "trlearner")
SUBCOLUMNS = ("ours", "paper", "Δ vs baseline")
DAGGER = "†"
POOLED = "‡"
NOT_IN_PRESET = "not in this preset"

FOOTNOTES = [
    "Cells: mean ± 95 % CI (n = seeds). CI: Student-t over seeds; with one seed "
    "(\"1 seed, task CI\") the run's own 1.96·σ/√n over its test tasks.",
    "Δ vs baseline: paired TRLearner − baseline difference ± 95 % CI, paired t-test p-value "
    "(pairs = seeds; with one seed, the test tasks of that seed).",
    f"{DAGGER} reduced protocol: not comparable to, and not judged against, the paper's value.",
    "paper: the TRLearner paper's value where known (trlearner/report/reference.yaml), else n/a; "
    "\"in our CI\" says whether it lies inside our 95 % CI.",
    f"{POOLED} pools runs made with different code versions (git commit, code hash) or on "
    "different test episodes (episodes_hash): see \"Run checks\" in REPORT.md.",
]


@dataclass
class Section:
    """One rendered table: a caption and a DataFrame of strings."""

    caption: str
    frame: pd.DataFrame


@dataclass
class FamilyTable:
    """All tables of one experiment family (main table per dataset, then context)."""

    family: str
    title: str
    sections: list[Section] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)


# Named settings shown first among the named ones (Meta-Dataset: overall, then OOD).
NAMED_SETTINGS_FIRST = ("overall", "ood")


def setting_sort_key(setting: str) -> tuple:
    """Sort settings by ways then shots, named settings last (``overall``, ``ood`` first
    among them, then held-out sources after the others, then by name).

    >>> sorted(["10shot", "5shot", "20way1shot", "5way5shot", "5way1shot"], key=setting_sort_key)
    ['5shot', '10shot', '5way1shot', '5way5shot', '20way1shot']
    >>> sorted(["ood", "dtd", "mscoco (held out)", "overall", "aircraft"], key=setting_sort_key)
    ['overall', 'ood', 'aircraft', 'dtd', 'mscoco (held out)']
    """
    s = str(setting)
    if s in NAMED_SETTINGS_FIRST:
        return (2, NAMED_SETTINGS_FIRST.index(s), 0, s)
    m = re.fullmatch(r"(\d+)way(\d+)shot", s)
    if m:
        return (1, int(m.group(1)), int(m.group(2)), s)
    m = re.fullmatch(r"(\d+)shot", s)
    if m:
        return (0, 0, int(m.group(1)), s)
    return (3, int(s.endswith("(held out)")), 0, s)


def load_expected(path_or_cells: str | os.PathLike | Iterable[dict] | dict | None) -> list[dict[str, Any]] | None:
    """The expected-cells spec: a JSON file or an already-parsed list/dict.

    Accepted forms: a list of ``{"dataset", "setting", "algorithm", "variant"}`` dicts (optional
    ``seeds``: list of ints, ``reason``: why it cannot run, e.g. "data unavailable",
    ``family``: the table to show it in, default the dataset's family in reference.yaml;
    ``experiment``, ``data_manifests``: from the pipeline), or ``{"cells": [...]}``. None means
    no spec (cells not found are "not run").

    >>> load_expected([{"dataset": "sinusoid", "setting": "5shot", "algorithm": "maml",
    ...                 "variant": "baseline"}])[0]["setting"]
    '5shot'
    """
    if path_or_cells is None:
        return None
    where = "expected cells"
    if isinstance(path_or_cells, (str, os.PathLike)):
        where = f"--expected {path_or_cells}"
        allowed = ("allowed: a JSON list of cells {dataset, setting, algorithm, variant} or {\"cells\": [...]}, "
                   "as `python -m trlearner.pipeline expected` writes it")
        try:
            data = json.loads(Path(path_or_cells).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{where} does not exist; {allowed}") from None
        except IsADirectoryError:
            raise ValueError(f"{where} is a folder; {allowed}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                             f"{allowed}") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start}); {allowed}") from None
    else:
        data = path_or_cells
    if isinstance(data, dict):
        data = data.get("cells", [])
    if not isinstance(data, list):
        raise ValueError(f"{where}: holds a {type(data).__name__}, not a list of cells")
    cells = []
    for i, cell in enumerate(data):
        if not isinstance(cell, dict):
            raise ValueError(f"{where}: cell {i} is {cell!r}, not an object {{dataset, setting, algorithm, variant}}")
        missing = [k for k in ("dataset", "setting", "algorithm", "variant") if k not in cell]
        if missing:
            raise ValueError(f"{where}: expected cell {i} lacks {missing}: {cell}")
        if cell["variant"] not in VARIANT_ORDER:
            raise ValueError(f"{where}: expected cell {i}: variant={cell['variant']!r}, allowed: {VARIANT_ORDER}")
        cells.append({**cell, "setting": str(cell["setting"])})
    return cells


def _fmt(x: float, decimals: int, sign: bool = False) -> str:
    return fmt(x, decimals, sign)  # scientific notation from 1e15 on (trlearner.report.rounding.fmt)


def format_p(p: float) -> str:
    """p-value with fixed formatting.

    >>> format_p(0.01234), format_p(0.00001), format_p(float("nan"))
    ('p=0.012', 'p<0.001', 'p=n/a')
    """
    if p is None or not math.isfinite(p):
        return "p=n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _diverged_text(diverged_at: list[tuple[Any, Any]]) -> str:
    known = [(s, it) for s, it in diverged_at if it is not None]
    if len(diverged_at) == 1:
        return f"diverged at iteration {known[0][1]}" if known else "diverged"
    parts = [f"seed {s} at iteration {it}" if it is not None else f"seed {s}" for s, it in diverged_at]
    return f"diverged ({'; '.join(parts)})"


def _data_unavailable(cell: dict[str, Any]) -> str | None:
    """"data unavailable: ..." when a data manifest the cell's runs need does not exist (its
    fetch job failed or never ran: the job's log is ``logs/data/<dataset>.log`` beside it)."""
    absent = [Path(m) for m in cell.get("data_manifests") or () if not Path(m).is_file()]
    if not absent:
        return None
    logs = ", ".join(str(m.parent.parent / "logs" / "data" / (m.name.split(".manifest")[0] + ".log"))
                     for m in absent)
    names = ", ".join(m.name.split(".manifest")[0] for m in absent)
    return f"data unavailable: {names} not fetched (see {logs})"


def resolve_cells(runs: pd.DataFrame, expected: list[dict[str, Any]] | None,
                  reference: Reference, cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every cell the report knows of, with its state and the reason when it has no value.

    The cells are the union of the expected spec, the runs found and the paper's known cells.
    ``state`` is one of ``ok``, ``diverged``, ``failed``, ``invalid`` (only runs whose
    metrics.json breaks the schema or conflicts with another folder), ``missing`` (expected,
    nothing on disk; ``reason`` says why when the spec gives one), ``not_in_preset``.
    ``reason`` is the text shown in place of a value. Other columns come from
    :func:`aggregate_cells`.
    """
    if cells is None:
        cells = aggregate_cells(runs)
    index: dict[tuple, dict[str, Any]] = {}
    exp_by_key: dict[tuple, dict[str, Any]] = {}
    for cell in expected or []:
        key = (cell["dataset"], str(cell["setting"]), cell["algorithm"], cell["variant"])
        exp_by_key[key] = cell
        index.setdefault(key, {})
    for rec in records(cells):
        index.setdefault((rec["dataset"], rec["setting"], rec["algorithm"], rec["variant"]), {}).update(rec)
    names = (list(runs["dataset"]) if "dataset" in runs else []) + [c["dataset"] for c in expected or []]
    run_datasets = {reference.canonical(d): d for d in sorted(set(names))}
    for entry in reference.paper:
        dataset = run_datasets.get(reference.canonical(entry["dataset"]), entry["dataset"])
        index.setdefault((dataset, str(entry["setting"]), entry["algorithm"], entry["variant"]), {})

    rows = []
    for key in sorted(index, key=lambda k: (k[0], setting_sort_key(k[1]), reference.algorithm_rank(k[2]),
                                            VARIANT_ORDER.index(k[3]) if k[3] in VARIANT_ORDER else 9)):
        rec = dict(index[key])
        rec.update(zip(["dataset", "setting", "algorithm", "variant"], key))
        exp = exp_by_key.get(key)
        group = runs[(runs["dataset"] == key[0]) & (runs["setting"] == key[1]) &
                     (runs["algorithm"] == key[2]) & (runs["variant"] == key[3])] if not runs.empty else runs
        rec["expected_seeds"] = tuple(exp.get("seeds") or ()) if exp else ()
        rec["family"] = (exp or {}).get("family") or reference.family_of(key[0])
        n_ok = int(rec.get("n") or 0)
        if n_ok > 0:
            state, reason = "ok", None
        elif len(group) and (group["status"] == "diverged").any():
            state, reason = "diverged", _diverged_text(rec.get("diverged_at") or [])
        elif len(group) and (group["status"] == "invalid").all():
            state = "invalid"
            reason = f"skipped: invalid metrics.json in {group.iloc[0]['path']} (see Run checks)"
        elif len(group):
            failed = group[group["status"] == "failed"].iloc[0]
            state = "failed"
            if failed.get("log"):
                reason = f"failed: see {failed['log']}"
            else:
                reason = f"failed: {failed.get('message') or 'no metrics.json'} in {failed['path']}"
        elif exp is not None:
            state, reason = "missing", exp.get("reason") or _data_unavailable(exp) or "not run"
        elif expected is None:
            state, reason = "missing", "not run"
        else:
            state, reason = "not_in_preset", NOT_IN_PRESET
        rec.update(state=state, reason=reason)
        rows.append(rec)
    return pd.DataFrame(rows)


def _ours_text(rec: dict[str, Any], decimals: int) -> str:
    if rec["state"] != "ok":
        return rec["reason"]
    n = int(rec["n"])
    expected = len(rec.get("expected_seeds") or ())
    count = f"n={n} of {expected}" if expected and expected != n else f"n={n}"
    if rec.get("ci_kind") == CI_TASKS:
        count += ", task CI"
    text = f"{format_ci(rec['mean'], rec['ci95'], decimals)} ({count})"
    median = rec.get("median_task")
    if median is not None and math.isfinite(median):  # R^2 cells: the pQSAR summary per assay
        text += (f"; median {_fmt(median, ci_decimals(rec['ci95'], decimals))}; R² > 0.3: {rec['tasks_above']:g} of "
                 f"{rec['tasks']:g} tasks")
    if rec.get("n_diverged"):
        text += f"; also {_diverged_text(rec['diverged_at'])}"
    if rec.get("reduced"):
        text += f" {DAGGER}"
    if isinstance(rec.get("pooled"), str):
        text += f" {POOLED}"
    return text


def in_ci(value: float, mean: float, half: float) -> bool | None:
    """Whether ``value`` lies in ``[mean - half, mean + half]``; None when the CI is unknown.

    >>> in_ci(0.593, 0.6, 0.25), in_ci(0.2, 0.6, 0.25)
    (True, False)
    """
    if half is None or mean is None or not (math.isfinite(mean) and math.isfinite(half)):
        return None
    return abs(value - mean) <= half


def _paper_text(rec: dict[str, Any], entry: dict[str, Any] | None, decimals: int) -> str:
    if entry is None:
        return "n/a"
    value = _fmt(float(entry["value"]), decimals)
    if rec["state"] != "ok":
        return value
    if rec.get("reduced"):
        return f"{value} (not judged {DAGGER})"
    inside = in_ci(float(entry["value"]), rec["mean"], rec["ci95"])
    if inside is None:
        return value
    return f"{value} ({'in' if inside else 'outside'} our CI)"


def _diff_text(diff: dict[str, Any] | None, decimals: int) -> str:
    if diff is None:
        return "n/a"
    if diff.get("note") and not math.isfinite(diff.get("diff", math.nan)):
        return f"n/a ({diff['note']})"
    if diff.get("pairing") is None:
        text = f"{_fmt(diff['diff'], decimals, sign=True)} ({diff.get('note')})"
    else:
        where = f"{int(diff['n'])} tasks, 1 seed" if diff["pairing"] == PAIR_TASKS else f"n={int(diff['n'])}"
        text = f"{format_ci(diff['diff'], diff['ci95'], decimals, sign=True)} ({format_p(diff['p'])}, {where})"
    if diff.get("reduced"):
        text += f" {DAGGER}"
    if isinstance(diff.get("pooled"), str):
        text += f" {POOLED}"
    return text


def _metric_caption(metric: str | None, higher_is_better: bool | None) -> str:
    names = {"mse": "MSE", "accuracy": "accuracy (%)", "r2": "R²"}
    name = names.get(metric, metric or "metric")
    if higher_is_better is None:
        higher_is_better = metric != "mse"
    return f"{name}, {'higher' if higher_is_better else 'lower'} is better"


def _trained_on(runs: pd.DataFrame, dataset: str, reference: Reference) -> str | None:
    """The dataset a section's runs were meta-trained on when it is not the one they are tested
    on (the cross-domain cells: ``provenance.json`` ``data.train``); before any run, the reference
    file's ``families.trained_on`` entry (trlearner/report/reference.yaml). None for
    within-domain cells.

    >>> ref = Reference(families={"trained_on": {"cub": "miniimagenet"}})
    >>> _trained_on(pd.DataFrame(), "cub", ref), _trained_on(pd.DataFrame(), "omniglot", ref)
    ('miniimagenet', None)
    """
    names = set()
    if len(runs) and "provenance" in runs and "dataset" in runs:
        for prov in runs.loc[runs["dataset"] == dataset, "provenance"]:
            train = ((prov.get("data") or {}).get("train") or {}) if isinstance(prov, dict) else {}
            if train.get("dataset"):
                names.add(train["dataset"])
    if not names:
        default = (reference.families.get("trained_on") or {}).get(dataset)
        names = {default} if default else set()
    names.discard(dataset)
    return ", ".join(sorted(names)) or None


def build_tables(runs: pd.DataFrame, expected: list[dict[str, Any]] | None,
                 reference: Reference, analyses: dict[str, pd.DataFrame] | None = None,
                 resolved: pd.DataFrame | None = None,
                 diffs: pd.DataFrame | None = None) -> list[FamilyTable]:
    """The tables of every family that has a cell (expected, run or known from the paper).

    Returns :class:`FamilyTable` objects in the configured family order; ``analyses`` (name ->
    DataFrame, e.g. read from CSVs) become an extra ``analyses`` family shown as given.
    """
    if resolved is None:
        resolved = resolve_cells(runs, expected, reference)
    if diffs is None:
        diffs = paired_differences(runs)
    diff_by_key = {(d["dataset"], d["setting"], d["algorithm"]): d for d in records(diffs)}
    # Which family's table shows each (dataset, setting, algorithm): a grid square of another
    # family's table points there instead of repeating (or half-repeating) its numbers.
    shown_in = {(r["dataset"], r["setting"], r["algorithm"]): r["family"] for r in records(resolved)}
    order = reference.family_order()
    families = sorted(set(resolved["family"]) if len(resolved) else set(),
                      key=lambda f: (order.index(f) if f in order else len(order), f))
    tables = []
    for family in families:
        fam = resolved[resolved["family"] == family]
        table = FamilyTable(family, reference.family_title(family), footnotes=list(FOOTNOTES))
        for dataset in sorted(set(fam["dataset"])):
            ds = fam[fam["dataset"] == dataset]
            settings = sorted(set(ds["setting"]), key=setting_sort_key)
            algorithms = sorted(set(ds["algorithm"]), key=reference.algorithm_rank)
            metric = next((m for m in ds["metric"] if isinstance(m, str)), None) if "metric" in ds else None
            hib = next((h for h in ds["higher_is_better"] if isinstance(h, bool)), None) \
                if "higher_is_better" in ds else None
            if metric is None:  # nothing ran: the paper's metric, else the family's usual one
                entry = next((e for e in reference.paper + reference.context
                              if reference.canonical(e["dataset"]) == reference.canonical(dataset)), None)
                metric = entry["metric"] if entry else (reference.families.get("metrics") or {}).get(family)
            decimals = reference.decimals(metric)
            by_key = {(r["setting"], r["algorithm"], r["variant"]): r for r in records(ds)}
            row_labels, data = [], []
            for algorithm in algorithms:
                for variant in VARIANT_ORDER:
                    label = reference.algorithm_label(algorithm) + (" + TRLearner" if variant == "trlearner" else "")
                    row = []
                    for setting in settings:
                        elsewhere = shown_in.get((dataset, setting, algorithm), family)
                        if elsewhere != family and (setting, algorithm, variant) not in by_key:
                            row += [f"in the {elsewhere} table", "", ""]
                            continue
                        rec = by_key.get((setting, algorithm, variant)) or {
                            "state": "not_in_preset" if expected is not None else "missing",
                            "reason": NOT_IN_PRESET if expected is not None else "not run"}
                        entry = reference.paper_value(dataset, setting, algorithm, variant)
                        diff = diff_by_key.get((dataset, setting, algorithm)) if variant == "trlearner" else None
                        row += [_ours_text(rec, decimals), _paper_text(rec, entry, decimals),
                                _diff_text(diff, decimals) if variant == "trlearner" else ""]
                    row_labels.append(label)
                    data.append(row)
            columns = pd.MultiIndex.from_tuples([(s, c) for s in settings for c in SUBCOLUMNS],
                                                names=["setting", ""])
            frame = pd.DataFrame(data, index=pd.Index(row_labels, name="method"), columns=columns)
            trained = _trained_on(runs, dataset, reference)
            name = (f"{dataset} (meta-trained on {trained}'s training classes, tested on {dataset}'s test classes)"
                    if trained else dataset)
            table.sections.append(Section(f"{name}: {_metric_caption(metric, hib)}", frame))
        context = _context_frame(reference, family)
        if context is not None:
            table.sections.append(Section("Context: as published by the baseline's authors "
                                          "(their own protocol; not compared)", context))
        tables.append(table)
    if analyses:
        table = FamilyTable("analyses", "Analyses", footnotes=[])
        for name in sorted(analyses):
            table.sections.append(Section(name, analyses[name]))
        tables.append(table)
    return tables


def _context_frame(reference: Reference, family: str) -> pd.DataFrame | None:
    entries = [e for e in reference.context if reference.family_of(e["dataset"]) == family]
    if not entries:
        return None
    columns = sorted({(e["dataset"], str(e["setting"])) for e in entries},
                     key=lambda k: (k[0], setting_sort_key(k[1])))
    algorithms = sorted({e["algorithm"] for e in entries}, key=reference.algorithm_rank)
    data, labels = [], []
    for algorithm in algorithms:
        row, sources = [], []
        for dataset, setting in columns:
            e = reference.context_value(dataset, setting, algorithm)
            if e is None:
                row.append("n/a")
                continue
            d = reference.decimals(e["metric"])
            digits = max(d, len(str(e["value"]).split(".")[1]) if "." in str(e["value"]) else 0)
            text = f"{float(e['value']):.{digits}f}"
            if e.get("ci95") is not None:
                text += f" ± {float(e['ci95']):.{digits}f}"
            row.append(text)
            if e["source"] not in sources:
                sources.append(e["source"])
        labels.append(reference.algorithm_label(algorithm))
        data.append(row + ["; ".join(sources)])
    cols = pd.MultiIndex.from_tuples([(d, s) for d, s in columns] + [("source", "")],
                                     names=["dataset", "setting"])
    return pd.DataFrame(data, index=pd.Index(labels, name="method"), columns=cols)


# ----------------------------------------------------------------------------- rendering


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    flat = frame.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" ".join(str(p) for p in col if str(p)) for col in flat.columns]
    if flat.index.name is not None or not isinstance(flat.index, pd.RangeIndex):
        flat = flat.reset_index()
    return flat


def to_markdown(frame: pd.DataFrame, raw: Iterable[str] = ()) -> str:
    """A table as a GitHub Markdown pipe table (``DataFrame.to_markdown``, no number parsing,
    so the strings are printed exactly as formatted). Every header and cell is escaped
    (:func:`trlearner.report.escape.markdown`: a ``|`` in a name adds no column).

    Arguments:
        frame: the table (a named or non-default index becomes the first column).
        raw: columns whose cells are Markdown already (escaped by their maker), left as they are.

    Example:
        >>> import pandas as pd
        >>> print(to_markdown(pd.DataFrame({"a": ["0.10", "x|y"]}, index=pd.Index(["x", "z"], name="m"))))
        | m   | a    |
        |:----|:-----|
        | x   | 0.10 |
        | z   | x\\|y |
    """
    flat = _flat(frame)
    keep = [c in raw for c in flat.columns]
    rows = [[v if k or not isinstance(v, str) else escape.markdown(v) for v, k in zip(row, keep)]
            for row in flat.itertuples(index=False)]
    columns = [c if k else escape.markdown(c) for c, k in zip(flat.columns, keep)]
    return pd.DataFrame(rows, columns=columns, dtype=object).to_markdown(index=False, tablefmt="pipe",
                                                                         disable_numparse=True)


_LATEX_SYMBOLS = {"±": r"$\pm$", "†": r"\textdagger{}", "Δ": r"$\Delta$", "−": "-",
                  "·": r"$\cdot$", "√": r"$\sqrt{}$", "σ": r"$\sigma$", "²": r"$^2$"}


def to_latex(frame: pd.DataFrame, caption: str | None = None) -> str:
    """A table as LaTeX via ``Styler.to_latex`` (booktabs rules, escaped text on one line each,
    :func:`trlearner.report.escape.latex` for the caption, multi-level headers). Needs
    ``\\usepackage{booktabs}``.

    >>> import pandas as pd
    >>> "\\\\toprule" in to_latex(pd.DataFrame({"a": ["1 ± 2"]}))
    True
    """
    styler = frame.style.format(escape.one_line, escape="latex") \
        .format_index(escape.one_line, escape="latex", axis=0) \
        .format_index(escape.one_line, escape="latex", axis=1)
    text = styler.to_latex(hrules=True, caption=caption and escape.latex(caption),
                           multicol_align="c", column_format="l" + "l" * frame.shape[1])
    for symbol, latex in _LATEX_SYMBOLS.items():
        text = text.replace(symbol, latex)
    return text


def to_html(frame: pd.DataFrame, caption: str | None = None, uid: str = "t") -> str:
    """A table as an HTML fragment via ``Styler.to_html`` (cells, headers and caption escaped;
    fixed ids so that the output is stable).

    >>> import pandas as pd
    >>> page = to_html(pd.DataFrame({"a": ["<b>"]}), caption="<i>")
    >>> "<table" in page, "<b>" in page, "<i>" in page
    (True, False, False)
    """
    styler = frame.style.format(escape="html").format_index(escape="html", axis=0) \
        .format_index(escape="html", axis=1).set_uuid(uid)
    if caption:
        styler = styler.set_caption(escape.html(caption))
    return styler.to_html(table_attributes='class="trl-table" border="1"')


def render_family(table: FamilyTable, fmt: str, footnotes: bool = True) -> str:
    """All sections of a family table in one format: ``"md"``, ``"tex"`` or ``"html"``
    (with the table's footnotes unless ``footnotes=False``).

    >>> t = FamilyTable("x", "X", [Section("c", pd.DataFrame({"a": ["1"]}))])
    >>> print(render_family(t, "md"))
    ### X
    <BLANKLINE>
    **c**
    <BLANKLINE>
    | a   |
    |:----|
    | 1   |
    <BLANKLINE>
    """
    parts = []
    for i, section in enumerate(table.sections):
        if fmt == "md":
            parts.append(f"**{escape.markdown(section.caption)}**\n\n{to_markdown(section.frame)}\n")
        elif fmt == "tex":
            parts.append(to_latex(section.frame, caption=section.caption))
        elif fmt == "html":
            uid = re.sub(r"[^A-Za-z0-9_]", "_", f"{table.family}_{i}")
            parts.append(to_html(section.frame, caption=section.caption, uid=uid))
        else:
            raise ValueError(f"unknown format {fmt!r}; allowed: md, tex, html")
    notes = table.footnotes if footnotes else []
    if fmt == "md":
        body = "\n".join(parts) + ("\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else "")
        return f"### {escape.markdown(table.title)}\n\n{body}"
    if fmt == "tex":
        comment = "\n".join(f"% {escape.one_line(n)}" for n in notes)
        return f"% {escape.one_line(table.title)}\n" + (comment + "\n" if notes else "") + "\n".join(parts)
    notes_html = "".join(f"<li>{escape.html(n)}</li>" for n in notes)
    return (f"<section><h3>{escape.html(table.title)}</h3>\n" + "\n".join(parts) +
            (f"<ul>{notes_html}</ul>" if notes else "") + "</section>\n")


def html_document(body: str, title: str) -> str:
    """Wrap HTML fragments into a standalone UTF-8 page.

    >>> html_document("<p>x</p>", "T").startswith("<!DOCTYPE html>")
    True
    """
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape.html(title)}</title>\n"
            "<style>table.trl-table{border-collapse:collapse;margin:1em 0}"
            "table.trl-table td,table.trl-table th{padding:2px 6px}</style>\n"
            f"</head>\n<body>\n{body}</body>\n</html>\n")

"""The report's view of the paper's analyses: per analysis its figure, one to three sentences
(the analysis' own verdict and what the numbers can show at this scale) and a small table
rounded to the precision each CI supports. The raw CSVs are linked, never inlined.

Each analysis folder (``trlearner analysis <name> --out <dir>/<name>``) holds ``<name>.png``,
``<name>.csv``, ``<name>.caption.md`` and ``summary.json`` (docs/ANALYSES.md).

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"variant": ["baseline", "trlearner"], "meta_layers": [1, 1],
    ...                    "mean": [1.7249997, 1.00500015], "ci95": [0.0396, 0.0491],
    ...                    "diff_vs_baseline": [float("nan"), -0.7199996], "diff_ci95": [float("nan"), 0.061]})
    >>> print(small_table(df).to_string(index=False))
      variant meta_layers          mean  Δ vs baseline
     baseline           1 1.725 ± 0.040            n/a
    trlearner           1 1.005 ± 0.049 -0.720 ± 0.061
    >>> effect_sentence(df)
    '1 of 1 TRLearner − baseline differences has a 95 % CI that excludes 0.'
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pandas as pd

from trlearner.run.learning import MSE_FRACTION

from . import escape
from .rounding import ci_decimals, format_ci

#: (value column, CI half-width column or (lo, hi) columns, shown name). First match wins per value.
VALUE_COLUMNS = [("mean", "ci95", "mean"), ("diff_vs_baseline", "diff_ci95", "Δ vs baseline"),
                 ("delta_mse", "delta_ci95", "Δ vs baseline"),
                 ("time_ratio", ("time_ratio_lo", "time_ratio_hi"), "time ratio"),
                 ("train_mse", ("train_lo", "train_hi"), "train MSE"),
                 ("val_mse", ("val_lo", "val_hi"), "validation MSE")]
#: Effect columns whose CI decides "shows an effect at this scale".
EFFECTS = [("diff_vs_baseline", "diff_ci95"), ("delta_mse", "delta_ci95")]
#: Columns that identify a row (everything else is a statistic).
KEY_COLUMNS = ("variant", "method", "family", "sweep", "meta_layers", "lam", "heads", "strength")
MAX_ROWS = 12

_PM = re.compile(r"([+\-−]?\d+(?:\.\d+)?) ± (\d+(?:\.\d+)?)")


def round_pm_text(text: str) -> str:
    """Re-round every ``a ± b`` in a sentence to the precision ``b`` supports; ``nan`` reads n/a.

    >>> round_pm_text("ΔMSE -0.2000 ± 0.1119 (paired; ρ=nan)")
    'ΔMSE -0.20 ± 0.11 (paired; ρ=n/a)'
    """
    def sub(m: re.Match) -> str:
        a, b = m.group(1).replace("−", "-"), float(m.group(2))
        d = ci_decimals(b, fallback=len(m.group(2).split(".")[1]) if "." in m.group(2) else 0)
        sign = a.startswith(("+", "-")) and a[0] == "+"
        return format_ci(float(a), b, d, sign=sign)

    return re.sub(r"\bnan\b", "n/a", _PM.sub(sub, text))


def _key_text(value) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:g}"
    return str(value)


def _half(row: pd.Series, ci) -> float | None:
    if isinstance(ci, tuple):
        lo, hi = (pd.to_numeric(row.get(c), errors="coerce") for c in ci)
        return None if pd.isna(lo) or pd.isna(hi) else (float(hi) - float(lo)) / 2
    h = pd.to_numeric(row.get(ci), errors="coerce")
    return None if pd.isna(h) else float(h)


def small_table(df: pd.DataFrame, max_rows: int = MAX_ROWS) -> pd.DataFrame:
    """The rows of an analysis CSV as strings: key columns, then each value with its CI rounded
    by :func:`trlearner.report.rounding.format_ci`; curves (an ``iteration`` column) keep the
    last iteration of each key; columns without any value are left out.

    Arguments:
        df: an analysis CSV.
        max_rows: keep at most this many rows.

    Returns:
        A DataFrame of strings (``n/a`` for a missing value).
    """
    keys = [c for c in KEY_COLUMNS if c in df.columns]
    if "iteration" in df.columns and len(df):
        df = df.sort_values("iteration").groupby(keys, sort=True, as_index=False).tail(1) if keys else df.tail(1)
        df = df.sort_values(keys) if keys else df
    out = pd.DataFrame({k: [_key_text(v) for v in df[k]] for k in keys})
    if "iteration" in df.columns:
        out["last iteration"] = [_key_text(v) for v in df["iteration"]]
    for value, ci, name in VALUE_COLUMNS:
        if value not in df.columns or name in out.columns:
            continue
        vals = pd.to_numeric(df[value], errors="coerce")
        if vals.isna().all():
            continue
        cells = []
        for (_, row), v in zip(df.iterrows(), vals):
            half = _half(row, ci)
            cells.append("n/a" if pd.isna(v) else format_ci(float(v), half if half else None, 3))
        out[name] = cells
    if "learned" in df.columns and _flags(df["learned"]).notna().any():
        out["learned"] = ["n/a" if f is None else "yes" if f else "no" for f in _flags(df["learned"])]
    return out.head(max_rows).reset_index(drop=True)


def _flags(col: pd.Series) -> pd.Series:
    """A CSV column of True/False/blank as True, False or None."""
    def flag(x):
        if isinstance(x, str):
            return {"true": True, "false": False}.get(x.strip().lower())
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else bool(x)
    return col.map(flag).astype(object)


def _row_label(row: pd.Series) -> str:
    """``baseline (meta_layers 2)``: the row's first key, then the others with their names."""
    keys = [c for c in KEY_COLUMNS if c in row.index and _key_text(row[c]) not in ("", "n/a", "nan")]
    if not keys:
        return "?"
    rest = ", ".join(f"{k} {_key_text(row[k])}" for k in keys[1:])
    return _key_text(row[keys[0]]) + (f" ({rest})" if rest else "")


def not_learned(df: pd.DataFrame) -> list[str]:
    """Labels of the rows (cells) whose ``learned`` column is False."""
    if "learned" not in df.columns:
        return []
    return [_row_label(row) for (_, row), f in zip(df.iterrows(), _flags(df["learned"])) if f is False]


def effect_sentence(df: pd.DataFrame) -> str | None:
    """What the TRLearner − baseline differences of a CSV can show: how many CIs exclude 0,
    or that none does ("shows nothing at this scale"). Cells that did not learn (column
    ``learned``: :mod:`trlearner.run.learning`) are named first, and differences with one of
    them (column ``pair_learned`` False) are not counted. None without such columns."""
    failed = not_learned(df)
    head = (f"At this scale {len(failed)} of {len(df)} cells did not learn (test MSE above {MSE_FRACTION * 100:g} % "
            f"of their own 0-step MSE: {'; '.join(failed)}), so a difference with one of them reflects failed "
            f"training, not the method") if failed else ""
    for value, ci in EFFECTS:
        if value in df.columns and ci in df.columns:
            v = pd.to_numeric(df[value], errors="coerce")
            h = pd.to_numeric(df[ci], errors="coerce")
            ok = v.notna() & h.notna() & (h > 0)
            for col in ("pair_learned", "learned"):  # leave out differences with a cell that did not learn
                if col in df.columns:
                    ok &= _flags(df[col]).map(lambda f: f is not False).astype(bool)
            n = int(ok.sum())
            if not n:
                return f"{head}; no difference between cells that learned is left." if head else None
            among = " between cells that learned" if head else ""
            k = int(((v[ok] - h[ok] > 0) | (v[ok] + h[ok] < 0)).sum())
            if k == 0:
                body = f"all {n} TRLearner − baseline differences{among} have a 95 % CI that contains 0"
                return f"{head}; {body}." if head else f"At this scale it shows nothing: {body}."
            body = (f"{k} of {n} TRLearner − baseline differences{among} "
                    f"{'has' if n == 1 else 'have'} a 95 % CI that excludes 0")
            return f"{head}; {body}." if head else f"{body}."
    return f"{head}." if head else None


def curves_sentence(df: pd.DataFrame) -> str | None:
    """For curves (motivation): whether baseline and TRLearner end within each other's CIs."""
    need = {"family", "variant", "iteration", "val_mse", "val_lo", "val_hi"}
    if not need <= set(df.columns) or not len(df):
        return None
    last = df.sort_values("iteration").groupby(["family", "variant"]).tail(1).set_index(["family", "variant"])
    families = sorted({f for f, v in last.index if (f, "baseline") in last.index and (f, "trlearner") in last.index})
    if not families:
        return None
    widths = (last["val_hi"] - last["val_lo"]).abs()
    if (widths == 0).all():
        return ("One seed per curve, so the curves have no CI; a difference between baseline and "
                "TRLearner cannot be told from seed noise at this scale.")
    overlap = sum(not (last.loc[(f, "baseline"), "val_lo"] > last.loc[(f, "trlearner"), "val_hi"] or
                       last.loc[(f, "trlearner"), "val_lo"] > last.loc[(f, "baseline"), "val_hi"])
                  for f in families)
    if overlap == len(families):
        return (f"At this scale it shows nothing: on all {len(families)} families the final baseline and "
                f"TRLearner validation MSEs lie within each other's CIs.")
    return (f"On {len(families) - overlap} of {len(families)} families the final baseline and TRLearner "
            f"validation CIs do not overlap.")


#: The heading status of an analysis whose cells did not all learn (never "does not reproduce").
UNTESTED = "could not be tested at this budget"
#: Openings of an analysis' own verdict (``summary.json``), replaced by :data:`UNTESTED` when a
#: cell did not learn (a summary written before the analyses said so themselves).
_VERDICT_HEADS = re.compile(r"^(agrees with the paper|does not reproduce the paper's claim(?: in full)?|"
                            r"no paper claim to compare|could not be tested at this budget[^;]*)[:;] *")


def failed_cells(df: pd.DataFrame, summary: dict) -> tuple[list[str], int]:
    """(labels of the cells that did not learn, number of cells) of an analysis: from its
    ``summary.json`` (``not_learned``, ``n_cells``), else from its CSV's ``learned`` column.

    >>> failed_cells(pd.DataFrame({"variant": ["a", "b"], "learned": [True, False]}), {})
    (['b'], 2)
    >>> failed_cells(pd.DataFrame(), {"not_learned": ["d1/baseline"], "n_cells": 8})
    (['d1/baseline'], 8)
    """
    if isinstance(summary.get("not_learned"), list):
        return [str(x) for x in summary["not_learned"]], int(summary.get("n_cells") or len(df))
    failed = not_learned(df)
    flags = _flags(df["learned"]) if "learned" in df.columns else pd.Series(dtype=object)
    return failed, int(flags.notna().sum()) if failed else len(df)


def status(summary: dict, failed: list[str]) -> str | None:
    """The few words after an analysis' heading: :data:`UNTESTED` when a cell did not learn,
    else whether it agrees with the paper's claim (None: no claim, or not enough runs)."""
    if failed:
        return UNTESTED
    agrees = summary.get("agrees")
    return None if agrees is None else "agrees with the paper" if agrees else "does not reproduce the paper's claim"


def _title(folder: Path, name: str) -> str:
    cap = folder / f"{name}.caption.md"
    if cap.is_file():
        first = cap.read_text().strip().splitlines()[0].strip() if cap.read_text().strip() else ""
        first = first.strip("*").strip()
        if first:
            return first
    return name


def analysis_markdown(analyses_dir: str | os.PathLike | None, out_dir: str | os.PathLike,
                      to_markdown) -> tuple[str, set[Path]]:
    """The ``## Analyses`` section and the PNGs it shows.

    Arguments:
        analyses_dir: folder of analysis folders (``<name>/<name>.png``, ``.csv``, ``summary.json``).
        out_dir: the folder REPORT.md is written to (links are relative to it).
        to_markdown: DataFrame -> Markdown table (``trlearner.report.tables.to_markdown``).

    Returns:
        (Markdown text, set of the PNG paths shown).
    """
    lines, shown = ["## Analyses", ""], set()
    root = Path(analyses_dir) if analyses_dir is not None else None
    folders = sorted(p.parent for p in root.glob("*/summary.json")) if root and root.is_dir() else []
    if not folders:
        return "\n".join(lines + ["No analysis was run in this preset.", ""]), shown
    rel = lambda p: Path(os.path.relpath(p, out_dir)).as_posix()  # noqa: E731
    for folder in folders:
        name = folder.name
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):
            summary = {}
        csvs = sorted(folder.glob("*.csv"))
        main_csv = folder / f"{name}.csv"
        df = pd.read_csv(main_csv) if main_csv.is_file() else pd.DataFrame()
        failed, n_cells = failed_cells(df, summary)
        state = status(summary, failed)
        lines += [f"### {escape.markdown(_title(folder, name))}" + (f": {state}" if state else ""), ""]
        png = folder / f"{name}.png"
        if png.is_file():
            lines += [f"![{name}]({rel(png)})", ""]
            shown.add(png.resolve())
        sentences = []  # one per line: one paragraph in Markdown, short lines in the file
        if failed:
            sentences.append(f"**Could not be tested at this budget**: {len(failed)} of {n_cells} cells did not "
                             "learn, so what they show reflects failed training, not the method.")
        if summary.get("claim"):
            sentences.append(f"Claim: {escape.markdown(summary['claim'])}")
        if summary.get("verdict"):
            verdict = str(summary["verdict"])
            if failed:  # the measurements only, without a verdict the failed cells cannot carry
                verdict = re.sub(r"^measured: *", "", _VERDICT_HEADS.sub("", verdict))
            sentences.append(f"Measured: {escape.markdown(round_pm_text(verdict))}.")
        scale = effect_sentence(df) or curves_sentence(df)
        if scale:
            sentences.append(scale)
        lines += ["\n".join(sentences) or "No summary was written.", ""]
        if len(df):
            table = small_table(df)
            lines += [to_markdown(table), ""]
            if len(df) > len(table) and "iteration" not in df.columns:
                lines += [f"(first {len(table)} of {len(df)} rows)", ""]
        links = [f"[{escape.markdown(p.name)}]({rel(p)})" for p in csvs]
        cap = folder / f"{name}.caption.md"
        if cap.is_file():
            links.append(f"[what was run]({rel(cap)})")
        if links:
            lines += ["Data: " + ", ".join(links) + ".", ""]
    return "\n".join(lines), shown

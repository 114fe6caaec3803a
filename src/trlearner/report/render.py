"""Write ``REPORT.md`` (summary, claims, tables, figures, provenance) and the table files.

Everything is derived from the run records; the output has no timestamps and is sorted, so
the same results give byte-identical files.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> path = write_report(out / "no-results", out / "reports")
    >>> path.name, (out / "reports" / "tables" / "regression.md").exists()
    ('REPORT.md', True)
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from .reference import Reference
from .runs import load_runs
from .stats import PAIR_TASKS, aggregate_cells, paired_differences, records
from .tables import (DAGGER, FOOTNOTES, FamilyTable, build_tables, format_p, html_document, in_ci,
                     load_expected,
                     render_family, resolve_cells, setting_sort_key, to_markdown)

VERDICTS = ("reproduced", "partially reproduced", "not reproduced", "could not be tested")


def _fmt(x: float, d: int, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.{d}f}" if sign else f"{x:.{d}f}"


def _value_clause(rec: dict[str, Any], entry: dict[str, Any] | None, d: int, label: str) -> str:
    n = int(rec.get("n") or 0)
    ci = "CI over test tasks, 1 seed" if n == 1 else f"n={n} seeds"
    text = f"{label} {_fmt(rec['mean'], d)} ± {_fmt(rec['ci95'], d)} ({ci}"
    if entry is not None:
        inside = in_ci(float(entry["value"]), rec["mean"], rec["ci95"])
        where = "inside" if inside else "outside"
        text += f"; the paper's {_fmt(float(entry['value']), d)} lies {where} our CI"
    return text + ")"


def summarize_claims(resolved: pd.DataFrame, diffs: pd.DataFrame, reference: Reference) -> list[dict[str, Any]]:
    """One verdict per known paper cell (dataset, setting, algorithm) and one for the paper's
    general claim that TRLearner improves its baselines.

    Each item: ``claim``, ``verdict`` (one of :data:`VERDICTS`) and ``sentence``. A known cell
    is *reproduced* when our paired effect has the paper's sign, is significant (p < alpha)
    and the paper's effect lies inside our effect's 95 % CI; *partially reproduced* when the
    sign and significance hold but the paper's effect lies outside that CI (the direction
    holds, the size does not); *not reproduced* otherwise; and *could not be tested* when a
    variant did not produce a number (not run, failed, diverged) or ran under a reduced
    protocol.
    """
    by_key = {(r["dataset"], r["setting"], r["algorithm"], r["variant"]): r for r in records(resolved)}
    diff_by = {(r["dataset"], r["setting"], r["algorithm"]): r for r in records(diffs)}
    canon_to_name = {reference.canonical(k[0]): k[0] for k in by_key}
    groups: dict[tuple, dict[str, Any]] = defaultdict(dict)
    for entry in reference.paper:
        dataset = canon_to_name.get(reference.canonical(entry["dataset"]), entry["dataset"])
        groups[(dataset, str(entry["setting"]), entry["algorithm"])][entry["variant"]] = entry
    claims = []
    for (dataset, setting, algorithm) in sorted(groups, key=lambda k: (k[0], setting_sort_key(k[1]), k[2])):
        entries = groups[(dataset, setting, algorithm)]
        metric = next(iter(entries.values()))["metric"]
        d = reference.decimals(metric)
        hib = metric != "mse"
        name = f"{reference.algorithm_label(algorithm)} on {dataset} {setting} ({metric}, {'higher' if hib else 'lower'} is better)"
        recs = {v: by_key.get((dataset, setting, algorithm, v), {"state": "missing", "reason": "not run"})
                for v in ("baseline", "trlearner")}
        paper_txt = ", ".join(f"{'+ TRLearner' if v == 'trlearner' else 'baseline'} "
                              f"{_fmt(float(e['value']), d)}" for v, e in sorted(entries.items()))
        bad = {v: r for v, r in recs.items() if r["state"] != "ok"}
        if bad:
            why = "; ".join(f"{'+ TRLearner' if v == 'trlearner' else 'baseline'}: {r['reason']}"
                            for v, r in sorted(bad.items()))
            claims.append(dict(claim=name, verdict="could not be tested",
                               sentence=f"{name}: could not be tested ({why}). Paper: {paper_txt}."))
            continue
        clauses = [_value_clause(recs["baseline"], entries.get("baseline"), d, "baseline"),
                   _value_clause(recs["trlearner"], entries.get("trlearner"), d, "+ TRLearner")]
        diff = diff_by.get((dataset, setting, algorithm))
        if any(r.get("reduced") for r in recs.values()):
            values = ", ".join(f"{lbl} {_fmt(recs[v]['mean'], d)} ± {_fmt(recs[v]['ci95'], d)}"
                               for v, lbl in (("baseline", "baseline"), ("trlearner", "+ TRLearner")))
            claims.append(dict(claim=name, verdict="could not be tested", sentence=(
                f"{name}: could not be tested against the paper: run under a reduced protocol "
                f"{DAGGER} (ours, not judged: {values}; paper: {paper_txt}).")))
            continue
        text = f"{name}: " + "; ".join(clauses) + "."
        if "baseline" in entries and "trlearner" in entries and diff is not None and math.isfinite(diff["diff"]):
            paper_eff = float(entries["trlearner"]["value"]) - float(entries["baseline"]["value"])
            same_sign = (diff["diff"] > 0) == (paper_eff > 0) and diff["diff"] != 0
            p = diff["p"]
            significant = p is not None and math.isfinite(p) and p < reference.alpha
            how = "paired over the test tasks of 1 seed" if diff["pairing"] == PAIR_TASKS \
                else f"paired over {int(diff['n'])} seeds" if diff["pairing"] else "unpaired, no test"
            size_holds = in_ci(paper_eff, diff["diff"], diff["ci95"])
            text += (f" Effect TRLearner − baseline: ours {_fmt(diff['diff'], d, True)} ± "
                     f"{_fmt(diff['ci95'], d)} ({how}, {format_p(p)}), paper {_fmt(paper_eff, d, True)}: "
                     f"{'same' if same_sign else 'opposite'} sign, "
                     f"{'significant' if significant else 'not significant'} at α={reference.alpha:g}; "
                     f"the paper's effect lies "
                     f"{'inside' if size_holds else 'outside' if size_holds is False else 'unknown relative to'} "
                     f"our effect's CI.")
            if same_sign and significant:
                verdict = "reproduced" if size_holds is True else "partially reproduced"
                if not size_holds:
                    text += " The direction holds; the size of the paper's effect does not."
            else:
                verdict = "not reproduced"
        else:
            text += " No paired effect could be computed."
            verdict = "could not be tested"
        claims.append(dict(claim=name, verdict=verdict, sentence=f"{text} Verdict: {verdict}."))

    paired = diffs[diffs["pairing"].notna()] if len(diffs) else diffs
    if len(paired):
        valid = paired[~paired["reduced"].astype(bool)]
        n_reduced = len(paired) - len(valid)
        better = worse = sig_better = sig_worse = 0
        for r in records(valid):
            hib = r["higher_is_better"] if r["higher_is_better"] is not None else r["metric"] != "mse"
            improved = r["diff"] > 0 if hib else r["diff"] < 0
            sig = math.isfinite(r["p"]) and r["p"] < reference.alpha
            better += improved
            worse += not improved
            sig_better += improved and sig
            sig_worse += (not improved) and sig
        sentence = (f"General claim (TRLearner improves the baselines it is plugged into; the paper's "
                    f"numbers for these cells are unknown): over {len(valid)} (dataset, setting, algorithm) "
                    f"cells with a paired effect under the full protocol, TRLearner was better in {better} "
                    f"(significantly in {sig_better}) and not better in {worse} (significantly worse in "
                    f"{sig_worse}) at α={reference.alpha:g}")
        if n_reduced:
            sentence += f"; {n_reduced} cell(s) under a reduced protocol {DAGGER} left out"
        if len(valid) == 0:
            verdict = "could not be tested"
            sentence += ". Not judged: no cell ran under the full protocol."
        else:
            verdict = "reproduced" if worse == 0 and sig_better > 0 else "not reproduced"
            sentence += (". Rule: reproduced when TRLearner is better in every cell and significantly "
                         f"better in at least one. Verdict: {verdict}.")
        claims.append(dict(claim="general", verdict=verdict, sentence=sentence))
    return claims


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m {seconds % 60:02d}s"


def _get(prov: dict[str, Any], *names: str) -> Any:
    for name in names:
        cur: Any = prov
        for part in name.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is not None:
            return cur
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def provenance_summary(runs: pd.DataFrame) -> dict[str, Any]:
    """Distinct provenance values over all runs, each with how many runs recorded it.

    Keys: ``commits`` {(commit, dirty): count}, ``config_hashes``, ``dataset_hashes``
    {dataset: {hash: count}}, ``packages`` {package: {version: count}}, ``devices``, ``missing``
    (runs without provenance.json).
    """
    out: dict[str, Any] = dict(commits=Counter(), config_hashes=Counter(), dataset_hashes=defaultdict(Counter),
                               packages=defaultdict(Counter), devices=Counter(), missing=0)
    for rec in records(runs) if len(runs) else []:
        prov = rec.get("provenance") or {}
        if not prov:
            out["missing"] += 1
            continue
        commit = _get(prov, "git_commit", "commit", "git.commit")
        dirty = _get(prov, "git_dirty", "dirty", "git.dirty")
        out["commits"][(str(commit), "dirty" if dirty else "clean" if dirty is not None else "unknown")] += 1
        out["config_hashes"][str(_get(prov, "config_hash", "config.hash"))] += 1
        hashes = _get(prov, "dataset_hashes", "dataset_hash", "data_hash")
        if isinstance(hashes, dict):
            for ds, h in hashes.items():
                out["dataset_hashes"][str(ds)][_as_text(h)] += 1
        else:
            out["dataset_hashes"][str(rec["dataset"])][str(hashes)] += 1
        packages = _get(prov, "package_versions", "packages", "versions") or {}
        if isinstance(packages, dict):
            for pkg, ver in packages.items():
                out["packages"][str(pkg)][_as_text(ver)] += 1
        out["devices"][_as_text(_get(prov, "device", "hardware.device"))] += 1
    return out


def _counted(counter: Counter) -> str:
    return ", ".join(f"{k} ({n} runs)" for k, n in sorted(counter.items()))


def provenance_markdown(runs: pd.DataFrame) -> str:
    """The provenance block of the report (Markdown)."""
    p = provenance_summary(runs)
    lines = ["## Provenance", ""]
    if len(runs) == 0:
        return "\n".join(lines + ["No runs found.", ""])
    commits = ", ".join(f"`{c}` ({d}, {n} runs)" for (c, d), n in sorted(p["commits"].items()))
    lines += [f"- Git commit: {commits or 'not recorded'}",
              f"- Config hash: {_counted(p['config_hashes']) or 'not recorded'}",
              f"- Device: {_counted(p['devices']) or 'not recorded'}"]
    if p["missing"]:
        lines.append(f"- Runs without provenance.json: {p['missing']}")
    lines.append("")
    if p["dataset_hashes"]:
        frame = pd.DataFrame([(ds, h, n) for ds, hs in sorted(p["dataset_hashes"].items())
                              for h, n in sorted(hs.items())], columns=["dataset", "hash", "runs"])
        frame["runs"] = frame["runs"].astype(str)
        lines += ["Dataset hashes:", "", to_markdown(frame.set_index("dataset")), ""]
    if p["packages"]:
        frame = pd.DataFrame([(pkg, v, n) for pkg, vs in sorted(p["packages"].items())
                              for v, n in sorted(vs.items())], columns=["package", "version", "runs"])
        frame["runs"] = frame["runs"].astype(str)
        lines += ["Package versions:", "", to_markdown(frame.set_index("package")), ""]
    return "\n".join(lines)


def find_figures(figures_dir: str | os.PathLike | None, out_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """PNG figures under ``figures_dir`` as (path relative to ``out_dir``, caption), sorted.

    The caption comes from a sidecar ``<name>.caption.md``, ``<name>.caption.json`` or
    ``<name>.json`` (key ``caption``) next to ``<name>.png``, else the file name.
    """
    if figures_dir is None or not Path(figures_dir).is_dir():
        return []
    found = []
    for png in sorted(Path(figures_dir).rglob("*.png")):
        caption = png.stem
        md = png.with_name(png.stem + ".caption.md")
        if md.is_file():
            caption = md.read_text().strip()
        else:
            for js in (png.with_name(png.stem + ".caption.json"), png.with_suffix(".json")):
                if js.is_file():
                    try:
                        caption = str(json.loads(js.read_text()).get("caption", caption))
                    except (ValueError, AttributeError):
                        pass
                    break
        found.append((Path(os.path.relpath(png, out_dir)).as_posix(), caption))
    return found


def read_analyses(analyses_dir: str | os.PathLike | None) -> dict[str, pd.DataFrame]:
    """Every ``*.csv`` under ``analyses_dir`` as a DataFrame, keyed by its relative path."""
    if analyses_dir is None or not Path(analyses_dir).is_dir():
        return {}
    return {Path(os.path.relpath(p, analyses_dir)).as_posix(): pd.read_csv(p)
            for p in sorted(Path(analyses_dir).rglob("*.csv"))}


def summary_markdown(runs: pd.DataFrame, resolved: pd.DataFrame, claims: list[dict[str, Any]],
                     expected: list[dict[str, Any]] | None) -> str:
    """The one-page summary: what ran, hardware, wall time, claims by verdict."""
    status = Counter(runs["status"]) if len(runs) else Counter()
    lines = ["## Summary", ""]
    what = (f"{len(runs)} runs found: {status.get('ok', 0)} completed, {status.get('diverged', 0)} "
            f"diverged, {status.get('failed', 0)} failed (no usable metrics.json).")
    if len(runs):
        datasets = ", ".join(sorted(set(runs["dataset"])))
        presets = ", ".join(sorted({str(p) for p in runs["preset"] if isinstance(p, str)})) or "not recorded"
        reduced = int(runs["reduced"].fillna(False).astype(bool).sum())
        what += f" Datasets: {datasets}. Presets: {presets}. Runs under a reduced protocol {DAGGER}: {reduced}."
    lines.append(f"- What ran: {what}")
    if expected is not None:
        exp_keys = {(c["dataset"], c["setting"], c["algorithm"], c["variant"]) for c in expected}
        exp_cells = resolved[[k in exp_keys for k in zip(resolved["dataset"], resolved["setting"],
                                                         resolved["algorithm"], resolved["variant"])]] \
            if len(resolved) else resolved
        states = Counter(exp_cells["state"]) if len(exp_cells) else Counter()
        lines.append(f"- Expected cells: {len(exp_keys)}; with a value: {states.get('ok', 0)}; "
                     f"diverged: {states.get('diverged', 0)}; failed: {states.get('failed', 0)}; "
                     f"not run: {states.get('missing', 0)} (listed under Missing cells).")
    devices = provenance_summary(runs)["devices"]
    lines.append(f"- Hardware: {_counted(devices) or 'not recorded'}.")
    wall = pd.to_numeric(runs["wall_time_s"], errors="coerce").dropna() if len(runs) else pd.Series(dtype=float)
    lines.append(f"- Total wall time: {_hms(float(wall.sum())) if len(wall) else 'n/a'} "
                 f"({float(wall.sum()):.1f} s summed over {len(wall)} runs' metrics.json wall_time_s).")
    lines += ["", "### Claims of the paper", ""]
    for verdict in VERDICTS:
        items = [c for c in claims if c["verdict"] == verdict]
        lines.append(f"**{verdict.capitalize()}** ({len(items)})")
        lines.append("")
        lines += [f"- {c['sentence']}" for c in items] or ["- none"]
        lines.append("")
    return "\n".join(lines)


def missing_markdown(resolved: pd.DataFrame) -> str:
    """A table of every cell without a value and why."""
    lines = ["## Missing cells", ""]
    if not len(resolved):
        return "\n".join(lines + ["None.", ""])
    miss = resolved[resolved["state"] != "ok"][["dataset", "setting", "algorithm", "variant", "reason"]]
    if not len(miss):
        return "\n".join(lines + ["None: every cell has a value.", ""])
    return "\n".join(lines + [to_markdown(miss.reset_index(drop=True)), ""])


def write_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 expected: str | os.PathLike | list | dict | None = None,
                 figures_dir: str | os.PathLike | None = None,
                 analyses_dir: str | os.PathLike | None = None,
                 reference: Reference | str | os.PathLike | None = None,
                 relative_to: str | os.PathLike | None = None) -> Path:
    """Write ``out_dir/REPORT.md``, ``out_dir/tables/<family>.{md,tex,html}`` and
    ``out_dir/cells.csv`` from the runs under ``results_dir``; return the REPORT.md path.

    ``expected``: the expected-cells spec (see :func:`trlearner.report.tables.load_expected`).
    ``relative_to``: base of the run/log paths printed in the report (default: current dir).
    """
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    ref = reference if isinstance(reference, Reference) else Reference.load(reference)
    exp = load_expected(expected)
    runs = load_runs(results_dir, relative_to=relative_to)
    cells = aggregate_cells(runs)
    diffs = paired_differences(runs)
    resolved = resolve_cells(runs, exp, ref, cells=cells)
    tables: list[FamilyTable] = build_tables(runs, exp, ref, analyses=read_analyses(analyses_dir),
                                             resolved=resolved, diffs=diffs)
    for table in tables:
        for fmt in ("md", "tex", "html"):
            text = render_family(table, fmt)
            if fmt == "html":
                text = html_document(text, table.title)
            (out / "tables" / f"{table.family}.{fmt}").write_text(text)
    claims = summarize_claims(resolved, diffs, ref)

    parts = ["# TRLearner reproduction report", "",
             "Reproduction of \"Rethinking Meta-Learning from a Learning Lens\" (Wang et al., "
             "arXiv 2409.08474). Every number below is read from a run's metrics.json; statistics "
             "are described in docs/REPORT_FORMAT.md.", "",
             summary_markdown(runs, resolved, claims, exp), "## Tables", ""]
    parts += [render_family(t, "md", footnotes=False) for t in tables]
    parts += ["Notes on the tables:", ""] + [f"- {n}" for n in FOOTNOTES] + [""]
    parts += [missing_markdown(resolved), "## Figures", ""]
    figures = find_figures(figures_dir, out)
    parts += [f"![{cap}]({path})\n\n*{cap}*\n" for path, cap in figures] or ["No figures found.", ""]
    parts.append(provenance_markdown(runs))
    report = out / "REPORT.md"
    report.write_text("\n".join(parts).rstrip() + "\n")

    csv = resolved.drop(columns=[c for c in ("diverged_at",) if c in resolved]).copy()
    csv["seeds"] = csv.get("seeds", pd.Series(dtype=object)).map(
        lambda s: " ".join(map(str, s)) if isinstance(s, tuple) else "")
    csv["expected_seeds"] = csv["expected_seeds"].map(lambda s: " ".join(map(str, s)) if s else "")
    csv.to_csv(out / "cells.csv", index=False, float_format="%.6g")
    return report

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
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import escape
from .admission import admit
from .analyses import analysis_markdown
from .calibration import calibration_markdown
from .claims import claims_markdown, interpretation_runs
from .sequential import sequential_markdown
from .figures import CAPTION as MAIN_CAPTION
from .figures import main_results_figure
from .files import write_text
from .html import markdown_page, verdicts_rst
from .reference import Reference
from .rounding import ci_decimals, format_ci
from trlearner.run.records.scan import scan_runs
from trlearner.run.records.stats import (PAIR_SEEDS, PAIR_TASKS, VERDICTS, aggregate_cells, effect_verdict, paired_differences,
                    records)
from .tables import (DAGGER, FOOTNOTES, NOT_IN_PRESET, POOLED, FamilyTable, Section, build_tables, format_p,
                     html_document, in_ci, load_expected, render_family, resolve_cells, setting_sort_key,
                     to_markdown)

VERDICT_TITLES = {"compatible": "Compatible with the paper",
                  "incompatible": "Incompatible with the paper",
                  "could not be tested": "Could not be tested"}
#: Verdicts on the general claim (TRLearner improves its baselines; no paper numbers).
GENERAL_VERDICTS = ("supported", "contradicted", "mixed", "not shown", "could not be tested")

VERDICT_RULE = (
    "Rule: a known cell is **compatible** with the paper when the paper's effect "
    "(TRLearner − baseline) lies inside the 95 % CI of our paired effect (boundaries included), "
    "and **incompatible** when it lies outside. A verdict needs both variants under the full "
    "protocol, paired over at least 2 seeds (a 1-seed CI over test tasks leaves out the "
    "seed-to-seed spread); otherwise the cell **could not be tested**. The sign and whether our "
    "CI excludes 0 (significance) are extra information, not the rule. Each claim also gives the "
    "smallest effect its n could detect: the |δ| that a two-sided paired t-test at α = 0.05 (the "
    "level of the 95 % CI) detects with 80 % power given the observed sd of the differences "
    "(noncentral t; about (t(0.975; n−1) + t(0.80; n−1))·sd/√n).")


#: No prose line of REPORT.md is longer than this (table rows aside); a longer one is wrapped
#: at :data:`WRAP_WIDTH`.
MAX_LINE = 200
WRAP_WIDTH = 100
#: A word that would open a Markdown block if it started a line (a list item, a heading, a
#: quote, a table row): the wrap never puts one first on a line.
_BLOCK_START = re.compile(r"^(?:[-+*]|\d+[.)]|#{1,6}|>|\||=+|-{2,})$")
_LIST_ITEM = re.compile(r"^(\s*)([-+*] |\d+[.)] )")


def wrap_markdown(text: str, limit: int = MAX_LINE, width: int = WRAP_WIDTH) -> str:
    """Wrap every prose line of ``text`` longer than ``limit`` at spaces to about ``width``
    characters; the rendered Markdown is the same (a paragraph's lines join with spaces; a list
    item's continue indented under it). Table rows, headings and fenced code stay as they are.

    >>> print(wrap_markdown("- " + "word " * 15, limit=40, width=30))
    - word word word word word
      word word word word word
      word word word word word
    >>> print(wrap_markdown("a " * 14 + "- b", limit=20, width=28))
    a a a a a a a a a a a a a a -
    b
    """
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if fenced or len(line) <= limit or line.lstrip().startswith(("|", "#", "<!--")):
            out.append(line)
            continue
        m = _LIST_ITEM.match(line)
        first = m.group(0) if m else re.match(r"^\s*", line).group(0)
        rest = " " * len(first)
        words = line[len(first):].split()
        cur, empty = first, True
        for word in words:
            if empty or len(cur) + 1 + len(word) <= width or _BLOCK_START.match(word):
                cur = cur + word if empty else f"{cur} {word}"  # a block-opening word stays on the line before
            else:
                out.append(cur)
                cur = rest + word
            empty = False
        out.append(cur)
    return "\n".join(out)


#: The report format's documentation (docs/REPORT_FORMAT.md of the repository, shipped in the
#: package as ``trlearner/report/REPORT_FORMAT.md``): written beside REPORT.md, which links to
#: it there, so the link works from a checkout and from an installed wheel alike.
FORMAT_DOC = "REPORT_FORMAT.md"
FORMAT_LINK = f"[{FORMAT_DOC}]({FORMAT_DOC})"


def format_doc() -> str:
    """The packaged REPORT_FORMAT.md as written beside a report: its links to the repository's
    other documents (which are not beside the report) become their text.

    >>> text = format_doc()
    >>> text.splitlines()[1], "](PAPER.md)" in text, "PAPER.md sections 5 and 6" in text
    ('# Report format', False, True)
    """
    from importlib.resources import files

    text = (files(__package__) / FORMAT_DOC).read_text(encoding="utf-8")
    text = re.sub(r"(?<!!)\[([^\]]+)\]\((?![A-Za-z][A-Za-z0-9+.-]*:|#)[^)\s]+\)", r"\1", text)
    return ("<!-- docs/REPORT_FORMAT.md of the trlearner repository, as shipped in its package "
            "(trlearner/report/REPORT_FORMAT.md) -->\n" + text)


def _fmt(x: float, d: int, sign: bool = False) -> str:
    from .rounding import fmt

    return fmt(x, d, sign)  # n/a when unknown; scientific notation for huge values


def _value_clause(rec: dict[str, Any], entry: dict[str, Any] | None, d: int, label: str) -> str:
    n = int(rec.get("n") or 0)
    ci = "CI over test tasks, 1 seed" if n == 1 else f"n={n} seeds"
    text = f"{label} {format_ci(rec['mean'], rec['ci95'], d)} ({ci}"
    if entry is not None:
        inside = in_ci(float(entry["value"]), rec["mean"], rec["ci95"])
        where = "inside" if inside else "outside" if inside is False else "unknown relative to"
        text += f"; the paper's {_fmt(float(entry['value']), d)} lies {where} our CI"
    if isinstance(rec.get("pooled"), str):
        text += f"; pools {rec['pooled']} {POOLED}"
    return text + ")"


def _label(variant: str) -> str:
    return "+ TRLearner" if variant == "trlearner" else "baseline"


def _effect_sentence(diff: dict[str, Any], paper_eff: float, d: int) -> tuple[str, str]:
    """(sentence, verdict) for a known cell with a paired effect under the full protocol."""
    lo, hi = diff["diff"] - diff["ci95"], diff["diff"] + diff["ci95"]
    n = int(diff["n"])
    d = ci_decimals(diff["ci95"], d)  # every number of the sentence to the precision its CI supports
    if diff["pairing"] != PAIR_SEEDS:
        where = (f"paired over the {n} test tasks of 1 seed, {format_p(diff['p'])}"
                 if diff["pairing"] == PAIR_TASKS else str(diff.get("note") or "1 seed, no CI"))
        ours = (format_ci(diff["diff"], diff["ci95"], d, sign=True) if diff["pairing"]
                else _fmt(diff["diff"], d, True))
        return (f" Effect TRLearner − baseline: ours {ours} ({where}), paper {_fmt(paper_eff, d, True)}. "
                "Not judged: a verdict needs at least 2 seeds of each variant (a CI over the test tasks "
                "of one seed leaves out the seed-to-seed spread).", "could not be tested")
    verdict = effect_verdict(paper_eff, diff["diff"], diff["ci95"], n)
    same_sign = diff["diff"] != 0 and (diff["diff"] > 0) == (paper_eff > 0)
    excludes_zero = lo > 0 or hi < 0
    text = (f" Effect TRLearner − baseline: ours {format_ci(diff['diff'], diff['ci95'], d, sign=True)}, "
            f"95 % CI [{_fmt(lo, d, True)}, {_fmt(hi, d, True)}] (paired over {n} seeds); the paper's "
            f"{_fmt(paper_eff, d, True)} lies {'inside' if verdict == 'compatible' else 'outside'} our CI. "
            f"Smallest effect {n} seeds could detect: {_fmt(diff.get('mde', math.nan), d)} (sd of the "
            f"differences {_fmt(diff.get('sd', math.nan), d)}; α=0.05, 80 % power). "
            f"Extra information, not the rule: {'same' if same_sign else 'opposite'} sign as the paper; "
            f"our CI {'excludes' if excludes_zero else 'contains'} 0 ({format_p(diff['p'])}).")
    if isinstance(diff.get("pooled"), str):
        text += f" The pairs pool {diff['pooled']} {POOLED}."
    return text, verdict


def summarize_claims(resolved: pd.DataFrame, diffs: pd.DataFrame, reference: Reference) -> list[dict[str, Any]]:
    """One verdict per known paper cell (dataset, setting, algorithm) and one for the paper's
    general claim that TRLearner improves its baselines.

    Each item: ``claim``, ``verdict`` and ``sentence``. A known cell's verdict is one of
    :data:`VERDICTS`, from :func:`effect_verdict`: *compatible* when the paper's effect lies
    inside the 95 % CI of our paired effect (over at least 2 seeds, full protocol),
    *incompatible* when outside, *could not be tested* when a variant has no number (not run,
    failed, invalid, diverged), ran under a reduced protocol, or has fewer than 2 paired seeds.
    The general claim (``claim == "general"``) gets one of :data:`GENERAL_VERDICTS`.
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
        name = (f"{reference.algorithm_label(algorithm)} on {escape.markdown(dataset)} {setting} ({metric}, "
                f"{'higher' if hib else 'lower'} is better)")
        recs = {v: by_key.get((dataset, setting, algorithm, v), {"state": "missing", "reason": "not run"})
                for v in ("baseline", "trlearner")}
        paper_txt = ", ".join(f"{_label(v)} {_fmt(float(e['value']), d)}" for v, e in sorted(entries.items()))
        bad = {v: r for v, r in recs.items() if r["state"] != "ok"}
        if bad:
            why = "; ".join(f"{_label(v)}: {escape.markdown(r['reason'])}" for v, r in sorted(bad.items()))
            claims.append(dict(claim=name, verdict="could not be tested",
                               sentence=f"{name}: could not be tested ({why}). Paper: {paper_txt}."))
            continue
        if any(r.get("reduced") for r in recs.values()):
            values = ", ".join(f"{_label(v)} {format_ci(recs[v]['mean'], recs[v]['ci95'], d)}"
                               for v in ("baseline", "trlearner"))
            claims.append(dict(claim=name, verdict="could not be tested", sentence=(
                f"{name}: could not be tested against the paper: run under a reduced protocol "
                f"{DAGGER} (ours, not judged: {values}; paper: {paper_txt}).")))
            continue
        text = f"{name}: " + "; ".join(_value_clause(recs[v], entries.get(v), d, _label(v))
                                       for v in ("baseline", "trlearner")) + "."
        diff = diff_by.get((dataset, setting, algorithm))
        if "baseline" in entries and "trlearner" in entries and diff is not None and math.isfinite(diff["diff"]):
            paper_eff = float(entries["trlearner"]["value"]) - float(entries["baseline"]["value"])
            more, verdict = _effect_sentence(diff, paper_eff, d)
            text += more
        else:
            note = f" ({diff['note']})" if diff and diff.get("note") else ""
            text += f" No paired effect could be computed{note}."
            verdict = "could not be tested"
        title = f"{verdict} with the paper" if verdict in ("compatible", "incompatible") else verdict
        claims.append(dict(claim=name, verdict=verdict, sentence=f"{text} Verdict: {title}."))
    general = _general_claim(diffs)
    if general is not None:
        claims.append(general)
    return claims


def _general_claim(diffs: pd.DataFrame) -> dict[str, Any] | None:
    """The paper's general claim judged by the CIs of every paired cell (no paper numbers)."""
    paired = diffs[diffs["pairing"].notna()] if len(diffs) else diffs
    if not len(paired):
        return None
    full = paired[~paired["reduced"].astype(bool)]
    valid = full[full["pairing"] == PAIR_SEEDS]
    n_reduced, n_one_seed = len(paired) - len(full), len(full) - len(valid)
    better = worse = 0
    for r in records(valid):
        hib = r["higher_is_better"] if r["higher_is_better"] is not None else r["metric"] != "mse"
        lo, hi = r["diff"] - r["ci95"], r["diff"] + r["ci95"]
        better += (lo > 0) if hib else (hi < 0)
        worse += (hi < 0) if hib else (lo > 0)
    sentence = (f"General claim (TRLearner improves the baselines it is plugged into; the paper's numbers "
                f"for these cells are unknown): over {len(valid)} (dataset, setting, algorithm) cells paired "
                f"over at least 2 seeds under the full protocol, the 95 % CI of the effect lies entirely on "
                f"TRLearner's better side in {better}, entirely on its worse side in {worse}, and contains 0 "
                f"in {len(valid) - better - worse}")
    left = [f"{n_reduced} under a reduced protocol {DAGGER}"] if n_reduced else []
    left += [f"{n_one_seed} with 1 seed"] if n_one_seed else []
    if left:
        sentence += f"; left out: {', '.join(left)}"
    if len(valid) == 0:
        verdict = "could not be tested"
    elif better and not worse:
        verdict = "supported"
    elif worse and not better:
        verdict = "contradicted"
    elif better and worse:
        verdict = "mixed"
    else:
        verdict = "not shown"
    sentence += (". Rule: supported when some CI lies on the better side and none on the worse side, "
                 "contradicted when the reverse, mixed when both occur, not shown when every CI "
                 f"contains 0. Verdict: {verdict}.")
    return dict(claim="general", verdict=verdict, sentence=sentence)


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

    Keys: ``commits`` {(commit, dirty): count}, ``config_hashes``, ``data_hashes`` {dataset:
    {content hash of the files read, or "generated": count}} (from provenance.json ``data``),
    ``episode_hashes`` {(dataset, setting, test-episode hash): {algorithm: count}} (metrics.json
    ``episodes_hash``), ``packages`` {package: {version: count}}, ``devices``, ``missing`` (runs
    without provenance.json).
    """
    out: dict[str, Any] = dict(commits=Counter(), config_hashes=Counter(), data_hashes=defaultdict(Counter),
                               episode_hashes=defaultdict(Counter), packages=defaultdict(Counter),
                               devices=Counter(), missing=0)
    for rec in records(runs) if len(runs) else []:
        if rec.get("episodes_hash"):
            out["episode_hashes"][(str(rec["dataset"]), str(rec["setting"]), str(rec["episodes_hash"]))][
                str(rec["algorithm"])] += 1
        prov = rec.get("provenance") or {}
        if not prov:
            out["missing"] += 1
            continue
        commit = _get(prov, "git_commit", "commit", "git.commit")
        dirty = _get(prov, "git_dirty", "dirty", "git.dirty")
        out["commits"][(str(commit), "dirty" if dirty else "clean" if dirty is not None else "unknown")] += 1
        out["config_hashes"][str(_get(prov, "config_hash", "config.hash"))] += 1
        data = prov.get("data") if isinstance(prov.get("data"), dict) else {}
        read = {str(d.get("dataset")): d for d in data.values() if isinstance(d, dict)}  # train, test: often one
        for ds, entry in sorted(read.items()):
            out["data_hashes"][ds][str(entry.get("content_hash") or entry.get("kind") or "not recorded")] += 1
        packages = _get(prov, "package_versions", "packages", "versions") or {}
        if isinstance(packages, dict):
            for pkg, ver in packages.items():
                out["packages"][str(pkg)][_as_text(ver)] += 1
        out["devices"][_as_text(_get(prov, "device", "hardware.device"))] += 1
    return out


def _counted(counter: Counter) -> str:
    return ", ".join(f"{escape.markdown(k)} ({n} runs)" for k, n in sorted(counter.items()))


#: More distinct config hashes than this are counted, not listed (one per run is the rule:
#: the hash covers the seed).
MAX_LISTED_HASHES = 4


def _config_hashes(counter: Counter) -> str:
    """The config hashes, listed when few, else counted (they are in each run's provenance.json)."""
    if not counter:
        return "not recorded"
    if len(counter) <= MAX_LISTED_HASHES:
        return _counted(counter)
    runs = sum(counter.values())
    return (f"{len(counter)} distinct over {runs} runs (the hash covers each run's settings and seed; "
            f"each run's is in its provenance.json)")


def provenance_markdown(runs: pd.DataFrame) -> str:
    """The provenance block of the report (Markdown)."""
    p = provenance_summary(runs)
    lines = ["## Provenance", ""]
    if len(runs) == 0:
        return "\n".join(lines + ["No runs found.", ""])
    commits = ", ".join(f"{escape.code(c)} ({d}, {n} runs)" for (c, d), n in sorted(p["commits"].items()))
    lines += [f"- Git commit: {commits or 'not recorded'}",
              f"- Config hash: {_config_hashes(p['config_hashes'])}",
              f"- Device: {_counted(p['devices']) or 'not recorded'}"]
    if p["missing"]:
        lines.append(f"- Runs without provenance.json: {p['missing']}")
    lines.append("")
    if p["data_hashes"]:
        frame = pd.DataFrame([(ds, h[:16], n) for ds, hs in sorted(p["data_hashes"].items())
                              for h, n in sorted(hs.items())], columns=["dataset", "content hash", "runs"])
        frame["runs"] = frame["runs"].astype(str)
        lines += ["Data read (sha256 of the fetched files, first 16 hex digits; \"generated\": synthetic):", "",
                  to_markdown(frame.set_index("dataset")), ""]
    if p["episode_hashes"]:
        keys = sorted(p["episode_hashes"], key=lambda k: (k[0], setting_sort_key(k[1]), k[2]))
        frame = pd.DataFrame([(ds, st, h, ", ".join(sorted(p["episode_hashes"][(ds, st, h)])),
                               str(sum(p["episode_hashes"][(ds, st, h)].values()))) for ds, st, h in keys],
                             columns=["dataset", "setting", "hash", "algorithms", "runs"])
        lines += ["Test episodes (hash of the test tasks the runs were evaluated on; algorithms whose protocols "
                  "draw different test queries have different ones):", "",
                  to_markdown(frame.set_index("dataset")), ""]
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


def verdicts_markdown(claims: list[dict[str, Any]]) -> str:
    """The claims of the paper by verdict, then the general claim: the first section of REPORT.md."""
    lines = ["## Claims and verdicts", "", VERDICT_RULE, ""]
    for verdict in VERDICTS:
        items = [c for c in claims if c["verdict"] == verdict and c["claim"] != "general"]
        lines.append(f"**{VERDICT_TITLES[verdict]}** ({len(items)})")
        lines.append("")
        lines += [f"- {c['sentence']}" for c in items] or ["- none"]
        lines.append("")
    general = [c for c in claims if c["claim"] == "general"]
    lines += ["### General claim", ""]
    lines += [f"- {c['sentence']}" for c in general] or ["- No paired cell: not judged."]
    lines.append("")
    return "\n".join(lines)


def summary_markdown(runs: pd.DataFrame, resolved: pd.DataFrame, claims: list[dict[str, Any]] | None,
                     expected: list[dict[str, Any]] | None, skipped: pd.DataFrame | None = None,
                     diffs: pd.DataFrame | None = None) -> str:
    """What ran, hardware, wall time and run checks; with ``claims``, the verdicts after it
    (:func:`verdicts_markdown`; REPORT.md shows them first, on their own)."""
    status = Counter(runs["status"]) if len(runs) else Counter()
    lines = ["## Summary", ""]
    what = (f"{len(runs)} runs found: {status.get('ok', 0)} completed, {status.get('diverged', 0)} "
            f"diverged, {status.get('failed', 0)} failed (no usable metrics.json), "
            f"{status.get('invalid', 0)} invalid (not counted).")
    if len(runs):
        datasets = ", ".join(escape.markdown(d) for d in sorted(set(runs["dataset"])))
        presets = ", ".join(sorted({escape.markdown(p) for p in runs["preset"] if isinstance(p, str)})) \
            or "not recorded"
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
    kinds = Counter(skipped["kind"]) if skipped is not None and len(skipped) else Counter()
    pooled = len(_pooled_rows(resolved, diffs))
    lines.append(f"- Run checks: {sum(kinds.values())} run folders not counted ({kinds.get('invalid', 0)} "
                 f"invalid metrics.json, {kinds.get('duplicate', 0)} copies of a counted run, "
                 f"{kinds.get('conflict', 0)} conflicting copies, {kinds.get('stale', 0)} of other settings, "
                 f"{kinds.get('not in the preset', 0)} not in the preset, {kinds.get('missing', 0)} expected "
                 f"runs missing); {pooled} cells or effects pool different code versions or test episodes "
                 f"{POOLED} (listed under Run checks).")
    lines.append("")
    return "\n".join(lines) + ("\n" + verdicts_markdown(claims) if claims is not None else "")


def _pooled_rows(resolved: pd.DataFrame, diffs: pd.DataFrame | None) -> list[tuple[str, ...]]:
    """(dataset, setting, algorithm, what, differs in) of every cell and paired effect that
    pools runs of different code versions or test episodes."""
    rows = []
    for r in records(resolved) if len(resolved) and "pooled" in resolved else []:
        if isinstance(r.get("pooled"), str):
            rows.append((r["dataset"], r["setting"], r["algorithm"], r["variant"], r["pooled"]))
    for r in records(diffs) if diffs is not None and len(diffs) else []:
        if isinstance(r.get("pooled"), str):
            rows.append((r["dataset"], r["setting"], r["algorithm"], "Δ (paired runs)", r["pooled"]))
    return rows


def _versions(runs: pd.DataFrame, key: tuple[str, ...], column: str) -> str:
    """Distinct values of ``column`` among the ok runs of a cell (or pair), with their seeds."""
    dataset, setting, algorithm, what = key
    sel = runs[(runs["dataset"] == dataset) & (runs["setting"] == setting) &
               (runs["algorithm"] == algorithm) & (runs["status"] == "ok")]
    if what in ("baseline", "trlearner"):
        sel = sel[sel["variant"] == what]
    seeds: dict[str, list] = defaultdict(list)
    for value, variant, seed in zip(sel[column], sel["variant"], sel["seed"]):
        label = f"{variant} seed {seed}" if what not in ("baseline", "trlearner") else f"seed {seed}"
        seeds[str(value) if isinstance(value, str) else "not recorded"].append(label)
    return "; ".join(f"{escape.code(v)} ({', '.join(sorted(s))})" for v, s in sorted(seeds.items()))


def checks_markdown(runs: pd.DataFrame, skipped: pd.DataFrame, resolved: pd.DataFrame,
                    diffs: pd.DataFrame) -> str:
    """The run checks: every run folder not counted and why, and every cell or paired effect
    that pools different code versions or test episodes (marked ‡ in the tables)."""
    lines = ["## Run checks", "", "Run folders not counted (metrics.json against the schema of "
             f"{FORMAT_LINK}, its mean and CI against its per-task values; only the runs the preset "
             "expects, each of the settings it expects; one run counted once):", ""]
    if len(skipped):
        lines += [to_markdown(skipped.reset_index(drop=True)), ""]
    else:
        lines += ["None: every metrics.json passed the schema, every run is the preset's own, and no run "
                  "folder is a copy.", ""]
    lines += [f"Cells and paired effects pooling different code versions or test episodes {POOLED}:", ""]
    rows = _pooled_rows(resolved, diffs)
    if not rows:
        return "\n".join(lines + ["None: every cell's runs share one code version and one episode set.", ""])
    frame = pd.DataFrame([(*r, _versions(runs, r[:4], "code"), _versions(runs, r[:4], "episodes_hash"))
                          for r in rows],
                         columns=["dataset", "setting", "algorithm", "cell", "pools", "code versions",
                                  "episode sets"])
    return "\n".join(lines + [to_markdown(frame, raw=("code versions", "episode sets")), ""])


def missing_markdown(resolved: pd.DataFrame) -> str:
    """A table of every cell without a value and why."""
    lines = ["## Missing cells", ""]
    if not len(resolved):
        return "\n".join(lines + ["None.", ""])
    miss = resolved[resolved["state"] != "ok"][["dataset", "setting", "algorithm", "variant", "reason", "state"]]
    absent = miss[miss["state"] == "not_in_preset"]
    miss = miss[miss["state"] != "not_in_preset"].drop(columns="state")
    if len(absent):  # the paper's known cells this preset does not run: one line, not a row each
        names = sorted({escape.markdown(f"{d} {s}") for d, s in zip(absent["dataset"], absent["setting"])})
        lines += [f"Known paper cells not in this preset ({len(absent)}): {', '.join(names)}.", ""]
    if not len(miss):
        return "\n".join(lines + ["None of the expected cells lacks a value.", ""])
    return "\n".join(lines + [to_markdown(miss.reset_index(drop=True)), ""])


@dataclass
class ReportContext:
    """Everything a section of REPORT.md may read (computed once by :func:`write_report`)."""

    results_dir: Path
    out: Path
    reference: Reference
    expected: list[dict[str, Any]] | None
    runs: pd.DataFrame
    skipped: pd.DataFrame
    resolved: pd.DataFrame
    diffs: pd.DataFrame
    tables: list[FamilyTable]
    claims: list[dict[str, Any]]
    figures_dir: Path | None
    analyses_dir: Path | None
    gallery_dir: Path | None
    relative_to: Path | None
    shown: set = field(default_factory=set)  # figure files already embedded by a section


def _title_section(ctx: ReportContext) -> str:
    return ("# TRLearner reproduction report\n\nReproduction of \"Rethinking Meta-Learning from a Learning "
            "Lens\" (Wang et al., arXiv 2409.08474). Every number below is read from a run's metrics.json, "
            "rounded to the precision its 95 % CI supports (2 significant digits of the half-width, the mean "
            f"to the same decimal); statistics are described in {FORMAT_LINK} (beside this report).\n")


def _claims_section(ctx: ReportContext) -> str:
    # the open decisions of the paper (config/claims.yaml): empty without ablations on a known cell
    return claims_markdown(ctx.results_dir, ctx.reference, table_runs=ctx.runs, relative_to=ctx.relative_to)


def _sequential_section(ctx: ReportContext) -> str:
    # every arm of the sequential rule: the table's TRLearner runs and each interpretation
    interp = interpretation_runs(ctx.results_dir.parent / "ablations", ctx.relative_to)
    return sequential_markdown(ctx.runs, ctx.reference, interp)


def _summary_section(ctx: ReportContext) -> str:
    return summary_markdown(ctx.runs, ctx.resolved, None, ctx.expected, ctx.skipped, ctx.diffs)


def _main_figure_section(ctx: ReportContext) -> str:
    stem = ctx.out / "figures" / MAIN_FIGURE
    rows = main_results_figure(ctx.resolved, ctx.reference, stem)
    lines = ["## Main results", ""]
    if not rows:
        return "\n".join(lines + ["No cell has a value yet: nothing to draw.", ""])
    ctx.shown.add(stem.with_suffix(".png").resolve())
    return "\n".join(lines + [f"![main results](figures/{MAIN_FIGURE}.png)", "",
                              f"*{MAIN_CAPTION}* ([PDF](figures/{MAIN_FIGURE}.pdf))", ""])


def _shown_in_report(section: Section) -> bool:
    """A table section worth REPORT.md: one with a cell of this preset (the tables/ files keep all)."""
    ours = [c for c in section.frame.columns if isinstance(c, tuple) and c[-1] == "ours"]
    return not ours or any(v != NOT_IN_PRESET for c in ours for v in section.frame[c])


def _tables_section(ctx: ReportContext) -> str:
    parts, hidden = ["## Tables", ""], []
    for table in ctx.tables:
        keep = [sec for sec in table.sections if _shown_in_report(sec)]
        if not any(not sec.caption.startswith("Context") for sec in keep):
            hidden.append(table.family)
            continue
        parts.append(render_family(FamilyTable(table.family, table.title, keep), "md", footnotes=False))
    parts += ["Notes on the tables:", ""] + [f"- {n}" for n in FOOTNOTES] + [""]
    if hidden:
        links = ", ".join(f"[{escape.markdown(f)}](tables/{escape.filename(f)}.md)" for f in hidden)
        parts += [f"Families with no cell in this preset (the paper's values only): {links}.", ""]
    return "\n".join(parts)


def _analyses_section(ctx: ReportContext) -> str:
    text, shown = analysis_markdown(ctx.analyses_dir, ctx.out, to_markdown)
    ctx.shown |= shown
    return text


def _gallery_section(ctx: ReportContext) -> str:
    from .gallery import gallery_markdown

    return gallery_markdown(ctx.gallery_dir, ctx.out)


def _missing_section(ctx: ReportContext) -> str:
    return missing_markdown(ctx.resolved)


def _checks_section(ctx: ReportContext) -> str:
    return checks_markdown(ctx.runs, ctx.skipped, ctx.resolved, ctx.diffs)


def _figures_section(ctx: ReportContext) -> str:
    figures = [(path, cap) for path, cap in find_figures(ctx.figures_dir, ctx.out)
               if (ctx.out / path).resolve() not in ctx.shown and Path(path).stem != MAIN_FIGURE]
    if not figures:
        return ""
    return "\n".join(["## Other figures", ""] + [f"![{escape.markdown(cap)}]({path})\n\n*{escape.markdown(cap)}*\n"
                                                  for path, cap in figures])


def _provenance_section(ctx: ReportContext) -> str:
    return provenance_markdown(ctx.runs)


#: The sections of REPORT.md, in order: (name, function(ReportContext) -> Markdown, "" to leave
#: it out). Verdicts come first; a module with a section of its own adds an entry here (the
#: interpretations of report/claims.py follow the verdicts).
SECTIONS = [("title", _title_section), ("verdicts", lambda ctx: verdicts_markdown(ctx.claims)),
            ("calibration", lambda ctx: calibration_markdown(ctx.results_dir, ctx.reference, ctx.relative_to)),
            ("sequential", _sequential_section),
            ("claims", _claims_section), ("summary", _summary_section),
            ("main figure", _main_figure_section), ("tables", _tables_section),
            ("analyses", _analyses_section), ("gallery", _gallery_section),
            ("missing", _missing_section), ("checks", _checks_section),
            ("figures", _figures_section), ("provenance", _provenance_section)]
MAIN_FIGURE = "main_results"


def summary_json(resolved: pd.DataFrame, diffs: pd.DataFrame, claims: list[dict[str, Any]]) -> dict[str, Any]:
    """The machine-readable results (``summary.json``, DVC's metrics file): verdict counts, and
    mean, CI and seeds of every cell with a value and every paired effect, nested by dataset,
    setting, algorithm (and variant)."""
    verdicts = Counter(c["verdict"] for c in claims if c["claim"] != "general")
    general = next((c["verdict"] for c in claims if c["claim"] == "general"), "could not be tested")
    out: dict[str, Any] = {"verdicts": {v.replace(" ", "_"): verdicts.get(v, 0) for v in VERDICTS},
                           "general_claim": general, "cells": {}, "effects": {}}

    def num(x):
        return round(float(x), 6) if x is not None and math.isfinite(float(x)) else None

    for r in records(resolved) if len(resolved) else []:
        if r.get("state") == "ok":
            out["cells"].setdefault(r["dataset"], {}).setdefault(r["setting"], {}).setdefault(
                r["algorithm"], {})[r["variant"]] = {"mean": num(r["mean"]), "ci95": num(r["ci95"]),
                                                     "n": int(r.get("n") or 0), "reduced": bool(r.get("reduced"))}
    for r in records(diffs) if len(diffs) else []:
        if r.get("diff") is not None and math.isfinite(r["diff"]):
            out["effects"].setdefault(r["dataset"], {}).setdefault(r["setting"], {})[r["algorithm"]] = {
                "diff": num(r["diff"]), "ci95": num(r["ci95"]), "n": int(r.get("n") or 0)}
    return out


def write_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 expected: str | os.PathLike | list | dict | None = None,
                 figures_dir: str | os.PathLike | None = None,
                 analyses_dir: str | os.PathLike | None = None,
                 reference: Reference | str | os.PathLike | None = None,
                 relative_to: str | os.PathLike | None = None,
                 gallery_dir: str | os.PathLike | None = None) -> Path:
    """Write ``out_dir/REPORT.md`` (and ``REPORT.html``, ``verdicts.rst``), the main figure
    ``out_dir/figures/main_results.{png,pdf}``, ``out_dir/tables/<family>.{md,tex,html}``,
    ``out_dir/cells.csv``, ``out_dir/charts/cells_<metric>.csv`` and ``out_dir/summary.json``
    from the runs under ``results_dir``;
    return the REPORT.md path.

    ``expected``: the expected-cells spec (see :func:`trlearner.report.tables.load_expected`).
    ``analyses_dir``: folder of analysis folders (figure, CSV, summary.json each).
    ``gallery_dir``: folder of episode pictures (:mod:`trlearner.report.gallery`).
    ``relative_to``: base of the run/log paths printed in the report (default: current dir).
    """
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    ref = reference if isinstance(reference, Reference) else Reference.load(reference)
    exp = load_expected(expected)
    scan = scan_runs(results_dir, relative_to=relative_to)
    runs, left_out = admit(scan.runs, exp, results_dir)  # exactly the runs the preset expects
    skipped = pd.concat([scan.skipped, pd.DataFrame(left_out, columns=scan.skipped.columns)], ignore_index=True) \
        if left_out else scan.skipped
    cells = aggregate_cells(runs)
    diffs = paired_differences(runs)
    resolved = resolve_cells(runs, exp, ref, cells=cells)
    tables: list[FamilyTable] = build_tables(runs, exp, ref, resolved=resolved, diffs=diffs)
    for table in tables:
        for fmt in ("md", "tex", "html"):
            text = render_family(table, fmt)
            if fmt == "html":
                text = html_document(text, table.title)
            write_text(out / "tables" / f"{escape.filename(table.family)}.{fmt}", text)
    claims = summarize_claims(resolved, diffs, ref)
    as_path = lambda p: Path(p) if p is not None else None  # noqa: E731
    ctx = ReportContext(Path(results_dir), out, ref, exp, runs, skipped, resolved, diffs, tables, claims,
                        as_path(figures_dir), as_path(analyses_dir), as_path(gallery_dir), as_path(relative_to))
    # a preset of ablations only (config/calibration.yaml: an empty expected-cells spec, no table
    # runs) has no claims, cells or tables: its own sections come first, not empty ones
    empty = {"verdicts", "summary", "main figure", "tables", "missing"} if exp == [] and not len(runs) else set()
    parts = [text for name, section in SECTIONS if name not in empty and (text := section(ctx))]
    report = out / "REPORT.md"
    markdown = wrap_markdown("\n".join(parts).rstrip()) + "\n"
    write_text(report, markdown)
    write_text(out / FORMAT_DOC, format_doc())
    write_text(out / "REPORT.html", markdown_page(markdown, "TRLearner reproduction report", base=out))
    write_text(out / "verdicts.rst", verdicts_rst(claims, VERDICT_TITLES))
    write_text(out / "summary.json", json.dumps(summary_json(resolved, diffs, claims), indent=1,
                                                sort_keys=True) + "\n")

    csv = resolved.drop(columns=[c for c in ("diverged_at",) if c in resolved]).copy()
    csv.insert(0, "cell", [f"{d}/{s}/{a}/{v}" for d, s, a, v in
                           zip(csv["dataset"], csv["setting"], csv["algorithm"], csv["variant"])] if len(csv) else [])
    csv["seeds"] = csv.get("seeds", pd.Series(dtype=object)).map(
        lambda s: " ".join(map(str, s)) if isinstance(s, tuple) else "")
    csv["expected_seeds"] = csv["expected_seeds"].map(lambda s: " ".join(map(str, s)) if s else "")
    # the seed columns list seed ids ("0" is seed 0, not zero seeds: ``n`` counts them)
    csv = csv.rename(columns={"seeds": "seed_ids", "expected_seeds": "expected_seed_ids"})
    write_text(out / "cells.csv", csv.to_csv(index=False, float_format="%.6g"))
    write_cell_charts(resolved, out / CHARTS)
    return report


CHARTS = "charts"  # out_dir/charts/cells_<metric>.csv: the data of DVC's cells charts


def write_cell_charts(resolved: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``out/cells_<metric>.csv`` (columns ``cell``, ``mean``, ``ci95``, ``n``) for each
    metric measured in the preset: one chart per metric, so accuracy (0-100) and MSE (about 1)
    never share an axis, and only the cells the preset ran (the reference's cells that it does
    not run have no mean). Files of metrics no longer measured are removed; return the paths.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> cells = pd.DataFrame({"dataset": ["sinusoid", "omniglot", "meta_dataset"], "setting": ["5shot"] * 3,
        ...     "algorithm": ["maml"] * 3, "variant": ["baseline"] * 3, "metric": ["mse", "accuracy", None],
        ...     "mean": [0.6, 97.5, None], "ci95": [0.02, 0.4, None], "n": [4, 4, 0]})
        >>> [p.name for p in write_cell_charts(cells, d)]
        ['cells_accuracy.csv', 'cells_mse.csv']
        >>> print((d / "cells_mse.csv").read_text().strip())
        cell,mean,ci95,n
        sinusoid/5shot/maml/baseline,0.6,0.02,4
    """
    out.mkdir(parents=True, exist_ok=True)
    written_paths = []
    groups = resolved[resolved["mean"].notna() & resolved["metric"].notna()].groupby("metric") \
        if len(resolved) and {"mean", "metric"} <= set(resolved.columns) else []
    for metric, group in sorted(groups, key=lambda kv: str(kv[0])):
        chart = pd.DataFrame({
            "cell": [f"{d}/{s}/{a}/{v}" for d, s, a, v in
                     zip(group["dataset"], group["setting"], group["algorithm"], group["variant"])],
            "mean": group["mean"].to_numpy(), "ci95": group["ci95"].to_numpy(), "n": group["n"].to_numpy()})
        path = out / f"cells_{escape.filename(str(metric))}.csv"
        write_text(path, chart.to_csv(index=False, float_format="%.6g"))
        written_paths.append(path)
    for stale in set(out.glob("cells_*.csv")) - set(written_paths):
        stale.unlink()
    return written_paths

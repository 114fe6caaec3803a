"""Where a Snakemake run's time went: every job's wall time, read from the run's log.

Snakemake writes a log per invocation (``.snakemake/log/<timestamp>.snakemake.log``): a
``[Tue Dec  1 14:41:28 2026]`` line before each event, ``rule NAME:`` / ``localrule NAME:``
with ``jobid: N`` when a job starts, ``Finished jobid: N (Rule: NAME)`` when it ends. From
these, per rule: jobs, summed job time and the longest job; for the run: its wall time, the
core-seconds the jobs kept busy, and the idle share (``1 - busy / (wall x cores)``), which is
the scheduling, start-up and dependency wait the jobs' own times do not contain. Timestamps
have a resolution of one second.

Example::

    >>> log = '''[Tue Dec  1 10:00:00 2026]
    ... rule train:
    ...     jobid: 1
    ... [Tue Dec  1 10:00:00 2026]
    ... localrule gallery:
    ...     jobid: 2
    ... [Tue Dec  1 10:00:30 2026]
    ... Finished jobid: 2 (Rule: gallery)
    ... [Tue Dec  1 10:01:40 2026]
    ... Finished jobid: 1 (Rule: train)
    ... '''
    >>> s = summarize(parse_log(log), cores=2)
    >>> s["wall_s"], s["busy_s"], round(s["idle_share"], 2)
    (100.0, 130.0, 0.35)
    >>> [(r["rule"], r["jobs"], r["seconds"]) for r in s["rules"]]
    [('train', 1, 100.0), ('gallery', 1, 30.0)]
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d{1,2} \d{2}:\d{2}:\d{2} \d{4})\]$")
_START = re.compile(r"^(?:local)?rule (\S+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_END = re.compile(r"^Finished jobid: (\d+) \(Rule: (\S+)\)$")


def parse_log(text: str) -> list[dict]:
    """Finished jobs of a Snakemake log: ``{"jobid", "rule", "start", "end", "seconds"}`` each
    (``start``/``end`` as datetimes), in the order they finished. Jobs that never finished
    (failed, or the run was stopped) are left out."""
    now, pending_rule, started, jobs = None, None, {}, []
    for line in text.splitlines():
        if m := _STAMP.match(line):
            now = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _START.match(line):
            pending_rule = (m.group(1), now)
        elif (m := _JOBID.match(line)) and pending_rule is not None:
            started[int(m.group(1))] = pending_rule
            pending_rule = None
        elif m := _END.match(line):
            jobid = int(m.group(1))
            rule, start = started.pop(jobid, (m.group(2), None))
            if start is not None and now is not None:
                jobs.append({"jobid": jobid, "rule": rule, "start": start, "end": now,
                             "seconds": (now - start).total_seconds()})
    return jobs


def summarize(jobs: list[dict], cores: int) -> dict:
    """The run's wall time, busy core-seconds, idle share and per-rule rows (most time first)."""
    if not jobs:
        return {"wall_s": 0.0, "busy_s": 0.0, "idle_share": 0.0, "cores": cores, "rules": []}
    wall = (max(j["end"] for j in jobs) - min(j["start"] for j in jobs)).total_seconds()
    busy = sum(j["seconds"] for j in jobs)
    rules: dict[str, dict] = {}
    for j in jobs:
        r = rules.setdefault(j["rule"], {"rule": j["rule"], "jobs": 0, "seconds": 0.0, "longest_s": 0.0})
        r["jobs"] += 1
        r["seconds"] += j["seconds"]
        r["longest_s"] = max(r["longest_s"], j["seconds"])
    idle = 1 - busy / (wall * cores) if wall > 0 else 0.0
    return {"wall_s": wall, "busy_s": busy, "idle_share": idle, "cores": cores,
            "rules": sorted(rules.values(), key=lambda r: -r["seconds"])}


def to_markdown(s: dict) -> str:
    lines = [f"wall time {s['wall_s'] / 60:.1f} min on {s['cores']} cores; jobs busy "
             f"{s['busy_s'] / 60:.1f} core-min; idle {100 * s['idle_share']:.0f} % of the cores' time", "",
             "| rule | jobs | core-min | share | longest job, min |", "|---|---|---|---|---|"]
    for r in s["rules"]:
        share = r["seconds"] / s["busy_s"] if s["busy_s"] else 0.0
        lines.append(f"| {r['rule']} | {r['jobs']} | {r['seconds'] / 60:.1f} | {100 * share:.0f} % | "
                     f"{r['longest_s'] / 60:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trlearner.bench.runlog",
                                description="Where a Snakemake run's time went, from its log.")
    p.add_argument("log", nargs="?", default=None,
                   help="a Snakemake log (default: the newest .snakemake/log/*.snakemake.log)")
    p.add_argument("--cores", type=int, default=2, help="cores the run had (default 2)")
    args = p.parse_args(argv)
    path = Path(args.log) if args.log else max(Path(".snakemake/log").glob("*.snakemake.log"), default=None,
                                               key=lambda f: f.stat().st_mtime)
    if path is None or not path.is_file():
        print("no Snakemake log found: pass its path (.snakemake/log/<time>.snakemake.log)", file=sys.stderr)
        return 2
    print(to_markdown(summarize(parse_log(path.read_text(encoding="utf-8", errors="replace")), args.cores)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

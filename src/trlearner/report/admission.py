"""Which records a report counts: exactly the runs its preset expects, each of the identity it expects.

The pipeline writes, for every expected cell, its runs: the folder under ``<results>/runs`` and
the hash of the run's identity (``expected.json``: :meth:`trlearner.pipeline.matrix.Matrix.expected_cells`).
:func:`admit` keeps a scanned record only when it is one of those runs, at its own folder, and
its ``provenance.json`` names that identity. Every other record is left out and listed under
"Run checks" with its reason:

- ``stale``: the preset's run, trained with other settings (the preset changed since: seeds,
  λ, iterations, ...), or by another preset;
- ``not in the preset``: a cell, seed or folder the preset does not have (a scratch run under
  the results tree, an algorithm or seed removed from the preset);
- ``missing``: an expected run with no readable record (absent, a broken or any symbolic link,
  which the scan does not follow).

A hand-written spec without ``runs`` (a cell list, as :func:`trlearner.report.tables.load_expected`
accepts) checks nothing: every record found is counted, as before.

Example:
    >>> import pandas as pd
    >>> runs = pd.DataFrame([{"dataset": "d", "setting": "5shot", "algorithm": "maml", "variant": "baseline",
    ...     "seed": 0, "status": "ok", "run": "d/5shot/maml/baseline/seed0", "path": "p0", "preset": "x",
    ...     "provenance": {"config_hash": "old"}}])
    >>> spec = [{"dataset": "d", "setting": "5shot", "algorithm": "maml", "variant": "baseline", "seeds": [0],
    ...          "runs": [{"seed": 0, "run": "d/5shot/maml/baseline/seed0", "config_hash": "new"}]}]
    >>> kept, left = admit(runs, spec, "results/runs")
    >>> len(kept), left[0]["kind"], left[0]["reason"]
    (0, 'stale', "trained with other settings (config hash old; the preset's run is new); trained by preset 'x'")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

_CELL = ("dataset", "setting", "algorithm", "variant")


def admit(runs: pd.DataFrame, expected: list[dict[str, Any]] | None,
          results_dir: str | os.PathLike) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """The scanned ``runs`` the preset expects, and every other record with its reason.

    Arguments:
        runs: ``scan_runs(results_dir).runs`` (columns of :data:`trlearner.run.records.scan.RUN_COLUMNS`).
        expected: the expected-cells spec; cells with ``runs`` entries are checked.
        results_dir: the scanned folder (to tell a missing run from a symbolic link).

    Returns:
        ``(kept, left_out)``: the runs counted, and ``{"path", "kind", "reason"}`` entries.
    """
    spec = [c for c in (expected or []) if c.get("runs")]
    if not spec or not len(runs):
        return runs, _missing(runs, spec, results_dir)
    want = {r["run"]: r["config_hash"] for c in spec for r in c["runs"]}
    cells = {tuple(c[k] for k in _CELL): set(int(s) for s in c.get("seeds") or ()) for c in expected or ()}
    unchecked = {tuple(c[k] for k in _CELL) for c in expected or () if not c.get("runs")}
    keep, left = [], []
    for row in runs.to_dict("records"):
        cell = tuple(row[k] for k in _CELL)
        reason = None
        if cell in unchecked:
            pass
        elif row["run"] not in want:
            seed = row.get("seed")
            if cell not in cells:
                what = f"the cell {' '.join(map(str, cell))} is not in the preset"
            elif seed is None or pd.isna(seed) or int(seed) not in cells[cell]:
                what = f"seed {seed} of this cell is not in the preset"
            else:
                what = "a run of this cell and seed outside the preset's folder (a scratch run or a copy)"
            reason = ("not in the preset", what)
        else:
            have = (row.get("provenance") or {}).get("config_hash")
            if have != want[row["run"]]:
                by = f"; trained by preset {row['preset']!r}" if row.get("preset") else ""
                reason = ("stale", f"trained with other settings (config hash {have}; the preset's run is "
                                   f"{want[row['run']]}){by}")
        if reason is None:
            keep.append(row)
        else:
            left.append({"path": row["path"], "kind": reason[0], "reason": reason[1]})
    kept = pd.DataFrame(keep, columns=runs.columns)
    return kept, left + _missing(kept, spec, results_dir)


def _missing(runs: pd.DataFrame, spec: list[dict[str, Any]], results_dir) -> list[dict[str, str]]:
    """An entry per expected run without a record among ``runs``."""
    found = set(runs["run"]) if len(runs) and "run" in runs else set()
    root = Path(results_dir)
    out = []
    for cell in spec:
        for r in cell["runs"]:
            if r["run"] in found:
                continue
            folder = root / r["run"]
            if folder.is_symlink():
                why = ("a symbolic link" + (" whose target is missing" if not folder.exists() else "")
                       + ": the report reads run folders, not links to them")
            elif not folder.exists():
                why = "no run folder"
            else:
                continue  # a folder the scan read: its own status (failed, invalid) says why
            out.append({"path": folder.as_posix(), "kind": "missing", "reason": f"expected run: {why}"})
    return out


def ablation_index(ablations_dir: str | os.PathLike) -> dict[str, str] | None:
    """Expected ablation run folder (relative to ``ablations_dir``) -> identity hash, from the
    pipeline's ``index.json`` in ``ablations_dir``; None without an index that names identities
    (a folder of ablation runs made by hand: every record is counted)."""
    import json

    path = Path(ablations_dir) / "index.json"
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "run" in e for e in entries):
        return None
    return {e["run"]: e.get("config_hash") for e in entries}


def admit_points(runs: pd.DataFrame, point: str, index: dict[str, str] | None) -> tuple[pd.DataFrame, int]:
    """The records of one ablation point folder (``point``: its path relative to the ablations
    folder) that the index expects with their identity; and how many were left out."""
    if index is None or not len(runs):
        return runs, 0
    ok = [f"{point}/{r['run']}" in index and (r.get("provenance") or {}).get("config_hash") == index[f"{point}/{r['run']}"]
          for r in runs.to_dict("records")]
    kept = runs[ok]
    return kept, len(runs) - len(kept)

"""The pipeline's side of DVC: ``params.yaml`` (one ``fetch@<dataset>`` stage per registry
dataset, generated from the data registry) and the ``dvc.lock`` entry of a dataset (a
Snakemake param of its manifest job, so that a real data change reruns its training).

Example::

    >>> "omniglot_small" in registry_datasets() and "metadataset" not in registry_datasets()
    True
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trlearner.data.registry import get, names


def registry_datasets() -> list[str]:
    """Every dataset of the data registry that has data of its own (a DVC stage each): all
    entries except collections (``metadataset``, whose members are datasets themselves)."""
    return [n for n in names() if get(n).kind != "collection"]


def dvc_datasets(params_path: str = "params.yaml") -> list[str]:
    """Datasets with a DVC stage ``fetch@<dataset>`` (``datasets`` in params.yaml, dvc.yaml's foreach)."""
    p = Path(params_path)
    if not (p.exists() and p.with_name("dvc.yaml").exists()):
        return []
    from trlearner.util.yamlsafe import safe_load_file

    return list((safe_load_file(p) or {}).get("datasets") or [])


PARAMS_HEADER = """\
# Generated from the data registry (src/trlearner/data/registry.yaml) by
#   python -m trlearner.pipeline dvc-params
# Do not edit the list by hand: tests/test_dvc_all_datasets.py fails when it differs from the
# registry. dvc.yaml has one stage fetch@<dataset> per entry (docs/DATA.md, "DVC"). dvc.lock pins
# the datasets fetched so far; a dataset never fetched has no dvc.lock entry (`dvc status` lists
# it as "deleted"), so pull or repro by stage name: `dvc pull fetch@<dataset>`.
"""


def dvc_params_text() -> str:
    """The text of ``params.yaml``: :data:`PARAMS_HEADER` and every registry dataset."""
    return PARAMS_HEADER + "datasets:\n" + "".join(f"  - {n}\n" for n in registry_datasets())


def dvc_params(path: str = "params.yaml", check: bool = False) -> int:
    """Write ``params.yaml`` from the registry (``check``: only compare; 1 when it differs)."""
    p, want = Path(path), dvc_params_text()
    if p.exists() and p.read_text() == want:
        return 0
    if check:
        have = set(dvc_datasets(path)) if p.exists() else set()
        print(f"{path} is out of date with the data registry: missing {sorted(set(registry_datasets()) - have)}, "
              f"extra {sorted(have - set(registry_datasets()))}; run `python -m trlearner.pipeline dvc-params`",
              file=sys.stderr)
        return 1
    p.write_text(want)
    print(f"{path}: {len(registry_datasets())} datasets", file=sys.stderr)
    return 0


def dvc_lock_entry(dataset: str, lock_path: str = "dvc.lock") -> str:
    """The ``dvc.lock`` entry of ``fetch@<dataset>`` as a short hash ("" when absent): a
    Snakemake param, so a real data change (new lock entry) reruns the manifest and training,
    while a re-pull of the same data does not."""
    p = Path(lock_path)
    if not p.exists():
        return ""
    import hashlib

    from trlearner.util.yamlsafe import safe_load_file

    stages = (safe_load_file(p) or {}).get("stages", {})
    entry = stages.get(f"fetch@{dataset}")
    if entry is None:
        return ""
    outs = entry.get("outs", entry)
    return hashlib.sha256(json.dumps(outs, sort_keys=True, default=str).encode()).hexdigest()[:16]

"""pQSAR (ChEMBL) few-shot regression: one assay = one task, 1024-bit fingerprints -> pIC50.

The files are the MetaMix authors' processed set (linked from huaxiuyao/ATS README.md, "Drug";
read by huaxiuyao/MetaMix ``Drug/data.py`` + ``Drug/preprocess.py``), unpacked as one folder
``drug/``:

- ``ci9b00375_si_002.txt`` (supporting information of Martin et al. 2019): one measurement per
  line that contains ``CHEMBL``, space separated: ``<compound> <assay id> <pIC50 measured>
  <pIC50 predicted by pQSAR> <TRN|TST>``. The label is the **measured** pIC50 (3rd field); a
  number whose first character is a non-ASCII minus sign (the PDF export writes U+2010) is
  negative, as ``preprocess.read_4276_txt`` reads it. ``TRN`` rows are the assay's training
  measurements, every other flag is a test measurement (pQSAR's "realistic" split).
- ``ci9b00375_si_001.txt``: tab separated, a header line containing ``assay_id``; field 0 is
  the assay id and field 3 its family (``read_assay_type``).
- ``ci9b00375_si_003.txt``: compound SMILES (not needed: fingerprints are precomputed).
- ``compound_fp.npy``: ``np.save`` of a dict compound id -> 1024 0/1 values (Morgan radius 2,
  read as ``np.load(..., allow_pickle=True).item().get(compound)`` in MetaMix; here with the
  restricted unpickler of :mod:`trlearner.data.safe_pickle`, never the full one).
- ``drug_split_id_group<g>.pickle``: ``{"train": [...], "val": [...], "test": [...]}`` assay
  ids (4100 / 76 / 100 in MetaMix's loader); groups 1-4 are MetaMix's, 17 is ATS's.

Episodes: MetaMix adapts on an assay's ``TRN`` measurements and evaluates on its ``TST``
measurements (all of them, at most 2000 each). Tasks here have a fixed shape, so support =
``shots`` distinct ``TRN`` rows and query = ``queries`` distinct ``TST`` rows of the assay
(never a query from the training portion); assays with too few of either are left out
(``self.skipped``). Episode ``index`` of ``val``/``test`` is assay ``index % n_assays`` of the
split (sorted ids, so ``0..n-1`` visit every test assay once); in ``train`` the assay is drawn
by the episode's generator.

Meta-test score: :func:`r2_per_task` is MetaMix's ``pearson_score`` (squared Pearson
correlation of query targets and predictions, 0 where it is undefined); the reported summary
is its mean, median and the count of assays above 0.3 (``Drug/main.py::test``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from trlearner.data.episodes import as_indices, episode_rng, task_batch
from trlearner.data.errors import DataFetchError
from trlearner.data.fetch import require
from trlearner.data.safe_pickle import UnsafePickleError, load_npy, load_pickle

MEASUREMENTS = "ci9b00375_si_002.txt"
ASSAY_TYPES = "ci9b00375_si_001.txt"
FINGERPRINTS = "compound_fp.npy"
SPLIT_GLOB = "drug_split_id_group*.pickle"
CACHE_LAYOUT = 2  # assay rows TRN first (assay_n_trn.npy)


class PQSARSource:
    kind = "regression"
    n_out = 1

    def __init__(self, split: str, shots: int, queries: int, seed: int = 0, root: str | Path = "data",
                 group: int | str = 1, dataset: str = "pqsar"):
        cache = Path(require(dataset, root))
        meta = json.loads((cache / "assays.json").read_text())
        if meta.get("cache_layout") != CACHE_LAYOUT:
            raise ValueError(f"the {dataset} cache predates the TRN/TST layout: refetch it "
                             f"(python -m trlearner data fetch {dataset})")
        self.dataset, self.split, self.shots, self.queries, self.seed = dataset, split, shots, queries, seed
        self.bits = int(meta["bits"])
        self.input_shape = (self.bits,)
        self.fps = np.load(cache / "fingerprints_packed.npy", mmap_mode="r")
        self.compound = np.load(cache / "compound.npy", mmap_mode="r")
        self.y = np.load(cache / "pic50.npy", mmap_mode="r")
        offsets = np.load(cache / "assay_offsets.npy")
        n_trn = np.load(cache / "assay_n_trn.npy")
        groups = meta["splits"]
        if str(group) not in groups:
            raise ValueError(f"pQSAR group {group!r} not in the archive (have {sorted(groups, key=int)})")
        key = {"val": "val", "valid": "val"}.get(split, split)
        wanted = set(groups[str(group)][key])
        pos = {a: k for k, a in enumerate(meta["assays"])}
        # per assay: rows offsets[k] .. +n_trn[k] are TRN, the rest up to offsets[k+1] are TST
        self.assays, self.skipped = [], 0
        for a in sorted(wanted):
            k = pos.get(a)
            if k is None:
                self.skipped += 1
                continue
            start, trn = int(offsets[k]), int(n_trn[k])
            tst = int(offsets[k + 1]) - start - trn
            if trn < shots or tst < queries:
                self.skipped += 1
                continue
            self.assays.append((a, start, trn, tst))
        if not self.assays:
            raise ValueError(f"pQSAR {split}: no assay has >= {shots} TRN and >= {queries} TST measurements")

    def __len__(self) -> int:
        return len(self.assays)

    def batch(self, indices: Sequence[int]):
        idx = as_indices(indices)
        n = self.shots + self.queries
        rows = np.empty((len(idx), n), dtype=np.int64)
        ids = np.empty(len(idx), dtype=np.int64)
        for t, i in enumerate(idx):
            rng = episode_rng(self.dataset, self.split, self.seed, i)
            a = rng.integers(len(self.assays)) if self.split == "train" else i % len(self.assays)
            aid, start, trn, tst = self.assays[a]
            rows[t, :self.shots] = start + rng.choice(trn, self.shots, replace=False)
            rows[t, self.shots:] = start + trn + rng.choice(tst, self.queries, replace=False)
            ids[t] = aid
        x = np.unpackbits(self.fps[self.compound[rows.reshape(-1)]], axis=1)[:, :self.bits]
        x = torch.from_numpy(x.astype(np.float32)).view(len(idx), n, self.bits)
        y = torch.from_numpy(np.asarray(self.y[rows.reshape(-1)], dtype=np.float32)).view(len(idx), n, 1)
        s = self.shots
        return task_batch(x[:, :s], y[:, :s], x[:, s:], y[:, s:], {"assay_id": torch.from_numpy(ids)})


def r2_per_task(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MetaMix's per-assay "R^2": squared Pearson correlation of ``target`` and ``pred``
    (``Drug/utils/experiment.py::pearson_score``, ``np.corrcoef(y, p)[0, 1] ** 2``), over the
    query points; ``pred``, ``target`` [T, Q, 1] -> [T]. Where a correlation is undefined
    (constant predictions or targets) the value is 0, as MetaMix's test loop scores a NaN."""
    p = pred.squeeze(-1).double()
    t = target.squeeze(-1).double()
    p = p - p.mean(1, keepdim=True)
    t = t - t.mean(1, keepdim=True)
    cov = (p * t).sum(1)
    var = (p * p).sum(1) * (t * t).sum(1)
    r2 = torch.where(var > 0, cov * cov / var.clamp_min(1e-300), torch.zeros_like(var))
    return r2.to(pred.dtype)


def determination_per_task(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination ``1 - SS_res / SS_tot`` per task: [T, Q, 1] -> [T]. Not
    MetaMix's score (see :func:`r2_per_task`, which ``trlearner.engine.algorithms.base.r2_metric``
    computes); kept to compare the two."""
    t = target.squeeze(-1)
    ss_res = ((pred.squeeze(-1) - t) ** 2).sum(1)
    ss_tot = ((t - t.mean(1, keepdim=True)) ** 2).sum(1)
    return 1 - ss_res / ss_tot.clamp_min(1e-12)


# --------------------------------------------------------------------------- converter

def _number(field: str) -> float:
    """A pIC50 field of si_002: a float, or a float behind a non-ASCII minus sign."""
    try:
        return float(field)
    except ValueError:
        return -float(field[1:])


def _find(extracted: Path, name: str, dataset: str) -> list[Path]:
    hits = sorted(extracted.rglob(name))
    if not hits:
        raise DataFetchError(f"{name} is missing from the extracted archive", dataset=dataset,
                             todo="use the MetaMix/ATS processed drug archive (a drug/ folder with "
                                  "ci9b00375_si_001..003.txt, compound_fp.npy, drug_split_id_group*.pickle; "
                                  "see docs/DATA.md)")
    return hits


def convert_pqsar(dataset: str, extracted: Path, cache: Path, bits: int = 1024) -> None:
    """The processed archive (layout in the module docstring) -> the cache read by
    :class:`PQSARSource`: packed fingerprints, measurements grouped by assay (TRN rows first),
    split per group, assay families."""
    fp_path = _find(extracted, FINGERPRINTS, dataset)[0]
    try:
        fp = load_npy(fp_path)
        fp = fp.item() if fp.dtype == object and fp.shape == () else None
    except UnsafePickleError as exc:
        raise DataFetchError(f"refused: {exc}", file=FINGERPRINTS, dataset=dataset,
                             todo="the archive is not the MetaMix drug archive (its pickle names code to run): "
                                  "delete data/downloads/pqsar and fetch from a trusted source") from exc
    except Exception as exc:
        raise DataFetchError(f"cannot be read as a pickled numpy dict ({exc})", file=FINGERPRINTS,
                             dataset=dataset, todo="the archive is corrupt: delete data/downloads/pqsar and refetch") from exc
    if not isinstance(fp, dict):
        raise DataFetchError("is not a dict compound -> fingerprint saved with np.save", file=FINGERPRINTS,
                             dataset=dataset, todo="use the MetaMix processed drug archive")
    compounds = sorted(fp)
    cindex = {c: i for i, c in enumerate(compounds)}
    fps = np.zeros((len(compounds), bits), dtype=np.uint8)
    for c, i in cindex.items():
        v = np.asarray(fp[c]).reshape(-1)
        if v.size != bits or not ((v == 0) | (v == 1)).all():
            raise DataFetchError(f"fingerprint of {c} has {v.size} values (expected {bits} zeros and ones)",
                                 file=FINGERPRINTS, dataset=dataset, todo="use the MetaMix processed drug archive")
        fps[i] = v
    del fp

    rows: dict[int, tuple[list, list]] = {}  # assay -> (TRN rows, TST rows) of (compound, pIC50)
    no_fp: set[str] = set()
    n_lines = no_fp_rows = 0
    with open(_find(extracted, MEASUREMENTS, dataset)[0], encoding="utf-8", errors="ignore") as fh:
        for line in fh:
            if "CHEMBL" not in line:
                continue
            s = line.split()
            try:
                comp, assay, y, flag = s[0], int(s[1]), _number(s[2]), s[4]
                _number(s[3])
            except (IndexError, ValueError) as exc:
                raise DataFetchError(f"line {line.strip()[:80]!r} is not '<compound> <assay> <pIC50> <pIC50 pred> "
                                     f"<TRN|TST>' ({exc})", file=MEASUREMENTS, dataset=dataset,
                                     todo="use the MetaMix processed drug archive") from exc
            n_lines += 1
            if comp not in cindex:  # MetaMix would put None (NaN) there; left out and counted here
                no_fp.add(comp)
                no_fp_rows += 1
                continue
            rows.setdefault(assay, ([], []))[0 if flag == "TRN" else 1].append((cindex[comp], y))
    if not rows:
        raise DataFetchError("holds no measurement line", file=MEASUREMENTS, dataset=dataset,
                             todo="use the MetaMix processed drug archive")

    families: dict[int, str] = {}
    with open(_find(extracted, ASSAY_TYPES, dataset)[0], encoding="utf-8", errors="ignore") as fh:
        for line in fh:
            line = line.strip()
            if not line or "assay_id" in line:
                continue
            f = line.split("\t")
            if len(f) < 4 or not f[0].strip().isdigit():
                raise DataFetchError(f"line {line[:80]!r} is not tab separated '<assay_id> ... <family> ...'",
                                     file=ASSAY_TYPES, dataset=dataset, todo="use the MetaMix processed drug archive")
            families[int(f[0])] = f[3]

    assays = sorted(rows)
    offsets = np.zeros(len(assays) + 1, dtype=np.int64)
    n_trn = np.zeros(len(assays), dtype=np.int64)
    comp, ys = [], []
    for k, a in enumerate(assays):
        trn, tst = rows[a]
        n_trn[k] = len(trn)
        for c, y in trn + tst:
            comp.append(c)
            ys.append(y)
        offsets[k + 1] = len(comp)

    splits = {}
    for p in _find(extracted, SPLIT_GLOB, dataset):
        g = p.stem.rsplit("group", 1)[1]
        try:
            d = load_pickle(p, encoding="latin1")
            splits[g] = {("val" if k == "valid" else k): sorted(int(a) for a in v) for k, v in d.items()}
        except UnsafePickleError as exc:
            raise DataFetchError(f"refused: {exc}", file=p.name, dataset=dataset,
                                 todo="the archive is not the MetaMix drug archive (its pickle names code to "
                                      "run): delete data/downloads/pqsar and fetch from a trusted source") from exc
        except Exception as exc:
            raise DataFetchError(f"is not a pickled dict split -> assay ids ({exc})", file=p.name, dataset=dataset,
                                 todo="use the MetaMix processed drug archive") from exc
        missing = {"train", "val", "test"} - set(splits[g])
        if missing:
            raise DataFetchError(f"has no {sorted(missing)} assay list (keys: {sorted(d)})", file=p.name,
                                 dataset=dataset, todo="use the MetaMix processed drug archive")

    np.save(cache / "fingerprints_packed.npy", np.packbits(fps, axis=1))
    np.save(cache / "compound.npy", np.asarray(comp, dtype=np.int64))
    np.save(cache / "pic50.npy", np.asarray(ys, dtype=np.float32))
    np.save(cache / "assay_offsets.npy", offsets)
    np.save(cache / "assay_n_trn.npy", n_trn)
    (cache / "assays.json").write_text(json.dumps({
        "cache_layout": CACHE_LAYOUT,
        "layout": "rows of assay k are offsets[k]:offsets[k+1], the first assay_n_trn[k] of them TRN, the "
                  "rest TST; pic50 = measured pIC50 (3rd field of si_002)",
        "assays": assays, "bits": bits, "splits": splits,
        "families": {str(a): families[a] for a in assays if a in families},
        "measurements": n_lines, "measurements_without_fingerprint": no_fp_rows,
        "compounds_without_fingerprint": sorted(no_fp)[:20],
    }))

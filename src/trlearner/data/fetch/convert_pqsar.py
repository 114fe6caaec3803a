"""pQSAR (ChEMBL): the MetaMix authors' processed archive -> the cache of
:class:`trlearner.data.sources.drug.PQSARSource`.

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
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trlearner.data.errors import DataFetchError
from trlearner.data.safe_pickle import UnsafePickleError, load_npy, load_pickle
from trlearner.data.sources.drug import CACHE_LAYOUT

MEASUREMENTS = "ci9b00375_si_002.txt"
ASSAY_TYPES = "ci9b00375_si_001.txt"
FINGERPRINTS = "compound_fp.npy"
SPLIT_GLOB = "drug_split_id_group*.pickle"


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

"""The runs behind the paper's analyses (TRLEARNER.md section 4), as data.

``analysis_runs(scale)`` lists every training run the five analyses need: one dict per run,
``{"analysis", "run_dir", "settings", "trlearner"}`` with ``settings`` the run's settings (the
names of :class:`~trlearner.run.config.RunConfig` fields) and ``trlearner`` those of its
:class:`~trlearner.method.trconfig.TRConfig` (None for a run without TRLearner);
:func:`run_config` resolves one to the config its job trains. ``analysis_outputs(name)`` lists the files ``trlearner analysis <name>`` writes.
The pipeline trains ``run_dir`` with that config and then calls
``trlearner analysis <name> --runs results/analyses/<name> --out reports/analyses/<name>``.

``scale`` (config ``analyses:`` block) -- every key optional, defaults in ``DEFAULT_SCALE``;
a sub-dict under an analysis name overrides the top-level keys for that analysis only::

    >>> runs = analysis_runs({"iterations": 200, "seeds": 1, "depth": {"iterations": 100}})
    >>> sorted({r["analysis"] for r in runs}) == sorted(ANALYSES)
    True
    >>> r = next(r for r in runs if r["run_dir"].endswith("depth/trlearner/steps3/seed0"))
    >>> r["settings"]["iterations"], r["trlearner"]["lam"]
    (100, 0.1)
"""

from __future__ import annotations

from trlearner.method.trconfig import TRConfig

ANALYSES = ("motivation", "depth", "relations", "tradeoff", "sensitivity")
ROOT = "results/analyses"

DEFAULT_SCALE = {
    "dataset": "sinusoid",       # regression family for analyses 2-5
    "shots": 5,
    "seeds": 2,                  # int n -> seeds 0..n-1, or an explicit list
    "iterations": 2000,
    "test_tasks": 200,
    "eval_every": 100,           # motivation curves: a (train, val) point every N iterations
    "eval_tasks": 100,
    "preset": "default",
    "lam": TRConfig.lam,         # TRLearner defaults where an analysis does not vary them
    "heads": TRConfig.heads,
    "motivation_families": ["motivation_d1", "motivation_d2", "motivation_d3", "motivation_d4"],
    "depth_steps": [1, 2, 3, 4, 5],
    "relation_variants": ["fixed_cosine", "one_head", "k_heads"],
    "relation_k": 4,
    "regularizers": {"weight_decay": 1e-4, "input_noise": 0.1, "meta_aug": 1.0},
    "lams": [0.0, 0.01, 0.1, 0.5, 1.0],
    "heads_grid": [1, 2, 4, 8],
}

# The files every analysis writes into its output folder.
_COMMON = ["{n}.png", "{n}.pdf", "{n}.csv", "{n}.caption.md", "summary.json"]


def analysis_outputs(name: str) -> list[str]:
    """File names ``trlearner analysis <name>`` writes into ``--out``."""
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; choose one of: {', '.join(ANALYSES)}")
    extra = {"relations": ["relations_matrix.csv"], "depth": ["depth_by_method.csv"],
             "sensitivity": ["sensitivity_lambda_by_method.csv", "sensitivity_heads_by_method.csv"]}.get(name, [])
    return [f.format(n=name) for f in _COMMON] + extra


def _seeds(value) -> list[int]:
    return list(range(int(value))) if isinstance(value, int) else [int(s) for s in value]


def _scale(scale: dict | None, name: str) -> dict:
    s = dict(DEFAULT_SCALE)
    s.update({k: v for k, v in (scale or {}).items() if k not in ANALYSES})
    s.update((scale or {}).get(name) or {})
    return s


def _num(x) -> str:
    """A number as a short, path-safe string: 0.1 -> '0.1', 1.0 -> '1', 1e-4 -> '0.0001'."""
    return format(float(x), "g") if float(x) >= 1e-3 or float(x) == 0 else format(float(x), ".6f").rstrip("0")


def _common(s: dict, seed: int, dataset: str | None = None, **extra) -> dict:
    return {"dataset": dataset or s["dataset"], "algorithm": "maml", "shots": int(s["shots"]), "seed": seed,
            "iterations": int(s["iterations"]), "test_tasks": int(s["test_tasks"]), "preset": str(s["preset"]),
            **extra}


def _trl(lam, heads, fixed: bool = False) -> dict:
    return {"lam": float(lam), "heads": int(heads), "learn_omega": not fixed}


def _motivation(s):
    for seed in _seeds(s["seeds"]):
        for fam in s["motivation_families"]:
            for variant in ("baseline", "trlearner"):
                settings = _common(s, seed, fam, inner_steps=1, test_steps=1, eval_every=int(s["eval_every"]),
                                   eval_tasks=int(s["eval_tasks"]))
                yield f"{fam}/{variant}/seed{seed}", settings, (_trl(s["lam"], s["heads"])
                                                                 if variant == "trlearner" else None)


def _depth(s):
    for seed in _seeds(s["seeds"]):
        for k in s["depth_steps"]:
            for variant in ("baseline", "trlearner"):
                yield (f"{variant}/steps{k}/seed{seed}", _common(s, seed, inner_steps=int(k), test_steps=int(k)),
                       _trl(s["lam"], s["heads"]) if variant == "trlearner" else None)


def _relations(s):
    variants = {"fixed_cosine": _trl(s["lam"], 1, fixed=True), "one_head": _trl(s["lam"], 1),
                "k_heads": _trl(s["lam"], s["relation_k"]), "baseline": None}
    for seed in _seeds(s["seeds"]):
        for v in ["baseline", *s["relation_variants"]]:
            yield f"{v}/seed{seed}", _common(s, seed), variants[v]


def _tradeoff(s):
    for seed in _seeds(s["seeds"]):
        yield f"baseline/seed{seed}", _common(s, seed), None
        yield f"trlearner/seed{seed}", _common(s, seed), _trl(s["lam"], s["heads"])
        for reg, strength in s["regularizers"].items():
            yield f"{reg}/seed{seed}", _common(s, seed, regularizer=reg, reg_strength=float(strength)), None


def _sensitivity(s):
    cells = [(lam, s["heads"]) for lam in s["lams"]] + [(s["lam"], k) for k in s["heads_grid"]]
    cells = list(dict.fromkeys((float(lam), int(k)) for lam, k in cells))
    for seed in _seeds(s["seeds"]):
        yield f"baseline/seed{seed}", _common(s, seed), None
        for lam, k in cells:
            yield f"lam{_num(lam)}_heads{k}/seed{seed}", _common(s, seed), _trl(lam, k)


_PLANS = {"motivation": _motivation, "depth": _depth, "relations": _relations,
          "tradeoff": _tradeoff, "sensitivity": _sensitivity}


def analysis_runs(scale: dict | None = None, analyses=ANALYSES) -> list[dict]:
    """Every run of ``analyses``: ``[{"analysis", "run_dir", "settings", "trlearner"}]`` (see
    module doc).

    Runs are ordered seed by seed within an analysis, so a partial pipeline still covers
    every cell of a figure with at least one seed.
    """
    runs = []
    for name in analyses:
        s = _scale(scale, name)
        for rel, settings, trl in _PLANS[name](s):
            runs.append({"analysis": name, "run_dir": f"{ROOT}/{name}/{rel}", "settings": settings, "trlearner": trl})
    return runs


def run_config(entry: dict, device: str = "cpu", data_root: str = "data"):
    """The resolved :class:`~trlearner.run.config.RunConfig` of one :func:`analysis_runs` entry
    (what its pipeline job trains; imports torch).

    Raises:
        ValueError: a setting the run cannot have.
    """
    from trlearner.run.config import resolve_config

    trl = entry["trlearner"]
    return resolve_config(**entry["settings"], device=device, data_root=data_root,
                          trlearner=None if trl is None else TRConfig(**trl))

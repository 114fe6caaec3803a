"""A run's record: ``metrics.json``, ``provenance.json`` and ``relation.pt``, from its config and
trained meta-parameters; the end of every run, single or stacked.

- :func:`write_results`: evaluates on the test episodes (:mod:`trlearner.run.evaluation`) and
  writes the three files; :func:`diverged_metrics` is the record of a run whose loss became
  NaN or infinite (``status="diverged"``).
- ``metrics.json`` holds the run's settings as recorded (``protocol``: the names the report and
  docs/CONTRACTS.md use), the head number (``mean``, ``ci95`` = 1.96 sd / sqrt(n), ``per_task``)
  after ``test_steps`` inner steps, the curve over ``0 .. curve_steps`` and the training
  history; a multi-source run adds each source's numbers and the overall/OOD summaries.
- ``provenance.json`` adds what the data was (:func:`data_record`: the fetched dataset's
  manifest, or the generator's identity).

The file formats (standard JSON, atomic writes, provenance) are :mod:`trlearner.run.results`.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from trlearner.run.config import resolve_config
    >>> from trlearner.run.evaluation import run_source
    >>> from trlearner.run.model import build, init_meta
    >>> cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, test_tasks=4)
    >>> algo, trl = build(cfg, run_source(cfg, "train", 0, None))
    >>> m = write_results(cfg, algo, trl, init_meta(cfg, algo, trl), Path(tempfile.mkdtemp()), 0.0, [],
    ...                   None, None, "cpu")
    >>> m["status"], m["n_tasks"], len(m["per_task"])
    ('ok', 4, 4)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from trlearner.method.relation import relation_matrix
from trlearner.run.config import RunConfig, is_reduced
from trlearner.run.evaluation import evaluate, evaluate_sources, mean_of_sources, run_source
from trlearner.run.results import atomic_torch_save, atomic_write_json, provenance, summarise, write_metrics


def write_results(cfg: RunConfig, algo, trl, meta, out: Path, wall: float, history: list, relation, rel_mean,
                  device: str, extra_provenance: dict | None = None) -> dict:
    """Evaluate trained meta-parameters and write a run's results into ``out``.

    The end of every run, single (:func:`train`) or stacked (:mod:`trlearner.run.stacked`): the
    test curve, ``relation.pt`` (TRLearner), ``provenance.json`` (plus ``extra_provenance``)
    and ``metrics.json``.

    Arguments:
        cfg: the run's config. algo, trl: from :func:`trlearner.run.model.build`. meta: the trained parameter dict.
        out: the run folder. wall: training seconds. history: :func:`trlearner.run.evaluation.eval_point` records.
        relation, rel_mean: the last and running-mean relation matrices (TRLearner) or None.
        device: where to evaluate. extra_provenance: keys added to ``provenance.json``.

    Returns:
        The metrics dict as written (standard JSON: NaN -> null, reason in ``nulls``).
    """
    if cfg.multi_source:
        metrics = _multi_source_metrics(cfg, algo, evaluate_sources(cfg, algo, meta, device), wall, history)
        ep_hash = metrics["episodes_hash"]
    else:
        curve, ep_hash = evaluate(cfg, algo, meta, "test", cfg.test_tasks, device)
        metrics = _metrics(cfg, algo, curve, ep_hash, wall, history)
    if trl is not None:
        _save_relations(out, cfg, trl, meta, relation, rel_mean, device)
    prov = provenance(cfg.identity(), device, dataset_hash=ep_hash)
    prov["data"] = {"train": data_record(cfg.train_dataset or cfg.dataset, cfg.data_root),
                    "test": data_record(cfg.dataset, cfg.data_root)}
    prov.update(extra_provenance or {})
    atomic_write_json(out / "provenance.json", prov)
    return write_metrics(out / "metrics.json", metrics)  # standard JSON: NaN -> null, reason in "nulls"


def data_record(dataset: str, root: str = "data") -> dict:
    """The identity of the data a run read: the fetched dataset's manifest (content hash and
    file sha256s, ``trlearner.data.fetch.manifest``), or the generator's identity for datasets
    made by code (no manifest)."""
    from trlearner.data.fetch import manifest
    from trlearner.data.registry import get

    try:
        spec = get(dataset)
    except KeyError:  # task families defined in code only (e.g. motivation_d1)
        return {"dataset": dataset, "kind": "generated"}
    if spec.kind == "generated":
        return {"dataset": dataset, "kind": "generated", "identity": spec.identity()}
    return {"kind": spec.kind, **manifest(dataset, root)}


def _base_metrics(cfg: RunConfig, algo) -> dict:
    return {
        "dataset": cfg.dataset, "algorithm": cfg.algorithm, "variant": cfg.variant,
        "shots": cfg.shots, "ways": cfg.ways, "seed": cfg.seed,
        "metric": algo.metric_name,
        "unit": "percent" if algo.metric_name == "accuracy" else None,
        "higher_is_better": algo.higher_is_better,
        "protocol": {
            "iterations": cfg.iterations, "meta_batch": cfg.meta_batch,
            "inner_steps_train": cfg.inner_steps, "inner_lr_train": cfg.inner_lr,
            "inner_steps_test": cfg.test_steps, "inner_lr_test": cfg.test_lr,
            "outer_lr": cfg.outer_lr, "first_order": cfg.first_order, "backbone": cfg.backbone,
            "filters": cfg.filters, "bn_mode": "transductive" if cfg.backbone != "mlp" else "none",
            "test_tasks": cfg.test_tasks, "queries_test": cfg.test_queries,
            "ci": "1.96*sd/sqrt(n_tasks)", "reduced": is_reduced(cfg), "preset": cfg.preset,
            "backend": cfg.backend,
            # unset train queries: the source's default (regression: the shots; images: 15)
            "queries_train": cfg.train_queries or (cfg.shots if algo.kind == "regression" else 15),
            "ways_train": cfg.train_ways or cfg.ways,
            "bn_inner_loop": bool(cfg.adapt_bn), "init": cfg.init, "downsample": cfg.downsample,
            "grad_clip": cfg.grad_clip or None,
            **({"reading": cfg.reading} if cfg.reading else {}),
            **({"metasgd_lr_init": cfg.metasgd_lr_init} if cfg.algorithm == "metasgd" else {}),
            **({"bn_padding": "masked (padded entries excluded from the batch statistics)"}
               if cfg.dataset.startswith("metadataset") else {}),
            **({"metadataset": _multi_source_protocol(cfg)} if cfg.multi_source else {}),
            **({"train_dataset": cfg.train_dataset, "test_dataset": cfg.dataset,
                "cross_domain": f"meta-train on {cfg.train_dataset} train classes, meta-test on "
                                f"{cfg.dataset} test classes"} if cfg.train_dataset else {}),
        },
        "trlearner": None if cfg.trlearner is None else cfg.trlearner.to_dict(),
        "regularizer": {"name": cfg.regularizer, "strength": cfg.reg_strength},
    }


def _metrics(cfg, algo, curve, ep_hash, wall, history) -> dict:
    per_task = curve[:, cfg.test_steps]
    head = summarise(per_task)
    steps = list(range(curve.shape[1]))
    stats = [summarise(curve[:, s]) for s in steps]
    return {
        **_base_metrics(cfg, algo),
        "mean": head["mean"], "ci95": head["ci95"], "n_tasks": head["n"],
        "per_task": [round(float(v), 6) for v in per_task],
        "curve": {"steps": steps, "mean": [s["mean"] for s in stats], "ci95": [s["ci95"] for s in stats]},
        "history": history, "episodes_hash": ep_hash, "status": "ok", "wall_time_s": round(wall, 2),
    }


def _multi_source_protocol(cfg: RunConfig) -> dict:
    return {
        "train_sources": list(cfg.train_sources), "heldout_sources": list(cfg.heldout_sources),
        "train_episodes": "each task of a meta-batch from a train source drawn uniformly "
                          "(trlearner.data.sources.metadataset_multi)",
        "validation": "the train sources' validation classes",
        "test_episodes_per_source": cfg.test_tasks,
        "overall": "mean over all sources of the per-source accuracy",
        "ood": "mean over the held-out sources of the per-source accuracy",
        "ci_of_means": "1.96*sqrt(sum_k sd_k^2/n_k)/K over the K sources averaged",
        "sources_chosen_by": "this project (the paper does not name its held-out sources)",
    }


def _multi_source_metrics(cfg: RunConfig, algo, per_source: dict, wall, history) -> dict:
    """metrics.json of a multi-source run: ``mean``/``ci95``/``curve`` are the *overall*
    numbers (mean over all sources; ``per_task`` = every source's tasks, source by source, so
    its mean is the overall mean when all sources have the same number of test episodes);
    ``sources`` holds each source's numbers and ``summary`` the overall and OOD means."""
    s = cfg.test_steps
    sources, digest = {}, hashlib.sha256()
    for name, (curve, h) in per_source.items():
        head = summarise(curve[:, s])
        sources[name] = {"role": "heldout" if name in cfg.heldout_sources else "train", "mean": head["mean"],
                         "ci95": head["ci95"], "n_tasks": head["n"],
                         "per_task": [round(float(v), 6) for v in curve[:, s]],
                         "curve_mean": [float(v) for v in curve.double().mean(0)], "episodes_hash": h}
        digest.update(h.encode())

    def summary(names):
        mean, ci = mean_of_sources([per_source[n][0] for n in names])
        return {"mean": float(mean[s]), "ci95": float(ci[s]), "sources": list(names),
                "n_tasks": sum(sources[n]["n_tasks"] for n in names),
                "curve": {"mean": [float(v) for v in mean], "ci95": [float(v) for v in ci]}}

    groups = {"overall": cfg.train_sources + cfg.heldout_sources, "ood": cfg.heldout_sources,
              "in_domain": cfg.train_sources}
    summaries = {k: summary(v) for k, v in groups.items() if v}
    overall = summaries["overall"]
    per_task = [v for name in per_source for v in sources[name]["per_task"]]
    return {
        **_base_metrics(cfg, algo),
        "mean": overall["mean"], "ci95": overall["ci95"], "n_tasks": overall["n_tasks"], "per_task": per_task,
        "curve": {"steps": list(range(len(overall["curve"]["mean"]))), **overall["curve"]},
        "sources": sources, "summary": {k: {kk: vv for kk, vv in v.items() if kk != "curve"}
                                        for k, v in summaries.items()},
        "history": history, "episodes_hash": digest.hexdigest()[:16], "status": "ok",
        "wall_time_s": round(wall, 2),
    }


def diverged_metrics(cfg, algo, it, msg) -> dict:
    """The ``metrics.json`` of a run whose loss became NaN or infinite at iteration ``it``:
    its settings, ``status="diverged"``, ``message`` ``msg`` and no numbers."""
    return {**_base_metrics(cfg, algo), "mean": None, "ci95": None, "n_tasks": 0, "per_task": [],
            "curve": None, "episodes_hash": None, "status": "diverged",
            "diverged_at_iteration": it, "message": msg, "wall_time_s": None}


@torch.no_grad()
def _save_relations(out: Path, cfg, trl, meta, last, running, device):
    """Relation matrices for the heatmaps: the last meta-batch's, the running mean over
    batches, and M on 25 fixed validation tasks ordered by a task parameter."""
    if cfg.train_ways and cfg.train_ways != cfg.ways:  # TRLearner is built for the training ways;
        src = run_source(cfg, "val", 0, 1, ways=cfg.train_ways)  # the probe reads supports only
    else:
        src = run_source(cfg, "val", 0, cfg.test_queries)
    b = src.batch(range(25))
    order_key = "amplitude" if "amplitude" in b.info else ("omega" if "omega" in b.info else None)
    order = torch.argsort(b.info[order_key]) if order_key else torch.arange(25)
    xs, ys = b.xs[order].to(device), b.ys[order].to(device)
    gen = torch.Generator().manual_seed(0)
    r, _, _ = trl.representations(meta, xs, ys, gen)
    probe = relation_matrix(meta["trl.omega"], r).cpu()
    info = {k: v[order] for k, v in b.info.items() if torch.is_tensor(v)}
    atomic_torch_save(out / "relation.pt", {"last_batch": None if last is None else last.cpu(),
                                            "running_mean": running, "probe": probe,
                                            "probe_info": info, "probe_order_by": order_key})


def load_metrics(path) -> dict:
    """The ``metrics.json`` at ``path``, as written."""
    with open(path) as f:
        return json.load(f)

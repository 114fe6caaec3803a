"""Multi-source Meta-Dataset (the paper's OOD experiment): the source draw, a tiny end-to-end
run on fixture sources (overall and OOD are the means of the per-source numbers), and the
report cells it becomes."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fixtures_data import fetch_fixture
from trlearner.data.registry import override
from trlearner.data.sources.dispatch import make_source
from trlearner.method.relation import TRConfig
from trlearner.run.config import resolve_config
from trlearner.run.train import train

# fixture sources (tests/fixtures_data.py): vgg_flower (5/5/5 classes), dtd (6 train, 6 test
# classes), traffic_sign (test only, 6 classes)
TRAIN, HELDOUT = ("vgg_flower", "dtd"), ("traffic_sign",)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """(data root, registry specs) of the three fixture sources, fetched once."""
    tmp = tmp_path_factory.mktemp("md_multi")
    specs = []
    for name in TRAIN + HELDOUT:
        specs.append(fetch_fixture(f"metadataset_{name}", tmp)[1])
    return tmp / "data", specs


def _source(sources, split="train", seed=0):
    root, specs = sources
    return make_source("metadataset", split, 1, seed=seed, root=str(root), train_sources=TRAIN,
                       heldout_sources=HELDOUT)


def test_each_task_comes_from_a_uniformly_drawn_train_source(sources):
    root, specs = sources
    with override(*specs):
        src = _source(sources)
        b = src.batch(range(40))
        again = src.batch([7, 3])
    assert src.padded and src.sources == TRAIN and src.n_out == 50
    drawn = b.info["source"].tolist()
    assert set(drawn) == {0, 1} and 8 <= drawn.count(0) <= 32  # both sources, roughly half each
    # pure function of (split, seed, index): the same episode whatever batch it is in
    for pos, i in enumerate([7, 3]):
        assert again.info["source"][pos] == b.info["source"][i]
        n = int(again.info["support_mask"][pos].sum())
        assert n == int(b.info["support_mask"][i].sum())
        assert torch.equal(again.xs[pos, :n], b.xs[i, :n]) and torch.equal(again.ys[pos], b.ys[i, :again.ys.shape[1]])
    # padding: label -1 and NaN inputs (kept out of batch norm), real entries finite
    assert torch.isnan(b.xs[~b.info["support_mask"]]).all() and torch.isfinite(b.xs[b.info["support_mask"]]).all()
    assert ((b.ys >= 0) == b.info["support_mask"]).all()


def test_test_split_draws_from_every_source_and_bad_lists_are_refused(sources):
    root, specs = sources
    with override(*specs):
        assert _source(sources, "test").sources == TRAIN + HELDOUT
        with pytest.raises(ValueError, match="both train and held-out"):
            make_source("metadataset", "train", 1, root=str(root), train_sources=TRAIN,
                        heldout_sources=("dtd",))
        with pytest.raises(ValueError, match="test classes only"):
            make_source("metadataset", "train", 1, root=str(root), train_sources=("traffic_sign",),
                        heldout_sources=())
    with pytest.raises(ValueError, match="unknown Meta-Dataset source"):
        resolve_config(dataset="metadataset", algorithm="maml", shots=1, train_sources=("imagenet",))
    with pytest.raises(ValueError, match="apply to the multi-source dataset 'metadataset' only"):
        resolve_config(dataset="omniglot", algorithm="maml", shots=1, ways=5, train_sources=TRAIN)
    # TRLearner: variable ways need the order-invariant class representation
    assert resolve_config(dataset="metadataset", algorithm="maml", shots=1,
                          trlearner=TRConfig()).trlearner.class_repr == "mean"


def test_validation_uses_the_train_sources_validation_classes(sources):
    root, specs = sources
    with override(*specs):
        val = make_source("metadataset", "val", 1, root=str(root), train_sources=("vgg_flower",),
                          heldout_sources=HELDOUT)
        b = val.batch(range(3))
        assert val.sources == ("vgg_flower",) and torch.isfinite(b.xs[b.info["support_mask"]]).all()
        # the dtd fixture has no validation classes: said clearly, not skipped silently
        with pytest.raises(ValueError, match="'dtd' has no usable 'val' split"):
            _source(sources, "val")


def test_protocol_defaults_are_the_documented_sources():
    cfg = resolve_config(dataset="metadataset", algorithm="maml", shots=1)
    assert cfg.train_sources == ("ilsvrc_2012", "omniglot", "aircraft", "cu_birds", "dtd", "quickdraw", "fungi",
                                 "vgg_flower")
    assert cfg.heldout_sources == ("traffic_sign", "mscoco") and cfg.test_tasks == 600
    # other datasets keep their identity (and so their checkpoints' config hash)
    assert "train_sources" not in resolve_config(dataset="sinusoid", algorithm="maml", shots=5).identity()


@pytest.mark.parametrize("algorithm", ["maml", "protonet"])
def test_multi_source_run_end_to_end(sources, tmp_path, algorithm):
    root, specs = sources
    cfg = resolve_config(dataset="metadataset", algorithm=algorithm, shots=1, iterations=2, meta_batch=3,
                         test_tasks=4, filters=4, inner_steps=1, test_steps=1, curve_steps=1,
                         data_root=str(root), device="cpu", train_sources=TRAIN, heldout_sources=HELDOUT)
    with override(*specs):
        m = train(cfg, tmp_path / "run", progress=False)
    assert m["status"] == "ok" and m["dataset"] == "metadataset" and m["metric"] == "accuracy"
    src = m["sources"]
    assert list(src) == list(TRAIN + HELDOUT)
    assert [src[n]["role"] for n in src] == ["train", "train", "heldout"]
    for n in src:
        assert src[n]["n_tasks"] == 4 and len(src[n]["per_task"]) == 4
        assert src[n]["mean"] == pytest.approx(sum(src[n]["per_task"]) / 4, abs=1e-4)
        assert all(0.0 <= v <= 100.0 for v in src[n]["per_task"])
    # overall / OOD: the means of the per-source numbers, with the CI of a mean of independent means
    overall, ood = m["summary"]["overall"], m["summary"]["ood"]
    means = [src[n]["mean"] for n in src]
    assert overall["mean"] == pytest.approx(sum(means) / 3, abs=1e-9)
    assert ood["mean"] == pytest.approx(src["traffic_sign"]["mean"], abs=1e-9)
    assert m["summary"]["in_domain"]["mean"] == pytest.approx((means[0] + means[1]) / 2, abs=1e-9)
    sd2n = [(src[n]["ci95"] / 1.96) ** 2 for n in src]
    assert overall["ci95"] == pytest.approx(1.96 * math.sqrt(sum(sd2n)) / 3, rel=1e-4)
    assert ood["ci95"] == pytest.approx(src["traffic_sign"]["ci95"], rel=1e-4)
    assert m["mean"] == pytest.approx(overall["mean"]) and m["n_tasks"] == 12
    assert sum(m["per_task"]) / 12 == pytest.approx(overall["mean"], abs=1e-4)
    proto = m["protocol"]
    assert proto["metadataset"]["train_sources"] == list(TRAIN)
    assert proto["metadataset"]["heldout_sources"] == list(HELDOUT)
    assert proto["metadataset"]["test_episodes_per_source"] == 4 and proto["bn_padding"].startswith("masked")
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["summary"]["ood"]["sources"] == list(HELDOUT)

    # the report: overall and OOD cells of dataset "metadataset" (the paper's keys), one per source
    from trlearner.run.protocols import METADATASET_PER_SOURCE
    from trlearner.report.reference import Reference
    from trlearner.run.records.scan import load_runs
    from trlearner.report.tables import build_tables

    results = tmp_path / "results"
    dest = results / "metadataset" / "varway" / algorithm / "baseline" / "seed0"
    dest.mkdir(parents=True)
    (dest / "metrics.json").write_text((tmp_path / "run" / "metrics.json").read_text())
    runs = load_runs(results)
    cells = {(r.dataset, r.setting): r for r in runs.itertuples()}
    assert cells[("metadataset", "overall")].mean == pytest.approx(overall["mean"])
    assert cells[("metadataset", "ood")].mean == pytest.approx(ood["mean"])
    assert cells[(METADATASET_PER_SOURCE, "traffic_sign (held out)")].mean == pytest.approx(src["traffic_sign"]["mean"])
    assert len(cells[("metadataset", "overall")].per_task) == 12
    tables = build_tables(runs, expected=None, reference=Reference.load())
    md = next(t for t in tables if t.family == "meta_dataset")
    frame = md.sections[0].frame
    assert list(frame.columns.get_level_values(0).unique()) == ["overall", "ood"]
    if algorithm == "maml":
        assert frame.loc["MAML", ("overall", "paper")].startswith("24.5")
        assert frame.loc["MAML", ("ood", "paper")].startswith("19.2")
        assert frame.loc["MAML + TRLearner", ("ood", "paper")].startswith("29.5")


@pytest.mark.parametrize("algorithm", ["maml", "protonet"])
def test_multi_source_trlearner_run_end_to_end(sources, tmp_path, algorithm):
    root, specs = sources
    cfg = resolve_config(dataset="metadataset", algorithm=algorithm, shots=1, iterations=2, meta_batch=3,
                         test_tasks=2, filters=4, inner_steps=1, test_steps=1, curve_steps=1,
                         data_root=str(root), device="cpu", train_sources=("vgg_flower",),
                         heldout_sources=("dtd", "traffic_sign"), trlearner=TRConfig(lam=0.5, heads=2))
    with override(*specs):
        m = train(cfg, tmp_path / "run", progress=False)
    # (only vgg_flower has validation classes among the fixtures: the relation probe uses them)
    assert m["status"] == "ok" and m["variant"] == "trlearner"
    assert m["trlearner"]["class_repr"] == "mean" and m["trlearner"]["lam"] == 0.5
    assert set(m["summary"]) >= {"overall", "ood"} and 0.0 <= m["summary"]["overall"]["mean"] <= 100.0
    rel = torch.load(tmp_path / "run" / "relation.pt")
    assert rel["last_batch"].shape == (3, 3) and torch.isfinite(rel["last_batch"]).all()


def test_pipeline_train_job_reads_the_source_lists_when_checking_a_checkpoint(tmp_path):
    """A checkpoint of other source lists is stale (moved away); one of the same lists is kept."""
    import torch as _torch

    from trlearner.pipeline.jobs import remove_stale_checkpoint
    from trlearner.run.cli import parse_args, run_config
    from trlearner.run.results import config_hash

    argv = ["--dataset", "metadataset", "--algorithm", "maml", "--shots", "1", "--train-sources",
            ",".join(TRAIN), "--heldout-sources", ",".join(HELDOUT), "--out", str(tmp_path)]
    same = resolve_config(dataset="metadataset", algorithm="maml", shots=1, train_sources=TRAIN,
                          heldout_sources=HELDOUT)
    _torch.save({"meta": {}, "config_hash": config_hash(same.identity())}, tmp_path / "checkpoint.pt")
    remove_stale_checkpoint(tmp_path, run_config(parse_args(argv)))
    assert (tmp_path / "checkpoint.pt").exists()
    other = resolve_config(dataset="metadataset", algorithm="maml", shots=1, train_sources=TRAIN[:1],
                           heldout_sources=HELDOUT)
    _torch.save({"meta": {}, "config_hash": config_hash(other.identity())}, tmp_path / "checkpoint.pt")
    remove_stale_checkpoint(tmp_path, run_config(parse_args(argv)))
    assert not (tmp_path / "checkpoint.pt").exists() and (tmp_path / "checkpoint.stale.pt").exists()

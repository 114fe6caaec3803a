"""The baselines as their authors ran them (docs/BASELINES.md): one test per protocol setting,
each checking the behaviour itself (which parameters move, output shapes, init statistics,
clipped gradients, the resolved protocol), not only that a flag is stored."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import leaf_params
from trlearner.engine.algorithms import make_algorithm
from trlearner.engine.algorithms.metasgd import LR_INIT_RANGE
from trlearner.engine.backbones import conv4, is_batch_norm_key, make_backbone, mlp, tf_same_pad
from trlearner.engine.core import InnerGrad, adapt_batch


def _images(n=6, shape=(1, 28, 28), seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


# -- BN scale/shift: outer loop only (Finn's MAML code, MT-net) -------------------------------


@pytest.mark.parametrize("name", ["maml", "metasgd", "tnet"])
def test_inner_loop_leaves_batch_norm_alone_unless_asked(name):
    xs, ys = _images(), torch.tensor([0, 1, 2, 3, 4, 0])
    for adapt_bn in (False, True):
        algo = make_algorithm(name, conv4((1, 28, 28), 5, filters=4), "classification", adapt_bn=adapt_bn)
        meta = algo.init_params(torch.Generator().manual_seed(0), 0.1)
        state = algo.adapt(meta, xs, ys, steps=2, lr=0.1, grad=InnerGrad("func"))
        bn = [k for k in meta if is_batch_norm_key(k) and not k.startswith("lr.")]
        assert len(bn) == 8  # 4 blocks x (scale, shift)
        assert all((k in state) == adapt_bn for k in bn), (name, adapt_bn)
        moved = [k for k in bn if k in state and not torch.equal(state[k], meta[k])]
        assert bool(moved) == adapt_bn  # with adapt_bn the inner loop really changes them
        assert not torch.equal(state["conv1.w"], meta["conv1.w"])  # the conv weights always adapt
        if name == "metasgd":  # step sizes exist for exactly the adapted keys
            assert {k[3:] for k in meta if k.startswith("lr.")} == set(algo.adapt_keys(meta))


def test_outer_loop_still_trains_batch_norm_when_the_inner_loop_does_not():
    algo = make_algorithm("maml", conv4((1, 28, 28), 5, filters=4), "classification")
    meta = leaf_params(algo.init_params(torch.Generator().manual_seed(0), 0.1))
    xs, xq = _images(5, seed=1).double().unsqueeze(0), _images(5, seed=2).double().unsqueeze(0)
    y = torch.arange(5).unsqueeze(0)
    out = adapt_batch(algo, meta, xs, y, xq, y, steps=1, lr=0.1)
    grads = dict(zip(meta, torch.autograd.grad(out.losses.mean(), list(meta.values()))))
    assert grads["conv2.bn_w"].abs().sum() > 0 and grads["conv2.bn_b"].abs().sum() > 0


# -- Omniglot Conv4: strided convolutions, no pooling (MAML) -----------------------------------


def test_tf_same_padding_pads_the_odd_pixel_after():
    x = torch.ones(1, 1, 28, 7)
    y = tf_same_pad(x, 3, 2)
    # H = 28: out 14, total pad (14-1)*2+3-28 = 1 -> (0 top, 1 bottom); W = 7: out 4, pad 2 -> (1, 1)
    assert y.shape == (1, 1, 29, 9)
    assert y[0, 0, 0, 1] == 1 and y[0, 0, 28, 1] == 0 and y[0, 0, 5, 0] == 0 and y[0, 0, 5, 8] == 0


def test_strided_conv4_has_no_pooling_and_mean_pools_the_last_2x2():
    bb = conv4((1, 28, 28), 5, filters=4, downsample="stride")
    params = bb.init(torch.Generator().manual_seed(0))
    assert bb.feature_dim == 4
    x = _images(3)
    sizes, out = [], x
    for name in ("conv1", "conv2", "conv3", "conv4"):  # the same blocks by hand
        out = F.conv2d(tf_same_pad(out, 3, 2), params[f"{name}.w"], stride=2)
        mean, var = out.mean((0, 2, 3), keepdim=True), out.var((0, 2, 3), unbiased=False, keepdim=True)
        out = F.relu((out - mean) / torch.sqrt(var + 1e-5) * params[f"{name}.bn_w"].view(1, -1, 1, 1)
                     + params[f"{name}.bn_b"].view(1, -1, 1, 1))
        sizes.append(out.shape[-1])
    assert sizes == [14, 7, 4, 2]  # stride 2 each block, no max-pool anywhere
    torch.testing.assert_close(bb.features(params, x), out.mean((2, 3)))
    assert bb(params, x).shape == (3, 5)


def test_maxpool_conv4_is_unchanged_and_flattens():
    bb = conv4((3, 84, 84), 5, filters=4)
    assert bb.feature_dim == 4 * 5 * 5
    assert bb.features(bb.init(torch.Generator().manual_seed(0)), _images(2, (3, 84, 84))).shape == (2, 100)


# -- initialisation: Finn's truncated normal std 0.01 and zero biases ----------------------------


def test_finn_mlp_init_is_a_truncated_normal_with_std_001_and_zero_biases():
    bb = mlp([1, 400, 400], 1, init="finn")
    p = bb.init(torch.Generator().manual_seed(0))
    w = p["fc2.w"]  # 160,000 draws
    assert w.abs().max() <= 0.02 + 1e-9  # truncated at 2 std of the underlying N(0, 0.01^2)
    # std of N(0, s^2) restricted to [-2s, 2s]: s * sqrt(1 - 4 phi(2) / (2 Phi(2) - 1))
    phi2, cdf2 = math.exp(-2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(2 / math.sqrt(2)))
    expected = 0.01 * math.sqrt(1 - 4 * phi2 / (2 * cdf2 - 1))
    assert abs(expected - 0.008796) < 1e-5
    assert abs(float(w.std()) - expected) < 0.01 * expected and abs(float(w.mean())) < 1e-4
    assert all(torch.count_nonzero(p[k]) == 0 for k in ("fc1.b", "fc2.b", "head.b"))
    torch_init = mlp([1, 400, 400], 1).init(torch.Generator().manual_seed(0))
    assert torch.count_nonzero(torch_init["fc1.b"]) > 0  # PyTorch's default has non-zero biases


def test_finn_conv4_init_glorot_convs_and_the_head_per_downsampling():
    s = conv4((1, 28, 28), 5, filters=64, downsample="stride", init="finn").init(torch.Generator().manual_seed(0))
    bound = math.sqrt(6 / (9 * 64 + 9 * 64))  # Glorot-uniform over k*k*c_in + k*k*c_out
    assert s["conv2.w"].abs().max() <= bound and s["conv2.w"].abs().max() > 0.95 * bound
    assert abs(float(s["head.w"].std()) - 1.0) < 0.15 and torch.count_nonzero(s["head.b"]) == 0  # N(0, 1)
    m = conv4((3, 84, 84), 5, filters=32, init="finn").init(torch.Generator().manual_seed(0))
    hb = math.sqrt(6 / (32 * 25 + 5))
    assert m["head.w"].abs().max() <= hb and torch.count_nonzero(m["head.b"]) == 0


def test_unknown_init_and_resnet12_options_are_refused():
    with pytest.raises(ValueError, match="init"):
        mlp([1, 40], 1, init="xavier")
    with pytest.raises(ValueError, match="resnet12"):
        make_backbone("resnet12", (3, 84, 84), 5, init="finn")
    with pytest.raises(ValueError, match="downsample"):
        conv4((1, 28, 28), 5, downsample="avgpool")


# -- Meta-SGD: step sizes drawn at random ---------------------------------------------------------


def test_metasgd_step_sizes_are_drawn_uniformly_in_the_range():
    algo = make_algorithm("metasgd", mlp([1, 40, 40], 1), "regression")
    meta = algo.init_params(torch.Generator().manual_seed(0), inner_lr=0.01)
    lrs = torch.cat([v.flatten() for k, v in meta.items() if k.startswith("lr.")])
    low, high = LR_INIT_RANGE
    assert (low, high) == (0.005, 0.1)
    assert lrs.numel() == 40 + 40 + 1600 + 40 + 40 + 1
    assert float(lrs.min()) >= low and float(lrs.max()) <= high
    assert abs(float(lrs.mean()) - (low + high) / 2) < 0.005  # U[a, b]: mean (a+b)/2 = 0.0525
    assert abs(float(lrs.std()) - (high - low) / math.sqrt(12)) < 0.003  # sd (b-a)/sqrt(12) = 0.0274
    again = algo.init_params(torch.Generator().manual_seed(0), inner_lr=0.01)
    assert torch.equal(again["lr.fc2.w"], meta["lr.fc2.w"])  # deterministic given the generator
    const = make_algorithm("metasgd", mlp([1, 40, 40], 1), "regression", lr_init="constant")
    assert torch.all(const.init_params(torch.Generator().manual_seed(0), 0.01)["lr.fc2.w"] == 0.01)
    with pytest.raises(ValueError, match="metasgd only"):
        make_algorithm("maml", mlp([1, 40], 1), "regression", lr_init="uniform")


# -- the resolved protocol of each benchmark --------------------------------------------------


def test_omniglot_test_steps_and_queries_follow_maml():
    from trlearner.run.protocols import paper_protocol

    for shots in (1, 5):
        p5 = paper_protocol("omniglot", "maml", ways=5, shots=shots)
        assert (p5["test_steps"], p5["train_queries"], p5["test_queries"]) == (3, shots, shots)
        p20 = paper_protocol("omniglot", "maml", ways=20, shots=shots)
        assert (p20["test_steps"], p20["inner_steps"], p20["test_queries"]) == (5, 5, shots)
        assert p5["downsample"] == p20["downsample"] == "stride" and p5["init"] == "finn"
        assert p5["curve_steps"] == 10 and p5["grad_clip"] == 0 and p5["adapt_bn"] is False
    mini = paper_protocol("miniimagenet", "maml", ways=5, shots=1)
    assert (mini["test_steps"], mini["train_queries"], mini["test_queries"]) == (10, 15, 15)
    assert (mini["downsample"], mini["grad_clip"], mini["filters"]) == ("maxpool", 10.0, 32)
    sine = paper_protocol("sinusoid", "maml", shots=5)
    assert (sine["init"], sine["grad_clip"]) == ("finn", 0.0)


def test_protonet_protocol_is_snells():
    from trlearner.run.protocols import paper_protocol

    for shots in (1, 5):
        p = paper_protocol("omniglot", "protonet", ways=5, shots=shots)
        assert (p["train_ways"], p["filters"], p["train_queries"], p["test_queries"]) == (60, 64, 5, 15)
        assert (p["downsample"], p["init"], p["inner_steps"], p["test_steps"]) == ("maxpool", "torch", 0, 0)
    assert paper_protocol("miniimagenet", "protonet", ways=5, shots=1)["train_ways"] == 30
    m5 = paper_protocol("miniimagenet", "protonet", ways=5, shots=5)
    assert (m5["train_ways"], m5["filters"], m5["train_queries"]) == (20, 64, 15)
    assert paper_protocol("omniglot", "maml", ways=5, shots=1).get("train_ways") is None
    assert paper_protocol("sinusoid", "metasgd", shots=5)["metasgd_lr_init"] == "uniform"


def test_another_backbone_drops_the_conv4_settings():
    from trlearner.run.config import resolve_config

    cfg = resolve_config(dataset="omniglot", algorithm="maml", shots=1, ways=5, backbone="resnet12")
    assert cfg.init is None and cfg.downsample is None and cfg.test_steps == 3
    cfg = resolve_config(dataset="omniglot", algorithm="maml", shots=1, ways=5)
    assert (cfg.backbone, cfg.init, cfg.downsample, cfg.test_queries) == ("conv4", "finn", "stride", 1)


# -- the training loop: clipping, training ways, what metrics.json records ------------------------


def _recording_adam(monkeypatch):
    """Replace torch.optim.Adam by a subclass that keeps a copy of the gradients it steps on."""
    seen = []

    class Recording(torch.optim.Adam):
        def step(self, closure=None):
            seen.append([p.grad.detach().clone() for g in self.param_groups for p in g["params"]])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "Adam", Recording)
    return seen


def test_grad_clip_clips_the_meta_gradient_element_wise(tmp_path, monkeypatch):
    from trlearner.run.config import resolve_config
    from trlearner.run.train import train

    seen = _recording_adam(monkeypatch)
    base = dict(dataset="sinusoid", algorithm="maml", shots=5, iterations=1, test_tasks=5, curve_steps=1,
                init="torch", inner_lr=0.5)  # a large inner step: meta-gradients well above 0.05
    m0 = train(resolve_config(**base, grad_clip=0.0), tmp_path / "a", progress=False)
    m1 = train(resolve_config(**base, grad_clip=0.05), tmp_path / "b", progress=False)
    raw, clipped = seen
    assert max(float(g.abs().max()) for g in raw) > 0.05  # the fault: gradients beyond the bound
    for g, c in zip(raw, clipped):  # same seed and init, so the same gradient, clamped entry-wise
        torch.testing.assert_close(c, g.clamp(-0.05, 0.05))
    assert m0["protocol"]["grad_clip"] is None and m1["protocol"]["grad_clip"] == 0.05


def test_protonet_trains_on_60_way_episodes_and_tests_5_way(tmp_path, monkeypatch):
    import trlearner.run.evaluation as ev
    from conftest import SyntheticImages
    from trlearner.run.config import resolve_config
    from trlearner.run.protocols import paper_protocol
    from trlearner.run.train import train

    calls = []

    def fake_source(dataset, split, shots, ways=None, queries=None, seed=0, root="data"):
        calls.append((split, ways, queries))
        return SyntheticImages(ways=ways, shots=shots, queries=2, n_classes=80, seed=len(split) + seed)

    monkeypatch.setattr(ev, "make_source", fake_source)  # "synthetic": an Omniglot-like family
    monkeypatch.setitem(paper_protocol.__globals__["DATASET_PROTOCOLS"], "synthetic",
                        paper_protocol("omniglot"))
    monkeypatch.setitem(paper_protocol.__globals__, "OMNIGLOT_FAMILY", ("omniglot", "synthetic"))
    cfg = resolve_config(dataset="synthetic", algorithm="protonet", shots=1, ways=5, iterations=2,
                         meta_batch=2, filters=4, test_tasks=4)
    m = train(cfg, tmp_path, progress=False)
    assert ("train", 60, 5) in calls and ("test", 5, 15) in calls
    p = m["protocol"]
    assert (p["ways_train"], p["queries_train"], p["queries_test"], p["downsample"]) == (60, 5, 15, "maxpool")
    assert m["n_tasks"] == 4 and 0 <= m["mean"] <= 100


def test_metrics_record_the_authors_settings(tmp_path):
    from trlearner.run.config import resolve_config
    from trlearner.run.train import train

    m = train(resolve_config(dataset="sinusoid", algorithm="metasgd", shots=5, iterations=2, test_tasks=5,
                             curve_steps=1), tmp_path, progress=False)
    p = m["protocol"]
    assert (p["init"], p["bn_inner_loop"], p["grad_clip"], p["downsample"]) == ("finn", False, None, None)
    assert (p["metasgd_lr_init"], p["queries_train"], p["ways_train"]) == ("uniform", 5, None)


def test_cli_options_reach_the_run_config():
    from trlearner.cli import build_parser
    from trlearner.run.config import resolve_config
    from trlearner.run.cli import RUN_KEYS

    args = build_parser().parse_args(
        ["train", "--dataset", "omniglot", "--algorithm", "metasgd", "--shots", "1", "--ways", "5", "--out", "x",
         "--adapt-bn", "--downsample", "maxpool", "--init", "torch", "--grad-clip", "3", "--train-ways", "20",
         "--metasgd-lr-init", "constant"])
    cfg = resolve_config(**{k: getattr(args, k) for k in RUN_KEYS})
    assert (cfg.adapt_bn, cfg.downsample, cfg.init, cfg.grad_clip) == (True, "maxpool", "torch", 3.0)
    assert (cfg.train_ways, cfg.metasgd_lr_init) == (20, "constant")
    plain = build_parser().parse_args(["train", "--dataset", "omniglot", "--algorithm", "maml", "--shots", "1",
                                       "--ways", "5", "--out", "x"])
    cfg = resolve_config(**{k: getattr(plain, k) for k in RUN_KEYS})  # unset: the authors' choices
    assert (cfg.adapt_bn, cfg.downsample, cfg.init, cfg.grad_clip, cfg.train_ways) == (False, "stride", "finn", 0.0, None)

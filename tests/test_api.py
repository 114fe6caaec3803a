"""The public Python API: ``from trlearner import MAML, ..., TRLearner`` with a user's ``nn.Module``.

Behaviour, not plumbing: an ``nn.Module`` holding the same weights as a built-in backbone
gives the same meta-loss and the same meta-gradient (float64, ``torch.allclose``), for every
algorithm and for TRLearner on top; and the README's first ``## Python API`` code block runs
as it stands.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import trlearner
from trlearner import ANIL, MAML, MetaSGD, ProtoNet, TNet, TRConfig, TRLearner, from_module, make_source
from trlearner.engine.backbones import conv4, mlp
from trlearner.engine.core import adapt_batch

README = Path(__file__).resolve().parents[1] / "README.md"
TOL = dict(rtol=1e-10, atol=1e-12)


def sinusoid_batch(tasks: int = 4, shots: int = 5):
    b = make_source("sinusoid", "train", shots=shots).batch(range(tasks))
    return b._replace(**{k: getattr(b, k).double() for k in ("xs", "ys", "xq", "yq")})


def regression_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1)).double()


MLP_KEYS = {"fc1": "0", "fc2": "2", "head": "4"}  # built-in mlp layer -> nn.Sequential index


def builtin_key(key: str, layers: dict) -> str:
    """A module key (``lr.2.weight``, ``4.T``) -> the built-in backbone's key (``lr.fc2.w``, ``head.T``)."""
    inverse = {v: k for k, v in layers.items()}
    prefix = "lr." if key.startswith("lr.") else ""
    layer, _, leaf = key[len(prefix):].rpartition(".")
    if layer in inverse:
        return prefix + f"{inverse[layer]}." + {"weight": "w", "bias": "b", "T": "T"}[leaf]
    return key  # trl.omega


def twin_meta(algo_module, algo_builtin, layers, gen_seed=0):
    """Meta-parameters of the module algorithm and the same tensors under the built-in keys."""
    meta_m = algo_module.init_params(torch.Generator().manual_seed(gen_seed), 0.01)
    meta_m = {k: v.double() for k, v in meta_m.items()}
    meta_b = {builtin_key(k, layers): v.clone() for k, v in meta_m.items()}
    assert set(meta_b) == set(algo_builtin.init_params(torch.Generator(), 0.01)), "key mapping is incomplete"
    return ({k: v.requires_grad_() for k, v in meta_m.items()},
            {k: v.requires_grad_() for k, v in meta_b.items()})


def loss_and_grads(loss, meta):
    keys = sorted(meta)
    grads = torch.autograd.grad(loss, [meta[k] for k in keys])
    return loss.detach(), dict(zip(keys, grads))


def assert_same(meta_m, out_m, meta_b, out_b, layers):
    (lm, gm), (lb, gb) = loss_and_grads(out_m, meta_m), loss_and_grads(out_b, meta_b)
    assert torch.allclose(lm, lb, **TOL), (lm, lb)
    for k in gm:
        assert torch.allclose(gm[k], gb[builtin_key(k, layers)], **TOL), k
    assert all(g.abs().sum() > 0 for g in gm.values() if g.numel() > 1)


# ------------------------------------------------------------------------ the equalities


@pytest.mark.parametrize("cls", [MAML, ANIL, MetaSGD, TNet])
@pytest.mark.parametrize("backend", ["vmap", "loop"])
def test_module_equals_builtin_mlp(cls, backend):
    """Same weights in an nn.Sequential and in the built-in mlp: same meta-loss, same meta-gradient."""
    algo_m, algo_b = cls(regression_net(), "regression"), cls(mlp([1, 40, 40], 1), "regression")
    meta_m, meta_b = twin_meta(algo_m, algo_b, MLP_KEYS)
    if cls is TNet:  # identity transforms would hide a transform applied in the wrong place
        for k in [k for k in meta_m if k.endswith(".T")]:
            perturb = 0.1 * torch.randn(meta_m[k].shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
            with torch.no_grad():
                meta_m[k] += perturb
                meta_b[builtin_key(k, MLP_KEYS)] += perturb
    b = sinusoid_batch()
    out_m = adapt_batch(algo_m, meta_m, b.xs, b.ys, b.xq, b.yq, steps=2, lr=0.01, backend=backend).losses.mean()
    out_b = adapt_batch(algo_b, meta_b, b.xs, b.ys, b.xq, b.yq, steps=2, lr=0.01, backend=backend).losses.mean()
    assert_same(meta_m, out_m, meta_b, out_b, MLP_KEYS)


@pytest.mark.parametrize("cls", [MAML, ANIL])
def test_trlearner_on_a_module_equals_builtin(cls):
    algo_m, algo_b = cls(regression_net(), "regression"), cls(mlp([1, 40, 40], 1), "regression")
    trl_m, trl_b = (TRLearner(a, TRConfig(lam=0.5, heads=2, meta_data=3), shots=5) for a in (algo_m, algo_b))
    meta_m, meta_b = twin_meta(algo_m, algo_b, MLP_KEYS)
    omega = trl_m.init_params(torch.Generator().manual_seed(2))["trl.omega"].double()
    meta_m["trl.omega"], meta_b["trl.omega"] = omega.clone().requires_grad_(), omega.clone().requires_grad_()
    b = sinusoid_batch()
    out_m, out_b = trl_m.meta_loss(meta_m, b, steps=1, lr=0.01), trl_b.meta_loss(meta_b, b, steps=1, lr=0.01)
    assert torch.allclose(out_m.tr_loss, out_b.tr_loss, **TOL) and out_m.tr_loss > 0
    assert_same(meta_m, out_m.loss, meta_b, out_b.loss, MLP_KEYS)


def classification_batch(tasks=3, ways=5, shots=2, queries=3, shape=(4,), seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(tasks, ways * shots, *shape, generator=g, dtype=torch.float64)
    xq = torch.randn(tasks, ways * queries, *shape, generator=g, dtype=torch.float64)
    ys = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1)
    yq = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1)
    return xs, ys, xq, yq


def test_protonet_linear_embedding_equals_builtin_mlp_features():
    torch.manual_seed(0)
    embed = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU()).double()
    algo_m, algo_b = ProtoNet(embed, ways=5), ProtoNet(mlp([4, 16, 16], 5), "classification")
    meta_m, meta_b = twin_meta(algo_m, algo_b, {"fc1": "0", "fc2": "2"})
    xs, ys, xq, yq = classification_batch()
    out_m = adapt_batch(algo_m, meta_m, xs, ys, xq, yq, steps=0, lr=0.0).losses.mean()
    out_b = adapt_batch(algo_b, meta_b, xs, ys, xq, yq, steps=0, lr=0.0).losses.mean()
    assert_same(meta_m, out_m, meta_b, out_b, {"fc1": "0", "fc2": "2"})


def conv_net(filters=4, ways=5):
    torch.manual_seed(0)
    blocks = []
    for c_in in (1, filters, filters, filters):
        blocks += [nn.Conv2d(c_in, filters, 3, padding=1, bias=False),
                   nn.BatchNorm2d(filters, track_running_stats=False), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*blocks, nn.Flatten(), nn.Linear(filters, ways)).double()


CONV_KEYS = {f"conv{i + 1}": str(4 * i) for i in range(4)} | {"head": "17"}


def conv_builtin_key(key: str) -> str:
    """``4.weight`` -> ``conv2.w``, ``5.weight`` (its batch norm) -> ``conv2.bn_w``."""
    layer, _, leaf = key.rpartition(".")
    if layer == "17":
        return {"weight": "head.w", "bias": "head.b"}[leaf]
    i, bn = divmod(int(layer), 4)
    return f"conv{i + 1}." + ("w" if bn == 0 else {"weight": "bn_w", "bias": "bn_b"}[leaf])


def test_maml_on_a_batchnorm_module_equals_builtin_conv4():
    """nn.BatchNorm2d(track_running_stats=False) under vmap: the built-in conv4's (second-order)
    meta-gradient, batch-norm scale/shift outside the inner loop (adapt_bn=False) for both."""
    algo_m, algo_b = MAML(conv_net(), "classification"), MAML(conv4((1, 28, 28), 5, filters=4), "classification")
    assert algo_m.backbone.batch_stats and "1.weight" in algo_m.backbone.bn_keys
    meta_m = {k: v.double().requires_grad_() for k, v in algo_m.init_params(torch.Generator(), 0.01).items()}
    meta_b = {conv_builtin_key(k): v.detach().clone().requires_grad_() for k, v in meta_m.items()}
    assert set(meta_b) == set(algo_b.init_params(torch.Generator(), 0.01))
    assert sorted(map(conv_builtin_key, algo_m.adapt_keys(meta_m))) == sorted(algo_b.adapt_keys(meta_b))
    xs, ys, xq, yq = classification_batch(tasks=2, shots=1, queries=2, shape=(1, 28, 28))
    for backend in ("vmap", "loop"):
        out_m = adapt_batch(algo_m, meta_m, xs, ys, xq, yq, 1, 0.1, backend).losses.mean()
        out_b = adapt_batch(algo_b, meta_b, xs, ys, xq, yq, 1, 0.1, backend).losses.mean()
        (lm, gm), (lb, gb) = loss_and_grads(out_m, meta_m), loss_and_grads(out_b, meta_b)
        assert torch.allclose(lm, lb, **TOL)
        for k in gm:
            assert torch.allclose(gm[k], gb[conv_builtin_key(k)], **TOL), (backend, k)


def test_protonet_conv_embedding_trains():
    embed = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).double()
    algo = ProtoNet(embed, ways=5)
    meta = {k: v.requires_grad_() for k, v in algo.init_params(torch.Generator(), 0.0).items()}
    xs, ys, xq, yq = classification_batch(shape=(1, 12, 12))
    loss = adapt_batch(algo, meta, xs, ys, xq, yq, steps=0, lr=0.0).losses.mean()
    loss.backward()
    assert math.isfinite(loss.item()) and all(v.grad.abs().sum() > 0 for v in meta.values())


# ----------------------------------------------------------------- what is refused, and why


def test_a_module_with_buffers_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="track_running_stats=False"):
        MAML(nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.Linear(8, 1)), "regression")


def test_protonet_on_a_module_needs_ways_and_trlearner_needs_feature_dim():
    embed = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="ways="):
        ProtoNet(embed)
    with pytest.raises(ValueError, match="input_shape"):
        TRLearner(ProtoNet(embed, ways=5), TRConfig(), shots=1, ways=5)
    bb = from_module(embed, head=None, input_shape=(1, 12, 12))
    assert bb.feature_dim == 8
    TRLearner(ProtoNet(bb, ways=5), TRConfig(), shots=1, ways=5)


def test_the_module_itself_is_left_unchanged():
    net = regression_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    algo = MAML(net, "regression")
    meta = {k: v.requires_grad_() for k, v in algo.init_params(torch.Generator(), 0.01).items()}
    b = sinusoid_batch()
    adapt_batch(algo, meta, b.xs, b.ys, b.xq, b.yq, 1, 0.01).losses.mean().backward()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


# ---------------------------------------------------------------------------- the API itself


def test_public_names():
    for name in trlearner.__all__:
        assert getattr(trlearner, name) is not None, name
    assert isinstance(trlearner.__version__, str)
    with pytest.raises(AttributeError):
        trlearner.no_such_name


def test_import_trlearner_is_cheap():
    code = "import sys, trlearner; trlearner.__version__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def readme_example() -> str:
    text = README.read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_runs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", readme_example()], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    numbers = re.findall(r"loss\D*?(-?\d+\.\d+(?:e-?\d+)?)", out.stdout)
    assert numbers and all(math.isfinite(float(x)) for x in numbers), out.stdout

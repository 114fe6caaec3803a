"""Device faithfulness without a GPU: the training path creates no tensor on the wrong device.

Every tensor of a run is put on a *pretend device*: an :class:`OnDevice` tensor reports
``device="meta"`` (so ``torch.zeros(..., device=x.device)`` makes another one, as on CUDA)
but holds real CPU data, so data-dependent steps (``.item()``, ``.cpu().numpy()``, argsort
indices) work as they do on a GPU. :class:`DeviceCheck`, a ``TorchDispatchMode``, sees every
ATen op (inside ``vmap``, ``torch.func.grad`` and the backward pass too) and fails, as CUDA
does, when a plain CPU tensor meets a tensor on the device. It follows CUDA's rules:

- 0-dim CPU tensors are allowed in pointwise ops (CUDA treats them as scalars);
- CPU index tensors are allowed in advanced indexing (ATen moves them);
- ``copy_`` may copy across devices; ``.to(device)`` / ``.cpu()`` are the transfers;
- a factory op on the device with a CPU generator fails (CUDA needs a CUDA generator).

The real ``meta`` device (no data) or ``FakeTensorMode`` cannot run this path: the TRLearner
sampler and the class alignment read data (numpy), and ``.item()`` logs every loss. A CUDA
device faked on a CPU build fails at CUDA's lazy initialisation in every factory call.

The tests prove the check catches a CPU-created tensor (the old ``random_mask``, a
``1 - eye(T)`` made on the CPU) and then run one meta-iteration (``meta_objective``,
backward, an Adam step) and one evaluation for every algorithm, both variants, every
sampler, relation-weight, class-representation and alignment option and every backbone
(plain and padded), and a whole ``train`` run on the pretend device, each with the same
numbers as on the CPU. Last, ``benchmarks/gpu_check.py`` without a GPU: its message, its
``--dry`` run of every section on the CPU and its own time limit.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from trlearner.method import relation
from trlearner.engine.algorithms import make_algorithm
from trlearner.engine.backbones import resnet12
from trlearner.data.sources.episodes import TaskBatch, mark_batch_padding
from trlearner.engine.core import evaluate_curve
from trlearner.method.regularizers import make_regularizer
from trlearner.method.relation import TRConfig, TRLearner
from trlearner.run.config import resolve_config
from trlearner.run.model import build, init_meta, meta_objective
from trlearner.run.train import train

DEVICE = torch.device("meta")  # what an OnDevice tensor reports; its data stay on the CPU
CPU = torch.device("cpu")
aten = torch.ops.aten
INDEX_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default,
             aten._index_put_impl_.default}
CROSS_DEVICE_OPS = {aten.copy_.default}


class DeviceMixError(RuntimeError):
    """A plain CPU tensor met a tensor on the (pretend) device."""


class OnDevice(torch.Tensor):
    """A tensor on the pretend device: reports ``DEVICE``, holds its data in ``elem`` (CPU)."""

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        out = torch.Tensor._make_wrapper_subclass(
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(),
            dtype=elem.dtype, device=DEVICE, requires_grad=elem.requires_grad)
        out.elem = elem
        return out

    def __repr__(self):
        return f"OnDevice({self.elem!r})"

    def __reduce_ex__(self, protocol):  # torch.save of a device tensor: its data, loaded on the CPU
        return self.elem.__reduce_ex__(protocol)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(f"{func} on an OnDevice tensor outside a DeviceCheck block")


def _map(fn, x):
    """``fn`` on every tensor of an op's arguments or results (tensors, lists and tuples of
    them, dicts of keyword arguments): a short, fast torch.utils._pytree.tree_map."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_map(fn, v) for v in x)
    if isinstance(x, dict):
        return {k: _map(fn, v) for k, v in x.items()}
    return x


def _tensors(x) -> list:
    out = []
    _map(out.append, x)
    return out


def _wrap(x, keep=None):
    keep = keep or {}
    return _map(lambda t: keep[id(t)] if id(t) in keep else OnDevice(t), x)


def _unwrap(x):
    return _map(lambda t: t.elem if isinstance(t, OnDevice) else t, x)


def _on_device(target) -> bool:
    return target is not None and torch.device(target) == DEVICE


class DeviceCheck(TorchDispatchMode):
    """Run ATen ops of :class:`OnDevice` tensors on their CPU data; raise
    :class:`DeviceMixError` where CUDA would raise "Expected all tensors to be on the same
    device". ``ops`` counts the ops seen (a check that sees nothing proves nothing)."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops += 1
        tensors = _tensors((args, kwargs))
        target = kwargs.get("device")
        if target is not None:  # factories, *_like, .to(device) / .cpu(): the result is on target
            gen = kwargs.get("generator")
            if _on_device(target) and gen is not None and gen.device != DEVICE:
                raise DeviceMixError(f"{func}: a {gen.device} generator draws a tensor on the device")
            out = func(*_unwrap(args), **{**_unwrap(kwargs), "device": CPU})
            return _wrap(out) if _on_device(target) else out
        wrapped = [t for t in tensors if isinstance(t, OnDevice)]
        if not wrapped:
            return func(*args, **kwargs)
        if func not in CROSS_DEVICE_OPS:
            allowed = set()
            if func in INDEX_OPS and len(args) > 1:
                allowed = {id(t) for t in args[1] if isinstance(t, torch.Tensor)}
            scalars_ok = torch.Tag.pointwise in func.tags
            for t in tensors:
                if isinstance(t, OnDevice) or id(t) in allowed or (scalars_ok and t.dim() == 0):
                    continue
                raise DeviceMixError(f"{func}: a {t.device} tensor of shape {tuple(t.shape)} meets "
                                     f"tensors on the device (create it with device=<input>.device)")
        keep = {id(t.elem): t for t in wrapped}  # in-place ops return their input
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)), keep)


def to_device(tree):
    """Every tensor of ``tree`` moved to the pretend device (inside a DeviceCheck block)."""
    return _map(lambda t: t.to(DEVICE), tree)


# --------------------------------------------------------------------- the check itself


def test_the_check_fails_where_cuda_fails_and_passes_where_cuda_passes():
    with DeviceCheck() as mode:
        x = torch.arange(6.0).reshape(2, 3).to(DEVICE)
        assert isinstance(x, OnDevice) and x.device == DEVICE
        with pytest.raises(DeviceMixError, match=r"aten.add.Tensor: a cpu tensor of shape \(2, 3\)"):
            x + torch.ones(2, 3)
        with pytest.raises(DeviceMixError, match="aten.mm"):
            x @ torch.ones(3, 1)
        with pytest.raises(DeviceMixError, match="aten.cat"):
            torch.cat([x, torch.zeros(1, 3)])
        with pytest.raises(DeviceMixError, match="generator"):
            torch.rand(3, generator=torch.Generator().manual_seed(0), device=x.device)
        y = x * torch.tensor(2.0) + torch.zeros(2, 3, device=x.device)  # CPU scalar; made on the device
        assert isinstance(y, OnDevice)
        assert x[torch.tensor([1])].cpu().tolist() == [[3.0, 4.0, 5.0]]  # CPU index tensors
        z = torch.zeros(2, 3, device=x.device)
        z.copy_(torch.ones(2, 3))  # a cross-device copy
        assert z.sum().item() == 6.0 and (x * 2).cpu().tolist() == [[0, 2, 4], [6, 8, 10]]
        assert type(x.cpu()) is torch.Tensor and type(torch.zeros_like(x, device="cpu")) is torch.Tensor
        assert isinstance(torch.empty_like(torch.ones(2), device=x.device), OnDevice)
        with pytest.raises(DeviceMixError, match="aten.mul"):
            torch.zeros_like(x, device="cpu") * x
    assert mode.ops > 0


def _old_random_mask(b, n, m, gen, device=None):
    """random_mask as it was before the fix (masks built on the CPU, never moved)."""
    order = torch.rand(b, n, generator=gen).argsort(1)
    mask = torch.zeros(b, n)
    mask.scatter_(1, order[:, : min(m, n)], 1.0)
    return mask


def _old_class_random_mask(labels, m, gen):
    key = torch.rand(labels.shape, generator=gen)
    mask = torch.zeros(labels.shape)
    for t in range(labels.shape[0]):
        for c in labels[t][labels[t] >= 0].unique():
            idx = (labels[t] == c).nonzero().flatten()
            take = min(m, len(idx)) if m is not None else math.ceil(len(idx) / 2)
            mask[t, idx[key[t, idx].argsort()[:take]]] = 1.0
    return mask


# ---------------------------------------------------------------- runs and their batches

SHAPES = {"mlp": (1,), "conv4": (1, 16, 16), "resnet12": (3, 16, 16)}
TINY_WIDTHS = (2, 3, 3, 4)
WAYS, SHOTS, QUERIES, TASKS = 3, 2, 1, 3


def regression_batch(tasks=TASKS, shots=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, xq = torch.rand(tasks, shots, 1, generator=g), torch.rand(tasks, shots, 1, generator=g)
    return TaskBatch(xs, torch.sin(3 * xs), xq, torch.sin(3 * xq), {})


def image_batch(shape, padded: bool, tasks=TASKS, seed=0):
    """Class-contiguous episodes; ``padded``: variable ways and shots, label -1 and NaN inputs
    at the padding (the Meta-Dataset convention, trlearner.data.sources.episodes.PaddedSource)."""
    g = torch.Generator().manual_seed(seed)
    shots = [(SHOTS,) * WAYS] * tasks if not padded else [(2, 1, 3), (1, 1), (2, 2, 1)][:tasks]
    s_max, q_max = max(map(sum, shots)), max(len(k) for k in shots) * QUERIES
    xs, xq = torch.rand(tasks, s_max, *shape, generator=g), torch.rand(tasks, q_max, *shape, generator=g)
    ys, yq = torch.full((tasks, s_max), -1), torch.full((tasks, q_max), -1)
    for t, k in enumerate(shots):
        lab = torch.cat([torch.full((n,), c) for c, n in enumerate(k)])
        ys[t, : len(lab)] = lab
        yq[t, : len(k) * QUERIES] = torch.arange(len(k)).repeat_interleave(QUERIES)
    b = TaskBatch(xs, ys, xq, yq, {"support_mask": ys >= 0, "query_mask": yq >= 0} if padded else {})
    return mark_batch_padding(b)


def make_run(algorithm, backbone, padded=False, trl=None, widths=TINY_WIDTHS, **options):
    """(config, algorithm, TRLearner or None, regulariser, meta-batch) of a tiny run with the
    protocol's settings (``options``: RunConfig overrides). ResNet-12 has ``widths`` (``None``:
    the full 64-160-320-640 that ``train.build`` makes, about 40 s a case here), built as
    ``build`` builds it."""
    common = dict(algorithm=algorithm, meta_batch=TASKS, inner_steps=1, backbone=backbone, trlearner=trl,
                  reg_strength=0.1, **options)
    if backbone == "mlp":
        cfg = resolve_config(dataset="sinusoid", shots=4, hidden=(8, 8), **common)
        source = SimpleNamespace(kind="regression", input_shape=SHAPES["mlp"], n_out=1, padded=False)
        batch = regression_batch()
    else:
        dataset = "metadataset_ilsvrc_2012" if padded else "miniimagenet"
        ways = {} if padded else {"ways": WAYS, "train_ways": WAYS}  # not ProtoNet's 20-way training
        cfg = resolve_config(dataset=dataset, shots=SHOTS, filters=4, **ways, **common)
        n_out = 3 if padded else WAYS
        source = SimpleNamespace(kind="classification", input_shape=SHAPES[backbone], n_out=n_out, padded=padded)
        batch = image_batch(SHAPES[backbone], padded)
    if backbone == "resnet12" and widths is not None:
        algo = make_algorithm(cfg.algorithm, resnet12(source.input_shape, n_out, widths, padded), "classification",
                              adapt_bn=bool(cfg.adapt_bn),
                              **({"lr_init": cfg.metasgd_lr_init} if cfg.algorithm == "metasgd" else {}))
        tr = None if trl is None else TRLearner(algo, cfg.trlearner, shots=None if padded else cfg.shots,
                                                ways=cfg.ways, variable_ways=padded)
    else:
        algo, tr = build(cfg, source)
    return cfg, algo, tr, make_regularizer(cfg.regularizer, cfg.reg_strength), batch


def one_iteration(cfg, algo, trl, reg, batch, device: bool):
    """One meta-iteration (objective, backward, Adam step) and one evaluation, all on the pretend
    device (``device=True``) or on the CPU; returns (logs, updated meta, curve) on the CPU."""
    meta = {k: v.detach().clone() for k, v in init_meta(cfg, algo, trl).items()}
    if device:
        meta = to_device(meta)
        batch = TaskBatch(*to_device(tuple(batch[:4])), to_device(batch.info))
    meta = {k: v.requires_grad_() for k, v in meta.items()}
    opt = torch.optim.Adam(meta.values(), lr=1e-3)
    loss, logs, rel = meta_objective(cfg, algo, trl, reg, meta, batch, it=0)
    loss.backward()
    if cfg.grad_clip:  # as train does (MAML's miniImageNet protocol)
        torch.nn.utils.clip_grad_value_(list(meta.values()), cfg.grad_clip)
    opt.step()
    curve = evaluate_curve(algo, meta, batch.xs, batch.ys, batch.xq, batch.yq, 2, cfg.test_lr)
    if device:
        assert all(isinstance(v, OnDevice) for v in meta.values())
        grads = [v.grad for v in meta.values() if v.grad is not None]  # a fixed omega has none
        assert len(grads) >= len(meta) - 1 and all(isinstance(g, OnDevice) for g in grads)
        assert isinstance(curve, OnDevice) and (rel is None or isinstance(rel, OnDevice))
    return logs, {k: v.detach().cpu() for k, v in meta.items()}, curve.cpu()


def check_run(*args, **kwargs):
    """The iteration on the pretend device runs (no tensor made on the CPU inside) and gives
    the CPU's numbers exactly (the same kernels run on the same data)."""
    run = make_run(*args, **kwargs)
    with DeviceCheck() as mode:
        logs, meta, curve = one_iteration(*run, device=True)
    assert mode.ops > 100
    ref_logs, ref_meta, ref_curve = one_iteration(*run, device=False)
    assert logs == ref_logs and all(math.isfinite(v) for v in logs.values())
    torch.testing.assert_close(curve, ref_curve, rtol=0, atol=0)
    for k in ref_meta:
        torch.testing.assert_close(meta[k], ref_meta[k], rtol=0, atol=0, msg=k)


# ------------------------------------------------- the check catches CPU-made tensors


def test_the_old_random_sampler_fails_the_check(monkeypatch):
    trl = TRConfig(sampler="random", heads=2)
    run = make_run("maml", "mlp", trl=trl)
    with DeviceCheck():
        one_iteration(*run, device=True)  # the fixed sampler passes
    monkeypatch.setattr(relation, "random_mask", _old_random_mask)
    with DeviceCheck(), pytest.raises(DeviceMixError, match="a cpu tensor of shape"):
        one_iteration(*run, device=True)
    one_iteration(*run, device=False)  # on the CPU the old code ran: only a device shows the bug


def test_the_old_class_random_sampler_fails_the_check(monkeypatch):
    trl = TRConfig(sampler="random", heads=2, class_repr="mean")
    run = make_run("maml", "conv4", padded=True, trl=trl)
    monkeypatch.setattr(relation, "class_random_mask", _old_class_random_mask)
    with DeviceCheck(), pytest.raises(DeviceMixError):
        one_iteration(*run, device=True)


def test_a_cpu_made_matrix_inside_the_relation_weights_fails_the_check(monkeypatch):
    monkeypatch.setattr(relation, "_off_diagonal", lambda t, dtype, device: 1.0 - torch.eye(t, dtype=dtype))
    run = make_run("maml", "mlp", trl=TRConfig(heads=2))
    with DeviceCheck(), pytest.raises(DeviceMixError, match="cpu tensor of shape"):
        one_iteration(*run, device=True)


def test_random_masks_are_made_on_the_asked_device_and_draw_the_cpu_stream():
    with DeviceCheck():
        m = relation.random_mask(4, 5, 2, torch.Generator().manual_seed(0), device=DEVICE)
        labels = torch.tensor([[0, 0, 1, 1, -1], [0, 1, 1, 1, 1]]).to(DEVICE)
        c = relation.class_random_mask(labels, None, torch.Generator().manual_seed(0))
        assert isinstance(m, OnDevice) and isinstance(c, OnDevice)
        m, c = m.cpu(), c.cpu()
    assert torch.equal(m, relation.random_mask(4, 5, 2, torch.Generator().manual_seed(0)))
    assert torch.equal(m, _old_random_mask(4, 5, 2, torch.Generator().manual_seed(0)))
    assert torch.equal(c, _old_class_random_mask(labels.elem, None, torch.Generator().manual_seed(0)))
    assert m.sum(1).tolist() == [2] * 4 and c.tolist()[0][4] == 0 and c.sum().item() == 1 + 1 + 1 + 2


# ------------------------------------------------------------------------ coverage

ALGOS = ("maml", "fomaml", "anil", "metasgd", "tnet", "protonet")
BACKBONES = [("mlp", False), ("conv4", False), ("conv4", True), ("resnet12", False), ("resnet12", True)]


def _algo_cases():
    for backbone, padded in BACKBONES:
        for algo in ALGOS:
            if algo == "protonet" and backbone == "mlp":
                continue  # ProtoNet is a classifier
            for variant in ("baseline", "trlearner"):
                name = f"{algo}-{backbone}{'-padded' if padded else ''}-{variant}"
                slow = backbone == "resnet12" and algo != "maml"  # ~3 s each; MAML's stay quick
                yield pytest.param(algo, backbone, padded, variant, id=name,
                                   marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("algo,backbone,padded,variant", list(_algo_cases()))
def test_every_algorithm_backbone_and_variant_stays_on_the_device(algo, backbone, padded, variant):
    trl = None
    if variant == "trlearner":
        trl = TRConfig(heads=2, class_repr="mean" if padded else "concat")
    check_run("maml" if algo == "fomaml" else algo, backbone, padded, trl=trl, first_order=algo == "fomaml")


@pytest.mark.slow
def test_the_full_width_resnet12_that_build_makes_stays_on_the_device():
    check_run("maml", "resnet12", trl=None, widths=None)


def _option_cases():
    for backbone, padded in (("mlp", False), ("conv4", False), ("conv4", True)):
        reprs = ("mean",) if padded or backbone == "mlp" else relation.CLASS_REPRS
        for sampler in relation.SAMPLERS:
            for weights in relation.WEIGHTS:
                for class_repr in reprs:
                    name = f"{backbone}{'-padded' if padded else ''}-{sampler}-{weights}-{class_repr}"
                    yield pytest.param(backbone, padded, TRConfig(heads=2, sampler=sampler, weights=weights,
                                                                  class_repr=class_repr), id=name)
        if backbone != "mlp":
            for align in relation.ALIGNS:
                yield pytest.param(backbone, padded, TRConfig(heads=2, align=align, learn_omega=False,
                                                              class_repr="mean" if padded else "concat"),
                                   id=f"{backbone}{'-padded' if padded else ''}-align-{align}-fixed-omega")


@pytest.mark.parametrize("backbone,padded,trl", list(_option_cases()))
def test_every_trlearner_option_stays_on_the_device(backbone, padded, trl):
    check_run("maml", backbone, padded, trl=trl)


@pytest.mark.parametrize("backbone,padded", [("mlp", False), ("conv4", False), ("conv4", True)])
def test_the_loop_backend_stays_on_the_device(backbone, padded):
    check_run("maml", backbone, padded, trl=TRConfig(heads=2, sampler="random",
                                                     class_repr="mean" if padded else "concat"), backend="loop")


@pytest.mark.parametrize("algo", ["maml", "protonet"])
@pytest.mark.parametrize("downsample", ["stride", "maxpool"])
@pytest.mark.parametrize("adapt_bn", [False, True])
def test_every_conv4_protocol_variant_stays_on_the_device(algo, downsample, adapt_bn):
    check_run(algo, "conv4", trl=TRConfig(heads=2), downsample=downsample, adapt_bn=adapt_bn)


@pytest.mark.parametrize("regularizer,backbone", [("weight_decay", "mlp"), ("input_noise", "mlp"),
                                                  ("meta_aug", "mlp"), ("input_noise", "conv4"),
                                                  ("meta_aug", "conv4")])
def test_every_regulariser_stays_on_the_device(regularizer, backbone):
    check_run("maml", backbone, regularizer=regularizer)


def test_a_whole_training_run_on_the_device_equals_the_cpu_run(tmp_path):
    """``train`` end to end (batches moved by TaskBatch.to, Adam, checkpoints, validation
    points, the test evaluation, the relation probe) with device="meta" under the check."""
    def run(device, out):
        cfg = resolve_config(dataset="sinusoid", algorithm="maml", shots=5, iterations=3, meta_batch=4,
                             test_tasks=6, eval_every=2, eval_tasks=4, checkpoint_every=2, device=device,
                             grad_clip=10.0, trlearner=TRConfig(heads=2, sampler="random"))
        return train(cfg, out, progress=False)

    with DeviceCheck() as mode:
        on_device = run(str(DEVICE), tmp_path / "device")
    assert mode.ops > 1000
    on_cpu = run("cpu", tmp_path / "cpu")
    assert on_device["per_task"] == on_cpu["per_task"] and on_device["history"] == on_cpu["history"]
    assert (tmp_path / "device" / "checkpoint.pt").exists() and (tmp_path / "device" / "relation.pt").exists()


# ------------------------------------------------------------ benchmarks/gpu_check.py

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs the real check")
def test_gpu_check_without_a_gpu_says_so_and_exits_cleanly(tmp_path):
    p = subprocess.run([sys.executable, str(GPU_CHECK), "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "PyTorch sees no CUDA device" in p.stdout and "--dry" in p.stdout
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_section_on_the_cpu(tmp_path):
    """The script's every section on the CPU at tiny sizes (what the GPU run does, less the
    device): the GPU time is not spent finding a bug in the script."""
    p = subprocess.run([sys.executable, str(GPU_CHECK), "--dry", "--out", str(tmp_path), "--time-limit", "400"],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["dry"] and res["status"] == "all checks passed"
    assert {r["case"].split("/")[0] for r in res["equivalence"]} >= {"sinusoid", "omniglot", "metadataset-padded",
                                                                     "resnet12-tiny"}
    assert all(r["ok"] and r["update_norm_cpu"] > 0 for r in res["equivalence"])
    assert all(r["meta_iterations_per_s"] > 0 for r in res["throughput"])
    assert res["train"] and res["train"][0]["status"] == "ok"
    md = (tmp_path / "gpu_check.md").read_text()
    assert "DRY RUN" in md and "| omniglot 5-way 1-shot maml baseline |" in md


def test_gpu_check_stops_at_its_time_limit(tmp_path):
    """A limit too short for any section: the script stops before starting one, writes what it
    has and exits 2 (the limit is the script's own, not the caller's kill)."""
    p = subprocess.run([sys.executable, str(GPU_CHECK), "--dry", "--out", str(tmp_path), "--time-limit", "5"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["status"] == "cut short by the time limit" and "left of the 5 s limit" in res["stopped"]
    assert res["equivalence"] == []


def _gpu_check_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["sinusoid/metasgd/trlearner-random", "omniglot/protonet/trlearner",
                                  "metadataset-padded/maml/trlearner-random",
                                  "omniglot/maml/trlearner-random/loop-backend"])
def test_gpu_check_comparison_runs_on_a_non_cpu_device(name):
    """The GPU check's own comparison (benchmarks/gpu_check.py run_iterations) with the device
    side on the pretend device: the script moves everything it should, and equal numbers pass."""
    gc = _gpu_check_module()
    case = next(c for c in gc.equivalence_cases(dry=True) if c["name"] == name)
    cfg, algo, trl, batches = gc.make_case(case, dry=True)
    ref_losses, ref_update = gc.run_iterations(cfg, algo, trl, batches, "cpu", torch.float64)
    with DeviceCheck() as mode:
        losses, update = gc.run_iterations(cfg, algo, trl, batches, DEVICE, torch.float64)
    assert mode.ops > 100 and all(type(u) is torch.Tensor for u in update.values())
    assert losses == ref_losses and gc.rel(list(update.values()), list(ref_update.values())) == 0.0
    assert sum(float(u.norm()) for u in ref_update.values()) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_runs_end_to_end_on_cuda(tmp_path):
    p = subprocess.run([sys.executable, "-m", "trlearner", "train", "--dataset", "sinusoid", "--algorithm", "maml",
                        "--shots", "5", "--iterations", "5", "--test-tasks", "5", "--device", "cuda", "--no-progress",
                        "--trlearner", "--sampler", "random", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "ok"

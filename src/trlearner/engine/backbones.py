"""Backbones as pure functions of an explicit parameter dict.

A :class:`Backbone` is two functions, ``features(params, x)`` (the feature extractor g of
the paper) and ``head(params, h)`` (the last linear layer), plus ``init(generator)`` that
builds the parameter dict. Everything is plain tensor ops, so every backbone is exact under
``torch.func.vmap`` and ``torch.func.grad`` -- including batch normalisation, which is
written by hand (``torch.nn.BatchNorm`` under ``vmap`` gives wrong second-order gradients,
functorch issue 534).

Batch normalisation is *transductive* (MAML's convention): statistics are those of the batch
being processed (the support set while adapting, the query set while predicting), at
meta-training and at meta-test alike. There are no running statistics.

Padded episodes (variable-way/shot sources such as Meta-Dataset, stacked to a common size):
a padded example is an input whose entries are all NaN (``mark_padding``; the task sources
of ``trlearner.data.sources.dispatch.make_source`` mark their padding this way). Image backbones built
with ``padded=True`` find these rows, replace them by zeros and compute the batch-norm
statistics over the real rows only (``masked_batch_norm``), so the real rows' outputs -- and
everything computed from them -- equal those of the same episode unpadded (exact up to float
summation order; tests/test_masked_bn.py). Padded rows still get (finite, meaningless)
outputs, which the losses and metrics ignore (label -1). Backbones built with
``padded=False`` (every fixed-way source) run exactly the code they ran before; a NaN input
there propagates to a NaN loss and stops the run (never a silent bias).

Task-batched forward (``features_tasks`` / ``head_tasks``, the MLP only): the same model for
T tasks at once without ``vmap``: ``x`` [T, N, in] and every parameter either shared (its own
shape) or per task (a leading T dimension), ``-> [T, N, out]``; per-task weights go through
one ``baddbmm`` per layer. The engine's fast path (:func:`trlearner.engine.core.adapt_batch`)
uses it; it computes the same numbers as ``vmap`` of ``features`` / ``head`` up to float
summation order.

T-NET support: if the parameter dict holds ``"<layer>.T"`` (a square matrix over the
layer's output units or channels), the layer's output is multiplied by it. Backbones never
create these keys themselves; :mod:`trlearner.engine.algorithms.tnet` adds them.

Example::

    >>> import torch
    >>> bb = mlp([1, 40, 40], n_out=1)
    >>> params = bb.init(torch.Generator().manual_seed(0))
    >>> bb(params, torch.zeros(5, 1)).shape
    torch.Size([5, 1])
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Params = dict[str, torch.Tensor]

BN_EPS = 1e-5


@dataclass(frozen=True)
class Backbone:
    """A model ``x -> head(features(x))`` over an explicit parameter dict.

    Attributes:
        name: identifier used in configs and results.
        init: ``generator -> params``; deterministic given the generator.
        features: ``(params, x [B, *input_shape]) -> h [B, feature_dim]``.
        head: ``(params, h [B, feature_dim]) -> out [B, n_out]``.
        head_keys: the keys of ``params`` used by ``head`` only.
        feature_dim: size of ``h`` (None when :func:`from_module` cannot tell; TRLearner needs it).
        layers: the layer names in order, for per-layer transforms (T-NET).
        layer_width: output units/channels of each layer in ``layers``.
        batch_stats: True when outputs depend on the whole batch (batch norm), False when
            every row of ``x`` is processed independently.
        padded: True when the backbone accepts NaN-marked padded rows (see the module
            docstring) and keeps them out of the batch-norm statistics.
        features_tasks, head_tasks: the task-batched forward (module docstring), or None
            when the backbone has none (the engine then uses ``vmap``).
        bn_keys: further batch-norm scale/shift keys besides ``<layer>.bn_w``/``.bn_b``
            (:func:`from_module`: the parameters of the module's ``nn.BatchNorm`` layers),
            left out of the inner loop unless ``adapt_bn``.
    """

    name: str
    init: Callable[[torch.Generator], Params]
    features: Callable[[Params, torch.Tensor], torch.Tensor]
    head: Callable[[Params, torch.Tensor], torch.Tensor]
    head_keys: tuple[str, ...]
    feature_dim: int | None
    layers: tuple[str, ...]
    layer_width: tuple[int, ...]
    batch_stats: bool = True
    padded: bool = False
    bn_keys: tuple[str, ...] = ()
    features_tasks: Callable[[Params, torch.Tensor], torch.Tensor] | None = None
    head_tasks: Callable[[Params, torch.Tensor], torch.Tensor] | None = None

    def __call__(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return self.head(params, self.features(params, x))


def _transform(params: Params, layer: str, h: torch.Tensor) -> torch.Tensor:
    """Apply the optional T-NET transform of ``layer`` to ``h`` [B, C, ...] over dim 1."""
    t = params.get(f"{layer}.T")
    if t is None:
        return h
    if h.dim() == 2:
        return h @ t.T
    return torch.einsum("dc,bc...->bd...", t, h)


def _linear(params: Params, layer: str, h: torch.Tensor) -> torch.Tensor:
    return _transform(params, layer, F.linear(h, params[f"{layer}.w"], params[f"{layer}.b"]))


def _per_task(v: torch.Tensor, shared_dim: int, n_tasks: int) -> torch.Tensor:
    """``v`` as a per-task tensor [T, ...]: shared (``shared_dim`` dims) ones are expanded."""
    return v.expand(n_tasks, *v.shape) if v.dim() == shared_dim else v


def _linear_tasks(params: Params, layer: str, h: torch.Tensor) -> torch.Tensor:
    """``h`` [T, N, in] -> [T, N, out]; the layer's weight [out, in] / [T, out, in], bias
    [out] / [T, out] and T-NET transform [out, out] / [T, out, out], each shared or per task."""
    w, b, t = params[f"{layer}.w"], params[f"{layer}.b"], params.get(f"{layer}.T")
    if w.dim() == 2 and b.dim() == 1:
        out = F.linear(h, w, b)
    else:
        n = h.shape[0]
        out = torch.baddbmm(_per_task(b, 1, n).unsqueeze(1), h, _per_task(w, 2, n).transpose(1, 2))
    if t is None:
        return out
    return out @ t.T if t.dim() == 2 else torch.bmm(out, t.transpose(1, 2))


def _uniform(gen: torch.Generator, shape: tuple[int, ...], bound: float) -> torch.Tensor:
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


def _truncated_normal(gen: torch.Generator, shape: tuple[int, ...], std: float) -> torch.Tensor:
    """TensorFlow's ``tf.truncated_normal(shape, stddev=std)``: N(0, std^2) with every draw
    beyond 2 std re-drawn, i.e. the normal restricted to [-2 std, 2 std] (its own std is
    0.8796 std). Drawn by inverting the CDF of a uniform over [Phi(-2), Phi(2)]."""
    lo, hi = torch.special.ndtr(torch.tensor(-2.0)), torch.special.ndtr(torch.tensor(2.0))
    u = lo + (hi - lo) * torch.rand(shape, generator=gen)
    return (torch.special.ndtri(u) * std).clamp(-2 * std, 2 * std)


def _glorot_uniform(gen: torch.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> torch.Tensor:
    """TensorFlow's ``xavier_initializer`` (uniform): U(-b, b), b = sqrt(6 / (fan_in + fan_out))."""
    return _uniform(gen, shape, math.sqrt(6.0 / (fan_in + fan_out)))


# Initialisations (``init=`` of the backbones; docs/BASELINES.md):
# - "torch": PyTorch's nn.Linear/nn.Conv2d default (Kaiming-uniform with a=sqrt(5)), written out;
# - "finn": Finn et al.'s MAML code (cbfinn/maml maml.py): MLP weights truncated normal std 0.01,
#   zero biases; Conv4 weights Glorot-uniform (xavier_initializer_conv2d), head Glorot-uniform
#   on flattened max-pooled features (miniImageNet) or N(0, 1) on mean-pooled strided features
#   (Omniglot), zero head bias.
INITS = ("torch", "finn")


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")


def _init_linear(gen: torch.Generator, params: Params, layer: str, fan_in: int, fan_out: int,
                 init: str = "torch"):
    if init == "finn":  # maml.py construct_fc_weights: truncated_normal(stddev=0.01), zeros
        params[f"{layer}.w"] = _truncated_normal(gen, (fan_out, fan_in), 0.01)
        params[f"{layer}.b"] = torch.zeros(fan_out)
        return
    # PyTorch's nn.Linear default (Kaiming-uniform with a=sqrt(5)) written out.
    bound = 1 / math.sqrt(fan_in)
    params[f"{layer}.w"] = _uniform(gen, (fan_out, fan_in), bound)
    params[f"{layer}.b"] = _uniform(gen, (fan_out,), bound)


def batch_norm(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Transductive batch norm over all dims but 1: ``h`` [B, C, ...] -> same shape."""
    dims = [0] + list(range(2, h.dim()))
    var, mean = torch.var_mean(h, dim=dims, unbiased=False, keepdim=True)
    shape = [1, -1] + [1] * (h.dim() - 2)
    scale = torch.rsqrt(var + BN_EPS) * weight.view(shape)
    return (h - mean) * scale + bias.view(shape)


def mark_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` [..., N, *input] with every row whose ``mask`` [..., N] is False set to NaN: the
    padding convention the ``padded=True`` backbones read."""
    keep = mask.reshape(*mask.shape, *([1] * (x.dim() - mask.dim())))
    return torch.where(keep, x, torch.full_like(x, float("nan")))


def split_padding(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(``x`` [B, *input] with NaN-marked padded rows replaced by zeros, mask [B] of real rows).

    A row is padding when ALL its entries are NaN; a real row with some NaN entries stays NaN
    (and makes the loss NaN: corrupt data is reported, not hidden)."""
    pad = torch.isnan(x).flatten(1).all(1)
    keep = ~pad
    clean = torch.where(keep.view(-1, *([1] * (x.dim() - 1))), x, torch.zeros_like(x))
    return clean, keep


def masked_batch_norm(h: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor) -> torch.Tensor:
    """Transductive batch norm whose statistics use the rows where ``mask`` [B] is True only:
    ``h`` [B, C, ...] -> same shape. With every row real it equals :func:`batch_norm` (up to
    summation order). Padded rows must be finite (``split_padding`` zeroes them)."""
    dims = [0] + list(range(2, h.dim()))
    m = mask.to(h.dtype).view(-1, *([1] * (h.dim() - 1)))
    count = (m.sum() * h[0, 0].numel()).clamp_min(1)  # real rows x spatial positions
    mean = (h * m).sum(dims, keepdim=True) / count
    var = (((h - mean) * m) ** 2).sum(dims, keepdim=True) / count
    shape = [1, -1] + [1] * (h.dim() - 2)
    scale = torch.rsqrt(var + BN_EPS) * weight.view(shape)
    return (h - mean) * scale + bias.view(shape)


def _norm(padded: bool):
    """The batch norm of a backbone: ``(h, mask, w, b) -> h``; ``mask`` is None unpadded."""
    if padded:
        return masked_batch_norm
    return lambda h, mask, w, b: batch_norm(h, w, b)


# ---------------------------------------------------------------------------------- MLP


def mlp(sizes: list[int], n_out: int, init: str = "torch") -> Backbone:
    """ReLU MLP; ``sizes = [in, hidden1, ..., hiddenL]``, then a linear head to ``n_out``.

    The regression backbone of the paper is ``mlp([1, 40, 40], 1)`` (1-40-40-1, ReLU).
    Input ``x`` [B, in] -> features [B, hiddenL] -> output [B, n_out]. ``init``: ``torch``
    (PyTorch's default) or ``finn`` (MAML's code: truncated normal std 0.01, zero biases).
    """
    _check_init(init)
    hidden = [f"fc{i}" for i in range(1, len(sizes))]

    def init_params(gen: torch.Generator) -> Params:
        params: Params = {}
        for i, name in enumerate(hidden):
            _init_linear(gen, params, name, sizes[i], sizes[i + 1], init)
        _init_linear(gen, params, "head", sizes[-1], n_out, init)
        return params

    def built_from(linear):
        """(features, head) with ``linear`` as the layer: one task, or T tasks at once."""

        def features(params: Params, x: torch.Tensor) -> torch.Tensor:
            h = x
            for name in hidden:
                h = F.relu(linear(params, name, h))
            return h

        def head(params: Params, h: torch.Tensor) -> torch.Tensor:
            return linear(params, "head", h)

        return features, head

    features, head = built_from(_linear)
    features_tasks, head_tasks = built_from(_linear_tasks)

    return Backbone(
        name="mlp",
        init=init_params,
        features=features,
        head=head,
        head_keys=("head.w", "head.b"),
        feature_dim=sizes[-1],
        layers=tuple(hidden) + ("head",),
        layer_width=tuple(sizes[1:]) + (n_out,),
        batch_stats=False,
        features_tasks=features_tasks,
        head_tasks=head_tasks,
    )


# -------------------------------------------------------------------------------- Conv4


def _init_conv(gen: torch.Generator, params: Params, layer: str, c_in: int, c_out: int, k: int,
               init: str = "torch"):
    # No conv bias: every conv is followed by batch norm, whose shift makes a bias redundant
    # (its gradient is exactly zero; MAML's zero-initialised conv biases stay zero).
    shape = (c_out, c_in, k, k)
    if init == "finn":  # xavier_initializer_conv2d: fans are k*k*c_in and k*k*c_out
        params[f"{layer}.w"] = _glorot_uniform(gen, shape, c_in * k * k, c_out * k * k)
        return
    bound = 1 / math.sqrt(c_in * k * k)
    params[f"{layer}.w"] = _uniform(gen, shape, bound)


def _init_bn(params: Params, layer: str, c: int):
    params[f"{layer}.bn_w"] = torch.ones(c)
    params[f"{layer}.bn_b"] = torch.zeros(c)


BN_SUFFIXES = (".bn_w", ".bn_b")


def is_batch_norm_key(key: str) -> bool:
    """True for the batch-norm scale/shift entries of a parameter dict (``<layer>.bn_w``,
    ``<layer>.bn_b``): the entries the algorithms leave out of the inner loop unless asked
    (``adapt_bn``; docs/BASELINES.md)."""
    return key.endswith(BN_SUFFIXES)


def tf_same_pad(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """Zero-pad ``x`` [B, C, H, W] as TensorFlow's ``padding='SAME'`` does for a ``k`` x ``k``
    convolution with ``stride``: output size ceil(H / stride), total padding
    max((ceil(H/s) - 1) s + k - H, 0), the odd pixel at the bottom/right."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: W (left, right), then H (top, bottom)
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


DOWNSAMPLES = ("maxpool", "stride")


def conv4(in_shape: tuple[int, int, int], n_out: int, filters: int = 32, padded: bool = False,
          downsample: str = "maxpool", init: str = "torch") -> Backbone:
    """Conv4 of MAML/ProtoNet, two variants of the 4 blocks (``downsample``):

    - ``maxpool``: conv3x3 (stride 1, same padding) -> BN -> ReLU -> max-pool 2; the features
      are flattened: [B, filters * H' * W'] (28x28: H' = W' = 1; 84x84: H' = W' = 5). MAML's
      miniImageNet network and ProtoNet's network.
    - ``stride``: conv3x3 with stride 2 and TensorFlow 'SAME' padding -> BN -> ReLU, no pooling;
      the features are the mean over the remaining positions: [B, filters] (28x28 -> 14, 7, 4,
      2). MAML's Omniglot network (cbfinn/maml utils.py conv_block, maml.py forward_conv).

    ``x`` [B, C, H, W] -> features -> logits [B, n_out]. ``init``: ``torch`` or ``finn``
    (module comment at ``INITS``). ``padded=True``: NaN-marked padded rows are kept out of the
    batch-norm statistics (module docstring).
    """
    if downsample not in DOWNSAMPLES:
        raise ValueError(f"unknown downsample {downsample!r}; choose one of: {', '.join(DOWNSAMPLES)}")
    _check_init(init)
    norm = _norm(padded)
    c, h, w = in_shape
    blocks = [f"conv{i}" for i in range(1, 5)]
    for _ in blocks:
        h, w = (h // 2, w // 2) if downsample == "maxpool" else (-(-h // 2), -(-w // 2))
    feature_dim = filters * h * w if downsample == "maxpool" else filters

    def init_params(gen: torch.Generator) -> Params:
        params: Params = {}
        c_in = c
        for name in blocks:
            _init_conv(gen, params, name, c_in, filters, 3, init)
            _init_bn(params, name, filters)
            c_in = filters
        if init == "finn" and downsample == "stride":  # maml.py: w5 = random_normal (std 1), b5 = 0
            params["head.w"] = torch.randn((n_out, feature_dim), generator=gen)
            params["head.b"] = torch.zeros(n_out)
        elif init == "finn":  # maml.py (miniImageNet): w5 xavier_initializer, b5 = 0
            params["head.w"] = _glorot_uniform(gen, (n_out, feature_dim), feature_dim, n_out)
            params["head.b"] = torch.zeros(n_out)
        else:
            _init_linear(gen, params, "head", feature_dim, n_out)
        return params

    def features(params: Params, x: torch.Tensor) -> torch.Tensor:
        out, mask = split_padding(x) if padded else (x, None)
        for name in blocks:
            if downsample == "maxpool":
                out = F.conv2d(out, params[f"{name}.w"], padding=1)
            else:
                out = F.conv2d(tf_same_pad(out, 3, 2), params[f"{name}.w"], stride=2)
            out = _transform(params, name, out)
            out = F.relu(norm(out, mask, params[f"{name}.bn_w"], params[f"{name}.bn_b"]))
            if downsample == "maxpool":
                out = F.max_pool2d(out, 2)
        return out.flatten(1) if downsample == "maxpool" else out.mean(dim=(2, 3))

    def head(params: Params, feats: torch.Tensor) -> torch.Tensor:
        return _linear(params, "head", feats)

    return Backbone(
        name="conv4",
        init=init_params,
        features=features,
        head=head,
        head_keys=("head.w", "head.b"),
        feature_dim=feature_dim,
        layers=tuple(blocks) + ("head",),
        layer_width=(filters,) * 4 + (n_out,),
        padded=padded,
    )


# ---------------------------------------------------------------------------- ResNet-12


def resnet12(in_shape: tuple[int, int, int], n_out: int, widths=(64, 160, 320, 640),
             padded: bool = False) -> Backbone:
    """ResNet-12 (MetaOptNet/TADAM style): 4 residual blocks of 3 conv3x3+BN, leaky ReLU 0.1,
    a 1x1 conv+BN shortcut, and 2x2 max-pool; then global average pooling.

    ``x`` [B, C, H, W] -> features [B, widths[-1]] -> logits [B, n_out]. ``padded=True``:
    NaN-marked padded rows are kept out of the batch-norm statistics (module docstring).
    """
    c = in_shape[0]
    norm = _norm(padded)
    blocks = [f"res{i}" for i in range(1, len(widths) + 1)]

    def init(gen: torch.Generator) -> Params:
        params: Params = {}
        c_in = c
        for name, width in zip(blocks, widths):
            for j, cin in enumerate((c_in, width, width)):
                _init_conv(gen, params, f"{name}.c{j}", cin, width, 3)
                _init_bn(params, f"{name}.c{j}", width)
            _init_conv(gen, params, f"{name}.sc", c_in, width, 1)
            _init_bn(params, f"{name}.sc", width)
            c_in = width
        _init_linear(gen, params, "head", widths[-1], n_out)
        return params

    def block(params: Params, name: str, x: torch.Tensor, mask) -> torch.Tensor:
        out = x
        for j in range(3):
            layer = f"{name}.c{j}"
            out = F.conv2d(out, params[f"{layer}.w"], padding=1)
            out = norm(out, mask, params[f"{layer}.bn_w"], params[f"{layer}.bn_b"])
            if j < 2:
                out = F.leaky_relu(out, 0.1)
        sc = F.conv2d(x, params[f"{name}.sc.w"])
        sc = norm(sc, mask, params[f"{name}.sc.bn_w"], params[f"{name}.sc.bn_b"])
        out = _transform(params, name, out + sc)
        return F.max_pool2d(F.leaky_relu(out, 0.1), 2)

    def features(params: Params, x: torch.Tensor) -> torch.Tensor:
        out, mask = split_padding(x) if padded else (x, None)
        for name in blocks:
            out = block(params, name, out, mask)
        return out.mean(dim=(2, 3))

    def head(params: Params, feats: torch.Tensor) -> torch.Tensor:
        return _linear(params, "head", feats)

    return Backbone(
        name="resnet12",
        init=init,
        features=features,
        head=head,
        head_keys=("head.w", "head.b"),
        feature_dim=widths[-1],
        layers=tuple(blocks) + ("head",),
        layer_width=tuple(widths) + (n_out,),
        padded=padded,
    )


# ------------------------------------------------------------------- a user's nn.Module

# Keys the algorithms and TRLearner add to the parameter dict; a module's own parameter name
# must not look like one of them.
RESERVED_PREFIXES = ("lr.", "trl.")


def _transformable(m: torch.nn.Module) -> bool:
    """Layers whose output a T-NET transform can fold into the weights: linear in the weight
    along the output dimension (``nn.Linear``, ``nn.Conv1d/2d/3d`` with ``groups=1``)."""
    if isinstance(m, torch.nn.Linear):
        return True
    return isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)) and m.groups == 1


def from_module(module: torch.nn.Module, head: str | None = "auto", input_shape: tuple[int, ...] | None = None,
                batch_stats: bool | None = None, name: str | None = None) -> Backbone:
    """A :class:`Backbone` that runs a ``torch.nn.Module`` through ``torch.func.functional_call``.

    The parameter dict is the module's ``named_parameters()`` (keys such as ``"0.weight"``);
    the module's own tensors are never changed. T-NET transforms ``"<layer>.T"`` are folded
    into the weight and bias of each ``nn.Linear``/``nn.Conv`` layer (``T (W x + b) =
    (T W) x + T b``, exact). ``nn.BatchNorm`` layers must be built with
    ``track_running_stats=False`` (transductive batch norm, MAML's convention): a module with
    buffers (running statistics or any other) is refused, since a buffer updated in place
    cannot be carried through ``vmap``-ed tasks.

    Arguments:
        module: the network; its current weights are the initial meta-parameters (``init``
            ignores the generator: re-initialise the module for another draw). Call
            ``module.eval()`` first if it has dropout (random ops are refused under ``vmap``).
        head: the last layer, adapted alone by ANIL and dropped by ProtoNet. ``"auto"``: the
            last child of an ``nn.Sequential`` if it has parameters, else no head. ``None``:
            no head, the whole module is the feature extractor ``g`` (a ProtoNet embedding).
            A name: that child; in an ``nn.Sequential`` it must be the last one, otherwise its
            input (caught by a forward pre-hook) is the feature and its output must be the
            module's output.
        input_shape: one input's shape, to find ``feature_dim`` by a forward pass of zeros when
            neither a linear head nor a linear first layer gives it (TRLearner needs it).
        batch_stats: whether outputs depend on the whole batch; default True exactly when the
            module has an ``nn.BatchNorm`` layer. Pass True if ``forward`` mixes rows otherwise.
        name: the backbone's name (default ``"module:<class name>"``).

    Returns:
        Backbone: ``x`` [B, *input] -> module output [B, n_out].

    Example::

        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
        >>> bb = from_module(net)
        >>> bb.head_keys, bb.feature_dim, bb.layers
        (('2.weight', '2.bias'), 40, ('0', '2'))
        >>> params = bb.init(torch.Generator())
        >>> torch.equal(bb(params, torch.ones(3, 1)), net(torch.ones(3, 1)))
        True
    """
    from torch.func import functional_call

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_module needs a torch.nn.Module, got {type(module).__name__}")
    buffers = [k for k, _ in module.named_buffers()]
    if buffers:
        raise ValueError(
            f"the module has buffers {buffers[:4]}{' ...' if len(buffers) > 4 else ''}: state updated in place "
            "(batch-norm running statistics) cannot be carried through the vmapped tasks. Build batch norm "
            "with track_running_stats=False (transductive statistics, MAML's convention), or make a constant "
            "buffer a parameter with requires_grad=False, or use the built-in conv4/resnet12 backbones")
    names = [k for k, _ in module.named_parameters()]
    if not names:
        raise ValueError("the module has no parameters: there is nothing to meta-learn")
    bad = [k for k in names if "." not in k or k.startswith(RESERVED_PREFIXES) or k.endswith(".T")]
    if bad:
        raise ValueError(f"parameter names {bad[:4]} clash with the algorithms' keys (a top-level parameter, "
                         f"a submodule named lr or trl, or a parameter named T); wrap the module, "
                         f"from_module(nn.Sequential(module)), or rename them")
    children = dict(module.named_children())
    sequential = isinstance(module, torch.nn.Sequential)
    if head == "auto":
        last = next(reversed(children), None) if sequential else None
        head = last if last is not None and any(True for _ in children[last].parameters()) else None
    if head is not None:
        if head not in children:
            raise ValueError(f"head={head!r} is not a child of the module; its children: {list(children)}")
        if sequential and head != next(reversed(children)):
            raise ValueError(f"head={head!r} is not the last layer of the nn.Sequential")
    head_mod = children[head] if head is not None else None
    head_keys = tuple(k for k in names if head is not None and k.startswith(head + "."))
    layers = tuple(n for n, m in module.named_modules() if n and _transformable(m))
    widths = tuple(getattr(m, "out_features", None) or m.out_channels
                   for n, m in module.named_modules() if n in layers)
    bn = tuple(f"{n}.{k}" for n, m in module.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
               for k, _ in m.named_parameters(recurse=False))
    if batch_stats is None:
        batch_stats = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())

    def weights(params: Params, keys, prefix: str = "") -> Params:
        """The tensors of ``keys`` present in ``params``, named without ``prefix``, with the
        T-NET transform of their layer folded in."""
        out = {}
        for k in keys:
            if k not in params:
                continue
            t, v = params.get(f"{k.rpartition('.')[0]}.T"), params[k]
            if t is not None:
                v = t @ v if v.dim() == 1 else torch.einsum("dc,c...->d...", t, v)
            out[k[len(prefix):]] = v
        return out

    if head is None:
        def features(params: Params, x: torch.Tensor) -> torch.Tensor:
            return functional_call(module, weights(params, names), (x,))

        def head_fn(params: Params, h: torch.Tensor) -> torch.Tensor:
            return h
    else:
        # the body keeps the children's names, so its keys are the module's
        body = torch.nn.Sequential(OrderedDict((n, m) for n, m in children.items() if n != head)) if sequential else None
        body_keys = [k for k in names if k not in head_keys]

        def features(params: Params, x: torch.Tensor) -> torch.Tensor:
            if body is not None:
                return functional_call(body, weights(params, body_keys), (x,))
            seen = []
            hook = head_mod.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
            try:
                functional_call(module, weights(params, names), (x,))
            finally:
                hook.remove()
            return seen[-1]

        def head_fn(params: Params, h: torch.Tensor) -> torch.Tensor:
            return functional_call(head_mod, weights(params, head_keys, head + "."), (h,))

    feature_dim = None
    if isinstance(head_mod, torch.nn.Linear):
        feature_dim = head_mod.in_features
    else:
        first = next((m for m in module.modules() if any(True for _ in m.parameters(recurse=False))), None)
        if input_shape is None and isinstance(first, torch.nn.Linear):
            input_shape = (first.in_features,)
        if input_shape is not None:
            p = next(module.parameters())
            with torch.no_grad():
                feature_dim = features(dict(module.named_parameters()),
                                       torch.zeros(2, *input_shape, dtype=p.dtype, device=p.device)).shape[-1]

    def init(gen: torch.Generator) -> Params:
        return {k: v.detach().clone() for k, v in module.named_parameters()}

    return Backbone(
        name=name or f"module:{type(module).__name__}",
        init=init,
        features=features,
        head=head_fn,
        head_keys=head_keys,
        feature_dim=feature_dim,
        layers=layers,
        layer_width=widths,
        batch_stats=bool(batch_stats),
        bn_keys=bn,
    )


def as_backbone(model) -> Backbone:
    """``model`` as a :class:`Backbone`: a Backbone as it is, a ``torch.nn.Module`` through
    :func:`from_module` with its defaults.

    Example::

        >>> from torch import nn
        >>> as_backbone(nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1))).head_keys
        ('2.weight', '2.bias')
    """
    if isinstance(model, Backbone):
        return model
    if isinstance(model, torch.nn.Module):
        return from_module(model)
    raise TypeError(f"expected a trlearner Backbone or a torch.nn.Module, got {type(model).__name__}")


def make_backbone(name: str, input_shape: tuple[int, ...], n_out: int, padded: bool = False,
                  **kwargs) -> Backbone:
    """Build a backbone by name: ``mlp`` (regression), ``conv4``, ``resnet12``.

    ``padded=True`` (variable-way sources) builds the image backbones with padding-aware batch
    norm; the MLP has no batch statistics and refuses it (its sources are never padded).
    Options: ``hidden`` (mlp), ``filters``/``downsample`` (conv4), ``init`` (mlp, conv4;
    resnet12 has only ``torch``)."""
    init = kwargs.get("init", "torch")
    _check_init(init)
    if name == "mlp":
        if padded:
            raise ValueError("the mlp backbone has no padded mode: padded (variable-size) episodes "
                             "are image episodes; use conv4 or resnet12")
        hidden = kwargs.get("hidden", [40, 40])
        return mlp([input_shape[0], *hidden], n_out, init=init)
    if name == "conv4":
        return conv4(tuple(input_shape), n_out, filters=kwargs.get("filters", 32), padded=padded,
                     downsample=kwargs.get("downsample", "maxpool"), init=init)
    if name == "resnet12":
        if init != "torch" or kwargs.get("downsample", "maxpool") != "maxpool":
            raise ValueError("resnet12 has only init='torch' and max-pool downsampling (MetaOptNet's "
                             "network); use conv4 for MAML's strided network or Finn's init")
        return resnet12(tuple(input_shape), n_out, padded=padded)
    raise ValueError(f"unknown backbone {name!r}; choose one of: mlp, conv4, resnet12")

"""TRLearner (Task Relation Learner): task relations and relation-aware consistency.

A plug-in regulariser for any :class:`~trlearner.engine.algorithms.base.Algorithm`; it uses only
the algorithm's ``adapt`` and ``predict`` (through :mod:`trlearner.engine.core`) and the
backbone's feature extractor ``g``. Decisions where the paper is silent (all configurable in
:class:`TRConfig`, written in :mod:`.trconfig`; documented in ``docs/TRLEARNER.md``):

1. **Sampler.** Each task's meta-data D^_i is ``meta_data`` support points (per class for
   classification) chosen by greedy farthest-point selection in the space of
   ``[g(x), y]`` (``"diverse"``: the 2-approximation of the k-centre problem, a
   diversity-maximising rule; the first point is the one nearest the centroid), or uniformly
   at random (``"random"``). Selection is not differentiated through.
2. **Task representation.** Regression: ``r_i = [mean_j g(x_j) y_j, mean_j g(x_j)]`` over
   the meta-data -- the least-squares statistics ``(G^T y, G^T 1)/m`` of a linear head on
   ``g``, so it depends on the labels (every sinusoid task has the same x distribution).
   Classification: the per-class means of ``g`` concatenated in episode class order
   (``class_repr="concat"``) or averaged (``"mean"``, order-invariant). ``g`` uses the
   meta-parameters (before adaptation), so relation gradients reach the backbone.
3. **Relation matrix.** ``m_ij = (1/K) sum_k cos(w_k * r_i, w_k * r_j)`` with K learnable
   weight vectors ``w_k`` (meta-parameter ``"trl.omega"`` [K, D], initialised to
   ``1 + 0.1 N(0, 1)`` so that heads differ), trained by the outer loop with everything else
   (``learn_omega=False``: all ones, fixed -- the plain cosine of representations).
4. **Consistency loss.** ``L_TR(i) = loss( sum_{p!=i} w_ip f^p(xq_i) / sum_{p!=i} w_ip, yq_i)``
   with ``w_ip = relu(m_ip) + eps`` (``weights="relu"``: dissimilar tasks get no weight and
   the denominator cannot vanish), ``w_ip = m_ip`` exactly as written (``weights="raw"``,
   denominator kept away from 0 with its sign) or ``w_ip = exp(m_ip)`` (``weights="softmax"``:
   a softmax of the relations over ``p != i``, positive and smooth). Model outputs are averaged as they are
   (regression values; classification logits).
5. **Label alignment (classification).** Episode class indices are arbitrary, so f^p's class
   c is not task i's class c. ``align="match"`` (default) permutes f^p's outputs so that each
   of task i's classes reads the output of p's class whose mean feature is most similar
   (Hungarian matching of class means); ``align="index"`` uses the indices as they are.

The meta-objective is ``mean_i [ L(D^q_i, f^i) + lam * L_TR(D^q_i, f^i) ]``.

Example::

    >>> import torch
    >>> from trlearner.engine.algorithms import make_algorithm
    >>> from trlearner.engine.backbones import mlp
    >>> from trlearner.data.sources.dispatch import make_source
    >>> algo = make_algorithm("maml", mlp([1, 40, 40], 1), "regression")
    >>> trl = TRLearner(algo, TRConfig(lam=0.1, heads=2, meta_data=3), shots=5)
    >>> gen = torch.Generator().manual_seed(0)
    >>> meta = {**algo.init_params(gen, 0.01), **trl.init_params(gen)}
    >>> batch = make_source("sinusoid", "train", shots=5).batch(range(4))
    >>> out = trl.meta_loss(meta, batch, steps=1, lr=0.01)
    >>> out.relation.shape
    torch.Size([4, 4])
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import vmap

from trlearner.engine.algorithms.base import Algorithm, mse_loss
from trlearner.engine.backbones import Params
from trlearner.engine.core import adapt_batch, adapt_cross, cross_predict
from trlearner.method.trconfig import (ALIGNS, CLASS_REPRS, SAMPLERS,  # noqa: F401 (the API's names)
                                      WEIGHTS, TRConfig)

EPS = 1e-6


# ------------------------------------------------------------------------------ sampler


def _greedy_farthest(dist: np.ndarray, first: np.ndarray, take: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The greedy farthest-point loop over G groups at once: ``dist`` [G, K, K], start points
    ``first`` [G], ``take`` [G] points per group, ``valid`` [G, K] members -> chosen [G, K]."""
    rows = np.arange(len(first))
    chosen = np.zeros(valid.shape, dtype=bool)
    chosen[rows, first] = True
    mind = dist[rows, first]  # [G, K]: distance to the nearest chosen point
    for step in range(1, int(take.max(initial=1))):
        nxt = np.where(chosen | ~valid, -1.0, mind).argmax(1)
        more = take > step
        chosen[rows[more], nxt[more]] = True
        mind = np.minimum(mind, dist[rows, nxt])
    return chosen


def farthest_point_mask(z: torch.Tensor, m: int) -> torch.Tensor:
    """Greedy farthest-point selection of ``m`` of ``n`` points in each of B groups.

    ``z`` [B, n, d] -> 0/1 mask [B, n] with exactly ``min(m, n)`` ones per group. The first
    point is the one nearest the group's centroid; each next one maximises the distance to
    the points already chosen. Not differentiated through: the greedy loop runs in numpy
    (a handful of tiny steps; as torch ops they cost more in dispatch than in arithmetic).
    """
    b, n, _ = z.shape
    with torch.no_grad():
        dist = torch.cdist(z, z).cpu().numpy()  # [B, n, n]
        first = (z - z.mean(1, keepdim=True)).norm(dim=-1).argmin(1).cpu().numpy()  # [B]
    chosen = _greedy_farthest(dist, first, np.full(b, min(m, n)), np.ones((b, n), dtype=bool))
    return torch.from_numpy(chosen).to(device=z.device, dtype=z.dtype)


def class_farthest_point_mask(z: torch.Tensor, labels: torch.Tensor, m: int | None = None) -> torch.Tensor:
    """Farthest-point selection within each class of each task, for classes of any size.

    ``z`` [T, S, d], ``labels`` [T, S] (class ids, ``-1`` = padding) -> 0/1 mask [T, S] with
    ``min(m, k)`` points chosen among each class's ``k`` points (``m=None``: ``ceil(k / 2)``),
    by the rule of :func:`farthest_point_mask` (start nearest the class centroid, then the
    farthest from those chosen). Used for variable-way, variable-shot episodes (Meta-Dataset).
    """
    t, s, _ = z.shape
    lab = labels.detach().cpu().numpy()
    with torch.no_grad():
        dist = torch.cdist(z, z).cpu().numpy()  # [T, S, S]
        pts = z.detach().cpu().numpy()
    # one group per (task, class): member indices padded with -1 to the largest class
    groups = [(ti, np.flatnonzero(lab[ti] == c)) for ti in range(t) for c in np.unique(lab[ti][lab[ti] >= 0])]
    task_of = np.array([ti for ti, _ in groups], dtype=np.int64)
    idx = np.full((len(groups), max(len(x) for _, x in groups)), -1, dtype=np.int64)
    for j, (_, x) in enumerate(groups):
        idx[j, : len(x)] = x
    valid = idx >= 0
    size = valid.sum(1)
    take = np.minimum(m, size) if m is not None else np.ceil(size / 2).astype(np.int64)
    safe = np.where(valid, idx, 0)
    gp = pts[task_of[:, None], safe]  # [G, K, d]
    centroid = (gp * valid[..., None]).sum(1, keepdims=True) / size[:, None, None]
    first = np.where(valid, np.linalg.norm(gp - centroid, axis=-1), np.inf).argmin(1)  # [G]
    gd = dist[task_of[:, None, None], safe[:, :, None], safe[:, None, :]]  # [G, K, K]
    gi, ki = np.nonzero(_greedy_farthest(gd, first, take, valid))
    mask = np.zeros((t, s), dtype=bool)
    mask[task_of[gi], idx[gi, ki]] = True
    return torch.from_numpy(mask).to(device=z.device, dtype=z.dtype)


def random_mask(b: int, n: int, m: int, gen: torch.Generator, device=None) -> torch.Tensor:
    """A uniformly random subset of ``min(m, n)`` of ``n`` points per group -> mask [B, n] on
    ``device`` (default: the generator's). The draw is made on the generator's device (a CPU
    generator: train's), so a run picks the same points on every device."""
    order = torch.rand(b, n, generator=gen, device=gen.device).argsort(1)
    mask = torch.zeros(b, n, device=gen.device)
    mask.scatter_(1, order[:, : min(m, n)], 1.0)
    return mask.to(gen.device if device is None else device)


def class_random_mask(labels: torch.Tensor, m: int | None, gen: torch.Generator) -> torch.Tensor:
    """A uniformly random subset of ``min(m, k)`` (``m=None``: ``ceil(k / 2)``) of each class's
    ``k`` points: ``labels`` [T, S] (-1 = padding) -> mask [T, S] on the labels' device.

    The per-class loop runs on the generator's device (one copy of the labels there, instead
    of a device round trip per class), so a run picks the same points on every device."""
    lab = labels.to(gen.device)
    key = torch.rand(lab.shape, generator=gen, device=gen.device)
    mask = torch.zeros(lab.shape, device=gen.device)
    for t in range(lab.shape[0]):
        for c in lab[t][lab[t] >= 0].unique():
            idx = (lab[t] == c).nonzero().flatten()
            take = min(m, len(idx)) if m is not None else math.ceil(len(idx) / 2)
            mask[t, idx[key[t, idx].argsort()[:take]]] = 1.0
    return mask.to(labels.device)


# ----------------------------------------------------------------- relations and L_TR


def relation_matrix(omega: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Multi-head cosine relations: ``omega`` [K, D], ``r`` [T, D] -> ``M`` [T, T],
    ``M[i, j] = mean_k cos(omega_k * r_i, omega_k * r_j)``."""
    z = F.normalize(omega.unsqueeze(0) * r.unsqueeze(1), dim=-1, eps=EPS)  # [T, K, D]
    z = z.flatten(1)  # sum over heads and dims of z_ikd z_jkd is one dot product
    return z @ z.T / omega.shape[0]


@functools.lru_cache(maxsize=16)
def _off_diagonal(t: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``1 - I`` [T, T], made once per (T, dtype, device)."""
    return 1.0 - torch.eye(t, dtype=dtype, device=device)


def relation_weights(m: torch.Tensor, mode: str = "relu") -> torch.Tensor:
    """Row-normalised weights over the OTHER tasks: ``m`` [T, T] -> ``W`` [T, T],
    ``W[i, i] = 0`` and ``sum_p W[i, p] = 1``."""
    if mode == "relu":
        w = (F.relu(m) + EPS) * _off_diagonal(m.shape[0], m.dtype, m.device)
        return w / w.sum(1, keepdim=True)
    if mode == "raw":
        w = m * _off_diagonal(m.shape[0], m.dtype, m.device)
        den = w.sum(1, keepdim=True)
        den = torch.where(den >= 0, den.clamp_min(EPS), den.clamp_max(-EPS))
        return w / den
    if mode == "softmax":
        # W[i, p] = exp(m_ip) / sum_{q != i} exp(m_iq): the diagonal is masked out with -inf
        eye = torch.eye(m.shape[0], dtype=torch.bool, device=m.device)
        return torch.softmax(m.masked_fill(eye, float("-inf")), dim=1)
    raise ValueError(f"unknown relation weight mode {mode!r}; choose one of {WEIGHTS}")


def per_task_loss(loss_fn, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``loss_fn`` of each task: ``out`` [T, Q, out], ``y`` [T, Q(, 1)] -> [T]. The mean squared
    error is written batched (``vmap`` of a three-op loss costs more than the loss itself)."""
    if loss_fn is mse_loss:
        return ((out - y) ** 2).flatten(1).mean(1)
    return vmap(loss_fn)(out, y)


def consistency_loss(weights: torch.Tensor, cross_out: torch.Tensor, yq: torch.Tensor, loss_fn):
    """Per-task L_TR: ``weights`` [T, T] (``W[i, p]``), ``cross_out`` [T(p), T(i), Q, out]
    with ``cross_out[p, i] = f^p(xq_i)``, ``yq`` [T, Q(, 1)] -> [T]."""
    mixed = (weights.T[:, :, None, None] * cross_out).sum(0)  # [T(i), Q, out]: sum_p W[i, p] f^p(xq_i)
    return per_task_loss(loss_fn, mixed, yq)


def align_classes(cross_out: torch.Tensor, class_feats: torch.Tensor, ways: torch.Tensor | None = None) -> torch.Tensor:
    """Permute each model's class outputs to the classes of the task it is applied to.

    ``class_feats`` [T, N, d] (class-mean features); for every pair (p, i) the Hungarian
    matching of task i's classes to task p's classes by cosine similarity of class means
    gives ``pi``; returns ``out[p, i, :, c] = cross_out[p, i, :, pi(c)]``.

    ``ways`` [T] (variable-way episodes): task i has classes ``0..ways[i]-1`` and model p
    outputs ``0..ways[p]-1``; the matching is rectangular, and when p has fewer classes than
    i, i's unmatched classes read p's most similar class. Outputs beyond a task's ways keep
    their index (the loss masks them).
    """
    from scipy.optimize import linear_sum_assignment

    t, n = class_feats.shape[:2]
    n_out = cross_out.shape[-1]
    f = F.normalize(class_feats.detach(), dim=-1)
    sim = torch.einsum("icd,pkd->pick", f, f).cpu().numpy()  # [p, i, c, k]
    w = [n] * t if ways is None else [int(v) for v in ways]
    perm = np.tile(np.arange(n_out), (t, t, 1))
    for p in range(t):
        for i in range(t):
            block = sim[p, i, : w[i], : w[p]]
            rows, cols = linear_sum_assignment(-block)
            perm[p, i, rows] = cols
            if w[p] < w[i]:  # classes of i left unmatched: the most similar class of p
                rest = np.setdiff1d(np.arange(w[i]), rows)
                perm[p, i, rest] = block[rest].argmax(1)
    index = torch.from_numpy(perm).to(cross_out.device)[:, :, None, :].expand_as(cross_out)
    return torch.gather(cross_out, 3, index)


class TROutput(NamedTuple):
    loss: torch.Tensor  # scalar: mean_i [L_i + lam * L_TR_i]
    task_loss: torch.Tensor  # scalar: mean_i L_i (the baseline's objective)
    tr_loss: torch.Tensor  # scalar: mean_i L_TR_i
    relation: torch.Tensor  # [T, T], detached


class TRLearner:
    """TRLearner around any algorithm: ``meta_loss`` replaces the baseline's objective.

    Relations between the tasks of a meta-batch (from their sampled meta-data) weight a
    relation-aware consistency loss: each task's queries are also predicted by the other
    tasks' adapted models, mixed by relation weight (module docstring, points 1-5).

    Arguments:
        algo: the algorithm (:class:`~trlearner.engine.algorithms.MAML`, ``ANIL``, ...), built
            on a backbone or a ``torch.nn.Module``; its ``backbone.feature_dim`` is needed.
        config: the settings (:class:`TRConfig`; ``lam`` weighs the consistency loss).
        shots: support points per task (per class for classification); None only with
            ``variable_ways``.
        ways: classes per task (classification).
        variable_ways: episodes of any ways and shots (Meta-Dataset).

    Returns:
        ``meta_loss(meta, batch, steps, lr)`` returns a :class:`TROutput` (``loss`` to
        minimise, ``task_loss``, ``tr_loss``, the relation matrix [T, T]); ``init_params(gen)``
        the relation layer's meta-parameters, to merge into the algorithm's.

    References:
        1. Wang et al. 2024. "Rethinking Meta-Learning from a Learning Lens." arXiv:2409.08474.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> from trlearner import MAML, make_source
        >>> net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
        >>> algo = MAML(net, "regression")
        >>> trl = TRLearner(algo, TRConfig(lam=0.1), shots=5)
        >>> gen = torch.Generator().manual_seed(0)
        >>> meta = {**algo.init_params(gen, 0.01), **trl.init_params(gen)}
        >>> out = trl.meta_loss(meta, make_source("sinusoid", "train", shots=5).batch(range(4)), steps=1, lr=0.01)
        >>> out.relation.shape, bool(out.loss > 0)
        (torch.Size([4, 4]), True)
    """

    def __init__(self, algo: Algorithm, config: TRConfig, shots: int | None, ways: int | None = None,
                 variable_ways: bool = False):
        self.algo = algo
        self.cfg = config
        self.kind = algo.kind
        self.ways = ways
        self.variable_ways = variable_ways
        d = algo.backbone.feature_dim
        if d is None:
            raise ValueError("TRLearner needs the backbone's feature size, which this nn.Module does not show: "
                             "build it with trlearner.from_module(module, head=..., input_shape=<one input's shape>)")
        if variable_ways:
            # episodes of any ways and shots (Meta-Dataset): classes come from the labels
            # (-1 = padding), meta-data per class = min(meta_data, k) or ceil(k / 2)
            if self.kind != "classification":
                raise ValueError("variable_ways is for classification episodes")
            if config.class_repr != "mean":
                raise ValueError("TRLearner on variable-way episodes needs class_repr='mean' (--class-repr mean): "
                                 "concatenated class means have a different size for every number of ways")
            self.meta_data = None if config.meta_data is None else max(1, config.meta_data)
            self.repr_dim = d
            return
        m = config.meta_data if config.meta_data is not None else math.ceil(shots / 2)
        self.meta_data = max(1, min(m, shots))
        if self.kind == "regression":
            self.repr_dim = 2 * d
        else:
            if ways is None:
                raise ValueError("TRLearner on classification needs the number of ways "
                                 "(or variable_ways=True for variable-way episodes)")
            self.repr_dim = ways * d if config.class_repr == "concat" else d

    def init_params(self, gen: torch.Generator) -> Params:
        """The relation layer's meta-parameters: ``{"trl.omega": [K, D]}`` (all ones and never
        trained when ``learn_omega`` is False: plain cosine similarity of representations)."""
        if not self.cfg.learn_omega:
            return {"trl.omega": torch.ones(self.cfg.heads, self.repr_dim)}
        omega = 1.0 + 0.1 * torch.randn(self.cfg.heads, self.repr_dim, generator=gen)
        return {"trl.omega": omega}

    def _features(self, meta: Params, xs) -> torch.Tensor:
        """``g`` of every support point: ``xs`` [T, S, *input] -> ``h`` [T, S, d]."""
        backbone = self.algo.backbone
        t, s = xs.shape[:2]
        if backbone.batch_stats:  # statistics per task: one batch per task
            return vmap(backbone.features, in_dims=(None, 0))(meta, xs)
        # no batch statistics: one call over all T*S points
        return backbone.features(meta, xs.reshape(t * s, *xs.shape[2:])).reshape(t, s, -1)

    def _mask(self, h: torch.Tensor, ys, gen: torch.Generator | None) -> torch.Tensor:
        """The sampler's 0/1 selection [T, S] from the support features ``h`` [T, S, d]
        (detached: selection is not differentiated through)."""
        t, s, d = h.shape
        if self.variable_ways:
            if self.cfg.sampler == "diverse":
                return class_farthest_point_mask(h.detach(), ys, self.meta_data).to(h.dtype)
            if gen is None:
                raise ValueError("the random sampler needs a torch.Generator")
            return class_random_mask(ys, self.meta_data, gen).to(h.dtype)
        if self.kind == "regression":
            groups, n = 1, s
            points = torch.cat([h.detach(), ys], -1).reshape(t, 1, s, d + 1)
        else:
            groups, n = self.ways, s // self.ways
            points = h.detach().reshape(t, groups, n, d)
        flat = points.reshape(t * groups, n, -1)
        if self.cfg.sampler == "diverse":
            mask = farthest_point_mask(flat, self.meta_data)
        else:
            if gen is None:
                raise ValueError("the random sampler needs a torch.Generator")
            mask = random_mask(t * groups, n, self.meta_data, gen, device=h.device)
        return mask.reshape(t, s).to(h.dtype)

    @torch.no_grad()
    def sample_mask(self, meta: Params, xs, ys, gen: torch.Generator | None = None) -> torch.Tensor:
        """The sampler's selection alone, without a graph: ``xs`` [T, S, *input], ``ys``
        [T, S(, 1)] -> 0/1 mask [T, S]; the mask :meth:`representations` would draw.

        The selection runs in numpy (diverse) or draws from ``gen`` (random), which cannot
        happen inside ``torch.func.vmap``: stacked runs (:mod:`trlearner.run.stacked`) call this
        first, outside the seed ``vmap``, and pass the result as ``mask``.
        """
        return self._mask(self._features(meta, xs), ys, gen)

    def representations(self, meta: Params, xs, ys, gen: torch.Generator | None = None,
                        mask: torch.Tensor | None = None):
        """Task representations from the sampled meta-data.

        ``xs`` [T, S, *input], ``ys`` [T, S(, 1)] -> (``r`` [T, D], class means [T, N, d] or
        None, selection mask [T, S]). ``mask`` [T, S] (from :meth:`sample_mask`) replaces the
        sampler's draw.
        """
        h = self._features(meta, xs)  # [T, S, d]
        t, s, d = h.shape
        mask = self._mask(h, ys, gen) if mask is None else mask.to(h.dtype)
        if self.variable_ways:
            return self._variable_way_representations(h, ys, mask)
        if self.kind == "regression":
            # r_i = [sum_j a_j y_j h_j, sum_j a_j h_j] with a = mask / |mask|: one broadcast product
            # with label-dependent coefficients that carry no gradient (a CPU bmm of these tiny
            # matrices loops over the batch and costs twice as much)
            a = (mask / mask.sum(1, keepdim=True)).unsqueeze(-1)  # [T, S, 1]
            coef = torch.cat([a * ys.reshape(t, s, 1), a], -1)  # [T, S, 2]
            r = (coef.unsqueeze(-1) * h.unsqueeze(2)).sum(1).reshape(t, 2 * d)
            return r, None, mask
        groups, n = self.ways, s // self.ways
        mh = (mask.unsqueeze(-1) * h).reshape(t, groups, n, d)
        class_means = mh.sum(2) / mask.reshape(t, groups, n).sum(2, keepdim=True)  # [T, N, d]
        r = class_means.flatten(1) if self.cfg.class_repr == "concat" else class_means.mean(1)
        return r, class_means, mask

    def _variable_way_representations(self, h: torch.Tensor, ys: torch.Tensor, mask: torch.Tensor):
        """``h`` [T, S, d], ``ys`` [T, S] (-1 = padding), ``mask`` [T, S] -> (``r`` [T, d] = mean
        over the task's classes of their meta-data means, class means [T, C, d] (C = the most
        ways in the batch; absent classes 0), selection mask [T, S])."""
        ways = ys.max(1).values + 1  # [T]; labels are 0..ways-1
        onehot = F.one_hot(ys.clamp_min(0), int(ways.max())).to(h.dtype) * mask.unsqueeze(-1)  # [T, S, C]
        counts = onehot.sum(1)  # [T, C]
        class_means = (onehot.transpose(1, 2) @ h) / counts.clamp_min(1).unsqueeze(-1)  # [T, C, d]
        r = class_means.sum(1) / ways.unsqueeze(-1).to(h.dtype)
        return r, class_means, mask

    def meta_loss(self, meta: Params, batch, steps: int, lr: float, backend: str = "vmap",
                  first_order: bool = False, gen: torch.Generator | None = None,
                  mask: torch.Tensor | None = None) -> TROutput:
        """``mean_i [L(D^q_i, f^i) + lam L_TR(D^q_i, f^i)]`` over the meta-batch; ``mask``
        [T, S]: the sampler's selection, drawn beforehand (:meth:`sample_mask`)."""
        xs, ys, xq, yq = batch.xs, batch.ys, batch.xq, batch.yq
        if backend == "vmap" and not self.algo.backbone.batch_stats:
            # one vmapped call adapts every task and predicts on every task's queries; the
            # task's own predictions are the diagonal (the same numbers as the path below)
            cross = adapt_cross(self.algo, meta, xs, ys, xq, steps, lr, first_order)  # [T, T, Q, out]
            own = torch.diagonal(cross, 0, 0, 1).movedim(-1, 0)  # [T, Q, out]: f^i(xq_i)
            task_losses = per_task_loss(self.algo.loss_fn, own, yq)
        else:
            out = adapt_batch(self.algo, meta, xs, ys, xq, yq, steps, lr, backend, first_order)
            cross = cross_predict(self.algo, meta, out.states, xq, backend)  # [T, T, Q, out]
            task_losses = out.losses
        r, class_means, _ = self.representations(meta, xs, ys, gen, mask)
        omega = meta["trl.omega"] if self.cfg.learn_omega else meta["trl.omega"].detach()
        m = relation_matrix(omega, r)
        if self.kind == "classification" and self.cfg.align == "match":
            ways = ys.max(1).values + 1 if self.variable_ways else None
            cross = align_classes(cross, class_means, ways)
        tr = consistency_loss(relation_weights(m, self.cfg.weights), cross, yq, self.algo.loss_fn)
        task_loss = task_losses.mean()
        tr_loss = tr.mean()
        return TROutput(task_loss + self.cfg.lam * tr_loss, task_loss, tr_loss, m.detach())

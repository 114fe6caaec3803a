"""TRLearner overhead on the sinusoid MLP: current ``TRLearner.meta_loss`` vs the proposed
lean version (see README "profile and proposed changes"). Not part of the package.

    python benchmarks/trlearner_overhead.py [--repeats 21]

1. checks, in float64, that the lean version gives the same loss and meta-gradient as the
   current code for maml/anil/metasgd/tnet; 2. times baseline / current / lean, interleaved,
   1 thread, and prints the paired TRLearner/baseline ratios.
"""

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import vmap

from trlearner.algorithms import make_algorithm
from trlearner.backbones import mlp
from trlearner.data.tasks import make_source
from trlearner.engine import InnerGrad, adapt_batch
from trlearner.relation import TRConfig, TRLearner, TROutput

_OFF = {}


def off_diag(t, dtype):
    if (t, dtype) not in _OFF:
        _OFF[t, dtype] = 1.0 - torch.eye(t, dtype=dtype)
    return _OFF[t, dtype]


def fps_numpy(z, m):
    """``relation.farthest_point_mask`` with the greedy loop in numpy (same selection)."""
    with torch.no_grad():
        b, n, _ = z.shape
        m = min(m, n)
        dist = torch.cdist(z, z).numpy()
        first = (z - z.mean(1, keepdim=True)).norm(dim=-1).argmin(1).numpy()
    rows = np.arange(b)
    mask = np.zeros((b, n), dtype=bool)
    mask[rows, first] = True
    mind = dist[rows, first]
    for _ in range(m - 1):
        nxt = np.where(mask, -1.0, mind).argmax(1)
        mask[rows, nxt] = True
        mind = np.minimum(mind, dist[rows, nxt])
    return torch.from_numpy(mask).to(z.dtype)


class LeanTRLearner(TRLearner):
    """Regression, backbones without batch statistics, diverse sampler, relu weights."""

    def meta_loss(self, meta, batch, steps, lr, backend="vmap", first_order=False, gen=None):
        xs, ys, xq, yq = batch.xs, batch.ys, batch.xq, batch.yq
        algo, (t, s), q = self.algo, xs.shape[:2], xq.shape[1]
        grad = InnerGrad("func", first_order)
        xq_all = xq.reshape(t * q, *xq.shape[2:])

        def one_task(a, b):  # adapt to task p, predict on every task's queries
            return algo.predict(meta, algo.adapt(meta, a, b, steps, lr, grad), xq_all)

        cross = vmap(one_task, randomness="error")(xs, ys).reshape(t, t, q, -1)  # [p, i, q, o]
        h = algo.backbone.features(meta, xs.reshape(t * s, *xs.shape[2:])).reshape(t, s, -1)
        mask = fps_numpy(torch.cat([h.detach(), ys], -1), self.meta_data)
        wh = (mask / mask.sum(1, keepdim=True)).unsqueeze(-1) * h
        r = torch.cat([(wh * ys).sum(1), wh.sum(1)], -1)  # [T, 2d]
        omega = meta["trl.omega"]
        z = F.normalize(omega.unsqueeze(0) * r.unsqueeze(1), dim=-1, eps=1e-6).flatten(1)
        m = (z @ z.T) / omega.shape[0]
        w = (F.relu(m) + 1e-6) * off_diag(t, m.dtype)
        w = w / w.sum(1, keepdim=True)
        own = torch.diagonal(cross, 0, 0, 1).movedim(-1, 0)  # f^i(xq_i)
        mixed = (w.T[:, :, None, None] * cross).sum(0)  # sum_p W[i, p] f^p(xq_i)
        task_loss, tr_loss = ((own - yq) ** 2).mean(), ((mixed - yq) ** 2).mean()
        return TROutput(task_loss + self.cfg.lam * tr_loss, task_loss, tr_loss, m.detach())


def setup(name, variant, dtype=torch.float32):
    batch = make_source("sinusoid", "train", shots=5).batch(range(25))
    batch = batch._replace(**{f: getattr(batch, f).to(dtype) for f in ("xs", "ys", "xq", "yq")})
    algo = make_algorithm(name, mlp([1, 40, 40], 1), "regression")
    gen = torch.Generator().manual_seed(0)
    meta = algo.init_params(gen, 0.01)
    trl = {"base": None, "current": TRLearner, "lean": LeanTRLearner}[variant]
    trl = trl(algo, TRConfig(), shots=5) if trl else None
    if trl:
        meta.update(trl.init_params(gen))
    meta = {k: v.to(dtype).requires_grad_() for k, v in meta.items()}
    opt = torch.optim.Adam(meta.values(), 1e-3)

    def loss():
        if trl:
            return trl.meta_loss(meta, batch, 1, 0.01).loss
        return adapt_batch(algo, meta, batch.xs, batch.ys, batch.xq, batch.yq, 1, 0.01).losses.mean()

    def step():
        lv = loss()
        opt.zero_grad()
        lv.backward()
        opt.step()

    return step, loss, meta


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=21)
    args = p.parse_args()
    torch.set_num_threads(1)
    algos = ["maml", "anil", "metasgd", "tnet"]
    for name in algos:
        grads = []
        for v in ("current", "lean"):
            _, lf, meta = setup(name, v, torch.float64)
            grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(lf(), list(meta.values()))]))
        err = ((grads[1] - grads[0]).norm() / grads[0].norm()).item()
        assert err < 1e-10, (name, err)
    print("float64: lean meta-gradient == current meta-gradient for", ", ".join(algos))
    for name in algos:
        steps = {v: setup(name, v)[0] for v in ("base", "current", "lean")}
        for _ in range(3):
            for s in steps.values():
                s()
        ts = {v: [] for v in steps}
        for _ in range(args.repeats):
            for v, s in steps.items():
                t0 = time.perf_counter()
                for _ in range(5):
                    s()
                ts[v].append((time.perf_counter() - t0) / 5)
        ratio = {v: statistics.median([a / b for a, b in zip(ts[v], ts["base"])]) for v in ts}
        print(name, " ".join(f"{v}={statistics.median(ts[v]) * 1e3:.2f}ms ({ratio[v]:.2f}x)" for v in ts))


if __name__ == "__main__":
    main()

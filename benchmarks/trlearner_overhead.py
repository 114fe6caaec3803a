"""Where TRLearner's time goes on the sinusoid MLP (meta-batch 25, 5-shot, 1 inner step).

    python benchmarks/trlearner_overhead.py [--repeats 15] [--algorithms maml anil metasgd tnet]

Times one meta-gradient (forward + backward, no optimiser step) of five objectives, interleaved,
1 thread, CPU time of this process (``time.process_time``: less sensitive to other processes
than wall time) as the clock of ``torch.utils.benchmark.Timer`` (``timeit(10)`` per sample,
after its own 2 warm-up calls), and prints medians and paired ratios to the baseline:

- ``base``: the baseline's query loss (``adapt_batch``);
- ``cross``: the task loss plus L_TR with *constant* relation weights (1/(T-1) off the diagonal):
  the all-pairs predictions f^p(xq_i) that L_TR needs by definition, without the relation part;
- ``repr``: the baseline plus the task representations (support features, sampler);
- ``repr+rel``: the baseline plus representations, relation matrix and weights;
- ``trlearner``: ``TRLearner.meta_loss`` (all of it).

``cross`` is the floor of any implementation of the objective as specified (every adapted model
on every task's queries); the rest is what the relation part adds. Not part of the package.
"""

import argparse
import statistics
import time

import torch

from trlearner.bench.timing import function_timer
from trlearner.engine.algorithms import make_algorithm
from trlearner.engine.backbones import mlp
from trlearner.data.sources.dispatch import make_source
from trlearner.engine.core import adapt_batch, adapt_cross
from trlearner.method.relation import (TRConfig, TRLearner, consistency_loss, per_task_loss, relation_matrix,
                                relation_weights)


def objectives(name: str) -> tuple[dict, dict]:
    batch = make_source("sinusoid", "train", shots=5).batch(range(25))
    algo = make_algorithm(name, mlp([1, 40, 40], 1), "regression")
    gen = torch.Generator().manual_seed(0)
    trl = TRLearner(algo, TRConfig(), shots=5)
    meta = {**algo.init_params(gen, 0.01), **trl.init_params(gen)}
    meta = {k: v.requires_grad_() for k, v in meta.items()}
    xs, ys, xq, yq = batch.xs, batch.ys, batch.xq, batch.yq
    t = xs.shape[0]
    const = torch.full((t, t), 1.0 / (t - 1)).fill_diagonal_(0.0)

    def base():
        return adapt_batch(algo, meta, xs, ys, xq, yq, 1, 0.01).losses.mean()

    def cross():
        c = adapt_cross(algo, meta, xs, ys, xq, 1, 0.01)
        own = torch.diagonal(c, 0, 0, 1).movedim(-1, 0)
        tr = consistency_loss(const, c, yq, algo.loss_fn)
        return per_task_loss(algo.loss_fn, own, yq).mean() + 0.1 * tr.mean()

    def repr_():
        return base() + trl.representations(meta, xs, ys)[0].sum()

    def repr_rel():
        r = trl.representations(meta, xs, ys)[0]
        return base() + relation_weights(relation_matrix(meta["trl.omega"], r)).sum()

    def full():
        return trl.meta_loss(meta, batch, 1, 0.01).loss

    return meta, {"base": base, "cross": cross, "repr": repr_, "repr+rel": repr_rel, "trlearner": full}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--algorithms", nargs="+", default=["maml", "anil", "metasgd", "tnet"])
    args = p.parse_args()
    torch.set_num_threads(1)
    for name in args.algorithms:
        meta, fns = objectives(name)

        def step(f):
            loss = f()
            for v in meta.values():
                v.grad = None
            loss.backward()

        for f in fns.values():
            for _ in range(5):
                step(f)
        timers = {k: function_timer(lambda f=f: step(f), clock=time.process_time) for k, f in fns.items()}
        ts = {k: [] for k in fns}
        for _ in range(args.repeats):
            for k, timer in timers.items():
                ts[k].append(timer.timeit(10).median)
        row = []
        for k, v in ts.items():
            ratio = statistics.median([a / b for a, b in zip(v, ts["base"])])
            row.append(f"{k}={statistics.median(v) * 1e3:.2f}ms ({ratio:.2f}x)")
        print(name, " ".join(row), flush=True)


if __name__ == "__main__":
    main()

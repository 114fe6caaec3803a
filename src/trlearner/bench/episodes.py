"""Episode-sampling throughput (a benchmark, not a test)."""

from __future__ import annotations

import math
import statistics


def bench_episodes(dataset: str = "omniglot", ways: int = 5, shots: int = 1, queries: int = 15, n: int = 2000,
                   split: str = "train", batch: int = 32, repeats: int = 5, root: str = "data") -> float:
    """Episodes per second (median of ``repeats``) of building ``n`` episodes (rounded up to
    whole batches) in batches of ``batch`` with :meth:`ImageEpisodes.batch`, tensors included.
    Each repeat is ``torch.utils.benchmark.Timer.timeit`` of that many batches
    (:func:`trlearner.bench.timing.function_timer`), every batch of new episodes."""
    from trlearner.bench.timing import function_timer
    from trlearner.data.sources.dispatch import image_source

    src = image_source(dataset, split, ways, shots, queries, seed=0, root=root)
    src.batch(range(batch))  # warm the page cache
    nxt = [1]

    def next_batch():
        src.batch(range(nxt[0] * batch, (nxt[0] + 1) * batch))
        nxt[0] += 1

    timer = function_timer(next_batch)
    calls = max(1, math.ceil(n / batch))
    return statistics.median(batch / timer.timeit(calls).median for _ in range(repeats))

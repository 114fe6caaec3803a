"""Episode-sampling throughput (a benchmark, not a test)."""

from __future__ import annotations

import statistics
import time


def bench_episodes(dataset: str = "omniglot", ways: int = 5, shots: int = 1, queries: int = 15, n: int = 2000,
                   split: str = "train", batch: int = 32, repeats: int = 5, root: str = "data") -> float:
    """Episodes per second (median of ``repeats``) of building ``n`` episodes in batches of
    ``batch`` with :meth:`ImageEpisodes.batch`, tensors included."""
    from trlearner.data.sources.dispatch import image_source

    src = image_source(dataset, split, ways, shots, queries, seed=0, root=root)
    src.batch(range(batch))  # warm the page cache
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        done = 0
        while done < n:
            k = min(batch, n - done)
            src.batch(range(r * n + done, r * n + done + k))
            done += k
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)

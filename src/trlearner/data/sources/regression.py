"""Sinusoid and harmonic regression task families (TRLEARNER.md section 7).

- sinusoid (Finn et al. 2017): ``y = A sin(x - phi)``, ``A ~ U[0.1, 5]``,
  ``phi ~ U[0, pi]``, ``x ~ U[-5, 5]``.
- harmonic (Lacoste et al. 2018): ``y = a1 sin(w x + b1) + a2 sin(2 w x + b2)``,
  ``w ~ U[5, 7]``, ``a1, a2 ~ N(0, 1)``, ``b1, b2 ~ U[0, 2 pi]``, ``x = mu + N(0, 1)``,
  ``mu ~ U[-4, 4]``.

Every random number of episode ``index`` is a counter-based hash (splitmix64) of
(dataset, split, seed, index, draw), so an episode is a pure function of those -- the same
on every machine and in any order -- and a whole meta-batch is generated in a few
vectorised numpy operations. The test set of a (dataset, shots) is episodes 0..599 of
split ``test`` with seed 0, for every algorithm and run.

Example::

    >>> src = RegressionSource("sinusoid", "test", shots=5, queries=100, seed=0)
    >>> b = src.batch(range(600))
    >>> tuple(b.xq.shape), sorted(b.info)
    ((600, 100, 1), ['amplitude', 'phase'])
"""

from __future__ import annotations

import hashlib
import math
from typing import Sequence

import numpy as np
import torch

from trlearner.data.sources.episodes import TaskBatch

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def stable_key(*parts) -> int:
    """A 64-bit key from the text of ``parts``, identical across processes and machines."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def counter_uniform(key: int, indices: Sequence[int], n: int) -> np.ndarray:
    """Uniform [0, 1) float64 draws ``[len(indices), n]``: draw j of episode i is a pure
    function of (key, i, j)."""
    idx = np.asarray(indices, dtype=np.uint64)[:, None]
    j = np.arange(n, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        h = _splitmix64(np.uint64(key) ^ _splitmix64(idx * np.uint64(1 << 20) + j))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _normal(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Box-Muller: two uniform arrays -> standard normal draws of the same shape."""
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2 * math.pi * u2)


def sinusoid(u: np.ndarray, n_points: int):
    """Draws ``u`` [T, 2 + n_points] -> x, y [T, n_points] and the task parameters."""
    amp = 0.1 + 4.9 * u[:, 0:1]
    phase = math.pi * u[:, 1:2]
    x = -5.0 + 10.0 * u[:, 2 : 2 + n_points]
    return x, amp * np.sin(x - phase), {"amplitude": amp[:, 0], "phase": phase[:, 0]}


def harmonic(u: np.ndarray, n_points: int):
    """Draws ``u`` [T, 8 + 2 n_points] -> x, y [T, n_points] and the task parameters."""
    w = 5.0 + 2.0 * u[:, 0:1]
    a1 = _normal(u[:, 1:2], u[:, 2:3])
    a2 = _normal(u[:, 3:4], u[:, 4:5])
    b1 = 2 * math.pi * u[:, 5:6]
    b2 = 2 * math.pi * u[:, 6:7]
    mu = -4.0 + 8.0 * u[:, 7:8]
    x = mu + _normal(u[:, 8 : 8 + n_points], u[:, 8 + n_points : 8 + 2 * n_points])
    y = a1 * np.sin(w * x + b1) + a2 * np.sin(2 * w * x + b2)
    info = {"omega": w[:, 0], "a1": a1[:, 0], "a2": a2[:, 0], "mu": mu[:, 0]}
    return x, y, info


FAMILIES = {"sinusoid": (sinusoid, 2, 1), "harmonic": (harmonic, 8, 2)}  # fn, fixed draws, draws/point


class RegressionSource:
    """Episodes of a regression family: ``shots`` support and ``queries`` query points each.

    ``batch(indices)`` -> :class:`TaskBatch` with ``xs`` [T, shots, 1], ``ys`` [T, shots, 1],
    ``xq`` [T, queries, 1], ``yq`` [T, queries, 1] (float32) and the task parameters in
    ``info``.
    """

    kind = "regression"
    input_shape = (1,)
    n_out = 1

    def __init__(self, dataset: str, split: str, shots: int, queries: int, seed: int = 0):
        if dataset not in FAMILIES:
            raise ValueError(f"unknown regression dataset {dataset!r}; choose one of {sorted(FAMILIES)}")
        if shots < 1 or queries < 1:
            raise ValueError(f"shots and queries must be >= 1 (got shots={shots}, queries={queries})")
        self.dataset, self.split, self.shots, self.queries, self.seed = dataset, split, shots, queries, seed
        self.key = stable_key(dataset, split, seed)

    def batch(self, indices: Sequence[int]) -> TaskBatch:
        fn, fixed, per_point = FAMILIES[self.dataset]
        n_points = self.shots + self.queries
        u = counter_uniform(self.key, list(indices), fixed + per_point * n_points)
        x, y, info = fn(u, n_points)
        x = torch.from_numpy(x).float().unsqueeze(-1)
        y = torch.from_numpy(y).float().unsqueeze(-1)
        s = self.shots
        return TaskBatch(x[:, :s], y[:, :s], x[:, s:], y[:, s:],
                         {k: torch.from_numpy(v).float() for k, v in info.items()})


# --- Motivation task families (analysis 1, docs/ANALYSES.md) --------------------------------
# y = A sin(w x - phi), A ~ U[0.1, 5], phi ~ U[0, pi], x ~ U[-5, 5], w ~ U[w_lo, w_hi].
# D1..D4 have *decreasing* complexity, as in the paper: D1 has the widest and highest band of
# frequencies, D4 is a single frequency (the standard sinusoid family up to its draws).
MOTIVATION_BANDS = {"motivation_d1": (0.5, 4.0), "motivation_d2": (0.5, 2.5),
                    "motivation_d3": (0.5, 1.5), "motivation_d4": (1.0, 1.0)}


def banded_sinusoid(w_lo: float, w_hi: float):
    """The family ``y = A sin(w x - phi)`` with ``w ~ U[w_lo, w_hi]``: draws ``u``
    [T, 3 + n_points] -> x, y [T, n_points] and the task parameters."""

    def family(u: np.ndarray, n_points: int):
        amp = 0.1 + 4.9 * u[:, 0:1]
        phase = math.pi * u[:, 1:2]
        w = w_lo + (w_hi - w_lo) * u[:, 2:3]
        x = -5.0 + 10.0 * u[:, 3 : 3 + n_points]
        info = {"amplitude": amp[:, 0], "phase": phase[:, 0], "frequency": w[:, 0]}
        return x, amp * np.sin(w * x - phase), info

    family.__name__ = f"banded_sinusoid_{w_lo}_{w_hi}"
    return family


FAMILIES.update({name: (banded_sinusoid(*band), 3, 1) for name, band in MOTIVATION_BANDS.items()})

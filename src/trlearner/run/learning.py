"""Whether a run learned anything: the margin a reduced run must clear before its numbers say
anything about a method (issue 17 part 3).

A regression run learned when its test MSE is at most :data:`MSE_FRACTION` of its own 0-step
MSE (``curve.mean[0]``: the meta-learned initialisation before any adaptation); a
classification run when its accuracy is at least chance (100 / ways %) plus
:data:`ACCURACY_POINTS`. A run below the margin failed to train at its scale (e.g. MAML stuck
at the mean predictor), so a difference involving it reflects that failure, not the method.
The default preset's reduced cells are tested against the same margin
(``tests/test_default_preset.py``); the analyses mark each cell (column ``learned``).

Example:
    >>> learns({"metric": "mse", "mean": 0.79, "curve": {"mean": [1.0, 0.9]}})
    (True, 'MSE 0.790 vs 0-step 1.000 (learned: <= 0.800)')
    >>> learns({"metric": "accuracy", "unit": "percent", "mean": 29.9}, ways=5)[0]
    False
"""

from __future__ import annotations

import math

#: A regression run learned when its MSE is at most this fraction of its 0-step MSE.
MSE_FRACTION = 0.80
#: A classification run learned when its accuracy is at least chance + this many points.
ACCURACY_POINTS = 10.0


def learns(metrics: dict, ways: int | None = None) -> tuple[bool | None, str]:
    """Whether one run's ``metrics.json`` meets the learning margin, and the numbers as text.

    Arguments:
        metrics: a run's metrics (``metric``, ``mean``; ``curve.mean[0]`` for MSE; ``unit`` for
            accuracy: ``fraction`` or ``percent``).
        ways: classes per test episode (accuracy only; default: ``metrics["ways"]``).

    Returns:
        (True / False, or None when the record lacks what the margin needs; a short text).
    """
    metric, mean = metrics.get("metric"), metrics.get("mean")
    if mean is None or not math.isfinite(float(mean)):
        return None, "no finite mean"
    if metric == "mse":
        curve = (metrics.get("curve") or {}).get("mean") or []
        if not curve or not math.isfinite(float(curve[0])):
            return None, "no 0-step MSE"
        need = MSE_FRACTION * float(curve[0])
        return float(mean) <= need, f"MSE {mean:.3f} vs 0-step {curve[0]:.3f} (learned: <= {need:.3f})"
    ways = ways or metrics.get("ways")
    if metric != "accuracy" or not ways:
        return None, f"no margin for metric {metric!r}" if metric != "accuracy" else "no ways"
    scale = 100.0 if metrics.get("unit") == "fraction" or (metrics.get("unit") is None and mean <= 1.0) else 1.0
    chance, acc = 100.0 / ways, float(mean) * scale
    need = chance + ACCURACY_POINTS
    return acc >= need, f"accuracy {acc:.1f} % vs chance {chance:.1f} % (learned: >= {need:.1f})"

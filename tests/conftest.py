"""Shared test helpers: float64 meta-parameters and a synthetic image task family."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

sys.path.insert(0, str(Path(__file__).resolve().parent))


def leaf_params(params: dict, dtype=torch.float64) -> dict:
    return {k: v.to(dtype).detach().requires_grad_() for k, v in params.items()}


class SyntheticImages:
    """A classification task family for tests: each class is a fixed smooth random 1x28x28
    pattern (a 4x4 random image upsampled); examples are the pattern plus pixel noise.
    Episodes are pure functions of the index."""

    kind = "classification"

    def __init__(self, ways=5, shots=1, queries=3, n_classes=20, size=28, noise=0.3, seed=0):
        g = torch.Generator().manual_seed(seed)
        coarse = torch.rand(n_classes, 1, 4, 4, generator=g)
        self.patterns = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
        self.ways, self.shots, self.queries, self.noise, self.seed = ways, shots, queries, noise, seed
        self.input_shape = (1, size, size)
        self.n_out = ways

    def batch(self, indices, dtype=torch.float32):
        from trlearner.data.sources.episodes import TaskBatch

        xs, ys, xq, yq = [], [], [], []
        for i in indices:
            g = torch.Generator().manual_seed(self.seed * 100_003 + int(i))
            classes = torch.randperm(len(self.patterns), generator=g)[: self.ways]
            def draw(n):
                p = self.patterns[classes].repeat_interleave(n, 0)
                return (p + self.noise * torch.randn(p.shape, generator=g)).to(dtype)
            xs.append(draw(self.shots)); xq.append(draw(self.queries))
            ys.append(torch.arange(self.ways).repeat_interleave(self.shots))
            yq.append(torch.arange(self.ways).repeat_interleave(self.queries))
        return TaskBatch(torch.stack(xs), torch.stack(ys), torch.stack(xq), torch.stack(yq), {})


@pytest.fixture
def synthetic_images():
    return SyntheticImages()

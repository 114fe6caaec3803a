"""Meta-Dataset episodes (Triantafillou et al. 2020): variable ways and shots per episode.

Per episode (one source, the canonical class split):

- ways ``N ~ U[5, min(50, #classes)]``, classes drawn uniformly without replacement (the
  ILSVRC/Omniglot hierarchy-aware class sampling of the paper is not implemented);
- queries per class ``q = min(10, min_c floor(0.5 * n_c))``;
- support budget ``|S| = min(500, sum_c ceil(beta * min(100, n_c - q)))``, ``beta ~ U(0, 1]``;
- shots ``k_c = min(n_c - q, floor(R_c / sum R * (|S| - N)) + 1)`` with
  ``R_c = exp(a_c) (n_c - q)``, ``a_c ~ U[log 0.5, log 2]``.

Stacking episodes of different sizes pads them: ``xs`` [T, S_max, 3, 84, 84], ``ys`` [T, S_max]
with ``-1`` at padding, and ``info["support_mask"]``/``info["query_mask"]`` (bool) mark real
entries; ``info["ways"]`` [T]. ``n_out`` is 50 (the largest way). The test protocol is
episodes 0..599 of split ``test`` per source.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from trlearner.data.episodes import as_indices, episode_rng, task_batch
from trlearner.data.images import ImageEpisodes

MAX_WAYS, MIN_WAYS, MAX_SUPPORT, MAX_QUERY_PER_CLASS, MAX_SHOTS_PER_CLASS = 50, 5, 500, 10, 100


class MetaDatasetSource:
    kind = "classification"
    n_out = MAX_WAYS
    n_test_episodes = 600

    def __init__(self, dataset: str, split: str, seed: int = 0, root: str | Path = "data"):
        if not dataset.startswith("metadataset_"):
            raise ValueError("give one Meta-Dataset source, e.g. 'metadataset_vgg_flower'")
        # reuse the image cache and split handling of the fixed-way sampler (ways=1, shots=1)
        self._img = ImageEpisodes(dataset, split, 1, 1, 1, seed, root=root)
        self.dataset, self.split, self.seed = dataset, split, seed
        self.input_shape = self._img.input_shape
        self.n_classes = len(self._img.classes)
        if self.n_classes < MIN_WAYS:
            raise ValueError(f"{dataset}/{split} has {self.n_classes} classes (< {MIN_WAYS})")

    def episode(self, index: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """(class ids [N], support rows per class, query rows per class)."""
        rng = episode_rng(self.dataset, self.split, self.seed, index)
        n_way = int(rng.integers(MIN_WAYS, min(MAX_WAYS, self.n_classes) + 1))
        chosen = rng.choice(self.n_classes, n_way, replace=False)
        counts = self._img.cls_count[chosen].astype(np.int64)
        q = int(min(MAX_QUERY_PER_CLASS, np.floor(0.5 * counts.min())))
        q = max(q, 1)
        beta = 1.0 - rng.random()  # (0, 1]
        budget = min(MAX_SUPPORT, int(sum(math.ceil(beta * min(MAX_SHOTS_PER_CLASS, c - q)) for c in counts)))
        r = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_way)) * (counts - q)
        shots = np.minimum(counts - q, np.floor(r / r.sum() * max(budget - n_way, 0)).astype(np.int64) + 1)
        sup, qry = [], []
        for c, n_c, k in zip(chosen, counts, shots):
            perm = rng.permutation(int(n_c))
            start = self._img.cls_start[c]
            sup.append(start + perm[:k])
            qry.append(start + perm[k:k + q])
        return chosen, sup, qry

    def batch(self, indices: Sequence[int]):
        idx = as_indices(indices)
        eps = [self.episode(i) for i in idx]
        s_max = max(sum(len(s) for s in e[1]) for e in eps)
        q_max = max(sum(len(q) for q in e[2]) for e in eps)
        T = len(idx)
        xs = torch.zeros(T, s_max, *self.input_shape)
        xq = torch.zeros(T, q_max, *self.input_shape)
        ys = torch.full((T, s_max), -1, dtype=torch.int64)
        yq = torch.full((T, q_max), -1, dtype=torch.int64)
        ways = torch.zeros(T, dtype=torch.int64)
        for t, (chosen, sup, qry) in enumerate(eps):
            ways[t] = len(chosen)
            for x_out, y_out, parts in ((xs, ys, sup), (xq, yq, qry)):
                rows = np.concatenate(parts)
                lab = np.concatenate([np.full(len(p), j) for j, p in enumerate(parts)])
                img = np.asarray(self._img.store.images[rows])
                img = img.transpose(0, 3, 1, 2) if img.ndim == 4 else img[:, None]
                x_out[t, :len(rows)] = torch.from_numpy(img.astype(np.float32) / 255.0)
                y_out[t, :len(rows)] = torch.from_numpy(lab)
        return task_batch(xs, ys, xq, yq, {"support_mask": ys >= 0, "query_mask": yq >= 0, "ways": ways})

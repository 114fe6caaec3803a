"""Meta-Dataset episodes (Triantafillou et al. 2020): variable ways and shots per episode.

Per episode (one source, the canonical class split):

- classes (``class_sampling``, default ``"auto"`` = what the paper does for the source):

  - ``"uniform"`` (every source but Omniglot and ILSVRC; also available for those two as the
    fallback): ways ``N ~ U[5, min(50, #classes)]``, classes drawn uniformly without replacement;
  - ``"alphabet"`` (Omniglot): an alphabet of the split drawn uniformly, then
    ``N ~ U[5, min(50, #characters of that alphabet)]`` of its characters;
  - ``"wordnet"`` (ILSVRC-2012): an internal node of the split's WordNet subgraph drawn uniformly
    among the nodes spanning between 5 and 392 of the split's classes (leaves); the episode's
    classes are those leaves, 50 of them drawn at random when there are more;

- queries per class ``q = min(10, min_c floor(0.5 * n_c))``;
- support budget ``|S| = min(500, sum_c ceil(beta * min(100, n_c - q)))``, ``beta ~ U(0, 1]``;
- shots ``k_c = min(n_c - q, floor(R_c / sum R * (|S| - N)) + 1)`` with
  ``R_c = exp(a_c) n_c``, ``a_c ~ U[log 0.5, log 2]`` (the meta-dataset code weights by the
  class size ``n_c``).

Every draw comes from the episode's own generator, so an episode is a pure function of
(dataset, split, seed, index, class_sampling).

Stacking episodes of different sizes pads them: ``xs`` [T, S_max, 3, 84, 84], ``ys`` [T, S_max]
with ``-1`` at padding, and ``info["support_mask"]``/``info["query_mask"]`` (bool) mark real
entries; ``info["ways"]`` [T]. ``n_out`` is 50 (the largest way). The test protocol is
episodes 0..599 of split ``test`` per source.

The ILSVRC hierarchy is the meta-dataset's per-split WordNet subgraph
(``splits/metadataset_ilsvrc_2012_hierarchy.json``, derived from the meta-dataset's
``ilsvrc_2012_dataset_spec.json``; the original file, dropped into
``data/manual/metadataset_ilsvrc_2012/``, is read as well).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from trlearner.data.registry import get, split_path
from trlearner.data.sources.episodes import as_indices, episode_rng, task_batch
from trlearner.data.sources.images import ImageEpisodes

MAX_WAYS, MIN_WAYS, MAX_SUPPORT, MAX_QUERY_PER_CLASS, MAX_SHOTS_PER_CLASS = 50, 5, 500, 10, 100
MAX_SPANNING_LEAVES_ELIGIBLE = 392  # Triantafillou et al.: the smallest bound that reaches every ILSVRC leaf
CLASS_SAMPLING = ("auto", "uniform", "alphabet", "wordnet")
HIERARCHY_URL = ("https://github.com/google-research/meta-dataset/blob/main/meta_dataset/dataset_conversion/"
                 "dataset_specs/ilsvrc_2012_dataset_spec.json")
_SPLIT_KEYS = {"train": ("train", "TRAIN"), "val": ("valid", "val", "VALID"), "test": ("test", "TEST")}


def _children(raw: dict, split: str) -> dict[str, list[str]]:
    """node -> children of one split's WordNet subgraph, from our compact file
    (``{"train": {node: [children]}, ...}``) or the meta-dataset's dataset spec
    (``{"split_subgraphs": {"TRAIN": [{"wn_id", "children_ids"}, ...]}}``)."""
    if "split_subgraphs" in raw:
        for k in _SPLIT_KEYS[split]:
            if k in raw["split_subgraphs"]:
                return {n["wn_id"]: list(n["children_ids"]) for n in raw["split_subgraphs"][k]}
    else:
        for k in _SPLIT_KEYS[split]:
            if k in raw:
                return {n: list(c) for n, c in raw[k].items()}
    raise ValueError(f"the hierarchy has no subgraph for split {split!r}")


def load_hierarchy(dataset: str, split: str, root: str | Path = "data") -> dict[str, list[str]]:
    """The WordNet subgraph (node -> children; leaves have none) of ``split`` for ``dataset``:
    the file named by the registry's ``split.hierarchy`` (shipped in ``trlearner/data/splits/``
    or an absolute path), else ``<root>/manual/<dataset>/<split.hierarchy_manual>``."""
    sp = get(dataset).split
    tried = []
    path = None
    if sp.get("hierarchy"):
        try:
            path = split_path(sp["hierarchy"])
        except FileNotFoundError:
            tried.append(f"trlearner/data/splits/{sp['hierarchy']}")
    if path is None and sp.get("hierarchy_manual"):
        p = Path(root) / "manual" / dataset / sp["hierarchy_manual"]
        if p.is_file():
            path = p
        else:
            tried.append(str(p))
    if path is None:
        raise FileNotFoundError(
            f"{dataset}: the WordNet hierarchy for class sampling is missing (looked for {', '.join(tried)}). "
            f"Download {sp.get('hierarchy_manual', 'ilsvrc_2012_dataset_spec.json')} from {HIERARCHY_URL} "
            f"into {Path(root) / 'manual' / dataset}/, or use class_sampling='uniform'.")
    out = _children(json.loads(Path(path).read_text()), split)
    for kids in list(out.values()):
        for k in kids:
            out.setdefault(k, [])  # leaves listed only as children
    return out


def spanning_leaves(children: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    """node -> the leaves below it (a leaf spans itself); the graph is a DAG."""
    memo: dict[str, frozenset[str]] = {}

    def visit(n, depth=0):
        if n in memo:
            return memo[n]
        if depth > 100:
            raise ValueError(f"the hierarchy has a cycle through {n}")
        kids = children.get(n, [])
        memo[n] = frozenset([n]) if not kids else frozenset().union(*(visit(k, depth + 1) for k in kids))
        return memo[n]

    for n in list(children):
        visit(n)
    return memo


def wordnet_groups(children: dict[str, list[str]], classes: Sequence[str]) -> list[np.ndarray]:
    """Class-index lists of the eligible internal nodes (sorted by WordNet id): the split's
    classes below each node, kept when there are between 5 and 392 of them."""
    index = {c: i for i, c in enumerate(classes)}
    span = spanning_leaves(children)
    groups = []
    for node in sorted(n for n, kids in children.items() if kids):
        ids = [index[leaf] for leaf in sorted(span[node]) if leaf in index]
        if MIN_WAYS <= len(ids) <= MAX_SPANNING_LEAVES_ELIGIBLE:
            groups.append(np.asarray(ids, dtype=np.int64))
    return groups


def alphabet_groups(classes: Sequence[str]) -> tuple[list[str], list[np.ndarray]]:
    """Omniglot classes ``Alphabet/characterNN`` grouped by alphabet (sorted)."""
    by: dict[str, list[int]] = {}
    for i, c in enumerate(classes):
        by.setdefault(c.split("/")[0], []).append(i)
    names = sorted(by)
    return names, [np.asarray(by[a], dtype=np.int64) for a in names]


class MetaDatasetSource:
    kind = "classification"
    n_out = MAX_WAYS
    n_test_episodes = 600

    def __init__(self, dataset: str, split: str, seed: int = 0, root: str | Path = "data",
                 class_sampling: str = "auto"):
        if not dataset.startswith("metadataset_"):
            raise ValueError("give one Meta-Dataset source, e.g. 'metadataset_vgg_flower'")
        if class_sampling not in CLASS_SAMPLING:
            raise ValueError(f"class_sampling must be one of {CLASS_SAMPLING}, not {class_sampling!r}")
        # reuse the image cache and split handling of the fixed-way sampler (ways=1, shots=1)
        self._img = ImageEpisodes(dataset, split, 1, 1, 1, seed, root=root)
        self.dataset, self.split, self.seed = dataset, split, seed
        self.input_shape = self._img.input_shape
        self.n_classes = len(self._img.classes)
        if self.n_classes < MIN_WAYS:
            raise ValueError(f"{dataset}/{split} has {self.n_classes} classes (< {MIN_WAYS})")
        if class_sampling == "auto":
            class_sampling = get(dataset).split.get("class_sampling", "uniform")
        self.class_sampling = class_sampling
        names = [c for c, _ in self._img.classes]
        self.group_names: list[str] = []
        self.groups: list[np.ndarray] = []
        if class_sampling == "alphabet":
            self.group_names, self.groups = alphabet_groups(names)
            small = [a for a, g in zip(self.group_names, self.groups) if len(g) < MIN_WAYS]
            if small:
                raise ValueError(f"{dataset}/{split}: alphabets {small} have fewer than {MIN_WAYS} characters; "
                                 "use class_sampling='uniform'")
        elif class_sampling == "wordnet":
            self.groups = wordnet_groups(load_hierarchy(dataset, split, root), names)
            if not self.groups:
                raise ValueError(f"{dataset}/{split}: no WordNet node spans between {MIN_WAYS} and "
                                 f"{MAX_SPANNING_LEAVES_ELIGIBLE} of the split's classes")

    @property
    def class_names(self) -> list[str]:
        """Names of the split's classes; episode class ids index this list."""
        return [c for c, _ in self._img.classes]

    def classes_of(self, index: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """The class ids (indices into the split's classes) of episode ``index``."""
        rng = rng if rng is not None else episode_rng(self.dataset, self.split, self.seed, index)
        if self.class_sampling == "alphabet":
            g = self.groups[int(rng.integers(len(self.groups)))]
            n_way = int(rng.integers(MIN_WAYS, min(MAX_WAYS, len(g)) + 1))
            return rng.choice(g, n_way, replace=False)
        if self.class_sampling == "wordnet":
            g = self.groups[int(rng.integers(len(self.groups)))]
            return rng.choice(g, MAX_WAYS, replace=False) if len(g) > MAX_WAYS else g.copy()
        n_way = int(rng.integers(MIN_WAYS, min(MAX_WAYS, self.n_classes) + 1))
        return rng.choice(self.n_classes, n_way, replace=False)

    def episode(self, index: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """(class ids [N], support rows per class, query rows per class)."""
        rng = episode_rng(self.dataset, self.split, self.seed, index)
        chosen = self.classes_of(index, rng)
        n_way = len(chosen)
        counts = self._img.cls_count[chosen].astype(np.int64)
        q = int(min(MAX_QUERY_PER_CLASS, np.floor(0.5 * counts.min())))
        q = max(q, 1)
        beta = 1.0 - rng.random()  # (0, 1]
        budget = min(MAX_SUPPORT, int(sum(math.ceil(beta * min(MAX_SHOTS_PER_CLASS, c - q)) for c in counts)))
        r = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_way)) * counts
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

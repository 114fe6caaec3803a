"""The Meta-Dataset class samplers on the shipped split files: the ILSVRC-2012 WordNet
hierarchy (derived from the meta-dataset's ilsvrc_2012_dataset_spec.json), the Omniglot
alphabet split, and the 50-way cap of WordNet episodes. No images needed."""

from __future__ import annotations

import numpy as np
import pytest

from trlearner.data.sources.episodes import episode_rng
from trlearner.data.sources.metadataset import (MAX_SPANNING_LEAVES_ELIGIBLE, MAX_WAYS, MIN_WAYS, MetaDatasetSource,
                                                load_hierarchy, spanning_leaves, wordnet_groups)
from trlearner.data.registry import get, split_file

SPLITS = (("train", "train", 712), ("val", "valid", 158), ("test", "test", 130))


def test_shipped_ilsvrc_split_is_the_meta_dataset_split():
    d = split_file("metadataset_ilsvrc_2012_splits.json")
    sets = {k: set(d[k]) for _, k, _ in SPLITS}
    assert {k: len(v) for k, v in sets.items()} == {"train": 712, "valid": 158, "test": 130}
    assert len(sets["train"] | sets["valid"] | sets["test"]) == 1000  # disjoint, all of ILSVRC-2012
    assert all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for s in sets.values() for w in s)
    assert get("metadataset_ilsvrc_2012").split["class_sampling"] == "wordnet"


@pytest.mark.parametrize("split,key,n", SPLITS)
def test_shipped_ilsvrc_hierarchy(split, key, n):
    children = load_hierarchy("metadataset_ilsvrc_2012", split)
    leaves = {c for c, kids in children.items() if not kids}
    assert leaves == set(split_file("metadataset_ilsvrc_2012_splits.json")[key])  # the split's classes
    roots = set(children) - {k for kids in children.values() for k in kids}
    assert len(roots) == 1
    span = spanning_leaves(children)
    assert span[roots.pop()] == frozenset(leaves)
    groups = wordnet_groups(children, sorted(leaves))
    covered = set().union(*(set(g.tolist()) for g in groups))
    assert covered == set(range(n))  # every class can be drawn
    assert all(MIN_WAYS <= len(g) <= MAX_SPANNING_LEAVES_ELIGIBLE for g in groups)
    if split == "train":
        # the meta-dataset chose 392 as the smallest bound that reaches every training leaf:
        # with 391 some leaf is in no eligible node (a check of the transcribed edges)
        internal = [n for n, kids in children.items() if kids]
        reach391 = set().union(*(span[x] for x in internal if MIN_WAYS <= len(span[x]) <= 391))
        assert reach391 != leaves and len(groups) == 113


def test_wordnet_episode_caps_at_50_ways_and_stays_under_one_node():
    """Hand-built source over the shipped train hierarchy (no image cache): the 392-leaf nodes
    give 50-way episodes drawn from their leaves; smaller nodes give all their leaves."""
    children = load_hierarchy("metadataset_ilsvrc_2012", "train")
    names = sorted(c for c, kids in children.items() if not kids)
    src = MetaDatasetSource.__new__(MetaDatasetSource)
    src.dataset, src.split, src.seed, src.class_sampling = "metadataset_ilsvrc_2012", "train", 0, "wordnet"
    src.n_classes = len(names)
    src.groups = wordnet_groups(children, names)
    as_sets = [frozenset(g.tolist()) for g in src.groups]
    ways = []
    for i in range(300):
        chosen = src.classes_of(i)
        again = src.classes_of(i, episode_rng(src.dataset, src.split, 0, i))
        assert np.array_equal(chosen, again)  # a pure function of the index
        assert len(set(chosen.tolist())) == len(chosen)
        assert MIN_WAYS <= len(chosen) <= MAX_WAYS
        got = frozenset(chosen.tolist())
        assert any(got <= g for g in as_sets)
        if len(chosen) < MAX_WAYS:
            assert got in as_sets  # below the cap: exactly the leaves of one node
        ways.append(len(chosen))
    assert MAX_WAYS in ways and min(ways) < 10


def test_shipped_omniglot_split_is_by_alphabet():
    d = split_file("metadataset_omniglot_splits.json")
    assert (len(d["train"]), len(d["val"]), len(d["test"])) == (25, 5, 20)
    assert not set(d["train"]) & set(d["val"]) and not set(d["test"]) & (set(d["train"]) | set(d["val"]))
    # the 5 background alphabets with the fewest characters (14, 14, 16, 17, 20)
    assert set(d["val"]) == {"Blackfoot_(Canadian_Aboriginal_Syllabics)", "Ojibwe_(Canadian_Aboriginal_Syllabics)",
                             "Inuktitut_(Canadian_Aboriginal_Syllabics)", "Tagalog", "Alphabet_of_the_Magi"}
    # characters per split from the Vinyals lists (all 50 alphabets): 883 / 81 / 659 as in Meta-Dataset
    chars = {}
    for part in ("train", "val", "test"):
        for line in split_file(f"omniglot_vinyals_{part}.txt"):
            a, c, _ = line.split("/")
            chars.setdefault(a, set()).add(c)
    assert [sum(len(chars[a]) for a in d[s]) for s in ("train", "val", "test")] == [883, 81, 659]
    assert get("metadataset_omniglot").split["class_sampling"] == "alphabet"


def test_bad_class_sampling_is_refused():
    with pytest.raises(ValueError, match="class_sampling must be one of"):
        MetaDatasetSource("metadataset_omniglot", "train", class_sampling="tree")

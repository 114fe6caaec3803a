"""The episode gallery draws the exact episode a run sees: on omniglot_small-like fixture data
(fetched from a loopback server) the picture has the make_grid geometry and its first support
image is the episode's first support image, pixel for pixel."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_data import fetch_fixture  # noqa: E402

from trlearner.data.registry import override  # noqa: E402
from trlearner.data.sources.dispatch import make_source  # noqa: E402
from trlearner.report import gallery  # noqa: E402


@pytest.fixture(scope="module")
def omniglot(tmp_path_factory):
    root, spec, _ = fetch_fixture("omniglot_small", tmp_path_factory.mktemp("omni"))
    with override(spec):
        yield root


@pytest.mark.parametrize("split,queries,shown", [("train", None, 5), ("test", 1, 1), ("train", 3, 3)])
def test_picture_is_the_episode(omniglot, tmp_path, split, queries, shown):
    """The picture of an episode with ``queries`` queries per class (None: the source's 15) is that
    episode: its support, its first queries (all when fewer than 5) and its query count in the caption."""
    info = gallery.episode_picture("omniglot_small", split, tmp_path, shots=2, ways=5, queries=queries, seed=3,
                                   index=1, data_root=str(omniglot))
    png = tmp_path / f"omniglot_small_{split}.png"
    assert png.exists() and json.loads((tmp_path / f"omniglot_small_{split}.json").read_text()) == info
    batch = make_source("omniglot_small", split, shots=2, ways=5, queries=queries, seed=3,
                        root=str(omniglot)).batch([1])
    assert info["queries"] == (queries or 15) and info["queries_shown"] == shown
    h, w = batch.xs.shape[-2:]
    k = info["scale"]
    assert k == gallery.scale_for(h) and h * k >= gallery.MIN_IMAGE_PX and (k == 1 or h * (k - 1) < gallery.MIN_IMAGE_PX)
    # make_grid: 5 rows (classes) x 2 support columns, and 5 x `shown` queries per class, padding 2,
    # then each pixel a k x k block
    s_h, s_w = k * (5 * (h + 2) + 2), k * (2 * (w + 2) + 2)
    q_h, q_w = k * (5 * (h + 2) + 2), k * (shown * (w + 2) + 2)
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape == (gallery.HEADER_H + max(s_h, q_h), gallery.LABEL_W + s_w + gallery.GAP + q_w, 3)
    assert info["size"] == list(pixels.shape[:2]) and info["padding"] == 2 * k
    r, c = info["support_origin"]
    assert (r, c) == (gallery.HEADER_H + 2 * k, gallery.LABEL_W + 2 * k)

    def image(x):  # save_image's rounding, each pixel a k x k block
        return np.floor(x.numpy() * 255 + 0.5).astype(np.uint8).repeat(k, axis=0).repeat(k, axis=1)

    H, W = h * k, w * k
    for ch in range(3):  # grey images are repeated into the 3 channels by make_grid
        np.testing.assert_array_equal(pixels[r:r + H, c:c + W, ch], image(batch.xs[0, 0, 0]))
    # the first query image of class 0 starts the query grid; the last support image ends row 4
    qr, qc = info["query_origin"]
    np.testing.assert_array_equal(pixels[qr:qr + H, qc:qc + W, 0], image(batch.xq[0, 0, 0]))
    step = (h + 2) * k
    np.testing.assert_array_equal(pixels[r + 4 * step:r + 4 * step + H, c + step:c + step + W, 0],
                                  image(batch.xs[0, -1, 0]))
    assert len(info["classes"]) == 5 and info["caption"].count("rotated") == 5
    assert f"the first {shown} of {queries or 15} queries per class" in info["caption"]


def test_cli_draws_each_split_with_its_own_queries(omniglot, tmp_path):
    """``--train-queries`` / ``--test-queries`` / ``--train-ways``: the training picture has the
    run's training episode (here 3 queries, 4 ways), the test picture its test episode (1 query)."""
    assert gallery.main(["--dataset", "omniglot_small", "--shots", "1", "--ways", "3", "--train-ways", "4",
                         "--train-queries", "3", "--test-queries", "1", "--data-root", str(omniglot),
                         "--out", str(tmp_path)]) == 0
    train = json.loads((tmp_path / "omniglot_small_train.json").read_text())
    test = json.loads((tmp_path / "omniglot_small_test.json").read_text())
    assert (train["ways"], train["queries"], test["ways"], test["queries"]) == (4, 3, 3, 1)
    first = make_source("omniglot_small", "test", shots=1, ways=3, queries=1, seed=0, root=str(omniglot)).batch([0])
    pixels = np.asarray(Image.open(tmp_path / "omniglot_small_test.png").convert("RGB"))
    (r, c), (h, w), k = test["support_origin"], first.xs.shape[-2:], test["scale"]
    np.testing.assert_array_equal(pixels[r:r + h * k:k, c:c + w * k:k, 0],  # one pixel of each k x k block
                                  np.floor(first.xs[0, 0, 0].numpy() * 255 + 0.5).astype(np.uint8))
    from trlearner.report.gallery import gallery_markdown

    text = gallery_markdown(tmp_path, tmp_path)
    assert ("[training episode](omniglot_small_train.png) (4-way 1-shot, 3 queries per class, seed 0), "
            "[test episode](omniglot_small_test.png) (3-way 1-shot, 1 query per class, seed 0)") in text


def test_regression_picture_and_report_links(tmp_path):
    from trlearner.report.gallery import gallery_markdown

    for split in ("train", "test"):
        gallery.episode_picture("sinusoid", split, tmp_path / "gallery", shots=5)
    text = gallery_markdown(tmp_path / "gallery", tmp_path)
    assert "[training episode](gallery/sinusoid_train.png)" in text
    assert "[test episode](gallery/sinusoid_test.png)" in text
    assert Image.open(tmp_path / "gallery" / "sinusoid_train.png").size[0] > 100

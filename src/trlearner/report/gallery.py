"""The episode gallery: one picture of a training episode and one of a test episode per dataset,
so that a reviewer sees at a glance that the data is right (strokes, classes, split).

Episodes are pure functions of (dataset, split, ways, shots, queries, seed, index)
(``trlearner.data.sources.dispatch.make_source``), so given a run's setting (the workflow passes
the first table run's resolved ways and queries per split: ``gallery_options`` in
``workflow/rules/common.smk``) the picture shows exactly the episode that run draws at that
index: its training episode with its seed, its test episode with seed 0 (the fixed test tasks).

Image datasets: ``torchvision.utils.make_grid`` of the support set (one row per class, ``shots``
columns) and, to its right, of the first :data:`MAX_QUERIES` queries of each class (same row =
same class), with the row's class index written in a label column on the left and "support" /
"query" above. The grids are enlarged by an integer factor ``scale`` (:func:`scale_for`; 3 for
28-pixel Omniglot), nearest neighbour: each pixel of the episode's image is a ``scale`` x ``scale``
block of ``round(255 * x)`` (as ``torchvision.utils.save_image``); the sidecar JSON gives the
scale, the grids' origins and padding in pixels of the picture, and the classes of the rows. Regression datasets: a matplotlib plot of
the task's true function (a line over the input range, from the episode's task parameters; the
sinusoid families) and its support and query points.

Usage::

    python -m trlearner.report.gallery --dataset omniglot_small --ways 5 --shots 1 \
        --train-queries 5 --test-queries 1 --out reports/gallery

Example:
    >>> import tempfile, pathlib, json
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> info = episode_picture("sinusoid", "train", out, shots=5)
    >>> info["picture"], (out / "sinusoid_train.png").exists()
    ('sinusoid_train.png', True)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from . import escape

#: Queries per class shown (the episode has more; the first ones of each class are shown).
MAX_QUERIES = 5
PADDING = 2      # make_grid padding between images, in pixels of the episode's images
LABEL_W = 40     # width of the class-label column, in pixels of the picture
HEADER_H = 22    # height of the "support" / "query" header, in pixels of the picture
GAP = 16         # gap between the support and the query grid, in pixels of the picture
FONT_PX = 14     # text size of the header and the class labels
#: The grids are enlarged by an integer factor (each pixel becomes a block, nothing is
#: interpolated) until an image is at least this many pixels high: 28-pixel Omniglot becomes 84.
MIN_IMAGE_PX = 84
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


def grid_size(n_rows: int, n_cols: int, h: int, w: int, padding: int = PADDING) -> tuple[int, int]:
    """(height, width) of ``make_grid`` of ``n_rows`` x ``n_cols`` images of ``h`` x ``w``.

    >>> grid_size(5, 1, 28, 28)
    (152, 32)
    """
    return n_rows * (h + padding) + padding, n_cols * (w + padding) + padding


def _to_uint8(grid):
    """A [3, H, W] float grid in [0, 1] as an [H, W, 3] uint8 array (torchvision.utils.save_image's rule)."""
    return grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu").byte().numpy()


def scale_for(h: int, min_px: int = MIN_IMAGE_PX) -> int:
    """The integer factor that makes an ``h``-pixel image at least ``min_px`` high (at least 1).

    >>> scale_for(28), scale_for(84), scale_for(100), scale_for(20)
    (3, 1, 1, 5)
    """
    return max(1, -(-min_px // h))


def _image_picture(xs, xq, ways: int, shots: int, queries: int, path: Path) -> dict[str, Any]:
    """Compose the support and query grids of one episode ([S, C, H, W], [Q, C, H, W]), each
    enlarged by :func:`scale_for` (nearest neighbour: a pixel of the episode's image is a
    ``scale`` x ``scale`` block of the picture)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.utils import make_grid

    shown = min(MAX_QUERIES, queries)
    scale = scale_for(int(xs.shape[-2]))
    q = xq.reshape(ways, queries, *xq.shape[1:])[:, :shown].reshape(ways * shown, *xq.shape[1:])

    def grid(images, nrow):
        g = _to_uint8(make_grid(images.clamp(0, 1), nrow=nrow, padding=PADDING, pad_value=1.0))
        return g.repeat(scale, axis=0).repeat(scale, axis=1)

    support, query = grid(xs, shots), grid(q, shown)
    height = HEADER_H + max(support.shape[0], query.shape[0])
    width = LABEL_W + support.shape[1] + GAP + query.shape[1]
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    s_origin = (HEADER_H, LABEL_W)
    q_origin = (HEADER_H, LABEL_W + support.shape[1] + GAP)
    canvas[s_origin[0]:s_origin[0] + support.shape[0], s_origin[1]:s_origin[1] + support.shape[1]] = support
    canvas[q_origin[0]:q_origin[0] + query.shape[0], q_origin[1]:q_origin[1] + query.shape[1]] = query
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=FONT_PX)
    draw.text((s_origin[1], 2), "support", fill=(0, 0, 0), font=font)
    draw.text((q_origin[1], 2), "query", fill=(0, 0, 0), font=font)
    row_h = (int(xs.shape[-2]) + PADDING) * scale
    for row in range(ways):
        draw.text((4, HEADER_H + PADDING * scale + row * row_h + (row_h - FONT_PX) // 2), f"c{row}",
                  fill=(0, 0, 0), font=font)
    img.save(path)
    pad = PADDING * scale
    return {"size": [height, width], "image_hw": [int(xs.shape[-2]), int(xs.shape[-1])], "scale": scale,
            "support_origin": [s_origin[0] + pad, s_origin[1] + pad],
            "query_origin": [q_origin[0] + pad, q_origin[1] + pad],
            "padding": pad, "queries_shown": shown}


#: Input range of the sinusoid families (``x ~ U[-5, 5]``, trlearner.data.sources.regression):
#: the true function is drawn over it.
SINUSOID_RANGE = (-5.0, 5.0)
CURVE_POINTS = 400


def true_curve(info: dict[str, Any], n: int = CURVE_POINTS):
    """(x, y) of a regression task's true function over its input range, from the task
    parameters of its episode (``batch.info`` of one task): ``y = A sin(w x - phi)`` for the
    sinusoid families (``w`` = 1 unless ``frequency`` is given); None for a family whose
    parameters the episode does not carry in full (harmonic: its phases are not recorded).

    >>> import math
    >>> x, y = true_curve({"amplitude": 2.0, "phase": 0.0})
    >>> len(x), float(x[0]), float(x[-1]), round(float(y[100]), 4) == round(2 * math.sin(float(x[100])), 4)
    (400, -5.0, 5.0, True)
    """
    import numpy as np

    if "amplitude" not in info or "phase" not in info:
        return None
    amp, phase = float(info["amplitude"]), float(info["phase"])
    w = float(info.get("frequency", 1.0))
    x = np.linspace(*SINUSOID_RANGE, n)
    return x, amp * np.sin(w * x - phase)


def regression_figure(xs, ys, xq, yq, info: dict[str, Any], title: str):
    """The figure of one regression episode: the task's true function as a line (when its
    parameters are known, :func:`true_curve`), its query points and its support points; the
    legend below the axes, over no data."""
    from .figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.6), layout="constrained")
    curve = true_curve(info)
    if curve is not None:
        ax.plot(*curve, "-", lw=1.3, color="0.15", label="true function", zorder=1)
    order = xq[:, 0].argsort()
    ax.plot(xq[order, 0].numpy(), yq[order, 0].numpy(), "o", ms=3.5, color="#1f77b4", alpha=0.8,
            label=f"query ({len(xq)})", zorder=2)
    ax.plot(xs[:, 0].numpy(), ys[:, 0].numpy(), "o", ms=7, color="#d62728", markeredgecolor="black",
            markeredgewidth=0.6, label=f"support ({len(xs)})", zorder=3)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title, fontsize=9)
    fig.legend(loc="outside lower center", ncol=3, fontsize=7)
    return fig


def _regression_picture(xs, ys, xq, yq, info: dict[str, Any], path: Path, title: str) -> dict[str, Any]:
    from .figures import pyplot

    fig = regression_figure(xs, ys, xq, yq, info, title)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    pyplot().close(fig)
    return {"true_function": true_curve(info) is not None}


def episode_picture(dataset: str, split: str, out: str | os.PathLike, *, shots: int, ways: int | None = None,
                    queries: int | None = None, seed: int = 0, index: int = 0,
                    data_root: str = "data") -> dict[str, Any]:
    """Draw episode ``index`` of ``dataset``/``split`` (seed ``seed``) into ``out/<dataset>_<split>.png``
    and its description into ``out/<dataset>_<split>.json``.

    Arguments:
        dataset: a registry dataset name.
        split: ``train``, ``val`` or ``test``.
        out: output folder.
        shots, ways: the episode's setting (``ways`` for classification only).
        queries: queries per class (classification) or per task (regression), as the run
            draws them for ``split``; None: ``make_source``'s default (15 per class; regression:
            ``shots`` at train, 100 at val/test).
        seed, index: which episode (as in a run with that seed).
        data_root: the data folder.

    Returns:
        The description written to the JSON sidecar (picture, caption, classes of the rows and,
        for images, the grid geometry).
    """
    from trlearner.data.sources.dispatch import make_source

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = make_source(dataset, split, shots=shots, ways=ways, queries=queries, seed=seed, root=data_root)
    batch = source.batch([index])
    xs, ys, xq, yq = batch.xs[0], batch.ys[0], batch.xq[0], batch.yq[0]
    name = f"{dataset}_{split}"
    regression = ys.dtype.is_floating_point
    n_ways = None if regression else int(ys.max()) + 1  # a run's training episodes may be wider than its test ones
    queries = len(xq) if regression else len(xq) // n_ways
    setting = f"{n_ways}-way {shots}-shot" if n_ways else f"{shots}-shot"
    info: dict[str, Any] = {"dataset": dataset, "split": split, "seed": seed, "index": index, "shots": shots,
                            "ways": n_ways, "queries": queries, "picture": f"{name}.png"}
    if regression:
        task = {k: float(v[0]) for k, v in (batch.info or {}).items() if hasattr(v, "__len__") and len(v)}
        info.update(_regression_picture(xs, ys, xq, yq, task, out / f"{name}.png",
                                        f"{dataset} {SPLIT_NAMES.get(split, split)} episode {index} (seed {seed})"))
        curve = "the task's true function (black line), " if info["true_function"] else ""
        info["caption"] = (f"{dataset}, {SPLIT_NAMES.get(split, split)} episode {index} (seed {seed}, {setting}): "
                           f"{curve}{len(xs)} support points (red) and {len(xq)} query points (blue).")
    else:
        info.update(_image_picture(xs, xq, n_ways, len(xs) // n_ways, queries, out / f"{name}.png"))
        classes = getattr(source, "classes", None)
        ids = batch.info.get("class_ids")
        rows = []
        for row in range(n_ways):
            cid = int(ids[0, row]) if ids is not None else row
            cls = classes[cid] if classes is not None and cid < len(classes) else cid
            rows.append(f"{cls[0]} (rotated {cls[1]}°)" if isinstance(cls, tuple) else str(cls))
        info["classes"] = rows
        info["caption"] = (f"{dataset}, {SPLIT_NAMES.get(split, split)} episode {index} (seed {seed}, {setting}): "
                           f"support left, the first {info['queries_shown']} of {queries} queries per class right; "
                           f"row ck is class k: " + "; ".join(f"c{k} {r}" for k, r in enumerate(rows)) + ".")
    (out / f"{name}.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def _setting(info: dict) -> str:
    """``5-way 1-shot, 5 queries per class, seed 0`` (classification) or ``5-shot, 100 queries, seed 0``."""
    if info.get("ways"):
        head, per = f"{info['ways']}-way {info['shots']}-shot", " per class"
    else:
        head, per = f"{info.get('shots')}-shot", ""
    queries = f", {info['queries']} quer{'y' if info['queries'] == 1 else 'ies'}{per}" if "queries" in info else ""
    return f"{head}{queries}, seed {info.get('seed')}"


def gallery_markdown(gallery_dir: str | os.PathLike | None, out_dir: str | os.PathLike) -> str:
    """The ``## Episode gallery`` section of REPORT.md: links to each dataset's pictures."""
    lines = ["## Episode gallery", ""]
    root = Path(gallery_dir) if gallery_dir is not None else None
    infos = []
    for js in sorted(root.glob("*.json")) if root and root.is_dir() else []:
        try:
            infos.append((js, json.loads(js.read_text())))
        except ValueError:
            continue
    if not infos:
        return "\n".join(lines + ["No episode pictures were made.", ""])
    lines += ["One training and one test episode per dataset the run used: for classification the support "
              "and query images, one row per class (the classes of each row are in the picture's caption "
              "file); for regression the task's true function with its support and query points.", ""]
    by_dataset: dict[str, list] = {}
    for js, info in infos:
        by_dataset.setdefault(str(info.get("dataset")), []).append((js, info))
    order = {"train": 0, "val": 1, "test": 2}
    for dataset in sorted(by_dataset):
        items = sorted(by_dataset[dataset], key=lambda t: order.get(t[1].get("split"), 9))
        first = items[0][1]
        links = [f"[{escape.markdown(SPLIT_NAMES.get(i.get('split'), i.get('split')))} episode]"
                 f"({Path(os.path.relpath(js.with_name(escape.filename(i['picture'])), out_dir)).as_posix()}) "
                 f"({escape.markdown(_setting(i))})" for js, i in items]
        lines.append(f"- {escape.markdown(dataset)} (episode {escape.markdown(first.get('index'))}): "
                     + ", ".join(links))
    return "\n".join(lines + [""])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trlearner.report.gallery``: the pictures of one dataset's episodes."""
    p = argparse.ArgumentParser(prog="python -m trlearner.report.gallery", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="registry dataset name")
    p.add_argument("--shots", type=int, required=True, help="support examples per class (per task for regression)")
    p.add_argument("--ways", type=int, default=None, help="classes per episode (classification; default: none)")
    p.add_argument("--train-ways", type=int, default=None,
                   help="classes per training episode when wider than --ways (default: --ways)")
    p.add_argument("--train-queries", type=int, default=None,
                   help="queries of a training episode, per class or per regression task (default: the "
                        "source's: 15 per class, regression: --shots)")
    p.add_argument("--test-queries", type=int, default=None,
                   help="queries of a validation or test episode (default: the source's: 15 per class, "
                        "regression: 100)")
    p.add_argument("--splits", nargs="+", default=["train", "test"], help="splits to draw (default: train test)")
    p.add_argument("--seed", type=int, default=0, help="episode seed (default: 0)")
    p.add_argument("--index", type=int, default=0, help="episode index (default: 0)")
    p.add_argument("--data-root", default="data", help="data folder (default: data)")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv)
    for split in args.splits:
        try:
            train = split == "train"
            info = episode_picture(args.dataset, split, args.out, shots=args.shots,
                                   ways=(args.train_ways or args.ways) if train else args.ways,
                                   queries=args.train_queries if train else args.test_queries,
                                   seed=args.seed, index=args.index, data_root=args.data_root)
        except (OSError, ValueError) as err:
            print(f"gallery: error: {args.dataset}/{split}: {err}", file=sys.stderr)
            return 2
        print(f"wrote {Path(args.out) / info['picture']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

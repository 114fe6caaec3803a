"""No legend or label covers data in the analysis figures, measured on the drawn figure (issue 25):
the motivation, depth, sensitivity and trade-off figures are drawn from fixture runs, and with
matplotlib's renderer every legend's box (display coordinates) is checked against every axes:
it overlaps no axes' data area, tick labels, axis labels or title, so no drawn point, line or
band can lie under it; text inside an axes (an annotation) covers no drawn point either. The
sinusoid episode gallery draws the task's true function as a line through its points."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_analysis_outputs import fake_metrics, put  # noqa: E402

from trlearner.analysis import common as C  # noqa: E402
from trlearner.analysis.cli import run_analysis  # noqa: E402
from trlearner.data.sources.dispatch import make_source  # noqa: E402
from trlearner.report import gallery  # noqa: E402


def _depth(runs: Path) -> None:
    for seed in (0, 1):
        for k in (1, 2, 3, 5):
            for v in ("baseline", "trlearner"):
                mean = 2.0 - 0.3 * k + 0.05 * seed if v == "baseline" else 1.0 + 0.01 * seed + 0.02 * k
                put(runs, f"{v}/steps{k}/seed{seed}", fake_metrics(seed=seed, variant=v, steps=k, mean=mean, zero=3.0))


def _tradeoff(runs: Path) -> None:
    spec = {"baseline": ("baseline", "none", 1.0, 10.0), "trlearner": ("trlearner", "none", 0.8, 12.0),
            "weight_decay": ("baseline", "weight_decay", 0.95, 10.5),
            "input_noise": ("baseline", "input_noise", 1.1, 10.2), "meta_aug": ("baseline", "meta_aug", 0.9, 11.0)}
    for m, (v, reg, mean, wall) in spec.items():
        put(runs, f"{m}/seed0", fake_metrics(variant=v, reg=reg, strength=0.1, mean=mean, wall=wall, zero=3.0))


def _sensitivity(runs: Path) -> None:
    put(runs, "baseline/seed0", fake_metrics(mean=1.0, zero=3.0))
    cells = {(0.0, 4): 1.0, (0.01, 4): 0.97, (0.1, 4): 0.9, (1.0, 4): 0.95, (10.0, 4): 1.3, (0.1, 1): 0.97,
             (0.1, 2): 0.93, (0.1, 8): 0.92}
    for (lam, k), mean in cells.items():
        put(runs, f"lam{lam:g}_heads{k}/seed0",
            fake_metrics(variant="trlearner", lam=lam, heads=k, mean=mean, zero=3.0))


def _motivation(runs: Path) -> None:
    its = list(range(10, 1001, 10))
    hist = {"motivation_d1": [3.0 - 0.002 * i for i in its],
            "motivation_d2": [2.0 * math.exp(-i / 300) + 0.5 for i in its],
            "motivation_d3": [1.5 * math.exp(-i / 200) + 0.3 for i in its],
            "motivation_d4": [1.0 + 0.001 * abs(i - 300) for i in its]}  # underfits ... overfits
    for fam, val in hist.items():
        for v in ("baseline", "trlearner"):
            off = 0.0 if v == "baseline" else -0.1
            for seed in (0, 1, 2):
                h = [{"iteration": i, "train": 2.0 - 0.001 * i + 0.05 * ((7 * i + seed) % 5),
                      "val": x + off + 0.02 * seed} for i, x in zip(its, val)]
                put(runs, f"{fam}/{v}/seed{seed}",
                    fake_metrics(dataset=fam, variant=v, seed=seed, history=h, mean=val[-1] + off, zero=4.0))


FIXTURES = {"motivation": _motivation, "depth": _depth, "sensitivity": _sensitivity, "tradeoff": _tradeoff}


def _drawn(name: str, tmp_path: Path, monkeypatch):
    """The figure of analysis ``name`` as it is saved (captured in save_figure) and its renderer."""
    figures = []
    save = C.save_figure

    def keep(fig, out, stem):
        figures.append(fig)
        return save(fig, out, stem)

    monkeypatch.setattr(C, "save_figure", keep)
    FIXTURES[name](tmp_path / "runs")
    run_analysis(name, str(tmp_path / "runs"), str(tmp_path / name))
    (fig,) = figures
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # save_figure closed it: draw it again, as it was saved
    canvas.draw()
    return fig, canvas.get_renderer()


def _data_points(ax) -> np.ndarray:
    """Display coordinates of every drawn vertex of the axes' lines, error bars and bands that
    lie inside its data area."""
    pts = []
    for line in ax.get_lines():
        xy = line.get_xydata()
        if len(xy):
            pts.append(line.get_transform().transform(np.asarray(xy, dtype=float)))
    for coll in ax.collections:
        for path in coll.get_paths():
            if len(path.vertices):
                pts.append(coll.get_transform().transform(path.vertices))
    pts = np.concatenate(pts) if pts else np.zeros((0, 2))
    pts = pts[np.isfinite(pts).all(axis=1)]
    box = ax.get_window_extent()
    inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
    return pts[inside]


def _overlap(a, b, margin: float = 0.5) -> bool:
    return a.x0 < b.x1 - margin and b.x0 < a.x1 - margin and a.y0 < b.y1 - margin and b.y0 < a.y1 - margin


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_no_legend_or_label_covers_data(name, tmp_path, monkeypatch):
    fig, renderer = _drawn(name, tmp_path, monkeypatch)
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    assert legends, f"{name}: the figure has no legend"
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert all(len(_data_points(ax)) for ax in axes), f"{name}: an axes with nothing drawn"
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in axes:
            pts = _data_points(ax)
            covered = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
            assert not covered.any(), f"{name}: the legend covers {int(covered.sum())} drawn points"
            parts = {"data area": ax.get_window_extent(), "x axis": ax.xaxis.get_tightbbox(renderer),
                     "y axis": ax.yaxis.get_tightbbox(renderer), "title": ax.title.get_window_extent(renderer)}
            for what, other in parts.items():
                if other is not None and other.width > 0:
                    assert not _overlap(box, other), f"{name}: the legend overlaps an axes' {what}"
        # the legend is inside the figure, so the saved picture shows it whole
        fig_box = fig.bbox
        assert box.x0 >= fig_box.x0 - 1 and box.x1 <= fig_box.x1 + 1 and box.y0 >= fig_box.y0 - 1
    for ax in axes:  # a label drawn inside the axes covers no drawn point
        pts = _data_points(ax)
        for text in ax.texts:
            if not text.get_text().strip():
                continue
            box = text.get_window_extent(renderer)
            covered = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
            assert not covered.any(), f"{name}: the label {text.get_text()!r} covers drawn points"


def test_motivation_names_its_diagnoses_above_the_axes(tmp_path, monkeypatch):
    fig, _ = _drawn("motivation", tmp_path, monkeypatch)
    titles = [ax.get_title() for ax in fig.axes]
    assert "baseline underfits" in titles[0] and "baseline overfits" in titles[-1]
    assert not any(ax.texts for ax in fig.axes)


@pytest.mark.parametrize("split", ["train", "test"])
def test_sinusoid_gallery_draws_the_true_function(split):
    source = make_source("sinusoid", split, shots=5)
    batch = source.batch([0])
    task = {k: float(v[0]) for k, v in batch.info.items()}
    fig = gallery.regression_figure(batch.xs[0], batch.ys[0], batch.xq[0], batch.yq[0], task, "t")
    try:
        (ax,) = fig.axes
        lines = [line for line in ax.get_lines() if line.get_linestyle() not in ("None", "", " ")]
        assert len(lines) == 1, "one drawn curve: the true function"
        x, y = (np.asarray(v, dtype=float) for v in lines[0].get_data())
        assert len(x) >= 200 and np.all(np.diff(x) > 0)
        points = np.concatenate([batch.xs[0, :, 0].numpy(), batch.xq[0, :, 0].numpy()])
        assert x[0] <= points.min() and x[-1] >= points.max()  # over the whole input range
        # it is the task's function: through every support and query point
        for xs, ys in ((batch.xs[0], batch.ys[0]), (batch.xq[0], batch.yq[0])):
            want = np.interp(xs[:, 0].numpy(), x, y)
            assert np.allclose(want, ys[:, 0].numpy(), atol=0.02 * max(1.0, task["amplitude"]))
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        legend = fig.legends[0].get_window_extent(canvas.get_renderer())
        assert not _overlap(legend, ax.get_window_extent())
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_gallery_says_when_it_draws_no_true_function(tmp_path):
    """harmonic's episodes do not carry its phases: no curve, and the caption does not claim one."""
    info = gallery.episode_picture("harmonic", "test", tmp_path, shots=5)
    assert info["true_function"] is False and "true function" not in info["caption"]
    info = gallery.episode_picture("sinusoid", "test", tmp_path, shots=5)
    assert info["true_function"] is True and "true function (black line)" in info["caption"]

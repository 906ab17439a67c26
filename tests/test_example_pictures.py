"""The examples' pictures, checked on the data they plot (not on pixels): the x axis, the titles,
that every legend entry names something drawn, that the axes show every curve whole."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from gradkit.runs.costs import COST_UNITS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example(name: str):
    """Import ``examples/<name>.py`` as a module (its ``main`` is not run)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labelled(ax) -> dict[str, object]:
    return {a.get_label(): a for a in [*ax.lines, *ax.collections, *ax.patches]
            if not a.get_label().startswith("_")}


def _has_data(artist) -> bool:
    if hasattr(artist, "get_xydata"):
        return np.isfinite(np.asarray(artist.get_xydata(), dtype=float)).all(axis=1).any()
    paths = artist.get_paths() if hasattr(artist, "get_paths") else []
    return any(len(p.vertices) for p in paths) or hasattr(artist, "get_width")


def check_legend_and_limits(ax, legend=None, check_legend: bool = True) -> None:
    """Every legend entry is a drawn artist of ``ax`` with data; every line's finite points lie
    inside the axes limits."""
    legend = (legend or ax.get_legend()) if check_legend else None
    drawn = _labelled(ax)
    if legend is not None:
        for text in legend.get_texts():
            label = text.get_text()
            assert label in drawn, f"legend entry {label!r} has no drawn artist (drawn: {sorted(drawn)})"
            assert _has_data(drawn[label]), f"legend entry {label!r} is drawn empty"
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    for line in ax.lines:
        xy = np.asarray(line.get_xydata(), dtype=float)
        xy = xy[np.isfinite(xy).all(axis=1)]
        if ax.get_yscale() == "log":
            xy = xy[xy[:, 1] > 0]
        if len(xy):
            assert x0 <= xy[:, 0].min() and xy[:, 0].max() <= x1, f"{line.get_label()} cut off on x"
            assert y0 <= xy[:, 1].min() and xy[:, 1].max() <= y1, f"{line.get_label()} cut off on y"


# --- second_order_mlp.png -------------------------------------------------------------------------

def test_hf_cost_is_one_gradient_per_step_plus_two_per_product():
    so = _example("second_order")
    hvps = np.array([0, 7, 19, 30])
    cost = so.hf_cost(hvps)
    assert np.array_equal(cost, np.arange(4) * COST_UNITS["grad"] + COST_UNITS["hvp"] * hvps)
    assert np.array_equal(cost, [0, 1 + 14, 2 + 38, 3 + 60])


def test_second_order_mlp_picture_is_on_the_cost_axis():
    so = _example("second_order")
    hvps = np.array([0, 12, 25, 40])  # what HessianFreeState.hvp_count reads after each step
    hf = so.CostCurve(so.hf_cost(hvps), np.array([1.0, 0.5, 0.2, 0.05]), 3)
    adam = so.CostCurve(np.arange(301.0) * COST_UNITS["grad"], np.geomspace(1.0, 1e-3, 301), 300)
    fig = so.mlp_picture({"Hessian-free (GGN)": hf, "Adam (lr 3e-3)": adam})
    ax = fig.axes[0]
    assert "gradient-equivalents" in ax.get_xlabel()
    lines = {line.get_label().split(":")[0]: line for line in ax.lines}
    assert np.array_equal(lines["Hessian-free (GGN)"].get_xdata(), [0, 25, 52, 83])  # k + 2 * hvp_count
    assert np.array_equal(lines["Adam (lr 3e-3)"].get_xdata(), np.arange(301))  # one gradient per step
    colours = {tuple(matplotlib.colors.to_rgba(line.get_color())) for line in ax.lines}
    assert len(colours) == len(ax.lines) == 2
    assert "300 steps" in lines["Adam (lr 3e-3)"].get_label() and "3 steps" in lines["Hessian-free (GGN)"].get_label()
    check_legend_and_limits(ax)


# --- seed_exercise.png ----------------------------------------------------------------------------

@pytest.mark.parametrize("epochs", [3, 5])
def test_seed_exercise_title_names_the_epochs_run(epochs):
    from gradkit import exercise

    results = exercise.run_seed_exercise(epochs=epochs)
    ax = exercise.draw_exercise(results)
    assert f"{epochs} epochs" in ax.get_title() and "30 epochs" not in ax.get_title()
    assert "from (-5, -2)" in ax.get_title()
    assert set(exercise.SEED_SETTINGS) <= {t.get_text() for t in ax.get_legend().get_texts()}
    drawn = [np.column_stack([line.get_xdata(), line.get_ydata()]) for line in ax.lines]
    for r in results:  # each trajectory (epochs + 1 points) is drawn
        points = np.asarray(r.trace.points)
        assert len(points) == epochs + 1
        assert any(d.shape == points.shape and np.allclose(d, points) for d in drawn), r.name
    check_legend_and_limits(ax, check_legend=False)  # plot_landscape's legend uses proxy handles


# --- vanishing_gradients.png ----------------------------------------------------------------------

def test_vanishing_gradients_legends_name_drawn_curves_outside_the_data():
    se = _example("seed_experiments")
    rng = np.random.default_rng(0)
    curves = {name: 2.3 + 0.1 * rng.random(20) for name in se.VANISHING_OPTIMIZERS}
    norms = np.geomspace(1e-3, 1.0, 6)[None, :] * (1 + 0.1 * rng.random((20, 6)))
    fig = se.vanishing_picture(curves, norms, epochs=2)
    loss_ax, norm_ax = fig.axes
    assert "2 epochs" in loss_ax.get_xlabel()
    for ax in (loss_ax, norm_ax):
        check_legend_and_limits(ax)
        assert not any("IQR" in t.get_text() or "band" in t.get_text() for t in ax.get_legend().get_texts())
    fig.canvas.draw()
    for ax in (loss_ax, norm_ax):  # each legend lies outside its axes: it covers no curve
        legend_box, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend_box.y1 <= axes_box.y0 or legend_box.x0 >= axes_box.x1
    labels = [t.get_text() for t in norm_ax.get_legend().get_texts()]
    assert labels[0].startswith("layer 0") and labels[-1].startswith("layer 5") and len(labels) == 6


# --- fgd_digits.png -------------------------------------------------------------------------------

def test_fgd_digits_fills_its_figure_and_legends_what_is_drawn():
    fg = _example("forward_gradient")
    rng = np.random.default_rng(0)  # digits-shaped data, without importing scikit-learn
    data = (rng.random((48, 64), dtype=np.float32), rng.integers(0, 10, 48), "test data")
    curves, _ = fg.classification_curves(8, 2, models=("softmax regression",), data=data)
    c = curves["softmax regression"]
    assert c.sgd.shape == (8,) and c.fgd.shape == (2, 8)
    fig = fg.digits_picture(curves)
    fig.canvas.draw()
    axes_area = sum(ax.get_position().width * ax.get_position().height for ax in fig.axes)
    assert axes_area > 0.55, f"the panels fill only {axes_area:.0%} of the figure"
    legend = fig.legends[0]
    for ax in fig.axes:
        check_legend_and_limits(ax, legend)
        assert np.allclose(ax.lines[1].get_ydata(), c.fgd.mean(axis=0))
    assert fig.axes[0].get_xlabel() == "step" and "wall time" in fig.axes[1].get_xlabel()

"""Pictures render with the scales, norms, labels and legends a reader needs (Agg backend, tiny sizes)."""

import types

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import LogNorm, to_rgba

from gradkit import landscapes, plot


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _inside_figure(artist) -> bool:
    fig = artist.figure
    fig.canvas.draw()
    box, page = artist.get_window_extent(), fig.bbox
    return box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y0 >= page.y0 - 1 and box.y1 <= page.y1 + 1


def _contrast(a, b) -> float:
    la, lb = plot._relative_luminance(a), plot._relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def test_log_landscape_contours_use_a_log_norm_and_linear_ones_do_not():
    ax = plot.plot_landscape(landscapes.get("rosenbrock"), resolution=40)
    filled = [c for c in ax.collections if hasattr(c, "levels") and c.filled]
    assert len(filled) == 1 and isinstance(filled[0].norm, LogNorm)
    levels = np.asarray(filled[0].levels)
    np.testing.assert_allclose(np.diff(np.log10(levels)), np.diff(np.log10(levels))[0], rtol=1e-9)  # log-spaced
    assert "log" in ax.figure.axes[-1].get_ylabel()  # the colorbar says so
    ax2 = plot.plot_landscape(landscapes.get("six_hump_camel"), resolution=40)
    filled2 = [c for c in ax2.collections if hasattr(c, "levels") and c.filled][0]
    assert not isinstance(filled2.norm, LogNorm)
    np.testing.assert_allclose(np.diff(filled2.levels), np.diff(filled2.levels)[0], rtol=1e-9)


def test_landscape_trajectories_several_starts_one_legend_entry_each_outside_the_axes():
    land = landscapes.get("himmelblau")
    rng = np.random.default_rng(0)
    starts = rng.uniform(-4, 4, (20, 1, 2))
    paths = {"adam": starts + np.linspace(0, 1, 6)[None, :, None] * (np.array([3.0, 2.0]) - starts),
             "sgd": starts[:3] * np.linspace(1, 0.5, 6)[None, :, None],
             "one run": np.stack([np.linspace(-4, 3, 5), np.linspace(-4, 2, 5)], -1)}
    paths["sgd"][1, 3:] = np.nan  # a diverged run is drawn up to its last finite point
    ax = plot.plot_landscape(land, paths, resolution=40, title="himmelblau: a title that must stay inside")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum(t.startswith("adam") for t in texts) == 1 and "adam (8 of 20 starts)" in texts
    assert "sgd" in texts and "one run" in texts and "global minimum" in texts
    adam_color = to_rgba(plt.get_cmap("tab10")(0))
    adam_lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and to_rgba(ln.get_color()) == adam_color]
    assert len(adam_lines) == 8  # capped, one colour
    starts_drawn = np.array([ln.get_xydata()[0] for ln in adam_lines])
    spread = np.min([np.linalg.norm(a - b) for i, a in enumerate(starts_drawn) for b in starts_drawn[i + 1:]])
    assert spread > 1.0  # farthest-point choice: no two drawn starts bunch together
    sgd_lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) == 3]
    assert len(sgd_lines) == 1 and np.isfinite(sgd_lines[0].get_xydata()).all()
    fig = ax.figure
    fig.canvas.draw()
    legend_box, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert not legend_box.overlaps(axes_box)
    assert _inside_figure(ax.title) and _inside_figure(ax.get_legend())
    with pytest.raises(ValueError, match="steps, 2"):
        plot.plot_landscape(land, {"bad": np.zeros((3, 4))}, resolution=20)


def test_loss_curves_log_axis_diverged_runs_counted_as_inf_from_where_they_diverged():
    steps = np.arange(30)
    good = np.exp(-steps / 5.0)[None] * np.array([[0.5], [1.0], [2.0], [4.0]])
    exploding = np.exp(np.minimum(steps, 10) / 2.0)[None].repeat(3, 0)  # frozen from step 11, as the runner does
    momentum = np.concatenate([good * 1e-3, exploding, np.full((1, 30), np.nan)])
    flags = np.array([False] * 4 + [True] * 3 + [False])  # the NaN run is caught without a flag
    ax = plot.plot_loss_curves({"sgd": good, "momentum": momentum}, diverged={"momentum": flags},
                               layout="overlay", title="f - f*")
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "momentum (4 of 8 diverged)" in labels and "sgd" in labels
    median_line = [ln for ln in ax.get_lines() if ln.get_label().startswith("momentum")][0]
    shown = momentum.copy()
    shown[7] = np.inf
    shown[4:7, 11:] = np.inf
    expected = np.where(np.isinf(shown).sum(axis=0) >= 4, np.nan, np.median(np.nan_to_num(shown, posinf=1e300), axis=0))
    np.testing.assert_allclose(median_line.get_ydata(), expected, rtol=1e-12)  # all 8 runs, +inf once diverged
    lo, hi = ax.get_ylim()
    assert lo > 0 and hi < 1e3  # the band's infinite top runs off the axis instead of stretching it
    twin = [a for a in ax.figure.axes if a is not ax and "diverged" in a.get_ylabel()]
    assert len(twin) == 1  # the diverged fraction over steps, on a secondary axis
    assert _inside_figure(ax.title)


def test_loss_curves_pick_small_multiples_when_bands_overlap():
    rng = np.random.default_rng(0)
    base = np.exp(-np.arange(40) / 10.0)[None] * rng.lognormal(0, 1, (30, 1))
    same = {"a": base, "b": base * 1.1, "c": base * 0.9}
    ax = plot.plot_loss_curves(same, title="crowded")
    panels = [a for a in ax.figure.axes if a.get_visible()]
    assert len(panels) == 3 and all(a.get_yscale() == "log" for a in panels)
    assert [a.get_title() for a in panels] == ["a", "b", "c"]
    assert _inside_figure(ax.figure._suptitle)
    apart = {"a": base, "b": base * 1e-6}
    ax2 = plot.plot_loss_curves(apart)
    assert len(ax2.figure.axes) == 1 and ax2.get_legend() is not None
    with pytest.raises(ValueError, match="layout"):
        plot.plot_loss_curves(apart, layout="grid")
    with pytest.raises(ValueError, match="not in curves"):
        plot.plot_loss_curves(apart, diverged={"zzz": [True]})


def test_loss_curves_all_diverged_and_exact_zeros():
    ax = plot.plot_loss_curves({"x": np.full((3, 5), np.inf), "y": np.array([[1.0, 0.1, 0.0, 0.0, 0.0]] * 2)},
                               layout="overlay")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "x (all 3 diverged)" in labels
    lo, _ = ax.get_ylim()
    assert lo > 0  # exact zeros sit on the floor of a log axis instead of vanishing


def test_heatmap_text_contrasts_with_its_cell_and_nan_cells_are_marked():
    matrix = np.linspace(0, 1, 12).reshape(3, 4)
    matrix[1, 2] = np.nan
    ax = plot.plot_heatmap(matrix, ["sgd", "adam", "lion"], ["1e-3", "1e-2", "1e-1", "1"], title="success",
                           cbar_label="success rate")
    image = ax.get_images()[0]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert texts[(1, 2)].get_text() == "–"
    colors = set()
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            cell = image.cmap(image.norm(value))
            text = to_rgba(texts[(i, j)].get_color())
            colors.add(text)
            assert _contrast(cell, text) >= 4.5, (i, j, cell, text)  # WCAG AA
    assert len(colors) == 2  # dark text on the light cells, light text on the dark ones
    assert ax.get_xlabel() == "learning rate" and ax.get_ylabel() == "optimizer"
    assert ax.figure.axes[-1].get_ylabel() == "success rate"
    assert _inside_figure(ax.title)
    with pytest.raises(ValueError, match="labels"):
        plot.plot_heatmap(matrix, ["a"], ["b"])


def test_text_color_for_every_colour_meets_wcag_aa():
    rng = np.random.default_rng(0)
    for rgb in rng.uniform(0, 1, (200, 3)):
        best = plot.text_color_for(rgb)
        assert _contrast(rgb, to_rgba(best)) >= 4.58 - 1e-9
    assert plot.text_color_for((1.0, 1.0, 0.0)) == "black" and plot.text_color_for((0.1, 0.0, 0.3)) == "white"


def _sweep():
    conv = {"adam": np.array([[1, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], bool),
            "sgd": np.array([[0, 1, 0, 0], [1, 1, 1, 0]], bool)}
    hits = {"adam": np.array([[5, 7, -1, 9], [-1, -1, -1, -1], [2, 3, 2, 2]]),
            "sgd": np.array([[-1, 40, -1, -1], [10, 11, 12, -1]])}
    fields = {"converged": conv, "hit_step": hits}
    return types.SimpleNamespace(
        results={"adam": object(), "sgd": object()},
        grids={"adam": [{"learning_rate": v, "b1": 0.9} for v in (1e-3, 1e-2, 1e-1)],
               "sgd": [{"learning_rate": v, "b1": 0.9} for v in (1e-3, 1e-2)]},
        n_starts=4, steps=50, per_config=lambda name, field: fields[field][name])


def test_sweep_heatmap_fraction_and_steps():
    ax = plot.plot_sweep_heatmap(_sweep())
    image = ax.get_images()[0]
    np.testing.assert_allclose(image.get_array().filled(np.nan), [[75, 0, 100], [25, 75, np.nan]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.01", "0.1"]
    assert ax.get_xlabel() == "learning rate" and ax.get_ylabel() == "optimizer"
    assert {t.get_text() for t in ax.texts} >= {"75%", "0%", "100%", "25%", "–"}
    ax2 = plot.plot_sweep_heatmap(_sweep(), "hit_step", min_success=2)
    # censored medians (a run that never hit counts as the budget, 50); fewer than 2 hits: grey
    np.testing.assert_allclose(ax2.get_images()[0].get_array().filled(np.nan), [[8, np.nan, 2], [np.nan, 11.5, np.nan]])
    assert {t.get_text() for t in ax2.texts} >= {"0/4", "1/4", "–", "8", "2"}
    with pytest.raises(ValueError, match="valid fields"):
        plot.plot_sweep_heatmap(_sweep(), "gk_adam")


def test_performance_and_data_profiles():
    taus = np.array([1.0, 2.0, 4.0, 16.0])
    rho = np.array([[0.5, 0.75, 1.0, 1.0], [0.5, 0.5, 0.5, 0.75]])
    ax = plot.plot_performance_profile(types.SimpleNamespace(solvers=["adam", "sgd"], taus=taus, rho=rho))
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["adam", "sgd"]
    assert {t.get_text() for t in ax.texts} == {"adam", "sgd"}  # labelled at the curve ends
    np.testing.assert_allclose(lines[0].get_xdata()[[0, -1]], [0.0, 4.0])  # log2 τ
    assert lines[0].get_drawstyle() == "steps-post" and "log₂ τ" in ax.get_xlabel()
    np.testing.assert_allclose(lines[1].get_ydata(), rho[1])
    with pytest.raises(ValueError, match="rho must have shape"):
        plot.plot_performance_profile(types.SimpleNamespace(solvers=["a"], taus=taus, rho=rho))
    budgets = np.array([1, 10, 100, 1000])
    frac = np.array([[0.0, 0.2, 0.6, 0.9]])
    ax2 = plot.plot_data_profile(types.SimpleNamespace(solvers=["adam"], budgets=budgets, fraction=frac,
                                                       unit="gradient evaluations"))
    assert ax2.get_xscale() == "log" and ax2.get_xlabel() == "budget (gradient evaluations)"
    assert ax2.get_ylabel() == "fraction of problems solved"
    np.testing.assert_allclose(ax2.get_lines()[0].get_ydata(), frac[0])
    assert _inside_figure(ax2.title) and all(_inside_figure(t) for t in ax2.texts)


def test_save_keeps_the_title(tmp_path):
    ax = plot.plot_heatmap(np.eye(2), ["a", "b"], ["c", "d"], title="a rather long title " * 3)
    path = plot.save(ax, tmp_path / "sub" / "h.png")
    image = plt.imread(path)
    assert image.shape[1] > 100 and path.exists()

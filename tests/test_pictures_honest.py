"""The race's pictures draw what the numbers say: each picture's data comes from a pure function
(heatmap_cells, loss_bands, profile_curves, basin_labels, landscape_colour_scale), checked here
against the leaderboard's rules recomputed with numpy (issue 22 §1)."""

import types
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import LogNorm

from gradkit import landscapes, plot
from gradkit.runs import RunResult, SweepResult


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _run_result(rng: np.random.Generator, n: int, steps: int, p_conv: float, p_div: float) -> RunResult:
    diverged = rng.random(n) < p_div
    ended = (rng.random(n) < p_conv) & ~diverged
    ended[: 2] = True  # a diverged run may still end "within" on its frozen point: converged excludes it
    settled = np.where(ended, rng.integers(0, steps, n), -1)
    zeros = np.zeros(n)
    return RunResult(final=np.zeros((n, 2)), final_value=zeros, final_grad_norm=zeros, diverged=diverged,
                     steps_recorded=np.arange(1), first_hit=np.where(ended, settled // 2, -1), settled_step=settled,
                     ended_within=ended, final_distance=zeros, cost=np.full(n, float(steps)),
                     cost_to_settle=np.where(ended, settled.astype(float), np.inf))


def _sweep(steps: int = 300, n_starts: int = 144) -> SweepResult:
    rng = np.random.default_rng(0)
    lrs = [3e-4, 1e-3, 1e-2]
    results = {"sgd": _run_result(rng, 3 * n_starts, steps, 0.01, 0.1),
               "momentum": _run_result(rng, 3 * n_starts, steps, 0.7, 0.2)}
    grids = {name: [{"learning_rate": lr} for lr in lrs] for name in results}
    return SweepResult(results, grids, n_starts, steps)


def test_heatmap_cells_are_the_leaderboards_censored_median():
    sweep = _sweep()
    cells = plot.heatmap_cells(sweep, "settled_step", min_success=3)
    assert cells.kind == "steps" and cells.rows == ["sgd", "momentum"] and cells.columns == ["0.0003", "0.001", "0.01"]
    for i, name in enumerate(cells.rows):
        rr = sweep.results[name]
        conv = (np.asarray(rr.ended_within) & ~np.asarray(rr.diverged)).reshape(3, sweep.n_starts)
        settled = np.asarray(rr.settled_step).reshape(3, sweep.n_starts)
        expected = np.median(np.where(conv, settled, sweep.steps), axis=1)  # unsettled = the budget
        np.testing.assert_allclose(cells.values[i], expected)
        np.testing.assert_array_equal(cells.successes[i], conv.sum(axis=1))
        np.testing.assert_array_equal(cells.greyed[i], conv.sum(axis=1) < 3)
    summary = {(r["optimizer"], r["learning_rate"]): r["median_settled"] for r in sweep.summary()}
    for i, name in enumerate(cells.rows):
        for j, lr in enumerate([3e-4, 1e-3, 1e-2]):
            assert cells.values[i, j] == summary[(name, lr)]
    assert cells.values[0].min() == sweep.steps  # sgd: one start of 144 settles, the median is the budget
    ax = plot.plot_sweep_heatmap(sweep, "settled_step")
    shown = ax.get_images()[0].get_array().filled(np.nan)
    np.testing.assert_array_equal(np.isnan(shown), cells.greyed)  # grey where too few settled
    texts = {t.get_text() for t in ax.texts}
    assert any("/144" in t for t in texts) and "grey: fewer than 3" in ax.get_title()
    fractions = plot.heatmap_cells(sweep, "converged")
    summary_conv = {(r["optimizer"], r["learning_rate"]): r["converged"] for r in sweep.summary()}
    assert fractions.values[1, 2] == pytest.approx(summary_conv[("momentum", 1e-2)])


def test_sweep_heatmap_unknown_field_names_fields_and_optimizers():
    sweep = _sweep(n_starts=4)
    with pytest.raises(ValueError, match="valid fields") as info:
        plot.plot_sweep_heatmap(sweep, "gk_adam")
    assert "settled_step" in str(info.value) and "'sgd'" in str(info.value)
    with pytest.raises(ValueError, match="is an optimizer of this sweep"):
        plot.plot_sweep_heatmap(sweep, "momentum")


def test_loss_band_counts_diverged_runs_as_inf_from_where_they_diverged():
    steps = 20
    decay = np.exp(-np.arange(steps) / 3.0)
    values = np.tile(decay, (10, 1)) * np.arange(1, 11)[:, None]
    flags = np.zeros(10, bool)
    flags[4:] = True  # 60 % diverge; the runner freezes them at their last finite point from column 5
    values[4:, 5:] = values[4:, 4:5]
    values[0, -3:] = -1e-18  # f - f* <= 0 from rounding
    band = plot.loss_bands(values, flags, floor=1e-12)
    assert band.n_diverged == 6 and band.n_runs == 10
    assert np.all(np.isfinite(band.median[:5])) and np.all(np.isposinf(band.median[5:]))
    np.testing.assert_allclose(band.median[:5], np.median(values[:, :5], axis=0))
    np.testing.assert_allclose(band.diverged_fraction, np.where(np.arange(steps) >= 5, 0.6, 0.0))
    assert np.all(np.isfinite(band.lo)) and band.lo.min() >= 1e-12  # clipped into the precision band
    assert plot.divergence_column(np.array([1.0, 2.0, np.nan, np.nan])) == 2
    assert plot.precision_floor(-1.03, np.float32) == pytest.approx(np.finfo(np.float32).eps * 1.03)
    ax = plot.plot_loss_curves({"momentum": values}, diverged={"momentum": flags}, floor=1e-12, layout="overlay")
    median = [ln for ln in ax.get_lines() if ln.get_label().startswith("momentum")][0].get_ydata()
    assert np.all(np.isnan(median[5:]))  # the median leaves the axis
    twin = [a for a in ax.figure.axes if "diverged" in a.get_ylabel()][0]
    np.testing.assert_allclose(twin.get_lines()[0].get_ydata(), 100 * band.diverged_fraction)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "momentum (6 of 10 diverged)" in labels and any("below precision" in t for t in labels)


def test_profile_has_one_curve_per_solver_and_one_solver_draws_without_warnings():
    profile = types.SimpleNamespace(solvers=["adam", "lion"], taus=np.array([1.0]), rho=np.array([[0.5], [0.0]]))
    curves = plot.profile_curves(profile)
    assert [c.solver for c in curves] == ["adam", "lion"]
    assert curves[1].label == "lion (solves nothing)" and not np.any(curves[1].y)
    assert curves[0].x[-1] > curves[0].x[0] and np.all(curves[0].y == 0.5)  # a visible segment
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = plot.plot_performance_profile(profile)
        ax.figure.canvas.draw()
    assert len(ax.get_lines()) == 2 and {t.get_text() for t in ax.texts} == {"adam", "lion (solves nothing)"}
    assert ax.get_legend() is None  # labelled at the curve ends instead
    many = types.SimpleNamespace(solvers=[f"s{k}" for k in range(14)], taus=np.array([1.0, 2.0, 4.0]),
                                 rho=np.tile(np.array([0.2, 0.4, 0.5]), (14, 1)))
    ax = plot.plot_performance_profile(many)
    styles = {(ln.get_color(), ln.get_linestyle()) for ln in ax.get_lines()}
    assert len(ax.get_lines()) == 14 and len(styles) == 14  # 14 distinct colour x style pairs
    ys = sorted(t.get_position()[1] for t in ax.texts)
    assert np.min(np.diff(ys)) > 0  # equal end values, labels nudged apart


def test_local_minima_are_found_and_named():
    land = landscapes.get("six_hump_camel")
    minima = plot.local_minima(land)
    assert len(minima) == 6 and sum(m.is_global for m in minima) == 2
    local = [m for m in minima if not m.is_global]
    values = sorted(round(m.value, 3) for m in local)
    assert values == [-0.215, -0.215, 2.104, 2.104]
    target = next(m for m in local if m.point[0] > 1.6 and m.point[1] < 0)
    np.testing.assert_allclose(target.point, (1.7036, -0.7961), atol=1e-3)


def test_basins_label_runs_by_the_minimum_they_reach_and_only_stray_runs_are_no_minimum():
    land = landscapes.get("six_hump_camel")
    minima = [plot.NamedMinimum("global min (0.09, -0.71)", (0.0898, -0.7127), -1.0316, True),
              plot.NamedMinimum("local min (1.70, -0.80), f=-0.2155", (1.7036, -0.7961), -0.2155, False)]
    target = minima[1]
    finals = np.array([minima[0].point, target.point, (0.0, 0.0), (np.nan, np.nan)])
    labels = plot.basin_labels(finals, minima)
    assert labels[0] == 0 and minima[labels[1]] is target and list(labels[2:]) == [-1, -1]
    starts = np.zeros((4, 2))
    ax = plot.plot_basins(land, starts, finals=finals, minima=minima)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith(f"→ {target.name}") and "(1 start)" in t for t in texts)
    assert any(t.startswith("→ no minimum (2 starts") for t in texts)


def test_trajectory_colour_scale_is_shared_across_landscapes():
    scales = []
    for name in ("rosenbrock", "six_hump_camel", "himmelblau"):
        land = landscapes.get(name)
        _, _, Z = plot.landscape_grid(land, 30)
        scales.append(plot.landscape_colour_scale(land, Z, shared=True))
    assert all(s.log and s.shared for s in scales)
    for s in scales[1:]:
        np.testing.assert_array_equal(s.levels, scales[0].levels)
        assert s.label == scales[0].label and "log" in s.label and "f - f*" in s.label
    land = landscapes.get("six_hump_camel")
    paths = np.stack([np.linspace([1.0, 0.5], [0.09, -0.71], 6), np.linspace([-1.0, 0.5], [1.5, 0.9], 6)])
    ax = plot.plot_landscape(land, {"adam": paths, "sgd": paths[:1]}, resolution=30,
                             diverged={"adam": np.array([False, True])})
    filled = [c for c in ax.collections if hasattr(c, "levels") and c.filled][0]
    assert isinstance(filled.norm, LogNorm) and (filled.norm.vmin, filled.norm.vmax) == plot.SHARED_GAP_RANGE
    crosses = [ln for ln in ax.get_lines() if ln.get_marker() == "x" and len(ln.get_xdata()) == 1]
    np.testing.assert_allclose(crosses[0].get_xydata()[0], paths[1, -1])  # × at the diverged run's end
    lines = {ln.get_zorder(): ln for ln in ax.get_lines() if ln.get_linestyle() == "-"}
    top = lines[max(lines)]
    assert top.get_linewidth() < lines[min(lines)].get_linewidth()  # the first label on top, thinner
    assert "diverged (last finite point, or where it left the frame)" in [t.get_text() for t in
                                                                           ax.get_legend().get_texts()]
    away = np.array([[1.0, 0.0], [1.8, 0.0], [3.0, 0.5], [50.0, 9.0]])  # diverged far outside the frame
    np.testing.assert_allclose(plot._frame_exit(away, land.domain), [2.0, 1.0 / 12])  # × where it crossed x = 2

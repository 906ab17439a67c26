"""``gradkit race``: every optimizer on a suite of landscapes, thousands of runs at once.

For each landscape: a grid of start points × a learning-rate grid × every
optimizer, one :func:`gradkit.runs.sweep` (one compiled call per optimizer),
then a leaderboard (success rate, median steps to ``|f - f*| <= tol``, best
learning rate) and pictures: trajectories of the leaders at their best learning
rate, loss curves (median and 10–90% band over starts), heatmaps of the success
rate and of the median steps to tolerance over optimizer × learning rate, and a
basin map when the landscape has several minima.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np

from gradkit import landscapes, optim, runs

DEFAULT_LANDSCAPES = ("rosenbrock", "himmelblau", "six_hump_camel", "rastrigin", "seed_quadratic")
DEFAULT_LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


@dataclasses.dataclass(frozen=True)
class RaceConfig:
    landscapes: Sequence[str] = DEFAULT_LANDSCAPES
    optimizers: Sequence[str] = tuple(optim.FIRST_ORDER)
    learning_rates: Sequence[float] = DEFAULT_LEARNING_RATES
    starts_per_axis: int = 12
    steps: int = 500
    tol: float = 1e-4
    record_every: int = 5
    out: str | None = "gradkit-out"
    top: int = 6


@dataclasses.dataclass(frozen=True)
class LandscapeRace:
    landscape: landscapes.Landscape
    starts: np.ndarray
    sweep: runs.SweepResult
    leaderboard: list[dict[str, Any]]
    pictures: list[str]


def _format_leaderboard(name: str, rows: list[dict[str, Any]], n_runs: int) -> str:
    header = f"   {'optimizer':<12}{'best lr':>9}{'success':>9}{'median steps':>14}{'diverged':>10}"
    lines = [f"== {name}: {n_runs} runs", header]
    for row in rows:
        steps = "-" if math.isnan(row["median_steps"]) else f"{row['median_steps']:.0f}"
        lines.append(f"   {row['optimizer']:<12}{row['learning_rate']:>9.0e}{row['success']:>9.1%}{steps:>14}"
                     f"{row['diverged']:>10.1%}")
    return "\n".join(lines)


def race_landscape(name: str, config: RaceConfig) -> LandscapeRace:
    """Sweep every optimizer × learning rate × start on landscape ``name``."""
    land = landscapes.get(name)
    starts = runs.start_grid(land.domain, config.starts_per_axis)
    makers = {opt: optim.FIRST_ORDER[opt] for opt in config.optimizers}
    grids = {opt: {"learning_rate": list(config.learning_rates)} for opt in config.optimizers}
    result = runs.sweep(land, makers, starts, grids, config.steps, tol=config.tol, f_star=land.min_value,
                        record=config.record_every)
    leaderboard = result.best()
    pictures = _pictures(land, np.asarray(starts), result, leaderboard, config) if config.out else []
    return LandscapeRace(land, np.asarray(starts), result, leaderboard, pictures)


def _demo_start_index(land: landscapes.Landscape, starts: np.ndarray) -> int:
    """The grid start nearest the upper-left quarter of the domain (a standard demo start)."""
    (x0, x1), (y0, y1) = land.domain
    target = np.array([x0 + 0.2 * (x1 - x0), y1 - 0.2 * (y1 - y0)])
    return int(np.argmin(np.linalg.norm(starts - target, axis=1)))


def _pictures(land: landscapes.Landscape, starts: np.ndarray, result: runs.SweepResult,
              leaderboard: list[dict[str, Any]], config: RaceConfig) -> list[str]:
    from gradkit import plot

    out = Path(config.out or ".")
    n_starts = len(starts)
    leaders = leaderboard[: config.top]
    lr_index = {row["optimizer"]: list(config.learning_rates).index(row["learning_rate"]) for row in leaders}
    demo = _demo_start_index(land, starts)
    paths = []

    def runs_of(opt: str) -> slice:
        lo = lr_index[opt] * n_starts
        return slice(lo, lo + n_starts)

    trajectories = {f"{r['optimizer']} (lr {r['learning_rate']:.0e})":
                    np.asarray(result.results[r["optimizer"]].trajectory)[runs_of(r["optimizer"])][demo]
                    for r in leaders}
    ax = plot.plot_landscape(land, trajectories, title=f"{land.name}: leaders at their best learning rate")
    paths.append(str(plot.save(ax, out / f"{land.name}_trajectories.png")))

    curves = {r["optimizer"]: np.maximum(np.asarray(result.results[r["optimizer"]].values)[runs_of(r["optimizer"])]
                                         - land.min_value, 0.0) for r in leaders}
    ax = plot.plot_loss_curves(curves, xlabel=f"recorded step (x{config.record_every})", ylabel="f - f*")
    ax.set_title(f"{land.name}: f - f* over {n_starts} starts (median, 10-90%)", fontsize=9)
    paths.append(str(plot.save(ax, out / f"{land.name}_loss.png")))

    names = list(result.results)
    # a run counts once it met the tolerance and never diverged (as in SweepResult.summary)
    hits = {n: np.where(result.per_config(n, "diverged"), -1, result.per_config(n, "hit_step")) for n in names}
    success = np.stack([(hits[n] >= 0).mean(axis=1) for n in names])
    ax = plot.plot_heatmap(success, names, [f"{lr:.0e}" for lr in config.learning_rates],
                           title=f"{land.name}: success rate (|f - f*| <= {config.tol:g})", cbar_label="success")
    paths.append(str(plot.save(ax, out / f"{land.name}_heatmap.png")))

    def median_steps(hits: np.ndarray) -> np.ndarray:
        return np.array([np.median(h[h >= 0]) if np.any(h >= 0) else np.nan for h in hits])

    steps = np.stack([median_steps(hits[n]) for n in names])
    ax = plot.plot_heatmap(steps, names, [f"{lr:.0e}" for lr in config.learning_rates], fmt="{:.0f}",
                           title=f"{land.name}: median steps to |f - f*| <= {config.tol:g} (blank: never)",
                           cbar_label="steps", cmap="viridis_r")
    paths.append(str(plot.save(ax, out / f"{land.name}_steps.png")))

    if len(land.minima) > 1 and leaders:
        best = leaders[0]
        finals = np.asarray(result.results[best["optimizer"]].final)[runs_of(best["optimizer"])]
        basin = runs.nearest_minimum(finals, land.minima, radius=0.05)
        ax = plot.plot_basins(land, starts, basin,
                              title=f"{land.name}: basins of {best['optimizer']} (lr {best['learning_rate']:.0e})")
        paths.append(str(plot.save(ax, out / f"{land.name}_basins.png")))
    return paths


def race(config: RaceConfig = RaceConfig(), echo: Any = print) -> list[LandscapeRace]:
    """Race every configured optimizer on every configured landscape; print leaderboards."""
    unknown = [o for o in config.optimizers if o not in optim.FIRST_ORDER]
    if unknown:
        raise ValueError(f"unknown optimizer(s) {unknown}; valid: {', '.join(optim.FIRST_ORDER)}")
    for name in config.landscapes:
        landscapes.get(name)  # fail early on a bad name
    results = []
    for name in config.landscapes:
        res = race_landscape(name, config)
        n_runs = len(res.starts) * len(config.learning_rates) * len(config.optimizers)
        echo(_format_leaderboard(name, res.leaderboard, n_runs))
        for path in res.pictures:
            echo(f"   wrote {path}")
        results.append(res)
    return results

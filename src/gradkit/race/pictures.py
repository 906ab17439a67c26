"""The race's files: per-landscape pictures, pooled profiles (PNG, CSV, JSON) and the summary."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from gradkit import landscapes, runs
from gradkit.race.config import LandscapeRace, RaceConfig, contenders, record_stride
from gradkit.race.report import _fmt_lr, summary_dict


def _best_first(profile: Any) -> Any:
    """The profile with its solvers ordered best first (most problems solved, then the larger area
    under the curve), so the legend reads as a ranking."""
    field = "rho" if hasattr(profile, "rho") else "fraction"
    curves = np.asarray(getattr(profile, field))
    order = sorted(range(len(profile.solvers)), key=lambda s: (-curves[s, -1], -curves[s].sum()))
    return dataclasses.replace(profile, solvers=[profile.solvers[s] for s in order], **{field: curves[order]})


def _race_files(races: list[LandscapeRace], performance: Any, data: Any, config: RaceConfig) -> list[str]:
    from gradkit import plot

    out = Path(config.out or ".")
    files = []
    n_problems = sum(len(r.sweep.halves()[1]) for r in races)
    pooled = (f"{len(races)} landscape(s) x {n_problems // max(len(races), 1)} held-out starts = {n_problems} problems\n"
              f"cost: gradient-equivalents to settle within tol (budget {config.steps} steps)")
    titles = {"performance_profile": f"Performance profile (Dolan-Moré), {pooled}",
              "data_profile": f"Data profile (Moré-Wild), {pooled}"}
    for stem, profile, draw in (("performance_profile", performance, plot.plot_performance_profile),
                                ("data_profile", data, plot.plot_data_profile)):
        ax = draw(_best_first(profile), title=f"{titles[stem]}\ncurves labelled at their right ends, best first")
        files.append(str(plot.save(ax, out / f"{stem}.png")))
        profile.to_csv(out / f"{stem}.csv")
        profile.to_json(out / f"{stem}.json")
        files += [str(out / f"{stem}.csv"), str(out / f"{stem}.json")]
    summary = out / "race.json"
    summary.write_text(json.dumps(summary_dict(races, config), indent=1))
    files.append(str(summary))
    return files


def _config_index(result: runs.SweepResult, row: dict[str, Any]) -> int:
    name = row["optimizer"]
    return next(i for i, cfg in enumerate(result.grids[name]) if all(row[k] == v for k, v in cfg.items()))


def _label(row: dict[str, Any], swept: bool) -> str:
    name = row["optimizer"]
    return f"{name} (lr {_fmt_lr(row['learning_rate'])})" if swept else name


def _pictures(land: landscapes.Landscape, starts: np.ndarray, result: runs.SweepResult,
              leaderboard: list[dict[str, Any]], config: RaceConfig, f_star: float, res_tol: float) -> list[str]:
    from gradkit import plot

    out = Path(config.out or ".")
    n_starts = len(starts)
    leaders = leaderboard[: config.top]
    table = contenders(config)
    paths = []

    def runs_of(row: dict[str, Any]) -> slice:
        lo = _config_index(result, row) * n_starts
        return slice(lo, lo + n_starts)

    label = {r["optimizer"]: _label(r, table[r["optimizer"]].swept) for r in leaders}
    trajectories = {label[r["optimizer"]]: np.asarray(result.results[r["optimizer"]].trajectory)[runs_of(r)]
                    for r in leaders}
    path_diverged = {label[r["optimizer"]]: np.asarray(result.results[r["optimizer"]].diverged)[runs_of(r)]
                     for r in leaders}
    ax = plot.plot_landscape(land, trajectories, max_per_optimizer=config.paths_per_optimizer, diverged=path_diverged,
                             title=f"{land.name}: the top {len(leaders)} at their best config, "
                                   f"{min(config.paths_per_optimizer, n_starts)} of {n_starts} starts each")
    paths.append(str(plot.save(ax, out / f"{land.name}_trajectories.png")))

    stride = record_stride(config.steps, config.record_every)
    curves = {label[r["optimizer"]]: np.asarray(result.results[r["optimizer"]].values)[runs_of(r)] - f_star
              for r in leaders}
    diverged = {label[r["optimizer"]]: np.asarray(result.results[r["optimizer"]].diverged)[runs_of(r)] for r in leaders}
    dtype = np.asarray(starts).dtype
    floor = plot.precision_floor(f_star, dtype)
    ax = plot.plot_loss_curves(curves, diverged=diverged, steps=np.arange(0, config.steps + 1, stride), xlabel="step",
                               ylabel="f - f*", title=f"{land.name}: f - f* over {n_starts} starts, the top {len(leaders)}",
                               floor=floor, floor_label=f"below {dtype.name} precision of f* "
                                                        f"(eps·max(|f*|, 1) = {floor:.2g})")
    paths.append(str(plot.save(ax, out / f"{land.name}_loss.png")))

    swept = dataclasses.replace(result, results={n: r for n, r in result.results.items() if table[n].swept},
                                grids={n: g for n, g in result.grids.items() if table[n].swept})
    if swept.results:
        ax = plot.plot_sweep_heatmap(swept, field="converged",
                                     title=f"{land.name}: % of {n_starts} starts converged (ended within |f - f*| <= "
                                           f"{res_tol:.3g}), per learning rate")
        paths.append(str(plot.save(ax, out / f"{land.name}_heatmap.png")))
        ax = plot.plot_sweep_heatmap(swept, field="settled_step",
                                     title=f"{land.name}: median time-to-eps over all {n_starts} starts, per "
                                           f"learning rate (the leaderboard's rule)")
        paths.append(str(plot.save(ax, out / f"{land.name}_steps.png")))

    if len(land.minima) > 1 and leaders:
        best = leaders[0]
        finals = np.asarray(result.results[best["optimizer"]].final)[runs_of(best)]
        ax = plot.plot_basins(land, starts, finals=finals, radius=0.05,
                              title=f"{land.name}: basins of {_label(best, table[best['optimizer']].swept)}")
        paths.append(str(plot.save(ax, out / f"{land.name}_basins.png")))
    return paths


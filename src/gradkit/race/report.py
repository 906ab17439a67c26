"""The race's text: the context header, the leaderboards and the JSON summary."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from gradkit import runs
from gradkit.race.config import LandscapeRace, RaceConfig, contenders, grids_for, total_run_steps
from gradkit.race.contenders import Contender


def _fmt_lr(value: float) -> str:
    return f"{value:.0e}"


def format_header(config: RaceConfig) -> str:
    """The race's context: what was run, what success means, how the numbers are made."""
    grids = grids_for(config)
    swept = [n for n in grids if grids[n]]
    single = [n for n in grids if not grids[n]]
    n_starts = config.starts_per_axis**2
    devices = jax.devices()
    lines = [
        f"gradkit race: {len(config.landscapes)} landscape(s) x {len(grids)} optimizer(s), "
        f"{n_starts} starts ({config.starts_per_axis} per axis, a grid over each domain), {config.steps} steps, "
        f"{total_run_steps(config) // config.steps:,} runs on {len(devices)} {devices[0].platform} device(s)",
        f"  within tolerance: |f - f*| <= tol + rtol*f_scale, tol {config.tol:g}, rtol {config.rtol:g}; "
        f"f* = the landscape's minimum in the run dtype",
        f"  learning-rate grid ({', '.join(swept) or 'none'}): {' '.join(_fmt_lr(v) for v in config.learning_rates)}"
        + (f"; one config, no learning rate: {', '.join(single)}" if single else ""),
        f"  best config chosen on {n_starts // 2} starts, every number below on the other {n_starts - n_starts // 2}",
        "  converged = ended within tol and never diverged; time-to-eps = first step after which the run stays "
        f"within tol; never settled counts as the budget ({config.steps})",
        "  cost = gradient-equivalents (values, gradients, HVPs, line-search trials) to settle; "
        "* = best learning rate on the edge of the grid",
    ]
    if config.fast_compile and devices[0].platform == "cpu":
        lines.append("  compiled with XLA's quick CPU settings (legacy emitters, no LLVM optimisation: about half the "
                     "compile time; --no-fast-compile for XLA's defaults)")
    return "\n".join(lines)


def _none_converged(sweep: runs.SweepResult, name: str) -> bool:
    """No config of ``name`` converged on any tuning start: its "best" config is arbitrary."""
    return not np.asarray(sweep.per_config(name, "converged"))[:, sweep.halves()[0]].any()


def _config_text(row: dict[str, Any], contender: Contender, arbitrary: bool) -> str:
    if not contender.swept:
        return "-"
    if arbitrary:
        return "none"
    text = " ".join(_fmt_lr(row[hp]) for hp in contender.swept)
    return text + ("*" if row.get("at_grid_edge") else " ")


def format_median(value: float) -> str:
    """A median as it is: ``22.5`` stays ``22.5`` (the median of an even count of integers ends in
    .5), ``22.0`` prints ``22``; at most two decimals; ``inf``/``nan`` as words."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return np.format_float_positional(value, precision=2, trim="-")


TIE_BREAK_RULE = ("order: most converged first; a tie is broken by the larger profile area (area under the "
                  "performance profile of steps to settle, over these optimizers), then the smaller median "
                  "time-to-eps, then the smaller median cost")
"""The sort of :meth:`gradkit.runs.SweepResult.best`, printed under a leaderboard whose converged rates tie."""


def format_leaderboard(res: LandscapeRace, config: RaceConfig) -> str:
    """One landscape's leaderboard (rows in ``SweepResult.best()`` order).

    Rows sort by the key ``(-converged, -profile_area, median_settled, median_cost)``, the key of
    ``SweepResult.best``; when two converged rates tie, :data:`TIE_BREAK_RULE` is printed under
    the table.  Medians keep their .5 (:func:`format_median`)."""
    n_runs = sum(len(res.sweep.grids[n]) for n in res.sweep.grids) * res.sweep.n_starts
    header = (f"   {'optimizer':<24}{'best lr':>9}{'converged':>11}{'profile area':>14}{'median time-to-eps':>20}"
              f"{'median cost':>13}{'diverged':>10}")
    lines = [f"== {res.landscape.name}: {n_runs} runs; f* = {res.f_star:.10g}, within tol: |f - f*| <= {res.tol:.3g}",
             header]
    marks = set()
    table = contenders(config)
    for row in res.leaderboard:
        name = row["optimizer"]
        arbitrary = bool(table[name].swept) and _none_converged(res.sweep, name)
        cfg = _config_text(row, table[name], arbitrary)
        marks |= {"none"} if arbitrary else ({"*"} if cfg.endswith("*") else set())
        area = row.get("profile_area", float("nan"))
        lines.append(f"   {name:<24}{cfg:>9}{row['converged']:>11.1%}{area:>14.3f}"
                     f"{format_median(row['median_settled']):>20}{format_median(row['median_cost']):>13}"
                     f"{row['diverged']:>10.1%}")
    rates = [row["converged"] for row in res.leaderboard]
    if len(set(rates)) < len(rates):
        lines.append("   " + TIE_BREAK_RULE)
    if "*" in marks:
        lines.append("   * the best learning rate is the grid's first or last value: the optimum may lie outside it")
    if "none" in marks:
        lines.append("   none: no learning rate converged on any tuning start, so none is best"
                     " (the numbers are those of the config the tie-break kept)")
    return "\n".join(lines)


def _json_ready(value: Any) -> Any:
    """Plain JSON values (NaN and inf as strings, NumPy scalars as Python numbers)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def summary_dict(races: list[LandscapeRace], config: RaceConfig) -> dict[str, Any]:
    """The race's settings and every leaderboard as a JSON-ready dict."""
    return _json_ready({
        "config": dataclasses.asdict(config) | {"landscapes": list(config.landscapes),
                                                "optimizers": list(contenders(config)),
                                                "learning_rates": list(config.learning_rates)},
        "devices": [str(d) for d in jax.devices()],
        "definitions": {
            "within_tolerance": "|f - f*| <= tol + rtol * f_scale, f* = landscape.f_star(dtype)",
            "converged": "ended within tolerance and never diverged (fraction of the held-out starts)",
            "median_settled": "median first step after which the run stays within tolerance; never = steps",
            "median_cost": "the same in gradient-equivalents",
            "selection": "best config chosen on one half of the starts, scored on the other half",
        },
        "landscapes": {r.landscape.name: {"f_star": r.f_star, "tol": r.tol, "f_scale": r.landscape.f_scale,
                                          "leaderboard": r.leaderboard} for r in races},
    })


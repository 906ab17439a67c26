"""``gradkit race``: every optimizer family on a suite of landscapes, thousands of runs at once.

For each landscape: a grid of start points × (for methods with a learning rate) a
learning-rate grid × every optimizer, one :func:`gradkit.runs.sweep` call per
optimizer (one compiled call each), then a leaderboard and pictures.

What a verdict means (printed with every leaderboard, so a quoted table carries its context):

- **within tolerance**: ``|f(x) - f*| <= tol + rtol · f_scale`` with ``f* =
  landscape.f_star(dtype)`` — the landscape's minimum as attainable in the run's dtype
  (float32 by default), so a float32 run at the minimizer meets it — and ``f_scale``
  the landscape's value scale, so ``rtol`` asks for the same relative accuracy on a
  landscape whose values span 10^5 as on one that spans 1.  The test is on the
  *value*, the quantity every landscape defines (``saddle`` has no minimizer to
  measure a distance to).
- **converged**: the run *ended* within tolerance and never diverged (touching the
  tolerance once and leaving it again is not convergence).
- **time-to-ε**: the first step after which the run stays within tolerance to the end;
  a run that never settles is *censored* and counted as the budget (``steps``), so a
  median is over every run, not over the successes only.
- **cost**: gradient-equivalents (function values, gradients, Hessian-vector products
  and line-search trials, as counted by :mod:`gradkit.runs`), so first- and
  second-order methods meet fairly on the profiles.
- **best learning rate**: chosen on one half of the starts, every number reported on
  the other half (no selection bias); a best value on the edge of the grid is marked,
  since the true optimum may lie outside it.  Ties are broken by the
  performance-profile area, not by list order.

Per race (pooled over the landscapes, problems = landscape × start): a performance
profile and a data profile (PNG, CSV and JSON) and the leaderboards as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple
from collections.abc import Callable, Sequence

import jax
import numpy as np
import optax

from gradkit import landscapes, optim, runs

DEFAULT_LANDSCAPES = ("rosenbrock", "himmelblau", "six_hump_camel", "rastrigin", "seed_quadratic")
DEFAULT_LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
_MAX_RECORDED = 100  # recorded columns per run when the record stride is chosen automatically


def sam(learning_rate: Any) -> optax.GradientTransformationExtraArgs:
    """SAM around SGD, ``x ← x - η ∇f(x + ρ g/||g||)`` with ``ρ = 0.05`` (``gradkit.optim.sam``)."""
    return optim.sam(optim.sgd(learning_rate), rho=0.05)


_FGD_KEY = 0


def fgd(learning_rate: Any) -> optax.GradientTransformationExtraArgs:
    """Forward-gradient descent, ``x ← x - η (∇f·v) v`` with ``v ~ N(0, I)``, one tangent per step
    (``gradkit.optim.forward_gradient_descent`` around SGD).  Every run draws the same tangent
    sequence (key 0): common random numbers, so differences between configs are not noise."""
    return optim.forward_gradient_descent(optim.sgd(learning_rate), jax.random.PRNGKey(_FGD_KEY))


def hessian_free(**config: Any) -> optax.GradientTransformationExtraArgs:
    """Hessian-free on the exact Hessian (``gradkit.optim.hessian_free(curvature="hessian")``): a
    2D landscape has no model/loss split for the Gauss-Newton matrix."""
    return optim.hessian_free(curvature="hessian", **config)


@dataclasses.dataclass(frozen=True)
class Contender:
    """An optimizer in the race: ``make(**config)`` builds it; ``swept`` names the
    hyperparameters taken from the race's grid (``()``: one config, no grid)."""

    make: Callable[..., optax.GradientTransformation]
    swept: tuple[str, ...]
    family: str


CONTENDERS: dict[str, Contender] = {
    **{name: Contender(make, ("learning_rate",), "first-order") for name, make in optim.FIRST_ORDER.items()},
    "lbfgs": Contender(optax.lbfgs, (), "quasi-Newton"),  # optax's own: memory 10, zoom (strong Wolfe) line search
    "bfgs": Contender(optim.bfgs, (), "quasi-Newton"),  # gradkit's: line search folded into the steps
    "newton_cg": Contender(optim.newton_cg, (), "second-order"),
    "newton_cg_trust_region": Contender(optim.newton_cg_trust_region, (), "second-order"),
    "hessian_free": Contender(hessian_free, (), "second-order"),
    **{name: Contender(make, ("learning_rate",), "Hessian-aware") for name, make in optim.HESSIAN_AWARE.items()},
    "sam": Contender(sam, ("learning_rate",), "sharpness-aware"),
    "fgd": Contender(fgd, ("learning_rate",), "forward-gradient"),
}
"""Every optimizer ``--optimizers`` can name."""

DEFAULT_OPTIMIZERS = (*(n for n in optim.FIRST_ORDER if n != "adamw"), "lbfgs", "newton_cg")


@dataclasses.dataclass(frozen=True)
class RaceConfig:
    """A race: ``landscapes`` × ``optimizers`` × (``learning_rates`` for those that take one) ×
    ``starts_per_axis²`` start points, ``steps`` steps each.  Success is
    ``|f - f*| <= tol + rtol · f_scale`` at the final step (see the module doc).
    ``record_every=None`` records at most 100 points per run (the largest divisor of
    ``steps`` that keeps it so).  ``out=None``: no files.  ``workers``: threads that compile
    and run the optimizers of a landscape concurrently (default: the usable CPU cores;
    results do not depend on it)."""

    landscapes: Sequence[str] = DEFAULT_LANDSCAPES
    optimizers: Sequence[str] = DEFAULT_OPTIMIZERS
    learning_rates: Sequence[float] = DEFAULT_LEARNING_RATES
    starts_per_axis: int = 12
    steps: int = 500
    tol: float = 1e-4
    rtol: float = 0.0
    record_every: int | None = None
    out: str | None = "gradkit-out"
    top: int = 5
    progress: bool = False
    workers: int | None = None
    paths_per_optimizer: int = 4


@dataclasses.dataclass(frozen=True)
class LandscapeRace:
    """One landscape's race: its start points, the sweep, the tolerance used and the
    leaderboard (``SweepResult.best()`` rows), and the pictures written."""

    landscape: landscapes.Landscape
    starts: np.ndarray
    sweep: runs.SweepResult
    f_star: float
    tol: float
    leaderboard: list[dict[str, Any]]
    pictures: list[str]


@dataclasses.dataclass(frozen=True)
class RaceResult:
    """A whole race: the per-landscape results, the pooled profiles and every file written."""

    config: RaceConfig
    races: list[LandscapeRace]
    performance: Any
    data: Any
    files: list[str]


# ----------------------------------------------------------------------------- validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def record_stride(steps: int, record_every: int | None) -> int:
    """The record stride: ``record_every`` when given (it must divide ``steps``), else the
    smallest divisor ``k`` of ``steps`` with ``steps / k <= 100``."""
    if record_every is not None:
        return record_every
    return next(k for k in range(1, steps + 1) if steps % k == 0 and steps // k <= _MAX_RECORDED)


def validate(config: RaceConfig) -> None:
    """Every check that needs no compute, so bad input fails in a line before the sweep runs.

    Raises ``ValueError`` naming the setting and what was expected."""
    if not _is_int(config.starts_per_axis) or config.starts_per_axis < 2:
        raise ValueError(f"--starts {config.starts_per_axis!r} is invalid (expected an integer >= 2: start points "
                         f"per axis; half of the starts select the learning rate, the other half are scored)")
    if not _is_int(config.steps) or config.steps < 1:
        raise ValueError(f"--steps {config.steps!r} is invalid (expected a positive integer)")
    lrs = list(config.learning_rates)
    bad = [v for v in lrs if not (isinstance(v, int | float) and math.isfinite(v) and v > 0)]
    if bad or not lrs:
        raise ValueError(f"--lrs {' '.join(map(str, bad or lrs))} is invalid (expected finite learning rates > 0)")
    for flag, value in (("--tol", config.tol), ("--rtol", config.rtol)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{flag} {value!r} is invalid (expected a finite number >= 0)")
    if config.tol == 0 and config.rtol == 0:
        raise ValueError("--tol 0 with --rtol 0 is invalid (expected one of them > 0: no float run meets |f - f*| <= 0)")
    if config.record_every is not None and (not _is_int(config.record_every) or config.record_every < 1
                                            or config.steps % config.record_every):
        raise ValueError(f"--record-every {config.record_every!r} is invalid (expected a positive integer "
                         f"dividing --steps {config.steps})")
    if config.workers is not None and (not _is_int(config.workers) or config.workers < 1):
        raise ValueError(f"--workers {config.workers!r} is invalid (expected a positive integer)")
    if not _is_int(config.top) or config.top < 1:
        raise ValueError(f"--top {config.top!r} is invalid (expected a positive integer)")
    valid = ", ".join(landscapes.names())
    unknown = [n for n in config.landscapes if n not in landscapes.names()]
    if unknown or not config.landscapes:
        raise ValueError(f"unknown landscape {', '.join(map(repr, unknown)) or '(none given)'} (expected any of: {valid})")
    unbounded = [n for n in config.landscapes if not landscapes.get(n).bounded_below]
    if unbounded:
        bounded = ", ".join(n for n in landscapes.names() if landscapes.get(n).bounded_below)
        raise ValueError(f"landscape {', '.join(unbounded)} is unbounded below, so |f - f*| <= tol never holds "
                         f"(expected a landscape with a finite minimum: {bounded})")
    valid = ", ".join(CONTENDERS)
    unknown = [n for n in config.optimizers if n not in CONTENDERS]
    if unknown or not config.optimizers:
        raise ValueError(f"unknown optimizer {', '.join(map(repr, unknown)) or '(none given)'} (expected any of: {valid})")
    if len(set(config.optimizers)) != len(config.optimizers):
        raise ValueError(f"--optimizers {' '.join(config.optimizers)} names one twice (expected distinct names)")
    if config.out is not None:
        check_writable(config.out)


def check_writable(out: str | Path) -> Path:
    """Create ``out`` and write and delete a temporary file in it; ``ValueError`` if that fails."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".gradkit-write-test-"):
            pass
    except OSError as err:
        raise ValueError(f"--out {str(out)!r} is not writable: {err.strerror or err} "
                         f"(expected a folder gradkit can create and write files in)") from None
    return path


# ----------------------------------------------------------------------------- the race


def grids_for(config: RaceConfig) -> dict[str, dict[str, list[float]]]:
    """Each optimizer's grid: ``{"learning_rate": lrs}`` for those that take one, ``{}`` else."""
    return {name: {hp: [float(v) for v in config.learning_rates] for hp in CONTENDERS[name].swept}
            for name in config.optimizers}


def tolerance(land: landscapes.Landscape, config: RaceConfig) -> float:
    """The absolute tolerance on ``|f - f*|`` used on ``land``: ``tol + rtol · f_scale``."""
    return float(config.tol + config.rtol * land.f_scale)


def _merge(parts: list[runs.SweepResult]) -> runs.SweepResult:
    """One SweepResult from per-optimizer sweeps over the same starts and steps."""
    results = {k: v for p in parts for k, v in p.results.items()}
    grids = {k: v for p in parts for k, v in p.grids.items()}
    return dataclasses.replace(parts[0], results=results, grids=grids)


class _Pending(NamedTuple):
    """A landscape whose per-optimizer sweeps are queued (futures) or done (results)."""

    land: landscapes.Landscape
    starts: np.ndarray
    f_star: float
    tol: float
    parts: dict[str, Any]


def _queue_landscape(name: str, config: RaceConfig, pool: Executor | None, bar: Any) -> _Pending:
    """Queue one sweep per optimizer of landscape ``name`` on ``pool`` (run them now without one)."""
    land = landscapes.get(name)
    starts = runs.start_grid(land.domain, config.starts_per_axis)
    f_star = float(land.f_star(starts.dtype))
    stride = record_stride(config.steps, config.record_every) if config.out else "final"
    grids = grids_for(config)
    f_scale = land.f_scale

    def one(opt: str) -> runs.SweepResult:
        part = runs.sweep(land, {opt: CONTENDERS[opt].make}, starts, {opt: grids[opt]}, config.steps,
                          tol=config.tol, rtol=config.rtol, f_scale=f_scale, f_star=f_star, record=stride,
                          minimizers=land.minima)
        if bar is not None:
            bar.update(len(part.grids[opt]) * part.n_starts * config.steps)
        return part

    # the slow-to-compile methods without a grid go first, so the worker threads finish together
    order = sorted(config.optimizers, key=lambda o: bool(CONTENDERS[o].swept))
    parts = {opt: pool.submit(one, opt) if pool is not None else one(opt) for opt in order}
    return _Pending(land, np.asarray(starts), f_star, tolerance(land, config), parts)


def _finish_landscape(pending: _Pending, config: RaceConfig) -> LandscapeRace:
    """Wait for a landscape's sweeps, merge them, rank, and draw its pictures (main thread)."""
    parts = {opt: p.result() if isinstance(p, Future) else p for opt, p in pending.parts.items()}
    result = _merge([parts[opt] for opt in config.optimizers])
    leaderboard = result.best()
    pictures = (_pictures(pending.land, pending.starts, result, leaderboard, config, pending.f_star, pending.tol)
                if config.out else [])
    return LandscapeRace(pending.land, pending.starts, result, pending.f_star, pending.tol, leaderboard, pictures)


def race_landscape(name: str, config: RaceConfig, bar: Any = None) -> LandscapeRace:
    """Sweep every optimizer × config × start on landscape ``name`` (one compiled call per
    optimizer, on ``config.workers`` threads); ``bar`` (a tqdm bar) advances by run-steps."""
    workers = config.workers or _default_workers()
    if workers < 2:
        return _finish_landscape(_queue_landscape(name, config, None, bar), config)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return _finish_landscape(_queue_landscape(name, config, pool, bar), config)


def _default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def total_run_steps(config: RaceConfig) -> int:
    """Run-steps in the whole race: Σ over landscapes and optimizers of configs × starts × steps."""
    n_starts = config.starts_per_axis**2
    configs = sum(len(runs.grid_product(g)) or 1 for g in grids_for(config).values())
    return len(config.landscapes) * configs * n_starts * config.steps


def race(config: RaceConfig = RaceConfig(), echo: Callable[[str], Any] = print) -> RaceResult:
    """Race every configured optimizer on every configured landscape: print the context header
    and a leaderboard per landscape, write pictures, pooled profiles and a JSON summary to
    ``config.out``.  Bad settings raise ``ValueError`` before any compute."""
    validate(config)
    echo(format_header(config))
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_run_steps(config), unit="run-step", unit_scale=True, desc="race", leave=False)
    # Compiling dominates (one XLA compile per optimizer and landscape, ~1-4 s of CPU each) and XLA
    # compiles outside the GIL: every sweep is queued on worker threads at once, and the main thread
    # ranks and draws each landscape (matplotlib stays on one thread) while later ones compile.
    races = []
    workers = config.workers or _default_workers()
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        queued = [_queue_landscape(name, config, pool, bar) for name in config.landscapes] if pool else []
        for k, name in enumerate(config.landscapes):
            pending = queued[k] if pool else _queue_landscape(name, config, None, bar)
            res = _finish_landscape(pending, config)
            races.append(res)
            if bar is not None:
                bar.clear()
            echo(format_leaderboard(res, config))
            for path in res.pictures:
                echo(f"   wrote {path}")
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    from gradkit import profiles

    sweeps = [r.sweep for r in races]
    performance = profiles.performance_profile(sweeps, cost="gradient_equivalents")
    data = profiles.data_profile(sweeps, cost="gradient_equivalents")
    files = _race_files(races, performance, data, config) if config.out else []
    for path in files:
        echo(f"wrote {path}")
    return RaceResult(config, races, performance, data, files)


# ----------------------------------------------------------------------------- text


def _fmt_lr(value: float) -> str:
    return f"{value:.0e}"


def format_header(config: RaceConfig) -> str:
    """The race's context: what was run, what success means, how the numbers are made."""
    grids = grids_for(config)
    swept = [n for n in config.optimizers if grids[n]]
    single = [n for n in config.optimizers if not grids[n]]
    n_starts = config.starts_per_axis**2
    devices = jax.devices()
    lines = [
        f"gradkit race: {len(config.landscapes)} landscape(s) x {len(config.optimizers)} optimizer(s), "
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


def format_leaderboard(res: LandscapeRace, config: RaceConfig) -> str:
    """One landscape's leaderboard (rows in ``SweepResult.best()`` order)."""
    n_runs = sum(len(res.sweep.grids[n]) for n in res.sweep.grids) * res.sweep.n_starts
    header = (f"   {'optimizer':<24}{'best lr':>9}{'converged':>11}{'median time-to-eps':>20}"
              f"{'median cost':>13}{'diverged':>10}")
    lines = [f"== {res.landscape.name}: {n_runs} runs; f* = {res.f_star:.10g}, within tol: |f - f*| <= {res.tol:.3g}",
             header]
    marks = set()
    for row in res.leaderboard:
        name = row["optimizer"]
        arbitrary = bool(CONTENDERS[name].swept) and _none_converged(res.sweep, name)
        cfg = _config_text(row, CONTENDERS[name], arbitrary)
        marks |= {"none"} if arbitrary else ({"*"} if cfg.endswith("*") else set())
        lines.append(f"   {name:<24}{cfg:>9}{row['converged']:>11.1%}"
                     f"{row['median_settled']:>20.0f}{row['median_cost']:>13.4g}{row['diverged']:>10.1%}")
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
                                                "optimizers": list(config.optimizers),
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


# ----------------------------------------------------------------------------- files


def _best_first(profile: Any) -> Any:
    """The profile with its solvers ordered best first (most problems solved, then the larger area
    under the curve), so the legend reads as a ranking."""
    field = "rho" if hasattr(profile, "rho") else "fraction"
    curves = np.asarray(getattr(profile, field))
    order = sorted(range(len(profile.solvers)), key=lambda s: (-curves[s, -1], -curves[s].sum()))
    return dataclasses.replace(profile, solvers=[profile.solvers[s] for s in order], **{field: curves[order]})


def _distinct_lines(ax: Any) -> None:
    """One colour per solver (tab20, then dashed) instead of tab10's repeats, legend outside."""
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    for k, line in enumerate(ax.get_lines()):
        line.set_color(palette((2 * k) % 20 + (k // 10) % 2))
        line.set_linestyle("-" if k < 10 else "--")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, title="best first",
              title_fontsize=8)


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
        ax = draw(_best_first(profile), title=titles[stem])
        _distinct_lines(ax)
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


def _label(row: dict[str, Any]) -> str:
    name = row["optimizer"]
    return f"{name} (lr {_fmt_lr(row['learning_rate'])})" if CONTENDERS[name].swept else name


def _pictures(land: landscapes.Landscape, starts: np.ndarray, result: runs.SweepResult,
              leaderboard: list[dict[str, Any]], config: RaceConfig, f_star: float, res_tol: float) -> list[str]:
    from gradkit import plot

    out = Path(config.out or ".")
    n_starts = len(starts)
    leaders = leaderboard[: config.top]
    paths = []

    def runs_of(row: dict[str, Any]) -> slice:
        lo = _config_index(result, row) * n_starts
        return slice(lo, lo + n_starts)

    trajectories = {_label(r): np.asarray(result.results[r["optimizer"]].trajectory)[runs_of(r)] for r in leaders}
    ax = plot.plot_landscape(land, trajectories, max_per_optimizer=config.paths_per_optimizer,
                             title=f"{land.name}: the top {len(leaders)} at their best config, "
                                   f"{min(config.paths_per_optimizer, n_starts)} of {n_starts} starts each")
    paths.append(str(plot.save(ax, out / f"{land.name}_trajectories.png")))

    stride = record_stride(config.steps, config.record_every)
    curves = {_label(r): np.asarray(result.results[r["optimizer"]].values)[runs_of(r)] - f_star for r in leaders}
    diverged = {_label(r): np.asarray(result.results[r["optimizer"]].diverged)[runs_of(r)] for r in leaders}
    ax = plot.plot_loss_curves(curves, diverged=diverged, steps=np.arange(0, config.steps + 1, stride), xlabel="step",
                               ylabel="f - f*", title=f"{land.name}: f - f* over {n_starts} starts, the top {len(leaders)}")
    paths.append(str(plot.save(ax, out / f"{land.name}_loss.png")))

    swept = dataclasses.replace(result, results={n: r for n, r in result.results.items() if CONTENDERS[n].swept},
                                grids={n: g for n, g in result.grids.items() if CONTENDERS[n].swept})
    if swept.results:
        ax = plot.plot_sweep_heatmap(swept, field="converged",
                                     title=f"{land.name}: % of {n_starts} starts converged (ended within |f - f*| <= "
                                           f"{res_tol:.3g}), per learning rate")
        paths.append(str(plot.save(ax, out / f"{land.name}_heatmap.png")))
        ax = plot.plot_sweep_heatmap(swept, field="settled_step",
                                     title=f"{land.name}: median time-to-eps over the starts that settled "
                                           f"(of {config.steps} steps; never: none did)")
        paths.append(str(plot.save(ax, out / f"{land.name}_steps.png")))

    if len(land.minima) > 1 and leaders:
        best = leaders[0]
        finals = np.asarray(result.results[best["optimizer"]].final)[runs_of(best)]
        basin = runs.nearest_minimum(finals, land.minima, radius=0.05)
        ax = plot.plot_basins(land, starts, basin, title=f"{land.name}: basins of {_label(best)}")
        paths.append(str(plot.save(ax, out / f"{land.name}_basins.png")))
    return paths


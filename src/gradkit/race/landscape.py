"""The landscape race: every optimizer × learning rate × start on each landscape, compiled calls
queued on worker threads, leaderboards printed as each landscape finishes."""

from __future__ import annotations

import dataclasses
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gradkit import landscapes, runs
from gradkit.runs import multihost
from gradkit.race.config import (LandscapeRace, RaceConfig, RaceResult, _default_workers, contenders, grids_for,
                                 record_stride, tolerance, total_run_steps, validate)
from gradkit.race.contenders import measured_step_cost
from gradkit.race.pictures import _pictures, _race_files
from gradkit.race.report import format_header, format_leaderboard


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


def _measured_costs(land: landscapes.Landscape, config: RaceConfig) -> dict[str, float | None]:
    """Per optimizer, its measured gradient-equivalents per step on ``land`` (``None``: it has a
    cost model), probed at the landscape's first start."""
    start = runs.start_grid(land.domain, config.starts_per_axis)[0]
    return {opt: measured_step_cost(c, land, start) for opt, c in contenders(config).items()}


def _shared_objective(land: landscapes.Landscape, config: RaceConfig, dtype: Any) -> Callable[[Any], Any]:
    """``land``'s function as one branch of a ``lax.switch`` over every raced landscape with the same
    dimension, ``f*`` and tolerance, its index a traced argument: the sweeps of those landscapes
    then share one compiled program per optimizer (the default race: 28 programs, not 70, and
    tracing them is most of a race once compiled programs are cached).  Only the chosen branch runs."""
    key = lambda other: (other.dim, other.f_star(dtype), tolerance(other, config))
    group = [other for other in map(landscapes.get, config.landscapes) if key(other) == key(land)]
    if len(group) < 2:
        return land.fn
    branches = tuple(other.fn for other in group)
    index = jnp.asarray([other.name for other in group].index(land.name), jnp.int32)
    return lambda x: jax.lax.switch(index, branches, x)


def _with_distances(result: runs.RunResult, land: landscapes.Landscape) -> runs.RunResult:
    """``result`` with ``final_distance``, the distance of each final point to the nearest of
    ``land``'s minimizers, computed here in the run's dtype (the shared program has no minimizers)."""
    final = np.asarray(result.final)
    mins = np.asarray(land.minima, dtype=final.dtype)
    distance = np.sqrt(np.min(np.sum((final[:, None, :] - mins[None]) ** 2, axis=-1), axis=1))
    return dataclasses.replace(result, final_distance=distance)


def _queue_landscape(name: str, config: RaceConfig, pool: Executor | None, bar: Any,
                     measured: dict[str, float | None] | None = None) -> _Pending:
    """Queue one sweep per optimizer of landscape ``name`` on ``pool`` (run them now without one);
    ``measured``: the step costs of :func:`_measured_costs` when already probed."""
    land = landscapes.get(name)
    starts = runs.start_grid(land.domain, config.starts_per_axis)
    f_star = float(land.f_star(starts.dtype))
    stride = record_stride(config.steps, config.record_every) if config.out else "final"
    grids = grids_for(config)
    table = contenders(config)
    measured = measured if measured is not None else _measured_costs(land, config)
    objective = _shared_objective(land, config, starts.dtype)

    def one(opt: str) -> runs.SweepResult:
        # the tolerance tol + rtol * f_scale as one number: the same rule on every landscape of a group
        part = runs.sweep(objective, {opt: table[opt].make}, starts, {opt: grids[opt]}, config.steps,
                          tol=tolerance(land, config), f_star=f_star, record=stride, step_cost=measured[opt],
                          fast_compile=config.fast_compile)
        part = dataclasses.replace(part, results={k: _with_distances(r, land) for k, r in part.results.items()})
        if bar is not None:
            bar.update(len(part.grids[opt]) * part.n_starts * config.steps)
        return part

    # the slow-to-compile methods without a grid go first, so the worker threads finish together
    order = sorted(table, key=lambda o: bool(table[o].swept))
    parts = {opt: pool.submit(one, opt) if pool is not None else one(opt) for opt in order}
    return _Pending(land, np.asarray(starts), f_star, tolerance(land, config), parts)


def _finish_landscape(pending: _Pending, config: RaceConfig) -> LandscapeRace:
    """Wait for a landscape's sweeps, merge them, rank, and draw its pictures (main thread)."""
    parts = {opt: p.result() if isinstance(p, Future) else p for opt, p in pending.parts.items()}
    result = _merge([parts[opt] for opt in contenders(config)])
    leaderboard = result.best()
    pictures = (_pictures(pending.land, pending.starts, result, leaderboard, config, pending.f_star, pending.tol)
                if config.out and multihost.is_main_process() else [])
    return LandscapeRace(pending.land, pending.starts, result, pending.f_star, pending.tol, leaderboard, pictures)


def race_landscape(name: str, config: RaceConfig, bar: Any = None) -> LandscapeRace:
    """Sweep every optimizer × config × start on landscape ``name`` (one compiled call per
    optimizer, on ``config.workers`` threads); ``bar`` (a tqdm bar) advances by run-steps."""
    workers = config.workers or _default_workers()
    if workers < 2:
        return _finish_landscape(_queue_landscape(name, config, None, bar), config)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return _finish_landscape(_queue_landscape(name, config, pool, bar), config)



def race(config: RaceConfig | None = None, echo: Callable[[str], Any] = print, **settings: Any) -> RaceResult:
    """Race every configured optimizer on every configured landscape: print the context header
    and a leaderboard per landscape, write pictures, pooled profiles and a JSON summary to
    ``config.out``.  ``settings`` override fields of ``config`` (default :class:`RaceConfig`), e.g.
    ``race(optimizers={"mine": make_mine, "adam": "adam"}, out=None)`` races a factory
    ``learning_rate -> GradientTransformation`` against gradkit's Adam.  Bad settings raise
    ``ValueError`` before any compute."""
    config = config if config is not None else RaceConfig()
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(RaceConfig)})
    if unknown:
        raise TypeError(f"race() got unknown settings {unknown}; expected fields of RaceConfig")
    config = dataclasses.replace(config, **settings)
    if not multihost.is_main_process():  # under jax.distributed: process 0 prints and writes, once (the
        # others keep config.out: it decides what is recorded, and every process must run the same program)
        config, echo = dataclasses.replace(config, progress=False), multihost.main_process_only(echo)
    if multihost.is_multiprocess():  # collectives must run in the same order on every process: no threads
        config = dataclasses.replace(config, workers=1)
    validate(config)
    echo(format_header(config))
    first = landscapes.get(config.landscapes[0])
    first_costs = _measured_costs(first, config)  # probed once: printed here, charged in the first landscape's runs
    for name, cost in first_costs.items():
        if cost is not None:
            echo(f"  {name}: {cost:.3g} gradient-equivalents per step, measured (values 1/2, gradients 1, HVPs 2 it "
                 f"calls, plus the runner's gradient; on {first.name}, per landscape in the runs)")
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_run_steps(config), unit="run-step", unit_scale=True, desc="race", leave=False)
    # Compiling dominates (one XLA compile per optimizer and group of landscapes, see _shared_objective) and XLA
    # compiles outside the GIL: every sweep is queued on worker threads at once, and the main thread
    # ranks and draws each landscape (matplotlib stays on one thread) while later ones compile.
    races = []
    workers = config.workers or _default_workers()
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        probed = lambda k: first_costs if k == 0 else None
        queued = [_queue_landscape(name, config, pool, bar, probed(k)) for k, name in enumerate(config.landscapes)
                  ] if pool else []
        for k, name in enumerate(config.landscapes):
            pending = queued[k] if pool else _queue_landscape(name, config, None, bar, probed(k))
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
    from gradkit.race import profiles

    sweeps = [r.sweep for r in races]
    performance = profiles.performance_profile(sweeps, cost="gradient_equivalents")
    data = profiles.data_profile(sweeps, cost="gradient_equivalents")
    files = _race_files(races, performance, data, config) if config.out and multihost.is_main_process() else []
    for path in files:
        echo(f"wrote {path}")
    return RaceResult(config, races, performance, data, files)


"""``gradkit race --suite cutest``: sif2jax's unconstrained CUTEst problems, scored as Moré & Wild
score them.

Every problem runs from its SIF start ``x0`` for ``budget`` gradient-equivalents, every optimizer
at every learning rate of the grid (one compiled call per problem and optimizer).  A run *solves*
a problem at tolerance ``τ`` once ``f(x0) - f(x) >= (1 - τ)(f(x0) - f_ref)``, i.e. ``f - f_ref <=
τ (f(x0) - f_ref)`` (Moré & Wild 2009), for ``τ`` in :data:`TAUS`; ``f_ref`` is sif2jax's expected
optimal value where it states one (audited: :data:`gradkit.suites.cutest.F_OPT_AUDIT`), else the
best value any run of any contender reached (Moré & Wild's ``f_L``), and such problems are marked
``*`` in every table.  The runner records the
gradient-equivalents at which each ``τ`` was first met (a problem without a known optimum is run
twice: once to find ``f_L``, once to time the runs against it).  The learning rate is chosen per
optimizer on the odd-numbered problems (in name order) and every reported number comes from the
even-numbered ones.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gradkit import runs
from gradkit.race import coco
from gradkit.runs import multihost
from gradkit.race.contenders import resolve

TAUS = (1e-1, 1e-3, 1e-5, 1e-7)
"""Moré–Wild tolerances: solved at ``τ`` when ``f - f_ref <= τ (f(x0) - f_ref)``."""


@dataclasses.dataclass(frozen=True)
class CutestConfig:
    """A CUTEst race: ``problems`` (``None``: every unconstrained problem that fits), each optimizer
    at each learning rate (those that take one), ``budget`` gradient-equivalents per run."""

    problems: Sequence[str] | None = None
    optimizers: Sequence[Any] = ("sgd", "adam", "bfgs")
    learning_rates: Sequence[float] = (1e-3, 1e-2, 1e-1)
    budget: int = 1000
    max_bytes: int = 2 * 1024**3
    max_work: float = 1e9
    progress: bool = False


@dataclasses.dataclass(frozen=True)
class CutestRaceResult:
    """Per problem its reference optimum and source; per (optimizer, lr) and problem the cost to
    each ``τ`` (``inf``: not within the budget); the chosen learning rates and skipped problems."""

    config: CutestConfig
    problems: list[Any]
    f_ref: dict[str, tuple[float, str]]
    costs: dict[tuple[str, float | None], np.ndarray]
    chosen: dict[str, float | None]
    skipped: list[tuple[str, str]]
    summary: dict[str, Any]


def _run(problem: Any, make: Any, lrs: list[float | None], steps: int, f_ref: float | None,
         target_scale: float) -> runs.RunResult:
    starts = jnp.asarray(np.repeat(problem.x0[None], len(lrs), axis=0))
    hparams = None if lrs == [None] else {"learning_rate": jnp.asarray(lrs)}
    targets = None if f_ref is None else [tau * target_scale for tau in TAUS]
    return runs.run_batch(problem, make, starts, steps, hparams, f_star=f_ref, tol=0.0, targets=targets)


def cutest_race(config: CutestConfig | None = None, echo: Callable[[str], Any] = print) -> CutestRaceResult:
    """Run the race (see the module doc); print the skipped problems, and per optimizer the
    fraction of held-out problems solved at each ``τ`` and AlgoPerf's score at ``τ = 1e-5``."""
    from gradkit.suites import cutest

    config = config if config is not None else CutestConfig()
    if not multihost.is_main_process():  # under jax.distributed: process 0 prints, once
        config, echo = dataclasses.replace(config, progress=False), multihost.main_process_only(echo)
    if not jax.config.jax_enable_x64:
        raise ValueError("CUTEst optima are float64 numbers (expected float64: call "
                         "jax.config.update('jax_enable_x64', True) first; the CLI does)")
    table = resolve(config.optimizers)
    if isinstance(config.budget, bool) or not isinstance(config.budget, int) or config.budget < 1:
        raise ValueError(f"--budget {config.budget!r} is invalid (expected a positive integer)")
    candidates = cutest.problems(list(config.problems) if config.problems else None)
    n_configs = sum(len(config.learning_rates) if c.swept else 1 for c in table.values())
    kept, skipped = cutest.select(candidates, runs=n_configs, steps=config.budget, max_bytes=config.max_bytes,
                                  max_work=config.max_work)
    for name, reason in skipped:
        echo(f"   skipped {name}: {reason}")
    if not kept:
        raise ValueError("no CUTEst problem fits the budget (expected a smaller --budget or other --problems)")
    echo(f"gradkit race --suite cutest: {len(kept)} problem(s) x {len(table)} optimizer(s), budget {config.budget} "
         f"gradient-equivalents; solved at τ: f - f_ref <= τ (f(x0) - f_ref), τ in {' '.join(f'{t:g}' for t in TAUS)}; "
         "* = f_ref is the best value found (no known optimum)")
    costs: dict[tuple[str, float | None], list[np.ndarray]] = {}
    f_ref: dict[str, tuple[float, str]] = {}
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(kept), unit="problem", desc="cutest", leave=False)
    lrs_of = {name: ([float(v) for v in config.learning_rates] if c.swept else [None]) for name, c in table.items()}
    for problem in kept:
        if bar is not None:
            bar.update(1)
        f0 = float(problem(jnp.asarray(problem.x0)))
        if problem.has_known_optimum:
            ref, source = float(problem.f_opt), problem.f_opt_source
        else:  # Moré-Wild's f_L: the best value any contender reached
            finals = [np.nanmin(np.where(np.isfinite(r.final_value), r.final_value, np.nan), initial=f0)
                      for r in (_run(problem, c.make, lrs_of[n], config.budget, None, 0.0) for n, c in table.items())]
            ref, source = float(min(finals)), "best found"
        f_ref[problem.name] = (ref, source)
        scale = max(f0 - ref, 0.0)
        for name, c in table.items():
            result = _run(problem, c.make, lrs_of[name], config.budget, ref, scale)
            hit = np.where(result.target_costs <= config.budget, result.target_costs, np.inf)
            for k, lr in enumerate(lrs_of[name]):
                costs.setdefault((name, lr), []).append(hit[k])
    if bar is not None:
        bar.close()
    stacked = {key: np.stack(rows) for key, rows in costs.items()}
    names = [p.name for p in kept]
    tuning = np.arange(len(names)) % 2 == 0  # the 1st, 3rd, ... problem (odd-numbered)
    held = ~tuning if len(names) > 1 else tuning
    chosen = {}
    for name in table:
        options = [(lr, c) for (n, lr), c in stacked.items() if n == name]
        score = lambda option: coco.selection_score(option[1][tuning])
        chosen[name] = min(options, key=lambda o: (-score(o)[0], score(o)[1]))[0]
    picked = {name: stacked[(name, chosen[name])][held] for name in table}
    j = TAUS.index(1e-5)
    scores = coco.algoperf_score(np.stack([picked[n][:, j] for n in table], axis=1))
    summary = {"held_out_problems": [n for n, h in zip(names, held) if h],
               "f_ref": {n: {"value": v, "source": s} for n, (v, s) in f_ref.items()}, "optimizers": {}}
    width = max(24, *(len(n) + 2 for n in table))
    echo(f"   {'optimizer':<{width}}{'lr':>8}" + "".join(f"{f'solved τ={t:g}':>16}" for t in TAUS) + f"{'AlgoPerf':>10}")
    for k, name in enumerate(table):
        solved = np.isfinite(picked[name]).mean(axis=0)
        lr = chosen[name]
        echo(f"   {name:<{width}}{('-' if lr is None else f'{lr:.0e}'):>8}" + "".join(f"{s:>16.1%}" for s in solved)
             + f"{scores[k]:>10.3f}")
        summary["optimizers"][name] = {"learning_rate": lr, "solved": dict(zip(map(str, TAUS), map(float, solved))),
                                       "algoperf_score": float(scores[k])}
    rows = [f"   {n}{'*' if f_ref[n][1].startswith('best found') else ''}: f_ref {f_ref[n][0]:.10g} ({f_ref[n][1]})"
            for n in summary["held_out_problems"]]
    echo("   held-out problems:\n" + "\n".join(rows))
    return CutestRaceResult(config, kept, f_ref, stacked, chosen, skipped, summary)

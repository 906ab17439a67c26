"""A campaign on COCO's BBOB suite: every optimizer × learning rate × function × dimension ×
instance × start, one compiled call per (optimizer, function, dimension).

Run ``r`` minimizes ``f(x) - f_opt`` of its own BBOB instance (the instance's shift, rotations and
``f_opt`` are arrays passed to the compiled program as per-run data, :func:`gradkit.runs.run_batch`'s
``objective_data``), from a start drawn uniformly in ``[-4, 4]^d`` (seeded per instance and start),
for a budget of ``budget · d`` gradient-equivalents.  The runner records, per run and target of
COCO's ladder ``Δf ∈ {10^2, …, 10^-8}`` (:data:`gradkit.race.coco.TARGETS`), the cost at which
``f - f_opt <= Δf`` first held; a target first reached after the budget counts as not reached, and
every run's total cost is capped at the budget (an optimizer whose steps cost more than one
gradient-equivalent runs as many steps as the budget could pay for at one per step, and its
costs beyond the budget are discarded).  The same runtimes are kept as counts of values,
gradients, HVPs and JVPs (:data:`gradkit.runs.units.COUNT_KINDS`), for aRT in any unit
(:data:`gradkit.race.coco.UNITS`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gradkit import runs
from gradkit.race.coco import TARGETS
from gradkit.race.contenders import Contender, measured_step_counts, resolve
from gradkit.suites.bbob import evaluate, instance_data

DEFAULT_FUNCTIONS = tuple(range(1, 25))
DEFAULT_DIMENSIONS = (2, 3, 5)
DEFAULT_INSTANCES = tuple(range(1, 16))
DEFAULT_SUITE_OPTIMIZERS = ("sgd", "adam", "bfgs")
DEFAULT_SUITE_LEARNING_RATES = (1e-3, 1e-2, 1e-1)


@dataclasses.dataclass(frozen=True)
class DeltaF:
    """``(x, data) -> f(x) - f_opt`` of BBOB function ``function``, the instance in ``data``
    (:func:`gradkit.suites.bbob.instance_data`): one compiled program serves every instance."""

    function: int

    def __call__(self, x: jax.Array, data: Mapping[str, jax.Array]) -> jax.Array:
        return evaluate(self.function, x, data) - data["f_opt"]


@dataclasses.dataclass(frozen=True)
class CampaignConfig:
    """What a BBOB campaign runs: ``functions`` × ``dimensions`` × ``instances`` ×
    ``starts_per_instance`` starts, each optimizer at each learning rate of ``learning_rates``
    (those that take one), ``budget · d`` gradient-equivalents per run."""

    functions: Sequence[int] = DEFAULT_FUNCTIONS
    dimensions: Sequence[int] = DEFAULT_DIMENSIONS
    instances: Sequence[int] = DEFAULT_INSTANCES
    optimizers: Sequence[Any] | Mapping[str, Any] = DEFAULT_SUITE_OPTIMIZERS
    learning_rates: Sequence[float] = DEFAULT_SUITE_LEARNING_RATES
    budget: int = 1000
    starts_per_instance: int = 1
    seed: int = 0
    progress: bool = False

    def steps(self, dimension: int) -> int:
        """Steps per run in ``dimension``: the budget at one gradient-equivalent per step."""
        return int(self.budget * dimension)


@dataclasses.dataclass(frozen=True)
class Runs:
    """One (optimizer, learning rate)'s runs: per run its ``function``, ``dimension``,
    ``instance``, ``start`` index, ``target_costs`` ``(runs, targets)`` (``inf``: not reached
    within the budget) and ``total_cost`` (capped at the budget).  COCO's output reads the depth a
    run reached from ``target_costs`` (the last target reached), at the target ladder's resolution.
    ``target_counts`` ``(runs, targets, 4)`` and ``total_counts`` ``(runs, 4)``: the same per kind of
    :data:`gradkit.runs.units.COUNT_KINDS` (see :func:`censor_counts`; ``None`` when not recorded)."""

    optimizer: str
    learning_rate: float | None
    function: np.ndarray
    dimension: np.ndarray
    instance: np.ndarray
    start: np.ndarray
    target_costs: np.ndarray
    total_cost: np.ndarray
    target_counts: np.ndarray | None = None
    total_counts: np.ndarray | None = None


def _check_ints(name: str, values: Sequence[Any], low: int, high: int | None = None) -> tuple[int, ...]:
    values = tuple(values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low
           or (high is not None and v > high)]
    if bad or not values:
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"--{name} {' '.join(map(str, bad or values)) or '(none)'} is invalid (expected integers {span})")
    if len(set(values)) != len(values):
        raise ValueError(f"--{name} {' '.join(map(str, values))} names one twice (expected distinct values)")
    return values


def validate(config: CampaignConfig) -> dict[str, Contender]:
    """Every check that needs no compute; returns the resolved contenders."""
    _check_ints("functions", config.functions, 1, 24)
    _check_ints("dimensions", config.dimensions, 2)
    _check_ints("instances", config.instances, 1)
    for name, value in (("budget", config.budget), ("starts", config.starts_per_instance)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name} {value!r} is invalid (expected a positive integer)")
    lrs = list(config.learning_rates)
    if not lrs or any(not (isinstance(v, int | float) and math.isfinite(v) and v > 0) for v in lrs):
        raise ValueError(f"--lrs {' '.join(map(str, lrs)) or '(none)'} is invalid (expected finite learning rates > 0)")
    if not jax.config.jax_enable_x64:
        raise ValueError("BBOB targets reach f - f_opt = 1e-8, below float32's resolution of f_opt (expected float64: "
                         "call jax.config.update('jax_enable_x64', True) first; the CLI does)")
    return resolve(config.optimizers)


def starts_for(dimension: int, instances: Sequence[int], per_instance: int, seed: int) -> np.ndarray:
    """Start points ``(len(instances) * per_instance, dimension)``, uniform in ``[-4, 4]^d``, run
    ``i * per_instance + s`` from a generator seeded by ``(seed, dimension, instance, s)``."""
    rows = [np.random.default_rng([seed, dimension, instance, s]).uniform(-4.0, 4.0, dimension)
            for instance in instances for s in range(per_instance)]
    return np.asarray(rows, dtype=np.float64)


def stacked_instances(function: int, dimension: int, instances: Sequence[int], repeat: int) -> dict[str, np.ndarray]:
    """The instances' data stacked along a leading axis, each repeated ``repeat`` times (one per start)."""
    data = [instance_data(function, i, dimension) for i in instances]
    return {k: np.repeat(np.stack([d[k] for d in data]), repeat, axis=0) for k in data[0]}


def _censor(result: runs.RunResult, budget: float) -> tuple[np.ndarray, np.ndarray]:
    """Target costs beyond the budget become ``inf``; total cost capped at the budget."""
    return np.where(result.target_costs <= budget, result.target_costs, np.inf), np.minimum(result.cost, budget)


def censor_counts(result: runs.RunResult, budget: float) -> tuple[np.ndarray, np.ndarray]:
    """``(target_counts, total_counts)`` of ``result`` cut at ``budget`` gradient-equivalents, as
    :func:`_censor` cuts the costs: a target reached beyond the budget is ``inf`` in every kind;
    a run that spent ``cost_r > budget`` keeps the share ``budget / cost_r`` of each kind,
    ``total_k = max(counts_rk · min(1, budget / cost_r), c_rk)`` with ``c_rk`` the counts to its
    last target reached within the budget (so a count to a target never exceeds the total; the
    engine does not record where within the run the budget ran out)."""
    within = result.target_costs <= budget
    counts = np.where(within[:, :, None], result.target_counts, np.inf)
    share = np.minimum(1.0, budget / np.maximum(result.cost, np.finfo(np.float64).tiny))
    reached = np.where(np.isfinite(counts), counts, 0.0).max(axis=1)
    return counts, np.maximum(result.counts * share[:, None], reached)


def learning_rates_of(contender: Contender, config: CampaignConfig) -> list[float | None]:
    """The learning rates one optimizer runs: the grid, plus its default learning rate when it has
    one outside the grid (measured for the tuned-vs-default gap, never chosen); ``[None]`` for an
    optimizer without one."""
    if not contender.swept:
        return [None]
    grid = [float(v) for v in config.learning_rates]
    default = contender.default_learning_rate
    return grid + ([float(default)] if default is not None and float(default) not in grid else [])


def run_function(function: int, dimension: int, name: str, contender: Contender, config: CampaignConfig
                 ) -> list[Runs]:
    """Every instance × start × learning rate of one optimizer on one (function, dimension): one
    compiled call; one :class:`Runs` per learning rate."""
    starts = starts_for(dimension, config.instances, config.starts_per_instance, config.seed)
    data = stacked_instances(function, dimension, config.instances, config.starts_per_instance)
    lrs = learning_rates_of(contender, config)
    n = len(starts)
    tile = lambda a: np.concatenate([a] * len(lrs))
    hparams = {"learning_rate": np.repeat(np.asarray(lrs, np.float64), n)} if contender.swept else None
    first = {k: jnp.asarray(v[0]) for k, v in data.items()}
    step_cost = measured_step_counts(contender, lambda x: DeltaF(function)(x, first), jnp.asarray(starts[0]))
    result = runs.run_batch(DeltaF(function), contender.make, jnp.asarray(tile(starts)), config.steps(dimension),
                            hparams, f_star=0.0, tol=1e-8, targets=TARGETS, step_cost=step_cost,
                            objective_data={k: jnp.asarray(tile(v)) for k, v in data.items()})
    costs, total = _censor(result, float(config.budget * dimension))
    counts, total_counts = censor_counts(result, float(config.budget * dimension))
    instance = np.repeat(np.asarray(config.instances), config.starts_per_instance)
    start = np.tile(np.arange(config.starts_per_instance), len(config.instances))
    out = []
    for k, lr in enumerate(lrs):
        part = slice(k * n, (k + 1) * n)
        out.append(Runs(name, lr, np.full(n, function), np.full(n, dimension), instance, start, costs[part],
                        total[part], counts[part], total_counts[part]))
    return out


def concatenate(parts: Sequence[Runs]) -> Runs:
    """One :class:`Runs` from several of the same optimizer and learning rate."""
    cat = lambda field: (None if any(getattr(p, field) is None for p in parts)
                         else np.concatenate([getattr(p, field) for p in parts]))
    fields = [f.name for f in dataclasses.fields(Runs)][2:]
    return Runs(parts[0].optimizer, parts[0].learning_rate, **{f: cat(f) for f in fields})


def run_campaign(config: CampaignConfig, on_progress: Callable[[int], Any] | None = None
                 ) -> dict[tuple[str, float | None], Runs]:
    """Every (optimizer, learning rate)'s runs over the whole campaign, keyed by ``(name, lr)``
    (``lr = None`` for an optimizer without one).  ``on_progress(n)`` after each compiled call,
    ``n`` the runs it did."""
    table = validate(config)
    pieces: dict[tuple[str, float | None], list[Runs]] = {}
    for dimension in config.dimensions:
        for function in config.functions:
            for name, contender in table.items():
                for part in run_function(function, dimension, name, contender, config):
                    pieces.setdefault((name, part.learning_rate), []).append(part)
                    if on_progress is not None:
                        on_progress(len(part.total_cost))
    return {key: concatenate(parts) for key, parts in pieces.items()}


def total_runs(config: CampaignConfig) -> int:
    """Runs in the whole campaign."""
    table = resolve(config.optimizers)
    configs = sum(len(learning_rates_of(c, config)) for c in table.values())
    return len(config.functions) * len(config.dimensions) * len(config.instances) * config.starts_per_instance * configs

"""Sweeps: every optimizer × every config of its grid × every start, and their verdicts."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit.runs.checks import _check_starts, _check_steps
from gradkit.runs.engine import OptimizerLike, RunResult, run_batch
from gradkit.runs.ranking import FIELDS, area_under_profile, default_taus, performance_ratios, profile_fractions

PyTree = Any

@dataclasses.dataclass(frozen=True)
class SweepResult:
    """A sweep's results with coordinates.

    ``results[name]`` is the :class:`RunResult` of optimizer ``name`` over its
    flattened grid: run ``r`` used ``grids[name][r // n_starts]`` (a dict of
    hyperparameter values, ``[{}]`` without a grid) from start ``r % n_starts``.

    Held-out selection: configs are chosen on the even-numbered starts (0, 2, 4, ...)
    and judged on the odd-numbered ones, so a verdict is never tuned on itself (with
    a single start both halves are that start).
    """

    results: dict[str, RunResult]
    grids: dict[str, list[dict[str, float]]]
    n_starts: int
    steps: int

    def per_config(self, name: str, field: str = "first_hit") -> np.ndarray:
        """``field`` of optimizer ``name`` reshaped to ``(configs, starts)``."""
        return np.asarray(getattr(self.results[name], field)).reshape(len(self.grids[name]), self.n_starts)

    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        """Start indices of the tuning half (even) and the held-out half (odd)."""
        idx = np.arange(self.n_starts)
        if self.n_starts == 1:
            return idx, idx
        return idx[::2], idx[1::2]

    def _stats(self, name: str, starts: np.ndarray) -> list[dict[str, float]]:
        """Per config of ``name``, the verdicts over the start indices ``starts``: fractions
        converged / ever hit / diverged, censored medians (an unsettled run counts as the
        budget: ``steps``, or its whole cost)."""
        conv = self.per_config(name, "converged")[:, starts]
        settled = np.where(conv, self.per_config(name, "settled_step")[:, starts], self.steps)
        cost = np.where(conv, self.per_config(name, "cost_to_settle")[:, starts], self.per_config(name, "cost")[:, starts])
        ever = self.per_config(name, "ever_hit")[:, starts]
        div = self.per_config(name, "diverged")[:, starts]
        return [{"converged": float(c.mean()), "ever_hit": float(e.mean()), "median_settled": float(np.median(s)),
                 "median_cost": float(np.median(k)), "diverged": float(d.mean())}
                for c, e, s, k, d in zip(conv, ever, settled, cost, div)]

    def summary(self) -> list[dict[str, Any]]:
        """One row per (optimizer, config) over every start: ``converged`` (fraction ending
        within tol, finite), ``ever_hit`` (fraction touching it once), ``median_settled`` and
        ``median_cost`` (censored: an unsettled run counts as the budget), ``diverged``."""
        everything = np.arange(self.n_starts)
        return [{"optimizer": name, **cfg, **stats}
                for name in self.results for cfg, stats in zip(self.grids[name], self._stats(name, everything))]

    def best_config(self, name: str) -> int:
        """Index into ``grids[name]`` of the config chosen on the tuning half: most converged,
        then fewest censored median settled steps, then least censored median cost."""
        stats = self._stats(name, self.halves()[0])
        keys = [(-s["converged"], s["median_settled"], s["median_cost"]) for s in stats]
        return min(range(len(keys)), key=keys.__getitem__)

    def at_grid_edge(self, name: str, index: int) -> bool:
        """Whether a swept hyperparameter (more than one value) of config ``index`` is the first
        or last value of its grid: the optimum may lie outside the grid."""
        configs = self.grids[name]
        for key in configs[index]:
            values = list(dict.fromkeys(c[key] for c in configs))
            if len(values) > 1 and configs[index][key] in (values[0], values[-1]):
                return True
        return False

    def cost_matrix(self, cost: str = "steps") -> np.ndarray:
        """``t[p, s]``: the cost (``"steps"`` or ``"gradient_equivalents"``) for optimizer ``s`` (in
        ``results`` order) at its best config to settle from held-out start ``p``; ``inf`` when the
        run does not end within tolerance or diverges."""
        if cost not in FIELDS:
            raise ValueError(f"cost must be 'steps' or 'gradient_equivalents', got {cost!r}")
        held_out = self.halves()[1]
        columns = []
        for name in self.results:
            k = self.best_config(name)
            solved = self.per_config(name, "converged")[k, held_out]
            t = self.per_config(name, FIELDS[cost])[k, held_out].astype(np.float64)
            columns.append(np.where(solved, t, np.inf))
        return np.stack(columns, axis=1)

    def best(self) -> list[dict[str, Any]]:
        """One row per optimizer at its best config chosen on the tuning half, judged on the
        held-out half (:meth:`halves`): the config's keys, ``converged``, ``ever_hit``,
        ``median_settled``, ``median_cost``, ``diverged`` and ``at_grid_edge``.  Sorted best
        first: most converged, ties broken by the area under the performance profile (steps to
        settle, :func:`gradkit.race.profiles.performance_profile`), then the median settled step."""
        held_out = self.halves()[1]
        ratios = performance_ratios(self.cost_matrix("steps"))
        area = dict(zip(self.results, area_under_profile(profile_fractions(ratios, default_taus(ratios)),
                                                          default_taus(ratios))))
        rows = []
        for name in self.results:
            k = self.best_config(name)
            row = {"optimizer": name, **self.grids[name][k], **self._stats(name, held_out)[k],
                   "at_grid_edge": self.at_grid_edge(name, k), "profile_area": float(area[name])}
            rows.append(row)
        return sorted(rows, key=lambda r: (-r["converged"], -r["profile_area"], r["median_settled"], r["median_cost"]))


def grid_product(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """The cross product of a hyperparameter grid as a list of dicts."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(list(grid[n]) for n in names))]


def _is_learning_rate(key: str) -> bool:
    return key in ("lr", "learning_rate", "step_size") or key.endswith("learning_rate")


def _check_grid(name: str, make: OptimizerLike, grid: Mapping[str, Sequence[float]]) -> None:
    """Grid keys the factory accepts (``inspect.signature``), finite values, positive learning rates."""
    if not grid:
        return
    if isinstance(make, optax.GradientTransformation):
        raise ValueError(f"grids[{name!r}] sweeps {sorted(grid)} but optimizers[{name!r}] is an optimizer instance; "
                         "give a factory (e.g. optim.adam) to sweep its hyperparameters")
    try:
        params = inspect.signature(make).parameters
    except (TypeError, ValueError):
        params = None
    if params is not None and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [p for p, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
        for key in grid:
            if key not in accepted:
                raise ValueError(f"grids[{name!r}] has key {key!r}, which optimizers[{name!r}] does not accept; "
                                 f"expected one of {accepted}")
    for key, values in grid.items():
        values = list(np.ravel(np.asarray(values, dtype=object))) if not isinstance(values, (list, tuple)) else values
        if len(values) == 0:
            raise ValueError(f"grids[{name!r}][{key!r}] is empty; give at least one value")
        for v in values:
            try:
                number = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"grids[{name!r}][{key!r}] must hold numbers, got {v!r}") from None
            if not math.isfinite(number):
                raise ValueError(f"grids[{name!r}][{key!r}] must hold finite numbers, got {v!r}")
            if _is_learning_rate(key) and number <= 0:
                raise ValueError(f"grids[{name!r}][{key!r}] learning rates must be positive, got {v!r}")


def sweep(
    objective: Callable[[PyTree], jax.Array],
    optimizers: Mapping[str, OptimizerLike],
    starts: PyTree,
    grids: Mapping[str, Mapping[str, Sequence[float]]],
    steps: int,
    tol: float = 1e-6,
    f_star: float | None = None,
    record: str | int = "final",
    **kwargs: Any,
) -> SweepResult | None:
    """Every optimizer × every config of its grid × every start, one compiled call per optimizer.

    ``optimizers[name](**config)`` builds the optimizer (or ``optimizers[name]`` is an
    optimizer, swept over no grid); ``grids[name]`` maps hyperparameter names to value
    lists (e.g. ``{"learning_rate": [1e-3, 1e-2]}``).  The configs are vmapped as traced
    arrays, never recompiled per value.  ``record``, the tolerance keywords (``rtol``,
    ``f_scale``, ``xtol``, ``minimizers``), chunking and multi-process gathering (``gather_to``:
    ``None`` on the processes that do not receive the results) as in :func:`run_batch`.
    """
    _check_steps(steps)
    n_starts = _check_starts(starts)
    if not isinstance(optimizers, Mapping) or not optimizers:
        raise ValueError("optimizers must be a non-empty mapping name -> optimizer factory (or optimizer)")
    unknown = [name for name in grids if name not in optimizers]
    if unknown:
        raise ValueError(f"grids has entries {unknown} for no optimizer; optimizers are {list(optimizers)}")
    for name, make in optimizers.items():
        _check_grid(name, make, grids.get(name, {}))
    results, flat_grids = {}, {}
    for name, make in optimizers.items():
        configs = grid_product(grids.get(name, {})) or [{}]
        n_cfg = len(configs)
        tiled = jax.tree.map(lambda a: jnp.tile(a, (n_cfg,) + (1,) * (jnp.ndim(a) - 1)), starts)
        hp = {k: jnp.repeat(jnp.asarray([c[k] for c in configs], dtype=jnp.result_type(float)), n_starts)
              for k in configs[0]}
        results[name] = run_batch(objective, make, tiled, steps, hp or None, record, tol, f_star, **kwargs)
        flat_grids[name] = configs
    if any(r is None for r in results.values()):  # multi-process, gathered to another process
        return None
    return SweepResult(results, flat_grids, n_starts, steps)


def start_grid(domain: Sequence[tuple[float, float]], per_axis: int, margin: float = 0.05) -> jax.Array:
    """A regular grid of start points inside ``domain`` (a ``margin`` fraction in from each edge),
    shape ``(per_axis ** dim, dim)``."""
    axes = [np.linspace(lo + margin * (hi - lo), hi - margin * (hi - lo), per_axis) for lo, hi in domain]
    mesh = np.meshgrid(*axes, indexing="ij")
    return jnp.asarray(np.stack([m.reshape(-1) for m in mesh], axis=1))


def nearest_minimum(points: np.ndarray, minima: Iterable[Sequence[float]], radius: float = 1e-2) -> np.ndarray:
    """Index of the listed minimum within ``radius`` of each point, or -1 (for basin maps)."""
    mins = np.asarray(list(minima), dtype=np.float64)
    if mins.size == 0:
        return np.full(len(points), -1)
    dist = np.linalg.norm(np.asarray(points)[:, None, :] - mins[None], axis=-1)
    idx = np.argmin(dist, axis=1)
    return np.where(dist[np.arange(len(points)), idx] <= radius, idx, -1)

"""Performance profiles (Dolan & Moré 2002) and data profiles (Moré & Wild 2009) of sweeps.

Problems ``p`` are (landscape, start) pairs, solvers ``s`` the optimizers of a
:class:`gradkit.runs.SweepResult`, each at its best config chosen on the tuning half
of the starts (:meth:`SweepResult.best_config`) and measured on the held-out half, so
a profile is never tuned on itself.  ``t_{p,s}`` is the cost to settle within
tolerance — steps (``settled_step``) or gradient-equivalents (``cost_to_settle``) —
and ``inf`` (unsolved, censored at the budget) when the run does not end within
tolerance or diverges.

- performance profile: ``r_{p,s} = t_{p,s} / min_s t_{p,s}`` and
  ``ρ_s(τ) = |{p : r_{p,s} <= τ}| / |P|``.  A problem no solver solves has
  ``r = inf`` for all; when the best cost is 0 (the start already within tolerance
  and the run stays there), the solvers at 0 have ratio 1 and the others ``inf``.
- data profile: ``d_s(κ) = |{p : t_{p,s} <= κ}| / |P|`` (Moré & Wild count κ in
  simplex gradients; here the unit is a step or a gradient-equivalent).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any, Literal
from collections.abc import Sequence

import numpy as np

from gradkit.runs import SweepResult
from gradkit.runs.ranking import FIELDS, area_under_profile, default_taus, performance_ratios, profile_fractions

Cost = Literal["steps", "gradient_equivalents"]


@dataclasses.dataclass(frozen=True)
class PerformanceProfile:
    """``rho[s, i]``: fraction of problems solver ``solvers[s]`` solves within ``taus[i]`` times
    the best solver's cost."""

    solvers: list[str]
    taus: np.ndarray
    rho: np.ndarray
    unit: str = "steps"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"solvers", "unit", "taus", "rho": {solver: [...]}}``."""
        return {"solvers": list(self.solvers), "unit": self.unit, "taus": _floats(self.taus),
                "rho": {s: _floats(r) for s, r in zip(self.solvers, self.rho)}}

    def to_csv(self, path: str | Path) -> Path:
        """One row per τ: ``tau, <solver>...``."""
        return _write_csv(path, "tau", self.taus, self.solvers, self.rho)

    def to_json(self, path: str | Path) -> Path:
        """:meth:`to_dict` written as JSON."""
        return _write_json(path, self.to_dict())


@dataclasses.dataclass(frozen=True)
class DataProfile:
    """``fraction[s, i]``: fraction of problems solver ``solvers[s]`` solves within ``budgets[i]``
    (in ``unit``)."""

    solvers: list[str]
    budgets: np.ndarray
    fraction: np.ndarray
    unit: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"solvers", "unit", "budgets", "fraction": {solver: [...]}}``."""
        return {"solvers": list(self.solvers), "unit": self.unit, "budgets": _floats(self.budgets),
                "fraction": {s: _floats(f) for s, f in zip(self.solvers, self.fraction)}}

    def to_csv(self, path: str | Path) -> Path:
        """One row per budget: ``budget, <solver>...``."""
        return _write_csv(path, "budget", self.budgets, self.solvers, self.fraction)

    def to_json(self, path: str | Path) -> Path:
        """:meth:`to_dict` written as JSON."""
        return _write_json(path, self.to_dict())


def _floats(a: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(a, dtype=float)]


def _write_csv(path: str | Path, axis: str, xs: np.ndarray, solvers: list[str], ys: np.ndarray) -> Path:
    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([axis, *solvers])
        for i, x in enumerate(xs):
            writer.writerow([repr(float(x)), *(repr(float(v)) for v in ys[:, i])])
    return path


def _write_json(path: str | Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.write_text(json.dumps(data, indent=2))
    return path


def cost_matrix(sweeps: SweepResult | Sequence[SweepResult], cost: Cost = "steps") -> tuple[list[str], np.ndarray]:
    """``(solvers, t)`` with ``t[p, s]`` the cost for solver ``s`` to settle on problem ``p``
    (held-out starts of every sweep, in order), ``inf`` when it does not (see module doc)."""
    if cost not in FIELDS:
        raise ValueError(f"cost must be 'steps' or 'gradient_equivalents', got {cost!r}")
    sweeps = [sweeps] if isinstance(sweeps, SweepResult) else list(sweeps)
    if not sweeps or not all(isinstance(s, SweepResult) for s in sweeps):
        raise TypeError("sweeps must be a SweepResult or a non-empty sequence of them")
    solvers = list(sweeps[0].results)
    for sw in sweeps[1:]:
        if set(sw.results) != set(solvers):
            raise ValueError(f"every sweep must race the same optimizers: {sorted(solvers)} vs {sorted(sw.results)}")
    blocks = [sw.cost_matrix(cost)[:, [list(sw.results).index(name) for name in solvers]] for sw in sweeps]
    return solvers, np.concatenate(blocks, axis=0)


def performance_profile(sweeps: SweepResult | Sequence[SweepResult], *, cost: Cost = "steps",
                        taus: Sequence[float] | np.ndarray | None = None) -> PerformanceProfile:
    """Dolan–Moré ``ρ_s(τ) = |{p : r_{p,s} <= τ}| / |P|`` over the held-out problems.

    ``taus`` default: 1 and every distinct finite ratio, ascending (where ``ρ`` steps).
    """
    solvers, t = cost_matrix(sweeps, cost)
    r = performance_ratios(t)
    if taus is None:
        taus = default_taus(r)
    taus = np.asarray(taus, dtype=np.float64)
    if taus.ndim != 1 or taus.size == 0 or np.any(~np.isfinite(taus)) or np.any(taus < 1):
        raise ValueError("taus must be a non-empty 1-D array of finite values >= 1")
    rho = profile_fractions(r, taus)
    return PerformanceProfile(solvers, taus, rho, cost)


def data_profile(sweeps: SweepResult | Sequence[SweepResult], *, cost: Cost = "steps",
                 budgets: Sequence[float] | np.ndarray | None = None) -> DataProfile:
    """Moré–Wild ``d_s(κ) = |{p : t_{p,s} <= κ}| / |P|`` over the held-out problems.

    ``budgets`` default: 0 and every distinct finite cost, ascending.
    """
    solvers, t = cost_matrix(sweeps, cost)
    if budgets is None:
        budgets = np.unique(np.concatenate([[0.0], t[np.isfinite(t)]]))
    budgets = np.asarray(budgets, dtype=np.float64)
    if budgets.ndim != 1 or budgets.size == 0 or np.any(np.isnan(budgets)) or np.any(budgets < 0):
        raise ValueError("budgets must be a non-empty 1-D array of non-negative values")
    fraction = (t.T[:, :, None] <= budgets[None, None, :]).mean(axis=1)
    return DataProfile(solvers, budgets, fraction, cost)


def profile_area(profile: PerformanceProfile) -> np.ndarray:
    """Per solver, the area under the step function ``ρ_s`` over ``log₂ τ`` from 1 to the last
    τ (larger is better: solves more problems, closer to the best cost).  With a single τ the
    area is ``ρ_s(1)``."""
    return area_under_profile(profile.rho, profile.taus)

"""Budgets and scores for the CUTEst suite (:mod:`gradkit.suites.cutest`, which re-exports all of this).

Fitting a budget.  :func:`fits` and :func:`select` skip problems that would not fit a memory or
time budget and always say why.

Solved.  A run is solved when ``f - f_ref <= tol_abs + tol_rel * max(1, |f_ref|)``
(:func:`solved_threshold`, :func:`is_solved`): COCO's absolute target ``f - f_opt <= 1e-8`` for
problems whose optimum is near 0, scaled with ``|f_opt|`` otherwise, because CUTEst optima
span orders of magnitude (BOX -1864.5, FREUROTH 608159.2) and are known to finite precision.  Defaults ``tol_abs = 1e-8``,
``tol_rel = 1e-6``; with them the relative term dominates (``1e-6`` at ``f_opt = 0``).  Where no
optimum is known, ``f_ref`` is Moré and Wild's ``f_L``, the best value any contender found
(:func:`reference_values` marks the source), and :func:`more_wild_solved` gives their
data-profile test ``f(x0) - f >= (1 - tau) (f(x0) - f_L)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from gradkit.suites.cutest_audit import SOURCE_SIF2JAX

if TYPE_CHECKING:
    from gradkit.suites.cutest import CUTEstProblem

__all__ = [
    "SOURCE_BELOW_SIF2JAX",
    "SOURCE_BEST_FOUND",
    "fits",
    "is_solved",
    "more_wild_solved",
    "reference_values",
    "select",
    "solved_threshold",
]

SOURCE_BEST_FOUND = "best found"
SOURCE_BELOW_SIF2JAX = "best found (below sif2jax)"

DEFAULT_TOL_ABS = 1e-8
DEFAULT_TOL_REL = 1e-6


# --- budgets --------------------------------------------------------------------------------


def _positive(label: str, value: Any, kind: type | tuple[type, ...] = int) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ValueError(f"{label} must be positive, got {value!r}")


def fits(
    problem: CUTEstProblem,
    *,
    runs: int,
    steps: int,
    max_bytes: int,
    vectors_per_run: int = 16,
    bytes_per_value: int = 8,
    max_work: float = 1e10,
) -> str | None:
    """Why ``problem`` would not fit the budget, or None when it fits.

    Memory: ``runs`` runs at once each hold ``vectors_per_run`` arrays of ``dimension`` values
    (parameters, gradient, optimizer state, recorded iterates; 16 covers Adam-like methods with
    room to spare, L-BFGS with memory m needs about 2m + 4) of ``bytes_per_value`` bytes (8 for
    float64); over ``max_bytes`` it does not fit.  Time: ``dimension * steps * runs``
    coordinate-steps, a proxy for evaluation time since a gradient of most CUTEst problems
    costs O(dimension) (a few dense ones, e.g. EIGENALS or MSQRTALS, cost more); over
    ``max_work`` it does not fit.  The default 1e10 is minutes of CPU time.
    """
    _positive("runs", runs)
    _positive("steps", steps)
    _positive("max_bytes", max_bytes)
    _positive("vectors_per_run", vectors_per_run)
    _positive("bytes_per_value", bytes_per_value)
    _positive("max_work", max_work, (int, float))
    n = problem.dimension
    memory = n * runs * vectors_per_run * bytes_per_value
    if memory > max_bytes:
        return (
            f"memory: dimension {n} x {runs} runs x {vectors_per_run} vectors x {bytes_per_value} B = {memory:,} B "
            f"> max_bytes {max_bytes:,}"
        )
    work = n * steps * runs
    if work > max_work:
        return f"time: dimension {n} x {steps} steps x {runs} runs = {work:.3g} coordinate-steps > max_work {max_work:.3g}"
    return None


def select(
    problems: Iterable[CUTEstProblem],
    *,
    runs: int,
    steps: int,
    max_bytes: int,
    vectors_per_run: int = 16,
    bytes_per_value: int = 8,
    max_work: float = 1e10,
) -> tuple[list[CUTEstProblem], list[tuple[str, str]]]:
    """``(kept, skipped)``: the problems that :func:`fits` the budget and ``(name, reason)`` for the others."""
    kept, skipped = [], []
    for problem in problems:
        reason = fits(
            problem, runs=runs, steps=steps, max_bytes=max_bytes, vectors_per_run=vectors_per_run,
            bytes_per_value=bytes_per_value, max_work=max_work,
        )
        if reason is None:
            kept.append(problem)
        else:
            skipped.append((problem.name, reason))
    return kept, skipped


# --- solved ---------------------------------------------------------------------------------


def solved_threshold(f_ref: float, *, tol_abs: float = DEFAULT_TOL_ABS, tol_rel: float = DEFAULT_TOL_REL) -> float:
    """The largest objective value that counts as solved: ``f_ref + tol_abs + tol_rel * max(1, |f_ref|)``."""
    if tol_abs < 0 or tol_rel < 0:
        raise ValueError(f"tolerances must be >= 0, got tol_abs={tol_abs!r}, tol_rel={tol_rel!r}")
    return float(f_ref) + tol_abs + tol_rel * max(1.0, abs(float(f_ref)))


def is_solved(f: float, f_ref: float, *, tol_abs: float = DEFAULT_TOL_ABS, tol_rel: float = DEFAULT_TOL_REL) -> bool:
    """Whether a run that reached ``f`` solved a problem with reference optimum ``f_ref`` (NaN never does)."""
    return bool(np.isfinite(f)) and float(f) <= solved_threshold(f_ref, tol_abs=tol_abs, tol_rel=tol_rel)


def more_wild_solved(f: float, f0: float, f_ref: float, tau: float) -> bool:
    """Moré–Wild's test for data profiles: ``f(x0) - f >= (1 - tau) * (f(x0) - f_ref)`` (NaN never passes)."""
    if not 0 < tau < 1:
        raise ValueError(f"tau must lie in (0, 1), got {tau!r}")
    return bool(np.isfinite(f)) and float(f0) - float(f) >= (1.0 - tau) * (float(f0) - float(f_ref))


def reference_values(
    problems: Iterable[CUTEstProblem],
    best_found: Mapping[str, float],
    *,
    tol_abs: float = DEFAULT_TOL_ABS,
    tol_rel: float = DEFAULT_TOL_REL,
) -> dict[str, tuple[float, str]]:
    """Per problem name the reference optimum and its source, for tables that must mark it.

    - ``f_opt`` known: ``(f_opt, "sif2jax")``, or ``"sif2jax (audited)"`` where the audit corrected it,
      unless some contender got below it by more than the solved tolerance: then the stated
      value is not the minimum and the reference is ``(best, "best found (below sif2jax)")``.
    - otherwise Moré–Wild's ``f_L``: ``(best_found[name], "best found")``, the best value any
      contender reached.

    ``best_found`` maps names (any case) to the best objective value any contender found; NaN
    entries count as missing.  A problem with neither raises ValueError naming it.
    """
    best = {str(k).upper(): float(v) for k, v in best_found.items() if not math.isnan(float(v))}
    out: dict[str, tuple[float, str]] = {}
    missing = []
    for problem in problems:
        found = best.get(problem.name.upper())
        if problem.f_opt is not None:
            margin = solved_threshold(problem.f_opt, tol_abs=tol_abs, tol_rel=tol_rel) - problem.f_opt
            if found is not None and found < problem.f_opt - margin:
                out[problem.name] = (found, SOURCE_BELOW_SIF2JAX)
            else:
                out[problem.name] = (problem.f_opt, problem.f_opt_source or SOURCE_SIF2JAX)
        elif found is not None:
            out[problem.name] = (found, SOURCE_BEST_FOUND)
        else:
            missing.append(problem.name)
    if missing:
        raise ValueError(f"no reference value for {', '.join(missing)}: no known optimum and no best found")
    return out

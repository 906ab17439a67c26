"""The performance-profile arithmetic a sweep ranks its optimizers with (Dolan & Moré 2002).

``t[p, s]`` is the cost for solver ``s`` on problem ``p`` (``inf``: unsolved).  The ratio
``r[p, s] = t[p, s] / min_s t[p, s]`` and the area under ``ρ_s(τ) = |{p : r[p, s] <= τ}| / |P|``
over ``log₂ τ`` (the tie-break of :meth:`gradkit.runs.SweepResult.best`).  The profiles
themselves, with their plots and files, are :mod:`gradkit.race.profiles`.
"""

from __future__ import annotations

import numpy as np

FIELDS = {"steps": "settled_step", "gradient_equivalents": "cost_to_settle"}
"""The :class:`gradkit.runs.RunResult` field each cost unit reads."""


def performance_ratios(t: np.ndarray) -> np.ndarray:
    """``r[p, s] = t[p, s] / min_s t[p, s]`` (``inf`` where unsolved; best cost 0: 1 for the
    solvers at 0, ``inf`` for the others)."""
    t = np.asarray(t, dtype=np.float64)
    best = t.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(best > 0, t / np.where(best > 0, best, 1.0), np.where(t == 0, 1.0, np.inf))
    return np.where(np.isfinite(t), ratio, np.inf)


def default_taus(r: np.ndarray) -> np.ndarray:
    """1 and every distinct finite ratio, ascending (where ``ρ`` steps)."""
    return np.unique(np.concatenate([[1.0], r[np.isfinite(r)]]))


def profile_fractions(r: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """``rho[s, i] = |{p : r[p, s] <= taus[i]}| / |P|``."""
    return (r.T[:, :, None] <= taus[None, None, :]).mean(axis=1)


def area_under_profile(rho: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Per solver, the area under the step function ``ρ_s`` over ``log₂ τ`` from 1 to the last
    τ (larger is better: solves more problems, closer to the best cost).  With a single τ the
    area is ``ρ_s(1)``."""
    log_tau = np.log2(taus)
    if log_tau.size == 1:
        return rho[:, 0].copy()
    return (rho[:, :-1] * np.diff(log_tau)[None]).sum(axis=1)

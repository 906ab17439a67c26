"""The per-run results of :func:`gradkit.runs.run_batch` (see :mod:`gradkit.runs`)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

PyTree = Any

__all__ = ["RunResult"]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Per-run results, NumPy arrays with the run axis first.

    ``final``: last point (pytree); ``final_value``, ``final_grad_norm``;
    ``diverged``: the run hit NaN/inf and was frozen; ``first_hit``: first step
    ``k`` (0 = the start) within tolerance, -1 if never; ``settled_step``: first step
    after which the run stays within tolerance to the end (time-to-ε), -1 when the last
    iterate is not within; ``ended_within``: the last iterate is within tolerance;
    ``final_distance``: distance of the last point to the nearest given minimizer (NaN
    without minimizers); ``cost``: gradient-equivalents spent over the run;
    ``cost_to_settle``: those spent up to ``settled_step`` (inf when not settled);
    ``steps_recorded``: the step index of each recorded column; ``trajectory``
    (pytree, leaves ``(runs, recorded, ...)``), ``values`` and ``grad_norms``
    (``(runs, recorded)``) when recording, else ``None``.  With ``targets`` (COCO's ladder of
    ``f - f*`` thresholds): ``target_steps`` and ``target_costs`` ``(runs, targets)``, the first
    step and the gradient-equivalents spent when each target was first reached (-1 / ``inf``:
    never), and ``target_counts`` ``(runs, targets, 4)``, the evaluations of each kind of
    :data:`~gradkit.runs.units.COUNT_KINDS` (values, grads, HVPs, JVPs) spent until then (``inf``
    in every kind: never), else ``None``.  ``counts`` ``(runs, 4)``: the evaluations of each kind
    spent over the whole run.  Gradient-equivalents are derived from the counts:
    ``cost = Σ_k COST_UNITS[k] · counts[:, k]`` and ``target_costs = Σ_k COST_UNITS[k] ·
    target_counts[..., k]`` where reached (:func:`~gradkit.runs.units.gradient_equivalents`).
    A ``value_and_grad`` counts as one gradient (see :mod:`gradkit.runs.units`).
    """

    final: PyTree
    final_value: np.ndarray
    final_grad_norm: np.ndarray
    diverged: np.ndarray
    steps_recorded: np.ndarray
    first_hit: np.ndarray
    settled_step: np.ndarray
    ended_within: np.ndarray
    final_distance: np.ndarray
    cost: np.ndarray
    cost_to_settle: np.ndarray
    trajectory: PyTree | None = None
    values: np.ndarray | None = None
    grad_norms: np.ndarray | None = None
    targets: np.ndarray | None = None
    target_steps: np.ndarray | None = None
    target_costs: np.ndarray | None = None
    counts: np.ndarray | None = None
    target_counts: np.ndarray | None = None

    @property
    def converged(self) -> np.ndarray:
        """``ended_within & ~diverged``: the last iterate is within tolerance and finite."""
        return self.ended_within & ~self.diverged

    @property
    def ever_hit(self) -> np.ndarray:
        """``(first_hit >= 0) & ~diverged``: touched the tolerance once (maybe left again)."""
        return (self.first_hit >= 0) & ~self.diverged

    @property
    def hit_step(self) -> np.ndarray:
        """Deprecated alias of :attr:`first_hit`."""
        warnings.warn("RunResult.hit_step is deprecated; use first_hit (or settled_step)", DeprecationWarning,
                      stacklevel=2)
        return self.first_hit

"""Units of cost: gradient-equivalents and the counts per kind of evaluation they are made of.

An optimizer step spends evaluations of four kinds, counted in :data:`COUNT_KINDS` order:

- ``values``: calls of the objective that compute ``f`` alone (a forward pass, no derivative);
- ``grads``: gradients (reverse mode).  A ``value_and_grad`` counts as **one gradient only**: its
  value comes with it and is not counted again under ``values``.  COCO's "function evaluations"
  are therefore ``values + grads`` (every gradient call also yields ``f``);
- ``hvps``: Hessian-vector products (one curvature product, however it is computed);
- ``jvps``: forward-mode Jacobian-vector products ``∇f(x)·v`` (one per tangent).

Gradient-equivalents are *derived* from the counts, never tabled separately:
``cost = Σ_k COST_UNITS[k] · counts[k]`` (:func:`gradient_equivalents`), with the measured
:data:`COST_UNITS` (value 1/2, gradient 1, HVP 2, JVP 1; see :mod:`gradkit.runs`).
Only NumPy is needed here (jax arrays work too).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

COST_UNITS: dict[str, float] = {"value": 0.5, "grad": 1.0, "hvp": 2.0, "jvp": 1.0}
"""Gradient-equivalents of one evaluation (see :mod:`gradkit.runs` for the measurements)."""

COUNT_KINDS: tuple[str, ...] = ("values", "grads", "hvps", "jvps")
"""The kinds of evaluation counted, in the order of the last axis of every counts array
(``RunResult.counts``, ``RunResult.target_counts``): kind ``k`` costs ``COST_UNITS[k[:-1]]``."""


def count_weights() -> np.ndarray:
    """``(4,)`` float64: the gradient-equivalents of one evaluation of each kind of
    :data:`COUNT_KINDS`, ``w_k = COST_UNITS[k[:-1]]`` (read from :data:`COST_UNITS` on every call)."""
    return np.array([COST_UNITS[kind[:-1]] for kind in COUNT_KINDS], dtype=np.float64)


class Counts(NamedTuple):
    """Evaluations of each kind (:data:`COUNT_KINDS`), numbers or (traced) arrays; a pytree.

    ``cost`` is their gradient-equivalents ``Σ_k COST_UNITS[k] · count_k``."""

    values: Any = 0.0
    grads: Any = 0.0
    hvps: Any = 0.0
    jvps: Any = 0.0

    @property
    def cost(self) -> Any:
        """``0.5·values + 1·grads + 2·hvps + 1·jvps`` (the weights of :data:`COST_UNITS`)."""
        return gradient_equivalents(self)


def as_counts(amount: Any) -> Counts:
    """``amount`` as :class:`Counts`: a :class:`Counts` unchanged; a bare number (the older form
    of a cost model, in gradient-equivalents) counted as that many gradients, ``Counts(grads=amount)``,
    so its gradient-equivalents are unchanged."""
    return amount if isinstance(amount, Counts) else Counts(grads=amount)


def gradient_equivalents(counts: Any) -> Any:
    """Gradient-equivalents of counts: ``Σ_k w_k · counts[..., k]`` over :data:`COUNT_KINDS`
    (``w`` = :func:`count_weights`), for an array whose last axis has the four kinds (NumPy or
    jax) or a :class:`Counts`.  Summed in kind order, so the result is the same bit for bit
    wherever it is computed."""
    weights = [float(w) for w in count_weights()]  # Python floats: weakly typed, keep a float32 run float32
    if isinstance(counts, Counts):
        parts = list(counts)
    else:
        if counts.shape[-1] != len(COUNT_KINDS):
            raise ValueError(f"counts: expected a last axis of {len(COUNT_KINDS)} kinds {COUNT_KINDS}, "
                             f"got shape {counts.shape}")
        parts = [counts[..., k] for k in range(len(COUNT_KINDS))]
    total = weights[0] * parts[0]
    for w, part in zip(weights[1:], parts[1:]):
        total = total + w * part
    return total

"""Shared pieces of the second-order solvers: the checked objective, the dtype they compute in,
and argument checks.

**Compute dtype.**  Every solver of the Newton family works in one floating dtype, the promotion
of the parameter leaves' dtypes and float32 (:func:`compute_dtype`): float32 for float32 (and for
float16 / bfloat16: a Newton step needs more precision than a 3-digit mantissa gives), float64 for
float64 or for a float32/float64 mix.  When some leaf is not in that dtype, ``update`` casts the
params up, evaluates the objective and its gradient there (the ``grads`` and ``value`` it was
given were computed in the low precision and are recomputed, one extra gradient per step), runs
the solve, and casts the updates back leaf by leaf, so each leaf keeps its own dtype.

**Curvature.**  ``newton_cg``, ``newton_cg_trust_region`` and ``hessian_free`` take the matrix
``B`` of their quadratic model from (first match wins, see :func:`curvature_matvec`)::

    update(..., curvature_operator=op)   op built at the current params (e.g. on this step's batch)
    curvature=builder                    op = builder(params) each step
    the solver's default                 ∇²f(x) (Newton-CG, trust region) or the GGN (HF)

An operator is a :class:`gradkit.curvature.CurvatureOperator` (``hessian``, ``ggn``,
``fisher``, ``empirical_fisher``, maybe ``.damped(λ)``), linearized once per step by its
``linearize()``, or any callable linear map ``v -> B v`` on params-shaped pytrees.  The
linearized map is a closure, so the inner solve compiles per step when ``update`` runs
eagerly: ``jax.jit`` the step (as ``gradkit.optim.minimize`` does).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit.curvature.operator import CurvatureOperator
from gradkit.derivatives import scalar_fn, tree_mismatch
from gradkit.optim._common import PyTree, check_tree_match

ValueFn = Callable[[PyTree], jax.Array]
Matvec = Callable[[PyTree], PyTree]
CurvatureBuilder = Callable[[PyTree], Matvec]


# ----------------------------------------------------------------------------- argument checks


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_finite(name: str, arg: str, value: Any) -> None:
    """A Python-number ``value`` must be finite and > 0 (traced arrays pass)."""
    if _is_number(value) and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: {arg} must be a finite number > 0, got {value}")


def check_nonnegative_finite(name: str, arg: str, value: Any) -> None:
    """A Python-number ``value`` must be finite and >= 0 (traced arrays pass)."""
    if _is_number(value) and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: {arg} must be a finite number >= 0, got {value}")


def check_count(name: str, arg: str, value: Any, minimum: int) -> None:
    """``value`` must be a Python integer >= ``minimum`` (an iteration budget)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: {arg} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: {arg} must be >= {minimum}, got {value}")


def check_float_params(name: str, params: PyTree) -> None:
    """Raise a ``TypeError`` naming ``params`` when a leaf is not floating point."""
    for i, leaf in enumerate(jax.tree.leaves(params)):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"{name}: params must be floating point, but leaf {i} has dtype {dtype}; cast it "
                            "(e.g. jnp.asarray(x, float)) — gradkit.optim.minimize promotes integer params itself")


def check_finite_start(name: str, params: PyTree) -> None:
    """Raise a ``ValueError`` when a concrete (non-traced) ``params`` holds NaN or inf."""
    for i, leaf in enumerate(jax.tree.leaves(params)):
        if isinstance(leaf, jax.core.Tracer):
            continue
        if not np.all(np.isfinite(np.asarray(leaf, dtype=np.float64))):
            raise ValueError(f"{name}: the start point is not finite (leaf {i} holds NaN or inf)")


def check_start(name: str, params: PyTree) -> None:
    """What every ``init`` checks: floating-point leaves, all finite."""
    check_float_params(name, params)
    check_finite_start(name, params)


# ----------------------------------------------------------------------------- compute dtype


def compute_dtype(params: PyTree) -> Any:
    """The dtype the solvers compute in: the leaves' promoted dtype, at least float32."""
    return jnp.promote_types(optax.tree.dtype(params, "promote"), jnp.float32)


def needs_cast(params: PyTree) -> bool:
    """True when some leaf is not in :func:`compute_dtype` (a mix, or float16 / bfloat16)."""
    dtype = compute_dtype(params)
    return any(jnp.result_type(leaf) != dtype for leaf in jax.tree.leaves(params))


def to_compute(tree: PyTree, dtype: Any) -> PyTree:
    """Every leaf of ``tree`` as ``dtype``."""
    return jax.tree.map(lambda leaf: jnp.asarray(leaf).astype(dtype), tree)


def compute_params(params: PyTree) -> PyTree:
    """``params`` in the compute dtype (the same object when no cast is needed)."""
    return to_compute(params, compute_dtype(params)) if needs_cast(params) else params


class Problem(NamedTuple):
    """One ``update``'s objective in the compute dtype: ``f`` (scalar-checked), ``params``,
    ``grads`` and ``value`` at ``params``."""

    f: ValueFn
    params: PyTree
    grads: PyTree
    value: jax.Array


def require_value_fn(name: str, grads: PyTree, params: PyTree, value_fn: ValueFn | None) -> ValueFn:
    """The checked objective of ``name.update``: params and ``value_fn`` given, ``grads`` shaped
    like ``params``, ``value_fn`` scalar (checked at trace time)."""
    if params is None or value_fn is None:
        raise ValueError(f"{name}.update needs params and the objective: update(grads, state, params, value_fn=f)")
    check_tree_match(name, grads, params)
    return scalar_fn(value_fn, f"{name} value_fn")


def prepare(name: str, grads: PyTree, params: PyTree, value_fn: ValueFn | None, value: jax.Array | None) -> Problem:
    """The objective, params, gradient and value of one step in the compute dtype (see the module
    docstring): unchanged when every leaf is already in it, recomputed in it otherwise."""
    f = require_value_fn(name, grads, params, value_fn)
    if not needs_cast(params):
        grads = optax.tree.cast_like(grads, params)
        return Problem(f, params, grads, f(params) if value is None else value)
    dtype = compute_dtype(params)
    fc = lambda q: f(q).astype(dtype)
    params_c = to_compute(params, dtype)
    value_c, grads_c = jax.value_and_grad(fc)(params_c)
    return Problem(fc, params_c, grads_c, value_c)


def cast_back(updates: PyTree, params: PyTree) -> PyTree:
    """``updates`` leaf by leaf in the dtype of the matching ``params`` leaf."""
    return optax.tree.cast_like(updates, params)


# ----------------------------------------------------------------------------- curvature operators


def check_curvature_builder(name: str, curvature: Any) -> None:
    """The constructor's ``curvature`` must be None or a callable ``params -> operator``."""
    if curvature is not None and not callable(curvature):
        raise TypeError(f"{name}: curvature must be a callable params -> operator (e.g. lambda p: "
                        f"gradkit.curvature.ggn(model_fn, loss, p, batch)), got {type(curvature).__name__}")


def as_matvec(name: str, arg: str, operator: Any, params: PyTree) -> Matvec:
    """``v -> B v`` from ``operator``: a :class:`CurvatureOperator` (its params shaped like
    ``params``, else a ``ValueError`` naming ``arg``) linearized once, or a callable linear map.
    Products come back in the dtypes of ``v`` (the solver's compute dtype)."""
    if isinstance(operator, CurvatureOperator):
        problem = tree_mismatch(params, operator.params, f"{arg}'s params")
        if problem:
            raise ValueError(f"{name}: {arg} was built at other params: {problem}")
        matvec = operator.linearize()
    elif callable(operator):
        matvec = operator
    else:
        raise TypeError(f"{name}: {arg} must be a CurvatureOperator or a callable v -> B v, "
                        f"got {type(operator).__name__}")
    return lambda v: optax.tree.cast_like(matvec(v), v)


def curvature_matvec(name: str, params: PyTree, operator: Any, builder: CurvatureBuilder | None,
                     default: Callable[[], Matvec]) -> Matvec:
    """The curvature of one step at ``params`` (compute dtype): the update-time ``operator``
    when given, else ``builder(params)``, else ``default()`` (see the module docstring)."""
    if operator is not None:
        return as_matvec(name, "curvature_operator", operator, params)
    if builder is not None:
        return as_matvec(name, "curvature", builder(params), params)
    return default()

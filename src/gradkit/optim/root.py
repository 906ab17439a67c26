"""Newton's method for roots ``F(x) = 0`` (scalar or vector), with honest result codes."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp

from gradkit.lifting import Spec, lift, note_compile
from gradkit.optim._second_order import check_count, check_finite_start, check_nonnegative_finite
from gradkit.results import Code, Result, make_result, maybe_throw, select_code

RootResult = Result
""":func:`newton_root` returns a :class:`gradkit.results.Result` (this name is kept for imports)."""


def _solve(fn_spec: Spec, fn_leaves: tuple, x0: jax.Array, tol: Any, maxiter: Any) -> Result:
    note_compile("gradkit.optim.newton_root", fn_spec)
    fn = fn_spec.rebuild(fn_leaves)
    scalar = x0.ndim == 0
    x0v = jnp.atleast_1d(x0)
    residual_fn = lambda x: jnp.atleast_1d(fn(x[0] if scalar else x)).astype(x0v.dtype)
    if residual_fn(x0v).shape != x0v.shape:
        raise ValueError(f"newton_root: F must map R^n to R^n; x0 has shape {x0.shape}, "
                         f"F(x0) has shape {jnp.shape(fn(x0))}")
    residual0 = residual_fn(x0v)

    # carry: i, x, F(x), moved too little (or F = 0), singular Jacobian, non-finite F
    def keep_going(state: tuple) -> jax.Array:
        i, _, _, small, singular, bad = state
        return (i < maxiter) & ~small & ~singular & ~bad

    def step(state: tuple) -> tuple:
        i, x, residual, _, _, _ = state
        delta = jnp.linalg.solve(jax.jacfwd(residual_fn)(x), residual)
        singular = ~jnp.all(jnp.isfinite(delta))
        new_x = x - jnp.where(singular, 0, delta)
        new_residual = residual_fn(new_x)
        bad = ~singular & ~jnp.all(jnp.isfinite(new_residual))
        keep = singular | bad
        small = jnp.linalg.norm(delta) <= tol * (1 + jnp.linalg.norm(x))
        small = ~keep & (small | jnp.all(new_residual == 0))
        return (i + jnp.where(keep, 0, 1), jnp.where(keep, x, new_x), jnp.where(keep, residual, new_residual),
                small, singular, bad)

    false = jnp.asarray(False)
    start = (jnp.asarray(0), x0v, residual0, jnp.all(residual0 == 0), false, ~jnp.all(jnp.isfinite(residual0)))
    i, x, residual, small, singular, bad = jax.lax.while_loop(keep_going, step, start)
    residual_norm = jnp.linalg.norm(residual)
    scale = jnp.maximum(1.0, jnp.abs(residual0).max())
    solved = residual_norm <= 1e3 * jnp.finfo(x.dtype).eps * scale
    code = select_code((bad, Code.NONFINITE), (solved, Code.CONVERGED), (singular | small, Code.BREAKDOWN),
                       default=Code.MAX_STEPS)
    return make_result(x[0] if scalar else x, code, i, residual=residual_norm)


_solve_compiled = jax.jit(_solve, static_argnums=0)


def newton_root(fn: Callable[[jax.Array], jax.Array], x0: Any, *, tol: float = 1e-12,
                maxiter: int = 100, throw: bool = False) -> Result:
    """Newton's method for ``F(x) = 0`` (scalar or vector ``x``)::

        x ← x - J_F(x)⁻¹ F(x)        (scalar: x ← x - f(x)/f'(x), the seed-000 iteration)

    with ``J_F`` by ``jax.jacfwd``; stops when ``|Δx| <= tol (1 + |x|)`` or ``F(x) = 0``.
    ``x0`` is promoted to the default float dtype.  Compiled once per what ``fn`` computes
    (:mod:`gradkit.lifting`: a fresh ``lambda`` with the same code and values reuses it).

    Returns a :class:`gradkit.results.Result`: ``res.x`` the root (scalar for a scalar ``x0``),
    ``res.iterations``, stat ``residual`` (``||F(x)||``) and ``res.code``: ``CONVERGED`` when
    ``||F(x)|| <= 10³ ε max(1, |F(x0)|_max)``; ``BREAKDOWN`` when the Jacobian is singular
    (``f'(x) = 0``: the iterate stays, never NaN) or the steps stopped short of that residual;
    ``NONFINITE`` when ``F`` turned NaN/inf (the last finite iterate is returned);
    ``MAX_STEPS``.  ``throw=True`` raises :class:`gradkit.results.SolverError` unless converged.
    """
    check_nonnegative_finite("newton_root", "tol", tol)
    check_count("newton_root", "maxiter", maxiter, 0)
    x0 = jnp.asarray(x0, dtype=jnp.result_type(float))
    check_finite_start("newton_root", x0)
    if not callable(fn):
        raise TypeError(f"newton_root: fn must be callable, got {type(fn).__name__}")
    spec, leaves = lift(fn, floats=False)
    return maybe_throw(_solve_compiled(spec, leaves, x0, tol, maxiter), throw, "newton_root")

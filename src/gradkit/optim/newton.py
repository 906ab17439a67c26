"""Newton's method with Levenberg damping and a line search (dense Hessian, small problems).

This module also re-exports the whole second-order family, one module per solver, so that
``from gradkit.optim.newton import minimize, newton_cg, ...`` keeps working:

- :mod:`gradkit.optim.newton_cg`: truncated Newton (line-search Newton-CG);
- :mod:`gradkit.optim.trust_region`: trust-region Newton-CG (Steihaug-Toint);
- :mod:`gradkit.optim.hessian_free`: Hessian-free optimization (Martens 2010) and its CG;
- :mod:`gradkit.optim.minimize`: a compiled loop that runs any optimizer to a tolerance;
- :mod:`gradkit.optim.root`: Newton's method for ``F(x) = 0``.

Every optimizer is an ``optax.GradientTransformationExtraArgs`` whose ``update`` takes the
objective as the keyword ``value_fn`` (as ``optax.lbfgs`` does)::

    updates, state = opt.update(grads, state, params, value_fn=loss)

Only :func:`newton` forms a Hessian (dense, ``n <= max_params``); the others use
Hessian-vector products (``gradkit.hvp_operator``) or Gauss-Newton products
(``gradkit.ggn_vp``) inside ``gradkit.linalg.cg``.  All of them compute in at least float32
(float16 / bfloat16 params are cast up for the step and the updates cast back) and keep each
leaf's dtype in the updates (see ``gradkit.optim._second_order``).
"""

from __future__ import annotations

from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from gradkit.optim._common import PyTree
from gradkit.optim._line_search import LineSearch, init_line_search, make_line_search, search
from gradkit.optim._second_order import (
    ValueFn,
    cast_back,
    check_count,
    check_finite_start,
    check_nonnegative_finite,
    check_start,
    compute_params,
    prepare,
)
from gradkit.optim.hessian_free import HessianFreeState, hessian_free, martens_cg
from gradkit.optim.minimize import MinimizeResult, minimize
from gradkit.optim.newton_cg import NewtonCGState, forcing_tolerance, newton_cg
from gradkit.optim.root import RootResult, newton_root
from gradkit.optim.trust_region import TrustRegionState, newton_cg_trust_region

__all__ = [
    "HessianFreeState",
    "MinimizeResult",
    "NewtonCGState",
    "NewtonState",
    "RootResult",
    "TrustRegionState",
    "check_finite_start",
    "forcing_tolerance",
    "hessian_free",
    "levenberg_direction",
    "martens_cg",
    "minimize",
    "newton",
    "newton_cg",
    "newton_cg_trust_region",
    "newton_root",
]


class NewtonState(NamedTuple):
    """``count``; ``shift``: the Levenberg damping ``λ`` used at the last step; ``line_search``:
    optax's line-search state (value and gradient at the new point)."""

    count: jax.Array
    shift: jax.Array
    line_search: Any


def levenberg_direction(hessian: jax.Array, grad: jax.Array, damping: Any = 0.0,
                        min_curvature: Any = 1e-8) -> tuple[jax.Array, jax.Array]:
    """``p = -(H + λ I)⁻¹ g`` with ``λ = damping + max(0, δ - λ_min(H))``, ``δ = max(min_curvature,
    ε) · max(1, |λ|_max)`` (``ε``: the dtype's machine epsilon), by one symmetric
    eigendecomposition ``H = Q Λ Qᵀ``; so ``H + λ I`` is positive definite and ``p`` a descent
    direction even where ``H`` is singular or indefinite.  The floor ``ε`` (and dividing by
    ``max(Λ + λ, δ)``) keeps ``λ_min + λ`` from rounding to 0 — in float32 ``δ = 10⁻⁸ |λ|_max``
    alone is below the rounding of ``λ_min`` and gave an infinite step.  Returns ``(p, λ)``."""
    h = 0.5 * (hessian + hessian.T)
    eigenvalues, vectors = jnp.linalg.eigh(h)
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(eigenvalues)))
    floor = jnp.maximum(min_curvature, jnp.finfo(eigenvalues.dtype).eps) * scale
    shift = damping + jnp.maximum(0.0, floor - eigenvalues[0])
    direction = -vectors @ ((vectors.T @ grad) / jnp.maximum(eigenvalues + shift, floor))
    return direction, shift


def dense_hessian(f: ValueFn, params: PyTree) -> tuple[jax.Array, jax.Array, Callable[[jax.Array], PyTree]]:
    """The curvature of :func:`newton`: ``(H, x, unravel)`` with ``H = ∇²f(x)`` dense
    (``jax.hessian`` of ``f`` on the raveled params ``x``)."""
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda z: f(unravel(z)))(flat), flat, unravel


def newton(
    damping: float = 0.0,
    *,
    min_curvature: float = 1e-8,
    line_search: LineSearch = "armijo",
    max_line_search_steps: int = 30,
    max_params: int = 4096,
) -> optax.GradientTransformationExtraArgs:
    """Newton's method with Levenberg damping and a line search, for small problems::

        H = ∇²f(x) (dense, jax.hessian),   p = -(H + λ I)⁻¹ ∇f(x),   x ← x + α p

    ``λ = damping + max(0, δ - λ_min(H))`` keeps ``H + λI`` positive definite (see
    :func:`levenberg_direction`); ``α`` from Armijo backtracking starting at 1 (``"armijo"``),
    a strong-Wolfe search (``"wolfe"``) or fixed at 1 (``None``).  For parameter counts
    ``> max_params`` use :func:`newton_cg` (the dense Hessian costs ``n`` HVPs and ``n²`` memory).
    float16 / bfloat16 params are stepped in float32; each leaf keeps its dtype.
    """
    check_nonnegative_finite("newton", "damping", damping)
    check_nonnegative_finite("newton", "min_curvature", min_curvature)
    check_count("newton", "max_params", max_params, 1)
    ls = make_line_search("newton", line_search, max_line_search_steps)

    def init(params: PyTree) -> NewtonState:
        check_start("newton", params)
        size = optax.tree.size(params)
        if size > max_params:
            raise ValueError(f"newton: {size} parameters exceed max_params={max_params}; the dense "
                             "Hessian would not fit — use newton_cg or hessian_free")
        params_c = compute_params(params)
        return NewtonState(jnp.zeros([], jnp.int32), jnp.zeros([], optax.tree.dtype(params_c, "promote")),
                           init_line_search(ls, params_c))

    def update(grads: PyTree, state: NewtonState, params: PyTree = None, *,
               value_fn: ValueFn | None = None, value: jax.Array | None = None, **extra: Any
               ) -> tuple[PyTree, NewtonState]:
        problem = prepare("newton", grads, params, value_fn, value)
        hessian, flat, unravel = dense_hessian(problem.f, problem.params)
        flat_grad = ravel_pytree(problem.grads)[0].astype(flat.dtype)
        direction, shift = levenberg_direction(hessian, flat_grad, damping, min_curvature)
        updates, ls_state = search(ls, state.line_search, unravel(direction), problem.params,
                                   problem.value, problem.grads, problem.f)
        return cast_back(updates, params), NewtonState(state.count + 1, shift.astype(state.shift.dtype), ls_state)

    return optax.GradientTransformationExtraArgs(init, update)

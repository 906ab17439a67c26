"""Truncated Newton: line-search Newton-CG (Nocedal & Wright Algorithm 7.1; scipy's
``minimize(method="Newton-CG")``), matrix-free on Hessian-vector products or on any curvature
operator (Gauss-Newton-CG with ``gradkit.curvature.ggn``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradkit.derivatives import hvp_operator
from gradkit.linalg.cg import cg
from gradkit.optim._common import PyTree
from gradkit.optim._line_search import LineSearch, init_line_search, make_line_search, search
from gradkit.optim._second_order import (
    CurvatureBuilder,
    Matvec,
    ValueFn,
    cast_back,
    check_count,
    check_curvature_builder,
    check_nonnegative_finite,
    check_start,
    compute_params,
    curvature_matvec,
    prepare,
)


class NewtonCGState(NamedTuple):
    """``count``; ``hvp_count``: curvature-vector products so far; ``cg_iterations``,
    ``cg_code`` (a ``gradkit.results.Code``) and ``negative_curvature`` of the last inner solve;
    ``line_search``: optax's state."""

    count: jax.Array
    hvp_count: jax.Array
    cg_iterations: jax.Array
    cg_code: jax.Array
    negative_curvature: jax.Array
    line_search: Any


def forcing_tolerance(grad_norm: jax.Array) -> jax.Array:
    """The relative CG tolerance ``η = min(0.5, √||g||)`` (Nocedal & Wright eq. 7.3, as scipy):
    superlinear convergence near the minimum, cheap inexact steps far from it."""
    return jnp.minimum(0.5, jnp.sqrt(grad_norm))


def hessian_product(f: ValueFn, params: PyTree) -> Matvec:
    """The curvature of :func:`newton_cg`: ``v ↦ ∇²f(x) v``, linearized once at ``x``."""
    return hvp_operator(f, params)


def newton_cg(
    *,
    line_search: LineSearch = "armijo",
    cg_maxiter: int | None = None,
    cg_tol: float | None = None,
    forcing_norm: int = 2,
    max_line_search_steps: int = 30,
    curvature: CurvatureBuilder | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Truncated Newton (line-search Newton-CG, Nocedal & Wright Algorithm 7.1)::

        solve  B p = -g  by CG until  ||r|| <= η ||g||,   η = min(0.5, √||g||)  (or cg_tol)
        x ← x + α p,   α by Armijo backtracking from 1 (default) or a strong-Wolfe search

    ``B`` is the Hessian ``∇²f(x)`` by default, or the operator of ``curvature(params)`` — a
    ``gradkit.curvature.CurvatureOperator`` or any linear map ``v -> B v`` — or of the
    ``update(..., curvature_operator=op)`` keyword (which wins; see
    ``gradkit.optim._second_order``).  With the GGN ``B = Jᵀ H_ℓ J`` this is Gauss-Newton-CG,
    ``p = -(JᵀJ)⁻¹ Jᵀr`` for least squares when CG converges.
    The curvature is linearized once per step (:func:`hessian_product`); each CG iteration
    is one product.  Negative curvature met at the first CG iteration falls back to steepest
    descent scaled like scipy, ``p = -(||g||² / |gᵀHg|) g``; met later, CG keeps the last
    iterate (a descent direction).  The state reports the inner solve (``cg_code``,
    ``cg_iterations``, ``negative_curvature``).  ``forcing_norm=1`` measures ``||g||`` and
    ``||r||`` in the L1 norm exactly as ``scipy.optimize.minimize(method="Newton-CG")`` does.
    ``cg_maxiter`` (>= 1) defaults to ``20 n`` (scipy's); ``cg_tol >= 0`` replaces the
    forcing tolerance (``0``: CG runs to an exact solve or ``cg_maxiter``).  float16 / bfloat16
    params are stepped in float32 (an operator computes in float32 too); each leaf keeps its dtype.
    """
    if forcing_norm not in (1, 2):
        raise ValueError(f"newton_cg: forcing_norm must be 1 or 2, got {forcing_norm!r}")
    if cg_maxiter is not None:
        check_count("newton_cg", "cg_maxiter", cg_maxiter, 1)
    if cg_tol is not None:
        check_nonnegative_finite("newton_cg", "cg_tol", cg_tol)
    check_curvature_builder("newton_cg", curvature)
    ls = make_line_search("newton_cg", line_search, max_line_search_steps)

    def init(params: PyTree) -> NewtonCGState:
        check_start("newton_cg", params)
        zero = jnp.zeros([], jnp.int32)
        return NewtonCGState(zero, zero, zero, zero, jnp.asarray(False), init_line_search(ls, compute_params(params)))

    def update(grads: PyTree, state: NewtonCGState, params: PyTree = None, *,
               value_fn: ValueFn | None = None, value: jax.Array | None = None,
               curvature_operator: Any = None, **extra: Any) -> tuple[PyTree, NewtonCGState]:
        problem = prepare("newton_cg", grads, params, value_fn, value)
        matvec = curvature_matvec("newton_cg", problem.params, curvature_operator, curvature,
                                  lambda: hessian_product(problem.f, problem.params))
        g = problem.grads
        maxiter = 20 * optax.tree.size(params) if cg_maxiter is None else cg_maxiter
        grad_norm = optax.tree.norm(g, ord=forcing_norm)
        neg_grad = optax.tree.scale(-1.0, g)
        tol = forcing_tolerance(grad_norm) if cg_tol is None else cg_tol
        info = cg(matvec, neg_grad, tol=tol, maxiter=maxiter, norm_ord=forcing_norm)
        steepest = info.negative_curvature & (info.iterations == 0)
        g_sq = optax.tree.vdot(g, g)
        scale = jnp.where(info.curvature < 0, g_sq / jnp.where(info.curvature < 0, -info.curvature, 1), 1.0)
        direction = optax.tree.where(steepest, optax.tree.scale(scale, neg_grad), info.x)
        direction = optax.tree.cast_like(direction, problem.params)
        updates, ls_state = search(ls, state.line_search, direction, problem.params, problem.value, g, problem.f)
        new_state = NewtonCGState(state.count + 1, state.hvp_count + info.matvecs.astype(jnp.int32),
                                  info.iterations.astype(jnp.int32), info.code, info.negative_curvature, ls_state)
        return cast_back(updates, params), new_state

    return optax.GradientTransformationExtraArgs(init, update)

"""Trust-region Newton-CG (Steihaug-Toint; scipy's ``minimize(method="trust-ncg")``), on the
Hessian or any curvature operator."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradkit.linalg.cg import steihaug_cg
from gradkit.optim._common import PyTree
from gradkit.optim._second_order import (
    CurvatureBuilder,
    ValueFn,
    cast_back,
    check_count,
    check_curvature_builder,
    check_positive_finite,
    check_start,
    compute_params,
    curvature_matvec,
    prepare,
)
from gradkit.optim.newton_cg import forcing_tolerance, hessian_product


class TrustRegionState(NamedTuple):
    """``count``; ``radius``: the trust radius Δ; ``hvp_count``; ``ratio``: the last
    actual/predicted reduction ρ; ``hit_boundary`` and ``cg_code`` of the last Steihaug solve;
    ``value`` and ``grad`` at the current point (for reuse)."""

    count: jax.Array
    radius: jax.Array
    hvp_count: jax.Array
    ratio: jax.Array
    hit_boundary: jax.Array
    cg_code: jax.Array
    value: jax.Array
    grad: PyTree


def newton_cg_trust_region(
    initial_radius: float = 1.0,
    max_radius: float = 1000.0,
    eta: float = 0.15,
    *,
    cg_maxiter: int | None = None,
    curvature: CurvatureBuilder | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Trust-region Newton-CG (Steihaug-Toint; scipy's ``trust-ncg``)::

        p = argmin_{||p|| <= Δ} m(p) = gᵀp + ½ pᵀ B p    (gradkit.linalg.steihaug_cg, tol min(0.5, √||g||))
        ρ = (f(x) - f(x + p)) / (-m(p))
        Δ ← Δ/4 if ρ < ¼;  Δ ← min(2Δ, Δ_max) if ρ > ¾ and ||p|| = Δ
        x ← x + p if ρ > η, else stay

    ``B`` is the Hessian ``∇²f(x)`` by default, or the operator of ``curvature(params)`` — a
    ``gradkit.curvature.CurvatureOperator`` (e.g. the GGN, or ``hessian(f, p).damped(λ)``) or any
    linear map ``v -> B v`` — or of ``update(..., curvature_operator=op)``, which wins (see
    ``gradkit.optim._second_order``); ρ always compares with the true ``f``.
    Handles indefinite Hessians by construction (a negative-curvature direction is
    followed to the boundary).  A rejected step returns zero updates (the radius shrinks).
    ``0 < initial_radius < max_radius`` (finite), ``0 <= eta < 0.25``, ``cg_maxiter >= 1``
    (default ``10 n``).  float16 / bfloat16 params are stepped in float32.
    """
    name = "newton_cg_trust_region"
    if not 0 <= eta < 0.25:
        raise ValueError(f"{name}: eta must be in [0, 0.25), got {eta}")
    check_positive_finite(name, "initial_radius", initial_radius)
    check_positive_finite(name, "max_radius", max_radius)
    if not initial_radius < max_radius:
        raise ValueError(f"{name}: initial_radius must be < max_radius, got {initial_radius} >= {max_radius}")
    if cg_maxiter is not None:
        check_count(name, "cg_maxiter", cg_maxiter, 1)
    check_curvature_builder(name, curvature)

    def init(params: PyTree) -> TrustRegionState:
        check_start(name, params)
        params_c = compute_params(params)
        dtype = optax.tree.dtype(params_c, "promote")
        zero = jnp.zeros([], jnp.int32)
        return TrustRegionState(zero, jnp.asarray(initial_radius, dtype), zero, jnp.zeros([], dtype),
                                jnp.asarray(False), zero, jnp.asarray(jnp.inf, dtype),
                                optax.tree.zeros_like(params_c))

    def update(grads: PyTree, state: TrustRegionState, params: PyTree = None, *,
               value_fn: ValueFn | None = None, value: jax.Array | None = None,
               curvature_operator: Any = None, **extra: Any) -> tuple[PyTree, TrustRegionState]:
        problem = prepare(name, grads, params, value_fn, value)
        f, x, g, value = problem
        matvec = curvature_matvec(name, x, curvature_operator, curvature, lambda: hessian_product(f, x))
        info = steihaug_cg(matvec, g, state.radius,
                           tol=forcing_tolerance(optax.tree.norm(g)), maxiter=cg_maxiter)
        step = optax.tree.cast_like(info.x, x)
        new_value, new_grad = jax.value_and_grad(f)(optax.tree.add(x, step))
        predicted = -info.model
        ratio = jnp.where(predicted > 0, (value - new_value) / jnp.where(predicted > 0, predicted, 1), -jnp.inf)
        ratio = jnp.where(jnp.isfinite(new_value), ratio, -jnp.inf)
        radius = jnp.where(ratio < 0.25, 0.25 * state.radius,
                           jnp.where((ratio > 0.75) & info.hit_boundary,
                                     jnp.minimum(2 * state.radius, max_radius), state.radius))
        accept = ratio > eta
        updates = optax.tree.where(accept, step, optax.tree.zeros_like(step))
        new_state = TrustRegionState(
            state.count + 1, radius.astype(state.radius.dtype),
            state.hvp_count + info.matvecs.astype(jnp.int32), ratio.astype(state.ratio.dtype),
            info.hit_boundary, info.code,
            jnp.where(accept, new_value, value).astype(state.value.dtype),
            optax.tree.cast_like(optax.tree.where(accept, new_grad, g), state.grad))
        return cast_back(updates, params), new_state

    return optax.GradientTransformationExtraArgs(init, update)

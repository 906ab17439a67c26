"""Second-order optimizers: Newton, truncated Newton (Newton-CG, line search or trust
region), Hessian-free (Martens 2010); plus Newton's method for roots and a compiled
``minimize`` loop that runs any of them (or any optax optimizer) to a tolerance.

Every optimizer is an ``optax.GradientTransformationExtraArgs`` whose ``update`` takes the
objective as the keyword ``value_fn`` (as ``optax.lbfgs`` does)::

    updates, state = opt.update(grads, state, params, value_fn=loss)

Only :func:`newton` forms a Hessian (dense, ``n <= max_params``); the others use
Hessian-vector products (``gradkit.hvp_operator``) or Gauss-Newton products
(``gradkit.ggn_vp``) inside ``gradkit.linalg.cg``.  Line searches are optax's own
(``scale_by_backtracking_linesearch`` for Armijo, ``scale_by_zoom_linesearch`` for strong
Wolfe); they keep the value and gradient at the new point in the state, which
:func:`minimize` reuses through ``optax.value_and_grad_from_state``.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from gradkit.derivatives import ggn_vp, hvp_operator, scalar_fn
from gradkit.linalg.cg import cg, steihaug_cg
from gradkit.optim._common import PyTree, check_nonnegative, check_positive, check_tree_match

LineSearch = Literal["armijo", "wolfe"] | None
ValueFn = Callable[[PyTree], jax.Array]


# ----------------------------------------------------------------------------- helpers


def _require_value_fn(name: str, grads: PyTree, params: PyTree, value_fn: ValueFn | None) -> ValueFn:
    """The checked objective of ``name.update``: params and ``value_fn`` given, ``grads`` shaped
    like ``params``, ``value_fn`` scalar (checked at trace time)."""
    if params is None or value_fn is None:
        raise ValueError(f"{name}.update needs params and the objective: update(grads, state, params, value_fn=f)")
    check_tree_match(name, grads, params)
    return scalar_fn(value_fn, f"{name} value_fn")


def _dtype(params: PyTree) -> Any:
    """The common (promoted) dtype of the leaves, as ``ravel_pytree`` would give, without the copy."""
    return optax.tree.dtype(params, "promote")


def check_finite_start(name: str, params: PyTree) -> None:
    """Raise a ``ValueError`` when a concrete (non-traced) ``params`` holds NaN or inf."""
    for i, leaf in enumerate(jax.tree.leaves(params)):
        if isinstance(leaf, jax.core.Tracer):
            continue
        if not np.all(np.isfinite(np.asarray(leaf))):
            raise ValueError(f"{name}: the start point is not finite (leaf {i} holds NaN or inf)")


class _LineSearch(NamedTuple):
    """An optax line search built per step, so that its tolerance can follow the rounding
    level of the current value (``make(atol)``); ``init`` does not depend on it."""

    make: Callable[[Any], optax.GradientTransformationExtraArgs]

    def init(self, params: PyTree) -> Any:
        return self.make(0.0).init(params)


def _line_search(kind: LineSearch, max_steps: int, armijo_c: float = 1e-4, decrease: float = 0.5
                 ) -> _LineSearch | None:
    """optax's Armijo backtracking (from step 1 every time) or strong-Wolfe zoom search.

    The gradient at the accepted point is not stored by the Armijo search (optax's
    ``store_grad`` transposes with a Python-float cotangent, which fails for float32
    params under ``jax_enable_x64``)."""
    if kind is None:
        return None
    if kind == "armijo":
        return _LineSearch(lambda atol: optax.scale_by_backtracking_linesearch(
            max_backtracking_steps=max_steps, slope_rtol=armijo_c, decrease_factor=decrease,
            increase_factor=1.0, max_learning_rate=1.0, atol=atol, store_grad=False))
    if kind == "wolfe":
        return _LineSearch(lambda atol: optax.scale_by_zoom_linesearch(
            max_linesearch_steps=max_steps, initial_guess_strategy="one", tol=atol))
    raise ValueError(f"line_search must be 'armijo', 'wolfe' or None, got {kind!r}")


def _search(line_search: _LineSearch | None, ls_state: Any, direction: PyTree,
            params: PyTree, value: jax.Array, grads: PyTree, value_fn: ValueFn) -> tuple[PyTree, Any]:
    """Scale the descent ``direction`` by the line search (step 1 first); identity when None.

    The sufficient-decrease test is relaxed by the rounding level of ``f`` (``8 ε |f(x)|``):
    near a minimizer the Newton step changes ``f`` by less than one ulp, and an exact test
    would reject it and backtrack to nothing."""
    if line_search is None:
        return direction, ls_state
    if hasattr(ls_state, "learning_rate"):
        ls_state = ls_state._replace(learning_rate=jnp.ones_like(ls_state.learning_rate))
    rounding = 8 * jnp.finfo(jnp.result_type(value)).eps * jnp.abs(value)
    return line_search.make(rounding).update(direction, ls_state, params, value=value, grad=grads,
                                             value_fn=value_fn)


def _value(value_fn: ValueFn, params: PyTree, value: jax.Array | None) -> jax.Array:
    return value_fn(params) if value is None else value


def _ls_init(line_search: _LineSearch | None, params: PyTree) -> Any:
    return line_search.init(params) if line_search is not None else optax.EmptyState()


# ----------------------------------------------------------------------------- Newton


class NewtonState(NamedTuple):
    """``count``; ``shift``: the Levenberg damping ``λ`` used at the last step; ``line_search``:
    optax's line-search state (value and gradient at the new point)."""

    count: jax.Array
    shift: jax.Array
    line_search: Any


def levenberg_direction(hessian: jax.Array, grad: jax.Array, damping: Any = 0.0,
                        min_curvature: Any = 1e-8) -> tuple[jax.Array, jax.Array]:
    """``p = -(H + λ I)⁻¹ g`` with ``λ = damping + max(0, δ - λ_min(H))``, ``δ = min_curvature ·
    max(1, |λ|_max)``, by one symmetric eigendecomposition ``H = Q Λ Qᵀ``; so ``H + λ I``
    is positive definite and ``p`` a descent direction even where ``H`` is singular or
    indefinite.  Returns ``(p, λ)``."""
    h = 0.5 * (hessian + hessian.T)
    eigenvalues, vectors = jnp.linalg.eigh(h)
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(eigenvalues)))
    shift = damping + jnp.maximum(0.0, min_curvature * scale - eigenvalues[0])
    direction = -vectors @ ((vectors.T @ grad) / (eigenvalues + shift))
    return direction, shift


def newton(
    damping: Any = 0.0,
    *,
    min_curvature: Any = 1e-8,
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
    """
    check_nonnegative("newton", "damping", damping)
    check_nonnegative("newton", "min_curvature", min_curvature)
    search = _line_search(line_search, max_line_search_steps)

    def init(params: PyTree) -> NewtonState:
        check_finite_start("newton", params)
        size = optax.tree.size(params)
        if size > max_params:
            raise ValueError(f"newton: {size} parameters exceed max_params={max_params}; the dense "
                             "Hessian would not fit — use newton_cg or hessian_free")
        return NewtonState(jnp.zeros([], jnp.int32), jnp.zeros([], _dtype(params)), _ls_init(search, params))

    def update(grads: PyTree, state: NewtonState, params: PyTree = None, *,
               value_fn: ValueFn | None = None, value: jax.Array | None = None, **extra: Any
               ) -> tuple[PyTree, NewtonState]:
        f = _require_value_fn("newton", grads, params, value_fn)
        flat, unravel = ravel_pytree(params)
        flat_grad = ravel_pytree(grads)[0]
        hessian = jax.hessian(lambda z: f(unravel(z)))(flat)
        direction, shift = levenberg_direction(hessian, flat_grad.astype(flat.dtype), damping, min_curvature)
        updates, ls_state = _search(search, state.line_search, unravel(direction), params,
                                    _value(f, params, value), grads, f)
        return updates, NewtonState(state.count + 1, shift.astype(state.shift.dtype), ls_state)

    return optax.GradientTransformationExtraArgs(init, update)


# ----------------------------------------------------------------------------- Newton-CG


class NewtonCGState(NamedTuple):
    """``count``; ``hvp_count``: Hessian-vector products so far; ``cg_iterations`` and
    ``negative_curvature`` of the last inner solve; ``line_search``: optax's state."""

    count: jax.Array
    hvp_count: jax.Array
    cg_iterations: jax.Array
    negative_curvature: jax.Array
    line_search: Any


def forcing_tolerance(grad_norm: jax.Array) -> jax.Array:
    """The relative CG tolerance ``η = min(0.5, √||g||)`` (Nocedal & Wright eq. 7.3, as scipy):
    superlinear convergence near the minimum, cheap inexact steps far from it."""
    return jnp.minimum(0.5, jnp.sqrt(grad_norm))


def newton_cg(
    *,
    line_search: LineSearch = "armijo",
    cg_maxiter: int | None = None,
    forcing_norm: int = 2,
    max_line_search_steps: int = 30,
) -> optax.GradientTransformationExtraArgs:
    """Truncated Newton (line-search Newton-CG, Nocedal & Wright Algorithm 7.1)::

        solve  ∇²f(x) p = -g  by CG on HVPs until  ||r|| <= min(0.5, √||g||) ||g||
        x ← x + α p,   α by Armijo backtracking from 1 (default) or a strong-Wolfe search

    The Hessian is linearized once per step (``gradkit.hvp_operator``); each CG iteration
    is one HVP.  Negative curvature met at the first CG iteration falls back to steepest
    descent scaled like scipy, ``p = -(||g||² / |gᵀHg|) g``; met later, CG keeps the last
    iterate (a descent direction).  ``forcing_norm=1`` measures ``||g||`` and ``||r||`` in
    the L1 norm exactly as ``scipy.optimize.minimize(method="Newton-CG")`` does.
    ``cg_maxiter`` defaults to ``20 n`` (scipy's).
    """
    if forcing_norm not in (1, 2):
        raise ValueError(f"newton_cg: forcing_norm must be 1 or 2, got {forcing_norm!r}")
    search = _line_search(line_search, max_line_search_steps)

    def init(params: PyTree) -> NewtonCGState:
        check_finite_start("newton_cg", params)
        zero = jnp.zeros([], jnp.int32)
        return NewtonCGState(zero, zero, zero, jnp.asarray(False), _ls_init(search, params))

    def update(grads: PyTree, state: NewtonCGState, params: PyTree = None, *,
               value_fn: ValueFn | None = None, value: jax.Array | None = None, **extra: Any
               ) -> tuple[PyTree, NewtonCGState]:
        f = _require_value_fn("newton_cg", grads, params, value_fn)
        maxiter = 20 * optax.tree.size(params) if cg_maxiter is None else cg_maxiter
        grad_norm = optax.tree.norm(grads, ord=forcing_norm)
        neg_grad = optax.tree.scale(-1.0, grads)
        hvp = hvp_operator(f, params)
        info = cg(hvp, neg_grad, tol=forcing_tolerance(grad_norm), maxiter=maxiter, norm_ord=forcing_norm)
        direction = info.x
        steepest = info.negative_curvature & (info.iterations == 0)
        g_sq = optax.tree.vdot(grads, grads)
        scale = jnp.where(info.curvature < 0, g_sq / jnp.where(info.curvature < 0, -info.curvature, 1), 1.0)
        direction = optax.tree.where(steepest, optax.tree.scale(scale, neg_grad), direction)
        direction = optax.tree.cast_like(direction, params)
        updates, ls_state = _search(search, state.line_search, direction, params, _value(f, params, value), grads, f)
        new_state = NewtonCGState(state.count + 1, state.hvp_count + info.matvecs.astype(jnp.int32),
                                  info.iterations.astype(jnp.int32), info.negative_curvature, ls_state)
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init, update)


class TrustRegionState(NamedTuple):
    """``count``; ``radius``: the trust radius Δ; ``hvp_count``; ``ratio``: the last
    actual/predicted reduction ρ; ``value`` and ``grad`` at the current point (for reuse)."""

    count: jax.Array
    radius: jax.Array
    hvp_count: jax.Array
    ratio: jax.Array
    value: jax.Array
    grad: PyTree


def newton_cg_trust_region(
    initial_radius: float = 1.0,
    max_radius: float = 1000.0,
    eta: float = 0.15,
    *,
    cg_maxiter: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Trust-region Newton-CG (Steihaug-Toint; scipy's ``trust-ncg``)::

        p = argmin_{||p|| <= Δ} gᵀp + ½ pᵀ H p    (gradkit.linalg.steihaug_cg, tol min(0.5, √||g||))
        ρ = (f(x) - f(x + p)) / (-m(p))
        Δ ← Δ/4 if ρ < ¼;  Δ ← min(2Δ, Δ_max) if ρ > ¾ and ||p|| = Δ
        x ← x + p if ρ > η, else stay

    Handles indefinite Hessians by construction (a negative-curvature direction is
    followed to the boundary).  A rejected step returns zero updates.
    """
    if not 0 <= eta < 0.25:
        raise ValueError(f"newton_cg_trust_region: eta must be in [0, 0.25), got {eta}")
    check_positive("newton_cg_trust_region", "initial_radius", initial_radius)
    if not initial_radius < max_radius:
        raise ValueError("newton_cg_trust_region: initial_radius must be < max_radius")

    def init(params: PyTree) -> TrustRegionState:
        check_finite_start("newton_cg_trust_region", params)
        dtype = _dtype(params)
        zero = jnp.zeros([], jnp.int32)
        return TrustRegionState(zero, jnp.asarray(initial_radius, dtype), zero, jnp.zeros([], dtype),
                                jnp.asarray(jnp.inf, dtype), optax.tree.zeros_like(params))

    def update(grads: PyTree, state: TrustRegionState, params: PyTree = None, *,
               value_fn: ValueFn | None = None, value: jax.Array | None = None, **extra: Any
               ) -> tuple[PyTree, TrustRegionState]:
        f = _require_value_fn("newton_cg_trust_region", grads, params, value_fn)
        value = _value(f, params, value)
        grad_norm = optax.tree.norm(grads)
        info = steihaug_cg(hvp_operator(f, params), grads, state.radius,
                           tol=forcing_tolerance(grad_norm), maxiter=cg_maxiter)
        step, model = info.x, info.model
        step = optax.tree.cast_like(step, params)
        new_value, new_grad = jax.value_and_grad(f)(optax.tree.add(params, step))
        predicted = -model
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
            jnp.where(accept, new_value, value).astype(state.value.dtype),
            optax.tree.where(accept, new_grad, grads))
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init, update)


# ----------------------------------------------------------------------------- Hessian-free


class HessianFreeState(NamedTuple):
    """``count``; ``damping``: the current λ; ``previous_solution``: the last CG solution
    (warm start); ``hvp_count``: curvature products so far; ``cg_iterations`` and
    ``ratio`` (ρ) of the last step."""

    count: jax.Array
    damping: jax.Array
    previous_solution: PyTree
    hvp_count: jax.Array
    cg_iterations: jax.Array
    ratio: jax.Array


def _snapshot_iterations(maxiter: int, base: float = 1.3) -> np.ndarray:
    """Martens' CG-iterate backtracking keeps the iterates ``⌈base^j⌉`` (1, 2, 3, 4, 5, 7, 9, ...)."""
    its, j = [], 0
    while math.ceil(base**j) <= maxiter:
        its.append(math.ceil(base**j))
        j += 1
    return np.unique(np.asarray(its, dtype=np.int32))


def martens_cg(
    matvec: Callable[[PyTree], PyTree],
    b: PyTree,
    x0: PyTree,
    *,
    maxiter: int = 250,
    min_iterations: int = 10,
    progress_tol: float = 5e-4,
) -> tuple[PyTree, PyTree, jax.Array, jax.Array, jax.Array]:
    """CG on ``B x = b`` as in Martens 2010 §4.2-4.6: warm start ``x0``, stop on relative
    progress of the quadratic ``φ(x) = ½xᵀBx - bᵀx`` (tracked as ``-½ xᵀ(b + r)``)::

        i > k,  φ(xᵢ) < 0,  (φ(xᵢ) - φ(xᵢ₋ₖ)) / φ(xᵢ) < k ε,   k = max(min_iterations, ⌈0.1 i⌉)

    and keep the iterates at ``⌈1.3^j⌉`` for backtracking.  Returns ``(x, snapshots,
    snapshot_count, iterations, matvecs)``; ``snapshots`` stacks the kept iterates on a
    leading axis (the last kept slot is overwritten by the final ``x``).  Stops on
    non-positive curvature (possible with a Hessian, not with a damped GGN).
    """
    schedule = _snapshot_iterations(maxiter)
    slots = len(schedule) + 1
    slot_of = np.full(maxiter + 1, -1, dtype=np.int32)
    slot_of[schedule] = np.arange(len(schedule), dtype=np.int32)
    slot_of = jnp.asarray(slot_of)
    dtype = _dtype(b)
    r = optax.tree.sub(b, matvec(x0))
    phi = lambda x, r: -0.5 * optax.tree.vdot(x, optax.tree.add(b, r)).astype(dtype)
    history = jnp.zeros(maxiter + 1, dtype).at[0].set(phi(x0, r))
    snaps = jax.tree.map(lambda leaf: jnp.zeros((slots,) + leaf.shape, leaf.dtype), x0)
    rr = optax.tree.vdot(r, r).astype(dtype)
    state = (jnp.asarray(0), x0, r, r, rr, history, snaps, jnp.asarray(0), jnp.asarray(False))

    def keep_going(state: tuple) -> jax.Array:
        i, _, _, _, rr, history, _, _, stop = state
        return (i < maxiter) & ~stop & (rr > 0)

    def step(state: tuple) -> tuple:
        i, x, r, p, rr, history, snaps, count, _ = state
        bp = matvec(p)
        curvature = optax.tree.vdot(p, bp).astype(dtype)
        negative = ~(curvature > 0)
        alpha = jnp.where(negative, 0, rr / jnp.where(negative, 1, curvature))
        x = optax.tree.add_scale(x, alpha, p)
        r = optax.tree.add_scale(r, -alpha, bp)
        rr_new = optax.tree.vdot(r, r).astype(dtype)
        p = optax.tree.add_scale(r, rr_new / jnp.where(rr > 0, rr, 1), p)
        i = i + jnp.where(negative, 0, 1)
        value = phi(x, r)
        history = history.at[i].set(value)
        k = jnp.maximum(min_iterations, jnp.ceil(0.1 * i).astype(i.dtype))
        earlier = history[jnp.maximum(i - k, 0)]
        stalled = (i > k) & (value < 0) & ((value - earlier) / value < k * progress_tol)
        slot = slot_of[i]
        snaps = jax.tree.map(lambda s, leaf: jnp.where(slot >= 0, s.at[jnp.maximum(slot, 0)].set(leaf), s),
                             snaps, x)
        count = jnp.where(slot >= 0, slot + 1, count)
        return (i, x, r, p, rr_new, history, snaps, count, stalled | negative)

    i, x, _, _, _, _, snaps, count, stopped = jax.lax.while_loop(keep_going, step, state)
    # the final iterate always goes last (it may already be the last snapshot)
    final_slot = jnp.where((count > 0) & (jnp.asarray(schedule)[jnp.maximum(count - 1, 0)] == i), count - 1, count)
    snaps = jax.tree.map(lambda s, leaf: s.at[final_slot].set(leaf), snaps, x)
    matvecs = 1 + i + jnp.where(stopped & (i < maxiter), 1, 0)  # r₀, the steps, a rejected direction
    return x, snaps, final_slot + 1, i, matvecs


def hessian_free(
    initial_damping: float = 1.0,
    *,
    curvature: Literal["ggn", "hessian"] = "ggn",
    cg_maxiter: int = 250,
    warm_start_decay: float = 0.95,
    line_search: bool = True,
    boost: float = 1.5,
    drop: float = 2.0 / 3.0,
) -> optax.GradientTransformationExtraArgs:
    """Hessian-free optimization (Martens 2010; line search of Martens & Sutskever 2012)::

        B = G + λ I      (G: Gauss-Newton Jᵀ H_L J, or the Hessian)
        p = CG(B p = -g, start ζ p_prev)        (martens_cg: progress stop, kept iterates)
        p ← the kept iterate before which f stops decreasing (CG-iterate backtracking)
        ρ = (f(x + p) - f(x)) / (gᵀp + ½ pᵀ G p)
        λ ← λ·boost if ρ < ¼;  λ ← λ·drop if ρ > ¾
        x ← x + α p,   α: backtracking 1, 0.8, 0.8², ... until f(x+αp) <= f(x) + 10⁻² α gᵀp

    ``update(grads, state, params, *, value_fn, model_fn=None, loss_fn=None)``; with
    ``curvature="ggn"`` give ``model_fn(params) -> outputs`` and ``loss_fn(outputs) -> scalar``
    (so that ``value_fn = loss_fn ∘ model_fn``; ``value_fn`` may then be omitted).  All three
    may close over a mini-batch: the warm start and λ carry across batches.  A step whose
    model predicts no decrease (``gᵀp + ½pᵀGp >= 0``, possible with the indefinite Hessian)
    is rejected: zero update, ``ρ = -inf``, λ grows.
    """
    if curvature not in ("ggn", "hessian"):
        raise ValueError(f"hessian_free: curvature must be 'ggn' or 'hessian', got {curvature!r}")
    check_positive("hessian_free", "initial_damping", initial_damping)
    if not 0 <= warm_start_decay <= 1:
        raise ValueError(f"hessian_free: warm_start_decay must be in [0, 1], got {warm_start_decay}")
    if cg_maxiter < 1:
        raise ValueError(f"hessian_free: cg_maxiter must be >= 1, got {cg_maxiter}")
    search = _line_search("armijo", 60, armijo_c=1e-2, decrease=0.8) if line_search else None

    def init(params: PyTree) -> HessianFreeState:
        check_finite_start("hessian_free", params)
        dtype = _dtype(params)
        zero = jnp.zeros([], jnp.int32)
        return HessianFreeState(zero, jnp.asarray(initial_damping, dtype), optax.tree.zeros_like(params),
                                zero, zero, jnp.zeros([], dtype))

    def update(grads: PyTree, state: HessianFreeState, params: PyTree = None, *,
               value_fn: ValueFn | None = None, model_fn: Callable[[PyTree], Any] | None = None,
               loss_fn: Callable[[Any], jax.Array] | None = None, value: jax.Array | None = None,
               **extra: Any) -> tuple[PyTree, HessianFreeState]:
        if curvature == "ggn":
            if model_fn is None or loss_fn is None:
                raise ValueError("hessian_free(curvature='ggn').update needs model_fn and loss_fn keywords "
                                 "(value_fn = loss_fn(model_fn(params)))")
            if value_fn is None:
                value_fn = lambda p: loss_fn(model_fn(p))
            curvature_product = lambda v: ggn_vp(model_fn, loss_fn, params, v)
        f = _require_value_fn("hessian_free", grads, params, value_fn)
        if curvature == "hessian":
            curvature_product = hvp_operator(f, params)
        value = _value(f, params, value)
        damping = state.damping

        def damped(v: PyTree) -> PyTree:
            return optax.tree.add_scale(curvature_product(v), damping, v)

        start = optax.tree.scale(warm_start_decay, state.previous_solution)
        solution, snaps, count, iterations, matvecs = martens_cg(
            damped, optax.tree.scale(-1.0, grads), start, maxiter=cg_maxiter)
        solution = optax.tree.cast_like(solution, params)

        # CG-iterate backtracking: walk back from the last kept iterate while f keeps decreasing
        at = lambda j: jax.tree.map(lambda s: s[j], snaps)
        f_at = lambda j: f(optax.tree.add(params, at(j)))
        last = count - 1

        def earlier_is_better(carry: tuple) -> jax.Array:
            j, best_value = carry
            return (j > 0) & (f_at(j - 1) < best_value)

        def walk_back(carry: tuple) -> tuple:
            j, _ = carry
            return j - 1, f_at(j - 1)

        chosen, chosen_value = jax.lax.while_loop(earlier_is_better, walk_back, (last, f_at(last)))
        step = optax.tree.cast_like(at(chosen), params)

        slope = optax.tree.vdot(grads, step)
        model = slope + 0.5 * optax.tree.vdot(step, curvature_product(step))
        ratio = jnp.where(model < 0, (chosen_value - value) / jnp.where(model < 0, model, -1), -jnp.inf)
        ratio = jnp.where(jnp.isfinite(chosen_value), ratio, -jnp.inf)
        new_damping = jnp.where(ratio < 0.25, damping * boost, jnp.where(ratio > 0.75, damping * drop, damping))
        updates, _ = _search(search, _ls_init(search, params), step, params, value, grads, f)
        # no predicted decrease (possible with an indefinite Hessian): reject, λ grows
        updates = optax.tree.where(model < 0, updates, optax.tree.zeros_like(updates))
        new_state = HessianFreeState(
            state.count + 1, new_damping.astype(state.damping.dtype), solution,
            state.hvp_count + (matvecs + 1).astype(jnp.int32), iterations.astype(jnp.int32),
            ratio.astype(state.ratio.dtype))
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init, update)


# ----------------------------------------------------------------------------- drivers


class RootResult(NamedTuple):
    """``root``; ``iterations``; ``residual``: ``||F(root)||``; ``converged``."""

    root: jax.Array
    iterations: jax.Array
    residual: jax.Array
    converged: jax.Array


def newton_root(fn: Callable[[jax.Array], jax.Array], x0: Any, *, tol: float = 1e-12,
                maxiter: int = 100) -> RootResult:
    """Newton's method for ``F(x) = 0`` (scalar or vector ``x``)::

        x ← x - J_F(x)⁻¹ F(x)        (scalar: x ← x - f(x)/f'(x), the seed-000 iteration)

    with ``J_F`` by ``jax.jacfwd``; stops when ``|Δx| <= tol (1 + |x|)`` or ``F(x) = 0``.
    A singular Jacobian stops the iteration (reported as not converged), never NaN.
    """
    x0 = jnp.asarray(x0, dtype=jnp.result_type(float))
    check_finite_start("newton_root", x0)
    scalar = x0.ndim == 0
    x0v = jnp.atleast_1d(x0)
    residual_fn = lambda x: jnp.atleast_1d(fn(x[0] if scalar else x))
    if residual_fn(x0v).shape != x0v.shape:
        raise ValueError(f"newton_root: F must map R^n to R^n; x0 has shape {x0.shape}, "
                         f"F(x0) has shape {jnp.shape(fn(x0))}")

    def keep_going(state: tuple) -> jax.Array:
        i, _, _, done = state
        return (i < maxiter) & ~done

    def step(state: tuple) -> tuple:
        i, x, _, _ = state
        residual = residual_fn(x)
        jac = jax.jacfwd(residual_fn)(x)
        delta = jnp.linalg.solve(jac, residual)
        ok = jnp.all(jnp.isfinite(delta))
        new_x = jnp.where(ok, x - delta, x)
        small = jnp.linalg.norm(delta) <= tol * (1 + jnp.linalg.norm(x))
        return i + 1, new_x, residual, ~ok | small | jnp.all(residual == 0)

    i, x, _, _ = jax.lax.while_loop(keep_going, step, (jnp.asarray(0), x0v, x0v, jnp.asarray(False)))
    residual = jnp.linalg.norm(residual_fn(x))
    root = x[0] if scalar else x
    scale = jnp.maximum(1.0, jnp.abs(residual_fn(x0v)).max())
    return RootResult(root, i, residual, residual <= 1e3 * jnp.finfo(x.dtype).eps * scale)


class MinimizeResult(NamedTuple):
    """``params``; ``value`` and ``grad_norm`` there; ``iterations``; ``converged``
    (``||∇f|| <= gtol``); ``state``: the optimizer's final state (HVP counts etc.)."""

    params: PyTree
    value: jax.Array
    grad_norm: jax.Array
    iterations: jax.Array
    converged: jax.Array
    state: Any


def _stores_value_and_grad(state: Any) -> bool:
    found = lambda name: [v for _, v in optax.tree.get_all_with_path(state, name) if v is not None]
    return len(found("value")) == 1 and len(found("grad")) == 1


def minimize(
    value_fn: ValueFn,
    params: PyTree,
    optimizer: optax.GradientTransformation,
    *,
    gtol: float = 1e-5,
    maxiter: int = 1000,
) -> MinimizeResult:
    """Run ``optimizer`` on ``value_fn`` from ``params`` until ``||∇f|| <= gtol`` or
    ``maxiter`` steps, in one ``lax.while_loop`` (call it under ``jax.jit`` to compile once)::

        g = ∇f(x);  u, s = optimizer.update(g, s, x, value_fn=f, value=f(x));  x ← x + u

    Works with gradkit's second-order optimizers and with any optax/gradkit first-order one
    (the extra keywords are dropped for those).  When the state carries the value and
    gradient at the new point (line searches, trust region) they are reused.
    """
    check_finite_start("minimize", params)
    f = scalar_fn(value_fn, "minimize value_fn")
    opt = optax.with_extra_args_support(optimizer)
    state0 = opt.init(params)
    reuse = _stores_value_and_grad(state0)
    value_and_grad = optax.value_and_grad_from_state(f) if reuse else None

    def evaluate(x: PyTree, state: Any) -> tuple[jax.Array, PyTree]:
        return value_and_grad(x, state=state) if reuse else jax.value_and_grad(f)(x)

    def keep_going(carry: tuple) -> jax.Array:
        i, _, _, value, grad = carry
        return (i < maxiter) & (optax.tree.norm(grad) > gtol) & jnp.isfinite(value)

    def step(carry: tuple) -> tuple:
        i, x, state, value, grad = carry
        updates, state = opt.update(grad, state, x, value_fn=f, value=value, grad=grad)
        x = optax.apply_updates(x, updates)
        value, grad = evaluate(x, state)
        return i + 1, x, state, value, grad

    value0, grad0 = jax.value_and_grad(f)(params)
    i, x, state, value, grad = jax.lax.while_loop(keep_going, step, (jnp.asarray(0), params, state0, value0, grad0))
    grad_norm = optax.tree.norm(grad)
    return MinimizeResult(x, value, grad_norm, i, grad_norm <= gtol, state)

"""Hessian-free optimization (Martens 2010; line search of Martens & Sutskever 2012) and its
conjugate gradient with progress-based stopping and kept iterates (:func:`martens_cg`)."""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit.derivatives import ggn_vp, hvp_operator
from gradkit.linalg.cg import _safe_div
from gradkit.optim._common import PyTree
from gradkit.optim._line_search import init_line_search, make_line_search, search
from gradkit.optim._second_order import (
    CurvatureBuilder,
    Matvec,
    ValueFn,
    cast_back,
    check_count,
    check_positive_finite,
    check_start,
    compute_params,
    curvature_matvec,
    prepare,
)
from gradkit.results import Code, Result, make_result, maybe_throw, select_code, tree_all_finite


class HessianFreeState(NamedTuple):
    """``count``; ``damping``: the current λ; ``previous_solution``: the last CG solution
    (warm start); ``hvp_count``: curvature products so far; ``value_count``: values of ``f`` so
    far (the CG-iterate walk-back's and the Armijo search's); ``cg_iterations``, ``cg_code``
    (a ``gradkit.results.Code``), ``negative_curvature`` and ``ratio`` (ρ) of the last step."""

    count: jax.Array
    damping: jax.Array
    previous_solution: PyTree
    hvp_count: jax.Array
    value_count: jax.Array
    cg_iterations: jax.Array
    cg_code: jax.Array
    negative_curvature: jax.Array
    ratio: jax.Array


def _snapshot_iterations(maxiter: int, base: float = 1.3) -> np.ndarray:
    """Martens' CG-iterate backtracking keeps the iterates ``⌈base^j⌉`` (1, 2, 3, 4, 5, 7, 9, ...)."""
    its, j = [], 0
    while math.ceil(base**j) <= maxiter:
        its.append(math.ceil(base**j))
        j += 1
    return np.unique(np.asarray(its, dtype=np.int32))


def martens_cg(
    matvec: Matvec,
    b: PyTree,
    x0: PyTree,
    *,
    maxiter: int = 250,
    min_iterations: int = 10,
    progress_tol: float = 5e-4,
    throw: bool = False,
) -> Result:
    """CG on ``B x = b`` as in Martens 2010 §4.2-4.6: warm start ``x0``, stop on relative
    progress of the quadratic ``φ(x) = ½xᵀBx - bᵀx`` (tracked as ``-½ xᵀ(b + r)``)::

        i > k,  φ(xᵢ) < 0,  (φ(xᵢ) - φ(xᵢ₋ₖ)) / φ(xᵢ) < k ε,   k = max(min_iterations, ⌈0.1 i⌉)

    and keep the iterates at ``⌈1.3^j⌉`` for backtracking.

    **Non-positive curvature** ``<p, B p> <= 0`` (possible with a Hessian, not with a damped
    GGN) stops CG as in Steihaug's method: after at least one step the last iterate is kept;
    at the first step there is none, and the solution is the direction itself, oriented for
    descent (``<d, b> >= 0``, i.e. ``gᵀd <= 0`` for ``b = -g``) and scaled as scipy's Newton-CG
    scales steepest descent: ``x = (|<p, b>| / |<p, B p>|) d`` (``|<p, b>| / <p, p>`` when the
    curvature is exactly 0).

    Returns a :class:`gradkit.results.Result`: ``solution`` the final ``x``; ``code``
    ``CONVERGED`` (progress stop or zero residual), ``NEGATIVE_CURVATURE``, ``MAX_STEPS`` or
    ``NONFINITE``; ``iterations``; stats ``snapshots`` (the kept iterates stacked on a leading
    axis, the final ``x`` in the last used slot), ``snapshot_count``, ``matvecs``,
    ``negative_curvature``, ``curvature`` (the last ``<p, B p>``).
    """
    check_count("martens_cg", "maxiter", maxiter, 1)
    check_count("martens_cg", "min_iterations", min_iterations, 1)
    check_positive_finite("martens_cg", "progress_tol", progress_tol)
    schedule = _snapshot_iterations(maxiter)
    slots = len(schedule) + 1
    slot_of = np.full(maxiter + 1, -1, dtype=np.int32)
    slot_of[schedule] = np.arange(len(schedule), dtype=np.int32)
    slot_of = jnp.asarray(slot_of)
    dtype = optax.tree.dtype(b, "promote")
    r = optax.tree.sub(b, matvec(x0))
    phi = lambda x, r: -0.5 * optax.tree.vdot(x, optax.tree.add(b, r)).astype(dtype)
    history = jnp.zeros(maxiter + 1, dtype).at[0].set(phi(x0, r))
    snaps = jax.tree.map(lambda leaf: jnp.zeros((slots,) + leaf.shape, leaf.dtype), x0)
    rr = optax.tree.vdot(r, r).astype(dtype)
    false, zero = jnp.asarray(False), jnp.zeros([], dtype)
    # carry: i, x, r, p, <r, r>, φ history, snapshots, kept count, stop, negative, curvature
    state = (jnp.asarray(0), x0, r, r, rr, history, snaps, jnp.asarray(0), false, false, zero)

    def keep_going(state: tuple) -> jax.Array:
        i, rr, stop = state[0], state[4], state[8]
        return (i < maxiter) & ~stop & (rr > 0)

    def step(state: tuple) -> tuple:
        i, x, r, p, rr, history, snaps, count, _, _, _ = state
        bp = matvec(p)
        curvature = optax.tree.vdot(p, bp).astype(dtype)
        negative = ~(curvature > 0)  # NaN too
        alpha = jnp.where(negative, 0, rr / jnp.where(negative, 1, curvature))
        x_new = optax.tree.add_scale(x, alpha, p)
        r_new = optax.tree.add_scale(r, -alpha, bp)
        rr_new = optax.tree.vdot(r_new, r_new).astype(dtype)
        p_new = optax.tree.add_scale(r_new, rr_new / jnp.where(rr > 0, rr, 1), p)
        keep = lambda old, new: optax.tree.where(negative, old, new)
        x, r, p = keep(x, x_new), keep(r, r_new), keep(p, p_new)
        rr = jnp.where(negative, rr, rr_new)
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
        return (i, x, r, p, rr, history, snaps, count, stalled | negative, negative, curvature)

    i, x, _, p, rr, _, snaps, count, stopped, negative, curvature = jax.lax.while_loop(keep_going, step, state)
    # negative curvature before any step: follow that direction, oriented and scaled for descent
    pb = optax.tree.vdot(p, b).astype(dtype)
    denominator = jnp.where(curvature != 0, jnp.abs(curvature), optax.tree.vdot(p, p).astype(dtype))
    length = _safe_div(jnp.abs(pb), denominator) * jnp.where(pb >= 0, 1, -1)
    first = negative & (i == 0)
    x = optax.tree.where(first, optax.tree.scale(length, p), x)
    # the final iterate always goes last (it may already be the last snapshot)
    final_slot = jnp.where((count > 0) & (jnp.asarray(schedule)[jnp.maximum(count - 1, 0)] == i), count - 1, count)
    snaps = jax.tree.map(lambda s, leaf: s.at[final_slot].set(leaf), snaps, x)
    matvecs = 1 + i + negative.astype(i.dtype)  # r₀, the steps, a rejected (non-positive) direction
    finite = jnp.isfinite(rr) & tree_all_finite(x)
    code = select_code((~finite, Code.NONFINITE), (negative, Code.NEGATIVE_CURVATURE),
                       (stopped | (rr == 0), Code.CONVERGED), default=Code.MAX_STEPS)
    result = make_result(x, code, i, snapshots=snaps, snapshot_count=final_slot + 1, matvecs=matvecs,
                         negative_curvature=negative, curvature=curvature)
    return maybe_throw(result, throw, "martens_cg")


def curvature_product(kind: Literal["ggn", "hessian"], f: ValueFn, params: PyTree,
                      model_fn: Callable[[PyTree], Any] | None, loss_fn: Callable[[Any], jax.Array] | None
                      ) -> Matvec:
    """The curvature of :func:`hessian_free`: ``v ↦ G v`` (Gauss-Newton ``Jᵀ H_L J v`` by
    ``gradkit.ggn_vp``) or ``v ↦ ∇²f(x) v`` (``gradkit.hvp_operator``)."""
    if kind == "ggn":
        return lambda v: ggn_vp(model_fn, loss_fn, params, v)
    return hvp_operator(f, params)


def hessian_free(
    initial_damping: float = 1.0,
    *,
    curvature: Literal["ggn", "hessian"] | CurvatureBuilder = "ggn",
    cg_maxiter: int = 250,
    warm_start_decay: float = 0.95,
    line_search: bool = True,
    boost: float = 1.5,
    drop: float = 2.0 / 3.0,
) -> optax.GradientTransformationExtraArgs:
    """Hessian-free optimization (Martens 2010; line search of Martens & Sutskever 2012)::

        B = G + λ I      (G: Gauss-Newton Jᵀ H_L J, the Hessian, or a given curvature operator)
        p = CG(B p = -g, start ζ p_prev)        (martens_cg: progress stop, kept iterates)
        p ← the kept iterate before which f stops decreasing (CG-iterate backtracking)
        ρ = (f(x + p) - f(x)) / (gᵀp + ½ pᵀ G p)
        λ ← λ·boost if ρ < ¼ or CG met non-positive curvature;  λ ← λ·drop if ρ > ¾
        x ← x + α p,   α: backtracking 1, 0.8, 0.8², ... until f(x+αp) <= f(x) + 10⁻² α gᵀp

    ``update(grads, state, params, *, value_fn, model_fn=None, loss_fn=None)``; with
    ``curvature="ggn"`` give ``model_fn(params) -> outputs`` and ``loss_fn(outputs) -> scalar``
    (so that ``value_fn = loss_fn ∘ model_fn``; ``value_fn`` may then be omitted).  All three
    may close over a mini-batch: the warm start and λ carry across batches.

    ``G`` may instead come from an operator (see ``gradkit.optim._second_order``):
    ``curvature=builder`` with ``builder(params)`` a ``gradkit.curvature.CurvatureOperator``
    (e.g. ``lambda p: gradkit.curvature.ggn(model_fn, loss, p, batch)``, Martens' choice; a
    ``fisher`` or ``empirical_fisher``) or any linear map ``v -> G v``, or the keyword
    ``update(..., curvature_operator=op)`` with ``op`` built at the current params (it wins
    over ``curvature``).  Either way only ``value_fn`` is needed; λ is added on top of any
    damping the operator already has.

    With ``curvature="hessian"`` the damped Hessian may be indefinite: CG stops at the first
    direction of non-positive curvature (keeping its last iterate, or following that
    direction oriented downhill when it is the first; see :func:`martens_cg`) and λ grows.
    A step whose model still predicts no decrease (``gᵀp + ½pᵀGp >= 0``) is rejected: zero
    update, ``ρ = -inf``, λ grows.  The state reports the inner solve (``cg_code``,
    ``cg_iterations``, ``negative_curvature``).  ``initial_damping > 0`` (finite), ``boost > 1``,
    ``0 < drop < 1``, ``0 <= warm_start_decay <= 1``, ``cg_maxiter >= 1``.
    """
    name = "hessian_free"
    if isinstance(curvature, str) and curvature not in ("ggn", "hessian"):
        raise ValueError(f"{name}: curvature must be 'ggn', 'hessian' or a callable params -> operator, "
                         f"got {curvature!r}")
    if not isinstance(curvature, str) and not callable(curvature):
        raise TypeError(f"{name}: curvature must be 'ggn', 'hessian' or a callable params -> operator, "
                        f"got {type(curvature).__name__}")
    builder = None if isinstance(curvature, str) else curvature
    check_positive_finite(name, "initial_damping", initial_damping)
    if not 0 <= warm_start_decay <= 1:
        raise ValueError(f"{name}: warm_start_decay must be in [0, 1], got {warm_start_decay}")
    if not (math.isfinite(boost) and boost > 1):
        raise ValueError(f"{name}: boost must be a finite number > 1, got {boost}")
    if not 0 < drop < 1:
        raise ValueError(f"{name}: drop must be in (0, 1), got {drop}")
    check_count(name, "cg_maxiter", cg_maxiter, 1)
    ls = make_line_search(name, "armijo", 60, armijo_c=1e-2, decrease=0.8) if line_search else None

    def init(params: PyTree) -> HessianFreeState:
        check_start(name, params)
        params_c = compute_params(params)
        dtype = optax.tree.dtype(params_c, "promote")
        zero = jnp.zeros([], jnp.int32)
        return HessianFreeState(zero, jnp.asarray(initial_damping, dtype), optax.tree.zeros_like(params_c),
                                zero, zero, zero, zero, jnp.asarray(False), jnp.zeros([], dtype))

    def update(grads: PyTree, state: HessianFreeState, params: PyTree = None, *,
               value_fn: ValueFn | None = None, model_fn: Callable[[PyTree], Any] | None = None,
               loss_fn: Callable[[Any], jax.Array] | None = None, value: jax.Array | None = None,
               curvature_operator: Any = None, **extra: Any) -> tuple[PyTree, HessianFreeState]:
        if builder is None and curvature == "ggn" and curvature_operator is None and (model_fn is None or loss_fn is None):
            raise ValueError("hessian_free(curvature='ggn').update needs model_fn and loss_fn keywords "
                             "(value_fn = loss_fn(model_fn(params))), or a curvature_operator")
        if value_fn is None and model_fn is not None and loss_fn is not None:
            value_fn = lambda p: loss_fn(model_fn(p))
        f, x, g, value = prepare(name, grads, params, value_fn, value)
        product = curvature_matvec(name, x, curvature_operator, builder,
                                   lambda: curvature_product(curvature, f, x, model_fn, loss_fn))
        damping = state.damping

        def damped(v: PyTree) -> PyTree:
            return optax.tree.add_scale(product(v), damping, v)

        start = optax.tree.scale(warm_start_decay, state.previous_solution)
        info = martens_cg(damped, optax.tree.scale(-1.0, g), start, maxiter=cg_maxiter)
        snaps = info.snapshots

        # CG-iterate backtracking: walk back from the last kept iterate while f keeps decreasing
        at = lambda j: jax.tree.map(lambda s: s[j], snaps)
        f_at = lambda j: f(optax.tree.add(x, at(j)))

        # The loop's test only reads its carry: evaluating f in the test and again in the body
        # lets the two copies round differently (fused differently by XLA); under vmap a lane the
        # test calls active that the body's copy calls done is then frozen and the loop never ends.
        def candidate(j: jax.Array, value: jax.Array) -> tuple:
            earlier_value = f_at(jnp.maximum(j - 1, 0))
            return j, value, earlier_value, (j > 0) & (earlier_value < value)

        def walk_back(carry: tuple) -> tuple:
            j, _, earlier_value, _ = carry
            return candidate(j - 1, earlier_value)

        last = info.snapshot_count - 1
        chosen, chosen_value, _, _ = jax.lax.while_loop(lambda carry: carry[3], walk_back,
                                                        candidate(last, f_at(last)))
        step = optax.tree.cast_like(at(chosen), x)

        slope = optax.tree.vdot(g, step)
        model = slope + 0.5 * optax.tree.vdot(step, product(step))
        ratio = jnp.where(model < 0, (chosen_value - value) / jnp.where(model < 0, model, -1), -jnp.inf)
        ratio = jnp.where(jnp.isfinite(chosen_value), ratio, -jnp.inf)
        grow = (ratio < 0.25) | info.negative_curvature
        new_damping = jnp.where(grow, damping * boost, jnp.where(ratio > 0.75, damping * drop, damping))
        updates, searched = search(ls, init_line_search(ls, x), step, x, value, g, f)
        # values of f: the walk-back's first two and one per step back, the search's trials
        values = 2 + (last - chosen) + (searched.info.num_linesearch_steps if ls is not None else 0)
        # no predicted decrease (possible with an indefinite Hessian): reject, λ grows
        updates = optax.tree.where(model < 0, updates, optax.tree.zeros_like(updates))
        new_state = HessianFreeState(
            state.count + 1, new_damping.astype(state.damping.dtype), info.x,
            state.hvp_count + (info.matvecs + 1).astype(jnp.int32), state.value_count + values.astype(jnp.int32),
            info.iterations.astype(jnp.int32),
            info.code, info.negative_curvature, ratio.astype(state.ratio.dtype))
        return cast_back(updates, params), new_state

    return optax.GradientTransformationExtraArgs(init, update)

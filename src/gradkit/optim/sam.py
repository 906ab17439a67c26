"""Sharpness-aware minimization: SAM (Foret et al. 2021) and ASAM (Kwon et al. 2021).

Both wrap any base optimizer and take the objective as the extra ``update``
keyword ``value_fn`` (as ``optax.lbfgs`` does):

    ε̂ = ρ T_w² g / ||T_w g||          (SAM: T_w = I, so ε̂ = ρ g / ||g||)
    g_SAM = ∇L(w + ε̂)
    u, state = base.update(g_SAM, state, w)

with ``T_w = diag(|w| + η)`` for ASAM.  When ``||T_w g|| = 0`` the perturbation is
0 (no NaN) and the step is the base optimizer's step on ``g``.

Relation to ``optax.contrib.sam``: with ``opaque_mode=True``, ``sync_period=2``
and ``adv_optimizer = chain(contrib.normalize(), sgd(ρ))`` optax computes the
same step (checked in the tests), but its ``normalize`` divides by a zero
gradient norm (NaN), its default transparent mode spreads one SAM step over two
``update`` calls (the ascent is visible as a parameter update), and it takes a
``grad_fn(params, i)`` instead of an objective. ASAM has no optax counterpart.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from gradkit.derivatives import scalar_fn
from gradkit.optim._common import PyTree, abs_sq, check_nonnegative, check_positive, check_tree_match, deterministic_sum


class SamState(NamedTuple):
    base_state: Any


class SamAdversaryState(NamedTuple):
    """State of :func:`sam` in optax.contrib.sam's calling convention (same fields)."""

    steps_since_sync: jax.Array
    opt_state: Any
    adv_state: Any
    cache: Any  # the outer params (transparent mode), None in opaque mode


def sam_perturbation(grads: PyTree, params: PyTree, rho: Any, adaptive: bool = False, eta: Any = 0.01) -> PyTree:
    """The ascent step ``ε̂ = ρ T² g / ||T g||`` (``T = I`` for SAM, ``|w| + η`` for ASAM);
    zero when ``||T g|| = 0``.

    ``T g`` is divided by ``max |T g|`` before squaring, so ``||T g||`` neither overflows
    (float16 with ``|g| = 300``, float32 with ``|g| ≈ 1e20``) nor underflows to 0
    (float32 with ``|g| ≈ 1e-25``): ``ε̂ = ρ T ĝ / ||ĝ||`` with ``ĝ = T g / max|T g|``.  The sum
    of squares is a fixed pairwise tree of adds (:func:`deterministic_sum`), so the result is
    bit-identical whatever the batch a compiled call vmaps it over.
    """
    if adaptive:
        scale = jax.tree.map(lambda w: jnp.abs(w) + eta, params)
    else:
        scale = jax.tree.map(jnp.ones_like, params)
    scaled = jax.tree.map(lambda t, g: t * g, scale, grads)
    leaves = jax.tree.leaves(scaled)
    if not leaves:
        return scaled
    largest = functools.reduce(jnp.maximum, [jnp.max(jnp.abs(x)) for x in leaves])
    nonzero = largest > 0
    safe_largest = jnp.where(nonzero, largest, 1.0)
    unit = jax.tree.map(lambda x: x / safe_largest.astype(x.dtype), scaled)
    norm = jnp.sqrt(functools.reduce(jnp.add, [deterministic_sum(abs_sq(x)) for x in jax.tree.leaves(unit)]))
    factor = jnp.where(nonzero, rho / jnp.where(nonzero, norm, 1.0), 0.0)
    return jax.tree.map(lambda t, u: (factor.astype(u.dtype) * t * u).astype(u.dtype), scale, unit)


def sam(
    optimizer: optax.GradientTransformation,
    rho: Any = 0.05,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | None = None,
    *,
    adv_optimizer: optax.GradientTransformation | None = None,
    adaptive: bool = False,
    eta: Any = 0.01,
) -> optax.GradientTransformationExtraArgs:
    """SAM around ``optimizer``, in two calling conventions.

    * gradkit's, ``sam(optimizer, rho)``: ``u = base(∇L(w + ρ g/||g||))`` in one ``update``.
      ``update(grads, state, params, *, value_fn)``: ``grads`` is ``∇L(w)``, ``value_fn``
      the objective ``L`` (a scalar function of params; close over the mini-batch).
      ``adaptive=True`` gives ASAM with ``T_w = |w| + eta``.  ``sync_period``,
      ``reset_state``, ``opaque_mode`` and ``batch_axis_name`` do not apply.
    * optax.contrib.sam's, ``sam(optimizer, adv_optimizer, sync_period=2, reset_state=True,
      opaque_mode=False, batch_axis_name=None)`` (the second argument, or the keyword
      ``adv_optimizer``, a GradientTransformation): ``sync_period - 1`` ascent steps
      ``w_adv ← w_adv - adv(g)`` then one outer step ``u = optimizer(g(w_adv))`` applied at the
      outer params; transparent mode spreads them over ``sync_period`` calls of ``update``,
      opaque mode runs them in one call with ``update(..., grad_fn=lambda p, i: ∇L(p))``.
      Same semantics and state fields as optax's (see :class:`SamAdversaryState`).
    """
    if isinstance(rho, optax.GradientTransformation):
        if adv_optimizer is not None:
            raise TypeError("sam: give the adversarial optimizer once (second argument or adv_optimizer=)")
        rho, adv_optimizer = None, rho
    if adv_optimizer is not None:
        if adaptive:
            raise ValueError("sam: adaptive=True (ASAM) takes rho, not an adversarial optimizer")
        return _sam_with_adversary(optimizer, adv_optimizer, sync_period, reset_state, opaque_mode,
                                   batch_axis_name)
    check_positive("sam", "rho", rho)
    check_nonnegative("sam", "eta", eta)

    def init(params: PyTree) -> SamState:
        return SamState(optimizer.init(params))

    def update(
        updates: PyTree,
        state: SamState,
        params: PyTree = None,
        *,
        value_fn: Callable[[PyTree], jax.Array] | None = None,
        **extra_args: Any,
    ) -> tuple[PyTree, SamState]:
        if params is None or value_fn is None:
            raise ValueError("sam.update needs params and the objective: update(grads, state, params, value_fn=L)")
        check_tree_match("sam", updates, params)
        perturbation = sam_perturbation(updates, params, rho, adaptive, eta)
        adversarial = jax.tree.map(lambda w, e: w + e, params, perturbation)
        sam_grads = jax.grad(scalar_fn(value_fn, "sam value_fn"))(adversarial)
        base_update = optax.with_extra_args_support(optimizer).update
        new_updates, base_state = base_update(sam_grads, state.base_state, params, **extra_args)
        return new_updates, SamState(base_state)

    return optax.GradientTransformationExtraArgs(init, update)


def _sam_with_adversary(
    optimizer: optax.GradientTransformation,
    adv_optimizer: optax.GradientTransformation,
    sync_period: int,
    reset_state: bool,
    opaque_mode: bool,
    batch_axis_name: str | None,
) -> optax.GradientTransformationExtraArgs:
    """SAM with an adversarial optimizer, optax.contrib.sam's algorithm (see :func:`sam`)."""
    if not isinstance(sync_period, int) or isinstance(sync_period, bool) or sync_period < 1:
        raise ValueError(f"sam: sync_period must be an int >= 1, got {sync_period!r}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"sam: optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    outer = optax.with_extra_args_support(optimizer)
    adversary = optax.with_extra_args_support(adv_optimizer)

    def init(params: PyTree) -> SamAdversaryState:
        return SamAdversaryState(jnp.zeros([], jnp.int32), optimizer.init(params), adv_optimizer.init(params),
                                 None if opaque_mode else params)

    def pick(condition: jax.Array, if_true: PyTree, if_false: PyTree) -> PyTree:
        return jax.tree.map(lambda a, b: jnp.where(condition, a, b), if_true, if_false)

    def negate(tree: PyTree) -> PyTree:
        return jax.tree.map(jnp.negative, tree)

    def transparent_update(updates: PyTree, state: SamAdversaryState, params: PyTree = None, *,
                           grad_fn: Callable[[PyTree, int], PyTree] | None = None, **extra_args: Any
                           ) -> tuple[PyTree, SamAdversaryState]:
        del grad_fn
        if params is None:
            raise ValueError("sam.update needs params: update(grads, state, params)")
        check_tree_match("sam", updates, params)
        first, last = state.steps_since_sync == 0, state.steps_since_sync == sync_period - 1
        adv_updates, adv_state = adversary.update(updates, state.adv_state, params, **extra_args)
        adv_updates = negate(adv_updates)
        opt_updates, opt_state = outer.update(updates, state.opt_state, state.cache, **extra_args)
        # the outer step is taken from the cached outer params: undo the ascent, then step
        opt_updates = jax.tree.map(lambda c, p, u: c - p + u, state.cache, params, opt_updates)
        cache = pick(first, params, state.cache)
        new_updates = pick(last, opt_updates, adv_updates)
        kept_adv = adv_optimizer.init(params) if reset_state else state.adv_state
        return new_updates, SamAdversaryState(
            (state.steps_since_sync + 1) % sync_period,
            pick(last, opt_state, state.opt_state),
            pick(last, kept_adv, adv_state),
            cache,
        )

    def opaque_update(updates: PyTree, state: SamAdversaryState, params: PyTree = None, *,
                      grad_fn: Callable[[PyTree, int], PyTree] | None = None, **extra_args: Any
                      ) -> tuple[PyTree, SamAdversaryState]:
        if grad_fn is None:
            raise ValueError("sam.update with opaque_mode=True needs grad_fn=lambda params, i: gradient")
        if params is None:
            raise ValueError("sam.update needs params: update(grads, state, params, grad_fn=...)")
        check_tree_match("sam", updates, params)
        adv_params, adv_updates, adv_state = params, updates, state.adv_state
        for i in range(sync_period - 1):
            adv_updates, adv_state = adversary.update(adv_updates, adv_state, adv_params, **extra_args)
            adv_params = optax.apply_updates(adv_params, negate(adv_updates))
            adv_updates = grad_fn(adv_params, i)
            if batch_axis_name is not None:
                adv_updates = jax.lax.pmean(adv_updates, axis_name=batch_axis_name)
        if reset_state:
            adv_state = adv_optimizer.init(params)
        new_updates, opt_state = outer.update(adv_updates, state.opt_state, params, **extra_args)
        return new_updates, SamAdversaryState(jnp.zeros([], jnp.int32), opt_state, adv_state, None)

    return optax.GradientTransformationExtraArgs(init, opaque_update if opaque_mode else transparent_update)


def asam(optimizer: optax.GradientTransformation, rho: Any = 0.5, eta: Any = 0.01
         ) -> optax.GradientTransformationExtraArgs:
    """ASAM (adaptive SAM): ``ε̂ = ρ T_w² g / ||T_w g||`` with ``T_w = |w| + η`` (see :func:`sam`)."""
    return sam(optimizer, rho=rho, adaptive=True, eta=eta)

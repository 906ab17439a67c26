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

from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from gradkit.derivatives import scalar_fn
from gradkit.optim._common import PyTree, check_nonnegative, check_positive, check_tree_match


class SamState(NamedTuple):
    base_state: Any


def sam_perturbation(grads: PyTree, params: PyTree, rho: Any, adaptive: bool = False, eta: Any = 0.01) -> PyTree:
    """The ascent step ``ε̂ = ρ T² g / ||T g||`` (``T = I`` for SAM, ``|w| + η`` for ASAM);
    zero when ``||T g|| = 0``."""
    if adaptive:
        scale = jax.tree.map(lambda w: jnp.abs(w) + eta, params)
    else:
        scale = jax.tree.map(jnp.ones_like, params)
    scaled = jax.tree.map(lambda t, g: t * g, scale, grads)
    norm = optax.tree.norm(scaled)
    safe = jnp.where(norm > 0, norm, 1.0)
    factor = jnp.where(norm > 0, rho / safe, 0.0)
    return jax.tree.map(lambda t, tg: (factor * t * tg).astype(tg.dtype), scale, scaled)


def sam(
    base_optimizer: optax.GradientTransformation,
    rho: Any = 0.05,
    adaptive: bool = False,
    eta: Any = 0.01,
) -> optax.GradientTransformationExtraArgs:
    """SAM around ``base_optimizer``: ``u = base(∇L(w + ρ g/||g||))``.

    ``update(grads, state, params, *, value_fn)``: ``grads`` is ``∇L(w)``, ``value_fn``
    the objective ``L`` (a scalar function of params; close over the mini-batch).
    ``adaptive=True`` gives ASAM with ``T_w = |w| + eta``.
    """
    check_positive("sam", "rho", rho)
    check_nonnegative("sam", "eta", eta)

    def init(params: PyTree) -> SamState:
        return SamState(base_optimizer.init(params))

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
        base_update = optax.with_extra_args_support(base_optimizer).update
        new_updates, base_state = base_update(sam_grads, state.base_state, params, **extra_args)
        return new_updates, SamState(base_state)

    return optax.GradientTransformationExtraArgs(init, update)


def asam(base_optimizer: optax.GradientTransformation, rho: Any = 0.5, eta: Any = 0.01
         ) -> optax.GradientTransformationExtraArgs:
    """ASAM (adaptive SAM): ``ε̂ = ρ T_w² g / ||T_w g||`` with ``T_w = |w| + η`` (see :func:`sam`)."""
    return sam(base_optimizer, rho=rho, adaptive=True, eta=eta)

"""Adaptive per-coordinate step sizes (seed 002): ``adagrad`` and ``rmsprop``.

State: optax's.  ``adagrad``: ``(ScaleByRssState(sum_of_squares), EmptyState())``;
``rmsprop``: ``(ScaleByRmsState(nu) | ScaleByRmsWithCountState(count, nu) |
ScaleByRStdDevState(mu, nu) | ScaleByRStdDevWithCountState(count, mu, nu), EmptyState(),
EmptyState() | TraceState(trace))`` for (plain | bias-corrected | centered | both) and momentum.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from optax._src.transform import ScaleByRmsWithCountState, ScaleByRStdDevWithCountState  # not re-exported by optax

from gradkit.optim._chain import GradientTransformationExtraArgs, transform, with_learning_rate
from gradkit.optim._common import (
    PyTree,
    ScalarOrSchedule,
    abs_sq,
    bias_correct,
    check_decay,
    check_learning_rate,
    check_nonnegative,
    ema,
    increment,
    zero_count,
)
from gradkit.optim.sgd import scale_by_trace


def scale_by_rss(initial_accumulator_value: Any = 0.1, eps: Any = 1e-7, *, name: str = "scale_by_rss"
                 ) -> GradientTransformationExtraArgs:
    """Adagrad's direction: ``G ← G + |g|²``, ``d = g / sqrt(G + ε)`` (0 where ``G = 0``); state
    ``optax.ScaleByRssState(sum_of_squares=G)``, ``G₀ = initial_accumulator_value``."""
    check_nonnegative(name, "eps", eps)
    check_nonnegative(name, "initial_accumulator_value", initial_accumulator_value)

    def init(params: PyTree) -> optax.ScaleByRssState:
        return optax.ScaleByRssState(sum_of_squares=optax.tree.full_like(params, initial_accumulator_value))

    def update(updates: PyTree, state: optax.ScaleByRssState, params: PyTree) -> tuple[PyTree, optax.ScaleByRssState]:
        sums = jax.tree.map(lambda g, s: abs_sq(g) + s, updates, state.sum_of_squares)
        direction = jax.tree.map(lambda g, s: jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g, updates, sums)
        return direction, optax.ScaleByRssState(sum_of_squares=sums)

    return transform(name, init, update, lambda state: state.sum_of_squares)


def adagrad(
    learning_rate: ScalarOrSchedule, initial_accumulator_value: Any = 0.1, eps: Any = 1e-7
) -> GradientTransformationExtraArgs:
    """Adagrad, optax's signature and state: ``G ← G + |g|²``;  ``u = -η_t g / sqrt(G + ε)`` (0 where
    ``G = 0``).  Defaults follow optax (``G₀ = 0.1``, ``ε = 1e-7``); ``|g|² = g · conj(g)`` for complex ``g``.
    """
    check_learning_rate("adagrad", learning_rate)
    return with_learning_rate(scale_by_rss(initial_accumulator_value, eps, name="adagrad"), learning_rate)


def scale_by_rms(decay: Any = 0.9, eps: Any = 1e-8, initial_scale: Any = 0.0, eps_in_sqrt: bool = True,
                 centered: bool = False, bias_correction: bool = False, *, name: str = "scale_by_rms"
                 ) -> GradientTransformationExtraArgs:
    """RMSProp's direction: ``s ← γ s + (1 - γ) |g|²`` (centered: also ``m ← γ m + (1 - γ) g`` and
    use ``s - |m|²``); with ``bias_correction`` ``ŝ = s / (1 - γ^t)`` (and ``m̂``), else ``ŝ = s``;
    ``d = g / sqrt(ŝ + ε)`` (``eps_in_sqrt``, optax's and the seed's form) or ``d = g / (sqrt(ŝ) + ε)``.
    State: optax's ``ScaleByRmsState`` / ``ScaleByRmsWithCountState`` / ``ScaleByRStdDevState`` /
    ``ScaleByRStdDevWithCountState``."""
    check_decay(name, "decay", decay)
    check_nonnegative(name, "eps", eps)
    check_nonnegative(name, "initial_scale", initial_scale)

    def init(params: PyTree) -> Any:
        nu = optax.tree.full_like(params, initial_scale)
        if centered:
            mu = optax.tree.zeros_like(params)
            return (ScaleByRStdDevWithCountState(zero_count(), mu, nu) if bias_correction
                    else optax.ScaleByRStdDevState(mu, nu))
        return ScaleByRmsWithCountState(zero_count(), nu) if bias_correction else optax.ScaleByRmsState(nu)

    def update(updates: PyTree, state: Any, params: PyTree) -> tuple[PyTree, Any]:
        nu = ema(updates, state.nu, decay, 2)
        mu = ema(updates, state.mu, decay, 1) if centered else None
        count = increment(state.count) if bias_correction else None
        nu_hat = bias_correct(nu, decay, count) if bias_correction else nu
        if centered:
            mu_hat = bias_correct(mu, decay, count) if bias_correction else mu
            variance = jax.tree.map(lambda n, m: n - abs_sq(m), nu_hat, mu_hat)
        else:
            variance = nu_hat
        if eps_in_sqrt:
            direction = jax.tree.map(lambda v, g: jax.lax.rsqrt(v + eps) * g, variance, updates)
        else:
            direction = jax.tree.map(lambda v, g: 1 / (jnp.sqrt(v) + eps) * g, variance, updates)
        if centered:
            new = ScaleByRStdDevWithCountState(count, mu, nu) if bias_correction else optax.ScaleByRStdDevState(mu, nu)
        else:
            new = ScaleByRmsWithCountState(count, nu) if bias_correction else optax.ScaleByRmsState(nu)
        return direction, new

    return transform(name, init, update, lambda state: state.nu)


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: Any = 0.9,
    eps: Any = 1e-8,
    initial_scale: Any = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: Any = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformationExtraArgs:
    """RMSProp, optax's signature and state (same positional order, names and defaults).

    ``d`` from :func:`scale_by_rms`; ``u = -η_t d``, or with momentum ``β``:
    ``v ← β v + (-η_t d)``, ``u = v`` (Nesterov: ``u = -η_t d + β v``), the learning rate
    applied before the momentum as optax does.
    """
    check_learning_rate("rmsprop", learning_rate)
    direction = scale_by_rms(decay, eps, initial_scale, eps_in_sqrt, centered, bias_correction, name="rmsprop")
    after = (scale_by_trace(momentum, "heavy_ball", nesterov, name="rmsprop") if momentum is not None
             else optax.identity())
    return with_learning_rate(direction, learning_rate, after)

"""The Adam family (seed 002): ``adam``, ``nadam``, ``adamw``, ``adamax``, ``adabelief``, ``amsgrad``.

State: optax's.  ``adam`` / ``nadam`` / ``adamax``: ``(ScaleByAdamState(count, mu, nu),
EmptyState())``; ``adamw``: ``(ScaleByAdamState, EmptyState() | MaskedState(EmptyState()),
EmptyState())``; ``adabelief``: ``ScaleByBeliefState``; ``amsgrad``: ``ScaleByAmsgradState``; a
learning-rate schedule puts ``ScaleByScheduleState(count)`` in the learning-rate slot.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from gradkit.optim._chain import GradientTransformationExtraArgs, transform, with_learning_rate
from gradkit.optim._common import (
    PyTree,
    ScalarOrSchedule,
    bias_correct,
    bias_correct_pair,
    cast_tree,
    check_betas,
    check_dtype,
    check_learning_rate,
    check_nonnegative,
    ema,
    increment,
    zero_count,
)


def _moments_init(state_type: type, mu_dtype: Any, extra: int = 0) -> Any:
    """``state_type(count=0, mu=0 (in mu_dtype), nu=0, *extra zero trees)``, distinct buffers (so
    the state can be donated)."""

    def init(params: PyTree) -> Any:
        zeros = [optax.tree.zeros_like(params) for _ in range(1 + extra)]
        return state_type(zero_count(), optax.tree.zeros_like(params, dtype=mu_dtype), *zeros)

    return init


def _moments_hat(mu: PyTree, nu: PyTree, grads: PyTree, b1: Any, b2: Any, count: jax.Array,
                 nesterov: bool) -> tuple[PyTree, PyTree]:
    """Bias-corrected ``(m̂, ŝ)``; with ``nesterov`` NAdam's look-ahead
    ``m̂ = β1 m/(1-β1^{t+1}) + (1-β1) g/(1-β1^t)``."""
    if nesterov:
        mu_hat = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, bias_correct(mu, b1, increment(count)),
                              bias_correct(grads, b1, count))
        return mu_hat, bias_correct(nu, b2, count)
    return bias_correct_pair(mu, nu, b1, b2, count)


def scale_by_adam(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0, mu_dtype: Any = None, *,
                  nesterov: bool = False, eps_in_sqrt: bool = False, name: str = "scale_by_adam"
                  ) -> GradientTransformationExtraArgs:
    """Adam's direction, state ``optax.ScaleByAdamState(count, mu, nu)``:

    ``m ← β1 m + (1 - β1) g``;  ``s ← β2 s + (1 - β2) |g|²``;  ``m̂ = m / (1 - β1^t)``,
    ``ŝ = s / (1 - β2^t)``;  ``d = m̂ / (sqrt(ŝ + ε_root) + ε)`` (optax's form), or with
    ``eps_in_sqrt=True`` the seed's ``d = m̂ / sqrt(ŝ + ε_root + ε)``; ``nesterov``: NAdam's
    look-ahead ``m̂``.  ``m`` is stored in ``mu_dtype``."""
    check_betas(name, b1, b2)
    check_nonnegative(name, "eps", eps)
    check_nonnegative(name, "eps_root", eps_root)
    mu_dtype = check_dtype(name, "mu_dtype", mu_dtype)

    def denominator(v: jax.Array) -> jax.Array:
        return jnp.sqrt(v + eps_root + eps) if eps_in_sqrt else jnp.sqrt(v + eps_root) + eps

    def update(updates: PyTree, state: optax.ScaleByAdamState, params: PyTree
               ) -> tuple[PyTree, optax.ScaleByAdamState]:
        mu = ema(updates, state.mu, b1, 1)
        nu = ema(updates, state.nu, b2, 2)
        count = increment(state.count)
        mu_hat, nu_hat = _moments_hat(mu, nu, updates, b1, b2, count, nesterov)
        direction = jax.tree.map(lambda m, v: m / denominator(v), mu_hat, nu_hat)
        return direction, optax.ScaleByAdamState(count, cast_tree(mu, mu_dtype), nu)

    return transform(name, _moments_init(optax.ScaleByAdamState, mu_dtype), update, lambda state: state.nu)


def adam(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    eps_in_sqrt: bool = False,
) -> GradientTransformationExtraArgs:
    """Adam (Kingma & Ba 2015), optax's signature and state (``eps_in_sqrt`` is gradkit's,
    keyword-only): ``u = -η_t m̂ / (sqrt(ŝ + ε_root) + ε)`` with the moments of
    :func:`scale_by_adam`; ``eps_in_sqrt=True`` gives the seed's ``u = -η_t m̂ / sqrt(ŝ + ε_root + ε)``;
    ``nesterov=True`` is NAdam (Dozat 2016).  ``|g|² = g · conj(g)`` for complex ``g``.

    A drop-in for ``optax.adam``: the same update, to the bit, and the same state types:

    >>> import jax.numpy as jnp, optax
    >>> params, grads = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.5, -0.25])}
    >>> ours, theirs = adam(1e-2), optax.adam(1e-2)
    >>> (u, state), (u_optax, state_optax) = ours.update(grads, ours.init(params)), theirs.update(grads, theirs.init(params))
    >>> bool(jnp.array_equal(u["w"], u_optax["w"])), type(state[0]) is type(state_optax[0])
    (True, True)
    >>> [round(x, 6) for x in u["w"].tolist()]         # the first step is -η sign(g), up to ε
    [-0.01, 0.01]
    """
    check_learning_rate("adam", learning_rate)
    direction = scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, eps_in_sqrt=eps_in_sqrt, name="adam")
    return with_learning_rate(direction, learning_rate)


def nadam(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
          eps_root: Any = 0.0, mu_dtype: Any = None, *, nesterov: bool = True) -> GradientTransformationExtraArgs:
    """NAdam, optax's signature: Adam with Nesterov's look-ahead first moment (see :func:`adam`)."""
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
) -> GradientTransformationExtraArgs:
    """AdamW (Loshchilov & Hutter 2019), optax's signature, defaults and state: decoupled weight decay,

    ``u = -η_t (m̂ / (sqrt(ŝ + ε_root) + ε) + λ_t w)``

    with the moments of :func:`scale_by_adam`; ``λ_t`` a constant or a schedule (of its own step
    count); ``mask`` (a prefix tree of booleans, or a callable of params returning one) limits the
    decay to the leaves marked True (optax's ``add_decayed_weights``).
    """
    check_learning_rate("adamw", learning_rate)
    if not callable(weight_decay):
        check_nonnegative("adamw", "weight_decay", weight_decay)
    direction = scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, name="adamw")
    return with_learning_rate(direction, learning_rate, decay=optax.add_decayed_weights(weight_decay, mask))


def scale_by_adamax(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, *, name: str = "scale_by_adamax"
                    ) -> GradientTransformationExtraArgs:
    """AdaMax's direction (Adam with the infinity norm), state ``optax.ScaleByAdamState``:
    ``m ← β1 m + (1 - β1) g``;  ``s ← max(|g| + ε, β2 s)``;  ``d = m / ((1 - β1^t) s)``."""
    check_betas(name, b1, b2)
    check_nonnegative(name, "eps", eps)

    def update(updates: PyTree, state: optax.ScaleByAdamState, params: PyTree
               ) -> tuple[PyTree, optax.ScaleByAdamState]:
        count = increment(state.count)
        mu = ema(updates, state.mu, b1, 1)
        nu = jax.tree.map(lambda g, s: jnp.maximum(jnp.abs(g) + eps, b2 * s), updates, state.nu)
        direction = jax.tree.map(lambda m, s: m / s, bias_correct(mu, b1, count), nu)
        return direction, optax.ScaleByAdamState(count, mu, nu)

    return transform(name, _moments_init(optax.ScaleByAdamState, None), update, lambda state: state.mu)


def adamax(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8
           ) -> GradientTransformationExtraArgs:
    """AdaMax, optax's signature and state: ``u = -η_t m / ((1 - β1^t) s)`` (:func:`scale_by_adamax`)."""
    check_learning_rate("adamax", learning_rate)
    return with_learning_rate(scale_by_adamax(b1, b2, eps, name="adamax"), learning_rate)


def scale_by_belief(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-16, eps_root: Any = 1e-16, *,
                    nesterov: bool = False, name: str = "scale_by_belief") -> GradientTransformationExtraArgs:
    """AdaBelief's direction, state ``optax.ScaleByBeliefState(count, mu, nu)``:
    ``m ← β1 m + (1 - β1) g``;  ``s ← β2 s + (1 - β2)|g - m|² + ε_root``;  ``d = m̂ / (sqrt(ŝ) + ε)``
    with Adam's bias corrections."""
    check_betas(name, b1, b2)
    check_nonnegative(name, "eps", eps)
    check_nonnegative(name, "eps_root", eps_root)

    def update(updates: PyTree, state: optax.ScaleByBeliefState, params: PyTree
               ) -> tuple[PyTree, optax.ScaleByBeliefState]:
        mu = ema(updates, state.mu, b1, 1)
        surprise = jax.tree.map(lambda g, m: g - m, updates, mu)
        nu = jax.tree.map(lambda s: s + eps_root, ema(surprise, state.nu, b2, 2))
        count = increment(state.count)
        mu_hat, nu_hat = _moments_hat(mu, nu, updates, b1, b2, count, nesterov)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu_hat, nu_hat)
        return direction, optax.ScaleByBeliefState(count, mu, nu)

    return transform(name, _moments_init(optax.ScaleByBeliefState, None), update, lambda state: state.mu)


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-16,
    eps_root: Any = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformationExtraArgs:
    """AdaBelief (Zhuang et al. 2020), optax's signature and state: scale by the belief in the
    gradient, ``u = -η_t m̂ / (sqrt(ŝ) + ε)`` (:func:`scale_by_belief`)."""
    check_learning_rate("adabelief", learning_rate)
    return with_learning_rate(scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov, name="adabelief"),
                              learning_rate)


def scale_by_amsgrad(b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8, eps_root: Any = 0.0, mu_dtype: Any = None,
                     bias_correction_mu: bool = True, bias_correction_nu: bool = True, *,
                     name: str = "scale_by_amsgrad") -> GradientTransformationExtraArgs:
    """AMSGrad's direction, state ``optax.ScaleByAmsgradState(count, mu, nu, nu_max)``:
    ``ŝ_max ← max(ŝ_max, ŝ)``;  ``d = m̂ / (sqrt(ŝ_max + ε_root) + ε)``, where ``m̂``/``ŝ`` are
    bias-corrected unless ``bias_correction_mu``/``_nu`` is False (the paper's form)."""
    check_betas(name, b1, b2)
    check_nonnegative(name, "eps", eps)
    check_nonnegative(name, "eps_root", eps_root)
    mu_dtype = check_dtype(name, "mu_dtype", mu_dtype)

    def update(updates: PyTree, state: optax.ScaleByAmsgradState, params: PyTree
               ) -> tuple[PyTree, optax.ScaleByAmsgradState]:
        mu = ema(updates, state.mu, b1, 1)
        nu = ema(updates, state.nu, b2, 2)
        count = increment(state.count)
        if bias_correction_mu and bias_correction_nu:
            mu_hat, nu_hat = bias_correct_pair(mu, nu, b1, b2, count)
        else:
            mu_hat = bias_correct(mu, b1, count) if bias_correction_mu else mu
            nu_hat = bias_correct(nu, b2, count) if bias_correction_nu else nu
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu_hat)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_max)
        return direction, optax.ScaleByAmsgradState(count, cast_tree(mu, mu_dtype), nu, nu_max)

    return transform(name, _moments_init(optax.ScaleByAmsgradState, mu_dtype, extra=1), update,
                     lambda state: state.nu)


def amsgrad(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
            eps_root: Any = 0.0, mu_dtype: Any = None, bias_correction_mu: bool = True,
            bias_correction_nu: bool = True) -> GradientTransformationExtraArgs:
    """AMSGrad (Reddi et al. 2018), optax's signature and state: Adam with a non-decreasing second
    moment, ``u = -η_t m̂ / (sqrt(ŝ_max + ε_root) + ε)`` (:func:`scale_by_amsgrad`)."""
    check_learning_rate("amsgrad", learning_rate)
    direction = scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu,
                                 name="amsgrad")
    return with_learning_rate(direction, learning_rate)

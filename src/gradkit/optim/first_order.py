"""First-order optimizers, each an ``optax.GradientTransformation`` written here.

Notation: ``g`` gradient, ``η_t`` learning rate (constant, traced array or optax
schedule evaluated at the step count ``t-1``), ``u`` the returned update
(``params ← params + u`` via ``optax.apply_updates``), ``t`` the 1-based step.
Every state is a ``NamedTuple`` of arrays whose first field is ``count``; every
hyperparameter may be a traced array, so ``jax.vmap`` over learning rates or
betas works.  Where the seed lecture's textbook form differs from optax's, a
keyword chooses (default: optax's form).
"""

from __future__ import annotations

import numbers
from typing import Any, Literal, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit.optim._common import (
    PyTree,
    ScalarOrSchedule,
    abs_sq,
    bias_correct,
    bias_correct_pair,
    cast_tree,
    check_betas,
    check_decay,
    check_dtype,
    check_float_params,
    check_learning_rate,
    check_nonnegative,
    check_update_args,
    concrete_scalar,
    ema,
    increment,
    learning_rate_at,
    scale_by_neg_lr,
    zero_count,
)

GradientTransformationExtraArgs = optax.GradientTransformationExtraArgs


# --------------------------------------------------------------------------------------
# SGD and momentum
# --------------------------------------------------------------------------------------


class SgdState(NamedTuple):
    count: jax.Array
    shapes: PyTree  # zero-size arrays of shape (0, *leaf.shape): the params' layout at no memory cost


class MomentumState(NamedTuple):
    count: jax.Array
    velocity: PyTree


class SgdMomentumState(NamedTuple):
    """State of ``sgd(lr, momentum=β)``: the velocity under optax's field name ``trace`` (so
    ``optax.tree.get(state, "trace")`` works as with optax's sgd)."""

    count: jax.Array
    trace: PyTree


def _shape_witness(params: PyTree) -> PyTree:
    return jax.tree.map(lambda p: jnp.zeros((0,) + jnp.shape(p), jnp.result_type(p)), params)


def _check_witness(name: str, updates: PyTree, shapes: PyTree, params: PyTree) -> None:
    reference = jax.tree.map(lambda w: jax.ShapeDtypeStruct(w.shape[1:], w.dtype), shapes)
    check_update_args(name, updates, reference, params)


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: Any = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Gradient descent, optax's ``sgd`` exactly (same positional order, names and defaults).

    ``u = -η_t g``; with ``momentum=β`` (heavy ball, see :func:`momentum`): ``v ← β v + g``,
    ``u = -η_t v``, or with ``nesterov=True`` ``u = -η_t (g + β v)``.  ``accumulator_dtype``:
    dtype of ``v`` (default: the params').
    """
    if momentum is not None:
        return _momentum("sgd", learning_rate, momentum, "heavy_ball", nesterov, accumulator_dtype, SgdMomentumState)
    check_learning_rate("sgd", learning_rate)
    check_dtype("sgd", "accumulator_dtype", accumulator_dtype)

    def init(params: PyTree) -> SgdState:
        check_float_params("sgd", params)
        return SgdState(zero_count(), _shape_witness(params))

    def update(updates: PyTree, state: SgdState, params: PyTree = None, **extra_args: Any
               ) -> tuple[PyTree, SgdState]:
        del extra_args
        _check_witness("sgd", updates, state.shapes, params)
        return scale_by_neg_lr(updates, learning_rate, state.count), SgdState(increment(state.count), state.shapes)

    return GradientTransformationExtraArgs(init, update)


def momentum(
    learning_rate: ScalarOrSchedule,
    beta: Any = 0.9,
    form: Literal["heavy_ball", "ema"] = "heavy_ball",
    nesterov: bool = False,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Momentum in two forms (gradkit's entry point; ``sgd(lr, momentum=β)`` is optax's).

    * ``form="heavy_ball"`` (optax ``sgd(momentum=β)``, exactly): ``v ← β v + g``;
      ``u = -η_t v``, or with Nesterov ``u = -η_t (g + β v)``.
    * ``form="ema"`` (seed 002, deliberately not optax's): ``v ← β v + (1 - β) g``;
      ``u = -η_t v``, or with Nesterov ``u = -η_t (β v + (1 - β) g)``.

    The forms coincide up to rescaling ``η`` by ``1/(1 - β)`` at steady state but
    differ in the transient (the EMA starts at ``(1 - β) g``).  ``accumulator_dtype``:
    dtype of ``v`` (default: the params').
    """
    return _momentum("momentum", learning_rate, beta, form, nesterov, accumulator_dtype, MomentumState)


def _momentum(name: str, learning_rate: ScalarOrSchedule, beta: Any, form: str, nesterov: bool,
              accumulator_dtype: Any, state_type: type) -> GradientTransformationExtraArgs:
    """:func:`momentum` with the state ``state_type(count, velocity)`` (field names differ)."""
    check_learning_rate(name, learning_rate)
    check_decay(name, "beta" if name == "momentum" else "momentum", beta)
    if form not in ("heavy_ball", "ema"):
        raise ValueError(f"{name}: form must be 'heavy_ball' or 'ema', got {form!r}")
    accumulator_dtype = check_dtype(name, "accumulator_dtype", accumulator_dtype)
    ema_form = form == "ema"

    def accumulate(g: jax.Array, v: jax.Array) -> jax.Array:
        return (1 - beta) * g + beta * v if ema_form else g + beta * v

    def init(params: PyTree) -> Any:
        check_float_params(name, params)
        return state_type(zero_count(), optax.tree.zeros_like(params, dtype=accumulator_dtype))

    def update(updates: PyTree, state: Any, params: PyTree = None, **extra_args: Any) -> tuple[PyTree, Any]:
        del extra_args
        count, trace = state
        check_update_args(name, updates, trace, params)
        velocity = jax.tree.map(accumulate, updates, trace)
        direction = jax.tree.map(accumulate, updates, velocity) if nesterov else velocity
        step = scale_by_neg_lr(direction, learning_rate, count)
        return step, state_type(increment(count), cast_tree(velocity, accumulator_dtype))

    return GradientTransformationExtraArgs(init, update)


def nesterov(learning_rate: ScalarOrSchedule, beta: Any = 0.9,
             form: Literal["heavy_ball", "ema"] = "heavy_ball", *, accumulator_dtype: Any = None
             ) -> GradientTransformationExtraArgs:
    """Nesterov momentum: ``v ← β v + g``, ``u = -η_t (g + β v)`` (see :func:`momentum`)."""
    return momentum(learning_rate, beta, form=form, nesterov=True, accumulator_dtype=accumulator_dtype)


# --------------------------------------------------------------------------------------
# Adagrad, RMSProp
# --------------------------------------------------------------------------------------


class AdagradState(NamedTuple):
    count: jax.Array
    sum_of_squares: PyTree


def adagrad(
    learning_rate: ScalarOrSchedule, initial_accumulator_value: Any = 0.1, eps: Any = 1e-7
) -> GradientTransformationExtraArgs:
    """Adagrad, optax's signature: ``G ← G + |g|²``;  ``u = -η_t g / sqrt(G + ε)`` (0 where ``G = 0``).

    Defaults follow optax (``G_0 = 0.1``, ``ε = 1e-7``); ``|g|² = g · conj(g)`` for complex ``g``.
    """
    check_learning_rate("adagrad", learning_rate)
    check_nonnegative("adagrad", "eps", eps)
    check_nonnegative("adagrad", "initial_accumulator_value", initial_accumulator_value)

    def init(params: PyTree) -> AdagradState:
        check_float_params("adagrad", params)
        return AdagradState(zero_count(), optax.tree.full_like(params, initial_accumulator_value))

    def update(updates: PyTree, state: AdagradState, params: PyTree = None, **extra_args: Any
               ) -> tuple[PyTree, AdagradState]:
        del extra_args
        check_update_args("adagrad", updates, state.sum_of_squares, params)
        sums = jax.tree.map(lambda g, s: abs_sq(g) + s, updates, state.sum_of_squares)
        direction = jax.tree.map(
            lambda g, s: jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g, updates, sums
        )
        return scale_by_neg_lr(direction, learning_rate, state.count), AdagradState(increment(state.count), sums)

    return GradientTransformationExtraArgs(init, update)


class RmspropState(NamedTuple):
    count: jax.Array
    nu: PyTree
    mu: PyTree  # running mean of g when centered, else () (no memory)
    velocity: PyTree  # momentum buffer, else () (no memory)


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
    """RMSProp, optax's signature (same positional order, names and defaults).

    ``s ← γ s + (1 - γ) |g|²`` (centered: also ``m ← γ m + (1 - γ) g`` and use
    ``s - |m|²``); with ``bias_correction`` ``ŝ = s / (1 - γ^t)`` (and ``m̂``), else ``ŝ = s``;
    ``d = g / sqrt(ŝ + ε)`` (``eps_in_sqrt=True``, optax's and the seed's form) or
    ``d = g / (sqrt(ŝ) + ε)`` (PyTorch's form);  ``u = -η_t d``, or with momentum ``β``:
    ``v ← β v + (-η_t d)``, ``u = v`` (Nesterov: ``u = -η_t d + β v``), the learning rate
    applied before the momentum as optax does.
    """
    check_learning_rate("rmsprop", learning_rate)
    check_decay("rmsprop", "decay", decay)
    check_nonnegative("rmsprop", "eps", eps)
    check_nonnegative("rmsprop", "initial_scale", initial_scale)
    if momentum is not None:
        check_decay("rmsprop", "momentum", momentum)

    def init(params: PyTree) -> RmspropState:
        check_float_params("rmsprop", params)
        mu = optax.tree.zeros_like(params) if centered else ()
        velocity = optax.tree.zeros_like(params) if momentum is not None else ()
        return RmspropState(zero_count(), optax.tree.full_like(params, initial_scale), mu, velocity)

    def update(updates: PyTree, state: RmspropState, params: PyTree = None, **extra_args: Any
               ) -> tuple[PyTree, RmspropState]:
        del extra_args
        check_update_args("rmsprop", updates, state.nu, params)
        count = increment(state.count)
        nu = ema(updates, state.nu, decay, 2)
        mu = ema(updates, state.mu, decay, 1) if centered else state.mu
        nu_hat, mu_hat = (bias_correct(nu, decay, count), bias_correct(mu, decay, count)) if bias_correction \
            else (nu, mu)
        variance = jax.tree.map(lambda n, m: n - abs_sq(m), nu_hat, mu_hat) if centered else nu_hat
        if eps_in_sqrt:
            direction = jax.tree.map(lambda v, g: jax.lax.rsqrt(v + eps) * g, variance, updates)
        else:
            direction = jax.tree.map(lambda v, g: 1 / (jnp.sqrt(v) + eps) * g, variance, updates)
        step = scale_by_neg_lr(direction, learning_rate, state.count)
        velocity = state.velocity
        if momentum is not None:
            velocity = jax.tree.map(lambda s, v: s + momentum * v, step, state.velocity)
            step = jax.tree.map(lambda s, v: s + momentum * v, step, velocity) if nesterov else velocity
        return step, RmspropState(count, nu, mu, velocity)

    return GradientTransformationExtraArgs(init, update)


# --------------------------------------------------------------------------------------
# Adam family
# --------------------------------------------------------------------------------------


class AdamState(NamedTuple):
    count: jax.Array
    mu: PyTree
    nu: PyTree


def _adam_init(name: str, mu_dtype: Any) -> Callable[[PyTree], AdamState]:
    """Zero first moment (in ``mu_dtype``) and second moment (distinct buffers), zero step count."""

    def init(params: PyTree) -> AdamState:
        check_float_params(name, params)
        return AdamState(zero_count(), optax.tree.zeros_like(params, dtype=mu_dtype), optax.tree.zeros_like(params))

    return init


def init_adam_state(params: PyTree) -> AdamState:
    """Zero first and second moments (distinct buffers) and a zero step count."""
    return _adam_init("adam", None)(params)


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
    """Adam (Kingma & Ba 2015), optax's signature (``eps_in_sqrt`` is gradkit's, keyword-only).

    ``m ← β1 m + (1 - β1) g``;  ``s ← β2 s + (1 - β2) |g|²``;
    ``m̂ = m / (1 - β1^t)``, ``ŝ = s / (1 - β2^t)``;
    ``u = -η_t m̂ / (sqrt(ŝ + ε_root) + ε)`` (optax's form), or with
    ``eps_in_sqrt=True`` the seed's ``u = -η_t m̂ / sqrt(ŝ + ε_root + ε)``.
    ``nesterov=True`` (NAdam, Dozat 2016) uses
    ``m̂ = β1 m / (1 - β1^{t+1}) + (1 - β1) g / (1 - β1^t)``.  ``m`` is stored in
    ``mu_dtype`` (default: the params' dtype); ``|g|² = g · conj(g)`` for complex ``g``.
    """
    check_learning_rate("adam", learning_rate)
    check_betas("adam", b1, b2)
    check_nonnegative("adam", "eps", eps)
    check_nonnegative("adam", "eps_root", eps_root)
    mu_dtype = check_dtype("adam", "mu_dtype", mu_dtype)

    def denominator(v: jax.Array) -> jax.Array:
        return jnp.sqrt(v + eps_root + eps) if eps_in_sqrt else jnp.sqrt(v + eps_root) + eps

    def update(updates: PyTree, state: AdamState, params: PyTree = None, **extra_args: Any
               ) -> tuple[PyTree, AdamState]:
        del extra_args
        check_update_args("adam", updates, state.nu, params)
        mu = ema(updates, state.mu, b1, 1)
        nu = ema(updates, state.nu, b2, 2)
        count = increment(state.count)
        mu_hat, nu_hat = _adam_moments_hat(mu, nu, updates, b1, b2, count, nesterov)
        direction = jax.tree.map(lambda m, v: m / denominator(v), mu_hat, nu_hat)
        step = scale_by_neg_lr(direction, learning_rate, state.count)
        return step, AdamState(count, cast_tree(mu, mu_dtype), nu)

    return GradientTransformationExtraArgs(_adam_init("adam", mu_dtype), update)


def _adam_moments_hat(mu: PyTree, nu: PyTree, grads: PyTree, b1: Any, b2: Any, count: jax.Array,
                      nesterov: bool) -> tuple[PyTree, PyTree]:
    """Bias-corrected ``(m̂, ŝ)``; with ``nesterov`` the look-ahead ``m̂`` of :func:`_nesterov_mu_hat`."""
    if nesterov:
        return _nesterov_mu_hat(mu, grads, b1, count), bias_correct(nu, b2, count)
    return bias_correct_pair(mu, nu, b1, b2, count)


def _nesterov_mu_hat(mu: PyTree, grads: PyTree, b1: Any, count: jax.Array) -> PyTree:
    """NAdam's look-ahead first moment ``β1 m/(1-β1^{t+1}) + (1-β1) g/(1-β1^t)``."""
    return jax.tree.map(
        lambda m, g: b1 * m + (1 - b1) * g,
        bias_correct(mu, b1, increment(count)),
        bias_correct(grads, b1, count),
    )


def nadam(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
          eps_root: Any = 0.0, mu_dtype: Any = None, *, nesterov: bool = True) -> GradientTransformationExtraArgs:
    """NAdam, optax's signature: Adam with Nesterov's look-ahead first moment (see :func:`adam`)."""
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov)


def adamax(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8
           ) -> GradientTransformationExtraArgs:
    """AdaMax (Adam with the infinity norm), optax's signature.

    ``m ← β1 m + (1 - β1) g``;  ``s ← max(|g| + ε, β2 s)``;  ``u = -η_t m / ((1 - β1^t) s)``.
    """
    check_learning_rate("adamax", learning_rate)
    check_betas("adamax", b1, b2)
    check_nonnegative("adamax", "eps", eps)

    def update(updates: PyTree, state: AdamState, params: PyTree = None, **extra_args: Any
               ) -> tuple[PyTree, AdamState]:
        del extra_args
        check_update_args("adamax", updates, state.mu, params)
        count = increment(state.count)
        mu = ema(updates, state.mu, b1, 1)
        nu = jax.tree.map(lambda g, s: jnp.maximum(jnp.abs(g) + eps, b2 * s), updates, state.nu)
        direction = jax.tree.map(lambda m, s: m / s, bias_correct(mu, b1, count), nu)
        return scale_by_neg_lr(direction, learning_rate, state.count), AdamState(count, mu, nu)

    return GradientTransformationExtraArgs(_adam_init("adamax", None), update)


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-16,
    eps_root: Any = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformationExtraArgs:
    """AdaBelief (Zhuang et al. 2020), optax's signature: scale by the belief in the gradient.

    ``m ← β1 m + (1 - β1) g``;  ``s ← β2 s + (1 - β2)|g - m|² + ε_root``;
    ``u = -η_t m̂ / (sqrt(ŝ) + ε)`` with bias corrections as in Adam (optax's defaults).
    """
    check_learning_rate("adabelief", learning_rate)
    check_betas("adabelief", b1, b2)
    check_nonnegative("adabelief", "eps", eps)
    check_nonnegative("adabelief", "eps_root", eps_root)

    def update(updates: PyTree, state: AdamState, params: PyTree = None, **extra_args: Any
               ) -> tuple[PyTree, AdamState]:
        del extra_args
        check_update_args("adabelief", updates, state.mu, params)
        mu = ema(updates, state.mu, b1, 1)
        surprise = jax.tree.map(lambda g, m: g - m, updates, mu)
        nu = jax.tree.map(lambda s: s + eps_root, ema(surprise, state.nu, b2, 2))
        count = increment(state.count)
        mu_hat, nu_hat = _adam_moments_hat(mu, nu, updates, b1, b2, count, nesterov)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu_hat, nu_hat)
        return scale_by_neg_lr(direction, learning_rate, state.count), AdamState(count, mu, nu)

    return GradientTransformationExtraArgs(_adam_init("adabelief", None), update)


class AmsgradState(NamedTuple):
    count: jax.Array
    mu: PyTree
    nu: PyTree
    nu_max: PyTree


def amsgrad(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
            eps_root: Any = 0.0, mu_dtype: Any = None, bias_correction_mu: bool = True,
            bias_correction_nu: bool = True) -> GradientTransformationExtraArgs:
    """AMSGrad (Reddi et al. 2018), optax's signature: Adam with a non-decreasing second moment.

    ``ŝ_max ← max(ŝ_max, ŝ)``;  ``u = -η_t m̂ / (sqrt(ŝ_max + ε_root) + ε)``, where ``m̂``/``ŝ``
    are bias-corrected (``m/(1-β1^t)``, ``s/(1-β2^t)``) unless ``bias_correction_mu``/``_nu`` is
    False (the paper's form); ``s`` averages ``|g|²``; ``m`` is stored in ``mu_dtype``.
    """
    check_learning_rate("amsgrad", learning_rate)
    check_betas("amsgrad", b1, b2)
    check_nonnegative("amsgrad", "eps", eps)
    check_nonnegative("amsgrad", "eps_root", eps_root)
    mu_dtype = check_dtype("amsgrad", "mu_dtype", mu_dtype)

    def init(params: PyTree) -> AmsgradState:
        check_float_params("amsgrad", params)
        # distinct buffers (not one shared zeros tree), so the state can be donated
        return AmsgradState(zero_count(), optax.tree.zeros_like(params, dtype=mu_dtype),
                            *(optax.tree.zeros_like(params) for _ in range(2)))

    def update(updates: PyTree, state: AmsgradState, params: PyTree = None, **extra_args: Any
               ) -> tuple[PyTree, AmsgradState]:
        del extra_args
        check_update_args("amsgrad", updates, state.nu, params)
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
        step = scale_by_neg_lr(direction, learning_rate, state.count)
        return step, AmsgradState(count, cast_tree(mu, mu_dtype), nu, nu_max)

    return GradientTransformationExtraArgs(init, update)


class LionState(NamedTuple):
    count: jax.Array
    mu: PyTree


def _mask_tree(mask: Any, params: PyTree) -> PyTree:
    """A boolean per params leaf from ``mask`` (a prefix tree of booleans, or a callable of params)."""
    tree = mask(params) if callable(mask) else mask
    return jax.tree.map(lambda m, sub: jax.tree.map(lambda _: m, sub), tree, params)


def lion(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: Any = None,
) -> GradientTransformationExtraArgs:
    """Lion (Chen et al. 2023), optax's signature and defaults.

    ``d = sign((1 - β1) g + β1 m) + λ_t w``;  ``m ← β2 m + (1 - β2) g``;  ``u = -η_t d``.
    ``λ_t`` is a constant or a schedule of the step count; ``mask`` (a prefix tree of booleans,
    or a callable of params returning one) limits the decay to the leaves marked True;
    ``m`` is stored in ``mu_dtype``.
    """
    check_learning_rate("lion", learning_rate)
    check_betas("lion", b1, b2)
    if not callable(weight_decay):
        check_nonnegative("lion", "weight_decay", weight_decay)
    mu_dtype = check_dtype("lion", "mu_dtype", mu_dtype)
    no_decay = concrete_scalar(weight_decay) == 0.0

    def init(params: PyTree) -> LionState:
        check_float_params("lion", params)
        return LionState(zero_count(), optax.tree.zeros_like(params, dtype=mu_dtype))

    def update(updates: PyTree, state: LionState, params: PyTree = None, **extra_args: Any
               ) -> tuple[PyTree, LionState]:
        del extra_args
        check_update_args("lion", updates, state.mu, params)
        direction = jax.tree.map(lambda g, m: jnp.sign((1.0 - b1) * g + b1 * m), updates, state.mu)
        if not no_decay:
            if params is None:
                raise ValueError("lion: weight_decay != 0 needs params in update(updates, state, params)")
            decay = learning_rate_at(weight_decay, state.count)
            keep = _mask_tree(mask, params) if mask is not None else jax.tree.map(lambda _: True, params)
            direction = jax.tree.map(lambda d, w, k: d + decay * w if k else d, direction, params, keep)
        mu = cast_tree(ema(updates, state.mu, b2, 1), mu_dtype)
        return scale_by_neg_lr(direction, learning_rate, state.count), LionState(increment(state.count), mu)

    return GradientTransformationExtraArgs(init, update)


# --------------------------------------------------------------------------------------
# AdaSmooth
# --------------------------------------------------------------------------------------


class AdaSmoothState(NamedTuple):
    count: jax.Array
    sq_avg: PyTree  # E[g²]
    history: PyTree  # last M updates Δx per leaf, shape (M, *leaf.shape), a ring buffer
    net: PyTree  # Σ of the last M updates
    path: PyTree  # Σ of |Δx| over the last M updates


def adasmooth(
    learning_rate: ScalarOrSchedule = 1e-3,
    rho1: Any = 0.5,
    rho2: Any = 0.99,
    eps: Any = 1e-6,
    window: int | None = None,
) -> GradientTransformationExtraArgs:
    """AdaSmooth (Lu 2022, seed 002): per-coordinate decay from the effective ratio.

    With ``Δx`` the last ``M = window`` updates (fewer at the start; ``window=None`` means
    ``M = 10``, the paper's choice):
    ``e_t = |Σ_{i<M} Δx_{t-1-i}| / Σ_{i<M} |Δx_{t-1-i}|``  (0 when nothing has moved yet);
    ``c_t = (ρ2 - ρ1) e_t + (1 - ρ2)``;
    ``E[g²]_t = c_t² g² + (1 - c_t²) E[g²]_{t-1}``;
    ``u = -η_t g / sqrt(E[g²]_t + ε)``.
    A trending coordinate (``e → 1``) averages fast (``c → 1 - ρ1``); a noisy one
    (``e → 0``) slowly (``c → 1 - ρ2``).  Memory: ``M + 3`` arrays per parameter
    (the window as a ring buffer and its two running sums, recomputed exactly every
    ``M`` steps so rounding cannot accumulate).

    ``M`` sets the state's shape, so it must be a Python int when ``init`` is traced.  The
    default (``None``) keeps ``jax.jit(optax.inject_hyperparams(adasmooth)(...).init)`` working;
    an explicit ``window`` given to ``inject_hyperparams`` needs ``static_args="window"``, as
    ``optax.lbfgs``'s ``memory_size`` does.
    """
    check_learning_rate("adasmooth", learning_rate)
    check_decay("adasmooth", "rho1", rho1)
    check_decay("adasmooth", "rho2", rho2)
    check_nonnegative("adasmooth", "eps", eps)
    static_window = ADASMOOTH_DEFAULT_WINDOW if window is None else _static_window(window)
    r1, r2 = concrete_scalar(rho1), concrete_scalar(rho2)
    if r1 is not None and r2 is not None and not r2 > r1:
        raise ValueError(f"adasmooth: needs rho2 > rho1, got rho1={rho1}, rho2={rho2}")

    def init(params: PyTree) -> AdaSmoothState:
        check_float_params("adasmooth", params)
        if static_window is None:
            raise ValueError("adasmooth.init: window is traced but sets the state's shape; pass "
                             "static_args='window' to optax.inject_hyperparams (or leave window at its default)")
        history = jax.tree.map(lambda p: jnp.zeros((static_window,) + jnp.shape(p), jnp.result_type(p)), params)
        sq_avg, net, path = (optax.tree.zeros_like(params) for _ in range(3))  # distinct buffers
        return AdaSmoothState(zero_count(), sq_avg, history, net, path)

    def effective_ratio(net: jax.Array, path: jax.Array) -> jax.Array:
        moved = path > 0
        return jnp.where(moved, jnp.abs(net) / jnp.where(moved, path, 1.0), 0.0)

    def window_sums(history: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(Σ_i h_i, Σ_i |h_i|)`` over the window axis as a fixed left-to-right chain of adds
        (not a reduce, whose association XLA picks per batch shape: a run's result would then
        depend on how many runs share the compiled call)."""
        net, path = history[0], jnp.abs(history[0])
        for i in range(1, history.shape[0]):
            net, path = net + history[i], path + jnp.abs(history[i])
        return net, path

    def update(updates: PyTree, state: AdaSmoothState, params: PyTree = None, **extra_args: Any
               ) -> tuple[PyTree, AdaSmoothState]:
        del extra_args
        check_update_args("adasmooth", updates, state.sq_avg, params)
        # the window is read off the state (static), so a traced ``window`` (inject_hyperparams) works
        history_leaves = jax.tree.leaves(state.history)
        size = history_leaves[0].shape[0] if history_leaves else 1
        smoothing = jax.tree.map(lambda n, p: (rho2 - rho1) * effective_ratio(n, p) + (1 - rho2),
                                 state.net, state.path)
        sq_avg = jax.tree.map(lambda g, avg, c: c * c * abs_sq(g) + (1 - c * c) * avg,
                              updates, state.sq_avg, smoothing)
        direction = jax.tree.map(lambda g, avg: g / jnp.sqrt(avg + eps), updates, sq_avg)
        step = scale_by_neg_lr(direction, learning_rate, state.count)
        slot = state.count % size
        oldest = jax.tree.map(lambda h: h[slot], state.history)
        history = jax.tree.map(lambda h, s: h.at[slot].set(s), state.history, step)
        refresh = slot == size - 1  # exact sums once per window, so rounding cannot accumulate
        net = jax.tree.map(lambda n, s, o, h: jnp.where(refresh, window_sums(h)[0], n + s - o),
                           state.net, step, oldest, history)
        path = jax.tree.map(lambda p, s, o, h: jnp.where(refresh, window_sums(h)[1], p + jnp.abs(s) - jnp.abs(o)),
                            state.path, step, oldest, history)
        return step, AdaSmoothState(increment(state.count), sq_avg, history, net, path)

    return GradientTransformationExtraArgs(init, update)


ADASMOOTH_DEFAULT_WINDOW = 10
"""``M`` of :func:`adasmooth` when ``window=None`` (Lu 2022 uses 10)."""


def _static_window(window: Any) -> int | None:
    """The window as a Python int; ``None`` when it is traced (inject_hyperparams' update, where
    the state's shape carries it); a clear error for anything else."""
    if isinstance(window, jax.core.Tracer):
        return None
    if isinstance(window, bool) or not (isinstance(window, numbers.Integral) or
                                        (np.ndim(window) == 0 and np.issubdtype(np.asarray(window).dtype,
                                                                                np.integer))):
        raise ValueError(f"adasmooth: window must be a positive int, got {window!r}")
    if int(window) < 1:
        raise ValueError(f"adasmooth: window must be a positive int, got {window!r}")
    return int(window)

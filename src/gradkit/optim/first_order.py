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

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradkit.optim._common import (
    PyTree,
    ScalarOrSchedule,
    bias_correct,
    bias_correct_pair,
    check_betas,
    check_decay,
    check_learning_rate,
    check_nonnegative,
    check_tree_match,
    ema,
    increment,
    scale_by_neg_lr,
    zero_count,
)

GradientTransformation = optax.GradientTransformation


# --------------------------------------------------------------------------------------
# SGD and momentum
# --------------------------------------------------------------------------------------


class SgdState(NamedTuple):
    count: jax.Array


class MomentumState(NamedTuple):
    count: jax.Array
    velocity: PyTree


def sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """Gradient descent: ``u = -η_t g``."""
    check_learning_rate("sgd", learning_rate)

    def init(params: PyTree) -> SgdState:
        del params
        return SgdState(zero_count())

    def update(updates: PyTree, state: SgdState, params: PyTree = None) -> tuple[PyTree, SgdState]:
        del params
        return scale_by_neg_lr(updates, learning_rate, state.count), SgdState(increment(state.count))

    return GradientTransformation(init, update)


def momentum(
    learning_rate: ScalarOrSchedule,
    beta: Any = 0.9,
    form: Literal["heavy_ball", "ema"] = "heavy_ball",
    nesterov: bool = False,
) -> GradientTransformation:
    """Momentum in two forms.

    * ``form="heavy_ball"`` (optax ``sgd(momentum=β)``): ``v ← β v + g``;
      ``u = -η_t v``, or with Nesterov ``u = -η_t (g + β v)``.
    * ``form="ema"`` (seed 002): ``v ← β v + (1 - β) g``;
      ``u = -η_t v``, or with Nesterov ``u = -η_t (β v + (1 - β) g)``.

    The forms coincide up to rescaling ``η`` by ``1/(1 - β)`` at steady state but
    differ in the transient (the EMA starts at ``(1 - β) g``).
    """
    check_learning_rate("momentum", learning_rate)
    check_decay("momentum", "beta", beta)
    if form not in ("heavy_ball", "ema"):
        raise ValueError(f"momentum: form must be 'heavy_ball' or 'ema', got {form!r}")
    ema_form = form == "ema"

    def accumulate(g: jax.Array, v: jax.Array) -> jax.Array:
        return (1 - beta) * g + beta * v if ema_form else g + beta * v

    def init(params: PyTree) -> MomentumState:
        return MomentumState(zero_count(), optax.tree.zeros_like(params))

    def update(updates: PyTree, state: MomentumState, params: PyTree = None) -> tuple[PyTree, MomentumState]:
        del params
        check_tree_match("momentum", updates, state.velocity)
        velocity = jax.tree.map(accumulate, updates, state.velocity)
        direction = jax.tree.map(accumulate, updates, velocity) if nesterov else velocity
        return scale_by_neg_lr(direction, learning_rate, state.count), MomentumState(increment(state.count), velocity)

    return GradientTransformation(init, update)


def nesterov(learning_rate: ScalarOrSchedule, beta: Any = 0.9,
             form: Literal["heavy_ball", "ema"] = "heavy_ball") -> GradientTransformation:
    """Nesterov momentum: ``v ← β v + g``, ``u = -η_t (g + β v)`` (see :func:`momentum`)."""
    return momentum(learning_rate, beta, form=form, nesterov=True)


# --------------------------------------------------------------------------------------
# Adagrad, RMSProp
# --------------------------------------------------------------------------------------


class AdagradState(NamedTuple):
    count: jax.Array
    sum_of_squares: PyTree


def adagrad(
    learning_rate: ScalarOrSchedule, initial_accumulator_value: Any = 0.1, eps: Any = 1e-7
) -> GradientTransformation:
    """Adagrad: ``G ← G + g²``;  ``u = -η_t g / sqrt(G + ε)`` (0 where ``G = 0``).

    Defaults follow optax (``G_0 = 0.1``, ``ε = 1e-7``).
    """
    check_learning_rate("adagrad", learning_rate)
    check_nonnegative("adagrad", "eps", eps)
    check_nonnegative("adagrad", "initial_accumulator_value", initial_accumulator_value)

    def init(params: PyTree) -> AdagradState:
        return AdagradState(zero_count(), optax.tree.full_like(params, initial_accumulator_value))

    def update(updates: PyTree, state: AdagradState, params: PyTree = None) -> tuple[PyTree, AdagradState]:
        del params
        check_tree_match("adagrad", updates, state.sum_of_squares)
        sums = jax.tree.map(lambda g, s: g * g + s, updates, state.sum_of_squares)
        direction = jax.tree.map(
            lambda g, s: jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g, updates, sums
        )
        return scale_by_neg_lr(direction, learning_rate, state.count), AdagradState(increment(state.count), sums)

    return GradientTransformation(init, update)


class RmspropState(NamedTuple):
    count: jax.Array
    nu: PyTree
    mu: PyTree  # running mean of g when centered, else () (no memory)
    velocity: PyTree  # momentum buffer, else () (no memory)


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: Any = 0.9,
    eps: Any = 1e-8,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: Any = None,
    nesterov: bool = False,
    initial_scale: Any = 0.0,
) -> GradientTransformation:
    """RMSProp.

    ``s ← γ s + (1 - γ) g²`` (centered: also ``m ← γ m + (1 - γ) g`` and use
    ``s - m²``);  ``d = g / sqrt(s + ε)`` (``eps_in_sqrt=True``, optax's and the
    seed's form) or ``d = g / (sqrt(s) + ε)`` (PyTorch's form);  ``u = -η_t d``,
    or with momentum ``β``: ``v ← β v + (-η_t d)``, ``u = v`` (Nesterov:
    ``u = -η_t d + β v``), the learning rate applied before the momentum as optax does.
    """
    check_learning_rate("rmsprop", learning_rate)
    check_decay("rmsprop", "decay", decay)
    check_nonnegative("rmsprop", "eps", eps)
    if momentum is not None:
        check_decay("rmsprop", "momentum", momentum)

    def init(params: PyTree) -> RmspropState:
        mu = optax.tree.zeros_like(params) if centered else ()
        velocity = optax.tree.zeros_like(params) if momentum is not None else ()
        return RmspropState(zero_count(), optax.tree.full_like(params, initial_scale), mu, velocity)

    def update(updates: PyTree, state: RmspropState, params: PyTree = None) -> tuple[PyTree, RmspropState]:
        del params
        check_tree_match("rmsprop", updates, state.nu)
        nu = ema(updates, state.nu, decay, 2)
        mu = ema(updates, state.mu, decay, 1) if centered else state.mu
        variance = jax.tree.map(lambda n, m: n - m * m, nu, mu) if centered else nu
        if eps_in_sqrt:
            direction = jax.tree.map(lambda v, g: jax.lax.rsqrt(v + eps) * g, variance, updates)
        else:
            direction = jax.tree.map(lambda v, g: 1 / (jnp.sqrt(v) + eps) * g, variance, updates)
        step = scale_by_neg_lr(direction, learning_rate, state.count)
        velocity = state.velocity
        if momentum is not None:
            velocity = jax.tree.map(lambda s, v: s + momentum * v, step, state.velocity)
            step = jax.tree.map(lambda s, v: s + momentum * v, step, velocity) if nesterov else velocity
        return step, RmspropState(increment(state.count), nu, mu, velocity)

    return GradientTransformation(init, update)


# --------------------------------------------------------------------------------------
# Adam family
# --------------------------------------------------------------------------------------


class AdamState(NamedTuple):
    count: jax.Array
    mu: PyTree
    nu: PyTree


def init_adam_state(params: PyTree) -> AdamState:
    """Zero first and second moments (distinct buffers) and a zero step count."""
    return AdamState(zero_count(), optax.tree.zeros_like(params), optax.tree.zeros_like(params))


def adam(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    nesterov: bool = False,
    eps_in_sqrt: bool = False,
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015).

    ``m ← β1 m + (1 - β1) g``;  ``s ← β2 s + (1 - β2) g²``;
    ``m̂ = m / (1 - β1^t)``, ``ŝ = s / (1 - β2^t)``;
    ``u = -η_t m̂ / (sqrt(ŝ + ε_root) + ε)`` (optax's form), or with
    ``eps_in_sqrt=True`` the seed's ``u = -η_t m̂ / sqrt(ŝ + ε)``.
    ``nesterov=True`` (NAdam, Dozat 2016) uses
    ``m̂ = β1 m / (1 - β1^{t+1}) + (1 - β1) g / (1 - β1^t)``.
    """
    check_learning_rate("adam", learning_rate)
    check_betas("adam", b1, b2)
    check_nonnegative("adam", "eps", eps)
    check_nonnegative("adam", "eps_root", eps_root)

    def denominator(v: jax.Array) -> jax.Array:
        return jnp.sqrt(v + eps_root + eps) if eps_in_sqrt else jnp.sqrt(v + eps_root) + eps

    def update(updates: PyTree, state: AdamState, params: PyTree = None) -> tuple[PyTree, AdamState]:
        del params
        check_tree_match("adam", updates, state.mu)
        mu = ema(updates, state.mu, b1, 1)
        nu = ema(updates, state.nu, b2, 2)
        count = increment(state.count)
        mu_hat, nu_hat = _adam_moments_hat(mu, nu, updates, b1, b2, count, nesterov)
        direction = jax.tree.map(lambda m, v: m / denominator(v), mu_hat, nu_hat)
        return scale_by_neg_lr(direction, learning_rate, state.count), AdamState(count, mu, nu)

    return GradientTransformation(init_adam_state, update)


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
          eps_root: Any = 0.0) -> GradientTransformation:
    """NAdam: Adam with Nesterov's look-ahead first moment (see :func:`adam`, ``nesterov=True``)."""
    return adam(learning_rate, b1, b2, eps, eps_root, nesterov=True)


def adamax(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8
           ) -> GradientTransformation:
    """AdaMax (Adam with the infinity norm).

    ``m ← β1 m + (1 - β1) g``;  ``s ← max(|g| + ε, β2 s)``;  ``u = -η_t m / ((1 - β1^t) s)``.
    """
    check_learning_rate("adamax", learning_rate)
    check_betas("adamax", b1, b2)
    check_nonnegative("adamax", "eps", eps)

    def update(updates: PyTree, state: AdamState, params: PyTree = None) -> tuple[PyTree, AdamState]:
        del params
        check_tree_match("adamax", updates, state.mu)
        count = increment(state.count)
        mu = ema(updates, state.mu, b1, 1)
        nu = jax.tree.map(lambda g, s: jnp.maximum(jnp.abs(g) + eps, b2 * s), updates, state.nu)
        direction = jax.tree.map(lambda m, s: m / s, bias_correct(mu, b1, count), nu)
        return scale_by_neg_lr(direction, learning_rate, state.count), AdamState(count, mu, nu)

    return GradientTransformation(init_adam_state, update)


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-16,
    eps_root: Any = 1e-16,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdaBelief (Zhuang et al. 2020): scale by the belief in the observed gradient.

    ``m ← β1 m + (1 - β1) g``;  ``s ← β2 s + (1 - β2)(g - m)² + ε_root``;
    ``u = -η_t m̂ / (sqrt(ŝ) + ε)`` with bias corrections as in Adam (optax's defaults).
    """
    check_learning_rate("adabelief", learning_rate)
    check_betas("adabelief", b1, b2)
    check_nonnegative("adabelief", "eps", eps)
    check_nonnegative("adabelief", "eps_root", eps_root)

    def update(updates: PyTree, state: AdamState, params: PyTree = None) -> tuple[PyTree, AdamState]:
        del params
        check_tree_match("adabelief", updates, state.mu)
        mu = ema(updates, state.mu, b1, 1)
        surprise = jax.tree.map(lambda g, m: g - m, updates, mu)
        nu = jax.tree.map(lambda s: s + eps_root, ema(surprise, state.nu, b2, 2))
        count = increment(state.count)
        mu_hat, nu_hat = _adam_moments_hat(mu, nu, updates, b1, b2, count, nesterov)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu_hat, nu_hat)
        return scale_by_neg_lr(direction, learning_rate, state.count), AdamState(count, mu, nu)

    return GradientTransformation(init_adam_state, update)


class AmsgradState(NamedTuple):
    count: jax.Array
    mu: PyTree
    nu: PyTree
    nu_max: PyTree


def amsgrad(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.999, eps: Any = 1e-8,
            eps_root: Any = 0.0) -> GradientTransformation:
    """AMSGrad (Reddi et al. 2018): Adam with a non-decreasing second moment.

    ``ŝ_max ← max(ŝ_max, s / (1 - β2^t))``;  ``u = -η_t m̂ / (sqrt(ŝ_max + ε_root) + ε)``.
    """
    check_learning_rate("amsgrad", learning_rate)
    check_betas("amsgrad", b1, b2)
    check_nonnegative("amsgrad", "eps", eps)
    check_nonnegative("amsgrad", "eps_root", eps_root)

    def init(params: PyTree) -> AmsgradState:
        # distinct buffers (not one shared zeros tree), so the state can be donated
        return AmsgradState(zero_count(), *(optax.tree.zeros_like(params) for _ in range(3)))

    def update(updates: PyTree, state: AmsgradState, params: PyTree = None) -> tuple[PyTree, AmsgradState]:
        del params
        check_tree_match("amsgrad", updates, state.mu)
        mu = ema(updates, state.mu, b1, 1)
        nu = ema(updates, state.nu, b2, 2)
        count = increment(state.count)
        mu_hat, nu_hat = bias_correct_pair(mu, nu, b1, b2, count)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu_hat)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_max)
        return scale_by_neg_lr(direction, learning_rate, state.count), AmsgradState(count, mu, nu, nu_max)

    return GradientTransformation(init, update)


class LionState(NamedTuple):
    count: jax.Array
    mu: PyTree


def lion(learning_rate: ScalarOrSchedule, b1: Any = 0.9, b2: Any = 0.99, weight_decay: Any = 1e-3
         ) -> GradientTransformation:
    """Lion (Chen et al. 2023), optax's defaults.

    ``d = sign((1 - β1) g + β1 m) + λ w``;  ``m ← β2 m + (1 - β2) g``;  ``u = -η_t d``.
    """
    check_learning_rate("lion", learning_rate)
    check_betas("lion", b1, b2)
    check_nonnegative("lion", "weight_decay", weight_decay)

    def init(params: PyTree) -> LionState:
        return LionState(zero_count(), optax.tree.zeros_like(params))

    def update(updates: PyTree, state: LionState, params: PyTree = None) -> tuple[PyTree, LionState]:
        check_tree_match("lion", updates, state.mu)
        direction = jax.tree.map(lambda g, m: jnp.sign((1.0 - b1) * g + b1 * m), updates, state.mu)
        if params is not None:
            direction = jax.tree.map(lambda d, w: d + weight_decay * w, direction, params)
        elif not (isinstance(weight_decay, (int, float)) and weight_decay == 0):
            raise ValueError("lion: weight_decay != 0 needs params in update(updates, state, params)")
        mu = ema(updates, state.mu, b2, 1)
        return scale_by_neg_lr(direction, learning_rate, state.count), LionState(increment(state.count), mu)

    return GradientTransformation(init, update)


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
    window: int = 10,
) -> GradientTransformation:
    """AdaSmooth (Lu 2022, seed 002): per-coordinate decay from the effective ratio.

    With ``Δx`` the last ``M = window`` updates (fewer at the start):
    ``e_t = |Σ_{i<M} Δx_{t-1-i}| / Σ_{i<M} |Δx_{t-1-i}|``  (0 when nothing has moved yet);
    ``c_t = (ρ2 - ρ1) e_t + (1 - ρ2)``;
    ``E[g²]_t = c_t² g² + (1 - c_t²) E[g²]_{t-1}``;
    ``u = -η_t g / sqrt(E[g²]_t + ε)``.
    A trending coordinate (``e → 1``) averages fast (``c → 1 - ρ1``); a noisy one
    (``e → 0``) slowly (``c → 1 - ρ2``).  Memory: ``M + 3`` arrays per parameter
    (the window as a ring buffer and its two running sums, recomputed exactly every
    ``M`` steps so rounding cannot accumulate).
    """
    check_learning_rate("adasmooth", learning_rate)
    check_decay("adasmooth", "rho1", rho1)
    check_decay("adasmooth", "rho2", rho2)
    check_nonnegative("adasmooth", "eps", eps)
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"adasmooth: window must be a positive int, got {window!r}")
    if all(isinstance(r, (int, float)) for r in (rho1, rho2)) and not rho2 > rho1:
        raise ValueError(f"adasmooth: needs rho2 > rho1, got rho1={rho1}, rho2={rho2}")

    def init(params: PyTree) -> AdaSmoothState:
        history = jax.tree.map(lambda p: jnp.zeros((window,) + jnp.shape(p), jnp.asarray(p).dtype), params)
        sq_avg, net, path = (optax.tree.zeros_like(params) for _ in range(3))  # distinct buffers
        return AdaSmoothState(zero_count(), sq_avg, history, net, path)

    def effective_ratio(net: jax.Array, path: jax.Array) -> jax.Array:
        moved = path > 0
        return jnp.where(moved, jnp.abs(net) / jnp.where(moved, path, 1.0), 0.0)

    def update(updates: PyTree, state: AdaSmoothState, params: PyTree = None) -> tuple[PyTree, AdaSmoothState]:
        del params
        check_tree_match("adasmooth", updates, state.sq_avg)
        smoothing = jax.tree.map(lambda n, p: (rho2 - rho1) * effective_ratio(n, p) + (1 - rho2),
                                 state.net, state.path)
        sq_avg = jax.tree.map(lambda g, avg, c: c * c * g * g + (1 - c * c) * avg, updates, state.sq_avg, smoothing)
        direction = jax.tree.map(lambda g, avg: g / jnp.sqrt(avg + eps), updates, sq_avg)
        step = scale_by_neg_lr(direction, learning_rate, state.count)
        slot = state.count % window
        oldest = jax.tree.map(lambda h: h[slot], state.history)
        history = jax.tree.map(lambda h, s: h.at[slot].set(s), state.history, step)

        def refreshed() -> tuple[PyTree, PyTree]:  # exact sums, once per window
            return (jax.tree.map(lambda h: jnp.sum(h, axis=0), history),
                    jax.tree.map(lambda h: jnp.sum(jnp.abs(h), axis=0), history))

        def incremental() -> tuple[PyTree, PyTree]:
            return (jax.tree.map(lambda n, s, o: n + s - o, state.net, step, oldest),
                    jax.tree.map(lambda p, s, o: p + jnp.abs(s) - jnp.abs(o), state.path, step, oldest))

        net, path = jax.lax.cond(slot == window - 1, refreshed, incremental)
        return step, AdaSmoothState(increment(state.count), sq_avg, history, net, path)

    return GradientTransformation(init, update)

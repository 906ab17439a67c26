"""Sophia (Liu, Li, Hall, Liang & Ma 2023, "Sophia: A Scalable Stochastic Second-order
Optimizer for Language Model Pre-training") and its two diagonal-Hessian estimators.

One step, with ``g`` the gradient, ``h`` an estimate of ``diag ∇²L`` and ``t`` the 1-based step:

    m ← β1 m + (1 - β1) g,          m̂ = m / (1 - β1^t)
    u = clip(m̂ / max(γ h̄, ε), -ρ, ρ)                      (h̄: the EMA below, *before* this step)
    u ← u + λ w                                           (decoupled weight decay, optional mask)
    u ← -η_t u
    every k-th step (t - 1 ≡ 0 mod k):  h̄ ← β2 h̄ + (1 - β2) h

Step-equal to ``optax.contrib.sophia`` (same order of operations, same key splitting,
same Rademacher probes).  The estimate ``h`` comes from ``hessian_diagonal_fn``, itself a
``GradientTransformationExtraArgs`` whose ``update`` receives sophia's extra keywords:

* :func:`hutchinson_estimator_diag_hessian` (Sophia-H): ``h = z ⊙ (∇²L z)``, ``z`` Rademacher,
  ``E[h] = diag ∇²L``; the product is ``jvp(grad L)`` (forward-over-reverse, no Hessian).
  Needs the objective: ``obj_fn=L`` (optax's name) or ``value_fn=L`` (what
  ``gradkit.runs.run`` passes).
* :func:`gnb_estimator_diag_hessian` (Sophia-G, Gauss-Newton-Bartlett): for a softmax
  cross-entropy model with logits ``z_b = f(w, x_b)`` on a batch of ``B`` examples, draw
  ``ŷ_b ~ softmax(z_b)`` and return ``h = B · ĝ ⊙ ĝ`` with
  ``ĝ = ∇_w (1/B) Σ_b CE(z_b, ŷ_b)``; ``E[h] = diag((1/B) Σ_b J_bᵀ H_b J_b)``, the diagonal
  of the Gauss-Newton matrix (``H_b = diag(p_b) - p_b p_bᵀ``).  Needs ``logits_fn=f``
  (params -> logits of shape ``(B, C)``).

Both estimators hold their key in their state and split it at every estimate, so a
runner needs to pass no key: only the objective (or the logits function).
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit._validate import check_prng_key
from gradkit.derivatives import scalar_fn
from gradkit.optim._common import (
    PyTree,
    ScalarOrSchedule,
    bias_correct,
    check_betas,
    check_learning_rate,
    check_nonnegative,
    check_positive,
    check_tree_match,
    ema,
    increment,
    scale_by_neg_lr,
    zero_count,
)

Objective = Callable[[PyTree], jax.Array]


class HutchinsonState(NamedTuple):
    key: jax.Array


class GnbState(NamedTuple):
    key: jax.Array


class SophiaState(NamedTuple):
    count: jax.Array
    mu: PyTree
    nu: PyTree
    hessian_fn_state: Any


def _default_key(random_seed: jax.Array | None, where: str) -> jax.Array:
    if random_seed is None:
        return jax.random.PRNGKey(0)
    check_prng_key(where, "random_seed", random_seed)
    return jnp.asarray(random_seed)


def rademacher_like(key: jax.Array, params: PyTree) -> PyTree:
    """``z`` shaped like ``params``, i.i.d. ±1 in each leaf's dtype (the same draws as
    optax's Hutchinson estimator: one key per leaf, ``jax.random.rademacher`` in float32)."""
    signs = optax.tree.random_like(key, params, jax.random.rademacher, dtype=jnp.float32)
    return jax.tree.map(lambda s, p: s.astype(jnp.result_type(p)), signs, params)


def hutchinson_diagonal(f: Objective, params: PyTree, key: jax.Array) -> PyTree:
    """One Hutchinson sample of the Hessian diagonal: ``z ⊙ (∇²f(w) z)``, ``z`` Rademacher.

    Unbiased (``E[z_i z_j] = δ_ij``), exact when ``∇²f`` is diagonal; ``∇²f z`` is
    ``jax.jvp(jax.grad(f))`` (one forward-over-reverse pass).
    """
    f = scalar_fn(f, "hutchinson_diagonal objective")
    z = rademacher_like(key, params)
    hz = jax.jvp(jax.grad(f), (params,), (z,))[1]
    return jax.tree.map(lambda h, s: h * s, hz, z)


def _pick_objective(name: str, obj_fn: Objective | None, value_fn: Objective | None) -> Objective:
    fn = obj_fn if obj_fn is not None else value_fn
    if fn is None:
        raise ValueError(f"{name}.update needs the objective: update(grads, state, params, obj_fn=L) "
                         "(or value_fn=L, as gradkit.runs.run passes it)")
    return fn


def hutchinson_estimator_diag_hessian(random_seed: jax.Array | None = None) -> optax.GradientTransformationExtraArgs:
    """Sophia-H's estimator: ``update(grads, state, params, obj_fn=L)`` returns
    ``h = z ⊙ (∇²L(w) z)`` (see :func:`hutchinson_diagonal`) with
    ``key, subkey = split(key)`` per call, as ``optax.contrib.hutchinson_estimator_diag_hessian``.
    ``value_fn=L`` is accepted for ``obj_fn``; ``grads`` is ignored.
    """
    start_key = _default_key(random_seed, "hutchinson_estimator_diag_hessian")

    def init(params: PyTree) -> HutchinsonState:
        del params
        return HutchinsonState(start_key)

    def update(updates: PyTree, state: HutchinsonState, params: PyTree = None, *,
               obj_fn: Objective | None = None, value_fn: Objective | None = None, **extra_args: Any
               ) -> tuple[PyTree, HutchinsonState]:
        del updates, extra_args
        if params is None:
            raise ValueError("hutchinson_estimator_diag_hessian.update needs params")
        fn = _pick_objective("hutchinson_estimator_diag_hessian", obj_fn, value_fn)
        key, subkey = jax.random.split(state.key)
        return hutchinson_diagonal(fn, params, subkey), HutchinsonState(key)

    return optax.GradientTransformationExtraArgs(init, update)


def gnb_diagonal(logits_fn: Callable[[PyTree], jax.Array], params: PyTree, key: jax.Array) -> PyTree:
    """One Gauss-Newton-Bartlett sample: ``B · ĝ ⊙ ĝ``, ``ĝ = ∇_w (1/B) Σ_b CE(z_b(w), ŷ_b)``
    with labels ``ŷ_b ~ softmax(z_b)`` drawn from the model itself; ``logits_fn(w)`` has
    shape ``(B, C)``.  ``E[B ĝ ⊙ ĝ] = diag((1/B) Σ_b J_bᵀ (diag p_b - p_b p_bᵀ) J_b)``."""
    logits = logits_fn(params)
    if jnp.ndim(logits) != 2:
        raise ValueError(f"gnb_diagonal: logits_fn must return logits of shape (batch, classes), "
                         f"got shape {jnp.shape(logits)}")
    batch = logits.shape[0]
    labels = jax.lax.stop_gradient(jax.random.categorical(key, logits, axis=-1))

    def sampled_loss(w: PyTree) -> jax.Array:
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_fn(w), labels))

    g = jax.grad(sampled_loss)(params)
    return jax.tree.map(lambda x: batch * x * x, g)


def gnb_estimator_diag_hessian(random_seed: jax.Array | None = None) -> optax.GradientTransformationExtraArgs:
    """Sophia-G's estimator: ``update(grads, state, params, logits_fn=f)`` returns
    :func:`gnb_diagonal` of ``f`` at ``params`` with ``key, subkey = split(key)`` per call.
    ``logits_fn`` maps params to the logits ``(B, C)`` of the current mini-batch."""
    start_key = _default_key(random_seed, "gnb_estimator_diag_hessian")

    def init(params: PyTree) -> GnbState:
        del params
        return GnbState(start_key)

    def update(updates: PyTree, state: GnbState, params: PyTree = None, *,
               logits_fn: Callable[[PyTree], jax.Array] | None = None, **extra_args: Any
               ) -> tuple[PyTree, GnbState]:
        del updates, extra_args
        if params is None or logits_fn is None:
            raise ValueError("gnb_estimator_diag_hessian.update needs params and the model's logits: "
                             "update(grads, state, params, logits_fn=f)  (f: params -> (batch, classes))")
        key, subkey = jax.random.split(state.key)
        return gnb_diagonal(logits_fn, params, subkey), GnbState(key)

    return optax.GradientTransformationExtraArgs(init, update)


def _check_update_interval(value: Any) -> None:
    """A positive integer (a Python or NumPy integer, or an integer-valued real); a traced array
    (``inject_hyperparams``) passes; anything else is named."""
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or
                                       (np.ndim(value) == 0 and np.issubdtype(np.asarray(value).dtype, np.number))):
        raise TypeError(f"sophia: update_interval must be a positive integer, got {type(value).__name__} {value!r}")
    if float(value) < 1 or float(value) != int(value):
        raise ValueError(f"sophia: update_interval must be a positive integer, got {value!r}")


def _full_mask(mask: Any, params: PyTree) -> PyTree | None:
    """The weight-decay mask as a full tree of Python/array booleans (``None``: decay everything);
    ``mask`` is a prefix tree of params or a callable ``params -> such a tree``."""
    if mask is None:
        return None
    tree = mask(params) if callable(mask) else mask
    return jax.tree.map(lambda m, sub: jax.tree.map(lambda _: m, sub), tree, params)


def sophia(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.965,
    b2: Any = 0.99,
    eps: Any = 1e-8,
    weight_decay: Any = 1e-4,
    weight_decay_mask: Any = None,
    gamma: Any = 0.01,
    clip_threshold: Any | None = 1.0,
    update_interval: Any = 10,
    hessian_diagonal_fn: optax.GradientTransformation | None = None,
    mu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Sophia: ``u = -η_t (clip(m̂ / max(γ h̄, ε), ±ρ) + λ w)`` (formulas in the module doc).

    Arguments as ``optax.contrib.sophia`` (``ρ = clip_threshold``, ``None``: no clipping;
    ``λ = weight_decay``, ``weight_decay_mask`` a prefix tree of booleans or a callable;
    ``k = update_interval``; ``mu_dtype`` the dtype of ``m``).  ``hessian_diagonal_fn``
    defaults to :func:`hutchinson_estimator_diag_hessian` with key ``PRNGKey(0)``;
    ``update(grads, state, params, **kw)`` forwards ``kw`` to it (``obj_fn=L`` /
    ``value_fn=L`` for Hutchinson, ``logits_fn=f`` for :func:`gnb_estimator_diag_hessian`).
    The key lives in the state, so ``gradkit.runs.run`` drives it with ``value_fn`` alone.
    """
    check_learning_rate("sophia", learning_rate)
    check_betas("sophia", b1, b2)
    check_nonnegative("sophia", "eps", eps)
    check_nonnegative("sophia", "weight_decay", weight_decay)
    check_positive("sophia", "gamma", gamma)
    if clip_threshold is not None:
        check_positive("sophia", "clip_threshold", clip_threshold)
    _check_update_interval(update_interval)
    if hessian_diagonal_fn is None:
        hessian_diagonal_fn = hutchinson_estimator_diag_hessian()
    if not isinstance(hessian_diagonal_fn, optax.GradientTransformation):
        raise TypeError("sophia: hessian_diagonal_fn must be an optax.GradientTransformation(ExtraArgs), "
                        f"got {type(hessian_diagonal_fn).__name__}")
    estimator = optax.with_extra_args_support(hessian_diagonal_fn)
    mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

    def init(params: PyTree) -> SophiaState:
        return SophiaState(
            count=zero_count(),
            mu=optax.tree.zeros_like(params, dtype=mu_dtype),
            nu=optax.tree.zeros_like(params),
            hessian_fn_state=estimator.init(params),
        )

    def update(updates: PyTree, state: SophiaState, params: PyTree = None, **hess_fn_kwargs: Any
               ) -> tuple[PyTree, SophiaState]:
        if params is None:
            raise ValueError("sophia.update needs params: update(grads, state, params, obj_fn=L)")
        check_tree_match("sophia", updates, state.nu)
        count = increment(state.count)
        grads = updates
        mu = ema(grads, state.mu, b1)
        mu_hat = bias_correct(mu, b1, count)
        direction = jax.tree.map(lambda m, h: m / jnp.maximum(gamma * h, eps), mu_hat, state.nu)
        if clip_threshold is not None:
            direction = jax.tree.map(lambda u: jnp.clip(u, -clip_threshold, clip_threshold), direction)
        mask = _full_mask(weight_decay_mask, params)
        if mask is None:
            direction = jax.tree.map(lambda u, w: u + weight_decay * w, direction, params)
        else:
            direction = jax.tree.map(lambda u, w, m: jnp.where(m, u + weight_decay * w, u), direction, params, mask)

        def refresh(hess_state: Any, nu: PyTree) -> tuple[Any, PyTree]:
            diag, hess_state = estimator.update(grads, hess_state, params=params, **hess_fn_kwargs)
            return hess_state, ema(diag, nu, b2)

        hess_state, nu = jax.lax.cond(jnp.equal(state.count % update_interval, 0), refresh,
                                      lambda h, n: (h, n), state.hessian_fn_state, state.nu)
        mu = mu if mu_dtype is None else jax.tree.map(lambda m: m.astype(mu_dtype), mu)
        new_updates = scale_by_neg_lr(direction, learning_rate, state.count)
        return new_updates, SophiaState(count, mu, nu, hess_state)

    return optax.GradientTransformationExtraArgs(init, update)

"""AdaHessian (Yao, Gholami, Shen, Mustafa, Keutzer & Mahoney 2021, "ADAHESSIAN: An Adaptive
Second Order Optimizer for Machine Learning").

Adam with the squared gradient replaced by a squared Hutchinson estimate of the Hessian
diagonal.  One step, with ``g`` the gradient and ``t`` the 1-based step:

    D = z ⊙ (∇²L(w) z),  z Rademacher                 (E[D] = diag ∇²L; jvp of grad)
    D̄ = |D|, averaged over the spatial axes of conv kernels   (spatial averaging)
    m ← β1 m + (1 - β1) g,          v ← β2 v + (1 - β2) D̄ ⊙ D̄
    u = -η_t ( (m / (1 - β1^t)) / ( (sqrt(v) / sqrt(1 - β2^t))^k + ε ) + λ w )

``k`` is the Hessian power (``k = 1``: full second-order scaling, ``k = 0``: momentum SGD
with a rescaled step); ``λ`` the decoupled weight decay.  This is the authors' reference
update (``ε`` outside the power).  Spatial averaging: for a leaf of a conv kernel the
|diagonal| is averaged over the kernel's spatial axes (every ``kh × kw`` block shares one
value), which smooths the noisy estimate; by default 4-D leaves are treated as Flax/lax
``HWIO`` kernels (axes ``(0, 1)``), other leaves are left alone; ``spatial_axes`` overrides
this per leaf (e.g. ``lambda x: (2, 3) if x.ndim == 4 else ()`` for PyTorch's ``OIHW``).

The objective comes through ``update``'s extra keyword ``value_fn=L`` (what
``gradkit.runs.run`` passes; ``obj_fn=L`` is accepted too); the probe key is held in the
state and split every step, so no key argument is needed.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp

import optax

from gradkit._validate import check_prng_key
from gradkit.optim._common import (
    PyTree,
    ScalarOrSchedule,
    bias_correct,
    check_betas,
    check_learning_rate,
    check_nonnegative,
    check_tree_match,
    ema,
    increment,
    learning_rate_at,
    zero_count,
)
from gradkit.optim.sophia import Objective, _pick_objective, hutchinson_diagonal

SpatialAxes = Callable[[jax.Array], tuple[int, ...]]


class AdaHessianState(NamedTuple):
    count: jax.Array
    mu: PyTree
    nu: PyTree
    key: jax.Array


def hwio_spatial_axes(leaf: jax.Array) -> tuple[int, ...]:
    """The default spatial axes: ``(0, 1)`` for a 4-D (``HWIO``) conv kernel, none otherwise."""
    return (0, 1) if jnp.ndim(leaf) == 4 else ()


def spatial_average(diagonal: PyTree, spatial_axes: SpatialAxes | None = hwio_spatial_axes) -> PyTree:
    """``D̄ = |D|`` with each leaf averaged (keepdims, broadcast back) over ``spatial_axes(leaf)``."""

    def one(d: jax.Array) -> jax.Array:
        axes = spatial_axes(d) if spatial_axes is not None else ()
        magnitude = jnp.abs(d)
        if not axes:
            return magnitude
        if any(not -d.ndim <= a < d.ndim for a in axes):
            raise ValueError(f"adahessian: spatial_axes returned {axes} for a leaf of shape {d.shape}")
        return jnp.broadcast_to(jnp.mean(magnitude, axis=axes, keepdims=True), d.shape)

    return jax.tree.map(one, diagonal)


def adahessian(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-4,
    weight_decay: Any = 0.0,
    hessian_power: Any = 1.0,
    spatial_axes: SpatialAxes | None = hwio_spatial_axes,
    key: jax.Array | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AdaHessian: ``u = -η_t (m̂ / ((sqrt(v)/sqrt(1-β2^t))^k + ε) + λ w)`` with
    ``v`` the EMA of the spatially averaged squared Hutchinson diagonal (module doc).

    ``update(grads, state, params, *, value_fn=L)`` (or ``obj_fn=L``).  Defaults are the
    paper's (``β1 = 0.9, β2 = 0.999, ε = 1e-4, k = 1``); ``key`` (default ``PRNGKey(0)``)
    seeds the Rademacher probes.  ``spatial_axes=None`` turns spatial averaging off.
    """
    check_learning_rate("adahessian", learning_rate)
    check_betas("adahessian", b1, b2)
    check_nonnegative("adahessian", "eps", eps)
    check_nonnegative("adahessian", "weight_decay", weight_decay)
    if isinstance(hessian_power, (int, float)) and not 0 <= hessian_power <= 1:
        raise ValueError(f"adahessian: hessian_power must be in [0, 1], got {hessian_power}")
    if spatial_axes is not None and not callable(spatial_axes):
        raise TypeError(f"adahessian: spatial_axes must be a callable leaf -> axes or None, got {spatial_axes!r}")
    if key is not None:
        check_prng_key("adahessian", "key", key)
    init_key = jnp.asarray(key) if key is not None else jax.random.PRNGKey(0)

    def init(params: PyTree) -> AdaHessianState:
        return AdaHessianState(zero_count(), optax.tree.zeros_like(params), optax.tree.zeros_like(params), init_key)

    def update(updates: PyTree, state: AdaHessianState, params: PyTree = None, *,
               value_fn: Objective | None = None, obj_fn: Objective | None = None, **extra_args: Any
               ) -> tuple[PyTree, AdaHessianState]:
        del extra_args
        if params is None:
            raise ValueError("adahessian.update needs params: update(grads, state, params, value_fn=L)")
        fn = _pick_objective("adahessian", obj_fn, value_fn)
        check_tree_match("adahessian", updates, state.mu)
        next_key, probe_key = jax.random.split(state.key)
        diagonal = spatial_average(hutchinson_diagonal(fn, params, probe_key), spatial_axes)
        count = increment(state.count)
        mu = ema(updates, state.mu, b1)
        nu = ema(diagonal, state.nu, b2, 2)
        mu_hat = bias_correct(mu, b1, count)
        root_correction = jnp.sqrt(1 - b2**count)
        lr = learning_rate_at(learning_rate, state.count)

        def step(m: jax.Array, v: jax.Array, w: jax.Array) -> jax.Array:
            denom = (jnp.sqrt(v) / root_correction.astype(v.dtype)) ** hessian_power + eps
            return (-lr * (m / denom + weight_decay * w)).astype(w.dtype)

        return jax.tree.map(step, mu_hat, nu, params), AdaHessianState(count, mu, nu, next_key)

    return optax.GradientTransformationExtraArgs(init, update)

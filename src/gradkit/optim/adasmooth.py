"""AdaSmooth (Lu 2022, seed 002): per-coordinate decay from the effective ratio of recent updates.

No optax counterpart, so it keeps its own state (``AdaSmoothState``).
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit.optim._common import (
    PyTree,
    ScalarOrSchedule,
    abs_sq,
    check_decay,
    check_float_params,
    check_learning_rate,
    check_nonnegative,
    check_update_args,
    concrete_scalar,
    increment,
    scale_by_neg_lr,
    zero_count,
)

GradientTransformationExtraArgs = optax.GradientTransformationExtraArgs


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

"""Shared pieces of gradkit's optimizers: learning rates and schedules, validation,
moment updates and bias correction (same operation order as optax, so trajectories
agree to rounding)."""

from __future__ import annotations

import math
import numbers
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit.derivatives import tree_mismatch

PyTree = Any
ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]


def concrete_scalar(value: Any) -> float | None:
    """The value of a Python real number or of a concrete (not traced) real 0-d array, else
    ``None`` (schedules, traced hyperparameters, arrays with axes pass unchecked)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (np.ndarray, np.generic, jax.Array)) and not isinstance(value, jax.core.Tracer):
        if np.ndim(value) == 0 and np.isrealobj(value):
            return float(value)
    return None


def check_learning_rate(name: str, learning_rate: ScalarOrSchedule) -> None:
    """A concrete learning rate (Python number or 0-d array) must be finite and >= 0 (0 is a
    frozen step, as optax allows: warm-up schedules, ``inject_hyperparams`` at 0); traced arrays
    and schedules pass."""
    value = concrete_scalar(learning_rate)
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: learning_rate must be a finite number >= 0, got {learning_rate}")


def check_decay(name: str, arg: str, value: Any) -> None:
    """A concrete decay rate (b1, b2, momentum, ...) must lie in [0, 1) (NaN is rejected)."""
    v = concrete_scalar(value)
    if v is not None and not 0 <= v < 1:
        raise ValueError(f"{name}: {arg} must be in [0, 1), got {value}")


def check_betas(name: str, b1: Any, b2: Any) -> None:
    """Concrete ``b1`` and ``b2`` must lie in [0, 1)."""
    check_decay(name, "b1", b1)
    check_decay(name, "b2", b2)


def check_nonnegative(name: str, arg: str, value: Any) -> None:
    """A concrete epsilon (or similar) must be >= 0 (NaN is rejected)."""
    v = concrete_scalar(value)
    if v is not None and not v >= 0:
        raise ValueError(f"{name}: {arg} must be >= 0, got {value}")


def check_positive(name: str, arg: str, value: Any) -> None:
    """A concrete ``value`` (e.g. rho) must be > 0 (NaN is rejected)."""
    v = concrete_scalar(value)
    if v is not None and not v > 0:
        raise ValueError(f"{name}: {arg} must be > 0, got {value}")


def check_dtype(name: str, arg: str, dtype: Any) -> Any:
    """``None`` or a dtype jax understands (returned canonicalized, as optax does)."""
    if dtype is None:
        return None
    try:
        return jax.dtypes.canonicalize_dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{name}: {arg} must be a dtype or None, got {dtype!r}") from err


def check_float_params(name: str, params: PyTree) -> None:
    """Every params leaf must be floating-point or complex: an integer leaf would get
    integer (truncated, usually zero) updates."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(f"{name}.init: params must be floating-point or complex arrays; the leaf at "
                            f"{jax.tree_util.keystr(path) or 'the root'} has dtype {dtype}")


def check_tree_match(name: str, updates: PyTree, reference: PyTree) -> None:
    """Raise a clear error when ``updates`` is not shaped like the params the optimizer was
    initialised with (``reference``: a params-shaped part of its state)."""
    problem = tree_mismatch(reference, updates, "updates")
    if problem:
        raise ValueError(f"{name}.update: {problem}")


def check_update_args(name: str, updates: PyTree, reference: PyTree, params: PyTree) -> None:
    """``updates`` shaped like the state's params-shaped ``reference`` and, when given, like ``params``."""
    check_tree_match(name, updates, reference)
    if params is not None:
        problem = tree_mismatch(params, updates, "updates")
        if problem:
            raise ValueError(f"{name}.update: {problem} (the params passed to update)")


def abs_sq(x: jax.Array) -> jax.Array:
    """``|x|² = x · conj(x)`` (real part), which is ``x²`` for real ``x`` (optax's ``abs_sq``)."""
    return (x.conj() * x).real if jnp.iscomplexobj(x) else x * x


def cast_tree(tree: PyTree, dtype: Any) -> PyTree:
    """Cast every leaf to ``dtype`` (no-op when ``dtype`` is None)."""
    return tree if dtype is None else jax.tree.map(lambda x: x.astype(dtype), tree)


def learning_rate_at(learning_rate: ScalarOrSchedule, count: jax.Array) -> Any:
    """``η_t``: the schedule evaluated at ``count`` (steps taken so far), or the constant."""
    return learning_rate(count) if callable(learning_rate) else learning_rate


def scale_by_neg_lr(direction: PyTree, learning_rate: ScalarOrSchedule, count: jax.Array) -> PyTree:
    """``u = -η_t · direction`` (optax's ``scale_by_learning_rate``: multiply by ``-η_t`` last)."""
    lr = learning_rate_at(learning_rate, count)
    return jax.tree.map(lambda d: jnp.array(-lr, dtype=d.dtype) * d, direction)


def increment(count: jax.Array) -> jax.Array:
    """``count + 1`` without int32 overflow (``optax.safe_increment``)."""
    return optax.safe_increment(count)


def zero_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def ema(updates: PyTree, moment: PyTree, decay: Any, order: int = 1) -> PyTree:
    """``m ← (1 - β) g + β m`` (``order=1``) or ``s ← (1 - β) |g|² + β s`` (``order=2``, ``g²``
    for real ``g``, ``g · conj(g)`` for complex, as optax), leaf by leaf."""
    power = (lambda g: g) if order == 1 else abs_sq
    if order not in (1, 2):
        raise ValueError(f"ema: order must be 1 or 2, got {order}")
    return jax.tree.map(lambda g, m: (1 - decay) * power(g) + decay * m, updates, moment)


def _concrete(*trees: Any) -> bool:
    """No leaf of ``trees`` is traced: the update runs eagerly, op by op."""
    return not any(isinstance(leaf, jax.core.Tracer) for tree in trees for leaf in jax.tree.leaves(tree))


def _optax_bias_correction(moment: PyTree, decay: Any, count: jax.Array) -> PyTree:
    """optax's own ``tree.bias_correction`` (``m / (1 - β^t)`` in a small jitted program with
    ``β`` traced): what an eager optax update computes, to the bit."""
    return optax.tree.bias_correction(moment, decay, count)


def bias_correct_pair(mu: PyTree, nu: PyTree, b1: Any, b2: Any, count: jax.Array) -> tuple[PyTree, PyTree]:
    """``m̂ = m / (1 - β1^t)``, ``ŝ = s / (1 - β2^t)`` with both reciprocals in one array, so XLA
    computes them in one scalar kernel per step instead of two (on CPU a loop body of at most 8
    kernels runs on XLA's sequential fast path: Adam inside ``gradkit.runs`` ~1.3x faster at 10^3
    runs).  XLA rewrites ``m / c`` as ``m · (1/c)`` for a scalar ``c`` anyway, so the values are
    the same as two :func:`bias_correct` calls.  Run eagerly (nothing traced) it divides as optax
    does (:func:`bias_correct`)."""
    if _concrete(mu, nu, b1, b2, count):
        return _optax_bias_correction(mu, b1, count), _optax_bias_correction(nu, b2, count)
    inverse = 1 / (1 - jnp.stack([jnp.asarray(b, dtype=jnp.result_type(float)) for b in (b1, b2)]) ** count)
    scale = lambda tree, c: jax.tree.map(lambda x: x * c.astype(x.dtype), tree)
    return scale(mu, inverse[0]), scale(nu, inverse[1])


def bias_correct(moment: PyTree, decay: Any, count: jax.Array) -> PyTree:
    """``m̂ = m · (1 / (1 - β^t))`` for real leaves, ``m̂ = m / (1 - β^t)`` for complex ones, the
    correction computed in full precision then cast.

    Real leaves multiply by an explicit reciprocal (as :func:`bias_correct_pair`): XLA rewrites
    a division by a broadcast scalar into that product in some compiled programs and not in
    others (e.g. under ``shard_map``), which made results differ in the last bit between 1 and
    8 devices; written out, every program rounds the same.  Complex leaves divide by the
    correction cast to complex, exactly as optax does (complex division rounds differently
    from a product with the reciprocal, and centered RMSProp's ``ŝ - |m̂|²`` amplifies that).

    Run eagerly (nothing traced), it calls optax's own ``tree.bias_correction`` (a small jitted
    program with ``β`` traced), so an eager gradkit update equals an eager optax update to the
    bit; under ``jit`` XLA turns optax's division into the product with the reciprocal written
    out here."""
    if _concrete(moment, decay, count):
        return _optax_bias_correction(moment, decay, count)
    correction = 1 - decay**count
    inverse = 1 / correction

    def one(m: jax.Array) -> jax.Array:
        if jnp.iscomplexobj(m):
            return m / jnp.asarray(correction).astype(m.dtype)
        return m * jnp.asarray(inverse).astype(m.dtype)

    return jax.tree.map(one, moment)


def deterministic_sum(x: jax.Array) -> jax.Array:
    """``Σ x`` over all elements as a fixed pairwise tree of elementwise adds (pad to even, add
    the halves, repeat): the association never depends on how XLA tiles a reduce for the batch
    shape it is compiled for, so a run's result is bit-identical in any vmapped batch.
    Pairwise summation also keeps the rounding error at ``O(log n) ε``."""
    flat = jnp.ravel(x)
    while flat.shape[0] > 1:
        if flat.shape[0] % 2:
            flat = jnp.concatenate([flat, jnp.zeros((1,), flat.dtype)])
        half = flat.shape[0] // 2
        flat = flat[:half] + flat[half:]
    return flat[0] if flat.shape[0] else jnp.zeros((), x.dtype)

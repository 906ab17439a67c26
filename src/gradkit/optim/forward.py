"""Forward gradients (Baydin et al. 2022, "Gradients without Backpropagation"; seed 002).

For a tangent ``v`` with independent zero-mean, unit-variance components,

    g(θ) = (∇f(θ) · v) v,        E[g] = E[v vᵀ] ∇f = ∇f,

and ``∇f(θ)·v`` is one forward-mode pass (``jax.jvp``): no backward pass, no
stored activations.  With ``K`` tangents the estimate is the mean of ``K`` such
terms (variance / K).  Per coordinate, with ``G = ∇f``:

* Gaussian ``v``:   ``Var g_i = ||G||² + G_i²``,  ``E||g||² = (n + 2)||G||²``
* Rademacher ``v``: ``Var g_i = ||G||² - G_i²``,  ``E||g||² = n ||G||²``

``distribution="rank_one"``: every matrix leaf ``W`` (m × n) gets ``V = a bᵀ`` with ``a``, ``b``
independent Rademacher vectors, other leaves plain Rademacher.  ``V_ij = a_i b_j`` is ±1 and
``E[V_ij V_kl] = E[a_i a_k] E[b_j b_l] = δ_ik δ_jl``, so ``E[v vᵀ] = I`` (unbiased) and, since
``v_i² = 1``, ``Var g_i = E[(G·v)²] - G_i² = ||G||² - G_i²`` and ``E||g||² = n ||G||²``: the
Rademacher moments exactly (only the covariances between coordinates differ).  What changes is
the cost: ``X V = (X a) bᵀ`` is a matrix-vector product where ``X @ V`` was a matmul, so a
dense layer's tangent costs ``O(batch·(m + n))`` instead of ``O(batch·m·n)`` (see
``gradkit.diff.rank_one``) and the step costs less than a backprop step.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, get_args
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from gradkit.derivatives import scalar_fn
from gradkit.optim._common import PyTree, check_tree_match
from gradkit.diff.rank_one import RankOne, rank_one_jvp

Distribution = Literal["normal", "rademacher", "rank_one"]
_DISTRIBUTIONS = get_args(Distribution)


def _packed_rademacher(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """i.i.d. ±1 from the 32 bits of each random word: 32x fewer PRNG calls than one word
    per sign (the PRNG, not the forward pass, dominates a forward-gradient step on CPU)."""
    size = math.prod(shape)
    words = jax.random.bits(key, (-(-size // 32),), jnp.uint32)
    bits = (words[:, None] >> jnp.arange(32, dtype=jnp.uint32)) & jnp.uint32(1)
    return (2 * bits.reshape(-1)[:size].astype(dtype) - 1).reshape(shape)


def _check_sampling(num_tangents: int, distribution: str) -> None:
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {_DISTRIBUTIONS}, got {distribution!r}")
    if not isinstance(num_tangents, int) or num_tangents < 1:
        raise ValueError(f"num_tangents must be a positive int, got {num_tangents!r}")


def _sample_leaf_tangents(key: jax.Array, leaf: Any, num_tangents: int, distribution: Distribution
                          ) -> jax.Array | RankOne:
    leaf = jnp.asarray(leaf)
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
        raise TypeError(f"forward gradients need floating-point params, got a leaf of dtype {leaf.dtype}")
    shape = (num_tangents,) + leaf.shape
    if distribution == "normal":
        return jax.random.normal(key, shape, leaf.dtype)
    if distribution == "rank_one" and leaf.ndim == 2:
        key_left, key_right = jax.random.split(key)
        return RankOne(_packed_rademacher(key_left, shape[:2], leaf.dtype),
                       _packed_rademacher(key_right, shape[:1] + shape[2:], leaf.dtype))
    return _packed_rademacher(key, shape, leaf.dtype)


def _tangent_leaves(key: jax.Array, params: PyTree, num_tangents: int, distribution: Distribution
                    ) -> tuple[list[jax.Array | RankOne], Any]:
    _check_sampling(num_tangents, distribution)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return [_sample_leaf_tangents(k, leaf, num_tangents, distribution) for k, leaf in zip(keys, leaves)], treedef


def sample_tangents(key: jax.Array, params: PyTree, num_tangents: int = 1,
                    distribution: Distribution = "normal") -> PyTree:
    """``num_tangents`` random tangents shaped like ``params`` (leading axis ``K``), one key
    per leaf, in each leaf's dtype; components i.i.d. N(0, 1), uniform on {-1, +1}, or for
    ``"rank_one"`` the outer products ``a bᵀ`` of Rademacher vectors on matrix leaves
    (materialized here; :func:`forward_gradient` keeps them factored)."""
    tangents, treedef = _tangent_leaves(key, params, num_tangents, distribution)
    dense = [jax.vmap(RankOne.dense)(t) if isinstance(t, RankOne) else t for t in tangents]
    return jax.tree.unflatten(treedef, dense)


def forward_gradient(
    f: Callable[[PyTree], jax.Array],
    params: PyTree,
    key: jax.Array,
    num_tangents: int = 1,
    distribution: Distribution = "normal",
) -> tuple[jax.Array, PyTree]:
    """``(f(θ), ĝ)`` with ``ĝ = (1/K) Σ_k (∇f(θ)·v_k) v_k`` from ``K`` forward passes
    (``jax.jvp``, vmapped over the tangents).  Unbiased: ``E[ĝ] = ∇f(θ)``.  With
    ``distribution="rank_one"`` the matrix tangents stay factored through the forward pass
    and ``ĝ_W = (1/K) Σ_k s_k a_k b_kᵀ``."""
    f = scalar_fn(f, "forward_gradient objective")
    tangents, treedef = _tangent_leaves(key, params, num_tangents, distribution)
    if distribution == "rank_one":
        values, slopes = jax.vmap(lambda ts: rank_one_jvp(f, params, ts))(tangents)
    else:
        values, slopes = jax.vmap(lambda ts: jax.jvp(f, (params,), (jax.tree.unflatten(treedef, ts),)))(tangents)
    return values[0], jax.tree.unflatten(treedef, [_project(slopes, t) for t in tangents])


def _project(slopes: jax.Array, tangent: jax.Array | RankOne) -> jax.Array:
    """``(1/K) Σ_k s_k v_k`` for one leaf; ``(1/K) Aᵀ diag(s) B`` for factored ``v_k = a_k b_kᵀ``."""
    if isinstance(tangent, RankOne):
        weights = slopes.astype(tangent.left.dtype) / slopes.shape[0]
        return jax.lax.dot_general(tangent.left * weights[:, None], tangent.right, (((0,), (0,)), ((), ())))
    s = slopes.astype(tangent.dtype).reshape((-1,) + (1,) * (tangent.ndim - 1))
    return jnp.mean(s * tangent, axis=0)


class ForwardGradientState(NamedTuple):
    key: jax.Array
    inner_state: Any


def forward_gradient_descent(
    optimizer: optax.GradientTransformation,
    key: jax.Array,
    objective: Callable[[PyTree], jax.Array] | None = None,
    num_tangents: int = 1,
    distribution: Distribution = "normal",
) -> optax.GradientTransformationExtraArgs:
    """Drive any first-order optimizer (gradkit's or optax's) by forward gradients.

    ``update(grads, state, params, *, value_fn=None)`` ignores ``grads`` and replaces them
    by ``ĝ`` of ``value_fn`` (or of ``objective`` given here) at ``params``, drawn with the
    key carried in the state (split every step):  ``u, s = optimizer.update(ĝ, s, θ)``.
    With ``optimizer = sgd(η)`` this is forward gradient descent, ``θ ← θ - η ĝ``.
    """
    _check_sampling(num_tangents, distribution)  # at construction, without drawing anything

    def init(params: PyTree) -> ForwardGradientState:
        return ForwardGradientState(jnp.asarray(key), optimizer.init(params))

    def update(updates: PyTree, state: ForwardGradientState, params: PyTree = None, *,
               value_fn: Callable[[PyTree], jax.Array] | None = None, **extra: Any
               ) -> tuple[PyTree, ForwardGradientState]:
        fn = value_fn if value_fn is not None else objective
        if params is None or fn is None:
            raise ValueError("forward_gradient_descent.update needs params and an objective "
                             "(value_fn=... here, or objective=... at construction)")
        if updates is not None:
            check_tree_match("forward_gradient_descent", updates, params)
        next_key, draw_key = jax.random.split(state.key)
        _, estimate = forward_gradient(fn, params, draw_key, num_tangents, distribution)
        inner_update = optax.with_extra_args_support(optimizer).update
        new_updates, inner_state = inner_update(estimate, state.inner_state, params, **extra)
        return new_updates, ForwardGradientState(next_key, inner_state)

    return optax.GradientTransformationExtraArgs(init, update)

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


def _single_tangent(key: jax.Array, tree: PyTree, distribution: Distribution) -> PyTree:
    """One dense tangent shaped like ``tree``: :func:`sample_tangents` with ``K = 1``, squeezed."""
    return jax.tree.map(lambda t: t[0], sample_tangents(key, tree, 1, distribution))


def _check_layered(params: Any) -> tuple[PyTree, PyTree, PyTree, int]:
    if not isinstance(params, (tuple, list)) or len(params) != 3:
        raise ValueError("params must be a 3-tuple (stem_params, layer_params, head_params), got "
                         f"{type(params).__name__}" + (f" of length {len(params)}" if isinstance(params, (tuple, list)) else ""))
    stem_params, layer_params, head_params = params
    depths = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else 0 for leaf in jax.tree.leaves(layer_params)}
    if len(depths) != 1 or 0 in depths:
        raise ValueError("layer_params (params[1]) must be stacked: every leaf with the same leading "
                         f"(layer) axis of length >= 1, got leading sizes {sorted(depths)}")
    return stem_params, layer_params, head_params, depths.pop()


def scan_tangents(key: jax.Array, params: tuple[PyTree, PyTree, PyTree],
                  distribution: Distribution = "normal") -> tuple[PyTree, PyTree, PyTree]:
    """The tangent ``v = (v_stem, v_layers, v_head)`` that :func:`scan_forward_gradient` draws from
    ``key``: with ``(k_s, k_l, k_h) = split(key, 3)``, ``v_stem = T(k_s, θ_stem)``,
    ``v_head = T(k_h, θ_head)`` and layer ``l``'s slice ``v_layers[l] = T(fold_in(k_l, l), θ_l)``,
    where ``T(k, θ)`` is :func:`sample_tangents` with one tangent (``"rank_one"``: ``a bᵀ`` on each
    matrix leaf of a layer, dense).  Components are independent across layers and leaves, zero mean,
    unit variance, so ``E[v vᵀ] = I``."""
    _check_sampling(1, distribution)
    stem_params, layer_params, head_params, depth = _check_layered(params)
    key_stem, key_layers, key_head = jax.random.split(key, 3)
    layers = jax.vmap(lambda i, p: _single_tangent(jax.random.fold_in(key_layers, i), p, distribution)
                      )(jnp.arange(depth), layer_params)
    return (_single_tangent(key_stem, stem_params, distribution), layers,
            _single_tangent(key_head, head_params, distribution))


def scan_objective(stem: Callable[[PyTree], jax.Array], affine: Callable[[PyTree, jax.Array], jax.Array],
                   activation: Callable[[jax.Array], jax.Array], head: Callable[[PyTree, jax.Array], jax.Array]
                   ) -> Callable[[tuple[PyTree, PyTree, PyTree]], jax.Array]:
    """The loss that :func:`scan_forward_gradient` differentiates, as a plain function of
    ``θ = (θ_stem, θ_layers, θ_head)`` (for ``jax.grad``, a backprop reference):

        h_0 = stem(θ_stem),  h_l = σ(affine(θ_l, h_{l-1})) (l = 1..L, by lax.scan),
        f(θ) = head(θ_head, h_L)."""

    def f(params: tuple[PyTree, PyTree, PyTree]) -> jax.Array:
        stem_params, layer_params, head_params, _ = _check_layered(params)
        h, _ = jax.lax.scan(lambda h, p: (activation(affine(p, h)), None), stem(stem_params), layer_params)
        return head(head_params, h)

    return f


def _after(tree: PyTree, value: jax.Array) -> PyTree:
    """``tree`` unchanged (``x + 0.0``; ``value > +inf`` is false, NaN included), but as data that
    depends on ``value``: XLA must finish ``value`` before anything that reads the result."""
    zero = jnp.ravel(value)[0] > jnp.inf
    return jax.tree.map(lambda x: x + zero.astype(x.dtype), tree)


def _after_key(key: jax.Array, value: jax.Array) -> jax.Array:
    """:func:`_after` for a PRNG key (raw ``uint32`` or typed)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(_after(jax.random.key_data(key), value), impl=jax.random.key_impl(key))
    return _after(key, value)


def scan_forward_gradient(
    stem: Callable[[PyTree], jax.Array],
    affine: Callable[[PyTree, jax.Array], jax.Array],
    activation: Callable[[jax.Array], jax.Array],
    head: Callable[[PyTree, jax.Array], jax.Array],
    params: tuple[PyTree, PyTree, PyTree],
    key: jax.Array,
    num_tangents: int = 1,
    distribution: Distribution = "normal",
) -> tuple[jax.Array, tuple[PyTree, PyTree, PyTree]]:
    """``(f(θ), ĝ)``, ``ĝ = (1/K) Σ_k (∇f(θ)·v_k) v_k``, for the layered loss of
    :func:`scan_objective`, ``h_0 = stem(θ_stem)``, ``h_l = σ(affine(θ_l, h_{l-1}))``,
    ``f = head(θ_head, h_L)`` (``affine`` typically ``h W_l + b_l``, ``σ`` elementwise; layer params
    stacked on a leading axis), in the least memory XLA gives.

    The same estimator as :func:`forward_gradient` (``v_k`` from :func:`scan_tangents`; unbiased,
    ``E[ĝ] = ∇f``, the same per-coordinate variance), restructured so that nothing depth-sized is
    alive: one ``lax.scan`` over the layers carries ``(h_l, ḣ_l)`` only; layer ``l``'s tangent is
    drawn inside the scan from ``fold_in(k_l, l)`` (never all layers first); each step forms the
    pre-activation's tangent ``ż = affine(v_l, h) + affine(θ_l, ḣ)`` first (JVP of ``affine``, its
    primal dead), then, ordered after it by a data dependency, the primal ``z = affine(θ_l, h)``,
    then ``(h, ḣ) ← (σ(z), σ'(z) ż)`` in one fused elementwise pass.  After the scan the head gives
    ``s = ∇f·v`` and ``ĝ = s v`` draws ``v`` again from the keys (after ``s``: not held during the
    scan).  ``"rank_one"`` keeps ``v_W = a bᵀ`` factored inside the layers: ``h v_W = (h a) bᵀ``.

    Peak temporary memory (one activation ``A = 4·batch·width`` bytes, float32), independent of
    depth ``L`` (backprop keeps ``≥ L·A``): the bytes that must be live in a layer step are ``h``,
    ``ḣ``-or-``ż`` and the matmul output being formed, ``3A`` (a matmul cannot overwrite its
    operand).  ``"rank_one"`` attains it.  Dense ``"normal"``/``"rademacher"`` tangents need a
    third product ``h v_W``; XLA then holds ``4A`` (``h``, ``ḣW``, ``h v_W``, ``hW``: it fuses
    ``ż = ḣW + h v_W + v_b`` into its consumer rather than materialising it before ``hW``).
    :func:`forward_gradient` on the same loss holds ``5A`` (also a copy of ``h``: the new ``h`` is
    scheduled before the old one's last read).  Measured in ``benchmarks/forward_gradient.py --memory``.
    """
    _check_sampling(num_tangents, distribution)
    stem_params, layer_params, head_params, depth = _check_layered(params)
    head = scalar_fn(head, "scan_forward_gradient head")

    def one(draw_key: jax.Array) -> tuple[jax.Array, tuple[PyTree, PyTree, PyTree]]:
        key_stem, key_layers, key_head = jax.random.split(draw_key, 3)
        h, h_dot = jax.jvp(stem, (stem_params,), (_single_tangent(key_stem, stem_params, distribution),))

        def layer(carry: tuple[jax.Array, jax.Array], xs: tuple[PyTree, jax.Array]
                  ) -> tuple[tuple[jax.Array, jax.Array], None]:
            h, h_dot = carry
            p, i = xs
            key_l = jax.random.fold_in(key_layers, i)
            if distribution == "rank_one":  # W's tangent a bᵀ stays factored: h (a bᵀ) = (h a) bᵀ
                leaves, treedef = _tangent_leaves(key_l, p, 1, distribution)
                v = [jax.tree.map(lambda t: t[0], t) for t in leaves]
                _, z_dot = rank_one_jvp(lambda ph: affine(*ph), (p, h), v + [h_dot])
            else:
                v = _single_tangent(key_l, p, distribution)
                _, z_dot = jax.jvp(affine, (p, h), (v, h_dot))  # tangent only: the primal is dead code
            z = affine(_after(p, z_dot), h)
            return jax.jvp(activation, (z,), (z_dot,)), None

        (h, h_dot), _ = jax.lax.scan(layer, (h, h_dot), (layer_params, jnp.arange(depth)))
        value, slope = jax.jvp(head, (head_params, h),
                               (_single_tangent(key_head, head_params, distribution), h_dot))
        tangent = scan_tangents(_after_key(draw_key, slope), params, distribution)  # drawn again, not kept
        return value, jax.tree.map(lambda t: slope.astype(t.dtype) * t, tangent)

    if num_tangents == 1:
        return one(key)
    values, estimates = jax.lax.map(one, jax.random.split(key, num_tangents))  # one pass at a time
    return values[0], jax.tree.map(lambda g: jnp.mean(g, axis=0), estimates)


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

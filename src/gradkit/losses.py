"""Pure, numerically stable losses and regularizers (seed 001).

Losses map a batch (leading axis) to per-example values (``mse`` and ``mae`` to their mean);
reduce with ``jnp.mean``. The ones
that take logits never form a probability that could round to 0 or 1 first:

* mean squared error        ``(ŷ - y)²``                           (averaged over trailing axes)
* mean absolute error       ``|ŷ - y|``
* binary cross-entropy      ``max(z,0) - y z + log(1+e^{-|z|}) = -y log σ(z) - (1-y) log(1-σ(z))``
* softmax cross-entropy     ``logsumexp(z) - z_y``                 (integer or one-hot/soft labels)
* negative log-likelihood   ``-log p_y`` from log-probabilities
* binary hinge              ``max(0, 1 - t z)``, ``t ∈ {-1, +1}`` (labels in {0, 1} are mapped)
* multiclass hinge          ``Σ_{j≠y} max(0, s_j - s_y + Δ)`` (Weston-Watkins, the seed's and
                            CS231n's) or ``max_{j≠y} max(0, s_j - s_y + Δ)`` (Crammer-Singer, optax's)
* regularizers              ``λ Σ|w|``, ``½ λ Σ w²``, elastic net ``λ (α Σ|w| + ½ (1-α) Σ w²)``
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp

PyTree = Any


def _per_example(values: jax.Array) -> jax.Array:
    """Average over every axis but the first (a scalar stays a scalar)."""
    return values if values.ndim <= 1 else values.reshape(values.shape[0], -1).mean(axis=1)


def _check_shapes(name: str, a: jax.Array, b: jax.Array) -> None:
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(f"{name}: predictions of shape {jnp.shape(a)} and targets of shape {jnp.shape(b)} differ")


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Per example ``mean_k (ŷ_k - y_k)²``."""
    _check_shapes("squared_error", predictions, targets)
    return _per_example((predictions - targets) ** 2)


def mse(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error ``(1/N) Σ (ŷ - y)²`` over the batch (and any output axes)."""
    return jnp.mean(squared_error(predictions, targets))


def mae(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean absolute error ``(1/N) Σ |ŷ - y|``."""
    _check_shapes("mae", predictions, targets)
    return jnp.mean(jnp.abs(predictions - targets))


def binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per example ``max(z, 0) - y z + log(1 + e^{-|z|})`` for labels ``y ∈ [0, 1]`` — equal to
    ``-y log σ(z) - (1-y) log(1 - σ(z))`` without rounding ``σ(z)`` to 0 or 1 and without the
    cancellation of ``softplus(z) - y z`` at large ``z``."""
    _check_shapes("binary_cross_entropy", logits, labels)
    return _per_example(jnp.maximum(logits, 0) - labels * logits + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def _one_hot_like(labels: jax.Array, logits: jax.Array) -> jax.Array:
    if labels.shape == logits.shape:
        return labels.astype(logits.dtype)
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels of shape {labels.shape} fit neither logits {logits.shape} (one-hot) "
                         f"nor its batch shape {logits.shape[:-1]} (integer classes)")
    return jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per example ``logsumexp(z) - Σ_k y_k z_k`` for integer classes or one-hot / soft labels."""
    return jnp.sum(_one_hot_like(labels, logits) * -jax.nn.log_softmax(logits), axis=-1)


def negative_log_likelihood(log_probs: jax.Array, labels: jax.Array) -> jax.Array:
    """Per example ``-log p_y`` from log-probabilities (e.g. ``jax.nn.log_softmax(z)``)."""
    return -jnp.sum(_one_hot_like(labels, log_probs) * log_probs, axis=-1)


def hinge(scores: jax.Array, labels: jax.Array) -> jax.Array:
    """Binary hinge (binary SVM) ``max(0, 1 - t s)``; labels ``t ∈ {-1, +1}``, or ``{0, 1}``
    mapped to ``{-1, +1}``."""
    _check_shapes("hinge", scores, labels)
    signs = jnp.where(labels > 0, 1.0, -1.0).astype(scores.dtype)
    return _per_example(jnp.maximum(0.0, 1.0 - signs * scores))


def multiclass_hinge(
    scores: jax.Array,
    labels: jax.Array,
    margin: float = 1.0,
    kind: Literal["sum", "max"] = "sum",
) -> jax.Array:
    """Multiclass SVM loss per example, with ``m_j = max(0, s_j - s_y + Δ)`` for ``j ≠ y``:
    ``kind="sum"``: ``Σ_{j≠y} m_j`` (Weston-Watkins; the seed's cat/car/frog example);
    ``kind="max"``: ``max_{j≠y} m_j`` (Crammer-Singer; ``optax.losses.multiclass_hinge_loss``)."""
    if labels.shape != scores.shape[:-1]:
        raise ValueError(f"multiclass_hinge: integer labels of shape {scores.shape[:-1]} expected, got {labels.shape}")
    correct = jnp.take_along_axis(scores, labels[..., None], axis=-1)
    margins = jnp.maximum(0.0, scores - correct + margin)
    others = jnp.arange(scores.shape[-1]) != labels[..., None]
    margins = jnp.where(others, margins, 0.0)
    if kind == "sum":
        return jnp.sum(margins, axis=-1)
    if kind == "max":
        return jnp.max(margins, axis=-1)
    raise ValueError(f"multiclass_hinge: kind must be 'sum' or 'max', got {kind!r}")


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of ``argmax`` predictions equal to the integer labels (binary: ``logit > 0``)."""
    if logits.ndim == labels.ndim:  # binary logits
        return jnp.mean((logits > 0) == (labels > 0))
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def _weights(params: PyTree) -> list[jax.Array]:
    return [leaf for leaf in jax.tree.leaves(params) if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]


def l1_penalty(params: PyTree, strength: float | jax.Array) -> jax.Array:
    """``λ Σ |w|`` over every floating leaf (pass the sub-tree to regularize, e.g. weights only)."""
    return strength * sum(jnp.sum(jnp.abs(w)) for w in _weights(params))


def l2_penalty(params: PyTree, strength: float | jax.Array) -> jax.Array:
    """``½ λ Σ w²`` (gradient ``λ w``: weight decay)."""
    return 0.5 * strength * sum(jnp.sum(w**2) for w in _weights(params))


def elastic_net_penalty(params: PyTree, strength: float | jax.Array, l1_ratio: float | jax.Array = 0.5) -> jax.Array:
    """``λ (α Σ|w| + ½ (1 - α) Σ w²)`` with ``α = l1_ratio`` (scikit-learn's parametrization)."""
    return l1_penalty(params, strength * l1_ratio) + l2_penalty(params, strength * (1 - l1_ratio))

"""Pure models as ``(init, apply)`` pairs: ``params = model.init(key)``, ``y = model.apply(params, x)``.

Parameters are plain pytrees (a list of ``{"w", "b"}`` layers), so per-layer gradient norms,
``jax.grad``, ``vmap`` over seeds, HVPs and every gradkit/optax optimizer apply unchanged.

* linear regression      ``ŷ = x W + b``
* logistic regression    ``z = x w + b`` (a logit per example; ``σ(z)`` the probability)
* softmax regression     ``z = x W + b`` (a logit per class)
* MLP                    ``h_{l+1} = act(h_l W_l + b_l)``, a linear last layer
* small CNN              ``[conv 3x3 (SAME) → relu → 2x2 average pool] × k → flatten → dense``
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

PyTree = Any
Activation = Literal["sigmoid", "tanh", "relu"]
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
}


class Model(NamedTuple):
    """``init(key) -> params`` and ``apply(params, x) -> outputs``, both pure."""

    init: Callable[[jax.Array], PyTree]
    apply: Callable[[PyTree, jax.Array], jax.Array]


def _dense_init(key: jax.Array, fan_in: int, fan_out: int, scale: str, dtype: Any) -> dict[str, jax.Array]:
    """Glorot-uniform (``scale="glorot"``: bound √(6/(fan_in+fan_out))), He-normal (``"he"``:
    std √(2/fan_in)) or zeros (``"zeros"``) weights; zero biases."""
    if scale == "glorot":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = jax.random.uniform(key, (fan_in, fan_out), dtype, -bound, bound)
    elif scale == "he":
        w = jax.random.normal(key, (fan_in, fan_out), dtype) * math.sqrt(2.0 / fan_in)
    elif scale == "zeros":
        w = jnp.zeros((fan_in, fan_out), dtype)
    else:
        raise ValueError(f"unknown init scale {scale!r}; use 'glorot', 'he' or 'zeros'")
    return {"w": w, "b": jnp.zeros((fan_out,), dtype)}


def _check_dim(name: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def linear_regression(in_dim: int, out_dim: int = 1, dtype: Any = jnp.float32) -> Model:
    """``ŷ = x W + b`` with ``W: (in_dim, out_dim)``; outputs ``(batch, out_dim)``; zero init."""
    _check_dim("in_dim", in_dim)
    _check_dim("out_dim", out_dim)
    return Model(lambda key: _dense_init(key, in_dim, out_dim, "zeros", dtype),
                 lambda params, x: x @ params["w"] + params["b"])


def logistic_regression(in_dim: int, dtype: Any = jnp.float32) -> Model:
    """One logit per example, ``z = x w + b`` (shape ``(batch,)``); ``P(y=1|x) = σ(z)``."""
    _check_dim("in_dim", in_dim)
    return Model(lambda key: _dense_init(key, in_dim, 1, "zeros", dtype),
                 lambda params, x: (x @ params["w"] + params["b"])[..., 0])


def softmax_regression(in_dim: int, num_classes: int, dtype: Any = jnp.float32) -> Model:
    """Class logits ``z = x W + b`` (``(batch, num_classes)``); ``P(y=k|x) = softmax(z)_k``."""
    _check_dim("in_dim", in_dim)
    _check_dim("num_classes", num_classes)
    return Model(lambda key: _dense_init(key, in_dim, num_classes, "zeros", dtype),
                 lambda params, x: x @ params["w"] + params["b"])


def mlp(sizes: Sequence[int], activation: Activation = "relu", init: str | None = None,
        dtype: Any = jnp.float32) -> Model:
    """Multi-layer perceptron ``sizes = [in, hidden..., out]``: ``h ← act(h W + b)`` on every
    layer but the last (linear: logits or regression outputs).  Params: a list of
    ``{"w", "b"}``, one per layer.  ``init`` defaults to He for ReLU, Glorot otherwise."""
    if len(sizes) < 2:
        raise ValueError(f"mlp needs at least [in, out] sizes, got {list(sizes)}")
    for size in sizes:
        _check_dim("mlp layer size", size)
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    act = ACTIVATIONS[activation]
    scheme = init or ("he" if activation == "relu" else "glorot")

    def init_fn(key: jax.Array) -> list[dict[str, jax.Array]]:
        keys = jax.random.split(key, len(sizes) - 1)
        return [_dense_init(k, m, n, scheme, dtype) for k, m, n in zip(keys, sizes[:-1], sizes[1:])]

    def apply(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
        h = x
        for layer in params[:-1]:
            h = act(h @ layer["w"] + layer["b"])
        return h @ params[-1]["w"] + params[-1]["b"]

    return Model(init_fn, apply)


def conv2d(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """SAME-padded, stride-1 2D cross-correlation over NHWC images with an HWIO kernel:
    ``y[n,i,j,o] = b_o + Σ_{di,dj,c} x[n, i+di-⌊kh/2⌋, j+dj-⌊kw/2⌋, c] k[di,dj,c,o]``."""
    out = jax.lax.conv_general_dilated(x, kernel, window_strides=(1, 1), padding="SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out + bias


def average_pool(x: jax.Array, size: int = 2) -> jax.Array:
    """Non-overlapping ``size x size`` average pooling over NHWC (trailing rows/cols dropped)."""
    n, h, w, c = x.shape
    h2, w2 = h // size, w // size
    x = x[:, : h2 * size, : w2 * size].reshape(n, h2, size, w2, size, c)
    return x.mean(axis=(2, 4))


def cnn(image_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (8, 16),
        kernel_size: int = 3, dtype: Any = jnp.float32) -> Model:
    """A small CNN for ``image_shape = (H, W, C)`` NHWC inputs (an ``(N, H, W)`` batch is
    given a channel axis): ``[conv k x k → relu → 2x2 average pool]`` per entry of ``channels``,
    then a dense layer to ``num_classes`` logits.  He-normal conv and dense weights."""
    if len(image_shape) != 3:
        raise ValueError(f"cnn: image_shape must be (H, W, C), got {tuple(image_shape)}")
    h, w, c = image_shape
    _check_dim("num_classes", num_classes)
    for ch in channels:
        _check_dim("cnn channels", ch)
    for _ in channels:
        h, w = h // 2, w // 2
    if h < 1 or w < 1:
        raise ValueError(f"cnn: {len(channels)} pooling stages shrink {tuple(image_shape[:2])} to nothing")
    flat = h * w * channels[-1] if channels else h * w * c

    def init_fn(key: jax.Array) -> dict[str, Any]:
        keys = jax.random.split(key, len(channels) + 1)
        convs, fan_c = [], c
        for k, out_c in zip(keys[:-1], channels):
            std = math.sqrt(2.0 / (kernel_size * kernel_size * fan_c))
            convs.append({"w": jax.random.normal(k, (kernel_size, kernel_size, fan_c, out_c), dtype) * std,
                          "b": jnp.zeros((out_c,), dtype)})
            fan_c = out_c
        return {"conv": convs, "dense": _dense_init(keys[-1], flat, num_classes, "he", dtype)}

    def apply(params: dict[str, Any], x: jax.Array) -> jax.Array:
        if x.ndim == 3:
            x = x[..., None]
        for layer in params["conv"]:
            x = average_pool(jax.nn.relu(conv2d(x, layer["w"], layer["b"])))
        x = x.reshape(x.shape[0], -1)
        return x @ params["dense"]["w"] + params["dense"]["b"]

    return Model(init_fn, apply)

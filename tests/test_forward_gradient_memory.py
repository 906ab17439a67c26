"""Forward gradients save memory where activations dominate: on a deep, narrow network with a
large batch (depth 16, batch 4096, identical hidden layers in a ``lax.scan``) the compiled
layer-streamed forward-gradient step (``scan_forward_gradient``) needs at most a quarter of
backprop's peak temporary memory, against ``jax.grad`` of the same model written both ways a user
would (scan and unrolled).  All numbers are XLA's ``memory_analysis`` of the compiled step:
deterministic, no timing."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
import pytest

from gradkit import optim
from gradkit.optim.forward import scan_forward_gradient, scan_objective

DEPTH, WIDTH, BATCH, N_IN, N_OUT = 16, 32, 4096, 16, 10
ACTIVATION = BATCH * WIDTH * 4  # bytes of one float32 hidden activation


def _problem():
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    params = (jax.random.normal(keys[0], (N_IN, WIDTH), jnp.float32) / 4,
              {"w": jax.random.normal(keys[1], (DEPTH, WIDTH, WIDTH), jnp.float32) / jnp.sqrt(WIDTH),
               "b": jnp.zeros((DEPTH, WIDTH), jnp.float32)},
              jax.random.normal(keys[2], (WIDTH, N_OUT), jnp.float32) / jnp.sqrt(WIDTH))
    x = jax.random.normal(keys[3], (BATCH, N_IN), jnp.float32)
    y = jnp.arange(BATCH) % N_OUT

    def stem(w_in):
        return jnp.tanh(x @ w_in)

    def affine(layer, h):
        return h @ layer["w"] + layer["b"]

    def head(w_out, h):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(h @ w_out, y))

    def unrolled(p):
        h = stem(p[0])
        for i in range(DEPTH):
            h = jnp.tanh(h @ p[1]["w"][i] + p[1]["b"][i])
        return head(p[2], h)

    return (stem, affine, jnp.tanh, head), params, unrolled


def _temp_bytes(gradient, params) -> int:
    opt = optax.sgd(1e-3)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(p, key):
        u, _ = opt.update(gradient(p, key), opt.init(p), p)
        return optax.apply_updates(p, u)

    return int(step.lower(params, jax.random.PRNGKey(1)).compile().memory_analysis().temp_size_in_bytes)


@pytest.fixture(scope="module")
def backprop():
    parts, params, unrolled = _problem()
    scan_loss = scan_objective(*parts)
    return {"scan": _temp_bytes(lambda p, k: jax.grad(scan_loss)(p), params),
            "unrolled": _temp_bytes(lambda p, k: jax.grad(unrolled)(p), params)}


@pytest.mark.parametrize("distribution", ["rademacher", "rank_one"])
def test_forward_gradient_step_needs_at_most_a_quarter_of_backprop_memory(backprop, distribution):
    parts, params, _ = _problem()
    forward = _temp_bytes(lambda p, k: scan_forward_gradient(*parts, p, k, distribution=distribution)[1], params)
    # activation-heavy: backprop keeps (at least) every hidden activation, in either layout
    assert min(backprop.values()) >= DEPTH * ACTIVATION
    assert forward <= 0.25 * backprop["unrolled"], (forward, backprop)
    assert forward <= 0.25 * backprop["scan"], (forward, backprop)
    # depth-independent: h, ḣ and the matmul outputs of one layer (floor 3, dense tangents 4)
    assert 3 * ACTIVATION <= forward <= (3.25 if distribution == "rank_one" else 4.25) * ACTIVATION


def test_streaming_the_layers_beats_jvp_through_the_users_loss():
    parts, params, _ = _problem()
    scan_loss = scan_objective(*parts)
    through_jvp = _temp_bytes(lambda p, k: optim.forward_gradient(scan_loss, p, k, distribution="rademacher")[1], params)
    streamed = _temp_bytes(lambda p, k: scan_forward_gradient(*parts, p, k, distribution="rademacher")[1], params)
    assert streamed <= through_jvp - 0.75 * ACTIVATION, (streamed, through_jvp)

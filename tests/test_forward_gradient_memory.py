"""Forward gradients save memory where activations dominate: on a deep, narrow network with a
large batch (identical hidden layers in a ``lax.scan``) the compiled forward-gradient step needs
at most a quarter of backprop's peak temporary memory (XLA's ``memory_analysis``; no timing)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
import pytest

from gradkit import optim

DEPTH, WIDTH, BATCH, N_IN, N_OUT = 16, 32, 4096, 16, 10


def _problem(scan: bool):
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {"w_in": jax.random.normal(keys[0], (N_IN, WIDTH), jnp.float32) / 4,
              "w": jax.random.normal(keys[1], (DEPTH, WIDTH, WIDTH), jnp.float32) / jnp.sqrt(WIDTH),
              "b": jnp.zeros((DEPTH, WIDTH), jnp.float32),
              "w_out": jax.random.normal(keys[2], (WIDTH, N_OUT), jnp.float32) / jnp.sqrt(WIDTH)}
    x = jax.random.normal(keys[3], (BATCH, N_IN), jnp.float32)
    y = jnp.arange(BATCH) % N_OUT

    def loss(p):
        h = jnp.tanh(x @ p["w_in"])
        if scan:
            h, _ = jax.lax.scan(lambda h, wb: (jnp.tanh(h @ wb[0] + wb[1]), None), h, (p["w"], p["b"]))
        else:
            for i in range(DEPTH):
                h = jnp.tanh(h @ p["w"][i] + p["b"][i])
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(h @ p["w_out"], y))

    return loss, params


def _temp_bytes(gradient, params) -> int:
    opt = optax.sgd(1e-3)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(p, key):
        u, _ = opt.update(gradient(p, key), opt.init(p), p)
        return optax.apply_updates(p, u)

    return int(step.lower(params, jax.random.PRNGKey(1)).compile().memory_analysis().temp_size_in_bytes)


@pytest.mark.parametrize("distribution", ["rademacher"])
def test_forward_gradient_step_needs_at_most_a_quarter_of_backprop_memory(distribution):
    loss, params = _problem(scan=True)
    unrolled, _ = _problem(scan=False)
    forward = _temp_bytes(lambda p, k: optim.forward_gradient(loss, p, k, distribution=distribution)[1], params)
    backprop_scan = _temp_bytes(lambda p, k: jax.grad(loss)(p), params)
    backprop_unrolled = _temp_bytes(lambda p, k: jax.grad(unrolled)(p), params)
    activations = DEPTH * BATCH * WIDTH * 4  # one float32 activation per hidden layer
    # the configuration is activation-heavy: backprop keeps (at least) every hidden activation
    assert min(backprop_scan, backprop_unrolled) >= activations
    assert forward <= 0.25 * backprop_scan
    assert forward <= 0.25 * activations * 2  # and it does not grow with depth like backprop

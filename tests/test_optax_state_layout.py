"""Drop-in means the same state: for every optimizer optax also has, gradkit's state is optax's
pytree (same state types, field names, leaf dtypes), optax code that indexes it works, and a
checkpoint saved from one restores into the other and continues step for step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import optim

flax_serialization = pytest.importorskip("flax.serialization")

SCHEDULE = optax.linear_schedule(0.05, 0.005, 50)
MASK = {"w": True, "b": False}
CONFIGS = [
    ("sgd", {}), ("sgd", dict(momentum=0.9)), ("sgd", dict(momentum=0.9, nesterov=True)),
    ("sgd", dict(momentum=0.9, accumulator_dtype=jnp.float32)),
    ("adagrad", {}), ("rmsprop", {}), ("rmsprop", dict(bias_correction=True)), ("rmsprop", dict(centered=True)),
    ("rmsprop", dict(centered=True, bias_correction=True)), ("rmsprop", dict(momentum=0.9, nesterov=True)),
    ("rmsprop", dict(eps_in_sqrt=False, initial_scale=0.1)),
    ("adam", {}), ("adam", dict(mu_dtype=jnp.float32)), ("adam", dict(nesterov=True)), ("adamax", {}), ("nadam", {}),
    ("adabelief", {}), ("amsgrad", {}), ("amsgrad", dict(mu_dtype=jnp.float32)),
    ("lion", {}), ("lion", dict(mask=MASK)), ("lion", dict(weight_decay=0.0)), ("lion", dict(weight_decay=SCHEDULE)),
    ("adamw", {}), ("adamw", dict(mask=MASK)), ("adamw", dict(weight_decay=SCHEDULE)), ("adamw", dict(weight_decay=0.1)),
]


def _describe(name, kw):
    parts = [f"{k}={'schedule' if callable(v) else v}" for k, v in kw.items()]
    return "-".join([name, *parts]) if parts else name


IDS = [_describe(name, kw) for name, kw in CONFIGS]
PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.array([0.5, -0.25, 1.0])}


def loss(p):
    return jnp.sum(jnp.sin(p["w"]) ** 2 * jnp.arange(1.0, 4.0)) + jnp.sum((p["b"] - 0.3) ** 2) + jnp.sum(p["w"] @ p["b"])


def pair(name, kw, lr):
    return getattr(optim, name)(lr, **kw), getattr(optax, name)(lr, **kw)


def stepper(opt):
    """``steps(params, state, n)``: ``n`` optax steps of ``opt``, one compiled program per ``n``."""

    def body(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(loss)(p), s, p)
        return (optax.apply_updates(p, u), s), None

    return jax.jit(lambda p, s, n: jax.lax.scan(body, (p, s), None, length=n)[0], static_argnums=2)


@pytest.mark.parametrize("lr", [0.05, SCHEDULE], ids=["constant", "schedule"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_state_is_optax_state(name, kw, lr):
    ours, theirs = pair(name, kw, lr)
    for params in (PARAMS, {"w": PARAMS["w"].astype(jnp.bfloat16), "b": PARAMS["b"].astype(jnp.float32)}):
        a, b = ours.init(params), theirs.init(params)
        assert jax.tree.structure(a) == jax.tree.structure(b)  # node types, field names, dict keys
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_an_optax_checkpoint_continues_in_gradkit_and_back(name, kw):
    """20 optax steps, state saved with flax.serialization, restored into gradkit's state
    template, then 100 more steps: the same as optax's 100 (and the other way round)."""
    ours, theirs = pair(name, kw, SCHEDULE)
    steps = {id(ours): stepper(ours), id(theirs): stepper(theirs)}
    for first, second in ((theirs, ours), (ours, theirs)):
        params, state = steps[id(first)](PARAMS, first.init(PARAMS), 20)
        restored = flax_serialization.from_bytes(second.init(PARAMS), flax_serialization.to_bytes(state))
        got_params, got_state = steps[id(second)](params, restored, 100)
        want_params, want_state = steps[id(first)](params, state, 100)
        for x, y in zip(jax.tree.leaves((got_params, got_state)), jax.tree.leaves((want_params, want_state))):
            np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-10)  # float64 rounding over 120 steps


def test_optax_code_that_indexes_the_state_works():
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    grads = jax.tree.map(lambda x: 0.5 * jnp.ones_like(x), params)
    state = optim.adam(0.1).init(params)
    _, state = optim.adam(0.1).update(grads, state, params)
    np.testing.assert_allclose(state[0].mu["w"], 0.05)  # opt_state[0].mu, as with optax.adam
    assert int(optax.tree.get(state, "count")) == 1
    sgd = optim.sgd(0.1, momentum=0.9)
    _, state = sgd.update(grads, sgd.init(params), params)
    np.testing.assert_allclose(state[0].trace["b"], 0.5)
    # inject_hyperparams at a learning rate of 0 (optax's state_utils test does this)
    injected = optax.inject_hyperparams(optim.sgd)(learning_rate=0.0)
    updates, state = injected.update(grads, injected.init(params), params)
    assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates))
    assert float(state.hyperparams["learning_rate"]) == 0.0

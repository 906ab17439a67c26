"""The last bad inputs: each a one-line error naming the argument, before any compute; and the
curvature operators' eager calls compiled once."""

from __future__ import annotations

import gc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import gradkit as gk
from _jax_counters import compiles, peak_rss_bytes
from gradkit import curvature as cv
from gradkit.linalg import cg


X = jax.random.normal(jax.random.PRNGKey(0), (16, 3))
Y = X @ jnp.array([1.0, -2.0, 0.5])
PARAMS = {"w": jnp.array([0.1, 0.2, 0.3]), "b": jnp.array(0.0)}


def loss(p, batch):
    x, y = batch
    return jnp.mean(jnp.tanh(x @ p["w"] + p["b"]) - y) ** 2 + 0.1 * jnp.sum(p["w"] ** 4)


def test_cg_with_no_iteration_is_refused():
    with pytest.raises(ValueError, match="maxiter"):
        cg(lambda v: v, jnp.ones(3), maxiter=0)


@pytest.mark.parametrize("bad_key", [3, 5.0, jnp.arange(3), np.zeros(2, np.float32)],
                         ids=["int", "float", "int array", "float array"])
def test_an_invalid_random_key_is_named(bad_key):
    op = cv.hessian(loss, PARAMS, (X, Y))
    with pytest.raises(TypeError, match="key must be a JAX random key"):
        op.diagonal(bad_key, 4)
    with pytest.raises(TypeError, match="adahessian: key must be a JAX random key"):
        gk.optim.adahessian(0.1, key=bad_key)
    with pytest.raises(TypeError, match="CurvatureTracker.init: key must be a JAX random key"):
        cv.CurvatureTracker(loss).init(PARAMS, bad_key)
    with pytest.raises(TypeError, match="random_seed must be a JAX random key"):
        gk.optim.hutchinson_estimator_diag_hessian(bad_key)
    # both kinds of real keys pass
    for key in (jax.random.PRNGKey(1), jax.random.key(1)):
        assert jax.tree.leaves(op.diagonal(key, 2))


def test_tracker_k_larger_than_the_parameters_is_named():
    with pytest.raises(ValueError, match=r"k=3 .* 2 parameters"):
        cv.CurvatureTracker(lambda p, b: jnp.sum(p**2), k=3, lanczos_steps=3).init(jnp.ones(2), jax.random.PRNGKey(0))


def test_tracker_keeps_its_loss_fn_contract_with_batch_none():
    """``loss_fn(params, batch)`` is called with ``batch=None``, never as ``loss_fn(params)``."""
    seen = []

    def quadratic(p, batch):
        seen.append(batch)
        return 0.5 * jnp.sum(jnp.arange(1.0, 4.0) * p**2)

    tracker = cv.CurvatureTracker(quadratic, every=1, trace_matvecs=0, lanczos_steps=3)
    tstate = tracker.update(tracker.init(jnp.ones(3), jax.random.PRNGKey(0)), 0, jnp.ones(3), None)
    assert seen and all(b is None for b in seen)
    assert float(tstate.eigenvalues[0, 0]) == pytest.approx(3.0, rel=1e-10)  # diag(1, 2, 3)


@pytest.mark.parametrize("value,error", [("10", TypeError), ([10], TypeError), (0, ValueError), (2.5, ValueError)])
def test_sophia_update_interval_is_named(value, error):
    with pytest.raises(error, match="update_interval"):
        gk.optim.sophia(0.1, update_interval=value)


def test_runs_refuses_integer_starts_and_infinite_tolerances():
    f = gk.landscapes.get("rosenbrock")
    with pytest.raises(TypeError, match="starts must be floating-point"):
        gk.runs.run(f, gk.optim.sgd(0.1), jnp.zeros((4, 2), jnp.int32), 10)
    for name in ("tol", "rtol"):
        with pytest.raises(ValueError, match=f"{name} must be a finite"):
            gk.runs.run(f, gk.optim.sgd(0.1), jnp.zeros((4, 2)), 10, **{name: float("inf")})


def test_eager_operator_calls_compile_once_and_keep_memory_flat():
    """``op(v)``, ``op.batched_matvec``, ``op.diagonal`` and ``op.dense`` on a fresh operator every
    call: one compile each, then none in 200 calls; the values are the dense Hessian's."""
    v = jax.tree.map(jnp.ones_like, PARAMS)
    vs = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), v)
    key = jax.random.PRNGKey(3)

    def calls(op):
        return op(v), op.batched_matvec(vs), op.diagonal(key, 8), op.damped(0.5).dense()

    calls(cv.hessian(loss, PARAMS, (X + 0.0, Y)))  # also warms the eager add below
    gc.collect()
    before, arrays, rss = compiles(), len(jax.live_arrays()), peak_rss_bytes()
    for i in range(200):
        batch = (X + 0.001 * i, Y)
        out = calls(cv.hessian(loss, PARAMS, batch))
    gc.collect()
    assert compiles() == before
    assert len(jax.live_arrays()) - arrays < 40
    assert peak_rss_bytes() - rss < 24 * 2**20
    flat, unravel = ravel_pytree(PARAMS)
    dense = jax.hessian(lambda u: loss(unravel(u), (X + 0.001 * 199, Y)))(flat)
    np.testing.assert_allclose(ravel_pytree(out[0])[0], dense @ ravel_pytree(v)[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out[3], dense + 0.5 * np.eye(flat.size), rtol=1e-10, atol=1e-12)

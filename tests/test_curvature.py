"""gradkit.curvature operators against dense references (float64, tiny models)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from gradkit import curvature as cv
from gradkit import linalg

KEY = jax.random.PRNGKey(0)
N, D, H, C = 12, 3, 4, 3


def _model(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def _params(out=C, key=KEY):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (D, H)), "b1": jnp.linspace(-0.3, 0.3, H),
            "w2": jax.random.normal(k2, (H, out)) * 0.7, "b2": jnp.linspace(0.1, -0.2, out)}


def _softmax_ce(z, y):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], axis=1))


def _half_mse(z, y):
    return 0.5 * jnp.mean(jnp.sum((z - y) ** 2, axis=-1))


def _bce(z, y):
    z = z[:, 0]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


X = jax.random.normal(jax.random.PRNGKey(1), (N, D))
Y_CLASS = jax.random.randint(jax.random.PRNGKey(2), (N,), 0, C)
PARAMS = _params()
BATCH = (X, Y_CLASS)


def _loss(params, batch):
    return _softmax_ce(_model(params, batch[0]), batch[1])


def _dense_hessian(loss, params, batch):
    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.hessian(lambda f: loss(unravel(f), batch))(flat))


def _dense_ggn(model_fn, loss_of_outputs, params, batch):
    """Jᵀ H_ℓ J with J from jax.jacobian over the flat params and H_ℓ from jax.hessian."""
    flat, unravel = ravel_pytree(params)
    x, y = batch
    z = model_fn(params, x)
    jac = np.asarray(jax.jacobian(lambda f: model_fn(unravel(f), x).reshape(-1))(flat))
    h_loss = np.asarray(jax.hessian(lambda zz: loss_of_outputs(zz.reshape(z.shape), y))(z.reshape(-1)))
    return jac.T @ h_loss @ jac


def test_hessian_matches_jax_hessian():
    op = cv.hessian(_loss, PARAMS, BATCH)
    reference = _dense_hessian(_loss, PARAMS, BATCH)
    np.testing.assert_allclose(op.dense(), reference, rtol=1e-10, atol=1e-12)
    v = jax.tree.map(lambda p: jnp.cos(jnp.arange(p.size, dtype=p.dtype).reshape(p.shape)), PARAMS)
    np.testing.assert_allclose(ravel_pytree(op(v))[0], reference @ ravel_pytree(v)[0], rtol=1e-10, atol=1e-12)
    assert op.size == ravel_pytree(PARAMS)[0].size and op.shape == (op.size, op.size)
    assert op.dtype == jnp.float64


def test_hessian_without_batch():
    loss = lambda p: jnp.sum(jnp.sin(p["a"]) * p["b"] ** 2)
    params = {"a": jnp.array([0.3, -1.2]), "b": jnp.array([0.5, 2.0])}
    flat, unravel = ravel_pytree(params)
    np.testing.assert_allclose(cv.hessian(loss, params).dense(), jax.hessian(lambda f: loss(unravel(f)))(flat),
                               rtol=1e-12)


def test_ggn_matches_dense_jt_h_j():
    op = cv.ggn(_model, _softmax_ce, PARAMS, BATCH)
    np.testing.assert_allclose(op.dense(), _dense_ggn(_model, _softmax_ce, PARAMS, BATCH), rtol=1e-9, atol=1e-12)


def test_ggn_equals_hessian_for_linear_regression_with_mse():
    linear = lambda p, x: x @ p["w"] + p["b"]
    params = {"w": jax.random.normal(KEY, (D, 2)), "b": jnp.array([0.1, -0.4])}
    y = jax.random.normal(jax.random.PRNGKey(3), (N, 2))
    loss = lambda p, b: _half_mse(linear(p, b[0]), b[1])
    ggn = cv.ggn(linear, _half_mse, params, (X, y)).dense()
    np.testing.assert_allclose(ggn, cv.hessian(loss, params, (X, y)).dense(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ggn, _dense_hessian(loss, params, (X, y)), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("likelihood, loss_of_outputs, out, targets", [
    ("softmax", _softmax_ce, C, Y_CLASS),
    ("bernoulli", _bce, 1, (Y_CLASS > 0).astype(jnp.float64)),
    ("gaussian", _half_mse, 2, jnp.ones((N, 2))),
])
def test_true_fisher_equals_ggn_for_canonical_links(likelihood, loss_of_outputs, out, targets):
    params = _params(out)
    fisher = cv.fisher(_model, params, (X, targets), likelihood).dense()
    reference = _dense_ggn(_model, loss_of_outputs, params, (X, targets))
    np.testing.assert_allclose(fisher, reference, rtol=1e-9, atol=1e-12)
    assert np.linalg.eigvalsh(fisher).min() > -1e-10  # PSD


def test_empirical_fisher_is_mean_of_outer_products():
    def per_example(p, example):
        x, y = example
        return _softmax_ce(_model(p, x[None]), y[None])

    op = cv.empirical_fisher(per_example, PARAMS, BATCH)
    flat, unravel = ravel_pytree(PARAMS)
    grads = np.stack([np.asarray(jax.grad(lambda f: per_example(unravel(f), (X[i], Y_CLASS[i])))(flat))
                      for i in range(N)])
    reference = grads.T @ grads / N
    np.testing.assert_allclose(op.dense(), reference, rtol=1e-10, atol=1e-13)
    stacked = jax.vmap(lambda g: ravel_pytree(g)[0])(op.per_example_gradients())
    np.testing.assert_allclose(stacked, grads, rtol=1e-10, atol=1e-13)


def test_hutchinson_diagonal_is_unbiased():
    """Mean of s Rademacher estimates vs diag(A): each entry within 4 standard errors
    (exact variance Σ_{j≠i} A_ij² / s), over 4 seeds pooled."""
    op = cv.hessian(_loss, PARAMS, BATCH)
    dense = np.asarray(op.dense())
    s = 400
    estimates = np.stack([ravel_pytree(op.diagonal(jax.random.PRNGKey(seed), s))[0] for seed in range(4)])
    mean = estimates.mean(axis=0)
    off = dense - np.diag(np.diag(dense))
    stderr = np.sqrt((off**2).sum(axis=1) / (4 * s))
    z = (mean - np.diag(dense)) / np.maximum(stderr, 1e-15)
    assert np.all(np.abs(z) < 4.5), np.abs(z).max()
    # and not trivially: one probe is far from exact where off-diagonals are large
    single = ravel_pytree(op.diagonal(jax.random.PRNGKey(9), 1))[0]
    assert np.abs(single - np.diag(dense)).max() > 10 * stderr.max() / np.sqrt(4 * s)


def test_damping():
    op = cv.hessian(_loss, PARAMS, BATCH)
    dense = np.asarray(op.dense())
    damped = op.damped(0.5).damped(0.25)
    np.testing.assert_allclose(damped.dense(), dense + 0.75 * np.eye(op.size), rtol=1e-12, atol=1e-13)
    v = jax.tree.map(jnp.ones_like, PARAMS)
    np.testing.assert_allclose(ravel_pytree(jax.jit(lambda o, u: o(u))(damped, v))[0],
                               (dense + 0.75 * np.eye(op.size)) @ np.ones(op.size), rtol=1e-12)
    for bad in (-1.0, np.float32(-1.0), float("inf"), float("nan"), jnp.asarray(-0.5)):
        with pytest.raises(ValueError, match="damping must be a finite number >= 0"):
            op.damped(bad)


def test_batched_matvec_equals_stacked_matvecs():
    op = cv.ggn(_model, _softmax_ce, PARAMS, BATCH)
    vs = jax.tree.map(lambda p: jax.random.normal(KEY, (5, *p.shape)), PARAMS)
    batched = op.batched_matvec(vs)
    for i in range(5):
        single = op(jax.tree.map(lambda leaf: leaf[i], vs))
        for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(single)):
            np.testing.assert_allclose(a[i], b, rtol=1e-12, atol=1e-14)
    linearized = op.linearize()
    np.testing.assert_allclose(ravel_pytree(linearized(jax.tree.map(lambda leaf: leaf[2], vs)))[0],
                               ravel_pytree(jax.tree.map(lambda leaf: leaf[2], batched))[0], rtol=1e-12)


def test_operator_works_in_linalg():
    op = cv.ggn(_model, _softmax_ce, PARAMS, BATCH).damped(1e-2)
    dense = np.asarray(op.dense())
    eig = np.linalg.eigvalsh(dense)
    b = jax.tree.map(jnp.ones_like, PARAMS)
    res = linalg.cg(op, b, tol=1e-12, maxiter=200)
    np.testing.assert_allclose(ravel_pytree(res.x)[0], np.linalg.solve(dense, np.ones(op.size)), rtol=1e-7)
    top = linalg.lanczos_eigenvalues(op, PARAMS, KEY, k=3, num_steps=op.size)
    np.testing.assert_allclose(top.eigenvalues, eig[::-1][:3], rtol=1e-9)
    hessian = cv.hessian(_loss, PARAMS, BATCH)
    trace = linalg.hutchinson_trace(hessian, PARAMS, KEY, num_samples=300)
    exact = np.trace(np.asarray(hessian.dense()))
    assert abs(float(trace.estimate) - exact) < 4 * float(trace.stderr)


def test_fresh_operator_does_not_retrace():
    traces = []

    def loss(params, batch):
        traces.append(1)
        return _loss(params, batch)

    @jax.jit
    def top_quadratic(op, v):
        return optax.tree.vdot(v, op(v))

    v = jax.tree.map(jnp.ones_like, PARAMS)
    first = top_quadratic(cv.hessian(loss, PARAMS, BATCH), v)
    count = len(traces)
    for scale in (0.5, 2.0, 3.0):
        params = jax.tree.map(lambda p: p * scale, PARAMS)
        value = top_quadratic(cv.hessian(loss, params, BATCH).damped(0.1), v)
        assert np.isfinite(value)
    assert len(traces) == count  # new params and damping are new leaves, not a new trace
    assert float(first) == pytest.approx(float(ravel_pytree(v)[0] @ _dense_hessian(_loss, PARAMS, BATCH)
                                               @ ravel_pytree(v)[0]), rel=1e-10)


def test_vmap_over_params():
    stacked = jax.tree.map(lambda p: jnp.stack([p, 0.5 * p]), PARAMS)
    v = jax.tree.map(jnp.ones_like, PARAMS)
    out = jax.vmap(lambda p: cv.hessian(_loss, p, BATCH)(v))(stacked)
    for i, scale in enumerate((1.0, 0.5)):
        params = jax.tree.map(lambda p: p * scale, PARAMS)
        np.testing.assert_allclose(ravel_pytree(jax.tree.map(lambda leaf: leaf[i], out))[0],
                                   _dense_hessian(_loss, params, BATCH) @ np.ones(ravel_pytree(v)[0].size),
                                   rtol=1e-10)


def test_half_precision_params_are_computed_in_float32():
    params16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), PARAMS)
    x32 = X.astype(jnp.float32)
    op = cv.hessian(lambda p, b: _loss(p, b), params16, (x32, Y_CLASS))
    assert op.dtype == jnp.bfloat16 and op.compute_dtype == jnp.float32
    v = jax.tree.map(jnp.ones_like, params16)
    out = op(v)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(out))
    params_back = jax.tree.map(lambda p: p.astype(jnp.float64), params16)
    reference = _dense_hessian(_loss, params_back, BATCH) @ np.ones(op.size)
    np.testing.assert_allclose(np.asarray(ravel_pytree(out)[0], np.float64), reference, rtol=2e-2, atol=2e-2)
    assert op.dense().dtype == jnp.float32


def test_bad_input_errors():
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        cv.hessian(3, PARAMS)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        cv.fisher(_model, PARAMS, BATCH, "poisson")
    with pytest.raises(TypeError, match="batch must be a pair"):
        cv.ggn(_model, _softmax_ce, PARAMS, X)
    with pytest.raises(TypeError, match="float dtype"):
        cv.hessian(_loss, {"w": jnp.arange(3)}, BATCH)
    op = cv.hessian(_loss, PARAMS, BATCH)
    with pytest.raises(ValueError, match="does not match the params"):
        op({"w1": PARAMS["w1"]})
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        op.diagonal(KEY, 0)
    with pytest.raises(TypeError, match="must return a scalar"):
        cv.hessian(lambda p, b: _model(p, b[0]), PARAMS, BATCH)(PARAMS)

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import gradkit as gk
from gradkit.diff import numeric


def _mlp_params(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "layer1": {"w": jax.random.normal(k1, (3, 4)), "b": jnp.zeros(4)},
        "layer2": (jax.random.normal(k2, (4, 2)), jax.random.normal(k3, (2,))),
    }


X = jax.random.normal(jax.random.PRNGKey(7), (5, 3))


def mlp(params, x=X):
    h = jnp.tanh(x @ params["layer1"]["w"] + params["layer1"]["b"])
    w2, b2 = params["layer2"]
    return h @ w2 + b2


def loss(params):
    return jnp.mean(jnp.sum((mlp(params) - 0.5) ** 2, axis=-1)) + 0.01 * jnp.sum(params["layer2"][1] ** 4)


def dense_hessian(f, params):
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda z: f(unravel(z)))(flat), unravel


@pytest.mark.parametrize("mode", gk.derivatives.HVP_MODES)
def test_hvp_modes_match_dense_hessian_on_a_pytree(mode):
    params = _mlp_params(jax.random.PRNGKey(0))
    v = _mlp_params(jax.random.PRNGKey(1))
    H, _ = dense_hessian(loss, params)
    got = ravel_pytree(gk.hvp(loss, params, v, mode=mode))[0]
    np.testing.assert_allclose(got, H @ ravel_pytree(v)[0], rtol=1e-10, atol=1e-12)


def test_hvp_operator_and_batched_hvp():
    params = _mlp_params(jax.random.PRNGKey(0))
    H, unravel = dense_hessian(loss, params)
    n = H.shape[0]
    V = jax.random.normal(jax.random.PRNGKey(3), (6, n))
    op = jax.jit(gk.hvp_operator(loss, params))
    for row in V[:2]:
        np.testing.assert_allclose(ravel_pytree(op(unravel(row)))[0], H @ row, rtol=1e-10, atol=1e-12)
    vs = jax.vmap(unravel)(V)
    for mode in ("fwd_rev", "rev_rev"):
        out = gk.batched_hvp(loss, params, vs, mode=mode)
        flat = jax.vmap(lambda t: ravel_pytree(t)[0])(out)
        np.testing.assert_allclose(flat, V @ H.T, rtol=1e-10, atol=1e-12)


def test_hvp_against_finite_differences_of_the_gradient():
    f = gk.landscapes.get("rosenbrock", dim=5)
    x = jnp.array([0.3, -0.5, 1.2, 0.8, -1.0])
    v = jnp.array([1.0, 0.5, -0.3, 0.2, 0.1])
    fd = numeric.derivative(lambda t: np.asarray(jax.grad(f)(x + t * v)), 0.0)
    np.testing.assert_allclose(gk.hvp(f, x, v), fd, rtol=1e-7)


def test_ggn_vp_equals_jt_hl_j():
    params = _mlp_params(jax.random.PRNGKey(0))
    v = _mlp_params(jax.random.PRNGKey(2))
    labels = jax.nn.one_hot(jnp.array([0, 1, 1, 0, 1]), 2)

    def ce(logits):
        return -jnp.mean(jnp.sum(labels * jax.nn.log_softmax(logits), axis=-1))

    flat, unravel = ravel_pytree(params)
    J = jax.jacfwd(lambda z: mlp(unravel(z)).reshape(-1))(flat)
    logits = mlp(params)
    HL = jax.hessian(lambda z: ce(z.reshape(logits.shape)))(logits.reshape(-1))
    expected = J.T @ HL @ J @ ravel_pytree(v)[0]
    got = ravel_pytree(gk.ggn_vp(mlp, ce, params, v))[0]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # PSD for a convex loss: <v, G v> >= 0
    assert float(jnp.vdot(ravel_pytree(v)[0], got)) >= 0


def test_directional_derivative_matches_fd():
    f = gk.landscapes.get("himmelblau")
    x, v = jnp.array([1.0, -0.5]), jnp.array([0.6, 0.8])
    fd = numeric.derivative(lambda t: float(f(x + t * v)), 0.0)
    assert float(gk.directional_derivative(f, x, v)) == pytest.approx(float(fd), rel=1e-9)


def test_jacobian_and_dense_hessian_helpers():
    A = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    J = gk.jacobian(lambda x: jnp.sin(A @ x), jnp.array([0.1, 0.2]))
    assert J.shape == (3, 2)
    np.testing.assert_allclose(J, gk.jacobian(lambda x: jnp.sin(A @ x), jnp.array([0.1, 0.2]), mode="fwd"))
    params = {"a": jnp.array([1.0, 2.0]), "b": jnp.array(0.5)}
    Hd = gk.hessian(lambda p: jnp.sum(p["a"] ** 2) * p["b"] ** 3, params, dense=True)
    assert Hd.shape == (3, 3)
    np.testing.assert_allclose(Hd, Hd.T)
    Ht = gk.hessian(lambda p: jnp.sum(p["a"] ** 2) * p["b"] ** 3, params)
    np.testing.assert_allclose(Ht["a"]["b"], Hd[:2, 2])


# --- seed 004 exercises: analytic vs autograd ----------------------------------------------------
RNG = np.random.default_rng(0)


def test_seed004_quadratic_form_hessian_is_symmetric_part():
    A, b = RNG.normal(size=(4, 4)), RNG.normal(size=4)
    f = lambda x: 0.5 * x @ A @ x + b @ x + 3.0
    x = RNG.normal(size=4)
    np.testing.assert_allclose(gk.hessian(f, x), (A + A.T) / 2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jax.grad(f)(x), (A + A.T) / 2 @ x + b, rtol=1e-12)


def test_seed004_gradient_of_trace_axb():
    A, B, X0 = RNG.normal(size=(3, 4)), RNG.normal(size=(5, 3)), RNG.normal(size=(4, 5))
    grad = jax.grad(lambda X: jnp.trace(A @ X @ B))(X0)
    np.testing.assert_allclose(grad, A.T @ B.T, rtol=1e-12)  # d tr(AXB)/dX = Aᵀ Bᵀ


def test_seed004_least_squares_gradient_and_hessian():
    A, b, x = RNG.normal(size=(6, 3)), RNG.normal(size=6), RNG.normal(size=3)
    f = lambda x: 0.5 * jnp.sum((A @ x - b) ** 2)
    np.testing.assert_allclose(jax.grad(f)(x), A.T @ (A @ x - b), rtol=1e-12)
    np.testing.assert_allclose(gk.hessian(f, x), A.T @ A, rtol=1e-12)
    v = RNG.normal(size=3)
    np.testing.assert_allclose(gk.hvp(f, jnp.asarray(x), jnp.asarray(v)), A.T @ A @ v, rtol=1e-12)


def test_seed004_softplus_of_inner_product():
    a, x = RNG.normal(size=4), RNG.normal(size=4)
    f = lambda x: jnp.log1p(jnp.exp(a @ x))
    s = 1 / (1 + np.exp(-(a @ x)))
    np.testing.assert_allclose(jax.grad(f)(x), s * a, rtol=1e-12)
    np.testing.assert_allclose(gk.hessian(f, x), s * (1 - s) * np.outer(a, a), rtol=1e-11, atol=1e-15)


def test_seed004_fourth_derivative_of_tanh():
    d4 = jax.grad(jax.grad(jax.grad(jax.grad(jnp.tanh))))
    for x in (-1.3, 0.0, 0.4, 2.0):
        t = np.tanh(x)
        assert float(d4(x)) == pytest.approx(8 * t * (1 - t**2) * (2 - 3 * t**2), abs=1e-12)


# --- bad input ------------------------------------------------------------------------------------


def test_non_scalar_objective_is_a_type_error():
    with pytest.raises(TypeError, match="scalar"):
        gk.hvp(lambda x: x**2, jnp.ones(3), jnp.ones(3))


def test_tangent_structure_mismatch_is_a_value_error():
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    with pytest.raises(ValueError, match="structure"):
        gk.hvp(lambda p: jnp.sum(p["a"]), params, {"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="shape"):
        gk.hvp(lambda p: jnp.sum(p["a"]), params, {"a": jnp.ones(2), "b": jnp.ones(4)})
    with pytest.raises(ValueError, match="mode"):
        gk.hvp(lambda p: jnp.sum(p["a"]), params, params, mode="fwd_fwd")

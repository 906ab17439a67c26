"""Forward gradients: unbiasedness, the variance of each tangent distribution, 1/K, no backward pass."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import landscapes, optim, runs

A = jnp.array([1.0, -2.0, 0.5, 3.0, 0.0, 1.5])


def f(theta):
    return jnp.sum(0.5 * A * theta**2 + jnp.sin(theta))


THETA = jnp.array([0.3, -0.7, 1.1, 0.2, -1.4, 0.6])
G = np.asarray(jax.grad(f)(THETA))
M = 40_000  # estimates per statistical test (seeded: deterministic)


def estimates(distribution, num_tangents=1, m=M):
    keys = jax.random.split(jax.random.PRNGKey(0), m)
    return np.asarray(jax.jit(jax.vmap(lambda k: optim.forward_gradient(f, THETA, k, num_tangents, distribution)[1]))(keys))


@pytest.mark.parametrize("distribution", ["normal", "rademacher"])
def test_unbiased_within_a_confidence_interval_from_the_known_variance(distribution):
    g = estimates(distribution)
    norm2 = np.sum(G**2)
    var = norm2 + G**2 if distribution == "normal" else norm2 - G**2
    half_width = 5 * np.sqrt(var / M)  # 5 sigma
    assert np.all(np.abs(g.mean(axis=0) - G) <= half_width), (g.mean(axis=0), G, half_width)


@pytest.mark.parametrize("distribution", ["normal", "rademacher"])
def test_variance_matches_theory(distribution):
    g = estimates(distribution)
    n, norm2 = G.size, np.sum(G**2)
    if distribution == "normal":
        var, second_moment = norm2 + G**2, (n + 2) * norm2
    else:
        var, second_moment = norm2 - G**2, n * norm2
    np.testing.assert_allclose(g.var(axis=0), var, rtol=0.05)
    np.testing.assert_allclose(np.mean(np.sum(g**2, axis=1)), second_moment, rtol=0.03)


def test_k_tangents_divide_the_variance_by_k():
    var1 = estimates("normal").var(axis=0)
    var4 = estimates("normal", num_tangents=4, m=M // 2).var(axis=0)
    np.testing.assert_allclose(var4, var1 / 4, rtol=0.08)


def test_value_and_one_tangent_estimate_are_exact_projections():
    key = jax.random.PRNGKey(3)
    value, g = optim.forward_gradient(f, THETA, key)
    v = optim.sample_tangents(key, THETA)[0]  # the same draw: same key, same sampler
    assert float(value) == pytest.approx(float(f(THETA)))
    np.testing.assert_allclose(g, np.dot(G, v) * v, rtol=1e-12)


def test_no_backward_pass():
    def data_dependent_loop(theta):
        # a while_loop with a data-dependent trip count: reverse mode cannot differentiate it
        def body(c):
            x, i = c
            return x * 0.9 + jnp.sin(x) * 0.01, i + 1

        x, _ = jax.lax.while_loop(lambda c: jnp.sum(c[0] ** 2) > 1e-2, body, (theta, 0))
        return jnp.sum(x**2) + jnp.sum(theta**2)

    with pytest.raises(ValueError, match="[Rr]everse-mode"):
        jax.grad(data_dependent_loop)(THETA)
    value, g = optim.forward_gradient(data_dependent_loop, THETA, jax.random.PRNGKey(0), 2)
    assert np.all(np.isfinite(g))
    jaxpr = str(jax.make_jaxpr(lambda t: optim.forward_gradient(f, t, jax.random.PRNGKey(0), 2))(THETA))
    assert "transpose" not in jaxpr and "while" not in jaxpr


def test_pytree_params_keep_their_dtypes():
    params = {"w": jnp.ones((2, 3), jnp.float32), "b": (jnp.zeros(4, jnp.float64),)}
    tangents = optim.sample_tangents(jax.random.PRNGKey(0), params, 5, "rademacher")
    assert tangents["w"].shape == (5, 2, 3) and tangents["w"].dtype == jnp.float32
    assert tangents["b"][0].dtype == jnp.float64
    assert set(np.unique(np.asarray(tangents["w"]))) == {-1.0, 1.0}
    _, g = optim.forward_gradient(lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["b"][0]), params,
                                  jax.random.PRNGKey(1), 3)
    assert g["w"].dtype == jnp.float32 and g["b"][0].shape == (4,)


def test_forward_gradient_descent_equals_the_manual_loop_and_converges():
    key = jax.random.PRNGKey(7)
    fgd = optim.forward_gradient_descent(optim.sgd(0.05), key, objective=f)
    theta, state = THETA, fgd.init(THETA)
    manual, k = THETA, key
    for _ in range(5):
        u, state = fgd.update(None, state, theta)
        theta = optax.apply_updates(theta, u)
        k, sub = jax.random.split(k)
        manual = manual - 0.05 * optim.forward_gradient(f, manual, sub)[1]
    np.testing.assert_allclose(theta, manual, rtol=1e-12)

    quad = landscapes.get("quadratic", dim=10, condition=10.0)
    opt = optim.forward_gradient_descent(optax.adam(0.05), key, num_tangents=4)

    @jax.jit
    def step(x, s):
        u, s = opt.update(None, s, x, value_fn=quad)
        return optax.apply_updates(x, u), s

    x, s = jnp.ones(10), opt.init(jnp.ones(10))
    for _ in range(400):
        x, s = step(x, s)
    assert float(quad(x)) < 1e-2 * float(quad(jnp.ones(10)))


def test_inside_vectorized_runs_vmapped_over_keys():
    rosen = landscapes.get("rosenbrock")
    starts = jnp.tile(jnp.array([[-1.0, 1.0]]), (6, 1))
    keys = jax.random.split(jax.random.PRNGKey(0), 6)

    def make(key):
        return optim.forward_gradient_descent(optim.sgd(1e-3), key, objective=rosen)

    res = runs.run_batch(rosen, make, starts, 200, {"key": keys}, record="trajectory")
    assert len({tuple(np.round(p, 8)) for p in res.final}) == 6  # each run drew its own tangents
    assert np.all(res.values[:, -1] < res.values[:, 0])
    solo = optim.forward_gradient_descent(optim.sgd(1e-3), keys[2], objective=rosen)
    x, s = starts[2], solo.init(starts[2])
    for _ in range(200):
        u, s = solo.update(None, s, x)
        x = optax.apply_updates(x, u)
    np.testing.assert_allclose(res.final[2], x, rtol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="distribution"):
        optim.forward_gradient(f, THETA, jax.random.PRNGKey(0), distribution="uniform")
    with pytest.raises(ValueError, match="num_tangents"):
        optim.forward_gradient(f, THETA, jax.random.PRNGKey(0), num_tangents=0)
    with pytest.raises(TypeError, match="scalar"):
        optim.forward_gradient(lambda t: t * 2, THETA, jax.random.PRNGKey(0))
    opt = optim.forward_gradient_descent(optim.sgd(0.1), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="objective"):
        opt.update(None, opt.init(THETA), THETA)

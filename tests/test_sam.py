import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import optim

A = jnp.array([[3.0, 0.5], [0.5, 1.0]])


def quad(w):
    return 0.5 * w @ A @ w


def test_one_sam_step_is_the_hand_computed_two_gradient_step():
    w, lr, rho = jnp.array([1.0, -2.0]), 0.1, 0.3
    opt = optim.sam(optim.sgd(lr), rho=rho)
    g = A @ w
    u, _ = opt.update(g, opt.init(w), w, value_fn=quad)
    eps_hat = rho * g / jnp.linalg.norm(g)
    np.testing.assert_allclose(u, -lr * (A @ (w + eps_hat)), rtol=1e-14)


def test_one_asam_step_is_the_hand_computed_step():
    w, lr, rho, eta = jnp.array([1.0, -2.0]), 0.1, 0.5, 0.01
    opt = optim.asam(optim.sgd(lr), rho=rho, eta=eta)
    g = A @ w
    u, _ = opt.update(g, opt.init(w), w, value_fn=quad)
    T = jnp.abs(w) + eta
    eps_hat = rho * T**2 * g / jnp.linalg.norm(T * g)
    np.testing.assert_allclose(u, -lr * (A @ (w + eps_hat)), rtol=1e-14)


def test_matches_optax_contrib_sam_in_opaque_mode():
    rho = 0.05
    params = {"w": jnp.array([1.0, -2.0]), "b": (jnp.array([0.5, 0.1, -0.3]),)}

    def loss(p):
        return quad(p["w"]) + jnp.sum(jnp.cosh(p["b"][0])) + jnp.sum(p["w"]) * jnp.sum(p["b"][0] ** 2)

    ours = optim.sam(optim.adam(0.05), rho=rho)
    theirs = optax.contrib.sam(optax.adam(0.05), optax.chain(optax.contrib.normalize(), optax.sgd(rho)),
                               sync_period=2, opaque_mode=True)
    p1, s1, p2, s2 = params, ours.init(params), params, theirs.init(params)
    for _ in range(25):
        u1, s1 = ours.update(jax.grad(loss)(p1), s1, p1, value_fn=loss)
        p1 = optax.apply_updates(p1, u1)
        u2, s2 = theirs.update(jax.grad(loss)(p2), s2, p2, grad_fn=lambda p, _: jax.grad(loss)(p))
        p2 = optax.apply_updates(p2, u2)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("adaptive", [False, True])
def test_zero_gradient_gives_no_nan(adaptive):
    opt = optim.sam(optim.adam(0.1), rho=0.05, adaptive=adaptive)
    w = jnp.zeros(2)  # the minimum: the gradient is exactly zero
    u, state = jax.jit(lambda g, s, w: opt.update(g, s, w, value_fn=quad))(jnp.zeros(2), opt.init(w), w)
    assert bool(jnp.all(jnp.isfinite(u))) and float(jnp.max(jnp.abs(u))) == 0.0
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))


def test_sam_trains_under_jit_with_a_minibatch_objective():
    key = jax.random.PRNGKey(0)
    X = jax.random.normal(key, (64, 3))
    y = X @ jnp.array([1.0, -2.0, 0.5])
    opt = optim.sam(optim.momentum(0.05, 0.9), rho=0.02)

    @jax.jit
    def step(w, state, batch):
        xb, yb = batch

        def mse(w):
            return jnp.mean((xb @ w - yb) ** 2)

        u, state = opt.update(jax.grad(mse)(w), state, w, value_fn=mse)
        return optax.apply_updates(w, u), state

    w, state = jnp.zeros(3), opt.init(jnp.zeros(3))
    for i in range(200):
        sl = slice((i % 4) * 16, (i % 4 + 1) * 16)
        w, state = step(w, state, (X[sl], y[sl]))
    # SAM's ascent step keeps norm rho, so it hovers within O(rho) of the minimizer
    assert float(jnp.linalg.norm(w - jnp.array([1.0, -2.0, 0.5]))) < 0.02
    assert float(jnp.mean((X @ w - y) ** 2)) < 1e-3 * float(jnp.mean(y**2))


def test_vmap_over_rho():
    w = jnp.array([1.0, -2.0])

    def one(rho):
        opt = optim.sam(optim.sgd(0.1), rho=rho)
        return opt.update(A @ w, opt.init(w), w, value_fn=quad)[0]

    out = jax.vmap(one)(jnp.array([0.1, 0.3]))
    np.testing.assert_allclose(out[1], one(0.3), rtol=1e-14)


def test_bad_input():
    with pytest.raises(ValueError, match="rho"):
        optim.sam(optim.sgd(0.1), rho=0.0)
    opt = optim.sam(optim.sgd(0.1))
    w = jnp.ones(2)
    with pytest.raises(ValueError, match="value_fn"):
        opt.update(w, opt.init(w), w)
    with pytest.raises(TypeError, match="scalar"):
        opt.update(w, opt.init(w), w, value_fn=lambda p: p * 2)

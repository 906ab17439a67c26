"""gradkit.optim.newton: the seed's Newton examples, scipy's Newton-CG and trust-ncg step
by step, Hessian-free against a dense damped Gauss-Newton solve, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
import scipy.special

import gradkit as gk
from gradkit import landscapes, runs
from gradkit.optim import hessian_free, minimize, newton, newton_cg, newton_cg_trust_region, newton_root


def seed003(p):
    x, y = p[0], p[1]
    return x**4 + 0.9 * y**4 + 4 * x**2 + 2 * y**2 - x * y - 0.2 * x**2 * y


def rosenbrock(x):
    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def iterate(opt, f, x0, steps):
    x, state, path = x0, opt.init(x0), []
    update = jax.jit(lambda g, s, x: opt.update(g, s, x, value_fn=f))
    for _ in range(steps):
        u, state = update(jax.grad(f)(x), state, x)
        x = optax.apply_updates(x, u)
        path.append(np.asarray(x))
    return np.array(path), state


# ----------------------------------------------------------------------------- Newton


def numpy_newton_step(p):
    """The seed-003 step by hand: gradient and Hessian written out, solved with NumPy."""
    x, y = p
    grad = np.array([4 * x**3 + 8 * x - y - 0.4 * x * y, 3.6 * y**3 + 4 * y - x - 0.2 * x**2])
    hess = np.array([[12 * x**2 + 8 - 0.4 * y, -1 - 0.4 * x], [-1 - 0.4 * x, 10.8 * y**2 + 4]])
    return p - np.linalg.solve(hess, grad)


def test_newton_reproduces_the_seed_003_example():
    path, state = iterate(newton(), seed003, jnp.array([4.0, 4.0]), 9)
    np.testing.assert_allclose(path[0], [2.5828, 2.6262], atol=1e-4)
    np.testing.assert_allclose(path[1], [1.5925, 1.6858], atol=1e-4)
    hand = np.array([4.0, 4.0])
    for k in range(6):  # full steps all the way: the line search accepts 1 each time
        hand = numpy_newton_step(hand)
        np.testing.assert_allclose(path[k], hand, rtol=1e-10, atol=1e-13)
    first_small = int(np.argmax(np.linalg.norm(path, axis=1) < 1e-6))
    assert 6 <= first_small + 1 <= 9
    np.testing.assert_allclose(path[-1], 0.0, atol=1e-12)
    assert float(state.shift) == 0.0  # the Hessian stayed positive definite


def test_newton_damps_an_indefinite_hessian_and_still_descends():
    f = lambda p: p[0] ** 2 - p[1] ** 2 + p[1] ** 4
    path, state = iterate(newton(), f, jnp.array([1.0, 0.05]), 30)
    assert np.all(np.isfinite(path))
    values = np.array([float(f(p)) for p in path])
    assert np.all(np.diff(values) <= 1e-15)
    np.testing.assert_allclose(np.abs(path[-1]), [0.0, 1 / np.sqrt(2)], atol=1e-10)
    # a singular Hessian ((x + y)^2: rank one) gives a finite damped step
    path, state = iterate(newton(damping=1e-3), lambda p: (p[0] + p[1]) ** 2, jnp.array([1.0, 2.0]), 5)
    assert np.all(np.isfinite(path)) and abs(path[-1].sum()) < 1e-6


def test_newton_races_on_himmelblau_inside_runs():
    land = landscapes.get("himmelblau")
    starts = runs.start_grid(land.domain, 6)
    result = runs.run(land.fn, newton(), starts, steps=25, tol=1e-10, f_star=0.0)
    assert result.converged.mean() == 1.0
    assert np.median(result.settled_step) <= 10
    basin = runs.nearest_minimum(np.asarray(result.final), land.minima)
    assert set(basin.tolist()) == {0, 1, 2, 3}


def test_newton_root_finding_seed_000():
    root = newton_root(lambda x: x**4 - 8 * x**3 + 21 * x**2 - 24 * x + 9, 2.0)
    np.testing.assert_allclose(root.x, 0.6972243622680052, rtol=0, atol=1e-13)
    np.testing.assert_allclose(root.x, (5 - np.sqrt(13)) / 2, rtol=1e-14)
    assert bool(root.converged)
    # (x+4)(x+6)(x-2)(x-12) = 25x^2 from the seed's start x = 9: the seed's own loop in floats
    poly = lambda x: (x + 4) * (x + 6) * (x - 2) * (x - 12) - 25 * x**2
    # expanded by hand: x^4 - 4x^3 - 117x^2 - 96x + 576
    dpoly = lambda x: 4 * x**3 - 12 * x**2 - 234 * x - 96
    hand = 9.0
    for _ in range(100):
        hand = hand - poly(hand) / dpoly(hand)
    root = newton_root(poly, 9.0)
    np.testing.assert_allclose(root.x, hand, rtol=1e-12)
    assert np.min(np.abs(np.roots([1, -4, -117, -96, 576]) - float(root.x))) < 1e-9
    # a 2x2 system: x^2 + y^2 = 4, x y = 1
    system = newton_root(lambda v: jnp.array([v[0] ** 2 + v[1] ** 2 - 4, v[0] * v[1] - 1]), jnp.array([2.0, 0.5]))
    np.testing.assert_allclose(system.x[0] ** 2 + system.x[1] ** 2, 4, rtol=1e-12)
    np.testing.assert_allclose(system.x[0] * system.x[1], 1, rtol=1e-12)
    # f'(x) = 0 at the start: reported, not NaN
    flat = newton_root(lambda x: x**2 + 1, 0.0)
    assert not bool(flat.converged) and np.isfinite(float(flat.x))


# ----------------------------------------------------------------------------- Newton-CG


def scipy_path(method, f, x0, **options):
    fj, gj = jax.jit(f), jax.jit(jax.grad(f))
    hj = jax.jit(lambda x, p: jax.jvp(jax.grad(f), (x,), (p,))[1])
    path = []
    result = scipy.optimize.minimize(lambda x: float(fj(x)), x0, jac=lambda x: np.asarray(gj(x)),
                                     hessp=lambda x, p: np.asarray(hj(x, p)), method=method,
                                     callback=lambda xk: path.append(np.copy(xk)), options=options)
    return np.array(path), result


def test_newton_cg_first_steps_equal_scipy():
    x0 = np.tile([-1.2, 1.0], 5)
    reference, _ = scipy_path("Newton-CG", rosenbrock, x0)
    path, _ = iterate(newton_cg(forcing_norm=1), rosenbrock, jnp.asarray(x0), 3)
    # same CG direction and forcing term; both line searches accept the unit step here
    np.testing.assert_allclose(path, reference[:3], rtol=1e-12, atol=1e-12)


def test_trust_region_newton_cg_equals_scipy_trust_ncg_step_by_step():
    x0 = np.tile([-1.2, 1.0], 5)
    reference, result = scipy_path("trust-ncg", rosenbrock, x0, gtol=1e-8)
    path, state = iterate(newton_cg_trust_region(), rosenbrock, jnp.asarray(x0), len(reference))
    np.testing.assert_allclose(path, reference, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(path[-1], 1.0, atol=1e-7)
    # scipy also spends products on evaluating the model at boundary points; we track it
    assert int(state.hvp_count) < int(result.nhev)


@pytest.mark.parametrize("line_search", ["wolfe", "armijo"])
def test_newton_cg_minimizes_chained_rosenbrock(line_search):
    x0 = jnp.asarray(np.tile([-1.2, 1.0], 50))
    result = jax.jit(lambda x: minimize(rosenbrock, x, newton_cg(line_search=line_search), gtol=1e-8,
                                        maxiter=2000))(x0)
    assert bool(result.converged)
    np.testing.assert_allclose(result.params, 1.0, atol=1e-7)
    assert int(result.state.hvp_count) >= int(result.iterations)


def test_newton_cg_negative_curvature_falls_back_to_steepest_descent():
    f = lambda p: p[0] ** 2 - p[1] ** 2 + p[1] ** 4
    x0 = jnp.array([0.0, 0.1])  # gradient (0, -0.196), curvature along it negative
    opt = newton_cg()
    updates, state = opt.update(jax.grad(f)(x0), opt.init(x0), x0, value_fn=f)
    assert bool(state.negative_curvature) and int(state.cg_iterations) == 0
    direction = np.asarray(updates) / np.linalg.norm(updates)
    np.testing.assert_allclose(direction, -np.asarray(jax.grad(f)(x0)) / np.linalg.norm(jax.grad(f)(x0)), atol=1e-12)
    result = minimize(f, x0, newton_cg(), gtol=1e-10)
    np.testing.assert_allclose(np.abs(result.params), [0, 1 / np.sqrt(2)], atol=1e-9)


def test_newton_cg_float32_and_pytrees():
    target = {"a": jnp.arange(3.0, dtype=jnp.float32), "b": (jnp.ones((2, 2), jnp.float32),)}
    f = lambda p: sum(jnp.sum((x - t) ** 4 + (x - t) ** 2) for x, t in zip(jax.tree.leaves(p), jax.tree.leaves(target)))
    start = jax.tree.map(lambda t: jnp.zeros_like(t) + 3.0, target)
    result = minimize(f, start, newton_cg(), gtol=1e-4)
    assert jax.tree.leaves(result.params)[0].dtype == jnp.float32
    for got, want in zip(jax.tree.leaves(result.params), jax.tree.leaves(target)):
        np.testing.assert_allclose(got, want, atol=1e-3)


def test_minimize_with_first_order_and_optax_lbfgs():
    x0 = jnp.array([-1.2, 1.0])
    for opt in (optax.lbfgs(), gk.optim.adam(0.02)):
        result = jax.jit(lambda x, opt=opt: minimize(rosenbrock, x, opt, gtol=1e-5, maxiter=20000))(x0)
        np.testing.assert_allclose(result.params, 1.0, atol=1e-3)


# ----------------------------------------------------------------------------- Hessian-free


def regression_problem(seed=0, n=64):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(k1, (n, 3))
    y = jnp.sin(x @ jnp.array([1.0, -2.0, 0.5]))[:, None]
    params = {"w1": jax.random.normal(k2, (3, 8)) / 2, "b1": jnp.zeros(8), "w2": jax.random.normal(k3, (8, 1)) / 3,
              "b2": jnp.zeros(1)}
    return x, y, params


def mlp(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def test_hessian_free_step_is_the_damped_gauss_newton_solve():
    x, y, params = regression_problem()
    model_fn = lambda p: mlp(p, x)
    loss_fn = lambda out: 0.5 * jnp.mean((out - y) ** 2)
    damping = 0.3
    opt = hessian_free(damping, line_search=False, cg_maxiter=200)
    grads = jax.grad(lambda p: loss_fn(model_fn(p)))(params)
    update = jax.jit(lambda g, s, p: opt.update(g, s, p, model_fn=model_fn, loss_fn=loss_fn))  # one compile, not op by op
    updates, state = update(grads, opt.init(params), params)
    # dense reference: G = Jᵀ H_L J with J from jax.jacfwd, H_L = I / n for this loss
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jac = jax.jacfwd(lambda z: model_fn(unravel(z)).ravel())(flat)
    gauss_newton = jac.T @ jac / x.shape[0]
    g = jax.flatten_util.ravel_pytree(grads)[0]
    exact = -np.linalg.solve(gauss_newton + damping * np.eye(flat.size), g)
    got = jax.flatten_util.ravel_pytree(updates)[0]
    # CG-iterate backtracking may stop early; either way the chosen iterate is close to the solve
    np.testing.assert_allclose(got, exact, rtol=1e-3, atol=1e-4 * np.abs(exact).max())
    assert int(state.cg_iterations) >= 10
    assert 0.0 < float(state.ratio)


@pytest.mark.parametrize("curvature", ["ggn", "hessian"])
def test_hessian_free_trains_on_minibatches(curvature):
    x, y, params = regression_problem(n=256)
    opt = hessian_free(1.0, curvature=curvature, cg_maxiter=50)
    full = lambda p: 0.5 * jnp.mean((mlp(p, x) - y) ** 2)

    @jax.jit
    def step(p, state, batch):
        xb, yb = x[batch], y[batch]
        model_fn = lambda q: mlp(q, xb)
        loss_fn = lambda out: 0.5 * jnp.mean((out - yb) ** 2)
        value_fn = lambda q: loss_fn(model_fn(q))
        u, state = opt.update(jax.grad(value_fn)(p), state, p, value_fn=value_fn, model_fn=model_fn,
                              loss_fn=loss_fn)
        return optax.apply_updates(p, u), state

    state, p = opt.init(params), params
    batches = np.random.default_rng(0).permutation(np.tile(np.arange(256), 8)).reshape(-1, 128)[:15]
    for batch in batches:
        p, state = step(p, state, jnp.asarray(batch))
    assert float(full(p)) < 0.25 * float(full(params))
    assert float(state.damping) != 1.0  # adapted by the reduction ratio
    if curvature == "ggn":  # PSD curvature: every step predicts a decrease
        assert bool(jnp.isfinite(state.ratio))


# ----------------------------------------------------------------------------- bad input


def test_second_order_bad_input():
    x0 = jnp.array([1.0, 2.0])
    for opt in (newton(), newton_cg(), newton_cg_trust_region(), hessian_free(curvature="hessian")):
        state = opt.init(x0)
        with pytest.raises(ValueError, match="value_fn"):
            opt.update(x0, state, x0)
        with pytest.raises(TypeError, match="scalar"):
            opt.update(x0, state, x0, value_fn=lambda p: p**2)
        with pytest.raises(ValueError, match="not finite"):
            opt.init(jnp.array([1.0, jnp.nan]))
    with pytest.raises(ValueError, match="model_fn"):
        hessian_free().update(x0, hessian_free().init(x0), x0, value_fn=jnp.sum)
    with pytest.raises(ValueError, match="max_params"):
        newton(max_params=10).init(jnp.zeros(11))
    with pytest.raises(ValueError, match="line_search"):
        newton_cg(line_search="exact")
    with pytest.raises(ValueError, match="not finite"):
        minimize(rosenbrock, jnp.array([jnp.inf, 1.0]), newton_cg())
    with pytest.raises(ValueError, match="eta"):
        newton_cg_trust_region(eta=0.5)


def test_newton_minimizes_the_seed_003_one_dimensional_example():
    """g(x) = eˣ - log x: Newton on g' (the seed's NMO) stops at eˣ = 1/x, the omega constant."""
    result = minimize(lambda x: jnp.exp(x[0]) - jnp.log(x[0]), jnp.array([1.0]), newton(), gtol=1e-14)
    omega = scipy.special.lambertw(1.0).real
    np.testing.assert_allclose(result.params[0], omega, rtol=1e-14)
    assert int(result.iterations) <= 8
    root = newton_root(lambda x: jnp.exp(x) - 1 / x, 1.0)
    np.testing.assert_allclose(root.x, omega, rtol=1e-14)

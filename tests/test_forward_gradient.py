"""Forward gradients: unbiasedness, the variance of each tangent distribution, 1/K, no backward pass."""

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import landscapes, optim, runs
from gradkit.optim import forward as fwd

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
    # rank-one tangents on a matrix: the while_loop takes the dense tangent (its own JVP rule)
    _, g = optim.forward_gradient(data_dependent_loop, W0, jax.random.PRNGKey(0), 2, "rank_one")
    assert g.shape == W0.shape and np.all(np.isfinite(g))
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
    update = jax.jit(solo.update)  # one compile, not 200 steps op by op
    for _ in range(200):
        u, s = update(None, s, x)
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


# ---- rank-one tangents on matrix leaves ------------------------------------------------

W0 = THETA.reshape(2, 3)


def f_matrix(w):
    return f(w.reshape(-1))


def test_rank_one_tangents_have_the_rademacher_moments():
    """V = a bᵀ: unbiased, Var g_ij = ||G||² - G_ij², E||g||² = n ||G||², as plain Rademacher."""
    keys = jax.random.split(jax.random.PRNGKey(0), M)
    g = np.asarray(jax.jit(jax.vmap(lambda k: optim.forward_gradient(f_matrix, W0, k, 1, "rank_one")[1]))(keys))
    g = g.reshape(M, -1)
    norm2 = np.sum(G**2)
    var = norm2 - G**2
    assert np.all(np.abs(g.mean(axis=0) - G) <= 5 * np.sqrt(var / M))
    np.testing.assert_allclose(g.var(axis=0), var, rtol=0.05)
    np.testing.assert_allclose(np.mean(np.sum(g**2, axis=1)), G.size * norm2, rtol=0.03)
    # the same draw, materialized: (∇f·V) V exactly; every component of V is ±1
    key = jax.random.PRNGKey(3)
    v = np.asarray(optim.sample_tangents(key, W0, 1, "rank_one")[0])
    assert set(np.unique(v)) == {-1.0, 1.0} and np.linalg.matrix_rank(v) == 1
    np.testing.assert_allclose(optim.forward_gradient(f_matrix, W0, key, 1, "rank_one")[1],
                               np.sum(G.reshape(2, 3) * v) * v, rtol=1e-12)


def _mlp_and_tangents():
    keys = jax.random.split(jax.random.PRNGKey(0), 12)
    x = jax.random.normal(keys[0], (7, 5))
    params = {"w1": jax.random.normal(keys[1], (5, 4)), "b1": jax.random.normal(keys[2], (4,)),
              "w2": jax.random.normal(keys[3], (3, 4)), "w3": jax.random.normal(keys[4], (3, 3))}

    @jax.jit
    def head(h, w):  # a nested jit: the factors go through it
        return h @ w.T

    def loss(p):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        z = head(h, p["w2"]) @ p["w3"]                       # rhs factored, after a transpose
        z = z + (p["w1"].T @ x.T).sum() + jnp.sum(p["w3"] ** 2)  # lhs factored; an elementwise use
        z = z + jnp.einsum("ij,jk->ik", p["w3"], p["w3"]).sum()  # both operands factored
        z = z + (jnp.einsum("bi,bj->ij", x, x)[:3, :3] @ p["w3"].astype(jnp.float32).astype(x.dtype)).sum()
        return jnp.sum(jax.nn.log_softmax(z))

    tangents = optim.sample_tangents(keys[5], params, 1, "rank_one")
    return loss, params, jax.tree.map(lambda t: t[0], tangents)


def test_factored_forward_pass_equals_jax_jvp_with_the_materialized_tangent():
    from gradkit.diff.rank_one import RankOne, rank_one_jvp

    loss, params, dense = _mlp_and_tangents()
    factors = []
    for v in jax.tree.leaves(dense):  # recover the factors of each ±1 rank-one matrix
        factors.append(RankOne(v[:, 0] * v[0, 0], v[0, :]) if v.ndim == 2 else v)
    value, slope = rank_one_jvp(loss, params, factors)
    ref_value, ref_slope = jax.jvp(loss, (params,), (dense,))
    assert float(value) == pytest.approx(float(ref_value), rel=1e-14)
    assert float(slope) == pytest.approx(float(ref_slope), rel=1e-12)
    # with None for a leaf: that leaf held fixed
    fixed = [None if i == 0 else t for i, t in enumerate(factors)]
    partial = {k: (jnp.zeros_like(v) if k == "b1" else v) for k, v in dense.items()}
    assert float(rank_one_jvp(loss, params, fixed)[1]) == pytest.approx(
        float(jax.jvp(loss, (params,), (partial,))[1]), rel=1e-12)


def test_rank_one_forward_gradient_costs_fewer_flops_than_backprop():
    """XLA's own FLOP count of the compiled step (not a timing): a dense layer's tangent is a
    matrix-vector product, so the forward-gradient step is ~0.6x a backprop step."""
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    x, y = jax.random.normal(keys[0], (256, 128)), jnp.arange(256) % 10
    params = [{"w": jax.random.normal(k, (m, n)) / np.sqrt(m), "b": jnp.zeros(n)}
              for k, m, n in zip(keys[1:], (128, 128, 128), (128, 128, 10))]

    def loss(p, inputs=x, labels=y):
        h = inputs
        for layer in p[:-1]:
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        logits = h @ p[-1]["w"] + p[-1]["b"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

    def flops(fn):
        return jax.jit(fn).lower(params).compile().cost_analysis()["flops"]

    key = jax.random.PRNGKey(1)
    backprop = flops(jax.grad(loss))
    rademacher = flops(lambda p: optim.forward_gradient(loss, p, key, 1, "rademacher")[1])
    rank_one = flops(lambda p: optim.forward_gradient(loss, p, key, 1, "rank_one")[1])
    assert rademacher > 0.95 * backprop  # full tangents: the same matmuls as backprop
    assert rank_one < 0.7 * backprop
    # and it is the gradient in expectation: the mean of many estimates approaches jax.grad (on the
    # first 32 examples: unbiasedness does not depend on the batch, and 8x fewer examples cost less)
    keys = jax.random.split(key, 4000)
    small = lambda p: loss(p, x[:32], y[:32])
    grad = jax.grad(small)(params)
    ref = np.asarray(ravel_pytree(grad)[0])  # flattened as the estimates are

    def block(ks):  # 500 estimates: their sum, and each one's component along the true gradient
        ests = jax.vmap(lambda k: ravel_pytree(optim.forward_gradient(small, params, k, 1, "rank_one")[1])[0])(ks)
        return ests.sum(0), ests @ ref / (ref @ ref)

    sums, along = jax.jit(lambda ks: jax.lax.map(block, ks))(keys.reshape(8, 500, *keys.shape[1:]))
    est, along = np.asarray(sums).sum(0) / 4000, np.ravel(along)  # 8 blocks: 1/8 of the memory of all at once
    n = ref.size
    assert np.linalg.norm(est - ref) <= 5 * np.sqrt(n * np.sum(ref**2) / 4000)
    # along the gradient the estimator's spread is small: its mean is 1 to within 5 standard errors
    # (a sign error or a wrong scale fails here, where the norm bound above is too wide to see it)
    assert abs(float(np.mean(along)) - 1) <= 5 * float(np.std(along)) / np.sqrt(4000)
    assert float(np.std(along)) / np.sqrt(4000) < 0.2


def test_rank_one_forward_gradient_descent_trains_a_small_mlp():
    from gradkit import models

    init, apply = models.mlp([4, 16, 3], activation="tanh")
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(keys[0], (64, 4))
    y = jnp.argmax(x[:, :3] + 0.1 * x[:, 3:], axis=1)

    def loss(p):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(apply(p, x)), y[:, None], axis=1))

    params = init(keys[1])
    opt = optim.forward_gradient_descent(optax.adam(0.02), keys[2], objective=loss, num_tangents=4,
                                         distribution="rank_one")

    @jax.jit
    def step(p, s):
        u, s = opt.update(None, s, p)
        return optax.apply_updates(p, u), s

    p, s = params, opt.init(params)
    for _ in range(300):
        p, s = step(p, s)
    assert float(loss(p)) < 0.5 * float(loss(params))


# ---- scan_forward_gradient: the layer-streamed step (same estimator, less memory) ----

_XS = jax.random.normal(jax.random.PRNGKey(11), (5, 3))
_YS = jax.random.normal(jax.random.PRNGKey(12), (5, 2))


def _layered(depth=3, width=4):
    keys = jax.random.split(jax.random.PRNGKey(10), 4)
    params = (jax.random.normal(keys[0], (3, width)) / 2,
              {"w": jax.random.normal(keys[1], (depth, width, width)) / 2, "b": 0.1 * jax.random.normal(keys[2], (depth, width))},
              jax.random.normal(keys[3], (width, 2)) / 2)

    def stem(w_in):
        return jnp.tanh(_XS @ w_in)

    def affine(layer, h):
        return h @ layer["w"] + layer["b"]

    def head(w_out, h):
        return jnp.mean((h @ w_out - _YS) ** 2)

    def unrolled(p):  # the same model written out by hand: the independent reference
        h = jnp.tanh(_XS @ p[0])
        for i in range(depth):
            h = jnp.tanh(h @ p[1]["w"][i] + p[1]["b"][i])
        return jnp.mean((h @ p[2] - _YS) ** 2)

    return (stem, affine, jnp.tanh, head), params, unrolled


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def _flat_jax(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


@pytest.mark.parametrize("distribution", ["normal", "rademacher", "rank_one"])
def test_scan_forward_gradient_is_the_exact_projection_on_its_tangent(distribution):
    parts, params, unrolled = _layered()
    key = jax.random.PRNGKey(5)
    value, g = jax.jit(lambda p, k: fwd.scan_forward_gradient(*parts, p, k, distribution=distribution))(params, key)
    v = fwd.scan_tangents(key, params, distribution)
    grad = _flat(jax.grad(unrolled)(params))
    assert float(value) == pytest.approx(float(unrolled(params)), rel=1e-12)
    assert float(fwd.scan_objective(*parts)(params)) == pytest.approx(float(unrolled(params)), rel=1e-12)
    np.testing.assert_allclose(_flat(g), np.dot(grad, _flat(v)) * _flat(v), rtol=1e-10, atol=1e-14)
    w = np.asarray(v[1]["w"])
    assert not np.allclose(w[0], w[1])  # every layer draws its own tangent
    if distribution != "normal":
        assert set(np.unique(_flat(v))) == {-1.0, 1.0}
    if distribution == "rank_one":
        assert all(np.linalg.matrix_rank(m) == 1 for m in w)


@pytest.mark.parametrize("distribution", ["rademacher"])  # normal: exact projection above, same sampler
def test_scan_forward_gradient_is_unbiased_with_the_known_variance(distribution):
    parts, params, unrolled = _layered(depth=2, width=3)
    grad = _flat(jax.grad(unrolled)(params))
    m = 20_000
    keys = jax.random.split(jax.random.PRNGKey(0), m)
    g = np.stack(jax.jit(jax.vmap(lambda k: _flat_jax(fwd.scan_forward_gradient(*parts, params, k, distribution=distribution)[1])))(keys))
    norm2 = np.sum(grad**2)
    var = norm2 + grad**2 if distribution == "normal" else norm2 - grad**2
    assert np.all(np.abs(g.mean(axis=0) - grad) <= 5 * np.sqrt(var / m) + 1e-12)
    np.testing.assert_allclose(g.var(axis=0), var, rtol=0.1, atol=1e-3 * norm2)


def test_scan_forward_gradient_k_tangents_average_the_single_draws():
    parts, params, _ = _layered()
    key = jax.random.PRNGKey(2)
    _, g = fwd.scan_forward_gradient(*parts, params, key, num_tangents=3, distribution="rademacher")
    singles = [fwd.scan_forward_gradient(*parts, params, k, distribution="rademacher")[1]
               for k in jax.random.split(key, 3)]
    np.testing.assert_allclose(_flat(g), np.mean([_flat(s) for s in singles], axis=0), rtol=1e-12)


def test_scan_forward_gradient_bad_input():
    parts, params, _ = _layered()
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="params"):
        fwd.scan_forward_gradient(*parts, params[:2], key)
    with pytest.raises(ValueError, match="layer_params"):
        fwd.scan_forward_gradient(*parts, (params[0], {"w": params[1]["w"], "b": params[1]["b"][:2]}, params[2]), key)
    with pytest.raises(ValueError, match="distribution"):
        fwd.scan_forward_gradient(*parts, params, key, distribution="uniform")
    with pytest.raises(ValueError, match="num_tangents"):
        fwd.scan_forward_gradient(*parts, params, key, num_tangents=0)
    stem, affine, act, _ = parts
    with pytest.raises(TypeError, match="scalar"):
        fwd.scan_forward_gradient(stem, affine, act, lambda w, h: h @ w, params, key)

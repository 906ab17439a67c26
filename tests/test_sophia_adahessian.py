"""Sophia (vs optax.contrib.sophia, step for step) and AdaHessian (vs a hand NumPy reference on
quadratics whose Hessian diagonal is known exactly); both inside gradkit.runs.run."""

from __future__ import annotations

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import runs
from gradkit.optim.adahessian import adahessian, hwio_spatial_axes, spatial_average
from gradkit.optim.sophia import (
    gnb_diagonal,
    gnb_estimator_diag_hessian,
    hutchinson_diagonal,
    hutchinson_estimator_diag_hessian,
    rademacher_like,
    sophia,
)


def _objective(w):
    return (jnp.sum(jnp.cos(w["a"]) * w["a"] ** 2) + jnp.sum(w["b"] ** 4) / 4
            + jnp.sum(w["a"][:2] * w["b"][0]) + 0.5 * jnp.sum(w["b"] ** 2))


def _params(dtype):
    return {"a": jnp.array([1.0, -2.0, 3.0], dtype), "b": jnp.array([[0.5, -1.5], [2.0, 0.1]], dtype)}


def _trajectory(opt, objective, params, steps, **extra):
    """Params after each of ``steps`` steps, one jitted scan."""

    def step(carry, _):
        w, state = carry
        updates, state = opt.update(jax.grad(objective)(w), state, w, **extra)
        w = optax.apply_updates(w, updates)
        return (w, state), w

    return jax.jit(lambda w: jax.lax.scan(step, (w, opt.init(w)), None, length=steps)[1])(params)


SOPHIA_CONFIGS = [
    dict(),
    dict(update_interval=3, weight_decay=0.1, gamma=0.5, clip_threshold=0.2, b1=0.9, b2=0.95),
    dict(update_interval=1, weight_decay=0.05, weight_decay_mask={"a": True, "b": False}, clip_threshold=None,
         gamma=2.0, eps=0.5),
]


@pytest.mark.parametrize("config,dtype", [(0, jnp.float32), (1, jnp.float32), (1, jnp.float64), (2, jnp.float64)])
def test_sophia_step_equal_to_optax(config, dtype):
    kw = SOPHIA_CONFIGS[config]
    lr = optax.linear_schedule(0.05, 0.01, 40) if config == 1 else 0.05
    key = jax.random.PRNGKey(3)
    ref = optax.contrib.sophia(lr, hessian_diagonal_fn=optax.contrib.hutchinson_estimator_diag_hessian(key), **kw)
    mine = sophia(lr, hessian_diagonal_fn=hutchinson_estimator_diag_hessian(key), **kw)
    expected = _trajectory(ref, _objective, _params(dtype), 40, obj_fn=_objective)
    got = _trajectory(mine, _objective, _params(dtype), 40, obj_fn=_objective)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == jnp.float32 else dict(rtol=1e-13, atol=1e-13)
    for leaf_got, leaf_ref in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        assert leaf_got.dtype == dtype
        np.testing.assert_allclose(leaf_got, leaf_ref, **tol)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(got))
    # the run actually moved and the curvature EMA was refreshed (not a trivially equal no-op)
    assert float(jnp.max(jnp.abs(got["a"][-1] - _params(dtype)["a"]))) > 0.1


def test_sophia_default_estimator_and_value_fn_keyword():
    """Defaults (Hutchinson with PRNGKey(0)) and ``value_fn=`` (the runner's keyword) equal optax."""
    ref = optax.contrib.sophia(0.03)
    got = _trajectory(sophia(0.03), _objective, _params(jnp.float64), 30, value_fn=_objective)
    expected = _trajectory(ref, _objective, _params(jnp.float64), 30, obj_fn=_objective)
    np.testing.assert_allclose(got["b"], expected["b"], rtol=1e-13, atol=1e-13)


def _softmax_model(n_classes=3, n_features=4, batch=5, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(k1, (batch, n_features))
    params = {"w": 0.7 * jax.random.normal(k2, (n_features, n_classes)), "c": 0.3 * jax.random.normal(k3, (n_classes,))}
    return params, lambda p: jnp.tanh(x @ p["w"]) + p["c"]


def test_gnb_estimate_is_unbiased_for_the_gauss_newton_diagonal():
    params, logits_fn = _softmax_model()
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    logits = logits_fn(params)
    jac = jax.jacobian(lambda f: logits_fn(unravel(f)))(flat)  # (B, C, n)
    p = jax.nn.softmax(logits)
    h = jax.vmap(lambda q: jnp.diag(q) - jnp.outer(q, q))(p)  # (B, C, C)
    ggn = jnp.einsum("bcn,bcd,bdm->nm", jac, h, jac) / logits.shape[0]
    samples = jax.jit(jax.vmap(lambda k: jax.flatten_util.ravel_pytree(gnb_diagonal(logits_fn, params, k))[0]))(
        jax.random.split(jax.random.PRNGKey(1), 20000))
    mean, stderr = samples.mean(0), samples.std(0) / np.sqrt(samples.shape[0])
    assert np.all(np.abs(mean - np.diag(ggn)) <= 5 * stderr + 1e-12)
    assert float(jnp.max(jnp.diag(ggn))) > 0.01


def test_sophia_g_step_equal_to_optax_with_the_same_estimator():
    params, logits_fn = _softmax_model()
    labels = jnp.array([0, 2, 1, 1, 0])
    loss = lambda p: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_fn(p), labels))
    est = gnb_estimator_diag_hessian(jax.random.PRNGKey(5))
    got = _trajectory(sophia(0.1, update_interval=2, hessian_diagonal_fn=est), loss, params, 30, logits_fn=logits_fn)
    ref = optax.contrib.sophia(0.1, update_interval=2, hessian_diagonal_fn=est)
    expected = _trajectory(ref, loss, params, 30, logits_fn=logits_fn)
    np.testing.assert_allclose(got["w"], expected["w"], rtol=1e-13, atol=1e-13)
    assert float(loss(jax.tree.map(lambda a: a[-1], got))) < float(loss(params))


def test_hutchinson_diagonal_is_z_times_hz():
    a = jax.random.normal(jax.random.PRNGKey(2), (5, 5))
    a = a + a.T
    x = jnp.arange(5.0)
    key = jax.random.PRNGKey(7)
    z = np.asarray(rademacher_like(key, x))
    assert set(np.unique(z)) == {-1.0, 1.0}
    got = hutchinson_diagonal(lambda w: 0.5 * w @ a @ w + jnp.sin(w[0]), x, key)
    hess = np.asarray(a).copy()
    hess[0, 0] -= np.sin(0.0)
    np.testing.assert_allclose(got, z * (hess @ z), rtol=1e-12)


# ---------------------------------------------------------------- AdaHessian


def _numpy_adahessian(coef, shift, w0, steps, lr, b1, b2, eps, wd, k, spatial):
    """Hand NumPy AdaHessian on ``L = Σ_leaves Σ 0.5 c (w - s)²`` (Hessian diagonal = c exactly)."""
    w = {n: np.array(v, dtype=np.float64) for n, v in w0.items()}
    m = {n: np.zeros_like(v) for n, v in w.items()}
    v = {n: np.zeros_like(x) for n, x in w.items()}
    out = []
    for t in range(1, steps + 1):
        for n in w:
            g = coef[n] * (w[n] - shift[n])
            d = np.abs(coef[n])
            if spatial and d.ndim == 4:
                d = np.broadcast_to(d.mean(axis=(0, 1), keepdims=True), d.shape)
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * d * d
            denom = (np.sqrt(v[n]) / np.sqrt(1 - b2**t)) ** k + eps
            w[n] = w[n] - lr * ((m[n] / (1 - b1**t)) / denom + wd * w[n])
        out.append({n: x.copy() for n, x in w.items()})
    return out


@pytest.mark.parametrize("k,wd,spatial", [(1.0, 0.0, True), (0.5, 0.01, False)])
def test_adahessian_matches_numpy_reference_on_quadratic(k, wd, spatial):
    rng = np.random.default_rng(0)
    coef = {"conv": rng.uniform(-0.5, 3.0, (3, 2, 2, 4)), "dense": rng.uniform(0.1, 4.0, (3, 2)),
            "bias": np.array([2.0, -1.0, 0.5])}
    shift = {n: rng.normal(size=c.shape) for n, c in coef.items()}
    w0 = {n: rng.normal(size=c.shape) for n, c in coef.items()}

    def loss(w):
        return sum(jnp.sum(0.5 * coef[n] * (w[n] - shift[n]) ** 2) for n in coef)

    opt = adahessian(0.1, b1=0.8, b2=0.95, eps=1e-3, weight_decay=wd, hessian_power=k,
                     spatial_axes=hwio_spatial_axes if spatial else None,
                     key=jax.random.PRNGKey(11))
    got = _trajectory(opt, loss, {n: jnp.asarray(x) for n, x in w0.items()}, 30, value_fn=loss)
    expected = _numpy_adahessian(coef, shift, w0, 30, 0.1, 0.8, 0.95, 1e-3, wd, k, spatial)
    for t in (0, 9, 29):
        for n in coef:
            np.testing.assert_allclose(got[n][t], expected[t][n], rtol=1e-10, atol=1e-12)


def test_spatial_average_shares_one_value_per_kernel_window():
    d = jnp.arange(-8.0, 8.0).reshape(2, 2, 2, 2)
    out = spatial_average({"k": d, "v": jnp.array([-3.0, 2.0])})
    np.testing.assert_allclose(out["k"][0, 0], np.abs(np.asarray(d)).mean(axis=(0, 1)))
    np.testing.assert_allclose(out["k"][1, 1], out["k"][0, 0])
    np.testing.assert_allclose(out["v"], [3.0, 2.0])
    torch_layout = spatial_average(d, lambda x: (2, 3))
    np.testing.assert_allclose(torch_layout[:, :, 0, 1], np.abs(np.asarray(d)).mean(axis=(2, 3)))


def test_adahessian_float32_stays_float32():
    w = {"a": jnp.ones(3, jnp.float32)}
    opt = adahessian(0.1)
    u, _ = opt.update(w, opt.init(w), w, value_fn=lambda p: jnp.sum(p["a"] ** 2))
    assert u["a"].dtype == jnp.float32


# ---------------------------------------------------------------- inside the runner


def _bowl(x):
    return 0.5 * x[0] ** 2 + 2.0 * x[1] ** 2 + 0.25 * x[0] * x[1]


@pytest.mark.parametrize("make", [lambda: sophia(0.5, gamma=1.0, weight_decay=0.0, update_interval=2),
                                  lambda: adahessian(0.1, key=jax.random.PRNGKey(4))])
def test_runs_run_equals_a_hand_loop(make):
    starts = jnp.array([[2.0, -1.0], [-1.5, 0.5]])
    res = runs.run(_bowl, make(), starts, 40, record="trajectory", tol=1e-3)
    for r in range(2):
        hand = _trajectory(make(), _bowl, starts[r], 40, value_fn=_bowl)
        np.testing.assert_allclose(res.trajectory[r, 1:], hand, rtol=1e-10, atol=1e-12)
    assert np.all(res.final_value < 0.1 * np.asarray(jax.vmap(_bowl)(starts)))
    assert not res.diverged.any()


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs,arg", [
    (dict(learning_rate=-1.0), "learning_rate"), (dict(learning_rate=0.1, b1=1.0), "b1"),
    (dict(learning_rate=0.1, b2=-0.1), "b2"), (dict(learning_rate=0.1, eps=-1.0), "eps"),
    (dict(learning_rate=0.1, gamma=0.0), "gamma"), (dict(learning_rate=0.1, clip_threshold=-1.0), "clip_threshold"),
    (dict(learning_rate=0.1, update_interval=0), "update_interval"),
    (dict(learning_rate=0.1, update_interval=2.5), "update_interval"),
    (dict(learning_rate=0.1, weight_decay=-1.0), "weight_decay"),
])
def test_sophia_rejects_bad_hyperparameters(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        sophia(**kwargs)


@pytest.mark.parametrize("kwargs,arg", [
    (dict(learning_rate=-1e-3), "learning_rate"), (dict(learning_rate=0.1, b1=1.5), "b1"),
    (dict(learning_rate=0.1, eps=-1e-3), "eps"), (dict(learning_rate=0.1, hessian_power=1.5), "hessian_power"),
    (dict(learning_rate=0.1, weight_decay=-0.1), "weight_decay"),
])
def test_adahessian_rejects_bad_hyperparameters(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        adahessian(**kwargs)


def test_missing_objective_or_wrong_estimator_is_a_clear_error():
    w = jnp.ones(2)
    for opt in (sophia(0.1), adahessian(0.1)):
        with pytest.raises(ValueError, match="objective"):
            opt.update(w, opt.init(w), w)
    opt = sophia(0.1, hessian_diagonal_fn=gnb_estimator_diag_hessian())
    with pytest.raises(ValueError, match="logits_fn"):
        opt.update(w, opt.init(w), w, value_fn=jnp.sum)
    with pytest.raises(TypeError, match="hessian_diagonal_fn"):
        sophia(0.1, hessian_diagonal_fn=lambda g: g)
    with pytest.raises(ValueError, match="updates"):
        opt = adahessian(0.1)
        opt.update(jnp.ones(3), opt.init(w), w, value_fn=jnp.sum)

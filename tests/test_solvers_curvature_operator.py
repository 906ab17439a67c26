"""newton_cg, newton_cg_trust_region and hessian_free on a gradkit.curvature operator
(constructor ``curvature=builder`` and update-time ``curvature_operator=``), checked against
dense numpy Gauss-Newton steps, the optimizers' own default curvature and jax's own HVPs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import gradkit as gk
from gradkit.optim import hessian_free, newton_cg, newton_cg_trust_region

RNG = np.random.RandomState(0)
X = RNG.normal(size=(12, 3))
Y = np.tanh(X @ np.array([0.8, -0.5, 0.3]) + 0.2) + 0.3 * RNG.normal(size=12)  # residual left: H != GGN
START = {"w": np.array([0.3, 0.1, -0.2]), "c": np.array(0.0)}


def model(p, x):
    return jnp.tanh(x @ p["w"] + p["c"])


def half_sse(z, y):
    return 0.5 * jnp.sum((z - y) ** 2)


def problem(dtype=jnp.float64):
    """The objective, the GGN builder, model_fn/loss_fn for hessian_free and the start, in ``dtype``."""
    x, y = jnp.asarray(X, dtype), jnp.asarray(Y, dtype)
    f = lambda p: half_sse(model(p, x), y)
    ggn = lambda p: gk.curvature.ggn(model, half_sse, p, (x, y))
    hf_keywords = {"model_fn": lambda p: model(p, x), "loss_fn": lambda z: half_sse(z, y)}
    start = jax.tree.map(lambda a: jnp.asarray(a, dtype), START)
    return f, ggn, hf_keywords, start


def trajectory(opt, f, params, steps, **keywords):
    """The iterates of ``steps`` jitted updates (one compile)."""

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(f)(params)
        updates, state = opt.update(grads, state, params, value_fn=f, value=value, **keywords)
        return optax.apply_updates(params, updates), state

    state, out = opt.init(params), []
    for _ in range(steps):
        params, state = step(params, state)
        out.append(ravel_pytree(params)[0])
    return np.stack(out)


def one_update(opt, f, params, **keywords):
    value, grads = jax.value_and_grad(f)(params)
    return opt.update(grads, opt.init(params), params, value_fn=f, value=value, **keywords)[0]


def test_newton_cg_with_ggn_takes_the_gauss_newton_step():
    f, ggn, _, params = problem()
    flat, unravel = ravel_pytree(params)
    residual = lambda theta: model(unravel(theta), X) - Y
    J, r = np.asarray(jax.jacfwd(residual)(flat)), np.asarray(residual(flat))
    expected = -np.linalg.solve(J.T @ J, J.T @ r)
    opt = newton_cg(curvature=ggn, line_search=None, cg_tol=1e-14, cg_maxiter=40)
    got = ravel_pytree(one_update(opt, f, params))[0]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    hessian_step = ravel_pytree(one_update(newton_cg(line_search=None, cg_tol=1e-14, cg_maxiter=40), f, params))[0]
    assert np.max(np.abs(hessian_step - expected)) > 1e-3  # the Hessian step differs: the test can fail


def test_newton_cg_with_hessian_operator_follows_the_default():
    f, _, _, params = problem()
    default = trajectory(newton_cg(), f, params, 6)
    with_operator = trajectory(newton_cg(curvature=lambda p: gk.curvature.hessian(f, p)), f, params, 6)
    np.testing.assert_allclose(with_operator, default, rtol=0, atol=1e-12)
    assert np.linalg.norm(default[-1] - default[0]) > 1e-2  # it moved


def test_trust_region_with_hessian_and_damped_operators():
    f, _, _, params = problem()
    default = trajectory(newton_cg_trust_region(), f, params, 6)
    hessian = trajectory(newton_cg_trust_region(curvature=lambda p: gk.curvature.hessian(f, p)), f, params, 6)
    np.testing.assert_allclose(hessian, default, rtol=0, atol=1e-12)

    lam = 0.7
    damped = trajectory(newton_cg_trust_region(curvature=lambda p: gk.curvature.hessian(f, p).damped(lam)),
                        f, params, 6)

    def reference(p):  # (H + λI) v by jax's own forward-over-reverse
        return lambda v: jax.tree.map(lambda hv, x: hv + lam * x, jax.jvp(jax.grad(f), (p,), (v,))[1], v)

    np.testing.assert_allclose(damped, trajectory(newton_cg_trust_region(curvature=reference), f, params, 6),
                               rtol=0, atol=1e-12)
    assert np.max(np.abs(damped - default)) > 1e-4  # damping changed the steps


def test_hessian_free_ggn_builder_equals_builtin_ggn():
    f, ggn, hf_keywords, params = problem()
    builtin = trajectory(hessian_free(0.5, cg_maxiter=30), f, params, 5, **hf_keywords)
    builder = trajectory(hessian_free(0.5, curvature=ggn, cg_maxiter=30), f, params, 5)
    np.testing.assert_allclose(builder, builtin, rtol=0, atol=1e-12)
    # update-time operator, no model_fn / loss_fn needed
    value, grads = jax.value_and_grad(f)(params)
    opt = hessian_free(0.5, cg_maxiter=30)
    updates, _ = opt.update(grads, opt.init(params), params, value_fn=f, curvature_operator=ggn(params))
    np.testing.assert_allclose(ravel_pytree(updates)[0], builtin[0] - ravel_pytree(params)[0], rtol=0, atol=1e-12)


OPTIMIZERS = {
    "newton_cg": lambda **kw: newton_cg(**kw),
    "trust_region": lambda **kw: newton_cg_trust_region(**kw),
    "hessian_free": lambda **kw: hessian_free(0.5, cg_maxiter=30, **kw),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_update_time_operator_overrides_the_constructor(name):
    f, ggn, _, params = problem()
    make = OPTIMIZERS[name]
    by_hessian = make(curvature="hessian") if name == "hessian_free" else make()
    expected = ravel_pytree(one_update(by_hessian, f, params))[0]
    opt = make(curvature=ggn)
    got = ravel_pytree(one_update(opt, f, params, curvature_operator=gk.curvature.hessian(f, params)))[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    ggn_step = ravel_pytree(one_update(opt, f, params))[0]
    assert np.max(np.abs(ggn_step - expected)) > 1e-4  # the constructor's GGN gives another step


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_bad_curvature_arguments(name):
    f, ggn, _, params = problem()
    make = OPTIMIZERS[name]
    with pytest.raises(TypeError, match="curvature"):
        make(curvature=3.0)
    opt = make(curvature=ggn)
    value, grads = jax.value_and_grad(f)(params)
    update = lambda **kw: opt.update(grads, opt.init(params), params, value_fn=f, **kw)
    with pytest.raises(TypeError, match="curvature_operator"):
        update(curvature_operator=np.eye(4))
    other_shape = {"w": jnp.zeros(2), "c": jnp.zeros(())}
    with pytest.raises(ValueError, match="curvature_operator.*shape"):
        update(curvature_operator=gk.curvature.hessian(lambda p: jnp.sum(p["w"] ** 2), other_shape))
    with pytest.raises(ValueError, match="curvature_operator.*structure"):
        update(curvature_operator=gk.curvature.hessian(lambda p: jnp.sum(p ** 2), jnp.zeros(4)))
    wrong_builder = make(curvature=lambda p: gk.curvature.hessian(lambda q: jnp.sum(q ** 2), jnp.zeros(4)))
    with pytest.raises(ValueError, match="curvature"):
        wrong_builder.update(grads, wrong_builder.init(params), params, value_fn=f)


def test_curvature_string_and_cg_tol_checked():
    with pytest.raises(ValueError, match="curvature"):
        hessian_free(curvature="fisher")
    with pytest.raises(ValueError, match="cg_tol"):
        newton_cg(cg_tol=-1.0)


@pytest.mark.parametrize(("name", "how"), [("newton_cg", "builder"), ("trust_region", "update"),
                                           ("hessian_free", "builder"), ("hessian_free", "update")])
def test_bfloat16_params_with_an_operator(name, how):
    f, ggn, _, params32 = problem(jnp.float32)
    params16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params32)
    params32 = jax.tree.map(lambda a: a.astype(jnp.float32), params16)  # the same point

    def update(params):
        opt = OPTIMIZERS[name](curvature=ggn) if how == "builder" else OPTIMIZERS[name]()
        keywords = {} if how == "builder" else {"curvature_operator": ggn(params)}
        grads = jax.grad(f)(params)
        return opt.update(grads, opt.init(params), params, value_fn=f, **keywords)[0]

    got, expected = jax.jit(update)(params16), jax.jit(update)(params32)  # compiled, not op by op
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(got))
    got, expected = ravel_pytree(got)[0].astype(np.float32), ravel_pytree(expected)[0]
    assert np.linalg.norm(expected) > 1e-2
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-3 * np.linalg.norm(expected))

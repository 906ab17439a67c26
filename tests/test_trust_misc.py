"""Defects from the fuzz of issue 14 outside the solvers: derivative checks and training input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import check, models, train
from gradkit.diff import dual


@pytest.mark.parametrize("f, exact", [
    (jnp.sum, lambda x: np.ones_like(x)),
    (lambda x: jnp.sum(jnp.sin(x)), np.cos),
    (lambda x: jnp.prod(x), lambda x: np.prod(x) / x),
])
def test_check_default_routes_run_on_plain_jax_numpy_functions(f, exact):
    x = np.array([0.3, 1.2, -0.7])
    report = check(f, x)
    # the jax route is the exact derivative; central differences agree with it
    np.testing.assert_allclose(report.derivatives["jax"][0], exact(x), rtol=1e-12)
    assert report.ok(rtol=1e-8)
    # the dual route cannot run on jax.numpy functions: left out, and the report says why
    assert "dual" not in report.derivatives and "jax.numpy" in report.skipped["dual"]
    assert "skipped dual" in str(report)


def test_check_default_routes_keep_dual_when_f_supports_it():
    report = check(lambda x: dual.sum(dual.sin(x) * x), np.array([0.5, -1.0]))
    assert set(report.derivatives) == {"jax", "central", "dual"} and not report.skipped
    assert report.max_abs("dual") < 1e-15


def test_check_explicit_dual_on_jax_numpy_function_is_a_clear_error():
    with pytest.raises(ValueError, match="'dual' route cannot run"):
        check(jnp.sin, np.array([1.0]), routes=("jax", "dual"))


def test_check_rejects_integer_and_empty_inputs():
    with pytest.raises(TypeError, match="floating"):
        check(jnp.sum, np.array([1, 2]))
    with pytest.raises(ValueError, match="empty"):
        check(lambda p: 0.0, {})
    with pytest.raises(ValueError, match="at least one route"):
        check(jnp.sum, np.ones(2), routes=())


def _tiny_problem():
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (10, 3))
    y = x @ jnp.array([1.0, -2.0, 0.5])
    model = models.linear_regression(3, dtype=jnp.float64)
    params = model.init(key)
    loss = lambda p, batch: jnp.mean((model.apply(p, batch[0])[:, 0] - batch[1]) ** 2)
    return loss, params, (x, y)


@pytest.mark.parametrize("batch_size, match", [(0, "positive integer"), (-3, "positive integer"),
                                               (2.5, "positive integer"), (True, "positive integer"),
                                               (11, "exceeds the 10 examples")])
def test_fit_rejects_bad_batch_sizes_before_training(batch_size, match):
    loss, params, data = _tiny_problem()
    with pytest.raises(ValueError, match=match):
        train.fit(loss, params, optax.sgd(0.1), data, 1, batch_size, jax.random.PRNGKey(1), progress=False)


def test_fit_full_batch_equals_gradient_descent():
    loss, params, data = _tiny_problem()
    fitted, history = train.fit(loss, params, optax.sgd(0.1), data, 5, 10, jax.random.PRNGKey(1), progress=False)
    p = params
    for _ in range(5):  # full batch: the shuffle does not change the mean-squared-error gradient
        p = jax.tree.map(lambda a, g: a - 0.1 * g, p, jax.grad(loss)(p, data))
    for a, b in zip(jax.tree.leaves(fitted), jax.tree.leaves(p)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert len(history.step_loss) == 5

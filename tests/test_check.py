import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradkit.diff import check, dual


def test_routes_agree_on_a_pytree_input():
    params = {"w": np.array([[0.3, -0.2], [0.1, 0.5]]), "b": (np.array([0.1, -0.1]), np.array(0.7))}

    def f(p):
        b, c = p["b"]
        z = p["w"] @ np.array([1.0, -2.0]) + b
        return dual.sum(dual.tanh(z) ** 2) + c * dual.exp(c)

    report = check(f, params, routes=("jax", "central", "dual", "forward", "jax_fwd"))
    assert {e.leaf for e in report.errors} == {"['b'][0]", "['b'][1]", "['w']"}
    assert report.max_abs("dual") < 1e-14
    assert report.max_abs("jax_fwd") < 1e-14
    assert report.max_rel("central") < 1e-8
    assert report.max_rel("forward") < 1e-5
    assert report.ok(rtol=1e-5)
    assert "central" in str(report)


def test_check_flags_a_wrong_derivative():
    @jax.custom_jvp
    def buggy_square(x):
        return x**2

    @buggy_square.defjvp
    def _jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return x**2, 3 * x * t  # wrong: should be 2 x t

    report = check(lambda x: jnp.sum(buggy_square(x)), np.array([1.0, 2.0]), routes=("jax", "central"))
    assert report.max_rel("central") == pytest.approx(1 / 3, rel=1e-6)
    assert not report.ok(rtol=1e-3)


def test_vector_output_compares_jacobians():
    report = check(lambda x: dual.sin(x) * x[0], np.array([0.5, 1.5, -0.5]), routes=("dual", "jax", "central"))
    assert report.derivatives["jax"].shape == (3, 3)
    assert report.max_abs("jax") < 1e-15 and report.max_rel("central") < 1e-8


def test_unknown_route_is_a_clear_error():
    with pytest.raises(ValueError, match="valid routes"):
        check(lambda x: jnp.sum(x), np.ones(2), routes=("jax", "complex_step"))

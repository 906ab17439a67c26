import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradkit.diff import numeric


def seed_ff(x):
    return np.sin(np.tan(x) ** np.cos(x) * np.cos(x) ** np.tan(x))


def test_central_default_step_beats_the_seed_tiny_step():
    exact = float(jax.grad(lambda x: jnp.sin(jnp.tan(x) ** jnp.cos(x) * jnp.cos(x) ** jnp.tan(x)))(1.0))
    seed_estimate = (seed_ff(1.0 + 0.5e-13) - seed_ff(1.0 - 0.5e-13)) / 1e-13
    ours = float(numeric.derivative(seed_ff, 1.0))
    assert abs(ours - exact) < 1e-9  # error model: ~eps^(2/3) ≈ 4e-11 relative
    assert abs(seed_estimate - exact) > 1e-4  # rounding dominates at h = 1e-13
    assert abs(ours - exact) < abs(seed_estimate - exact) / 1e4


def test_error_model_forward_vs_central():
    f, df = np.exp, np.exp
    x = np.linspace(-1, 1, 9)
    fwd_err = np.max(np.abs(numeric.derivative(f, x, scheme="forward") - df(x)) / df(x))
    ctr_err = np.max(np.abs(numeric.derivative(f, x) - df(x)) / df(x))
    eps = np.finfo(np.float64).eps
    assert fwd_err < 4 * np.sqrt(eps)  # ≈ 1.5e-8: h M2/2 + 2 eps |f|/h with h = sqrt(eps)
    assert ctr_err < 4 * eps ** (2 / 3)  # ≈ 4e-11
    assert ctr_err < fwd_err


def test_default_step_scales_with_x_and_dtype():
    h64 = numeric.default_step(np.array([1e-3, 1.0, 1e6]))
    assert h64[0] == pytest.approx(h64[1], rel=1e-6)
    assert h64[2] / h64[1] == pytest.approx(1e6, rel=1e-6)
    h32 = numeric.default_step(np.array([1.0], dtype=np.float32))
    assert h32.dtype == np.float32 and h32[0] > 1e-3  # eps32^(1/3) ≈ 4.9e-3


def test_jacobian_orientation_and_values():
    A = np.array([[1.0, 2.0, 0.5], [-1.0, 0.3, 4.0]])

    def f(x):
        return np.tanh(A @ x) + x[0] ** 2

    x = np.array([0.2, -0.4, 0.1])
    J = numeric.jacobian(f, x)
    assert J.shape == (2, 3)
    np.testing.assert_allclose(J, jax.jacfwd(lambda z: jnp.tanh(A @ z) + z[0] ** 2)(x), rtol=1e-9, atol=1e-10)
    Jf = numeric.jacobian(f, x, scheme="forward")
    np.testing.assert_allclose(Jf, J, rtol=1e-6, atol=1e-7)


def test_gradient_of_seed_function_and_hessian_of_six_hump_camel():
    def camel(v):
        x, y = v[0], v[1]
        return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2

    p = np.array([0.7, -0.3])
    np.testing.assert_allclose(numeric.gradient(camel, p), jax.grad(camel)(p), rtol=1e-9)
    H = numeric.hessian(camel, p)
    np.testing.assert_allclose(H, H.T)
    np.testing.assert_allclose(H, jax.hessian(camel)(p), rtol=1e-6, atol=1e-6)
    # seed 001: analytic Hessian of the camel: [[8 - 25.2x^2 + 10x^4, 1], [1, -8 + 48y^2]]
    x, y = p
    np.testing.assert_allclose(H, [[8 - 25.2 * x**2 + 10 * x**4, 1], [1, -8 + 48 * y**2]], rtol=1e-6, atol=1e-6)


def test_works_on_jax_functions_and_rejects_bad_input():
    g = numeric.gradient(lambda z: jnp.sum(jnp.sin(z) ** 2), np.array([0.1, 0.2]))
    np.testing.assert_allclose(g, np.sin(2 * np.array([0.1, 0.2])), rtol=1e-9)
    with pytest.raises(ValueError, match="scalar"):
        numeric.gradient(lambda z: z, np.ones(2))
    with pytest.raises(ValueError, match="scheme"):
        numeric.derivative(np.sin, 1.0, scheme="backward")
    with pytest.raises(ValueError, match="positive"):
        numeric.derivative(np.sin, 1.0, h=-1e-3)

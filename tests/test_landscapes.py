import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradkit import landscapes
from gradkit.cli import main

CASES = [(name, 2) for name in landscapes.names()] + [
    (name, d) for name in landscapes.names() if landscapes.get(name).any_dim for d in (3, 7)
]


def test_suite_is_large_enough_and_complete():
    assert len(landscapes.names()) >= 15
    required = {"seed_quadratic", "seed_quartic", "seed_gaussian_bowl", "seed_newton", "six_hump_camel",
                "rosenbrock", "beale", "booth", "himmelblau", "rastrigin", "ackley", "goldstein_price", "matyas",
                "levi13", "three_hump_camel", "mccormick", "styblinski_tang", "saddle", "quadratic"}
    assert required <= set(landscapes.names())
    assert {n for n in landscapes.names() if landscapes.get(n).any_dim} >= {
        "rosenbrock", "rastrigin", "ackley", "styblinski_tang", "quadratic"}


@pytest.mark.parametrize("name,dim", CASES)
def test_value_and_vanishing_gradient_at_every_minimizer(name, dim):
    land = landscapes.get(name, dim=dim)
    for xstar in land.minima:
        x = jnp.asarray(xstar, dtype=jnp.float64)
        value = float(land(x))
        assert abs(value - land.min_value) <= land.value_tol * max(1.0, abs(land.min_value)), (xstar, value)
        grad = jax.grad(land)(x)
        assert float(jnp.max(jnp.abs(grad))) < 1e-9, (xstar, grad)
        # a strict local minimum: every nearby point is higher
        bumps = jax.random.normal(jax.random.PRNGKey(0), (64, dim)) * 1e-3
        assert bool(jnp.all(jax.vmap(land)(x + bumps) > value - 1e-12))


@pytest.mark.parametrize("name", landscapes.names())
def test_listed_value_is_the_global_minimum_on_a_grid(name):
    land = landscapes.get(name)
    if not land.minima:  # unbounded below
        return
    (x0, x1), (y0, y1) = land.domain
    X, Y = jnp.meshgrid(jnp.linspace(x0, x1, 401), jnp.linspace(y0, y1, 401))
    Z = jax.jit(land.fn)(jnp.stack([X, Y], -1))
    assert float(Z.min()) >= land.min_value - land.value_tol * max(1.0, abs(land.min_value))


def test_closed_form_minima():
    # McCormick: (1/2 - π/3, -1/2 - π/3): sin(-2π/3) + 1 - 1.5x + 2.5y + 1 = -√3/2 - π/3
    mc = landscapes.get("mccormick")
    assert mc.min_value == pytest.approx(-math.sqrt(3) / 2 - math.pi / 3, rel=2e-16, abs=0)
    np.testing.assert_allclose(mc.minima[0], (0.5 - math.pi / 3, -0.5 - math.pi / 3), rtol=3e-16, atol=0)
    assert float(mc(jnp.asarray(mc.minima[0]))) == pytest.approx(mc.min_value, rel=3e-16, abs=0)
    st = landscapes.get("styblinski_tang", dim=4)
    x = jnp.asarray(st.minima[0])
    assert float(jnp.max(jnp.abs(4 * x**3 - 32 * x + 5))) < 1e-10  # stationarity: 4x³ - 32x + 5 = 0


@pytest.mark.parametrize("name", landscapes.names())
def test_jit_vmap_grad_compose(name):
    land = landscapes.get(name)
    pts = jax.random.uniform(jax.random.PRNGKey(1), (16, 2), minval=-1.0, maxval=1.0)
    vals = jax.jit(jax.vmap(land))(pts)
    assert vals.shape == (16,)
    np.testing.assert_allclose(vals, land(pts), rtol=1e-12)  # batched call on (..., 2)
    grads = jax.jit(jax.vmap(jax.grad(land)))(pts)
    assert grads.shape == (16, 2) and bool(jnp.all(jnp.isfinite(grads)))
    f32 = land(pts.astype(jnp.float32))
    assert f32.dtype == jnp.float32


def test_ackley_gradient_at_the_tip_is_a_subgradient():
    ack = landscapes.get("ackley", dim=3)
    assert bool(jnp.all(jax.grad(ack)(jnp.zeros(3)) == 0))


def test_saddle_and_quadratic_knob():
    sad = landscapes.get("saddle")
    H = jax.hessian(sad)(jnp.zeros(2))
    assert float(jnp.linalg.eigvalsh(H).min()) < 0 < float(jnp.linalg.eigvalsh(H).max())
    q = landscapes.get("quadratic", dim=5, condition=1e4)
    eig = jnp.linalg.eigvalsh(jax.hessian(q)(jnp.ones(5)))
    assert float(eig.max() / eig.min()) == pytest.approx(1e4, rel=1e-10)
    with pytest.raises(ValueError, match="condition"):
        landscapes.get("quadratic", condition=0.5)


def test_errors():
    with pytest.raises(ValueError, match="valid names: seed_quadratic"):
        landscapes.get("rosenbrok")
    with pytest.raises(ValueError, match="2D only"):
        landscapes.get("himmelblau", dim=3)
    with pytest.raises(ValueError, match="last axis"):
        landscapes.get("booth")(jnp.ones(3))


def test_cli_lists_and_plots(tmp_path, capsys):
    assert main(["landscapes"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in landscapes.names())
    assert main(["landscapes", "--plot", "himmelblau", "--out", str(tmp_path)]) == 0
    png = tmp_path / "himmelblau.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert main(["landscapes", "--plot", "nope", "--out", str(tmp_path)]) == 2
    assert "expected any of: seed_quadratic" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "gradkit.cli", "landscapes"], capture_output=True, text=True,
                         check=True)
    assert "himmelblau" in out.stdout


# ackley: a cone tip at x*; saddle: no minimizer.  N-D: dim 2 for all, dim 3 where the coupling changes.
SMOOTH = [(n, d) for n, d in CASES if n not in ("ackley", "saddle") and d == 2] + [
    ("rosenbrock", 3), ("styblinski_tang", 3)]


@pytest.mark.parametrize("name,dim", SMOOTH)
def test_stored_minimizers_are_fixed_points_of_float64_newton(name, dim):
    """Newton's method (dense float64 Hessian from jax) started at each stored minimizer does not move it,
    and f there reproduces min_value to double precision: the constants are exact, not rounded."""
    land = landscapes.get(name, dim=dim)

    @jax.jit
    def check(x0):
        def step(x, _):
            return x - jnp.linalg.solve(jax.hessian(land)(x), jax.grad(land)(x)), None

        x, _ = jax.lax.scan(step, x0, None, length=4)
        return x, land(x), jax.grad(land)(x0), jnp.linalg.eigvalsh(jax.hessian(land)(x0))

    for xstar in land.minima:
        x0 = jnp.asarray(xstar, dtype=jnp.float64)
        x, value, grad, eig = check(x0)
        scale = max(1.0, float(jnp.max(jnp.abs(x0))))
        assert float(jnp.max(jnp.abs(x - x0))) < 1e-14 * scale, (xstar, x)
        assert float(jnp.max(jnp.abs(grad))) < 1e-13, xstar
        assert bool(jnp.all(eig > 0))  # a strict minimum
        assert abs(float(value) - land.min_value) <= 1e-15 * max(1.0, abs(land.min_value)), (xstar, float(value))


PUBLISHED = {  # name, dim -> (minimizer, f*): published values (Jamil & Yang 2013; Surjanovic & Bingham, SFU)
    # six-hump: f* as published; x* from the exact solve (the quoted x* is 6e-10 off, see the next test)
    ("six_hump_camel", 2): ((0.0898420131003180624, -0.7126564030207396333), -1.0316284534898774),
    ("mccormick", 2): ((-0.5471975511965976, -1.5471975511965976), -1.9132229549810367),
    ("goldstein_price", 2): ((0.0, -1.0), 3.0),
    ("himmelblau", 2): ((3.0, 2.0), 0.0),
    ("beale", 2): ((3.0, 0.5), 0.0),
    ("booth", 2): ((1.0, 3.0), 0.0),
    ("levi13", 2): ((1.0, 1.0), 0.0),
    ("seed_quartic", 2): ((1.0, 0.0), -2.0),
    ("seed_gaussian_bowl", 2): ((0.0, 0.0), -1.0),
    ("styblinski_tang", 1): ((-2.903534027771178,), -39.16616570377142),
    ("rosenbrock", 5): ((1.0,) * 5, 0.0),
    ("rastrigin", 5): ((0.0,) * 5, 0.0),
    ("ackley", 5): ((0.0,) * 5, 0.0),
}


@pytest.mark.parametrize("key", PUBLISHED)
def test_values_agree_with_the_literature(key):
    name, dim = key
    land = landscapes.get(name, dim=dim)
    xstar, fstar = PUBLISHED[key]
    assert land.min_value == pytest.approx(fstar, rel=1e-15, abs=1e-300)
    assert float(land.distance_to_minimizer(np.asarray(xstar))) < 1e-15 * max(1.0, np.abs(xstar).max())


def test_six_hump_literature_minimizer_is_a_rounded_one():
    """The widely quoted ±(0.08984201368301331, -0.7126564032704135) is 6e-10 off the true minimizer
    (its gradient is 4e-9), yet gives the same value: f is flat to second order there."""
    land = landscapes.get("six_hump_camel")
    quoted = jnp.asarray([0.08984201368301331, -0.7126564032704135])
    assert 1e-10 < float(land.distance_to_minimizer(quoted)) < 1e-9
    assert float(jnp.max(jnp.abs(jax.grad(land)(quoted)))) > 1e-9
    assert float(land(quoted)) == pytest.approx(-1.0316284534898774, rel=1e-15)
    assert land.min_value == -1.0316284534898774


def test_styblinski_tang_nd_value_and_root():
    for dim in (1, 2, 3, 7, 50):
        land = landscapes.get("styblinski_tang", dim=dim)
        assert land.min_value == pytest.approx(-39.16616570377141546 * dim, rel=2e-16)
    roots = np.roots([2.0, 0.0, -16.0, 2.5])  # stationarity of ½(x⁴ - 16x² + 5x)
    assert landscapes.get("styblinski_tang", dim=1).minima[0][0] == pytest.approx(roots.real.min(), rel=1e-15)


def _rastrigin_textbook(x):
    return 10.0 * x.shape[-1] + np.sum(x**2 - 10.0 * np.cos(2 * np.pi * x), axis=-1)


def _ackley_textbook(x):
    n = x.shape[-1]
    return (-20.0 * np.exp(-0.2 * np.sqrt(np.sum(x**2, -1) / n)) - np.exp(np.mean(np.cos(2 * np.pi * x), -1))
            + 20.0 + np.e)


@pytest.mark.parametrize("name,ref", [("rastrigin", _rastrigin_textbook), ("ackley", _ackley_textbook)])
def test_cancellation_free_forms_equal_the_textbook_formula(name, ref):
    pts = np.random.default_rng(0).uniform(-5, 5, (200, 4))
    land = landscapes.get(name, dim=4)
    np.testing.assert_allclose(np.asarray(land(jnp.asarray(pts))), ref(pts), rtol=1e-12, atol=1e-12)
    # near the minimizer float32 keeps its relative accuracy (the textbook form loses it to 20 + e - 21.7)
    near = np.full(4, 1e-3)
    exact = float(land(jnp.asarray(near)))
    approx = float(land(jnp.asarray(near, dtype=jnp.float32)))
    assert approx == pytest.approx(exact, rel=1e-5)
    assert float(land(jnp.zeros(4, jnp.float32))) == 0.0


@pytest.mark.parametrize("name", landscapes.names())
def test_f_star_per_dtype(name):
    land = landscapes.get(name)
    if not land.bounded_below:
        assert land.f_star(jnp.float32) == land.f_star(jnp.float64) == -math.inf
        return
    assert land.f_star(jnp.float64) == land.min_value
    f32 = land.f_star(jnp.float32)
    by_hand = min(float(land(jnp.asarray(np.asarray(m, np.float32)))) for m in land.minima)
    assert f32 == by_hand and np.float32(f32) == f32
    assert abs(f32 - land.min_value) <= 1e-6 * max(1.0, abs(land.min_value))  # float32 sees f* to its ulp
    with pytest.raises(TypeError, match="floating"):
        land.f_star(jnp.int32)


def test_six_hump_float32_cannot_see_f_star_to_1e_12():
    land = landscapes.get("six_hump_camel")
    assert abs(land.f_star(jnp.float32) - land.min_value) > 1e-12
    assert land.f_star(np.float32) == land.f_star("float32")


def test_distance_to_minimizer_vectorised_against_numpy():
    land = landscapes.get("himmelblau")
    pts = np.random.default_rng(1).uniform(-5, 5, (3, 7, 2))
    mins = np.asarray(land.minima)
    ref = np.min(np.linalg.norm(pts[..., None, :] - mins, axis=-1), axis=-1)
    np.testing.assert_allclose(np.asarray(land.distance_to_minimizer(pts)), ref, rtol=1e-14)
    np.testing.assert_array_equal(np.asarray(land.distance_to_minimum(pts)), np.asarray(land.distance_to_minimizer(pts)))
    d = jax.jit(land.distance_to_minimizer)(jnp.asarray(pts, jnp.float32))
    assert d.shape == (3, 7) and d.dtype == jnp.float32
    assert float(landscapes.get("rosenbrock", dim=6).distance_to_minimizer(np.ones(6, dtype=int))) == 0.0
    with pytest.raises(ValueError, match="last axis 2"):
        land.distance_to_minimizer(np.ones(3))


def test_saddle_is_unbounded_and_never_a_success():
    sad = landscapes.get("saddle")
    assert sad.minima == sad.minimizers == () and not sad.bounded_below
    assert sad.min_value == -math.inf
    at_saddle = np.zeros((4, 2))
    assert bool(np.all(np.isinf(np.asarray(sad.distance_to_minimizer(at_saddle)))))
    # |f - f*| <= tol cannot hold anywhere, in particular not at the saddle point itself
    assert not abs(float(sad(jnp.zeros(2))) - sad.f_star(jnp.float32)) <= 1e30
    assert all(landscapes.get(n).bounded_below for n in landscapes.names() if n != "saddle")


def test_f_scale_is_the_median_gap_on_the_domain_grid():
    land = landscapes.get("booth")
    xs, ys = np.meshgrid(np.linspace(-10, 10, 101), np.linspace(-10, 10, 101))
    ref = np.median((xs + 2 * ys - 7) ** 2 + (2 * xs + ys - 5) ** 2)
    assert land.f_scale == pytest.approx(ref, rel=1e-5)
    assert "f_scale" in vars(land)  # computed once, cached on the instance
    for name in landscapes.names():
        scale = landscapes.get(name).f_scale
        assert math.isfinite(scale) and scale > 0, name
    nd = landscapes.get("quadratic", dim=5, condition=10.0).f_scale
    assert math.isfinite(nd) and nd > 0

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
    assert float(mc(jnp.asarray(mc.minima[0]))) == pytest.approx(-math.sqrt(3) / 2 - math.pi / 3, abs=1e-14)
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
    assert "valid names" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "gradkit.cli", "landscapes"], capture_output=True, text=True,
                         check=True)
    assert "himmelblau" in out.stdout

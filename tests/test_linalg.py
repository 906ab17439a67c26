"""gradkit.linalg: CG and Steihaug against dense solves and jax.scipy; spectrum routines
against ``jnp.linalg.eigvalsh`` of ``jax.hessian`` on a small model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax.flatten_util import ravel_pytree

import gradkit as gk
from gradkit.linalg import (
    cg,
    hutch_plus_plus,
    hutchinson_trace,
    lanczos,
    lanczos_eigenvalues,
    power_iteration,
    slq_density,
    steihaug_cg,
)



def spd_system(n: int, seed: int = 0, shift: float = 0.1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    a = a @ a.T / n + shift * np.eye(n)
    return jnp.asarray(a, dtype), jnp.asarray(rng.normal(size=n), dtype)


_TEMPLATE = {"w": jnp.zeros((3, 4)), "b": (jnp.zeros(2), jnp.zeros(6))}


def as_tree(flat: jax.Array) -> dict:
    """The inverse of ``ravel_pytree`` on a nested dict/tuple of 20 entries."""
    return ravel_pytree(_TEMPLATE)[1](flat)


# ----------------------------------------------------------------------------- CG


def test_cg_matches_dense_solve_and_jax_scipy():
    a, b = spd_system(40)
    info = jax.jit(lambda b: cg(lambda v: a @ v, b, tol=1e-12))(b)
    x = info.x
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-9, atol=1e-10)
    reference, _ = jax.scipy.sparse.linalg.cg(lambda v: a @ v, b, tol=1e-12)
    np.testing.assert_allclose(x, reference, rtol=1e-9, atol=1e-10)
    assert bool(info.converged) and not bool(info.negative_curvature)
    assert info.residual_norm <= 1e-12 * jnp.linalg.norm(b)
    np.testing.assert_allclose(jnp.linalg.norm(b - a @ x), info.residual_norm, rtol=1e-2, atol=1e-13)
    assert int(info.matvecs) == int(info.iterations)


def test_cg_on_pytrees_with_warm_start_and_preconditioner():
    a, b = spd_system(20, seed=1)
    flat_op = lambda t: as_tree(a @ ravel_pytree(t)[0])
    exact = np.linalg.solve(a, b)
    info = cg(flat_op, as_tree(b), tol=1e-12)
    x = info.x
    np.testing.assert_allclose(ravel_pytree(x)[0], exact, rtol=1e-9, atol=1e-10)
    assert jax.tree.structure(x) == jax.tree.structure(as_tree(b))
    # a start at the answer costs one product (r0) and no steps
    info = cg(flat_op, as_tree(b), x0=as_tree(jnp.asarray(exact)), tol=1e-8)
    x = info.x
    assert int(info.iterations) == 0 and int(info.matvecs) == 1
    # Jacobi preconditioning on a badly scaled system needs fewer steps, same answer
    d = jnp.asarray(np.logspace(0, 4, 20))
    scaled = d[:, None] * a * d[None, :]
    plain_info = cg(lambda v: scaled @ v, b, tol=1e-10, maxiter=2000)
    pre_info = cg(lambda v: scaled @ v, b, tol=1e-10, maxiter=2000, precond=lambda r: r / jnp.diag(scaled))
    pre = pre_info.x
    np.testing.assert_allclose(pre, np.linalg.solve(scaled, b), rtol=1e-6)
    assert int(pre_info.iterations) < int(plain_info.iterations)


def test_cg_float32():
    a, b = spd_system(30, seed=2, shift=1.0, dtype=np.float32)
    info = cg(lambda v: a @ v, b, tol=1e-5)
    x = info.x
    assert x.dtype == jnp.float32
    np.testing.assert_allclose(x, np.linalg.solve(np.float64(a), np.float64(b)), rtol=1e-3, atol=1e-4)
    assert bool(info.converged)


def test_cg_reports_negative_curvature_instead_of_nan():
    a, b = spd_system(30, seed=3)
    indefinite = a - 0.5 * jnp.eye(30) * float(jnp.linalg.eigvalsh(a)[-1])
    info = cg(lambda v: indefinite @ v, b, tol=1e-12)
    x = info.x
    assert bool(info.negative_curvature) and not bool(info.converged)
    assert bool(jnp.all(jnp.isfinite(x)))
    assert float(info.curvature) <= 0
    assert int(info.matvecs) == int(info.iterations) + 1
    # a negative definite operator is caught at the first direction, x stays at 0
    info = cg(lambda v: -a @ v, b)
    x = info.x
    assert int(info.iterations) == 0 and bool(info.negative_curvature)
    np.testing.assert_array_equal(x, 0)
    np.testing.assert_allclose(info.curvature, -b @ a @ b)


def test_cg_zero_rhs_and_bad_input():
    a, _ = spd_system(5)
    info = cg(lambda v: a @ v, jnp.zeros(5))
    x = info.x
    np.testing.assert_array_equal(x, 0)
    assert bool(info.converged) and int(info.iterations) == 0
    with pytest.raises(ValueError, match="x0"):
        cg(lambda v: a @ v, jnp.ones(5), x0=jnp.ones(4))
    with pytest.raises(ValueError, match="norm_ord"):
        cg(lambda v: a @ v, jnp.ones(5), norm_ord=3)


def test_cg_l1_tolerance_as_scipy_newton_cg():
    a, b = spd_system(25, seed=4)
    info = cg(lambda v: a @ v, b, tol=0.1, norm_ord=1)
    x = cg(lambda v: a @ v, b, tol=0.1, norm_ord=1, maxiter=int(info.iterations)).x
    assert np.abs(np.asarray(b - a @ x)).sum() <= 0.1 * np.abs(np.asarray(b)).sum()
    # and it stopped as soon as it could: one step fewer misses the L1 target
    x_short = cg(lambda v: a @ v, b, tol=0.0, norm_ord=1, maxiter=int(info.iterations) - 1).x
    assert np.abs(np.asarray(b - a @ x_short)).sum() > 0.1 * np.abs(np.asarray(b)).sum()


# ----------------------------------------------------------------------------- Steihaug


def model_value(a, g, p):
    return float(g @ p + 0.5 * p @ a @ p)


def test_steihaug_interior_solution_is_newton_step():
    a, g = spd_system(15, seed=5)
    info = steihaug_cg(lambda v: a @ v, g, radius=1e6, tol=1e-12)
    p, m = info.x, info.model
    np.testing.assert_allclose(p, -np.linalg.solve(a, g), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m, model_value(a, g, p), rtol=1e-10)
    assert not bool(info.hit_boundary) and bool(info.converged)


def test_steihaug_stops_on_boundary_below_the_cauchy_point():
    a, g = spd_system(15, seed=6)
    radius = 0.05 * float(jnp.linalg.norm(jnp.linalg.solve(a, g)))
    info = steihaug_cg(lambda v: a @ v, g, radius=radius, tol=1e-12)
    p, m = info.x, info.model
    assert bool(info.hit_boundary)
    np.testing.assert_allclose(jnp.linalg.norm(p), radius, rtol=1e-10)
    np.testing.assert_allclose(m, model_value(a, g, p), rtol=1e-10)
    # Cauchy point: steepest descent minimizer of the model inside the region
    gag = float(g @ a @ g)
    t = min(float(g @ g) / gag, radius / float(jnp.linalg.norm(g)))
    assert model_value(a, g, p) <= model_value(a, g, -t * g) + 1e-12


def test_steihaug_indefinite_goes_to_the_boundary_without_nan():
    a, g = spd_system(15, seed=7)
    indefinite = a - 2.0 * jnp.eye(15)
    assert float(jnp.linalg.eigvalsh(indefinite)[0]) < 0
    info = steihaug_cg(lambda v: indefinite @ v, g, radius=3.0, tol=1e-12)
    p, m = info.x, info.model
    assert bool(info.hit_boundary) and bool(jnp.all(jnp.isfinite(p)))
    np.testing.assert_allclose(jnp.linalg.norm(p), 3.0, rtol=1e-10)
    np.testing.assert_allclose(m, model_value(indefinite, g, p), rtol=1e-9)
    assert float(m) < 0
    # negative curvature along the very first direction -g
    info = steihaug_cg(lambda v: -a @ v, g, radius=2.0)
    p, m = info.x, info.model
    assert bool(info.negative_curvature) and int(info.iterations) == 1
    np.testing.assert_allclose(p, -2.0 * g / jnp.linalg.norm(g), rtol=1e-12)


# ----------------------------------------------------------------------------- spectrum


@pytest.fixture(scope="session")
def small_model():
    """A tanh MLP 4-6-3 on 32 points (45 parameters) and its dense Hessian."""
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(1), 3)
    x = jax.random.normal(k1, (32, 4))
    y = jax.random.randint(k2, (32,), 0, 3)
    ka, kb = jax.random.split(k3)
    params = {"w1": jax.random.normal(ka, (4, 6)), "b1": jnp.zeros(6) + 0.1, "w2": jax.random.normal(kb, (6, 3)),
              "b2": jnp.zeros(3)}

    def loss(p):
        logits = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(32), y])

    dense = gk.hessian(loss, params, dense=True)
    return loss, params, dense, np.linalg.eigvalsh(np.asarray(dense))


def test_power_iteration_top_k_by_magnitude(small_model):
    loss, params, _, eig = small_model
    op = gk.hvp_operator(loss, params)
    result = jax.jit(lambda p: power_iteration(op, p, jax.random.PRNGKey(0), k=2, num_iters=3000, tol=1e-13)
                     )(params)
    by_magnitude = eig[np.argsort(-np.abs(eig))][:2]
    np.testing.assert_allclose(result.eigenvalues, by_magnitude, rtol=1e-6)
    # the eigenvector satisfies H v = λ v
    v = jax.tree.map(lambda leaf: leaf[0], result.eigenvectors)
    hv = gk.hvp(loss, params, v)
    np.testing.assert_allclose(ravel_pytree(hv)[0], result.eigenvalues[0] * ravel_pytree(v)[0], atol=1e-5)


def test_lanczos_extremes_match_eigvalsh(small_model):
    loss, params, dense, eig = small_model
    op = gk.hvp_operator(loss, params)
    top = lanczos_eigenvalues(op, params, jax.random.PRNGKey(0), k=3, num_steps=30)
    np.testing.assert_allclose(top.eigenvalues, eig[::-1][:3], rtol=1e-8, atol=1e-10)
    bottom = lanczos_eigenvalues(op, params, jax.random.PRNGKey(0), k=2, num_steps=30, which="smallest")
    np.testing.assert_allclose(bottom.eigenvalues, eig[:2], rtol=1e-8, atol=1e-10)
    # full Lanczos: T is an orthogonal similarity of H
    full = lanczos(op, params, jax.random.PRNGKey(2), num_steps=eig.size)
    np.testing.assert_allclose(np.linalg.eigvalsh(full.solution.tridiagonal()), eig, atol=1e-9)
    np.testing.assert_allclose(full.basis @ full.basis.T, np.eye(eig.size), atol=1e-10)
    np.testing.assert_allclose(full.basis @ dense @ full.basis.T, full.solution.tridiagonal(), atol=1e-9)


def test_lanczos_survives_breakdown_on_a_low_rank_operator():
    u = jnp.asarray(np.random.default_rng(0).normal(size=(20, 3)))
    low_rank = u @ u.T  # rank 3: the Krylov space of a start vector closes after 4 steps
    result = lanczos(lambda v: low_rank @ v, jnp.zeros(20), jax.random.PRNGKey(0), num_steps=10)
    assert bool(jnp.all(jnp.isfinite(result.solution.tridiagonal())))
    np.testing.assert_allclose(result.basis @ result.basis.T, np.eye(10), atol=1e-10)
    ritz = np.sort(np.linalg.eigvalsh(result.solution.tridiagonal()))
    np.testing.assert_allclose(ritz[-3:], np.linalg.eigvalsh(low_rank)[-3:], rtol=1e-9)
    np.testing.assert_allclose(ritz[:-3], 0, atol=1e-9)


def test_hutchinson_trace_is_unbiased(small_model):
    loss, params, dense, eig = small_model
    op = gk.hvp_operator(loss, params)
    estimate = hutchinson_trace(op, params, jax.random.PRNGKey(3), num_samples=4000, batch_size=500)
    assert abs(float(estimate.estimate) - eig.sum()) < 5 * float(estimate.stderr)
    # Rademacher variance: 2 (||H||_F^2 - sum H_ii^2) / s
    h = np.asarray(dense)
    predicted = np.sqrt(2 * (np.sum(h**2) - np.sum(np.diag(h) ** 2)) / 4000)
    np.testing.assert_allclose(float(estimate.stderr), predicted, rtol=0.15)


def test_hutch_plus_plus_is_exact_when_the_sketch_spans_the_space(small_model):
    loss, params, _, eig = small_model
    op = gk.hvp_operator(loss, params)
    exact = hutch_plus_plus(op, params, jax.random.PRNGKey(0), num_matvecs=3 * eig.size)
    np.testing.assert_allclose(exact.estimate, eig.sum(), rtol=1e-9)
    # on a fast-decaying spectrum it beats Hutchinson at equal cost (mean abs error over seeds)
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    a = jnp.asarray(q @ np.diag(1.0 / np.arange(1, 61) ** 2) @ q.T)
    errors_pp, errors_h = [], []
    matvec = jax.tree_util.Partial(jnp.matmul, a)  # one operator object: compiled once, not per seed
    for seed in range(20):
        key = jax.random.PRNGKey(seed)
        errors_pp.append(abs(float(hutch_plus_plus(matvec, jnp.zeros(60), key, 30).estimate) - np.trace(a)))
        errors_h.append(abs(float(hutchinson_trace(matvec, jnp.zeros(60), key, 30).estimate) - np.trace(a)))
    assert np.mean(errors_pp) < 0.5 * np.mean(errors_h)


def test_slq_quadrature_is_exact_for_low_degree_polynomials(small_model):
    loss, params, dense, eig = small_model
    op = gk.hvp_operator(loss, params)
    h = np.asarray(dense)
    n = eig.size
    density = slq_density(op, params, jax.random.PRNGKey(4), num_probes=3, num_steps=8)
    np.testing.assert_allclose(density.weights.sum(axis=-1), 1.0, rtol=1e-10)
    # per probe v (unit, the same draw slq_density makes): sum_j w_j θ_j^k = vᵀ H^k v for k < 2m
    probes = np.asarray(jax.random.rademacher(jax.random.split(jax.random.PRNGKey(4), 4)[0], (3, n),
                                              dtype=jnp.float64)) / np.sqrt(n)
    for k in range(0, 6):
        exact = np.einsum("pi,ij,pj->p", probes, np.linalg.matrix_power(h, k), probes)
        np.testing.assert_allclose(np.sum(density.weights * density.nodes**k, axis=-1), exact,
                                   rtol=1e-7, atol=1e-10)
    # the smoothed density integrates to one and sits inside the spectrum
    grid = jnp.linspace(eig[0] - 1, eig[-1] + 1, 4001)
    phi = density.on_grid(grid, sigma=0.05)
    np.testing.assert_allclose(np.trapezoid(phi, grid), 1.0, rtol=1e-3)
    assert float(density.nodes.min()) >= eig[0] - 1e-9 and float(density.nodes.max()) <= eig[-1] + 1e-9


def test_spectrum_bad_input():
    with pytest.raises(ValueError, match="exceeds"):
        lanczos(lambda v: v, jnp.zeros(3), jax.random.PRNGKey(0), num_steps=5)
    with pytest.raises(ValueError, match="num_samples"):
        hutchinson_trace(lambda v: v, jnp.zeros(3), jax.random.PRNGKey(0), num_samples=0)
    with pytest.raises(ValueError, match="which"):
        lanczos_eigenvalues(lambda v: v, jnp.zeros(3), jax.random.PRNGKey(0), num_steps=3, which="top")

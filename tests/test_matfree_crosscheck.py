"""gradkit.linalg's Lanczos, stochastic Lanczos quadrature and Hutchinson against matfree's
(``decomp.tridiag_sym``, ``funm.monte_carlo_funm_sym``, ``stochtrace``) in the same process,
on the same start vectors / probes, and both against dense ``eigvalsh``.

Two operators: a dense 30 x 30 SPD matrix with a known spectrum, and the Hessian-vector
product of a small tanh MLP (``gradkit.curvature.hessian``, a pytree operator on dict params).

Probe reconstruction (read from ``gradkit.linalg.spectrum``):

* ``hutchinson_trace(op, like, key, s)`` draws ``jax.random.rademacher(key, (s, n))`` over
  ``ravel_pytree(like)``; matfree's ``stochtrace.sampler_signs(like, num=s)(key)`` makes the
  same call, so the same key gives the same probes (checked, not assumed).
* ``slq_density(..., key, num_probes=p)`` draws ``rademacher(split(key, p + 1)[0], (p, n)) / √n``
  and reports ``(1/n) tr f(A) ≈ mean_p Σⱼ w_pj f(θ_pj)``; matfree's quadrature form for an
  unnormalised probe ``z`` is ``||z||² e₁ᵀ f(T) e₁ = n Σⱼ w_j f(θ_j)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gradkit.curvature import hessian
from gradkit.linalg import hutchinson_trace, lanczos, slq_density

matfree = pytest.importorskip("matfree")
from matfree import decomp, funm, stochtrace  # noqa: E402

N_DENSE = 30


@pytest.fixture(scope="module")
def dense_spd():
    """``A = Q diag(λ) Qᵀ``, ``λ`` in ``[0.1, 10]`` with isolated ends; the operator is one
    ``Partial`` object so gradkit compiles it once."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(N_DENSE, N_DENSE)))
    lam = np.concatenate([[0.1, 0.25], np.linspace(1.0, 3.0, N_DENSE - 4), [6.0, 10.0]])
    a = q @ np.diag(lam) @ q.T
    a = 0.5 * (a + a.T)
    matvec = jax.tree_util.Partial(jnp.matmul, jnp.asarray(a))
    return matvec, jnp.zeros(N_DENSE), a, lam


@pytest.fixture(scope="module")
def mlp_hessian():
    """The Hessian of a tanh MLP 3-5-2 (32 parameters) on 24 points, softmax cross-entropy."""
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(7), 4)
    x = jax.random.normal(k1, (24, 3))
    y = jax.random.randint(k2, (24,), 0, 2)
    params = {"w1": jax.random.normal(k3, (3, 5)), "b1": jnp.full(5, 0.1), "w2": jax.random.normal(k4, (5, 2)),
              "b2": jnp.zeros(2)}

    def loss(p, batch):
        xb, yb = batch
        logits = jnp.tanh(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(xb.shape[0]), yb])

    op = hessian(loss, params, (x, y))
    dense = np.asarray(op.dense())
    return op, params, dense, np.linalg.eigvalsh(dense)


def _flat(tree) -> np.ndarray:
    return np.asarray(ravel_pytree(tree)[0])


def _matfree_tridiag(matvec, v0, num_steps: int):
    """matfree's full-reorthogonalisation Lanczos: (alphas, betas, basis rows as flat vectors)."""
    result = decomp.tridiag_sym(num_steps, materialize=False, reortho="full")(matvec, v0)
    alphas, betas = result.J_small
    basis = np.asarray(jax.vmap(lambda row: ravel_pytree(row)[0])(result.Q_tall))
    return np.asarray(alphas), np.asarray(betas), basis


def _tridiagonal(alphas, betas) -> np.ndarray:
    return np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)


# ----------------------------------------------------------------------------- Lanczos


@pytest.mark.parametrize("problem", ["dense", "mlp"])
def test_lanczos_tridiagonal_matches_matfree(problem, dense_spd, mlp_hessian):
    if problem == "dense":
        matvec, like, a, eig = dense_spd
        num_steps = 20
    else:
        matvec, like, a, eig = mlp_hessian
        num_steps = 20
    n = eig.size
    # an unnormalised start vector (both normalise it), as a pytree shaped like `like`
    _, unravel = ravel_pytree(like)
    v0 = unravel(jnp.asarray(3.7 * np.random.default_rng(1).normal(size=n)))
    ours = lanczos(matvec, like, jax.random.PRNGKey(0), num_steps, v0=v0)
    assert int(ours.iterations) == num_steps and int(ours.stats["restarts"]) == 0
    alphas, betas, basis = _matfree_tridiag(lambda v: matvec(v), v0, num_steps)

    # betas: both positive norms (matfree: the symmetrised Hessenberg off-diagonal)
    assert np.all(np.asarray(ours.betas) > 0) and np.all(betas > 0)
    scale = np.abs(eig).max()
    np.testing.assert_allclose(ours.alphas, alphas, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(ours.betas, betas, rtol=0, atol=1e-10 * scale)
    # the same Krylov basis, same signs (first row: the normalised start vector)
    np.testing.assert_allclose(np.asarray(ours.basis), basis, rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.asarray(ours.basis)[0], _flat(v0) / np.linalg.norm(_flat(v0)), atol=1e-15)

    # Ritz values agree with each other, the extremes with eigvalsh
    ritz_ours = np.linalg.eigvalsh(np.asarray(ours.solution.tridiagonal()))
    ritz_matfree = np.linalg.eigvalsh(_tridiagonal(alphas, betas))
    np.testing.assert_allclose(ritz_ours, ritz_matfree, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(ritz_ours[[0, -1]], eig[[0, -1]], rtol=1e-8, atol=1e-10 * scale)
    # and T = Vᵀ A V for both bases (an independent check of the projection itself)
    v = np.asarray(ours.basis)
    np.testing.assert_allclose(v @ a @ v.T, _tridiagonal(alphas, betas), rtol=0, atol=1e-9 * scale)


def test_full_lanczos_spectrum_matches_matfree_and_eigvalsh(dense_spd):
    matvec, like, _, lam = dense_spd
    v0 = jnp.asarray(np.random.default_rng(2).normal(size=N_DENSE))
    ours = lanczos(matvec, like, jax.random.PRNGKey(0), N_DENSE, v0=v0)
    alphas, betas, _ = _matfree_tridiag(lambda v: matvec(v), v0, N_DENSE)
    np.testing.assert_allclose(np.linalg.eigvalsh(np.asarray(ours.solution.tridiagonal())), lam, atol=1e-10)
    np.testing.assert_allclose(np.linalg.eigvalsh(_tridiagonal(alphas, betas)), lam, atol=1e-10)


# ----------------------------------------------------------------------------- SLQ


def _matfree_slq_per_probe(matvec, like, key, num_probes: int, num_steps: int, fn):
    """matfree's per-probe quadrature ``zᵀ f(A) z ≈ ||z||² e₁ᵀ f(T) e₁`` on the Rademacher probes
    gradkit's ``slq_density`` draws, plus the probes themselves (flat, unnormalised)."""
    integrand = funm.monte_carlo_funm_sym(funm.dense_funm_sym_eigh(fn),
                                          decomp.tridiag_sym(num_steps, reortho="full"))
    probe_key = jax.random.split(key, num_probes + 1)[0]
    probes = stochtrace.sampler_signs(like, num=num_probes)(probe_key)
    per_probe = jax.vmap(lambda z: integrand(matvec, z))(probes)
    estimator = stochtrace.estimator_monte_carlo(integrand, stochtrace.sampler_signs(like, num=num_probes))
    return np.asarray(per_probe), float(estimator(matvec, probe_key)), np.asarray(
        jax.vmap(lambda z: ravel_pytree(z)[0])(probes))


def _rademacher_stderr(f_dense: np.ndarray, num_probes: int) -> float:
    """Standard error of Hutchinson with Rademacher probes: √(2 (||F||_F² - Σ F_ii²) / p)."""
    return float(np.sqrt(2 * (np.sum(f_dense**2) - np.sum(np.diag(f_dense) ** 2)) / num_probes))


def test_slq_logdet_matches_matfree_on_the_same_probes(dense_spd):
    matvec, like, a, lam = dense_spd
    key, p, m = jax.random.PRNGKey(11), 12, 12
    density = slq_density(matvec, like, key, num_probes=p, num_steps=m)
    assert bool(jnp.all(density.finite))
    per_probe_ours = N_DENSE * np.sum(np.asarray(density.weights) * np.log(np.asarray(density.nodes)), axis=-1)
    per_probe, estimate, probes = _matfree_slq_per_probe(lambda v: matvec(v), like, key, p, m, jnp.log)
    # the probes are the ones gradkit drew: its first node-weight moment is vᵀ A v with v = z / √n
    np.testing.assert_allclose(N_DENSE * np.sum(np.asarray(density.weights * density.nodes), axis=-1),
                               np.einsum("pi,ij,pj->p", probes, a, probes), rtol=1e-12)
    np.testing.assert_allclose(per_probe_ours, per_probe, rtol=1e-10, atol=1e-10)
    ours = N_DENSE * float(density.expectation(jnp.log))
    np.testing.assert_allclose(ours, estimate, rtol=1e-8, atol=1e-10)
    # both near the exact log-determinant: 12 Lanczos steps resolve vᵀ log(A) v well, the rest is
    # Monte Carlo error of 12 Rademacher probes
    log_a = (np.linalg.eigh(a)[1] * np.log(lam)) @ np.linalg.eigh(a)[1].T
    exact_quadratic = np.einsum("pi,ij,pj->p", probes, log_a, probes)
    np.testing.assert_allclose(per_probe_ours, exact_quadratic, rtol=0, atol=1e-3 * np.abs(exact_quadratic).max())
    assert abs(ours - np.sum(np.log(lam))) < 4 * _rademacher_stderr(log_a, p)


def test_slq_on_an_mlp_hessian_matches_matfree(mlp_hessian):
    op, params, dense, eig = mlp_hessian
    n = eig.size
    key, p, m = jax.random.PRNGKey(5), 10, 10
    density = slq_density(op, params, key, num_probes=p, num_steps=m)
    assert bool(jnp.all(density.finite))
    # f = exp on an indefinite Hessian: tr exp(H), exact from eigh
    per_probe_ours = n * np.sum(np.asarray(density.weights) * np.exp(np.asarray(density.nodes)), axis=-1)
    per_probe, estimate, probes = _matfree_slq_per_probe(lambda v: op(v), params, key, p, m, jnp.exp)
    np.testing.assert_allclose(per_probe_ours, per_probe, rtol=1e-10)
    ours = n * float(density.expectation(jnp.exp))
    np.testing.assert_allclose(ours, estimate, rtol=1e-8)
    w, u = np.linalg.eigh(dense)
    exp_h = (u * np.exp(w)) @ u.T
    np.testing.assert_allclose(per_probe_ours, np.einsum("pi,ij,pj->p", probes, exp_h, probes), rtol=1e-6)
    assert abs(ours - np.sum(np.exp(eig))) < 4 * _rademacher_stderr(exp_h, p)


# ----------------------------------------------------------------------------- Hutchinson


@pytest.mark.parametrize("problem", ["dense", "mlp"])
def test_hutchinson_matches_matfree_on_the_same_probes(problem, dense_spd, mlp_hessian):
    if problem == "dense":
        matvec, like, a, _ = dense_spd
    else:
        matvec, like, a, _ = mlp_hessian
    key, s = jax.random.PRNGKey(3), 200
    ours = hutchinson_trace(matvec, like, key, s)
    sampler = stochtrace.sampler_signs(like, num=s)
    probes = np.asarray(jax.vmap(lambda z: ravel_pytree(z)[0])(sampler(key)))
    # the same Rademacher probes gradkit draws (its _probes: rademacher(key, (s, n)))
    np.testing.assert_array_equal(probes, np.asarray(jax.random.rademacher(key, probes.shape, dtype=jnp.float64)))
    estimator = stochtrace.estimator_monte_carlo(stochtrace.monte_carlo_trace(), sampler)
    theirs = float(estimator(lambda v: matvec(v), key))
    by_hand = float(np.mean(np.einsum("pi,ij,pj->p", probes, a, probes)))
    scale = np.abs(np.diag(a)).sum() + 1.0
    np.testing.assert_allclose(float(ours.estimate), theirs, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(float(ours.estimate), by_hand, rtol=0, atol=1e-12 * scale)
    assert abs(float(ours.estimate) - np.trace(a)) < 5 * _rademacher_stderr(a, s)

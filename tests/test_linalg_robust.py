"""gradkit.linalg trust: compile once, result codes, no silent wrong answer, dtypes, validation.

References: ``np.linalg.eigvalsh`` / ``np.linalg.solve`` on the dense matrices, ``jax.hessian``.
"""

from __future__ import annotations

import resource

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import gradkit as gk
from gradkit.results import tree_all_finite
from gradkit.linalg import (
    Code,
    SolverError,
    cg,
    hutch_plus_plus,
    hutchinson_trace,
    lanczos,
    lanczos_eigenvalues,
    power_iteration,
    slq_density,
    steihaug_cg,
)

KEY = jax.random.PRNGKey(0)
TRACES = {"count": 0}
_TARGET = jnp.asarray([1.0, -2.0, 0.5, 3.0, 1.5, -1.0])


def counted_loss(p: dict) -> jax.Array:
    """A smooth convex loss of 6 parameters; counts how often it is traced (runs only then)."""
    TRACES["count"] += 1
    w, b = p["w"], p["b"]
    return jnp.sum(jnp.exp(0.3 * w) + 0.5 * w**2) + jnp.sum((b - _TARGET[4:]) ** 2) + jnp.sum(w[:2] * b) * 0.1


def params_at(i: int) -> dict:
    return {"w": jnp.linspace(-1.0, 1.0, 4) * (1 + 0.01 * i), "b": jnp.asarray([0.2, -0.3]) + 0.001 * i}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


SOLVERS = {
    "cg": lambda op, p: cg(op, p, maxiter=20).x,
    "steihaug_cg": lambda op, p: steihaug_cg(op, p, 1.0).x,
    "lanczos": lambda op, p: lanczos(op, p, KEY, num_steps=4).alphas,
    "lanczos_eigenvalues": lambda op, p: lanczos_eigenvalues(op, p, KEY, k=1, num_steps=4).eigenvalues,
    "power_iteration": lambda op, p: power_iteration(op, p, KEY, num_iters=10).eigenvalues,
    "hutchinson_trace": lambda op, p: hutchinson_trace(op, p, KEY, 4).estimate,
    "hutch_plus_plus": lambda op, p: hutch_plus_plus(op, p, KEY, 6).estimate,
    "slq_density": lambda op, p: slq_density(op, p, KEY, num_probes=2, num_steps=3).nodes,
}


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_eager_loop_with_fresh_operators_compiles_once(name):
    run = SOLVERS[name]
    for i in range(3):  # warm-up: compile (and let the allocator settle)
        jax.block_until_ready(run(gk.hvp_operator(counted_loss, params_at(i)), params_at(i)))
    traces, rss = TRACES["count"], rss_bytes()
    for i in range(200):
        jax.block_until_ready(run(gk.hvp_operator(counted_loss, params_at(i)), params_at(i)))
    assert TRACES["count"] == traces, f"{name} retraced the objective {TRACES['count'] - traces} times in 200 calls"
    assert rss_bytes() - rss < 24 * 2**20  # recompiling would add ~4.7 MB per call


def test_hvp_operator_is_a_pytree_that_works_eagerly_under_jit_and_vmap():
    p = params_at(0)
    op1, op2 = gk.hvp_operator(counted_loss, p), gk.hvp_operator(counted_loss, params_at(5))
    assert jax.tree.structure(op1) == jax.tree.structure(op2)  # same fn: one treedef, one executable
    assert jax.tree.leaves(op1) == jax.tree.leaves(p)
    dense = np.asarray(gk.hessian(counted_loss, p, dense=True))
    unravel = ravel_pytree(p)[1]
    v = unravel(jnp.arange(1.0, 7.0))
    expected = dense @ np.arange(1.0, 7.0)
    np.testing.assert_allclose(ravel_pytree(op1(v))[0], expected, rtol=1e-12)
    np.testing.assert_allclose(ravel_pytree(jax.jit(lambda o, v: o(v))(op1, v))[0], expected, rtol=1e-12)
    vs = jax.vmap(unravel)(jnp.eye(6))
    columns = jax.vmap(lambda t: ravel_pytree(t)[0])(jax.vmap(op1)(vs))
    np.testing.assert_allclose(columns, dense, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="hvp_operator"):
        op1({"w": jnp.zeros(3), "b": jnp.zeros(2)})


# ----------------------------------------------------------------------------- silent wrong answers


def symmetric(eigenvalues, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigenvalues),) * 2))
    return q @ np.diag(eigenvalues) @ q.T


def top_by_magnitude(a: np.ndarray, k: int) -> np.ndarray:
    eig = np.linalg.eigvalsh(a)
    return eig[np.argsort(-np.abs(eig), kind="stable")][:k]


def test_power_iteration_on_plus_minus_pair():
    a = jnp.diag(jnp.asarray([3.0, -3.0, 1.0, 0.5]))
    res = power_iteration(lambda v: a @ v, jnp.zeros(4), KEY, k=2, num_iters=200)
    np.testing.assert_allclose(np.sort(res.eigenvalues), [-3.0, 3.0], rtol=1e-6)  # plain power iteration: -2.61
    assert bool(res.converged) and float(jnp.max(res.residuals)) <= 1e-6 * 3
    for k in (1, 3):
        res = power_iteration(lambda v: a @ v, jnp.zeros(4), KEY, k=k, num_iters=200)
        np.testing.assert_allclose(np.abs(res.eigenvalues), [3.0, 3.0, 1.0][:k], rtol=1e-6)
        v = res.eigenvectors[0]
        np.testing.assert_allclose(a @ v, res.eigenvalues[0] * v, atol=1e-5)


@settings(max_examples=12, deadline=None)
@given(st.lists(st.floats(0.5, 10.0), min_size=3, max_size=3), st.lists(st.booleans(), min_size=3, max_size=3),
       st.integers(1, 3), st.integers(0, 99))
def test_power_iteration_property_with_plus_minus_pairs(magnitudes, paired, k, seed):
    magnitudes = sorted(magnitudes, reverse=True)
    if min(abs(x - y) for x, y in zip(magnitudes, magnitudes[1:])) < 0.5:
        magnitudes = [10.0 - 2.0 * i for i in range(len(magnitudes))]
    # each magnitude as a ± pair, or twice with one sign (a double eigenvalue): always 7 x 7
    spectrum = [m * s for m, pair in zip(magnitudes, paired) for s in ((1.0, -1.0) if pair else (1.0, 1.0))] + [0.1]
    a = jnp.asarray(symmetric(spectrum, seed))
    matvec = jax.tree_util.Partial(jnp.matmul, a)  # a pytree operator: one compile per k
    res = power_iteration(matvec, jnp.zeros(len(spectrum)), jax.random.PRNGKey(seed), k=k, num_iters=500)
    expected = top_by_magnitude(np.asarray(a), k)
    assert bool(res.converged)
    np.testing.assert_allclose(np.abs(res.eigenvalues), np.abs(expected), rtol=1e-5)
    eig = np.linalg.eigvalsh(np.asarray(a))
    assert np.all(np.min(np.abs(np.asarray(res.eigenvalues)[:, None] - eig[None]), axis=1) < 1e-4)


def test_power_iteration_max_steps_code_and_throw():
    a = jnp.diag(jnp.asarray([3.0, 2.99, 2.98, 1.0]))
    res = power_iteration(lambda v: a @ v, jnp.zeros(4), KEY, num_iters=2, oversample=0, tol=1e-12)
    assert int(res.code) == Code.MAX_STEPS and int(res.matvecs) == 2
    with pytest.raises(SolverError, match="power_iteration"):
        power_iteration(lambda v: a @ v, jnp.zeros(4), KEY, num_iters=2, oversample=0, tol=1e-12, throw=True)


def test_lanczos_zero_start():
    a = jnp.asarray(symmetric([4.0, 2.0, 1.0, -1.0, 0.5]))
    mv = lambda v: a @ v
    with pytest.raises(ValueError, match="v0"):
        lanczos(mv, jnp.zeros(5), KEY, num_steps=3, v0=jnp.zeros(5))
    with pytest.raises(ValueError, match="v0"):
        lanczos(mv, jnp.zeros(5), KEY, num_steps=3, v0=jnp.zeros(4))
    res = jax.jit(lambda v0: lanczos(mv, jnp.zeros(5), KEY, num_steps=5, v0=v0))(jnp.zeros(5))
    assert int(res.code) == Code.BREAKDOWN
    assert bool(jnp.all(jnp.isfinite(res.alphas))) and bool(jnp.all(jnp.isfinite(res.basis)))
    np.testing.assert_allclose(np.linalg.eigvalsh(res.solution.tridiagonal()), np.linalg.eigvalsh(a), atol=1e-10)


def test_lanczos_eigenvalues_codes_and_residuals():
    a = jnp.asarray(symmetric(np.linspace(-1.0, 5.0, 40), seed=3))
    full = lanczos_eigenvalues(lambda v: a @ v, jnp.zeros(40), KEY, k=2, num_steps=40)
    assert bool(full.converged) and int(full.matvecs) == 40
    np.testing.assert_allclose(full.eigenvalues, np.linalg.eigvalsh(a)[::-1][:2], rtol=1e-10)
    short = lanczos_eigenvalues(lambda v: a @ v, jnp.zeros(40), KEY, k=1, num_steps=5)
    assert int(short.code) == Code.MAX_STEPS
    u = np.asarray(short.eigenvectors[0])
    np.testing.assert_allclose(short.residuals[0], np.linalg.norm(a @ u - short.eigenvalues[0] * u), rtol=1e-6)


def test_nonfinite_products_are_flagged_never_silent():
    a = jnp.asarray(symmetric([4.0, 3.0, 2.0, 1.0, 0.5]))
    nan_op = lambda v: a @ v + jnp.where(v[0] > 10, 0.0, jnp.nan)
    lan = lanczos(nan_op, jnp.zeros(5), KEY, num_steps=3)
    assert int(lan.code) == Code.NONFINITE and int(lan.iterations) == 0
    assert int(power_iteration(nan_op, jnp.zeros(5), KEY).code) == Code.NONFINITE
    assert int(lanczos_eigenvalues(nan_op, jnp.zeros(5), KEY, num_steps=3).code) == Code.NONFINITE
    est = hutchinson_trace(nan_op, jnp.zeros(5), KEY, 4)
    assert not bool(est.finite) and bool(jnp.isnan(est.estimate))
    assert not bool(hutch_plus_plus(nan_op, jnp.zeros(5), KEY, 6).finite)
    assert not bool(jnp.any(slq_density(nan_op, jnp.zeros(5), KEY, num_probes=2, num_steps=3).finite))
    assert bool(hutchinson_trace(lambda v: a @ v, jnp.zeros(5), KEY, 4).finite)


def test_lanczos_stops_at_the_last_finite_step():
    a = np.asarray(symmetric([4.0, 3.0, 2.0, 1.0, 0.5, -2.0], seed=2))
    full = lanczos(lambda v: a @ v, jnp.zeros(6), KEY, num_steps=6)
    third = full.basis[2]
    poisoned = lambda v: jnp.where(jnp.abs(v @ third) > 0.999, jnp.nan, 1.0) * (a @ v)
    res = lanczos(poisoned, jnp.zeros(6), KEY, num_steps=6)
    assert int(res.code) == Code.NONFINITE and int(res.iterations) == 2 and int(res.matvecs) == 3
    np.testing.assert_allclose(res.alphas[:2], full.alphas[:2], rtol=1e-12)
    np.testing.assert_allclose(res.betas[:1], full.betas[:1], rtol=1e-12)
    block = np.linalg.eigvalsh(full.solution.tridiagonal()[:2, :2])
    ritz = np.linalg.eigvalsh(res.solution.tridiagonal())
    np.testing.assert_allclose([ritz.min(), ritz.max()], [block.min(), block.max()], rtol=1e-12)


def test_cg_nonfinite_rhs_and_products():
    a = jnp.asarray(symmetric([4.0, 3.0, 2.0, 1.0, 0.5]))
    for bad in (jnp.inf, jnp.nan):
        res = cg(lambda v: a @ v, jnp.asarray([1.0, bad, 0.0, 0.0, 0.0]))
        assert int(res.code) == Code.NONFINITE and not bool(res.converged)
        np.testing.assert_array_equal(res.x, 0)
        res = steihaug_cg(lambda v: a @ v, jnp.asarray([1.0, bad, 0.0, 0.0, 0.0]), 1.0)
        assert int(res.code) == Code.NONFINITE
        np.testing.assert_array_equal(res.x, 0)
    b = jnp.arange(1.0, 6.0)
    res = cg(lambda v: jnp.nan * (a @ v), b)  # NaN from the first product
    assert int(res.code) == Code.NONFINITE and int(res.iterations) == 0 and int(res.matvecs) == 1
    np.testing.assert_array_equal(res.x, 0)
    res = cg(lambda v: jnp.nan * (a @ v), b, x0=b)  # ... and from r₀ = b - A x₀
    assert int(res.code) == Code.NONFINITE
    np.testing.assert_array_equal(res.x, b)
    res = steihaug_cg(lambda v: jnp.inf * (a @ v), b, 1.0)
    assert int(res.code) == Code.NONFINITE and bool(jnp.all(jnp.isfinite(res.x)))


def test_cg_nan_at_third_product_keeps_second_iterate():
    a = np.asarray(symmetric([4.0, 3.0, 2.0, 1.0, 0.5], seed=4))
    b = np.arange(1.0, 6.0)
    # the directions of the first two CG steps span K₂ = span(b, A b); the 3rd leaves it
    basis, _ = np.linalg.qr(np.stack([b, a @ b], axis=1))
    outside = jnp.asarray(np.eye(5) - basis @ basis.T)

    def op(v: jax.Array) -> jax.Array:
        leaves_k2 = jnp.linalg.norm(outside @ v) > 1e-8 * jnp.linalg.norm(v)
        return jnp.where(leaves_k2, jnp.nan, 1.0) * (jnp.asarray(a) @ v)

    res = cg(op, jnp.asarray(b), tol=0.0, maxiter=5)
    two = cg(lambda v: jnp.asarray(a) @ v, jnp.asarray(b), tol=0.0, maxiter=2)
    assert int(res.code) == Code.NONFINITE and int(res.iterations) == 2 and int(res.matvecs) == 3
    np.testing.assert_allclose(res.x, two.x, rtol=1e-12)
    assert bool(jnp.all(jnp.isfinite(res.x)))


# ----------------------------------------------------------------------------- dtypes


def mixed_system():
    a = symmetric([5.0, 4.0, 3.0, 2.0, 1.5], seed=5)
    like = {"a": jnp.zeros(3, jnp.float32), "b": jnp.zeros(2, jnp.float64)}
    flat, unravel = ravel_pytree(like)
    op = lambda t: unravel(jnp.asarray(a) @ ravel_pytree(t)[0])
    return a, like, unravel, op


def test_mixed_leaf_dtypes():
    a, like, unravel, op = mixed_system()
    rhs = np.arange(1.0, 6.0)
    b = unravel(jnp.asarray(rhs))
    for res in (cg(op, b, tol=1e-10), steihaug_cg(op, b, 1e3, tol=1e-10)):
        assert res.x["a"].dtype == jnp.float32 and res.x["b"].dtype == jnp.float64
        assert bool(res.converged)
    np.testing.assert_allclose(ravel_pytree(cg(op, b, tol=1e-10).x)[0], np.linalg.solve(a, rhs), rtol=1e-5)
    eig = np.linalg.eigvalsh(a)
    pi = power_iteration(op, like, KEY, k=1, num_iters=500)
    np.testing.assert_allclose(pi.eigenvalues, eig[-1:], rtol=1e-5)
    assert pi.eigenvectors["a"].dtype == jnp.float32 and pi.eigenvalues.dtype == jnp.float64
    le = lanczos_eigenvalues(op, like, KEY, k=2, num_steps=5)
    np.testing.assert_allclose(le.eigenvalues, eig[::-1][:2], rtol=1e-5)
    np.testing.assert_allclose(hutch_plus_plus(op, like, KEY, 15).estimate, np.trace(a), rtol=1e-5)
    assert bool(hutchinson_trace(op, like, KEY, 5).finite)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_low_precision_computed_in_float32(dtype):
    a64 = symmetric([4.0, 3.0, 2.0, 1.0, 0.5, 0.25], seed=6)
    a = jnp.asarray(a64, dtype)
    seen = []

    def op(v: jax.Array) -> jax.Array:
        seen.append(v.dtype)
        return a @ v

    b = jnp.asarray(np.arange(1.0, 7.0), dtype)
    res = cg(op, b, tol=1e-3)
    assert res.x.dtype == dtype and set(seen) == {jnp.dtype(dtype)}
    a_rounded = np.asarray(a, np.float64)
    np.testing.assert_allclose(np.asarray(res.x, np.float64), np.linalg.solve(a_rounded, np.arange(1.0, 7.0)),
                               rtol=2e-2, atol=2e-2)
    like = jnp.zeros(6, dtype)
    eig = np.linalg.eigvalsh(a_rounded)
    pi = power_iteration(op, like, KEY, num_iters=300)
    assert pi.eigenvalues.dtype == dtype and pi.eigenvectors.dtype == dtype
    np.testing.assert_allclose(float(pi.eigenvalues[0]), eig[-1], rtol=2e-2)
    le = lanczos_eigenvalues(op, like, KEY, k=1, num_steps=6)
    assert le.eigenvalues.dtype == dtype
    np.testing.assert_allclose(float(le.eigenvalues[0]), eig[-1], rtol=2e-2)
    est = hutch_plus_plus(op, like, KEY, 18)
    assert est.estimate.dtype == dtype
    np.testing.assert_allclose(float(est.estimate), np.trace(a_rounded), rtol=3e-2)


# ----------------------------------------------------------------------------- validation


def test_validation_names_the_argument():
    mv, b = (lambda v: v), jnp.ones(3)
    cases = [
        (lambda: cg(mv, b, maxiter=-1), "maxiter"),
        (lambda: cg(mv, b, maxiter=2.5), "maxiter"),
        (lambda: cg(mv, b, tol=float("nan")), "tol"),
        (lambda: cg(mv, b, atol=-1.0), "atol"),
        (lambda: steihaug_cg(mv, b, 0.0), "radius"),
        (lambda: steihaug_cg(mv, b, float("inf")), "radius"),
        (lambda: steihaug_cg(mv, b, 1.0, tol=-0.5), "tol"),
        (lambda: lanczos(mv, b, KEY, num_steps=0), "num_steps"),
        (lambda: lanczos(mv, b, KEY, num_steps=2.0), "num_steps"),
        (lambda: lanczos_eigenvalues(mv, b, KEY, k=0), "k"),
        (lambda: lanczos_eigenvalues(mv, b, KEY, num_steps=3, which="top"), "which"),
        (lambda: power_iteration(mv, b, KEY, k=True), "k"),
        (lambda: power_iteration(mv, b, KEY, num_iters=0), "num_iters"),
        (lambda: hutchinson_trace(mv, b, KEY, num_samples=0), "num_samples"),
        (lambda: hutchinson_trace(mv, b, KEY, distribution="gauss"), "distribution"),
        (lambda: hutch_plus_plus(mv, b, KEY, num_matvecs=2), "num_matvecs"),
        (lambda: slq_density(mv, b, KEY, num_probes=0), "num_probes"),
        (lambda: power_iteration(mv, {}, KEY), "like"),
        (lambda: lanczos(mv, [], KEY, num_steps=1), "like"),
        (lambda: lanczos(mv, {"a": b}, KEY, num_steps=1, v0={"b": b}), "v0"),
    ]
    for call, arg in cases:
        with pytest.raises(ValueError, match=arg):
            call()
    with pytest.raises(TypeError, match="matvec"):
        cg(np.eye(3), b)


def test_throw_raises_solver_error_for_every_solver():
    a = -jnp.eye(3)
    with pytest.raises(SolverError, match="cg"):
        cg(lambda v: a @ v, jnp.ones(3), throw=True)
    with pytest.raises(SolverError, match="lanczos_eigenvalues"):
        lanczos_eigenvalues(lambda v: jnp.diag(jnp.arange(1.0, 41.0)) @ v, jnp.zeros(40), KEY, num_steps=3,
                            throw=True)
    with pytest.raises(SolverError, match="lanczos"):
        lanczos(lambda v: v * jnp.nan, jnp.zeros(3), KEY, num_steps=2, throw=True)
    with pytest.raises(SolverError, match="steihaug_cg"):
        steihaug_cg(lambda v: v * jnp.nan, jnp.ones(3), 1.0, throw=True)


class Unhashable:
    """A matrix operator whose ``==`` returns an array (so it cannot be hashed)."""

    __hash__ = None

    def __init__(self, a: jax.Array) -> None:
        self.a = a

    def __call__(self, v: jax.Array) -> jax.Array:
        return self.a @ v

    def __eq__(self, other: object) -> jax.Array:
        return self.a == getattr(other, "a", None)


def test_operator_kinds_and_their_cache_keys():
    from gradkit.linalg.cg import _cg_core

    a = jnp.asarray(symmetric([3.0, 2.0, 1.0]))
    b = jnp.ones(3)
    expected = np.linalg.solve(np.asarray(a), np.ones(3))
    op = Unhashable(a)  # static by identity
    before = _cg_core._cache_size()
    for _ in range(3):
        np.testing.assert_allclose(cg(op, b, tol=1e-12).x, expected, rtol=1e-10)
    assert _cg_core._cache_size() == before + 1
    # a bound method of a pytree operator rides as a Partial: its point stays dynamic
    p = params_at(0)
    traces = TRACES["count"]
    for i in range(3):
        method = gk.hvp_operator(counted_loss, params_at(i)).__call__
        reference = cg(gk.hvp_operator(counted_loss, params_at(i)), p, tol=1e-12).x
        np.testing.assert_allclose(ravel_pytree(cg(method, p, tol=1e-12).x)[0], ravel_pytree(reference)[0])
    assert TRACES["count"] - traces <= 4  # one trace each for the method form and the operator form
    # an unhashable objective works in hvp_operator too
    quad_loss = type("QuadLoss", (Unhashable,), {"__call__": lambda self, x: 0.5 * x @ (self.a @ x)})(a)
    res = lanczos_eigenvalues(gk.hvp_operator(quad_loss, jnp.ones(3)), jnp.ones(3), KEY, k=1, num_steps=3)
    np.testing.assert_allclose(res.eigenvalues, [3.0], rtol=1e-10)


def test_cg_sees_a_non_finite_product_entry_where_the_direction_is_zero():
    """CG (and Steihaug's CG) judges ``Ap``'s finiteness from ``<p, Ap>`` and the new iterates' from one sum of
    ``v * 0``: a NaN or inf in ``Ap`` where ``p`` is 0 (so ``p_i (Ap)_i = 0 · inf = NaN``), or in
    one leaf of a pytree, is still NONFINITE at that step; the one-reduction check
    (:func:`gradkit.results.tree_all_finite`) equals ``jnp.isfinite`` on every entry."""
    a = jnp.diag(jnp.arange(1.0, 5.0))
    b = jnp.array([1.0, 1.0, 1.0, 0.0])  # p₀ = b: its last entry is 0
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        poisoned = lambda v, bad=bad: a @ v + jnp.array([0.0, 0.0, 0.0, 1.0]) * bad
        res = cg(poisoned, b)
        assert int(res.code) == Code.NONFINITE and int(res.iterations) == 0
        tree_op = lambda t, bad=bad: {"u": a @ t["u"], "w": t["w"] * 2 + bad * (t["w"] == 0)}
        res = cg(tree_op, {"u": b, "w": jnp.array([1.0, 0.0])})
        assert int(res.code) == Code.NONFINITE
        res = steihaug_cg(poisoned, b, 10.0)  # Steihaug's CG judges Bd from <d, Bd> the same way
        assert int(res.code) == Code.NONFINITE and bool(jnp.all(jnp.isfinite(res.x)))
    rng = np.random.default_rng(3)
    for _ in range(20):
        trees = [{"u": rng.normal(size=4), "w": rng.normal(size=(2, 3))} for _ in range(3)]
        leaf = rng.integers(3)
        key = "u" if rng.integers(2) else "w"
        if rng.integers(2):
            trees[leaf][key].flat[rng.integers(trees[leaf][key].size)] = rng.choice([np.nan, np.inf, -np.inf])
        want = all(np.all(np.isfinite(t[k])) for t in trees for k in t)
        assert bool(tree_all_finite(jax.tree.map(jnp.asarray, trees))) == want
    huge = {"u": jnp.full(4, 1e308)}  # finite entries whose sum overflows are still finite
    assert bool(tree_all_finite((huge, huge)))
    # leaves of one shape but other dtypes (integers, booleans, float32 beside float64) share a check
    mixed = {"i": jnp.arange(4), "b": jnp.ones(4, bool), "f": jnp.ones(4, jnp.float32), "d": jnp.ones(4)}
    assert bool(tree_all_finite(mixed)) and bool(tree_all_finite({}))
    assert not bool(tree_all_finite({**mixed, "f": jnp.array([1.0, jnp.inf, 1.0, 1.0], jnp.float32)}))

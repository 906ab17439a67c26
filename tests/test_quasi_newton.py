"""gradkit's BFGS and L-BFGS (line search folded into the steps): the update formulas against
their textbook definitions, convergence to the known minimizers (vmapped multi-start), and
agreement with scipy's BFGS on the same problems."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

import gradkit as gk

qn = importlib.import_module("gradkit.optim.quasi_newton")


def test_bfgs_update_is_the_textbook_formula_and_satisfies_the_secant_equation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    h = a @ a.T + np.eye(5)
    s, y = rng.normal(size=5), rng.normal(size=5)
    y = y if s @ y > 0 else -y
    rho = 1 / (s @ y)
    want = (np.eye(5) - rho * np.outer(s, y)) @ h @ (np.eye(5) - rho * np.outer(y, s)) + rho * np.outer(s, s)
    got = np.asarray(qn._bfgs_update(jnp.asarray(h), jnp.asarray(s), jnp.asarray(y), jnp.asarray(False)))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got @ y, s, rtol=1e-10)  # H y = s
    first = np.asarray(qn._bfgs_update(jnp.asarray(h), jnp.asarray(s), jnp.asarray(y), jnp.asarray(True)))
    h0 = (s @ y) / (y @ y) * np.eye(5)
    want0 = (np.eye(5) - rho * np.outer(s, y)) @ h0 @ (np.eye(5) - rho * np.outer(y, s)) + rho * np.outer(s, s)
    np.testing.assert_allclose(first, want0, rtol=1e-12, atol=1e-12)


def _dense_lbfgs_product(s_oldest_first, y_oldest_first, g):
    """BFGS's H g from H₀ = γ I (γ from the newest pair), the pairs applied oldest first."""
    n = g.size
    gamma = s_oldest_first[-1] @ y_oldest_first[-1] / (y_oldest_first[-1] @ y_oldest_first[-1])
    h = gamma * np.eye(n)
    for si, yi in zip(s_oldest_first, y_oldest_first):
        rho = 1 / (si @ yi)
        h = (np.eye(n) - rho * np.outer(si, yi)) @ h @ (np.eye(n) - rho * np.outer(yi, si)) + rho * np.outer(si, si)
    return h @ g


@pytest.mark.parametrize("n", [2, 6, 12])  # dot products written out (n <= 8) and reduced
def test_two_loop_recursion_equals_the_dense_bfgs_product(n):
    """With the memory holding every pair, L-BFGS's ``H g`` is BFGS's from ``H₀ = γ I``
    (``γ`` from the newest pair), the pairs applied oldest first."""
    rng = np.random.default_rng(1)
    m = 4
    s = rng.normal(size=(m, n))
    y = s @ np.diag(rng.uniform(0.5, 3.0, size=n)) + 0.01 * rng.normal(size=(m, n))
    g = rng.normal(size=n)
    got = qn._two_loop(jnp.asarray(g), jnp.asarray(s), jnp.asarray(y), jnp.asarray(np.sum(s * y, axis=1)), jnp.asarray(m))
    np.testing.assert_allclose(got, _dense_lbfgs_product(s, y, g), rtol=1e-10)
    # fewer stored pairs than rows: the empty (oldest) rows are ignored
    padded_s, padded_y = np.vstack([np.zeros((2, n)), s[2:]]), np.vstack([np.zeros((2, n)), y[2:]])
    got = qn._two_loop(jnp.asarray(g), jnp.asarray(padded_s), jnp.asarray(padded_y),
                       jnp.asarray(np.sum(padded_s * padded_y, axis=1)), jnp.asarray(2))
    np.testing.assert_allclose(got, _dense_lbfgs_product(s[2:], y[2:], g), rtol=1e-10)


@pytest.mark.parametrize("pairs", [7, 4, 1])
@pytest.mark.parametrize("newest", [6, 2, 0])
def test_compact_product_on_a_ring_equals_the_dense_bfgs_product(pairs, newest):
    """The ring layout's ``H g`` from the stored inner products (compact representation) is
    BFGS's from ``H₀ = γ I``, the ``pairs`` newest pairs applied oldest first, wherever the ring's
    newest row is; rows older than ``pairs`` hold stale pairs (as after a restart) and are ignored."""
    rng = np.random.default_rng(2)
    m, n = 7, 9
    s = rng.normal(size=(m, n))
    y = s @ np.diag(rng.uniform(0.5, 3.0, size=n)) + 0.01 * rng.normal(size=(m, n))
    g = rng.normal(size=n)
    oldest_first = [(newest - age) % m for age in reversed(range(pairs))]
    want = _dense_lbfgs_product(s[oldest_first], y[oldest_first], g)
    got = qn._compact_product(jnp.asarray(g), jnp.asarray(s), jnp.asarray(y), jnp.asarray(s @ y.T), jnp.asarray(y @ y.T),
                              jnp.asarray(newest), jnp.asarray(pairs))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    empty = qn._compact_product(jnp.asarray(g), jnp.asarray(s), jnp.asarray(y), jnp.asarray(s @ y.T),
                                jnp.asarray(y @ y.T), jnp.asarray(newest), jnp.asarray(0))
    np.testing.assert_array_equal(empty, g)  # no pairs: H = I


@pytest.mark.parametrize("make", [gk.optim.bfgs, gk.optim.lbfgs], ids=["bfgs", "lbfgs"])
@pytest.mark.parametrize("name,dim", [("himmelblau", 2), ("rosenbrock", 2), ("rosenbrock", 10)])
def test_vmapped_multistart_converges_to_the_known_minimizers(make, name, dim):
    f = gk.landscapes.get(name, dim=dim)
    starts = jax.random.uniform(jax.random.PRNGKey(0), (64, dim), minval=-3.0, maxval=3.0, dtype=jnp.float64)
    res = jax.jit(jax.vmap(lambda x: gk.optim.minimize(f, x, make(), gtol=1e-9, maxiter=3000)))(starts)
    assert np.all(np.asarray(res.code) == gk.results.Code.CONVERGED)
    grads = jax.vmap(jax.grad(f))(res.params)
    assert float(jnp.max(jnp.linalg.norm(grads, axis=1))) <= 1e-9
    minima = np.asarray(f.minimizers)
    dist = np.min(np.linalg.norm(np.asarray(res.params)[:, None] - minima[None], axis=-1), axis=1)
    if name == "rosenbrock" and dim == 10:  # 10-D Rosenbrock also has a local minimum near x₀ = -1
        dist = dist[np.asarray(res.params)[:, 0] > 0]
    assert dist.size and np.max(dist) < 1e-7
    np.testing.assert_allclose(np.asarray(res.value), [float(f(p)) for p in res.params], rtol=1e-12, atol=1e-18)


def test_lbfgs_large_problem_matches_scipy_lbfgsb():
    """Rosenbrock n = 100 from the standard start: gradkit's L-BFGS ends at the minimizer, where
    scipy's L-BFGS-B ends."""
    n = 100
    f = gk.landscapes.get("rosenbrock", dim=n)
    x0 = np.tile([-1.2, 1.0], n // 2)
    res = gk.optim.minimize(f, jnp.asarray(x0), gk.optim.lbfgs(), gtol=1e-8, maxiter=5000)
    assert int(res.code) == gk.results.Code.CONVERGED
    assert float(jnp.linalg.norm(jax.grad(f)(res.params))) <= 1e-8
    value, grad = jax.jit(f), jax.jit(jax.grad(f))  # scipy calls them ~10^3 times: compiled, not op by op
    ref = scipy.optimize.minimize(lambda x: float(value(jnp.asarray(x))), x0, jac=lambda x: np.asarray(grad(x)),
                                  method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 0, "maxiter": 20000})
    np.testing.assert_allclose(res.params, ref.x, atol=1e-6)
    np.testing.assert_allclose(res.params, np.ones(n), atol=1e-7)


def test_a_rejected_non_finite_gradient_keeps_the_accepted_point():
    """The acceptance test (one reduction over the gradient's entries) rejects a trial whose value
    is finite and lower but whose gradient has a NaN entry: the state keeps the accepted point."""
    opt = gk.optim.bfgs()
    x0 = jnp.array([1.0, 2.0])
    state = opt.init(x0)
    step, state = opt.update(jnp.array([1.0, 1.0]), state, x0, value=jnp.asarray(5.0))  # accepts x₀
    trial = x0 + step
    np.testing.assert_allclose(step, -0.5 * jnp.array([1.0, 1.0]))  # -g scaled by min(1, 1/||g||₁)
    back, new = opt.update(jnp.array([0.1, jnp.nan]), state, trial, value=jnp.asarray(1.0))
    np.testing.assert_array_equal(new.point, x0)
    assert int(new.rejected) == 1
    np.testing.assert_allclose(trial + back, x0 + 0.5 * step)  # the next trial: half the rejected step
    _, good = opt.update(jnp.array([0.1, 0.2]), state, trial, value=jnp.asarray(1.0))
    np.testing.assert_array_equal(good.point, trial)
    assert int(good.rejected) == 0


def test_bfgs_ends_where_scipy_bfgs_ends():
    f = gk.landscapes.get("rosenbrock", dim=4)
    x0 = np.array([-1.2, 1.0, -0.5, 0.8])
    ours = gk.optim.minimize(f, jnp.asarray(x0), gk.optim.bfgs(), gtol=1e-10, maxiter=2000)
    ref = scipy.optimize.minimize(lambda x: float(f(jnp.asarray(x))), x0, jac=lambda x: np.asarray(jax.grad(f)(x)),
                                  method="BFGS", options={"gtol": 1e-10})
    assert ref.success and int(ours.code) == gk.results.Code.CONVERGED
    np.testing.assert_allclose(ours.params, ref.x, atol=1e-8)


def barrier(x):
    r = jnp.sum(x**2)
    return jnp.where(r < 4.0, jnp.sum((x - 0.5) ** 2) - jnp.log(4.0 - r), jnp.inf)


def test_a_non_finite_trial_is_rejected_not_fatal():
    """A first step that lands where f is inf (outside a barrier) is backtracked by the line search:
    minimize goes on to the minimum, and gradkit.runs does not call the run diverged."""
    res = gk.optim.minimize(barrier, jnp.array([1.5, 1.0]), gk.optim.bfgs(), gtol=1e-9, maxiter=500)
    assert int(res.code) == gk.results.Code.CONVERGED
    grad = jax.grad(barrier)(res.params)
    assert float(jnp.linalg.norm(grad)) <= 1e-9 and bool(jnp.isfinite(res.value))


def test_in_gradkit_runs_a_non_finite_trial_is_not_a_diverged_run():
    """From x₀ = 2 on (x - 0.2)² the first trial is x₀ - g/|g| = 1; make f infinite there.  The
    divergence check after step 1 sees that trial: the run carries on from the accepted point
    (not frozen, not diverged) and reaches the minimum."""
    def notched(x):
        return jnp.where(jnp.abs(x[0] - 1.0) < 0.05, jnp.inf, (x[0] - 0.2) ** 2)

    starts = jnp.array([[2.0], [-1.0]])
    one = gk.runs.run(notched, gk.optim.bfgs(), starts, 1)
    assert not one.diverged.any()
    np.testing.assert_allclose(one.final[0], [2.0])  # the inf trial rejected: back at the accepted start
    later = gk.runs.run(notched, gk.optim.bfgs(), starts, 60, tol=1e-12, f_star=0.0)
    assert not later.diverged.any() and later.converged.all()
    np.testing.assert_allclose(later.final, [[0.2], [0.2]], atol=1e-6)


def test_in_gradkit_runs_and_optax_conventions():
    f = gk.landscapes.get("himmelblau")
    starts = jax.random.uniform(jax.random.PRNGKey(1), (32, 2), minval=-4.0, maxval=4.0, dtype=jnp.float64)
    res = gk.runs.run(f, gk.optim.bfgs(), starts, 200, tol=1e-10, f_star=0.0)
    assert res.converged.all()
    np.testing.assert_allclose(res.cost, 1 + 200)  # one value-and-gradient per step
    with pytest.raises(ValueError, match="needs params and the value"):
        opt = gk.optim.bfgs()
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)), jnp.ones(2))
    with pytest.raises(ValueError, match="memory_size"):
        gk.optim.lbfgs(memory_size=0)
    assert isinstance(gk.optim.bfgs(), optax.GradientTransformationExtraArgs)


@pytest.mark.parametrize("maxiter", [7, 60])  # stops mid-trip (odd) and at a trip's end
def test_two_lbfgs_steps_per_loop_trip_change_nothing(maxiter, monkeypatch):
    """``minimize`` runs L-BFGS two steps per ``while_loop`` trip (a speed-up under ``vmap``):
    iterates, accepted-step counts and stop codes equal those of one step per trip, bit for bit,
    for vmapped runs (some stopping at the tolerance, some at ``maxiter``) and a single run."""
    minimize_module = importlib.import_module("gradkit.optim.minimize")
    f = gk.landscapes.get("himmelblau", dim=2)
    starts = jax.random.uniform(jax.random.PRNGKey(1), (40, 2), minval=-4, maxval=4, dtype=jnp.float64)

    def solve(x):
        return gk.optim.minimize(f, x, gk.optim.lbfgs(), gtol=1e-9, maxiter=maxiter)

    two = jax.jit(jax.vmap(solve))(starts)
    single_two = solve(starts[3])
    monkeypatch.setattr(minimize_module, "_two_steps_per_trip", lambda step, keep_going: step)
    monkeypatch.setattr(minimize_module, "_run_compiled", jax.jit(minimize_module._run, static_argnums=(0, 1)))
    one = jax.jit(jax.vmap(solve))(starts)
    single_one = solve(starts[3])
    codes = set(np.asarray(two.code).tolist())
    assert codes == {int(gk.results.Code.CONVERGED), int(gk.results.Code.MAX_STEPS)}  # both kinds of stop
    for a, b in [(two, one), (single_two, single_one)]:
        np.testing.assert_array_equal(a.params, b.params)
        np.testing.assert_array_equal(a.iterations, b.iterations)
        np.testing.assert_array_equal(a.code, b.code)
    assert int(jnp.max(two.iterations)) == maxiter


def test_ring_memory_gives_the_shifted_memorys_iterates(monkeypatch):
    """Above ``_SMALL`` parameters L-BFGS keeps its pairs in a ring (a new pair overwrites the
    oldest row in place) with their inner products, and forms ``H g`` by the compact
    representation; at or below it, shifted rows and the two-loop recursion.  The same ``H``: on
    Rosenbrock n = 100, after 12 steps (the 7-pair ring has wrapped) both layouts hold the same
    pairs and the same iterate to rounding, and both converge to the minimizer.  A pair out of
    order or a wrong inner product would change the direction at once, not in the last bits."""
    minimize_module = importlib.import_module("gradkit.optim.minimize")
    n = 100
    f = gk.landscapes.get("rosenbrock", dim=n)
    x0 = jnp.tile(jnp.array([-1.2, 1.0]), n // 2)
    solve = lambda maxiter: gk.optim.minimize(f, x0, gk.optim.lbfgs(memory_size=7), gtol=1e-9, maxiter=maxiter)
    ring, ring_done = solve(12), solve(3000)
    assert int(ring.iterations) == 12 and int(ring.state.pairs) == 7
    assert int(ring.state.newest) != 6  # the ring has turned: the newest pair is not in the last row
    monkeypatch.setattr(qn, "_SMALL", n)  # shifted rows for n = 100
    monkeypatch.setattr(minimize_module, "_run_compiled", jax.jit(minimize_module._run, static_argnums=(0, 1)))
    shifted, shifted_done = solve(12), solve(3000)
    assert int(shifted.state.newest) == 6 and shifted.state.yy is None
    np.testing.assert_allclose(ring.params, shifted.params, rtol=1e-11)
    oldest_first = lambda mem: np.roll(np.asarray(mem), -(int(ring.state.newest) + 1), axis=0)
    s, y = oldest_first(ring.state.s), oldest_first(ring.state.y)
    np.testing.assert_allclose(s, shifted.state.s, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(y, shifted.state.y, rtol=1e-9, atol=1e-13)
    # the ring's kept inner products are those of its pairs
    gram = lambda m: oldest_first(oldest_first(m).T).T
    np.testing.assert_allclose(gram(ring.state.sy), s @ y.T, rtol=1e-12)
    np.testing.assert_allclose(gram(ring.state.yy), y @ y.T, rtol=1e-12)
    np.testing.assert_allclose(np.diagonal(s @ y.T), shifted.state.sy, rtol=1e-9)
    for done in (ring_done, shifted_done):
        assert int(done.code) == gk.results.Code.CONVERGED
        np.testing.assert_allclose(done.params, np.ones(n), atol=1e-8)


def test_finite_and_moved_in_one_reduction_equals_the_two_checks():
    """``minimize``'s steps ask, in one reduction per leaf, whether the new params (and gradient)
    are all finite and whether any entry changed (or is not finite): the same answers as
    ``isfinite`` and ``!=`` entry by entry, on pytrees with NaN, ±inf, unchanged and changed
    entries."""
    minimize_module = importlib.import_module("gradkit.optim.minimize")
    rng = np.random.default_rng(4)
    for _ in range(40):
        x = {"a": rng.normal(size=3), "b": rng.normal(size=(2, 2))}
        new = jax.tree.map(np.copy, x)
        for key in ("a", "b"):
            kind = rng.integers(4)  # unchanged, one entry changed, one non-finite, both
            if kind in (1, 3):
                new[key].flat[rng.integers(new[key].size)] += 1e-12
            if kind in (2, 3):
                new[key].flat[rng.integers(new[key].size)] = rng.choice([np.nan, np.inf, -np.inf])
        finite = all(np.all(np.isfinite(v)) for v in new.values())
        changed = not finite or any(np.any(new[k] != x[k]) for k in x)
        got = minimize_module._finite_and_moved(jax.tree.map(jnp.asarray, new), jax.tree.map(jnp.asarray, x))
        assert (bool(got[0]), bool(got[1])) == (finite, changed)
        # with the gradient: finite means params and gradient; when both are, moved is as above
        grad = jax.tree.map(lambda v: rng.normal(size=v.shape), x)
        if rng.integers(2):
            grad["b"].flat[rng.integers(4)] = np.nan
        grad_finite = all(np.all(np.isfinite(v)) for v in grad.values())
        got = minimize_module._finite_and_moved(*(jax.tree.map(jnp.asarray, t) for t in (new, x, grad)))
        assert bool(got[0]) == (finite and grad_finite)
        if finite and grad_finite:
            assert bool(got[1]) == changed

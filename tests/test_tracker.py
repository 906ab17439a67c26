"""CurvatureTracker: recorded values against dense references, Adam's exact preconditioner,
compile-once, the fit hook, and the edge-of-stability example's qualitative result."""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from gradkit import curvature as cv
from gradkit import optim, train

ROOT = Path(__file__).resolve().parents[1]
X = jax.random.normal(jax.random.PRNGKey(1), (16, 2))
Y = jnp.sin(X[:, 0]) - 0.5 * X[:, 1]


def _model(params, x):
    return jnp.tanh(x @ params["w"] + params["b"]) @ params["v"]


def _half_mse(z, y):
    return 0.5 * jnp.mean((z - y) ** 2)


def _loss(params, batch):
    return _half_mse(_model(params, batch[0]), batch[1])


def _params():
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return {"w": jax.random.normal(k1, (2, 5)), "b": jnp.linspace(-0.5, 0.5, 5), "v": jax.random.normal(k2, (5,))}


def _flat_hessian(params, batch):
    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.hessian(lambda f: _loss(unravel(f), batch))(flat))


def _flat_ggn(params, batch):
    flat, unravel = ravel_pytree(params)
    jac = np.asarray(jax.jacobian(lambda f: _model(unravel(f), batch[0]))(flat))
    return jac.T @ jac / jac.shape[0]


def test_tracker_in_an_optax_loop_matches_dense_references():
    traces = []

    def loss(params, batch):
        traces.append(1)
        return _loss(params, batch)

    params, batch = _params(), (X, Y)
    n = ravel_pytree(params)[0].size
    lr, b1, b2, eps = 0.05, 0.8, 0.99, 1e-6
    opt = optax.adam(lr, b1=b1, b2=b2, eps=eps)
    tracker = cv.CurvatureTracker(loss, every=4, k=2, lanczos_steps=n, trace_matvecs=3 * n,
                                  adam=cv.AdamPreconditioner(b1=b1, b2=b2, eps=eps), ggn=(_model, _half_mse),
                                  density_steps=(4,), density_probes=3, density_lanczos_steps=n, max_records=3)
    update = jax.jit(tracker.update)
    tstate, opt_state = tracker.init(params, jax.random.PRNGKey(5)), opt.init(params)
    expected = []
    for step in range(11):
        tstate = update(tstate, step, params, batch, opt_state)
        if step == 1:
            traces_after_first = len(traces)
        updates, new_state = opt.update(jax.grad(_loss)(params, batch), opt_state, params)
        if step % 4 == 0:
            # Adam's P for this step, from optax's *new* state, checked to reproduce optax's update
            adam = new_state[0]
            c = int(adam.count)
            p_diag = jax.tree.map(lambda nu: (1 - b1**c) * (jnp.sqrt(nu / (1 - b2**c)) + eps), adam.nu)
            rebuilt = jax.tree.map(lambda m, p: -lr * m / p, adam.mu, p_diag)
            np.testing.assert_allclose(ravel_pytree(rebuilt)[0], ravel_pytree(updates)[0], rtol=1e-12)
            hess = _flat_hessian(params, batch)
            s = 1 / np.sqrt(np.asarray(ravel_pytree(p_diag)[0]))
            expected.append((step, np.linalg.eigvalsh(hess)[::-1][:2], np.trace(hess),
                             np.linalg.eigvalsh(s[:, None] * hess * s[None, :]).max(),
                             np.linalg.eigvalsh(_flat_ggn(params, batch)).max()))
        params, opt_state = optax.apply_updates(params, updates), new_state
    assert len(traces) == traces_after_first  # compiled once: 9 more calls, 2 more records, no retrace
    records = tracker.records(tstate)
    np.testing.assert_array_equal(records.steps, [0, 4, 8])
    for i, (_, top2, trace, precond, ggn_top) in enumerate(expected):
        np.testing.assert_allclose(records.eigenvalues[i], top2, rtol=1e-8)
        assert np.all(records.residuals[i] < 1e-6)
        np.testing.assert_allclose(records.trace[i], trace, rtol=1e-8)
        np.testing.assert_allclose(records.preconditioned_sharpness[i], precond, rtol=1e-8)
        np.testing.assert_allclose(records.ggn_eigenvalue[i], ggn_top, rtol=1e-8)
    np.testing.assert_allclose(records.sharpness, [e[1][0] for e in expected], rtol=1e-8)
    assert list(records.density) == [4]
    density = records.density[4]
    np.testing.assert_allclose(density.weights.sum(axis=1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(density.nodes.max(), expected[1][1][0], rtol=1e-8)
    assert records.dropped == 0


def test_fit_records_curvature_every_k_steps():
    params, data = _params(), (np.asarray(X), np.asarray(Y))
    tracker = cv.CurvatureTracker(every=3, lanczos_steps=12, trace_matvecs=0, max_records=1)
    _, history = train.fit(_loss, params, optim.sgd(0.3), data, epochs=7, batch_size=16,
                           key=jax.random.PRNGKey(2), progress=False, tracker=tracker)
    records = history.curvature
    np.testing.assert_array_equal(records.steps, [0, 3, 6])  # max_records grown by fit to fit the run
    # the same full-batch GD by hand (the mean loss does not depend on the shuffle)
    p, reference = params, []
    for step in range(7):
        if step % 3 == 0:
            reference.append(np.linalg.eigvalsh(_flat_hessian(p, (X, Y))).max())
        p = jax.tree.map(lambda a, g: a - 0.3 * g, p, jax.grad(_loss)(p, (X, Y)))
    np.testing.assert_allclose(records.sharpness, reference, rtol=1e-7)


def test_overflow_is_counted_and_bad_input_rejected():
    tracker = cv.CurvatureTracker(_loss, every=1, lanczos_steps=4, trace_matvecs=0, max_records=2)
    update = jax.jit(tracker.update)
    tstate = tracker.init(_params(), jax.random.PRNGKey(0))
    for step in range(4):
        tstate = update(tstate, step, _params(), (X, Y), None)
    records = tracker.records(tstate)
    assert records.dropped == 2 and list(records.steps) == [0, 1]
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        cv.CurvatureTracker(_loss, every=0)
    with pytest.raises(ValueError, match="multiples of every"):
        cv.CurvatureTracker(_loss, every=10, density_steps=(5,))
    with pytest.raises(ValueError, match="trace_matvecs"):
        cv.CurvatureTracker(_loss, trace_matvecs=2)
    with pytest.raises(ValueError, match="no Adam state"):
        cv.CurvatureTracker(_loss, adam=cv.AdamPreconditioner()).update(tstate, 0, _params(), (X, Y), None)
    with pytest.raises(ValueError, match="no loss_fn"):
        cv.CurvatureTracker().update(tstate, 0, _params(), (X, Y), None)
    assert cv.adam_threshold(0.01, 0.9) == pytest.approx(3800.0, rel=1e-12)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        cv.adam_threshold(0.0)


def test_edge_of_stability_gd_sharpness_hovers_at_two_over_eta():
    spec = importlib.util.spec_from_file_location("edge_of_stability", ROOT / "examples" / "edge_of_stability.py")
    eos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eos)
    lr = 0.3
    steps, sharpness, losses = eos.sharpness_runs((lr,), steps=900, every=20, lanczos_steps=12)[lr]
    threshold = 2 / lr
    assert sharpness.max() > 1.2 * sharpness[0]  # progressive sharpening: rises above its start ...
    assert sharpness[:5].min() < 0.75 * threshold  # ... from well below 2/η
    tail = sharpness[-len(sharpness) // 3:]
    assert np.all(np.abs(tail / threshold - 1) < 0.15)  # hovers at 2/η ...
    assert abs(np.mean(tail) / threshold - 1) < 0.05
    above = np.flatnonzero(tail > threshold)  # ... exceeding it only transiently: back below after
    assert above.size and np.any(tail[above[0]:] < threshold)
    assert losses[-1] < 0.1 * losses[0]  # and keeps training


def _wide_params(hidden=12):
    k1, k2 = jax.random.split(jax.random.PRNGKey(4))
    return {"w": jax.random.normal(k1, (2, hidden)), "b": jnp.linspace(-0.5, 0.5, hidden),
            "v": jax.random.normal(k2, (hidden,))}


def test_warm_started_few_step_lanczos_tracks_the_dense_top_eigenvalue_and_compiles_once():
    traces = []

    def loss(params, batch):
        traces.append(1)
        return _loss(params, batch)

    params, batch = _wide_params(), (X, Y)
    hess = lambda p: _flat_hessian(p, batch)
    tracker = cv.CurvatureTracker(loss, every=1, k=1, lanczos_steps=4, trace_matvecs=0, max_records=12)
    update = jax.jit(tracker.update)
    tstate = tracker.init(params, jax.random.PRNGKey(0))
    reference = []
    for step in range(12):
        tstate = update(tstate, step, params, batch, None)
        if step == 0:
            traces_after_first = len(traces)
        reference.append(np.linalg.eigvalsh(hess(params)).max())
        params = jax.tree.map(lambda a, g: a - 0.05 * g, params, jax.grad(_loss)(params, batch))
    assert len(traces) == traces_after_first  # 11 more records, no retrace
    records = tracker.records(tstate)
    error = np.abs(records.sharpness / np.asarray(reference) - 1)
    assert np.all(error[4:] < 0.01), error  # 4 products per record, warm-started: within 1 %


def test_unrolled_lanczos_matches_dense_eigenvalues_residuals_and_breakdown():
    from gradkit.curvature.tracker import _top_eigenpairs, _unrolled_lanczos

    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    spectrum = np.concatenate([[9.0, 7.5, 6.0], np.linspace(-2, 3, 27)])
    a = (q * spectrum) @ q.T
    like = jnp.zeros(30)
    matvec = lambda v: jnp.asarray(a) @ v
    warm = jnp.asarray(q[:, :1].T + 0.3 * rng.normal(size=(1, 30)))
    for k, steps in ((1, 8), (2, 12)):
        values, residuals, vectors = _top_eigenpairs(matvec, like, jax.random.PRNGKey(1), k, steps,
                                                     warm, jnp.asarray(True))
        np.testing.assert_allclose(values, spectrum[:k], rtol=1e-3)
        for value, residual, u in zip(values, residuals, np.asarray(vectors)):
            np.testing.assert_allclose(np.linalg.norm(u), 1, rtol=1e-10)
            true = np.linalg.norm(a @ u - value * u) / abs(value)
            np.testing.assert_allclose(residual, true, rtol=1e-3, atol=1e-10)
    # a start inside a 3-dimensional invariant subspace: exact eigenvalues, then padding (α = α₀)
    start = jnp.asarray(q[:, :3].sum(axis=1) / np.sqrt(3))
    alphas, betas, basis, beta_last = _unrolled_lanczos(matvec, start, 6)
    tri = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    np.testing.assert_allclose(np.linalg.eigvalsh(tri[:3, :3])[::-1], spectrum[:3], rtol=1e-10)
    np.testing.assert_allclose(alphas[3:], alphas[0], rtol=0)
    np.testing.assert_allclose(betas[2:], 0, atol=0)
    assert float(beta_last) == 0 and np.all(np.asarray(basis[3:]) == 0)
    np.testing.assert_allclose(np.asarray(basis[:3]) @ np.asarray(basis[:3]).T, np.eye(3), atol=1e-12)

"""Compile once per kind of optimizer, not once per object (gradkit.lifting).

A loop ``for lr in lrs: run(f, adam(lr), ...)`` builds a new optimizer every call; these tests
count XLA backend compiles (``jax.monitoring``) over such loops in ``runs.run``,
``optim.minimize``, ``train.fit`` and the curvature tracker, check every cached result against
an independent reference (optax's own loop with the optimizer built for that call), and check
that optimizers differing in anything but numbers never share a program.
"""

from __future__ import annotations

import gc
import warnings

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradkit as gk
from _jax_counters import compiles, peak_rss_bytes
from gradkit import lifting


ROSEN = gk.landscapes.get("rosenbrock")
STARTS = jax.random.uniform(jax.random.PRNGKey(0), (16, 2), minval=-2, maxval=2)
STEPS = 60
LRS = (0.001, 0.002, 0.003, 0.004, 0.005)


def assert_matches_reference(res: gk.runs.RunResult, reference: np.ndarray) -> None:
    """Finite runs equal the reference loop's; the runner's diverged runs are exactly those whose
    reference went non-finite (the runner freezes them at their last finite point)."""
    blown = ~np.isfinite(reference).all(axis=1)
    np.testing.assert_array_equal(res.diverged, blown)
    np.testing.assert_allclose(res.final[~blown], reference[~blown], rtol=1e-12, atol=1e-14)


def optax_loop(f, opt: optax.GradientTransformation, starts: jax.Array, steps: int) -> np.ndarray:
    """The reference: optax's own update / apply_updates loop, jit(vmap(scan)), built for this call."""

    def one(x):
        def body(carry, _):
            x, s = carry
            u, s = opt.update(jax.grad(f)(x), s, x)
            return (optax.apply_updates(x, u), s), None

        return jax.lax.scan(body, (x, opt.init(x)), None, length=steps)[0][0]

    return np.asarray(jax.jit(jax.vmap(one))(starts))


KINDS = {
    "gradkit adam": lambda lr: gk.optim.adam(lr),
    "gradkit ema momentum": lambda lr: gk.optim.momentum(lr, 0.9, form="ema"),
    "optax adam": lambda lr: optax.adam(lr),
    "optax chain + schedule": lambda lr: optax.chain(optax.clip_by_global_norm(1.0),
                                                     optax.adam(optax.cosine_decay_schedule(lr, 40))),
    "optax inject_hyperparams": lambda lr: optax.inject_hyperparams(optax.rmsprop)(lr, decay=0.8),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_runs_compiles_once_for_five_learning_rates_and_matches_optax_loop(kind):
    make = KINDS[kind]
    gk.runs.run(ROSEN, make(0.01), STARTS[:1], 3)  # warm everything outside the program under test
    before = compiles()
    results = [gk.runs.run(ROSEN, make(lr), STARTS, STEPS, tol=1e-6, f_star=0.0) for lr in LRS]
    assert compiles() - before <= 1, f"{kind}: {compiles() - before} compiles for 5 learning rates"
    for lr, res in zip(LRS[::2], results[::2]):  # each cached result is the reference loop's, lr by lr
        assert_matches_reference(res, optax_loop(ROSEN, make(lr), STARTS, STEPS))
    assert not np.allclose(results[0].final, results[-1].final)  # the learning rate really changed


def test_minimize_and_newton_root_compile_once_for_fresh_optimizers_and_objectives():
    R5 = gk.landscapes.get("rosenbrock", dim=5)
    x0 = jnp.zeros(5)
    gk.optim.minimize(R5, x0, gk.optim.newton_cg(cg_tol=0.5), maxiter=2)
    before = compiles()
    for tol in (0.1, 0.2, 0.3):  # a fresh Newton-CG (another CG tolerance) every call
        res = gk.optim.minimize(R5, x0, gk.optim.newton_cg(cg_tol=tol), maxiter=200, gtol=1e-9)
        assert int(res.code) == gk.results.Code.CONVERGED
        np.testing.assert_allclose(res.params, np.ones(5), atol=1e-7)
    assert compiles() == before
    # first-order: adam(lr) for five learning rates, the final point = optax's loop, lr by lr
    quad = lambda x: jnp.sum((x - 1.0) ** 2 * jnp.arange(1.0, 6.0))
    references = [optax_loop(quad, optax.adam(lr * 10), x0[None], 40)[0] for lr in LRS]
    gk.optim.minimize(quad, x0, optax.adam(0.5), maxiter=1)
    before = compiles()
    params = [gk.optim.minimize(quad, x0, optax.adam(lr * 10), maxiter=40, gtol=0.0).params for lr in LRS]
    assert compiles() == before
    for got, want in zip(params, references):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    # a fresh lambda with the same code and values is the same objective
    def cube_minus(c):
        return lambda x: x**3 - c

    gk.optim.newton_root(cube_minus(2.0), 1.0)
    before = compiles()
    roots = [float(gk.optim.newton_root(cube_minus(2.0), x).x) for x in (1.5, 2.0, 3.0)]
    assert compiles() == before
    np.testing.assert_allclose(roots, 2 ** (1 / 3), rtol=1e-15)


def test_fit_and_tracker_compile_once_for_fresh_optimizers():
    key = jax.random.PRNGKey(1)
    X = jax.random.normal(key, (64, 4))
    y = X @ jnp.arange(1.0, 5.0)
    loss = lambda p, b: jnp.mean((b[0] @ p["w"] + p["b"] - b[1]) ** 2)
    p0 = {"w": jnp.zeros(4), "b": jnp.zeros(())}
    tracker = lambda: gk.curvature.CurvatureTracker(every=4, trace_matvecs=0, lanczos_steps=5)

    def fit(lr):
        return gk.train.fit(loss, p0, optax.adam(lr), (X, y), 2, 16, key, progress=False, tracker=tracker())

    fit(0.5)
    before = compiles()
    outs = [fit(lr * 100) for lr in LRS]
    assert compiles() == before, f"{compiles() - before} compiles in 4 fits with fresh optimizers"
    # the cached step is optax's step: a hand loop over the same batches
    params, history = outs[2]
    opt = optax.adam(LRS[2] * 100)
    ref, state = p0, opt.init(p0)
    for epoch in range(2):
        for batch in gk.data.minibatches(jax.random.fold_in(key, epoch), (X, y), 16):
            u, state = opt.update(jax.grad(loss)(ref, batch), state, ref)
            ref = optax.apply_updates(ref, u)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    # the tracker's first record (step 0, first batch) is the top eigenvalue of that batch's Hessian
    batch = next(iter(gk.data.minibatches(jax.random.fold_in(key, 0), (X, y), 16)))
    flat, unravel = jax.flatten_util.ravel_pytree(p0)
    top = float(jnp.linalg.eigvalsh(jax.hessian(lambda v: loss(unravel(v), batch))(flat))[-1])
    assert history.curvature.steps[0] == 0
    assert history.curvature.eigenvalues[0, 0] == pytest.approx(top, rel=1e-8)


def test_non_numeric_differences_never_share_a_program():
    """Another transformation in a chain, another mask function, momentum on/off: each its own
    program, each equal to its own optax reference."""
    def mask_a(p):
        return jax.tree.map(lambda x: True, p)

    def mask_b(p):
        return jax.tree.map(lambda x: False, p)

    variants = [
        lambda: optax.chain(optax.adam(0.01)),
        lambda: optax.chain(optax.clip(0.001), optax.adam(0.01)),
        lambda: optax.chain(optax.masked(optax.sgd(0.01), mask_a)),
        lambda: optax.chain(optax.masked(optax.sgd(0.01), mask_b)),
        lambda: optax.sgd(0.01),
        lambda: optax.sgd(0.01, momentum=0.9),
    ]
    references = [optax_loop(ROSEN, make(), STARTS, 20) for make in variants]
    before = compiles()
    for make, reference in zip(variants, references):
        assert_matches_reference(gk.runs.run(ROSEN, make(), STARTS, 20), reference)
    assert compiles() - before == len(variants)  # one program each, none shared
    assert len({lifting.lift(make())[0] for make in variants}) == len(variants)


class Config:
    """A user's settings object: compared by value (``__eq__``) but not hashable."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and other.scale == self.scale

    __hash__ = None


def scaled_sgd(config: Config) -> optax.GradientTransformation:
    """A user-defined optimizer closing over a non-hashable object."""

    def update(updates, state, params=None):
        return jax.tree.map(lambda g: -config.scale * g, updates), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def test_an_optimizer_over_a_non_hashable_object_misses_the_cache_with_one_warning():
    gk.runs.run(ROSEN, scaled_sgd(Config(0.001)), STARTS, 5)
    before = compiles()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = gk.runs.run(ROSEN, scaled_sgd(Config(0.001)), STARTS, 5)
        b = gk.runs.run(ROSEN, scaled_sgd(Config(0.002)), STARTS, 5)
        c = gk.runs.run(ROSEN, scaled_sgd(Config(0.003)), STARTS, 5)
    named = [w for w in caught if "Config" in str(w.message)]
    assert len(named) == 1 and issubclass(named[0].category, RuntimeWarning)  # once, naming why
    assert compiles() - before == 3  # a miss every time: never a reuse by an equal-looking object
    for scale, res in ((0.001, a), (0.002, b), (0.003, c)):
        assert_matches_reference(res, optax_loop(ROSEN, optax.sgd(scale), STARTS, 5))
    # the same object reuses its program
    config = Config(0.004)
    opt = scaled_sgd(config)
    gk.runs.run(ROSEN, opt, STARTS, 5)
    before = compiles()
    gk.runs.run(ROSEN, scaled_sgd(config), STARTS, 5)
    assert compiles() == before


def test_python_branching_on_a_hyperparameter_falls_back_to_keying_it_by_value():
    def clipped_sgd(lr: float) -> optax.GradientTransformation:
        def update(updates, state, params=None):
            if lr > 0.0025:  # Python control flow on the hyperparameter: cannot be traced
                updates = jax.tree.map(lambda g: jnp.clip(g, -1.0, 1.0), updates)
            return jax.tree.map(lambda g: -lr * g, updates), state

        return optax.GradientTransformation(lambda p: optax.EmptyState(), update)

    references = {lr: optax_loop(ROSEN, clipped_sgd(lr), STARTS, 10) for lr in LRS}
    before = compiles()
    for lr in LRS + LRS:
        assert_matches_reference(gk.runs.run(ROSEN, clipped_sgd(lr), STARTS, 10), references[lr])
    assert compiles() - before <= len(LRS)  # one per distinct value, none for a repeated one


def test_two_hundred_calls_with_fresh_optimizers_compile_once_and_keep_memory_flat():
    gk.runs.run(ROSEN, gk.optim.adam(0.01), STARTS, 10)
    gk.optim.minimize(ROSEN, STARTS[0], optax.sgd(0.01), maxiter=3)
    gc.collect()
    before, arrays, rss = compiles(), len(jax.live_arrays()), peak_rss_bytes()
    for i in range(200):
        gk.runs.run(ROSEN, gk.optim.adam(0.001 + 1e-5 * i), STARTS, 10)
        gk.optim.minimize(ROSEN, STARTS[0], optax.sgd(0.001 + 1e-5 * i), maxiter=3)
    gc.collect()
    assert compiles() == before
    assert len(jax.live_arrays()) - arrays < 20
    assert peak_rss_bytes() - rss < 24 * 2**20  # a compile per call would add megabytes each


def test_lift_rebuilds_an_equivalent_object_and_keys_what_it_computes():
    spec_a, leaves_a = lifting.lift(optax.adam(0.1))
    spec_b, leaves_b = lifting.lift(optax.adam(0.2, b1=0.8))
    assert spec_a == spec_b and hash(spec_a) == hash(spec_b) and spec_a is spec_b  # interned
    assert 0.2 in [abs(v) for v in leaves_b] and 0.8 in leaves_b
    rebuilt = spec_a.rebuild(leaves_b)
    p = {"w": jnp.arange(3.0)}
    g = {"w": jnp.array([0.3, -0.2, 0.1])}
    want, _ = optax.adam(0.2, b1=0.8).update(g, optax.adam(0.2, b1=0.8).init(p))
    got, _ = rebuilt.update(g, rebuilt.init(p))
    np.testing.assert_array_equal(got["w"], want["w"])
    # ints (shapes, counts) and strings are keyed by value
    assert lifting.lift(optax.lbfgs(memory_size=5))[0] != lifting.lift(optax.lbfgs(memory_size=6))[0]
    assert lifting.lift(gk.optim.momentum(0.1, 0.9, form="ema"))[0] != lifting.lift(gk.optim.momentum(0.1, 0.9))[0]
    # objectives: floats by value, arrays lifted
    data = np.arange(4.0)

    def objective(scale):
        return lambda x: jnp.sum((x - data) ** 2) * scale

    f1, f2 = objective(2.0), objective(3.0)
    assert lifting.lift(f1, floats=False)[0] != lifting.lift(f2, floats=False)[0]
    assert lifting.lift(f1, floats=True)[0] == lifting.lift(f2, floats=True)[0]
    spec, leaves = lifting.lift(objective(2.0), floats=False)
    assert len(leaves) == 1 and leaves[0] is data
    # a function that refers to itself through its closure is rebuilt whole
    def outer(scale):
        def fact(n):
            return scale if n <= 1 else n * fact(n - 1)
        return fact
    spec, leaves = lifting.lift(outer(2.0))
    assert spec.rebuild((3.0,))(4) == 72.0 and spec.rebuild(leaves)(4) == 48.0


GLOBAL_SCALE = 0.001


def global_scaled_sgd() -> optax.GradientTransformation:
    """An optimizer that reads a module global (as notebook code does)."""

    def update(updates, state, params=None):
        return jax.tree.map(lambda g: -GLOBAL_SCALE * g, updates), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def test_a_rebound_global_is_never_a_wrong_reuse():
    global GLOBAL_SCALE
    try:
        for scale in (0.001, 0.002, 0.001):
            GLOBAL_SCALE = scale
            res = gk.runs.run(ROSEN, global_scaled_sgd(), STARTS, 5)
            assert_matches_reference(res, optax_loop(ROSEN, optax.sgd(scale), STARTS, 5))
    finally:
        GLOBAL_SCALE = 0.001

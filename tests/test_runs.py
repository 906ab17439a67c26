import subprocess
import sys
import textwrap

import _xla_env
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import landscapes, optim, runs
from gradkit.runs.verdicts import _Marks

ROSEN = landscapes.get("rosenbrock")
STARTS = jnp.array([[-1.5, 2.0], [0.0, 0.0], [1.2, 1.2], [-0.5, -1.0], [2.0, -2.0]])


def python_loop(f, opt, x0, steps):
    """optax's plain loop from one start, a Python step at a time (its step jitted: the same
    update and apply_updates, milliseconds instead of seconds of eager dispatch; nothing of the
    runner's vmap, scan or chunking)."""

    @jax.jit
    def step(x, s):
        u, s = opt.update(jax.grad(f)(x), s, x)
        return optax.apply_updates(x, u), s

    x, s, path = jnp.asarray(x0), opt.init(jnp.asarray(x0)), [jnp.asarray(x0)]
    for _ in range(steps):
        x, s = step(x, s)
        path.append(x)
    return np.array(path)


def test_run_matches_a_plain_python_loop_and_records_consistently():
    res = runs.run(ROSEN, optim.adam(0.05), STARTS, 60, record="trajectory", tol=1e-3, f_star=0.0)
    assert res.trajectory.shape == (5, 61, 2) and res.values.shape == (5, 61)
    for i, x0 in enumerate(STARTS):
        ref = python_loop(ROSEN, optim.adam(0.05), x0, 60)
        np.testing.assert_allclose(res.trajectory[i], ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res.values[i], jax.vmap(ROSEN)(jnp.asarray(ref)), rtol=1e-12, atol=1e-14)
        gap = np.abs(np.asarray(jax.vmap(ROSEN)(jnp.asarray(ref)))) <= 1e-3
        assert res.first_hit[i] == (int(np.argmax(gap)) if gap.any() else -1)
    np.testing.assert_allclose(res.final, res.trajectory[:, -1])
    grad_norms = np.linalg.norm(jax.vmap(jax.grad(ROSEN))(jnp.asarray(res.trajectory[2])), axis=-1)
    np.testing.assert_allclose(res.grad_norms[2], grad_norms, rtol=1e-10)


def test_record_stride_and_final_only_agree():
    full = runs.run(ROSEN, optim.momentum(1e-3, 0.9), STARTS, 100, record="trajectory")
    strided = runs.run(ROSEN, optim.momentum(1e-3, 0.9), STARTS, 100, record=20)
    final = runs.run(ROSEN, optim.momentum(1e-3, 0.9), STARTS, 100)
    np.testing.assert_array_equal(strided.steps_recorded, [0, 20, 40, 60, 80, 100])
    np.testing.assert_array_equal(full.diverged, [False, False, False, False, True])
    np.testing.assert_array_equal(strided.diverged, full.diverged)
    np.testing.assert_array_equal(final.diverged, full.diverged)
    ok = ~full.diverged  # diverged runs freeze at their last finite check point, which differs by mode
    np.testing.assert_allclose(strided.trajectory[ok], full.trajectory[ok, ::20], rtol=1e-13)
    np.testing.assert_allclose(final.final[ok], full.final[ok], rtol=1e-13)
    np.testing.assert_array_equal(final.first_hit, full.first_hit)
    assert np.all(np.isfinite(final.final)) and np.all(np.isfinite(strided.trajectory))
    assert final.trajectory is None
    with pytest.raises(ValueError, match="divide"):
        runs.run(ROSEN, optim.sgd(1e-3), STARTS, 100, record=30)


def test_gradient_norm_tolerance_without_f_star():
    res = runs.run(landscapes.get("seed_quadratic"), optim.sgd(0.2), STARTS, 200, tol=1e-3)
    # GD on 0.1 w1² + 2 w2²: ||g|| <= 1e-3 first when 0.2 |w1| (1 - 0.04)^k ... check against a loop
    for i, x0 in enumerate(STARTS):
        path = python_loop(landscapes.get("seed_quadratic"), optim.sgd(0.2), x0, 200)
        norms = np.linalg.norm(jax.vmap(jax.grad(landscapes.get("seed_quadratic")))(jnp.asarray(path)), axis=-1)
        assert res.first_hit[i] == int(np.argmax(norms <= 1e-3))


def test_divergent_run_is_flagged_frozen_and_does_not_poison_neighbours():
    starts = jnp.array([[0.5, 0.5], [50.0, -50.0], [1.1, 0.9]])
    res = runs.run(ROSEN, optim.sgd(1e-3), starts, 50, record="trajectory")
    assert res.diverged.tolist() == [False, True, False]
    assert np.all(np.isfinite(res.final)) and np.all(np.isfinite(res.trajectory))
    for i in (0, 2):
        solo = runs.run(ROSEN, optim.sgd(1e-3), starts[i : i + 1], 50)
        np.testing.assert_array_equal(solo.final[0], res.final[i])
    # frozen: the diverged run's recorded points stop changing
    last = res.trajectory[1, -1]
    assert np.all(res.trajectory[1, -5:] == last)


def test_final_mode_checks_every_100_steps_and_after_the_last_one():
    """SGD (lr 1) on f(x) = x walks x_k = x_0 - k; f turns NaN below -220.  With 250 steps the
    checks fall at steps 100, 200 and 250.  From 0 the run diverges at step 221 (in the 50-step
    tail) and is frozen at its step-200 point; from -100 it diverges at step 121, frozen at its
    step-100 point.  First hits of |f - (-137)| <= 0.5 are exact across block boundaries and
    survive a later divergence; leaving the tolerance again is not converging."""

    def walk(x):
        return jnp.sum(jnp.where(x < -220.0, jnp.nan, x))

    starts = jnp.array([[0.0], [100.0], [-100.0]])
    res = runs.run(walk, optim.sgd(1.0), starts, 250, tol=0.5, f_star=-137.0)
    assert res.diverged.tolist() == [True, False, True]
    np.testing.assert_array_equal(res.final[:, 0], [-200.0, -150.0, -200.0])
    np.testing.assert_array_equal(res.final_value, [-200.0, -150.0, -200.0])
    np.testing.assert_array_equal(res.first_hit, [137, 237, 37])
    # run 1 touches the tolerance at step 237 and walks on: ever hit, not converged, never settled
    np.testing.assert_array_equal(res.ever_hit, [False, True, False])
    np.testing.assert_array_equal(res.converged, [False, False, False])
    np.testing.assert_array_equal(res.settled_step, [-1, -1, -1])


def test_sweep_equals_separate_runs_and_summarises():
    makers = {"adam": optim.adam, "momentum": optim.momentum}
    grids = {"adam": {"learning_rate": [0.01, 0.1]}, "momentum": {"learning_rate": [1e-4, 1e-3], "beta": [0.5, 0.9]}}
    sw = runs.sweep(ROSEN, makers, STARTS, grids, 200, tol=1e-2, f_star=0.0)
    assert len(sw.grids["momentum"]) == 4 and sw.results["momentum"].final.shape == (20, 2)
    for k, cfg in enumerate(sw.grids["momentum"]):
        solo = runs.run(ROSEN, optim.momentum(cfg["learning_rate"], cfg["beta"]), STARTS, 200, tol=1e-2, f_star=0.0)
        np.testing.assert_allclose(sw.results["momentum"].final[k * 5 : (k + 1) * 5], solo.final, rtol=1e-12)
        np.testing.assert_array_equal(sw.per_config("momentum")[k], solo.first_hit)
    rows = sw.summary()
    assert len(rows) == 6
    adam_hits = sw.per_config("adam")
    adam_conv = sw.per_config("adam", "converged")
    for row, hits, conv in zip([r for r in rows if r["optimizer"] == "adam"], adam_hits, adam_conv):
        assert row["ever_hit"] == pytest.approx(np.mean(hits >= 0))
        assert row["converged"] == pytest.approx(np.mean(conv))


def test_chunking_and_padding_give_the_same_answer_and_the_bar_counts_run_steps(monkeypatch):
    import tqdm.auto

    bars = []

    class Bar:
        def __init__(self, total, **kwargs):
            self.total, self.n, self.closed = total, 0, False
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    starts = runs.start_grid(ROSEN.domain, 7)  # 49 runs
    whole = runs.run(ROSEN, optim.adam(0.05), starts, 100, tol=1e-2, f_star=0.0)
    chunked = runs.run(ROSEN, optim.adam(0.05), starts, 100, tol=1e-2, f_star=0.0, chunk_size=10, progress=True)
    for field in ("final", "first_hit", "settled_step", "ended_within", "cost", "cost_to_settle", "diverged"):
        np.testing.assert_array_equal(getattr(whole, field), getattr(chunked, field))
    assert len(bars) == 1 and bars[0].total == 49 * 100 and bars[0].n == 49 * 100 and bars[0].closed


def test_pytree_starts():
    def f(p):
        return jnp.sum((p["a"] - 1.0) ** 2) + (p["b"] + 2.0) ** 2

    starts = {"a": jnp.zeros((4, 3)), "b": jnp.arange(4.0)}
    res = runs.run(f, optim.adam(0.1), starts, 300, tol=1e-6, f_star=0.0)
    np.testing.assert_allclose(res.final["a"], np.ones((4, 3)), atol=1e-2)
    assert res.final["b"].shape == (4,)


def test_trajectory_mode_refuses_what_would_not_fit():
    with pytest.raises(ValueError, match="GB"):
        runs.run(ROSEN, optim.sgd(1e-3), jnp.zeros((10_000, 2)), 1000, record="trajectory", max_bytes=10**8)
    assert runs.estimate_bytes(10**6, 1000, 2, "trajectory") == 10**6 * 1001 * 4 * 4


def test_reproducible_bit_for_bit():
    a = runs.run(ROSEN, optim.adasmooth(0.01), STARTS, 100, record=10)
    b = runs.run(ROSEN, optim.adasmooth(0.01), STARTS, 100, record=10)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)


def test_bad_arguments():
    with pytest.raises(ValueError, match="record"):
        runs.run(ROSEN, optim.sgd(0.1), STARTS, 10, record="every")
    with pytest.raises(ValueError, match="steps"):
        runs.run(ROSEN, optim.sgd(0.1), STARTS, 0)
    with pytest.raises(ValueError, match="values for"):
        runs.run_batch(ROSEN, optim.sgd, STARTS, 10, {"learning_rate": jnp.ones(3)})


def test_sharded_over_eight_devices_matches_single_device(tmp_path):
    script = textwrap.dedent("""
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        from gradkit import runs, optim, landscapes
        f = landscapes.get("himmelblau")
        starts = runs.start_grid(f.domain, 9)  # 81 runs: padded to a multiple of the devices
        res = runs.sweep(f, {"adam": optim.adam}, starts, {"adam": {"learning_rate": [0.01, 0.1]}}, 200,
                         tol=1e-6, f_star=0.0)
        r = res.results["adam"]
        np.savez(OUT, final=r.final, hit=r.first_hit, settled=r.settled_step, cost=r.cost_to_settle,
                 n=jax.device_count())
    """)
    outs = {}
    for count in (1, 8):
        env = _xla_env.with_devices(count)
        out = tmp_path / f"d{count}.npz"
        subprocess.run([sys.executable, "-c", script.replace("OUT", repr(str(out)))], env=env, check=True,
                       timeout=300)
        outs[count] = np.load(out)
    assert int(outs[8]["n"]) == 8 and int(outs[1]["n"]) == 1
    np.testing.assert_array_equal(outs[1]["final"], outs[8]["final"])
    np.testing.assert_array_equal(outs[1]["hit"], outs[8]["hit"])
    np.testing.assert_array_equal(outs[1]["settled"], outs[8]["settled"])
    np.testing.assert_array_equal(outs[1]["cost"], outs[8]["cost"])


def test_nearest_minimum_basins():
    him = landscapes.get("himmelblau")
    pts = np.array(him.minima) + 1e-3
    np.testing.assert_array_equal(runs.nearest_minimum(pts, him.minima), [0, 1, 2, 3])
    assert runs.nearest_minimum(np.zeros((1, 2)), him.minima).tolist() == [-1]


# ---------------------------------------------------------------------------- verdicts


def verdicts_from(within: np.ndarray) -> tuple[int, int, bool]:
    """Reference first hit / settled step / ended within from a per-step boolean path."""
    first = int(np.argmax(within)) if within.any() else -1
    if not within[-1]:
        return first, -1, False
    outside = np.flatnonzero(~within)
    return first, int(outside[-1] + 1) if outside.size else 0, True


def test_settled_step_first_hit_and_ended_within_against_the_path():
    """Heavy-ball momentum on the seed quadratic oscillates into and out of the tolerance: the
    verdicts of a final-state run equal those read off the recorded path (and a Python loop)."""
    quad = landscapes.get("seed_quadratic")
    starts = jnp.array([[-5.0, -2.0], [3.0, 1.0], [0.5, -0.2], [0.0, 0.0]])
    opt = optim.momentum(0.3, 0.85)
    res = runs.run(quad, opt, starts, 60, tol=1e-2, f_star=0.0)
    crossings = 0
    for i, x0 in enumerate(starts):
        values = np.asarray(jax.vmap(quad)(jnp.asarray(python_loop(quad, opt, x0, 60))))
        within = np.abs(values) <= 1e-2
        crossings += int(np.sum(within[1:] != within[:-1]))
        first, settled, ended = verdicts_from(within)
        assert (res.first_hit[i], res.settled_step[i], res.ended_within[i]) == (first, settled, ended)
    assert crossings > 4  # the case exercises leaving the tolerance after touching it
    assert res.settled_step[3] == 0 and res.first_hit[3] == 0
    np.testing.assert_array_equal(res.converged, res.ended_within & ~res.diverged)
    np.testing.assert_array_equal(res.ever_hit, res.first_hit >= 0)
    assert np.all(res.ever_hit >= res.converged) and np.all(res.settled_step >= res.first_hit)
    with pytest.warns(DeprecationWarning):
        np.testing.assert_array_equal(res.hit_step, res.first_hit)


def test_relative_and_gradient_tolerances():
    quad = landscapes.get("seed_quadratic")
    starts = jnp.array([[-5.0, -2.0], [3.0, 1.0]])
    absolute = runs.run(quad, optim.sgd(0.2), starts, 150, tol=3e-3, f_star=0.0)
    relative = runs.run(quad, optim.sgd(0.2), starts, 150, tol=1e-3, rtol=1e-3, f_scale=2.0, f_star=0.0)
    np.testing.assert_array_equal(relative.settled_step, absolute.settled_step)
    assert np.all(absolute.settled_step > 0)
    # gradient test: ||g|| <= tol + rtol ||g(x0)||, read off a recorded path
    res = runs.run(quad, optim.sgd(0.2), starts, 150, record="trajectory", tol=0.0, rtol=1e-2)
    for i in range(2):
        within = res.grad_norms[i] <= 1e-2 * res.grad_norms[i, 0]
        assert (res.first_hit[i], res.settled_step[i]) == verdicts_from(within)[:2]
    assert np.all(res.settled_step > 0)


def test_distance_to_known_minimizers():
    him = landscapes.get("himmelblau")
    mins = np.asarray(him.minima, dtype=np.float64)
    starts = jnp.array([[0.0, 0.0], [-1.0, 3.0], [-4.0, -4.0]])
    res = runs.run(him, optim.adam(0.05), starts, 150, record="trajectory", xtol=0.05, minimizers=mins)
    dist = np.linalg.norm(res.trajectory[:, :, None, :] - mins[None, None], axis=-1).min(axis=-1)
    np.testing.assert_allclose(res.final_distance, dist[:, -1], rtol=1e-12)
    for i in range(3):
        assert (res.first_hit[i], res.settled_step[i]) == verdicts_from(dist[i] <= 0.05)[:2]
    assert np.all(np.isnan(runs.run(him, optim.adam(0.05), starts, 5).final_distance))


# ---------------------------------------------------------------------------- cost


def loop_costs(f, opt, x0, steps, per_step, **extra):
    """Reference: a plain Python loop, per-step gradient-equivalents read by ``per_step(old, new)``
    from the optimizer's own state; returns the cumulative cost at every iterate and the values."""
    opt = optax.with_extra_args_support(opt)
    x, s = jnp.asarray(x0), opt.init(jnp.asarray(x0))
    costs, values = [1.0], [float(f(x))]

    @jax.jit
    def step(x, s):
        v, g = jax.value_and_grad(f)(x)
        u, s2 = opt.update(g, s, x, value_fn=f, value=v, grad=g, **extra)
        return optax.apply_updates(x, u), s2, per_step(s, s2)

    for _ in range(steps):
        x, s, cost = step(x, s)
        costs.append(costs[-1] + float(cost))
        values.append(float(f(x)))
    return np.array(costs), np.array(values)


@pytest.mark.parametrize("name", ["sgd", "sam", "forward", "newton_cg", "lbfgs", "sophia", "gradkit_sophia",
                                  "adahessian"])
def test_cost_in_gradient_equivalents_matches_the_optimizer_state(name):
    import optax.contrib

    quad = landscapes.get("seed_quadratic")
    starts = jnp.array([[-5.0, -2.0], [1.0, 3.0]])
    steps = 12
    cases = {
        "sgd": (optim.sgd(0.3), lambda o, n: 1.0),
        "sam": (optim.sam(optim.sgd(0.3), rho=0.01), lambda o, n: 2.0),  # gradient at w and at w + eps
        "forward": (optim.forward_gradient_descent(optim.sgd(0.1), jax.random.PRNGKey(0), num_tangents=3),
                    lambda o, n: 3.0),  # three JVPs, the runner's gradient unused
        "newton_cg": (optim.newton_cg(), lambda o, n: 1.0 + 2.0 * (n.hvp_count - o.hvp_count)
                      + 0.5 * n.line_search.info.num_linesearch_steps),
        "lbfgs": (optax.lbfgs(), lambda o, n: 1.0 * n[-1].info.num_linesearch_steps),
        "sophia": (optax.contrib.sophia(0.05, update_interval=5), lambda o, n: 1.0 + 2.0 * (o[0].count % 5 == 0)),
        "gradkit_sophia": (optim.sophia(0.05, update_interval=5), lambda o, n: 1.0 + 2.0 * (o.count % 5 == 0)),
        "adahessian": (optim.adahessian(0.05), lambda o, n: 3.0),  # gradient + one HVP probe
    }
    opt, per_step = cases[name]
    res = runs.run(quad, opt, starts, steps, tol=1e-6, f_star=0.0)
    for i, x0 in enumerate(starts):
        extra = {"obj_fn": quad} if "sophia" in name else {}
        costs, values = loop_costs(quad, opt, x0, steps, per_step, **extra)
        assert res.cost[i] == pytest.approx(costs[-1], rel=1e-12)
        _, settled, ended = verdicts_from(np.abs(values) <= 1e-6)
        assert res.settled_step[i] == settled
        assert res.cost_to_settle[i] == (pytest.approx(costs[settled], rel=1e-12) if ended else np.inf)
    if name in ("newton_cg", "lbfgs"):
        assert np.all(res.converged)  # second-order methods settle on a quadratic within 12 steps


@pytest.mark.parametrize("length", [1, 5, 31, 32])
def test_marks_point_by_point_and_from_flag_words_match_the_reference_verdicts(length):
    """The runner's bookkeeping (first hit, last miss) folded point by point (``advance``) and
    32 points at a time from a uint32 word of flags (``flush``) gives the reference verdicts of
    random in/out paths, including paths that start within and end outside."""
    rng = np.random.default_rng(length)
    n_groups = 3
    paths = rng.random((64, 1 + n_groups * length)) < rng.random((64, 1))
    paths[0], paths[1] = False, True
    paths[2, -1], paths[3, :-1] = False, True  # within until the very last point; within only there
    advance = jax.jit(jax.vmap(_Marks.advance, in_axes=(_Marks(0, 0, None), 0),
                               out_axes=_Marks(0, 0, None)))
    flush = jax.jit(jax.vmap(lambda m, b: m.flush(b, length), in_axes=(_Marks(0, 0, None), 0),
                             out_axes=_Marks(0, 0, None)))
    start = jax.vmap(_Marks.start, out_axes=_Marks(0, 0, None))(jnp.asarray(paths[:, 0]))
    stepwise, grouped = start, start
    for k in range(1, paths.shape[1]):
        stepwise = advance(stepwise, jnp.asarray(paths[:, k]))
    for g in range(n_groups):
        words = np.zeros(64, np.uint32)
        for k in range(1 + g * length, 1 + (g + 1) * length):  # the first point in the highest bit
            words = (words << np.uint32(1)) | paths[:, k].astype(np.uint32)
        grouped = flush(grouped, jnp.asarray(words))
    steps = paths.shape[1] - 1
    for marks in (stepwise, grouped):
        assert int(marks.t) == steps + 1
        for i, path in enumerate(paths):
            first, settled, ended = verdicts_from(path)
            assert int(marks.hit[i]) == first
            assert (int(marks.miss[i]) + 1 if int(marks.miss[i]) != steps else -1) == settled


def test_sweep_mixes_factories_and_extra_args_instances_and_best_is_held_out():
    quad = landscapes.get("seed_quadratic")
    starts = jnp.array([[-5.0, -2.0], [3.0, 1.0], [1.0, -1.5], [-2.0, 2.5], [4.0, 0.5], [-1.0, -1.0]])
    makers = {"sam": lambda learning_rate: optim.sam(optim.sgd(learning_rate), rho=0.01), "lbfgs": optax.lbfgs()}
    lrs = [0.05, 0.2, 0.45]
    sw = runs.sweep(quad, makers, starts, {"sam": {"learning_rate": lrs}}, 40, tol=1e-6, f_star=0.0)
    assert sw.grids["lbfgs"] == [{}] and sw.results["lbfgs"].final.shape == (6, 2)
    solo = runs.run(quad, optax.lbfgs(), starts, 40, tol=1e-6, f_star=0.0)
    np.testing.assert_array_equal(sw.results["lbfgs"].settled_step, solo.settled_step)
    np.testing.assert_array_equal(sw.results["lbfgs"].cost, solo.cost)
    tune, held = sw.halves()
    np.testing.assert_array_equal(tune, [0, 2, 4]) and np.testing.assert_array_equal(held, [1, 3, 5])
    conv = sw.per_config("sam", "converged")
    settled = np.where(conv, sw.per_config("sam", "settled_step"), 40)
    k = min(range(3), key=lambda j: (-conv[j, tune].mean(), np.median(settled[j, tune])))
    best = {r["optimizer"]: r for r in sw.best()}
    assert best["sam"]["learning_rate"] == lrs[k]
    assert best["sam"]["converged"] == pytest.approx(conv[k, held].mean())
    assert best["sam"]["median_settled"] == pytest.approx(np.median(settled[k, held]))
    assert best["sam"]["at_grid_edge"] == (k != 1) and best["lbfgs"]["at_grid_edge"] is False
    cost = np.where(conv, sw.per_config("sam", "cost_to_settle"), sw.per_config("sam", "cost"))
    assert best["sam"]["median_cost"] == pytest.approx(np.median(cost[k, held]))


def test_a_registered_cost_model_counts_a_new_state_type(monkeypatch):
    """A user optimizer whose state type is registered: three extra gradients per step and a
    traced count read from its state (here: one HVP on every other step)."""
    from typing import NamedTuple

    class TwiceState(NamedTuple):
        count: jax.Array

    def twice(lr):
        def init(params):
            return TwiceState(jnp.zeros([], jnp.int32))

        def update(g, state, params=None):
            return jax.tree.map(lambda a: -lr * a, g), TwiceState(state.count + 1)

        return optax.GradientTransformation(init, update)

    model = runs.CostModel(per_step=3.0, counted=lambda old, new: 2.0 * (old.count % 2 == 0))
    monkeypatch.setitem(runs.COST_MODELS, TwiceState, lambda opt, params: model)
    quad = landscapes.get("seed_quadratic")
    res = runs.run(quad, twice(0.3), jnp.array([[1.0, 1.0]]), 7, tol=1e-3, f_star=0.0)
    # start 1, then per step 1 (the runner's gradient) + 3 + 2 on steps 0, 2, 4, 6
    assert res.cost[0] == 1 + 7 * 4 + 4 * 2


def test_float32_lbfgs_needs_a_relative_gradient_tolerance():
    """In float32 optax.lbfgs stalls on the six-hump camel with ||g|| above an absolute 1e-6 from
    some starts; ``rtol`` (relative to ||g(x0)||) is the verdict that float32 can meet."""
    camel = landscapes.get("six_hump_camel")
    starts = runs.start_grid(camel.domain, 3).astype(jnp.float32)
    relative = runs.run(camel, optax.lbfgs(), starts, 60, tol=0.0, rtol=1e-4)
    assert relative.final.dtype == np.float32
    g0 = np.linalg.norm(np.asarray(jax.vmap(jax.grad(camel))(starts)), axis=-1)
    np.testing.assert_array_equal(relative.ended_within, relative.final_grad_norm <= 1e-4 * g0)
    # the verdict does not change the path: an absolute 1e-6 on the same runs fails some of them
    assert np.mean(relative.final_grad_norm <= 1e-6) < 1.0 and relative.converged.all()

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import landscapes, optim, runs
from gradkit.cli import main

ROSEN = landscapes.get("rosenbrock")
STARTS = jnp.array([[-1.5, 2.0], [0.0, 0.0], [1.2, 1.2], [-0.5, -1.0], [2.0, -2.0]])


def python_loop(f, opt, x0, steps):
    x, s, path = jnp.asarray(x0), opt.init(jnp.asarray(x0)), [jnp.asarray(x0)]
    for _ in range(steps):
        u, s = opt.update(jax.grad(f)(x), s, x)
        x = optax.apply_updates(x, u)
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


def test_chunking_and_padding_give_the_same_answer():
    starts = runs.start_grid(ROSEN.domain, 7)  # 49 runs
    whole = runs.run(ROSEN, optim.adam(0.05), starts, 100)
    chunked = runs.run(ROSEN, optim.adam(0.05), starts, 100, chunk_size=10, progress=True)
    np.testing.assert_array_equal(whole.final, chunked.final)
    np.testing.assert_array_equal(whole.first_hit, chunked.first_hit)


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
        np.savez(OUT, final=r.final, hit=r.first_hit, n=jax.device_count())
    """)
    outs = {}
    for count in (1, 8):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}", "JAX_PLATFORMS": "cpu"}
        out = tmp_path / f"d{count}.npz"
        subprocess.run([sys.executable, "-c", script.replace("OUT", repr(str(out)))], env=env, check=True,
                       timeout=300)
        outs[count] = np.load(out)
    assert int(outs[8]["n"]) == 8 and int(outs[1]["n"]) == 1
    np.testing.assert_array_equal(outs[1]["final"], outs[8]["final"])
    np.testing.assert_array_equal(outs[1]["hit"], outs[8]["hit"])


def test_nearest_minimum_basins():
    him = landscapes.get("himmelblau")
    pts = np.array(him.minima) + 1e-3
    np.testing.assert_array_equal(runs.nearest_minimum(pts, him.minima), [0, 1, 2, 3])
    assert runs.nearest_minimum(np.zeros((1, 2)), him.minima).tolist() == [-1]


def test_race_cli_small(tmp_path, capsys):
    code = main(["race", "--landscapes", "himmelblau", "seed_quadratic", "--optimizers", "sgd", "adam", "lion",
                 "--lrs", "0.001", "0.01", "--starts", "4", "--steps", "100", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "== himmelblau: 96 runs" in out and "adam" in out and "best lr" in out
    names = {p.name for p in tmp_path.iterdir()}
    assert {"himmelblau_trajectories.png", "himmelblau_loss.png", "himmelblau_heatmap.png",
            "himmelblau_basins.png", "himmelblau_steps.png", "seed_quadratic_heatmap.png"} <= names
    assert main(["race", "--landscapes", "nope", "--no-plots"]) == 2

"""The seed 002 exercise, from gradkit's optimizers through the generic loop."""

import jax.numpy as jnp
import numpy as np
import pytest

from gradkit import exercise, landscapes, optim
from gradkit.cli import main

# seed 002 worked solutions (DESIGN.md): the point after epochs 1 and 2
SEED = {
    "GD (lr 0.4)": {1: (-4.6, 1.2), 2: (-4.232, -0.72)},
    "Momentum EMA (lr 0.6, beta 0.5)": {1: (-4.7, 0.4), 2: (-4.268, 1.12)},
    "RMSProp (lr 0.3, gamma 0.9, eps 1e-6 in sqrt)": {1: (-4.051, -1.051), 2: (-3.4352, -0.5915)},
    "Adam (lr 0.2, 0.9, 0.999, eps 1e-6)": {1: (-4.8, -1.8), 2: (-4.6002548, -1.6008245)},
}
TOL = {1: 1e-3, 2: 1e-4}  # the seed rounds RMSProp to 4 digits
ADAM_TOL = 1e-7  # the Adam numbers are given to 7 decimals


@pytest.fixture(scope="session")
def results():
    return {r.name: r.trace for r in exercise.run_seed_exercise()}


@pytest.mark.parametrize("name", sorted(SEED))
def test_seed_epoch_values(results, name):
    trace = results[name]
    for epoch, expected in SEED[name].items():
        tol = ADAM_TOL if name.startswith("Adam") and epoch == 2 else TOL[epoch]
        np.testing.assert_allclose(trace.points[epoch], expected, atol=tol)


def test_exact_values_of_gd_and_momentum(results):
    np.testing.assert_allclose(results["GD (lr 0.4)"].points[2], [-4.232, -0.72], atol=1e-13)
    np.testing.assert_allclose(results["Momentum EMA (lr 0.6, beta 0.5)"].states[0].trace[1], [-0.72, -1.2],
                               atol=1e-13)
    # GD on a diagonal quadratic has a closed form: w_t = (1 - lr a)^t w_0
    np.testing.assert_allclose(results["GD (lr 0.4)"].points[30], [-5 * 0.92**30, -2 * (-0.6) ** 30], rtol=1e-12)


def test_seed_adam_state_and_eps_inside_variant(results):
    adam = results["Adam (lr 0.2, 0.9, 0.999, eps 1e-6)"]
    np.testing.assert_allclose(adam.states[0].mu[1], [-0.186, -1.44], atol=1e-12)
    np.testing.assert_allclose(adam.states[0].nu[1], [0.0019206, 0.115776], atol=1e-10)
    # formula (4.5) puts eps inside the root; the seed's hand value -4.6002546 is that variant
    inside = exercise.optimize_trace(landscapes.get("seed_quadratic"), optim.adam(0.2, eps=1e-6, eps_in_sqrt=True),
                                     jnp.array(exercise.START), 2)
    np.testing.assert_allclose(inside.points[2], [-4.6002546, -1.6008245], atol=1e-7)


def test_all_converge_towards_the_minimum(results):
    for name, trace in results.items():
        assert float(trace.values[-1]) < 0.02 * float(trace.values[0]), name


def test_table_and_cli(tmp_path, capsys):
    table = exercise.format_table(exercise.run_seed_exercise(epochs=5))
    assert "epoch 2:" in table and "after 5 epochs" in table and "velocity" in table
    assert main(["exercise", "--plot", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "-4.2320000" in out and "-4.6002548" in out and "after 30 epochs" in out
    assert (tmp_path / "seed_exercise.png").stat().st_size > 20_000

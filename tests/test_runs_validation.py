"""Bad input to gradkit.runs: a clear error naming the argument, raised before anything compiles."""

import jax.numpy as jnp
import numpy as np
import pytest

from gradkit import landscapes, optim, runs
from gradkit.runs import engine

ROSEN = landscapes.get("rosenbrock")
STARTS = jnp.array([[-1.5, 2.0], [0.0, 0.0]])


@pytest.fixture(autouse=True)
def nothing_compiles(monkeypatch):
    """Every case must fail in the argument checks, before the runner is built."""

    def refuse(*args, **kwargs):
        raise AssertionError("the runner was compiled before the bad argument was reported")

    monkeypatch.setattr(engine, "_compiled", refuse)


def test_empty_starts():
    with pytest.raises(ValueError, match="starts is empty"):
        runs.run(ROSEN, optim.sgd(0.1), jnp.zeros((0, 2)), 10)
    with pytest.raises(ValueError, match="starts must contain"):
        runs.run(ROSEN, optim.sgd(0.1), {}, 10)


def test_starts_as_a_python_list():
    with pytest.raises(TypeError, match="starts must be an array.*Python list"):
        runs.run(ROSEN, optim.sgd(0.1), [[0.0, 0.0], [1.0, 1.0]], 10)


def test_one_dimensional_start_array():
    with pytest.raises(ValueError, match=r"starts must have shape \(runs, dim\).*1-D"):
        runs.run(ROSEN, optim.sgd(0.1), jnp.array([0.0, 0.0]), 10)


@pytest.mark.parametrize("chunk", [0, -4, 2.5])
def test_chunk_size_not_positive(chunk):
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        runs.run(ROSEN, optim.sgd(0.1), STARTS, 10, chunk_size=chunk)


def test_misspelled_grid_key():
    with pytest.raises(ValueError, match="'learnig_rate'.*does not accept.*learning_rate"):
        runs.sweep(ROSEN, {"adam": optim.adam}, STARTS, {"adam": {"learnig_rate": [0.1]}}, 10)


def test_grid_for_an_unknown_optimizer():
    with pytest.raises(ValueError, match="grids has entries"):
        runs.sweep(ROSEN, {"adam": optim.adam}, STARTS, {"adma": {"learning_rate": [0.1]}}, 10)


@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan"), float("inf")])
def test_bad_learning_rate_in_a_grid(lr):
    with pytest.raises(ValueError, match=r"grids\['sgd'\]\['learning_rate'\]"):
        runs.sweep(ROSEN, {"sgd": optim.sgd}, STARTS, {"sgd": {"learning_rate": [0.1, lr]}}, 10)


@pytest.mark.parametrize("name", ["tol", "rtol", "xtol"])
@pytest.mark.parametrize("value", [-1e-3, float("nan"), float("inf")])
def test_negative_nan_or_infinite_tolerance(name, value):
    kwargs = {name: value}
    if name == "xtol":
        kwargs["minimizers"] = np.ones((1, 2))
    with pytest.raises(ValueError, match=f"{name} must be a finite non-negative number"):
        runs.run(ROSEN, optim.sgd(0.1), STARTS, 10, **kwargs)


def test_xtol_without_minimizers_and_minimizers_of_the_wrong_size():
    with pytest.raises(ValueError, match="xtol needs minimizers"):
        runs.run(ROSEN, optim.sgd(0.1), STARTS, 10, xtol=1e-3)
    with pytest.raises(ValueError, match=r"minimizers must be an \(m, dim\) array with dim = 2"):
        runs.run(ROSEN, optim.sgd(0.1), STARTS, 10, xtol=1e-3, minimizers=np.ones((1, 3)))


@pytest.mark.parametrize("steps", [0, -5, 2.0, True])
def test_steps_not_positive(steps):
    with pytest.raises(ValueError, match="steps must be a positive int"):
        runs.run(ROSEN, optim.sgd(0.1), STARTS, steps)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        runs.sweep(ROSEN, {"sgd": optim.sgd}, STARTS, {"sgd": {"learning_rate": [0.1]}}, steps)


def test_vector_objective():
    with pytest.raises(ValueError, match=r"objective must return a scalar, got shape \(2,\)"):
        runs.run(lambda x: x**2, optim.sgd(0.1), STARTS, 10)


def test_factory_given_to_run():
    with pytest.raises(TypeError, match="optimizer must be an optax GradientTransformation"):
        runs.run(ROSEN, optim.sgd, STARTS, 10)

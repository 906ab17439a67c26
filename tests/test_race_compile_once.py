"""The race's entry points compile once: a second identical call -- the way a user re-runs a
race in a notebook, with fresh configs -- builds no new XLA program, and the second call's
results equal the first's (the cached programs compute the same thing)."""

from __future__ import annotations

import numpy as np

from _jax_counters import compiles
from gradkit.race import race
from gradkit.race.bbob_race import bbob_race
from gradkit.race.campaign import CampaignConfig
from gradkit.race.cutest_race import CutestConfig, cutest_race

quiet = lambda line: None


def test_landscape_race_compiles_once():
    settings = dict(landscapes=["himmelblau"], optimizers=["adam", "sgd"], learning_rates=[0.01, 0.1],
                    starts_per_axis=3, steps=40, out=None, progress=False, workers=1)
    first, second = twice(lambda: race(echo=quiet, **settings))
    for name in ("adam", "sgd"):
        assert np.array_equal(first.races[0].sweep.results[name].final, second.races[0].sweep.results[name].final)


def twice(call):
    """``call()`` twice; asserts the second compiled nothing and returns both results."""
    first = call()
    before = compiles()
    second = call()
    assert compiles() == before
    return first, second


def test_bbob_race_compiles_once():
    config = lambda: CampaignConfig(functions=(1,), dimensions=(2,), instances=(1, 2), optimizers=("adam",),
                                    learning_rates=(0.1,), budget=30)
    first, second = twice(lambda: bbob_race(config(), echo=quiet))
    assert first.summary == second.summary


def test_cutest_race_compiles_once():
    config = lambda: CutestConfig(problems=("ROSENBR",), optimizers=("adam",), learning_rates=(0.01,), budget=30)
    first, second = twice(lambda: cutest_race(config(), echo=quiet))
    assert first.summary == second.summary


def test_race_refuses_a_landscape_named_twice_before_any_compute():
    import pytest

    before = compiles()
    with pytest.raises(ValueError, match="--landscapes himmelblau himmelblau names one twice"):
        race(echo=quiet, landscapes=["himmelblau", "himmelblau"], out=None)
    assert compiles() == before


def test_landscapes_with_the_same_f_star_share_one_program_per_optimizer():
    """The landscape race runs every landscape of one dimension, f* and tolerance through one
    compiled program per optimizer (the landscape is a traced switch index); each landscape's
    runs equal a sweep of that landscape alone, compiled for it."""
    import gradkit as gk
    from gradkit import runs
    from gradkit.runs import engine

    names = ["rosenbrock", "himmelblau", "rastrigin", "six_hump_camel"]  # f* = 0 for three, -1.03 for the last
    engine._compiled.cache_clear()
    result = race(landscapes=names, optimizers=["adam", "sgd"], learning_rates=[0.01, 0.03], starts_per_axis=3,
                  steps=60, out=None, workers=1, echo=quiet)
    assert engine._compiled.cache_info().misses == 4  # 2 optimizers x (the f* = 0 group, six_hump_camel)
    makes = {"adam": gk.optim.adam, "sgd": gk.optim.sgd}
    for res in result.races:
        alone = runs.sweep(res.landscape, makes, res.starts, {n: {"learning_rate": [0.01, 0.03]} for n in makes}, 60,
                           tol=res.tol, f_star=res.f_star, minimizers=res.landscape.minima, fast_compile=True)
        for name in makes:
            got, want = res.sweep.results[name], alone.results[name]
            np.testing.assert_allclose(got.final, want.final, rtol=1e-5, atol=1e-6, err_msg=name)
            np.testing.assert_allclose(got.final_distance, want.final_distance, rtol=1e-5, atol=1e-6)
            for field in ("converged", "settled_step", "diverged", "first_hit"):
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=f"{name} {field}")

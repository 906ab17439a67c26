"""The CUTEst race: reference optima from sif2jax (or the best value found, marked), Moré–Wild's
solved test recomputed from each run's recorded values, one-line errors."""

import warnings

import jax
import numpy as np
import pytest

from gradkit import runs
from gradkit.cli import main

from gradkit.race import cutest_race
from gradkit.suites import cutest

try:  # the suite's loader imports only sif2jax's unconstrained problems (its full import takes a minute)
    cutest.names()
except ImportError as error:
    pytest.skip(str(error), allow_module_level=True)

PROBLEMS = ("BEALE", "DENSCHNA", "ROSENBR")


@pytest.fixture(scope="module")
def raced():
    with jax.enable_x64(True), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = cutest_race.CutestConfig(problems=PROBLEMS, optimizers=("adam", "bfgs"), learning_rates=(1e-2, 1e-1),
                                          budget=60)
        result = cutest_race.cutest_race(config, echo=lambda line: None)
    # three 2-D problems are three programs, never "compiling again ... compared by identity"
    assert not [str(w.message) for w in caught if "compiling again" in str(w.message)]
    yield result


def test_reference_optima_are_sif2jax_values(raced):
    for problem in raced.problems:
        value, source = raced.f_ref[problem.name]
        assert problem.has_known_optimum and source == problem.f_opt_source
        assert value == problem.f_opt


def test_solved_costs_match_the_recorded_values(raced):
    """Moré–Wild at every τ, recomputed from a recorded trajectory of the same runs."""
    with jax.enable_x64(True):
        for k, problem in enumerate(raced.problems):
            ref = raced.f_ref[problem.name][0]
            f0 = float(problem(problem.x0))
            make = {"bfgs": __import__("gradkit").optim.bfgs}
            rec = runs.run_batch(problem, make["bfgs"], np.asarray(problem.x0)[None], 60, record="trajectory")
            values = rec.values[0]
            for j, tau in enumerate(cutest_race.TAUS):
                ok = np.flatnonzero(values - ref <= tau * (f0 - ref))
                cost = raced.costs[("bfgs", None)][k, j]
                if ok.size == 0:
                    assert np.isinf(cost)
                else:  # bfgs spends one gradient-equivalent per step, plus 1 at the start
                    expected = 1.0 + ok[0]
                    assert cost == (expected if expected <= 60 else np.inf)


def test_unknown_problem_and_missing_optimizer_fail_in_one_line(capsys, tmp_path):
    assert main(["race", "--suite", "cutest", "--problems", "NOPE", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown CUTEst problem 'NOPE'" in err and err.count("\n") == 0
    assert main(["race", "--suite", "cutest", "--dimensions", "2", "--out", str(tmp_path)]) == 2
    assert "--dimensions is not used by --suite cutest" in capsys.readouterr().err


def test_problems_without_a_known_optimum_use_the_best_found(monkeypatch):
    problem = cutest.problems(["BEALE"])[0]
    unknown = type(problem)(**{**{f: getattr(problem, f) for f in problem.__dataclass_fields__}, "f_opt": None})
    monkeypatch.setattr(cutest, "problems", lambda names=None, **kw: [unknown])
    with jax.enable_x64(True):
        result = cutest_race.cutest_race(cutest_race.CutestConfig(problems=("BEALE",), optimizers=("bfgs",), budget=40),
                                         echo=lambda line: None)
    value, source = result.f_ref["BEALE"]
    assert source == "best found"
    with jax.enable_x64(True):
        final = runs.run_batch(unknown, __import__("gradkit").optim.bfgs, np.asarray(unknown.x0)[None], 40).final_value
    assert value == pytest.approx(min(float(final[0]), float(unknown(unknown.x0))))

"""``fast_compile``: the race's programs compiled with XLA's quick CPU settings.  The options reach
``jax.jit`` (and only with ``fast_compile=True``), the runs compute the same numbers to float32
rounding, the race and the CLI choose it by default and say so, and bad values are refused."""

from __future__ import annotations

import sys

import jax
import numpy as np
import pytest

import gradkit as gk
from gradkit import runs
from gradkit.cli import main
from gradkit.race import RaceConfig, race, validate
from gradkit.race.report import format_header
from gradkit.runs import engine


def _spy_jit(monkeypatch) -> list:
    """Record the ``compiler_options`` of every run program the engine jits (its other jits, such
    as the chunk slicer, take none)."""
    seen, real = [], jax.jit

    def jit(fun, **kwargs):
        if "compiler_options" in kwargs and sys._getframe(1).f_globals["__name__"] == engine.__name__:
            seen.append(kwargs["compiler_options"])
        return real(fun, **kwargs)

    monkeypatch.setattr(engine.jax, "jit", jit)
    engine._compiled.cache_clear()
    return seen


def test_the_options_reach_jit_only_when_asked(monkeypatch):
    seen = _spy_jit(monkeypatch)
    land = gk.landscapes.get("himmelblau")
    starts = np.array([[1.0, 1.0], [-2.0, 3.0]], np.float32)
    quick = runs.run_batch(land, gk.optim.adam, starts, 30, {"learning_rate": 0.05}, fast_compile=True)
    default = runs.run_batch(land, gk.optim.adam, starts, 30, {"learning_rate": 0.05})
    on_cpu = jax.devices()[0].platform == "cpu"
    assert seen == [dict(engine.FAST_COMPILE_OPTIONS) if on_cpu else None, None]
    # the same arithmetic: equal up to float32 rounding (the programs may differ in the last bits)
    np.testing.assert_allclose(quick.final, default.final, rtol=1e-5)
    np.testing.assert_array_equal(quick.settled_step, default.settled_step)


def test_the_race_compiles_fast_by_default_and_says_so(monkeypatch):
    seen = _spy_jit(monkeypatch)
    settings = dict(landscapes=["himmelblau"], optimizers=["sgd"], learning_rates=[0.01], starts_per_axis=2,
                    steps=20, out=None, workers=1)
    race(echo=lambda line: None, **settings)
    race(echo=lambda line: None, fast_compile=False, **settings)
    assert seen == [dict(engine.FAST_COMPILE_OPTIONS), None]
    assert "XLA's quick CPU settings" in format_header(RaceConfig())
    assert "quick" not in format_header(RaceConfig(fast_compile=False))


def test_the_cli_flag_turns_it_off(monkeypatch):
    taken = []
    monkeypatch.setattr("gradkit.race.race", lambda config: taken.append(config))
    assert main(["race", "--landscapes", "himmelblau", "--no-plots", "--no-progress"]) == 0
    assert main(["race", "--landscapes", "himmelblau", "--no-plots", "--no-progress", "--no-fast-compile"]) == 0
    assert [c.fast_compile for c in taken] == [True, False]


def test_bad_values_are_refused(capsys):
    with pytest.raises(ValueError, match="fast_compile must be True or False"):
        runs.run_batch(gk.landscapes.get("himmelblau"), gk.optim.adam, np.zeros((1, 2), np.float32), 5,
                       {"learning_rate": 0.1}, fast_compile="yes")
    with pytest.raises(ValueError, match="fast_compile 1 is invalid"):
        validate(RaceConfig(fast_compile=1))
    assert main(["race", "--suite", "bbob", "--no-fast-compile"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--no-fast-compile is not used by --suite bbob" in err and err.count("\n") == 0

"""Racing your own optimizer: factories, import paths and optax aliases resolve to contenders; the
race's numbers for a custom factory equal those of the same optimizer raced by its gradkit name."""

import re
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import landscapes, optim, race
from gradkit.cli import main

SMALL = dict(landscapes=("seed_quadratic",), learning_rates=(1e-2, 1e-1), starts_per_axis=2, steps=40, tol=1e-4,
             out=None)


def make_mine(learning_rate):
    """A researcher's optimizer: plain SGD written by hand, ``x <- x - lr * g``."""
    return optax.GradientTransformation(lambda params: optax.EmptyState(),
                                        lambda g, s, p=None: (optax.tree.scale(-learning_rate, g), s))


def test_factory_races_like_the_same_optimizer_by_name():
    res = race.race(optimizers={"mine": make_mine, "sgd": "sgd"}, echo=lambda s: None, **SMALL)
    sweep = res.races[0].sweep
    for field in ("final_value", "settled_step", "converged", "cost"):
        np.testing.assert_array_equal(getattr(sweep.results["mine"], field), getattr(sweep.results["sgd"], field))
    rows = {r["optimizer"]: r for r in res.races[0].leaderboard}
    assert rows["mine"]["learning_rate"] == rows["sgd"]["learning_rate"]


def test_names_paths_and_objects_resolve():
    table = race.resolve(["adam", "optax.adamw", "optax.contrib.prodigy", "test_race_contenders:make_mine"])
    assert table["adam"] is race.CONTENDERS["adam"]
    assert table["optax.adamw"].make is optax.adamw and table["optax.adamw"].swept == ("learning_rate",)
    assert table["optax.contrib.prodigy"].default_learning_rate == 1.0
    assert table["test_race_contenders:make_mine"].family == "custom"
    lr_positional = race.contender(lambda lr: optax.sgd(lr), "positional")
    assert lr_positional.swept == ("learning_rate",)
    assert isinstance(lr_positional.make(learning_rate=0.1), optax.GradientTransformation)
    fixed = race.contender(optim.bfgs(), "bfgs-instance")
    assert fixed.swept == () and isinstance(fixed.make, optax.GradientTransformation)
    assert race.contender(optim.bfgs, "no-args").swept == ()


@pytest.mark.parametrize("spec, message", [
    ("adma", r"unknown optimizer 'adma' \(expected any of: .*did you mean 'ada"),
    ("nosuchpkg.module:fn", "'nosuchpkg.module:fn' does not resolve: No module named 'nosuchpkg'"),
    ("optax.nope", "'optax.nope' does not resolve: optax has no attribute 'nope'"),
    ("numpy:sin", "optimizer 'numpy:sin' returned a float64, not an optax.GradientTransformation"),
    ("math:pi", "optimizer 'math:pi' is a float, not a GradientTransformation"),
])
def test_bad_optimizers_fail_in_one_line_naming_them(spec, message):
    with pytest.raises(ValueError, match=message if message.startswith("unknown") else re.escape(message)):
        race.resolve([spec])


def test_a_factory_that_raises_is_reported():
    def broken(learning_rate):
        raise RuntimeError("boom")

    with pytest.raises(ValueError, match="optimizer 'broken' failed when built: RuntimeError: boom"):
        race.resolve({"broken": broken})


def test_cli_races_an_import_path_and_an_optax_alias(tmp_path, monkeypatch, capsys):
    (tmp_path / "mypkg_gk").mkdir()
    (tmp_path / "mypkg_gk" / "__init__.py").write_text("")
    (tmp_path / "mypkg_gk" / "opt.py").write_text(textwrap.dedent("""
        import optax
        def make_mine(learning_rate):
            return optax.sgd(learning_rate, momentum=0.5)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["race", "--landscapes", "seed_quadratic", "--optimizers", "adam", "mypkg_gk.opt:make_mine",
                 "optax.contrib.prodigy", "--starts", "2", "--steps", "30", "--lrs", "0.01", "0.1", "--no-plots",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    for name in ("adam", "mypkg_gk.opt:make_mine", "optax.contrib.prodigy"):
        assert any(line.split()[:1] == [name] for line in out.splitlines()), out


def hvp_descent(learning_rate):
    """A custom second-order-ish step: ``x <- x - lr * H g`` (one HVP per step through value_fn)."""
    def update(g, state, params=None, value_fn=None, **extra):
        hv = jax.jvp(jax.grad(value_fn), (params,), (g,))[1]
        return jax.tree.map(lambda a: -learning_rate * a, hv), state
    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def halving_search(learning_rate):
    """Gradient descent with a backtracking search on values: ``t <- t/2`` while ``f(x - t g) > f(x)``."""
    def update(g, state, params=None, value_fn=None, value=None, **extra):
        trial = lambda t: value_fn(optax.apply_updates(params, jax.tree.map(lambda a: -t * a, g)))
        t = jax.lax.while_loop(lambda t: (trial(t) > value) & (t > 1e-12), lambda t: t / 2, learning_rate)
        return jax.tree.map(lambda a: -t * a, g), state
    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def test_cost_of_an_unknown_optimizer_is_measured_not_assumed():
    f = landscapes.get("rosenbrock")
    x0 = jnp.array([-1.0, 1.5])
    # one HVP (2) on top of the runner's gradient (1)
    assert race.measured_step_cost(race.contender(hvp_descent, "h"), f, x0) == 3.0
    # a value (1/2) per trial of the line search, counted by hand with a Python loop
    g, t, x, trials = jax.grad(f)(x0), None, x0, []
    for _ in range(4):
        g, v, t, n = jax.grad(f)(x), f(x), 1e-3, 1
        while f(x - t * g) > v and t > 1e-12:
            t, n = t / 2, n + 1
        trials.append(n)
        x = x - t * g
    assert race.measured_step_cost(race.contender(halving_search, "ls"), f, x0) == 1.0 + 0.5 * np.mean(trials)
    assert race.measured_step_cost(race.CONTENDERS["adam"], f, x0) is None  # gradkit's own: modelled
    assert race.measured_step_cost(race.contender(optax.lbfgs, "l"), f, x0) is None  # a registered state


def test_the_race_charges_the_measured_cost():
    res = race.race(optimizers={"h": hvp_descent}, **{**SMALL, "learning_rates": (1e-3,)}, echo=lambda s: None)
    sweep = res.races[0].sweep
    land = res.races[0].landscape
    per_step = race.measured_step_cost(race.contender(hvp_descent, "h"), land, jnp.asarray(res.races[0].starts[0]))
    np.testing.assert_allclose(sweep.results["h"].cost, 1.0 + SMALL["steps"] * per_step)

"""The BBOB campaign and race: runtimes to COCO's targets recomputed with a Python loop over
optax and cocoex, one compiled program for every instance, learning rates chosen on the odd
instances and reported on the even ones, and the CLI's one-line errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from _jax_counters import compiles
from gradkit.cli import main
from gradkit.race import bbob_race, campaign, coco
from gradkit.suites.bbob import evaluate, instance_data

cocoex = pytest.importorskip("cocoex")

CONFIG = campaign.CampaignConfig(functions=(1, 8), dimensions=(2,), instances=(1, 2, 3, 4), optimizers=("adam", "bfgs"),
                                 learning_rates=(1e-2, 1e-1), budget=40)


@pytest.fixture(scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def raced(x64):
    return bbob_race.bbob_race(CONFIG, out=None, echo=lambda line: None)


def _loop_target_costs(function: int, instance: int, lr: float, steps: int) -> np.ndarray:
    """Adam by optax's own loop from the campaign's start; Δf from cocoex; cost 1 + k at step k."""
    suite = cocoex.Suite("bbob", "instances: 1-15", f"function_indices: {function} dimensions: 2")
    problem = suite.get_problem_by_function_dimension_instance(function, 2, instance)
    data = {k: jnp.asarray(v) for k, v in instance_data(function, instance, 2).items()}
    f_opt = float(data["f_opt"])
    grad = jax.jit(jax.grad(lambda y: evaluate(function, y, data)))
    opt = optax.adam(lr)
    x = jnp.asarray(campaign.starts_for(2, (instance,), 1, 0)[0])
    state = opt.init(x)
    costs = np.full(len(coco.TARGETS), np.inf)
    for k in range(steps + 1):
        delta = problem(np.asarray(x)) - f_opt  # f by cocoex; f_opt checked against cocoex in test_bbob
        newly = (delta <= coco.TARGETS) & np.isinf(costs)
        costs[newly] = 1.0 + k
        updates, state = opt.update(grad(x), state, x)
        x = optax.apply_updates(x, updates)
    problem.free()
    return np.where(costs <= CONFIG.budget * 2, costs, np.inf)


def test_target_costs_equal_a_python_loop_with_optax_and_cocoex(raced):
    runs = raced.runs[("adam", 0.1)]
    for function in (1, 8):
        for instance in (1, 2):
            r = int(np.flatnonzero((runs.function == function) & (runs.instance == instance))[0])
            expected = _loop_target_costs(function, instance, 0.1, CONFIG.steps(2))
            hit = np.isfinite(expected) & np.isfinite(runs.target_costs[r])
            # a target exactly at a rounding boundary may flip between the two evaluations: allow none
            np.testing.assert_array_equal(np.isfinite(runs.target_costs[r]), np.isfinite(expected))
            np.testing.assert_array_equal(runs.target_costs[r][hit], expected[hit])


def test_learning_rate_is_chosen_on_odd_instances_and_reported_on_even(raced):
    runs = {lr: raced.runs[("adam", lr)] for lr in CONFIG.learning_rates}
    odd = lambda r: (r.instance % 2 == 1)
    score = {lr: (np.isfinite(r.target_costs[odd(r)]).mean(),
                  -np.log10(r.target_costs[odd(r)][np.isfinite(r.target_costs[odd(r)])]).mean()) for lr, r in runs.items()}
    assert raced.chosen[("adam", 2)] == max(score, key=score.get)
    camp = raced.campaigns[2]["adam"]
    assert set(camp.instance) == {2, 4}
    chosen = runs[raced.chosen[("adam", 2)]]
    even = chosen.instance % 2 == 0
    np.testing.assert_array_equal(camp.target_costs, chosen.target_costs[even])
    # aRT to 1e-8 by hand: all held-out runs' costs (capped at the budget) over the successes
    last = camp.target_costs[:, -1]
    cost = np.where(np.isfinite(last), last, camp.total_cost)
    expected = cost.sum() / np.isfinite(last).sum() if np.isfinite(last).any() else np.inf
    assert coco.average_runtime(camp.target_costs, camp.total_cost)[-1] == pytest.approx(expected)


def test_every_instance_shares_one_compiled_program(x64):
    config = campaign.CampaignConfig(functions=(3,), dimensions=(2,), instances=(1, 2), optimizers=("adam",),
                                     learning_rates=(1e-2,), budget=10)
    campaign.run_campaign(config)
    before = compiles()
    campaign.run_campaign(campaign.CampaignConfig(**{**config.__dict__, "instances": (5, 9)}))
    assert compiles() == before


@pytest.mark.parametrize("argv, message", [
    (["--functions", "25"], "--functions 25 is invalid (expected integers 1..24)"),
    (["--instances", "0"], "--instances 0 is invalid"),
    (["--dimensions", "1"], "--dimensions 1 is invalid"),
    (["--dimensions", "two"], "--dimensions 'two' is invalid"),
    (["--budget", "0"], "--budget 0 is invalid"),
    (["--tol", "1e-3"], "--tol is not used by --suite bbob"),
    (["--optimizers", "nosuch.mod:fn"], "'nosuch.mod:fn' does not resolve"),
])
def test_cli_bad_input_is_one_line(argv, message, capsys, tmp_path):
    assert main(["race", "--suite", "bbob", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and message in err, err


def test_cli_writes_cocopp_data(tmp_path, capsys):
    code = main(["race", "--suite", "bbob", "--functions", "1", "--dimensions", "2", "--instances", "1-2",
                 "--optimizers", "bfgs", "--budget", "20", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "aRT / d" in out and out.count(", gradient-equivalents") == 1
    assert (tmp_path / "coco" / "bfgs" / "bbobexp_f1.info").exists()
    assert (tmp_path / "bbob_ecdf_d02.png").exists()


def test_plotted_curves_are_the_metrics(raced):
    from gradkit.race import bbob_pictures

    camps = raced.campaigns[2]
    curves = bbob_pictures.ecdf_curves(camps, 2)
    for name, camp in camps.items():
        x, y = coco.runtime_ecdf(camp, 2)
        np.testing.assert_array_equal(curves[name][0][1:-1], np.log10(x))
        np.testing.assert_array_equal(curves[name][1][1:-1], y)
        assert curves[name][1][0] == 0.0
    vx, vy = coco.virtual_best(list(camps.values()), 2)
    np.testing.assert_array_equal(curves[bbob_pictures.VIRTUAL_BEST][1][1:-1], vy)
    rows = bbob_pictures.sensitivity_rows(raced.runs, CONFIG)
    for lr, frac in rows[("adam", 2)]:
        r = raced.runs[("adam", lr)]
        assert frac == np.isfinite(r.target_costs).mean()
    # a group panel holds that group's functions only
    panels = bbob_pictures._panels(camps)
    assert panels["moderate (f8)"] == (8,) and panels["separable (f1)"] == (1,)


def test_art_table_in_each_unit_is_the_counts_by_hand(raced):
    camps = raced.campaigns[2]
    for unit, k in (("grads", 1), ("values", 0)):
        rows = bbob_race.art_rows(camps, 2, CONFIG.functions, unit)
        for row in rows:
            for name, camp in camps.items():
                idx = camp.runs_of(row["function"], 2)
                j = int(np.argmin(np.abs(np.log10(coco.TARGETS) + 8)))
                reached = camp.target_counts[idx, j, k]
                succ = int(np.isfinite(reached).sum())
                spent = sum(min(t, total) for t, total in zip(reached, camp.total_counts[idx, k]))
                art, n_succ, n = row[(name, 1e-8)]
                assert (n_succ, n) == (succ, len(idx))
                assert art == (spent / succ if succ else np.inf)
    # adam spends only gradients: its aRT in grads is its aRT in gradient-equivalents
    ge = bbob_race.art_rows(camps, 2, CONFIG.functions)
    grads = bbob_race.art_rows(camps, 2, CONFIG.functions, "grads")
    assert [r[("adam", 1e-8)] for r in ge] == [r[("adam", 1e-8)] for r in grads]
    text = bbob_race.format_art_table(grads, list(camps), 2, "grads")
    assert text.splitlines()[0].endswith(", grads")


def test_cli_unit_choices_are_cocos_units(capsys, one_line_error):
    from gradkit import cli

    with pytest.raises(SystemExit) as stop:
        main(["race", "--suite", "bbob", "--unit", "seconds"])
    assert stop.value.code == 2 and "--unit" in one_line_error("race")

    parser = cli.build_parser()
    race = parser._subparsers._group_actions[0].choices["race"]
    unit = next(a for a in race._actions if "--unit" in a.option_strings)
    assert tuple(unit.choices) == coco.UNITS

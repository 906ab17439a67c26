"""Counts of values, gradients, HVPs and JVPs until each target is first reached (issue 21, point 4).

References are independent of the runner: Python loops over optax's own optimizers (run eagerly,
``jax.disable_jit``) on an objective that counts its own calls with a ``custom_jvp`` (the primal
rule is a value, the JVP rule a gradient), a curvature map that counts its products for
Newton-CG, and aRT in gradients computed by hand from a few runs.
"""

from __future__ import annotations

from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

from gradkit import landscapes, optim, runs
from gradkit.race import coco
from gradkit.runs import costs

KINDS = ("values", "grads", "hvps", "jvps")
WEIGHT = {"values": costs.COST_UNITS["value"], "grads": costs.COST_UNITS["grad"], "hvps": costs.COST_UNITS["hvp"],
          "jvps": costs.COST_UNITS["jvp"]}


def by_hand(counts: np.ndarray) -> np.ndarray:
    """Gradient-equivalents written out: 1/2 per value, 1 per gradient, 2 per HVP, 1 per JVP."""
    return sum(WEIGHT[k] * counts[..., i] for i, k in enumerate(KINDS))


def counting(f, tally: Counter):
    """``f`` that counts its calls: a plain call is a value, a differentiated one a gradient."""

    @jax.custom_jvp
    def g(x):
        tally["values"] += 1
        return f(x)

    @g.defjvp
    def g_jvp(primals, tangents):
        tally["grads"] += 1
        return jax.jvp(f, primals, tangents)

    return g


def reference(opt, f, x0, steps, targets, *, from_state=False, tally=None):
    """The optax loop, eagerly: per point ``k`` its value and the counts spent up to and including
    its evaluation; the first point within each target and the counts there (``inf``: never)."""
    tally = Counter() if tally is None else tally
    g = counting(f, tally)
    opt = optax.with_extra_args_support(opt)
    points = []
    with jax.disable_jit():
        x, state = x0, opt.init(x0)
        for k in range(steps + 1):
            if from_state:  # optax's documented L-BFGS loop: the line search's value and gradient reused
                value, grad = optax.value_and_grad_from_state(g)(x, state=state)
            else:
                value, grad = jax.value_and_grad(g)(x)
            points.append((float(f(x)), [float(tally[kind]) for kind in KINDS]))
            if k == steps:
                break
            updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=g)
            x = optax.apply_updates(x, updates)
    first = [next((k for k, (v, _) in enumerate(points) if v <= t), -1) for t in targets]
    counts = np.array([points[k][1] if k >= 0 else [np.inf] * 4 for k in first])
    return np.array(first), counts, np.array(points[-1][1])


ROSENBROCK = landscapes.get("rosenbrock")
STARTS = jnp.array([[-1.2, 1.0], [0.5, -0.5], [1.3, 1.6]])
TARGETS = [10.0, 1.0, 1e-1, 1e-3, 1e-6]


def rosenbrock_hvp(p, v):
    """``∇²f(p) v`` on Rosenbrock (forward over reverse)."""
    return jax.jvp(jax.grad(ROSENBROCK), (p,), (v,))[1]


def counting_curvature(products: Counter):
    """A curvature map ``p -> (v -> ∇²f(p) v)`` that counts its products in ``products["hvps"]``."""
    def curvature(p):
        def matvec(v):
            products["hvps"] += 1
            return rosenbrock_hvp(p, v)
        return matvec
    return curvature


def plain_curvature(p):
    return lambda v: rosenbrock_hvp(p, v)


@pytest.mark.parametrize("name", ["adam", "lbfgs", "backtracking"])
def test_counts_to_each_target_equal_an_optax_loop_counting_its_calls(name):
    # steps: a few past the last target each reaches (the eager reference loops are slow)
    cases = {
        "adam": (optax.adam(0.05), 15, False, STARTS),
        "lbfgs": (optax.lbfgs(), 34, True, STARTS[::2]),  # zoom line search: a value_and_grad per trial
        "backtracking": (optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(20)), 20, False, STARTS),
    }
    opt, steps, from_state, starts = cases[name]
    res = runs.run(ROSENBROCK, opt, starts, steps, f_star=0.0, tol=1e-9, targets=TARGETS)
    assert res.target_counts.shape == (len(starts), len(TARGETS), 4)
    assert res.counts.shape == (len(starts), 4)
    for r, x0 in enumerate(starts):
        first, counts, total = reference(opt, ROSENBROCK, x0, steps, TARGETS, from_state=from_state)
        np.testing.assert_array_equal(res.target_steps[r], first)
        np.testing.assert_array_equal(res.target_counts[r], counts)
        np.testing.assert_array_equal(res.counts[r], total)
    assert np.isfinite(res.target_costs).any()  # the comparison is not vacuous
    if name == "backtracking":
        assert res.counts[:, 0].min() > 0  # values, counted apart from gradients


def test_newton_cg_counts_every_curvature_product_it_makes():
    """Newton-CG's HVP counts (read from ``hvp_count``) against the products its curvature map
    actually computes, counted by the map itself; its Armijo search's values by the objective."""
    products = Counter()
    counted_curvature = counting_curvature(products)
    steps = 15
    res = runs.run(ROSENBROCK, optim.newton_cg(curvature=plain_curvature), STARTS, steps, f_star=0.0,
                   tol=1e-12, targets=TARGETS)
    for r, x0 in enumerate(STARTS):
        products.clear()
        tally = Counter()
        first, counts, total = reference(optim.newton_cg(curvature=counted_curvature), ROSENBROCK, x0, steps, TARGETS,
                                         tally=tally)
        assert products["hvps"] > 0
        assert res.counts[r, 2] == products["hvps"]  # HVPs
        np.testing.assert_array_equal(res.counts[r, :2], total[:2])  # values (line search) and gradients
        np.testing.assert_array_equal(res.target_steps[r], first)
        reached = first >= 0
        np.testing.assert_array_equal(res.target_counts[r, reached, :2], counts[reached, :2])
        assert np.all(np.isinf(res.target_counts[r, ~reached]))
    assert (res.target_steps >= 0).any()


def test_hessian_free_counts_every_value_and_curvature_product_it_makes():
    """Hessian-free's counters against the calls it makes, step by step (eagerly): its values
    (walk-back over CG iterates, Armijo search: ``value_count``) counted by the objective itself,
    its HVPs (``hvp_count``) by its curvature map.  (The runner's sums of the counters are
    checked for every model in the test below; exact totals of two differently compiled runs
    may differ where a walk-back or Armijo test compares values equal to rounding.)"""
    products = Counter()
    opt = optim.hessian_free(curvature=counting_curvature(products))
    with jax.disable_jit():
        for x0 in STARTS[:2]:
            x, state = x0, opt.init(x0)
            for _ in range(3):
                products.clear()
                tally = Counter()
                g = counting(ROSENBROCK, tally)
                value, grad = jax.value_and_grad(ROSENBROCK)(x)
                updates, new = opt.update(grad, state, x, value=value, grad=grad, value_fn=g)
                assert tally["values"] >= 2 and tally["grads"] == 0
                assert int(new.value_count - state.value_count) == tally["values"]
                assert int(new.hvp_count - state.hvp_count) == products["hvps"] > 0
                x, state = optax.apply_updates(x, updates), new

    # the runner sums those counters: at least the walk-back's two values a step, every HVP
    steps = 5
    res = runs.run(ROSENBROCK, optim.hessian_free(curvature=plain_curvature), STARTS, steps)
    assert np.all(res.counts[:, 1] == steps + 1) and np.all(res.counts[:, 2] > 2 * steps)
    assert np.all(res.counts[:, 0] >= 2 * steps)


def test_newton_cg_hvps_to_a_target_equal_the_products_made_until_then():
    products = Counter()
    made = [0]  # cumulative products at each point
    steps, x0 = 12, STARTS[0]
    opt = optax.with_extra_args_support(optim.newton_cg(curvature=counting_curvature(products)))
    with jax.disable_jit():
        x, state, values = x0, opt.init(x0), []
        for _ in range(steps):
            values.append(float(ROSENBROCK(x)))
            value, grad = jax.value_and_grad(ROSENBROCK)(x)
            updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=ROSENBROCK)
            made.append(products["hvps"])
            x = optax.apply_updates(x, updates)
        values.append(float(ROSENBROCK(x)))
    res = runs.run(ROSENBROCK, optim.newton_cg(curvature=plain_curvature), x0[None], steps, f_star=0.0,
                   tol=1e-12, targets=TARGETS)
    for j, t in enumerate(TARGETS):
        k = next((k for k, v in enumerate(values) if v <= t), -1)
        assert res.target_steps[0, j] == k
        assert res.target_counts[0, j, 2] == (made[k] if k >= 0 else np.inf)


def _optimizers(key):
    return {
        "sam": optim.sam(optim.sgd(0.05), rho=0.01),
        "newton_cg": optim.newton_cg(),
        "hessian_free": optim.hessian_free(curvature="hessian"),
        "trust_region": optim.newton_cg_trust_region(),
        "newton": optim.newton(),
        "lbfgs": optax.lbfgs(),
        "backtracking": optax.chain(optax.sgd(0.5), optax.scale_by_backtracking_linesearch(15)),
        "optax_sophia": optax.contrib.sophia(0.05, update_interval=3),
        "sophia": optim.sophia(0.05, update_interval=3),
        "adahessian": optim.adahessian(0.05),
        "forward": optim.forward_gradient_descent(optim.sgd(0.05), key, num_tangents=3),
    }


# the kinds each method spends (the runner's own gradient included where it is counted)
SPENDS = {"sam": {"grads"}, "newton_cg": {"values", "grads", "hvps"}, "hessian_free": {"values", "grads", "hvps"},
          "trust_region": {"grads", "hvps"}, "newton": {"values", "grads", "hvps"}, "lbfgs": {"grads"},
          "backtracking": {"values", "grads"}, "optax_sophia": {"grads", "hvps"}, "sophia": {"grads", "hvps"},
          "adahessian": {"grads", "hvps"}, "forward": {"grads", "jvps"}}


def test_the_optimizers_here_cover_every_registered_state_type():
    x = jnp.zeros(2)
    found = {kind for opt in _optimizers(jax.random.PRNGKey(0)).values()
             for _, kind in costs._state_nodes(jax.eval_shape(opt.init, x))}
    assert found == set(costs.COST_MODELS)


@pytest.mark.parametrize("name", sorted(SPENDS))
def test_every_registered_model_costs_the_weighted_sum_of_its_counts(name):
    opt = _optimizers(jax.random.PRNGKey(1))[name]
    quad = landscapes.get("seed_quadratic")
    starts = jnp.array([[-5.0, -2.0], [1.0, 3.0]])
    res = runs.run(quad, opt, starts, 10, f_star=0.0, tol=1e-8, targets=[10.0, 1.0, 1e-2, 1e-6])
    # the cost models themselves: stated per kind, gradient-equivalents derived
    for _, kind in costs._state_nodes(jax.eval_shape(opt.init, starts[0])):
        model = costs.COST_MODELS[kind](opt, starts[0])
        assert isinstance(model.per_step_counts, runs.Counts)
        assert model.per_step_cost == by_hand(np.array(model.per_step_counts, dtype=np.float64))
    np.testing.assert_array_equal(res.cost, by_hand(res.counts))
    reached = np.isfinite(res.target_costs)
    assert reached.any()
    np.testing.assert_array_equal(np.isfinite(res.target_counts), np.repeat(reached[..., None], 4, axis=-1))
    np.testing.assert_array_equal(res.target_costs[reached], by_hand(res.target_counts)[reached])
    spent = {k for i, k in enumerate(KINDS) if res.counts[:, i].max() > 0}
    assert spent == SPENDS[name]
    # counts never decrease along the (decreasing) targets, and stay within the run's totals
    finite = np.where(np.isfinite(res.target_counts), res.target_counts, 0.0)
    assert np.all(np.diff(finite, axis=1)[np.repeat(reached[:, 1:, None], 4, -1)] >= 0)
    assert np.all(finite <= res.counts[:, None, :])


def test_dense_newton_counts_n_hvps_per_step_and_forward_gradients_their_tangents():
    quad = landscapes.get("seed_quadratic")
    x0 = jnp.array([[-5.0, -2.0]])
    newton = runs.run(quad, optim.newton(), x0, 6, f_star=0.0, targets=[1e-8])
    # the runner's gradients, n = 2 HVPs a step, and the values of its backtracking line search
    np.testing.assert_array_equal(newton.counts[0, 1:], [7, 6 * 2, 0])
    assert newton.counts[0, 0] >= 6
    fgd = runs.run(quad, optim.forward_gradient_descent(optim.sgd(0.01), jax.random.PRNGKey(0), num_tangents=3), x0,
                   6, f_star=0.0, targets=[1e3])
    np.testing.assert_array_equal(fgd.counts[0], [0, 1, 0, 6 * 3])  # the start's gradient, then 3 JVPs a step
    np.testing.assert_array_equal(fgd.target_counts[0, 0], [0, 1, 0, 0])  # reached at the start


def test_without_targets_there_are_no_target_counts_but_the_totals():
    res = runs.run(ROSENBROCK, optim.adam(0.01), STARTS, 5)
    assert res.target_counts is None and res.target_costs is None
    np.testing.assert_array_equal(res.counts, np.tile([0.0, 6.0, 0.0, 0.0], (3, 1)))


def hvp_descent(learning_rate):
    def update(g, state, params=None, value_fn=None, **extra):
        hv = jax.jvp(jax.grad(value_fn), (params,), (g,))[1]
        return jax.tree.map(lambda a: -learning_rate * a, hv), state
    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def slope_descent(learning_rate):
    """Two forward-mode directional derivatives (JVPs) and one value per step."""
    def update(g, state, params=None, value_fn=None, **extra):
        e = jnp.eye(params.size, dtype=params.dtype)
        slopes = jnp.stack([jax.jvp(value_fn, (params,), (e[i],))[1] for i in range(params.size)])
        value_fn(params)
        return -learning_rate * slopes, state
    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def test_the_probe_counts_each_kind_and_run_batch_charges_measured_counts():
    x0 = jnp.array([-1.0, 1.5])
    assert costs.measure_step_counts(hvp_descent(1e-3), ROSENBROCK, x0) == runs.Counts(0.0, 1.0, 1.0, 0.0)
    assert costs.measure_step_counts(slope_descent(1e-3), ROSENBROCK, x0) == runs.Counts(1.0, 1.0, 0.0, 2.0)
    assert costs.measure_step_cost(slope_descent(1e-3), ROSENBROCK, x0) == 0.5 + 1.0 + 2.0
    measured = costs.measure_step_counts(slope_descent(1e-3), ROSENBROCK, x0)
    res = runs.run(ROSENBROCK, slope_descent(1e-3), STARTS, 8, f_star=0.0, targets=[1e3, 1e-30], step_cost=measured)
    np.testing.assert_array_equal(res.counts, np.tile([8.0, 1.0 + 8.0, 0.0, 16.0], (3, 1)))
    np.testing.assert_array_equal(res.target_counts[:, 0], np.tile([0.0, 1.0, 0.0, 0.0], (3, 1)))
    assert np.all(np.isinf(res.target_counts[:, 1]))
    np.testing.assert_array_equal(res.cost, by_hand(res.counts))
    # a bare number of gradient-equivalents is counted as that many gradients
    bare = runs.run(ROSENBROCK, slope_descent(1e-3), STARTS, 8, f_star=0.0, targets=[1e3], step_cost=3.5)
    np.testing.assert_array_equal(bare.counts[0], [0.0, 1.0 + 8 * 3.5, 0.0, 0.0])
    np.testing.assert_array_equal(bare.cost, res.cost)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), runs.Counts(values=-1.0, grads=2.0), runs.Counts(), "2"])
def test_a_bad_step_cost_is_a_one_line_error_naming_it(bad):
    with pytest.raises(ValueError, match="^step_cost must be") as err:
        runs.run(ROSENBROCK, optim.sgd(0.01), STARTS, 3, step_cost=bad)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- aRT in any unit

TC = np.array([[1.5, 4.0], [2.0, np.inf], [np.inf, np.inf]])
COUNTS = np.array([[[1, 1, 0, 0], [3, 2, 1, 0]], [[0, 2, 0, 0], [np.inf] * 4], [[np.inf] * 4] * 2], dtype=float)
TOTAL_COUNTS = np.array([[6.0, 3.0, 1.0, 0.0], [4.0, 5.0, 0.0, 0.0], [2.0, 7.0, 1.0, 0.0]])


def _campaign(**kw):
    args = dict(algorithm="A", function=[1, 1, 1], instance=[1, 2, 3], dimension=[2, 2, 2], target_costs=TC,
                total_cost=by_hand(TOTAL_COUNTS), targets=np.array([1.0, 0.1]), target_counts=COUNTS,
                total_counts=TOTAL_COUNTS)
    return coco.Campaign(**{**args, **kw})


def test_art_in_gradients_by_hand():
    c = _campaign()
    # target 0: runs 0 and 1 succeed with 1 and 2 gradients, run 2 spends its 7; two successes
    # target 1: run 0 succeeds with 2, runs 1 and 2 spend 5 and 7; one success
    np.testing.assert_array_equal(coco.art_table(c, unit="grads")[(1, 2)].art, [(1 + 2 + 7) / 2, (2 + 5 + 7) / 1])
    np.testing.assert_array_equal(coco.art_table(c, unit="values")[(1, 2)].art, [(1 + 0 + 2) / 2, (3 + 4 + 2) / 1])
    np.testing.assert_array_equal(coco.art_table(c, unit="hvps")[(1, 2)].art, [(0 + 0 + 1) / 2, (1 + 0 + 1) / 1])
    # the default unit is unchanged: gradient-equivalents from target_costs / total_cost
    total = by_hand(TOTAL_COUNTS)
    np.testing.assert_array_equal(coco.art_table(c)[(1, 2)].art, [(1.5 + 2.0 + total[2]) / 2,
                                                                   (4.0 + total[1] + total[2]) / 1])
    assert coco.art_table(c)[(1, 2)].art.tolist() == coco.art_table(c, unit="gradient-equivalents")[(1, 2)].art.tolist()
    best, which = coco.best_art_table([c, _campaign(algorithm="B")], unit="grads")[(1, 2)]
    np.testing.assert_array_equal(best, [5.0, 14.0])
    np.testing.assert_array_equal(which, [0, 0])
    x, y = coco.runtime_ecdf(c, 2, unit="grads", n_samples=4)
    assert np.all(np.isfinite(x)) and 0 < y[-1] <= 1


@pytest.mark.parametrize("kw, field", [
    (dict(target_counts=COUNTS[:, :1]), "target_counts"),
    (dict(total_counts=TOTAL_COUNTS[:2]), "total_counts"),
    (dict(total_counts=None), "target_counts"),
    (dict(target_counts=np.where(np.isinf(COUNTS), 9.0, COUNTS)), "target_counts"),  # finite where the cost is inf
    (dict(total_counts=TOTAL_COUNTS * 0.5), "target_counts"),                        # a count above the total
])
def test_bad_counts_are_one_line_errors_naming_the_field(kw, field):
    with pytest.raises(ValueError, match=f"^{field}: ") as err:
        _campaign(**kw)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("unit", ["grad", "seconds", None])
def test_an_unknown_unit_is_a_one_line_error_naming_unit(unit):
    with pytest.raises(ValueError, match="^unit: ") as err:
        coco.art_table(_campaign(), unit=unit)
    assert "\n" not in str(err.value)
    no_counts = _campaign(target_counts=None, total_counts=None)
    with pytest.raises(ValueError, match="^unit: .*no"):
        coco.art_table(no_counts, unit="grads")
    assert coco.UNITS == ("gradient-equivalents", *runs.COUNT_KINDS)


def test_counts_cut_at_a_budget_feed_a_campaign_and_its_art_in_values():
    """The BBOB campaign's censoring (:func:`gradkit.race.campaign.censor_counts`) on runs of a
    backtracking search (values and gradients): a target beyond the budget is never reached in any
    kind, the totals are the budget's share of the counts (never below a target's), and the aRT in
    values of the censored runs is the hand formula."""
    from gradkit.race.campaign import _censor, censor_counts

    opt = optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(20))
    res = runs.run(ROSENBROCK, opt, STARTS, 30, f_star=0.0, targets=TARGETS)
    budget = float(np.median(res.cost))
    costs_cut, total_cut = _censor(res, budget)
    counts, totals = censor_counts(res, budget)
    assert (res.cost > budget).any() and np.isfinite(costs_cut).any()  # some runs cut, some targets kept
    np.testing.assert_array_equal(np.isfinite(counts), np.repeat(np.isfinite(costs_cut)[..., None], 4, -1))
    share = np.minimum(1.0, budget / res.cost)
    reached = np.where(np.isfinite(counts), counts, 0.0).max(axis=1)
    np.testing.assert_array_equal(totals, np.maximum(res.counts * share[:, None], reached))
    camp = coco.Campaign(algorithm="bt", function=[1, 1, 1], instance=[1, 2, 3], dimension=[2, 2, 2],
                         target_costs=costs_cut, total_cost=total_cut, targets=np.array(TARGETS),
                         target_counts=counts, total_counts=totals)
    art = coco.art_table(camp, unit="values")[(1, 2)].art
    for j in range(len(TARGETS)):
        hit = np.isfinite(counts[:, j, 0])
        spent = sum(counts[r, j, 0] if hit[r] else totals[r, 0] for r in range(3))
        assert art[j] == (spent / hit.sum() if hit.any() else np.inf)

"""COCO measures of gradkit.race.coco, recomputed by hand on tiny campaigns."""

import dataclasses

import numpy as np
import pytest

from gradkit.race.coco import (
    FUNCTION_GROUPS,
    TARGETS,
    Campaign,
    algoperf_score,
    art_table,
    average_runtime,
    best_art_table,
    default_n_samples,
    group_ecdfs,
    runtime_ecdf,
    simulated_runtimes,
    virtual_best,
)

INF = np.inf

# 3 runs x 4 targets (targets 1, 0.1, 0.01, 0.001)
LADDER = np.array([1.0, 0.1, 0.01, 0.001])
TC = np.array([
    [1.0, 2.0, 5.0, INF],   # run 0, total 10
    [2.0, 4.0, INF, INF],   # run 1, total 8
    [1.0, 3.0, 6.0, 9.0],   # run 2, total 12
])
TOTAL = np.array([10.0, 8.0, 12.0])


def _campaign(**kw):
    base = dict(algorithm="A", function=[1, 1, 1], instance=[1, 2, 3], dimension=[2, 2, 2],
                target_costs=TC, total_cost=TOTAL, targets=LADDER)
    base.update(kw)
    return Campaign(**base)


# ----------------------------------------------------------------------------- targets


def test_targets_are_cocopps_bbob_ladder():
    assert TARGETS.shape == (51,)
    np.testing.assert_array_equal(TARGETS, 10 ** np.arange(2, -8.2, -0.2))  # bit for bit
    assert TARGETS[0] == 100.0
    assert np.all(np.diff(TARGETS) < 0)
    np.testing.assert_allclose(np.log10(TARGETS), np.linspace(2, -8, 51), atol=1e-12)
    # a few ulp above 10**(k/5) (cocopp's aligned row labels), never below
    assert np.all(TARGETS >= np.power(10, np.arange(10, -41, -1) / 5.0))


def test_function_groups_partition_bbob():
    fs = sorted(f for g in FUNCTION_GROUPS.values() for f in g)
    assert fs == list(range(1, 25))
    assert FUNCTION_GROUPS["separable"] == (1, 2, 3, 4, 5)
    assert FUNCTION_GROUPS["weakly-structured"] == (20, 21, 22, 23, 24)


# ----------------------------------------------------------------------------- aRT


def test_average_runtime_by_hand():
    # target 0: all succeed: (1 + 2 + 1) / 3
    # target 1: all succeed: (2 + 4 + 3) / 3 = 3
    # target 2: runs 0, 2 succeed (5, 6), run 1 fails and counts its total 8: (5 + 8 + 6) / 2 = 9.5
    # target 3: only run 2 succeeds (9), runs 0, 1 count totals 10, 8: (10 + 8 + 9) / 1 = 27
    expected = [4 / 3, 3.0, 9.5, 27.0]
    np.testing.assert_allclose(average_runtime(TC, TOTAL), expected, rtol=1e-15)


def test_average_runtime_inf_when_nobody_succeeds():
    art = average_runtime(np.array([[1.0, INF], [2.0, INF]]), np.array([3.0, 4.0]))
    assert art[0] == 1.5 and art[1] == INF


@pytest.mark.parametrize("tc, tot, field", [
    (TC[0], TOTAL, "target_costs"),                              # 1-D
    (TC[:, :0], TOTAL, "target_costs"),                          # no targets
    (TC, TOTAL[:2], "total_cost"),                               # one total missing
    (np.where(TC == 1.0, -1.0, TC), TOTAL, "target_costs"),      # negative cost
    (TC, np.array([10.0, -8.0, 12.0]), "total_cost"),            # negative total
    (TC, np.array([10.0, 8.0, INF]), "total_cost"),              # infinite total
    (TC, np.array([4.0, 8.0, 12.0]), "target_costs"),            # run 0 hit a target at 5 > 4
    (np.where(TC == 4.0, np.nan, TC), TOTAL, "target_costs"),    # NaN
])
def test_average_runtime_errors(tc, tot, field):
    with pytest.raises(ValueError, match=f"^{field}: ") as e:
        average_runtime(tc, tot)
    assert "\n" not in str(e.value)


def test_art_table_groups_and_success_counts():
    tc = np.vstack([TC, [[4.0, INF, INF, INF]]])
    c = _campaign(function=[1, 1, 1, 2], instance=[1, 2, 3, 1], dimension=[2, 2, 2, 2], target_costs=tc,
                  total_cost=np.r_[TOTAL, 7.0])
    tab = art_table(c)
    assert sorted(tab) == [(1, 2), (2, 2)]
    np.testing.assert_allclose(tab[(1, 2)].art, [4 / 3, 3.0, 9.5, 27.0])
    np.testing.assert_array_equal(tab[(1, 2)].n_success, [3, 3, 2, 1])
    assert tab[(1, 2)].n_runs == 3
    np.testing.assert_array_equal(tab[(2, 2)].art, [4.0, INF, INF, INF])
    np.testing.assert_array_equal(tab[(2, 2)].n_success, [1, 0, 0, 0])


def test_art_table_balanced_instances_like_cocopp():
    # runs 0, 1 on instance 1, run 2 on instance 2: cocopp's multipliers lcm(2, 1) / count = 1, 1, 2
    c = _campaign(instance=[1, 1, 2])
    # target 2: 5 + 8 + 2 * 6 over 1 + 0 + 2 successes = 25 / 3
    # target 3: 10 + 8 + 2 * 9 over 2 successes = 18
    art = art_table(c, balance_instances=True)[(1, 2)].art
    np.testing.assert_allclose(art, [(1 + 2 + 2) / 4, (2 + 4 + 6) / 4, 25 / 3, 18.0])
    # equal counts per instance: balancing changes nothing
    np.testing.assert_array_equal(art_table(_campaign(), balance_instances=True)[(1, 2)].art, art_table(_campaign())[(1, 2)].art)


# ----------------------------------------------------------------------------- campaign validation


def test_campaign_is_frozen_and_readonly():
    c = _campaign()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.algorithm = "B"
    with pytest.raises(ValueError):
        c.target_costs[0, 0] = 0.0
    assert c.function.dtype == np.int64 and c.target_costs.dtype == np.float64
    assert c.n_runs == 3 and c.problems() == [(1, 2)] and c.dimensions() == [2]
    assert np.array_equal(Campaign(algorithm="A", function=[1], instance=[1], dimension=[2],
                                   target_costs=np.full((1, 51), INF), total_cost=[5.0]).targets, TARGETS)


@pytest.mark.parametrize("kw, field", [
    (dict(algorithm=""), "algorithm"),
    (dict(algorithm="my alg"), "algorithm"),
    (dict(algorithm="a/b"), "algorithm"),
    (dict(suite=""), "suite"),
    (dict(function=[1, 1]), "instance"),
    (dict(function=[[1, 1, 1]]), "function"),
    (dict(function=[0, 1, 1]), "function"),
    (dict(function=[1.5, 1, 1]), "function"),
    (dict(instance=[1, 2]), "instance"),
    (dict(dimension=[2, 2, 0]), "dimension"),
    (dict(targets=LADDER[::-1]), "targets"),
    (dict(targets=np.array([1.0, 0.1, 0.1, 0.01])), "targets"),
    (dict(targets=np.array([1.0, 0.1, 0.01, 0.0])), "targets"),
    (dict(target_costs=TC[:, :3]), "target_costs"),
    (dict(target_costs=TC[:2]), "total_cost"),
    (dict(target_costs=np.where(TC == 9.0, -9.0, TC)), "target_costs"),
    (dict(target_costs=TC[:, ::-1]), "target_costs"),         # decreasing along the ladder
    (dict(total_cost=[10.0, 8.0, 8.5]), "target_costs"),      # run 2 reached a target at 9 > 8.5
    (dict(total_cost=[10.0, -8.0, 12.0]), "total_cost"),
    (dict(best_delta_f=[0.5]), "best_delta_f"),
    (dict(best_delta_f=[0.005, 0.05, -1.0]), "best_delta_f"),
    (dict(best_delta_f=[0.005, 0.05, 0.01]), "best_delta_f"),  # run 2 reached 0.001, so best <= 0.001
    (dict(best_delta_f=[0.005, 0.005, 0.0005]), "best_delta_f"),  # run 1 missed 0.01, so best > 0.01
])
def test_campaign_errors(kw, field):
    with pytest.raises(ValueError, match=f"^{field}: ") as e:
        _campaign(**kw)
    assert "\n" not in str(e.value)


def test_campaign_best_delta_f_consistent():
    # run 0 reached 0.01 not 0.001; run 1 reached 0.1 not 0.01; run 2 reached 0.001 (best may be 0)
    c = _campaign(best_delta_f=[0.01, 0.05, 0.0])
    np.testing.assert_array_equal(c.best_delta_f, [0.01, 0.05, 0.0])


# ----------------------------------------------------------------------------- bootstrap


def test_simulated_runtimes_all_successful_is_exact():
    s = simulated_runtimes(np.array([3.0, 5.0, 7.0]), np.array([3.0, 6.0, 9.0]), 300, rng=1)
    vals, counts = np.unique(s, return_counts=True)
    np.testing.assert_array_equal(vals, [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(counts, [100, 100, 100])


def test_simulated_runtimes_all_unsuccessful_is_inf():
    s = simulated_runtimes(np.array([INF, INF]), np.array([3.0, 6.0]), 10, rng=0)
    assert s.shape == (10,) and np.all(np.isinf(s))


@pytest.mark.parametrize("derandomized", [True, False])
def test_simulated_restart_mean_is_art(derandomized):
    # target 2 of the hand example: runs 0, 2 succeed at 5, 6; run 1 fails after 8 -> aRT 9.5
    tc, tot = TC[:, 2], TOTAL
    s = simulated_runtimes(tc, tot, 200_000, rng=np.random.default_rng(3), derandomized=derandomized)
    assert np.all(np.isfinite(s))
    # every sample is a success cost plus k >= 0 failed totals: 5 + 8k or 6 + 8k
    assert np.all(np.isin((s - 5) % 8, [0, 1]))
    # E = (n_u / n_s) * mean(unsuccessful totals) + mean(successful costs) = (1/2) 8 + 5.5 = 9.5 = aRT
    assert average_runtime(tc[:, None], tot)[0] == 9.5
    assert abs(s.mean() - 9.5) < 0.05  # sd of the mean ~ 0.013
    # P(no failed draw) = 2/3 for the first draw in expectation
    assert abs(np.mean(s < 8) - 2 / 3) < 0.01


def test_simulated_runtimes_errors():
    with pytest.raises(ValueError, match="^n_samples: "):
        simulated_runtimes(np.array([1.0]), np.array([1.0]), 0)
    with pytest.raises(ValueError, match="^total_costs: "):
        simulated_runtimes(np.array([1.0, 2.0]), np.array([1.0]), 5)
    with pytest.raises(ValueError, match="^target_costs: "):
        simulated_runtimes(np.array([3.0]), np.array([1.0]), 5)


def test_default_n_samples_is_cocopps_rule():
    # N * max(2, int((100 + 1000/1001) / N))
    assert default_n_samples(1) == 100
    assert default_n_samples(2) == 100
    assert default_n_samples(3) == 99
    assert default_n_samples(15) == 90
    assert default_n_samples(200) == 400


# ----------------------------------------------------------------------------- ECDF


ECDF_TC = np.array([
    # f1 (dimension 2): every run reaches every target
    [2.0, 4.0, 8.0],
    [2.0, 6.0, 10.0],
    # f2 (dimension 2): nobody reaches anything
    [INF, INF, INF],
    [INF, INF, INF],
])


def _ecdf_campaign(**kw):
    base = dict(algorithm="E", function=[1, 1, 2, 2], instance=[1, 2, 1, 2], dimension=[2, 2, 2, 2],
                target_costs=ECDF_TC, total_cost=[10.0, 12.0, 20.0, 20.0], targets=np.array([1.0, 0.1, 0.01]))
    base.update(kw)
    return Campaign(**base)


def test_runtime_ecdf_by_hand():
    c = _ecdf_campaign()
    # f1 only: per target the bootstrap is exact (all succeed, n_samples a multiple of 2 runs);
    # runtime / dimension: target 0 -> {1, 1}, target 1 -> {2, 3}, target 2 -> {4, 5}: 6 equally weighted values
    x, y = runtime_ecdf(c, 2, functions=[1], n_samples=1000)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(y, np.array([2, 3, 4, 5, 6]) / 6, rtol=1e-15)
    # with f2, whose 3 (function, target) pairs are never solved: half the pairs are unsolved
    x2, y2 = runtime_ecdf(c, 2, n_samples=1000)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_allclose(y2, np.array([2, 3, 4, 5, 6]) / 12, rtol=1e-15)
    # default sample size and any seed give the same exact answer here
    np.testing.assert_allclose(runtime_ecdf(c, 2, seed=7)[1], y2)


def test_runtime_ecdf_with_failures_matches_art():
    # one function, one target: the ECDF's mean over samples is the simulated-restart mean = aRT
    c = _campaign(targets=LADDER[2:3], target_costs=TC[:, 2:3])
    x, y = runtime_ecdf(c, 2, n_samples=60_000, seed=1)
    assert y[-1] == 1.0
    mean = np.sum(x * np.diff(np.r_[0.0, y])) * 2  # back from runtime / dimension
    assert abs(mean - 9.5) < 0.1


def test_runtime_ecdf_errors():
    c = _ecdf_campaign()
    with pytest.raises(ValueError, match="^dimension: "):
        runtime_ecdf(c, 3)
    with pytest.raises(ValueError, match="^functions: "):
        runtime_ecdf(c, 2, functions=[5])
    with pytest.raises(ValueError, match="^n_samples: "):
        runtime_ecdf(c, 2, n_samples=0)


def test_group_ecdfs():
    c = _ecdf_campaign(function=[1, 1, 7, 7])
    groups = group_ecdfs(c, 2, n_samples=100)
    assert sorted(groups) == ["moderate", "separable"]
    np.testing.assert_array_equal(groups["separable"][0], [1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(groups["separable"][1], np.array([2, 3, 4, 5, 6]) / 6)
    assert groups["moderate"][0].size == 0  # f7 never solved anything


def test_virtual_best_by_hand():
    a = _ecdf_campaign(algorithm="A", function=[1, 1], instance=[1, 2], dimension=[2, 2],
                       target_costs=ECDF_TC[:2], total_cost=[10.0, 12.0])
    b = _ecdf_campaign(algorithm="B", function=[1, 1], instance=[1, 2], dimension=[2, 2],
                       target_costs=np.array([[1.0, 10.0, 20.0], [1.0, 10.0, 20.0]]), total_cost=[20.0, 20.0])
    # aRT: A = (2, 5, 9), B = (1, 10, 20): best = B, A, A
    best, which = best_art_table([a, b])[(1, 2)]
    np.testing.assert_array_equal(best, [1.0, 5.0, 9.0])
    np.testing.assert_array_equal(which, [1, 0, 0])
    # samples / dimension: target 0 from B -> {0.5, 0.5}; target 1 from A -> {2, 3}; target 2 from A -> {4, 5}
    x, y = virtual_best([a, b], 2, n_samples=100)
    np.testing.assert_array_equal(x, [0.5, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(y, np.array([2, 3, 4, 5, 6]) / 6)
    # ties go to the earlier campaign, as cocopp's BestAlgSet
    assert list(best_art_table([a, a])[(1, 2)][1]) == [0, 0, 0]
    with pytest.raises(ValueError, match="^campaigns: "):
        virtual_best([a, _campaign()], 2)


def test_virtual_best_unsolved_pairs_count():
    a = _ecdf_campaign(algorithm="A")
    x, y = virtual_best([a], 2, n_samples=100)
    xa, ya = runtime_ecdf(a, 2, n_samples=100)
    np.testing.assert_array_equal(x, xa)
    np.testing.assert_allclose(y, ya)


# ----------------------------------------------------------------------------- AlgoPerf


def test_algoperf_score_by_hand():
    t = np.array([
        [1.0, 2.0],   # ratios 1, 2
        [3.0, 1.5],   # ratios 2, 1
        [INF, 10.0],  # ratios inf, 1
    ])
    # solver 0: rho = 1/3 on [1, 2), 2/3 on [2, 4] -> integral 1/3 * 1 + 2/3 * 2 = 5/3, / (4 - 1) = 5/9
    # solver 1: rho = 2/3 on [1, 2), 1 on [2, 4]   -> integral 2/3 * 1 + 1 * 2 = 8/3, / 3 = 8/9
    np.testing.assert_allclose(algoperf_score(t), [5 / 9, 8 / 9], rtol=1e-15)
    # r_max = 2: solver 0: 1/3 * 1 / 1 = 1/3; solver 1: 2/3
    np.testing.assert_allclose(algoperf_score(t, r_max=2.0), [1 / 3, 2 / 3], rtol=1e-15)


def test_algoperf_score_matches_fine_grid():
    rng = np.random.default_rng(0)
    t = rng.uniform(1, 5, size=(20, 4))
    t[rng.random(t.shape) < 0.2] = INF
    taus = np.linspace(1, 4, 300_001)
    ratio = t / t.min(axis=1, keepdims=True)
    rho = (ratio[:, :, None] <= taus).mean(axis=0)  # (solvers, taus)
    grid = np.trapezoid(rho, taus, axis=1) / 3 if hasattr(np, "trapezoid") else np.trapz(rho, taus, axis=1) / 3
    np.testing.assert_allclose(algoperf_score(t), grid, atol=1e-4)


def test_algoperf_score_edges():
    # ratio beyond r_max earns nothing; a problem nobody solves only counts in |P|; zero best cost
    t = np.array([[1.0, 5.0], [INF, INF], [0.0, 0.0], [0.0, 2.0]])
    # solver 0: credits 1, 0, 1, 1 -> 3/4; solver 1: 0, 0, 1, 0 -> 1/4
    np.testing.assert_allclose(algoperf_score(t), [0.75, 0.25])
    for bad, field in [(np.array([1.0, 2.0]), "t"), (np.array([[1.0, -1.0]]), "t"), (np.array([[np.nan, 1.0]]), "t")]:
        with pytest.raises(ValueError, match=f"^{field}: "):
            algoperf_score(bad)
    with pytest.raises(ValueError, match="^r_max: "):
        algoperf_score(t, r_max=1.0)

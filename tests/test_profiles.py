"""Performance profiles (Dolan & Moré 2002) and data profiles (Moré & Wild 2009) on a tiny
hand-computed example, held-out config selection, and SweepResult.best() built on them."""

import json

import numpy as np
import pytest

from gradkit import profiles, runs

INF = np.inf
STEPS = 100
# held-out problems (odd starts) x solvers A, B, C: steps to settle, inf = never settles
T = np.array([[10, 20, INF],
              [40, 20, 10],
              [INF, INF, INF],
              [5, 5, 15]])


def result(settled: np.ndarray, per_step: float = 1.0) -> runs.RunResult:
    """A RunResult whose runs settle at ``settled`` (-1: never), cost ``1 + per_step * steps``."""
    settled = np.asarray(settled, dtype=np.int64)
    n = len(settled)
    ok = settled >= 0
    return runs.RunResult(
        final=np.zeros((n, 2)), final_value=np.zeros(n), final_grad_norm=np.zeros(n),
        diverged=np.zeros(n, bool), steps_recorded=np.array([STEPS]), first_hit=settled, settled_step=settled,
        ended_within=ok, final_distance=np.full(n, np.nan), cost=np.full(n, 1.0 + per_step * STEPS),
        cost_to_settle=np.where(ok, 1.0 + per_step * settled, np.inf))


def interleave(tune: np.ndarray, held_out: np.ndarray) -> np.ndarray:
    """Starts 0, 2, 4, ... tune; 1, 3, 5, ... are held out."""
    out = np.empty(2 * len(tune), dtype=np.int64)
    out[::2], out[1::2] = tune, held_out
    return out


def settled_column(t: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(t), t, -1).astype(np.int64)


def tiny_sweep(per_step=(1.0, 1.0, 1.0)) -> runs.SweepResult:
    tune = np.full(4, 50)
    res = {name: result(interleave(tune, settled_column(T[:, s])), per_step[s]) for s, name in enumerate("ABC")}
    return runs.SweepResult(res, {name: [{}] for name in "ABC"}, n_starts=8, steps=STEPS)


def test_performance_profile_matches_the_hand_computed_definition():
    # r = t / min_s t:  P1 (1, 2, inf)  P2 (4, 2, 1)  P3 unsolved  P4 (1, 1, 3)
    prof = profiles.performance_profile(tiny_sweep())
    assert prof.solvers == ["A", "B", "C"]
    np.testing.assert_array_equal(prof.taus, [1, 2, 3, 4])
    np.testing.assert_array_equal(prof.rho, [[0.5, 0.5, 0.5, 0.75],
                                             [0.25, 0.75, 0.75, 0.75],
                                             [0.25, 0.25, 0.5, 0.5]])
    np.testing.assert_array_equal(profiles.performance_ratios(T)[:, 0], [1, 4, INF, 1])
    again = profiles.performance_profile(tiny_sweep(), taus=[1.5, 8])
    np.testing.assert_array_equal(again.rho, [[0.5, 0.75], [0.25, 0.75], [0.25, 0.5]])


def test_data_profile_matches_the_hand_computed_definition():
    prof = profiles.data_profile(tiny_sweep())
    np.testing.assert_array_equal(prof.budgets, [0, 5, 10, 15, 20, 40])
    np.testing.assert_array_equal(prof.fraction, [[0, 0.25, 0.5, 0.5, 0.5, 0.75],
                                                  [0, 0.25, 0.25, 0.25, 0.75, 0.75],
                                                  [0, 0, 0.25, 0.5, 0.5, 0.5]])
    assert prof.unit == "steps"


def test_gradient_equivalent_costs_change_the_ranking():
    # C pays 1/4 per step (cost 1 + t/4), A and B pay 2: C is now best wherever it settles
    sw = tiny_sweep(per_step=(2.0, 2.0, 0.25))
    t = np.where(np.isfinite(T), 1 + T * np.array([2.0, 2.0, 0.25]), INF)
    solvers, cost = profiles.cost_matrix(sw, "gradient_equivalents")
    np.testing.assert_array_equal(cost, t)
    prof = profiles.performance_profile(sw, cost="gradient_equivalents", taus=[1.0])
    # P1: A 21, B 41 -> A; P2: C 3.5; P4: A 11, B 11, C 4.75 -> C
    np.testing.assert_array_equal(prof.rho[:, 0], [0.25, 0.0, 0.5])
    data = profiles.data_profile(sw, cost="gradient_equivalents", budgets=[4, 12])
    np.testing.assert_array_equal(data.fraction, [[0, 0.25], [0, 0.25], [0.25, 0.5]])


def test_several_landscapes_pool_their_problems_and_zero_cost_counts_as_ratio_one():
    other = runs.SweepResult({"A": result(interleave([1, 1], [0, 3])), "B": result(interleave([1, 1], [2, -1])),
                              "C": result(interleave([1, 1], [0, 0]))}, {n: [{}] for n in "ABC"}, 4, STEPS)
    prof = profiles.performance_profile([tiny_sweep(), other], taus=[1, 4])
    # pooled: the 4 problems above + (A 0, B 2, C 0) -> ratios (1, inf, 1) + (A 3, B inf, C 0) -> (inf, inf, 1)
    np.testing.assert_array_equal(prof.rho * 6, [[3, 4], [1, 3], [3, 4]])
    with pytest.raises(ValueError, match="same optimizers"):
        profiles.performance_profile([tiny_sweep(), runs.SweepResult({"A": result([1, 1])}, {"A": [{}]}, 2, STEPS)])
    with pytest.raises(ValueError, match="cost must be"):
        profiles.data_profile(tiny_sweep(), cost="seconds")


def test_the_profile_uses_the_config_chosen_on_the_tuning_half():
    # config 0 settles fast on the tuning starts but never on the held-out ones; config 1 the reverse
    settled = np.concatenate([interleave([3, 3], [-1, -1]), interleave([60, 60], [7, 9])])
    sw = runs.SweepResult({"A": result(settled), "B": result(interleave([20, 20], [14, 18]))},
                          {"A": [{"learning_rate": 0.1}, {"learning_rate": 0.2}], "B": [{}]}, 4, STEPS)
    assert sw.best_config("A") == 0
    np.testing.assert_array_equal(profiles.cost_matrix(sw)[1], [[INF, 14], [INF, 18]])
    best = {row["optimizer"]: row for row in sw.best()}
    assert best["A"]["learning_rate"] == 0.1 and best["A"]["converged"] == 0.0 and best["A"]["at_grid_edge"]
    assert best["A"]["median_settled"] == STEPS  # censored at the budget, never over successes only
    assert best["B"]["median_settled"] == 16 and best["B"]["converged"] == 1.0


def test_best_breaks_ties_by_profile_area_not_list_order():
    # both settle on every held-out start; 'slow' is listed first but 'fast' is never slower
    sw = runs.SweepResult({"slow": result(interleave([5, 5, 5], [30, 40, 10])),
                           "fast": result(interleave([5, 5, 5], [10, 20, 10]))},
                          {"slow": [{}], "fast": [{}]}, 6, STEPS)
    rows = sw.best()
    assert [r["optimizer"] for r in rows] == ["fast", "slow"]
    assert rows[0]["profile_area"] > rows[1]["profile_area"]
    area = profiles.profile_area(profiles.performance_profile(sw))
    # ratios: slow (3, 2, 1), fast (1, 1, 1); taus 1, 2, 3; area over log2 tau: slow 1/3 + 2/3 log2(3/2), fast log2 3
    np.testing.assert_allclose(area, [1 / 3 + 2 / 3 * np.log2(1.5), np.log2(3)], rtol=1e-15)


def test_at_grid_edge():
    grid = runs.grid_product({"learning_rate": [0.01, 0.1, 1.0], "beta": [0.9]})
    sw = runs.SweepResult({"m": result(np.zeros(6, np.int64))}, {"m": grid}, 2, STEPS)
    assert [sw.at_grid_edge("m", k) for k in range(3)] == [True, False, True]


def test_exports(tmp_path):
    perf = profiles.performance_profile(tiny_sweep())
    data = profiles.data_profile(tiny_sweep())
    loaded = json.loads(perf.to_json(tmp_path / "perf.json").read_text())
    assert loaded["taus"] == [1, 2, 3, 4] and loaded["rho"]["B"] == [0.25, 0.75, 0.75, 0.75]
    rows = (data.to_csv(tmp_path / "data.csv")).read_text().splitlines()
    assert rows[0] == "budget,A,B,C" and rows[-1] == "40.0,0.75,0.75,0.5"
    assert data.to_dict()["unit"] == "steps" and perf.to_dict()["solvers"] == ["A", "B", "C"]
    perf.to_csv(tmp_path / "perf.csv")
    assert (tmp_path / "perf.csv").read_text().splitlines()[1] == "1.0,0.5,0.25,0.25"

"""``gradkit race``: the leaderboard's numbers recomputed from the sweep, every family in one race,
the files it writes."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np

from gradkit.race.report import format_median
import optax
import pytest


from gradkit import landscapes, optim, race
from gradkit.cli import main


LRS = (1e-3, 1e-2, 1e-1)
CONFIG = race.RaceConfig(landscapes=("himmelblau", "seed_quadratic"), optimizers=("sgd", "adam", "newton_cg"),
                         learning_rates=LRS, starts_per_axis=4, steps=50, tol=1e-4, rtol=1e-7, top=3)


@pytest.fixture(scope="session")
def raced(tmp_path_factory):
    out = tmp_path_factory.mktemp("race")
    lines: list[str] = []
    result = race.race(race.RaceConfig(**{**CONFIG.__dict__, "out": str(out)}), echo=lines.append)
    return result, "\n".join(lines), out


def _rows(text: str, landscape: str) -> dict[str, list[str]]:
    """The printed leaderboard rows of ``landscape``: optimizer -> its columns."""
    block = text.split(f"== {landscape}:", 1)[1].split("\n== ", 1)[0].splitlines()[2:]
    rows = {}
    for line in block:
        parts = line.split()
        if parts and parts[0] in CONFIG.optimizers:
            rows[parts[0]] = parts[1:]
    return rows


def _censored_stats(sweep, name: str, config: int, starts: np.ndarray) -> tuple[float, float, float]:
    """Converged fraction, censored median settled step and divergence fraction of one config
    over ``starts``, straight from the per-run arrays."""
    def take(field):
        return np.asarray(getattr(sweep.results[name], field)).reshape(len(sweep.grids[name]), sweep.n_starts)[config,
                                                                                                              starts]
    conv = take("ended_within") & ~take("diverged")
    settled = np.where(conv, take("settled_step"), sweep.steps)
    return float(conv.mean()), float(np.median(settled)), float(take("diverged").mean())


def test_ended_within_is_the_documented_tolerance(raced):
    result, _, _ = raced
    for res in result.races:
        land = res.landscape
        assert res.tol == pytest.approx(CONFIG.tol + CONFIG.rtol * land.f_scale, rel=1e-12)
        assert res.f_star == land.f_star(res.starts.dtype)
        for name, rr in res.sweep.results.items():
            fin = ~np.asarray(rr.diverged)
            gap = np.abs(np.asarray(rr.final_value, dtype=np.float64) - res.f_star)
            np.testing.assert_array_equal(np.asarray(rr.ended_within)[fin], (gap <= res.tol)[fin], err_msg=name)


def test_leaderboard_numbers_recomputed_from_the_sweep(raced):
    result, text, _ = raced
    for res in result.races:
        sweep, rows = res.sweep, _rows(text, res.landscape.name)
        assert set(rows) == set(CONFIG.optimizers)
        tune, held = np.arange(sweep.n_starts)[::2], np.arange(sweep.n_starts)[1::2]
        order = [line.split()[0] for line in text.split(f"== {res.landscape.name}:", 1)[1].splitlines()[2:5]]
        converged_in_order = []
        for name in CONFIG.optimizers:
            configs = sweep.grids[name]
            keys = []
            for k in range(len(configs)):
                conv, settled, _ = _censored_stats(sweep, name, k, tune)
                keys.append((-conv, settled))
            best = min(range(len(configs)), key=lambda k: keys[k])
            # the chosen config may differ from ours only on a tie of (converged, median settled)
            row = next(r for r in res.leaderboard if r["optimizer"] == name)
            chosen = next(k for k, c in enumerate(configs) if all(row[key] == v for key, v in c.items()))
            assert keys[chosen] == keys[best], name
            conv, settled, diverged = _censored_stats(sweep, name, chosen, held)
            cols = rows[name]
            if name == "newton_cg":
                assert cols[0] == "-"  # no learning rate, one config
            elif all(_censored_stats(sweep, name, k, tune)[0] == 0 for k in range(len(configs))):
                assert cols[0] == "none"  # nothing converged on the tuning half: no best learning rate
                assert "none: no learning rate converged" in text
            else:
                lr = configs[chosen]["learning_rate"]
                edge = lr in (LRS[0], LRS[-1])
                assert cols[0] == f"{lr:.0e}" + ("*" if edge else "")
            assert cols[1] == f"{conv:.1%}" and cols[3] == format_median(settled) and cols[5] == f"{diverged:.1%}", name
            converged_in_order.append((order.index(name), conv))
        by_rank = [c for _, c in sorted(converged_in_order)]
        assert by_rank == sorted(by_rank, reverse=True)  # best first
        if any("*" in rows[n][0] for n in rows):
            assert "the best learning rate is the grid's first or last value" in text


def test_header_carries_the_context(raced):
    _, text, _ = raced
    header = text.split("\n== ", 1)[0]
    assert "16 starts (4 per axis" in header and "50 steps" in header
    assert f"{jax.device_count()} {jax.devices()[0].platform} device(s)" in header
    assert "tol 0.0001, rtol 1e-07" in header and "|f - f*| <= tol + rtol*f_scale" in header
    assert "1e-03 1e-02 1e-01" in header and "no learning rate: newton_cg" in header
    assert "counts as the budget (50)" in header and "chosen on 8 starts" in header and "other 8" in header
    assert re.search(r"== himmelblau: 112 runs; f\* = 0, within tol: \|f - f\*\| <= ", text)  # (3 lrs x 2 + 1) x 16


def test_files_written(raced):
    result, _, out = raced
    expected = {f"{land}_{kind}.png" for land in CONFIG.landscapes for kind in ("trajectories", "loss", "heatmap", "steps")}
    expected |= {"himmelblau_basins.png", "race.json"}
    expected |= {f"{p}_profile.{ext}" for p in ("performance", "data") for ext in ("png", "csv", "json")}
    names = {p.name for p in out.iterdir()}
    assert expected <= names, expected - names
    for name in expected:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    perf = json.loads((out / "performance_profile.json").read_text())
    assert set(perf["solvers"]) == set(CONFIG.optimizers)
    summary = json.loads((out / "race.json").read_text())
    assert summary["config"]["steps"] == 50 and set(summary["landscapes"]) == set(CONFIG.landscapes)
    for res in result.races:
        board = summary["landscapes"][res.landscape.name]["leaderboard"]
        assert [r["optimizer"] for r in board] == [r["optimizer"] for r in res.leaderboard]
        assert [r["converged"] for r in board] == [r["converged"] for r in res.leaderboard]
    csv_head = (out / "data_profile.csv").read_text().splitlines()[0]
    assert all(name in csv_head for name in CONFIG.optimizers)


def test_run_steps_counted_for_the_progress_bar(raced):
    result, _, _ = raced
    runs_done = sum(len(np.asarray(r.final_value)) for res in result.races for r in res.sweep.results.values())
    assert race.total_run_steps(CONFIG) == runs_done * CONFIG.steps == 2 * 7 * 16 * 50


@pytest.mark.parametrize("name, reference", [
    ("lbfgs", optax.lbfgs), ("newton_cg", optim.newton_cg),
    ("hessian_free", lambda: optim.hessian_free(curvature="hessian")),
    ("sophia", lambda: optim.sophia(1e-2)), ("adahessian", lambda: optim.adahessian(1e-2)),
])
def test_second_order_contenders_are_the_library_optimizers(name, reference):
    """The race's L-BFGS is optax.lbfgs, its Newton-CG, Hessian-free, Sophia and AdaHessian
    gradkit's, each run as a plain Python loop would (the Hessian-aware ones at learning rate 1e-2)."""
    land = landscapes.get("himmelblau")
    res = race.race_landscape("himmelblau", race.RaceConfig(optimizers=(name,), starts_per_axis=2, steps=20, out=None,
                                                            learning_rates=(1e-2,)))
    opt = reference()

    @jax.jit
    def step(x, state):
        value, grad = jax.value_and_grad(land)(x)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=land)
        return optax.apply_updates(x, updates), state

    for i, start in enumerate(np.asarray(res.starts)):
        x, state = jnp.asarray(start), opt.init(jnp.asarray(start))
        for _ in range(20):
            x, state = step(x, state)
        np.testing.assert_allclose(np.asarray(res.sweep.results[name].final)[i], x, rtol=1e-9, atol=1e-9)


def test_record_stride():
    assert race.record_stride(500, None) == 5 and race.record_stride(50, None) == 1
    assert race.record_stride(101, None) == 101 and race.record_stride(300, 3) == 3
    assert all(race.record_stride(s, None) * 100 >= s and s % race.record_stride(s, None) == 0 for s in range(1, 400))


def test_cli_race_prints_context_and_leaderboards(capsys):
    code = main(["race", "--landscapes", "seed_quadratic", "--optimizers", "sgd", "lbfgs", "--lrs", "0.01", "0.1",
                 "--starts", "2", "--steps", "20", "--no-plots", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("gradkit race: 1 landscape(s) x 2 optimizer(s), 4 starts (2 per axis")
    assert "== seed_quadratic: 12 runs" in out and "lbfgs" in out and "done in" in out

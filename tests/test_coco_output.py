"""COCO data format written by gradkit.race.coco_output, read back by cocopp.

The cocopp/cocoex checks skip when those packages are missing.  Timing (2 cores): the in-process
cocopp checks take about 1 s, the ``python -m cocopp`` subprocess about 4 s.
"""

import math
import os
import re
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from gradkit.race.coco import TARGETS, Campaign, art_table, average_runtime, default_n_samples, runtime_ecdf
from gradkit.race.coco_output import DEFAULT_ALGORITHM_INFO, evaluation_triggers, write_coco

INF = np.inf
REP_TOP = 100 * 10**0.1  # half a ladder step above targets[0]


def _hand_campaign(**kw):
    # run 0: f1 d2 i2; run 1: f1 d2 i1; run 2: f1 d3 i1; run 3: f2 d2 i1
    tc = np.full((4, 51), INF)
    tc[0, :3], tc[0, 3] = 2.5, 7.0          # targets 0-2 at 2.5, target 3 at 7
    tc[1, :2] = 1.0
    tc[2, :51] = np.arange(1, 52)
    base = dict(algorithm="HAND", function=[1, 1, 1, 2], instance=[2, 1, 1, 1], dimension=[2, 2, 3, 2],
                target_costs=tc, total_cost=[10.25, 4.0, 60.0, 3.0], best_delta_f=[20.0, 50.0, 0.0, 150.0])
    base.update(kw)
    return Campaign(**base)


def _rows(path):
    """Blocks of rows (lists of floats) of a .dat/.tdat file, split at the % header lines."""
    blocks = []
    for line in path.read_text().splitlines():
        if line.startswith("%"):
            blocks.append([])
        else:
            blocks[-1].append([float(v) for v in line.split()])
    return [np.array(b) for b in blocks]


# ----------------------------------------------------------------------------- format, no cocopp needed


def test_layout_and_info_entries(tmp_path):
    out = write_coco(tmp_path / "exdata", _hand_campaign())
    assert out == tmp_path / "exdata" / "HAND"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["bbobexp_f1.info", "bbobexp_f2.info",
                     "data_f1/bbobexp_f1_DIM2.dat", "data_f1/bbobexp_f1_DIM2.tdat",
                     "data_f1/bbobexp_f1_DIM3.dat", "data_f1/bbobexp_f1_DIM3.tdat",
                     "data_f2/bbobexp_f2_DIM2.dat", "data_f2/bbobexp_f2_DIM2.tdat"]
    head = ("suite = 'bbob', funcId = 1, DIM = {d}, Precision = 1.000e-08, algId = 'HAND', coco_version = '2.8.2', "
            "logger = 'bbob', data_format = 'bbob-new2', settings = ''")
    # runs sorted by instance; instance:evaluations|final Δf; evaluations = ceil(total cost); no final newline
    assert (out / "bbobexp_f1.info").read_text() == "\n".join([
        head.format(d=2), f"% {DEFAULT_ALGORITHM_INFO}", "data_f1/bbobexp_f1_DIM2.dat, 1:4|5.0e+01, 2:11|2.0e+01",
        head.format(d=3), f"% {DEFAULT_ALGORITHM_INFO}", "data_f1/bbobexp_f1_DIM3.dat, 1:60|0.0e+00",
    ])
    assert (out / "bbobexp_f2.info").read_text().endswith("data_f2/bbobexp_f2_DIM2.dat, 1:3|1.5e+02")


def test_dat_and_tdat_rows_by_hand(tmp_path):
    out = write_coco(tmp_path, _hand_campaign(), algorithm_info="my algo, v1")
    assert "\n% my algo, v1\n" in (out / "bbobexp_f1.info").read_text()
    t = TARGETS
    rep = {-1: REP_TOP, 1: math.sqrt(t[1] * t[2]), 2: math.sqrt(t[2] * t[3]), 3: math.sqrt(t[3] * t[4])}
    dat = _rows(out / "data_f1/bbobexp_f1_DIM2.dat")
    assert [b.shape[1] for b in dat] == [5, 5]
    # instance 1 (run 1): targets 0, 1 at cost 1 -> first row already at level 1; last row at 4 carries best 50
    np.testing.assert_array_equal(dat[0][:, 0], [1, 4])
    np.testing.assert_allclose(dat[0][:, 2], [rep[1], 50.0], rtol=1e-9)
    # instance 2 (run 0): nothing at evaluation 1; targets 0-2 at ceil(2.5) = 3; target 3 at 7; end at ceil(10.25) = 11
    np.testing.assert_array_equal(dat[1][:, 0], [1, 3, 7, 11])
    np.testing.assert_allclose(dat[1][:, 2], [REP_TOP, rep[2], rep[3], 20.0], rtol=1e-9)
    np.testing.assert_array_equal(dat[1][:, 1], 0)  # g-evaluations
    np.testing.assert_array_equal(dat[1][:, 2], dat[1][:, 3])
    # Δf strictly inside (next target, deepest target reached]
    assert t[4] < dat[1][2, 2] <= t[3] and t[3] < dat[1][1, 2] <= t[2]
    tdat = _rows(out / "data_f1/bbobexp_f1_DIM2.tdat")
    # cocoex's evaluation triggers for dimension 2 up to 11: floor(10^(k/20)) and 2 * {1, 2, 5} * 10^i, plus 11
    np.testing.assert_array_equal(tdat[1][:, 0], [1, 2, 3, 4, 5, 6, 7, 8, 10, 11])
    np.testing.assert_allclose(tdat[1][:, 2], [REP_TOP] * 2 + [rep[2]] * 4 + [rep[3]] * 3 + [20.0], rtol=1e-9)
    # run reaching every target, best Δf 0: last row 0, the one before half a step below 1e-8
    dat3 = _rows(out / "data_f1/bbobexp_f1_DIM3.dat")[0]
    np.testing.assert_array_equal(dat3[:, 0], np.r_[1:52, 60])
    assert dat3[-1, 2] == 0.0 and dat3[-2, 2] == pytest.approx(t[-1] / 10**0.1)


def test_fractional_costs_round_up(tmp_path):
    tc = np.full((1, 51), INF)
    tc[0, :5] = [0.5, 0.5, 1.5, 12.5, 12.5]
    c = Campaign(algorithm="FRAC", function=[3], instance=[1], dimension=[2], target_costs=tc, total_cost=[20.5])
    dat = _rows(write_coco(tmp_path / "a", c) / "data_f3/bbobexp_f3_DIM2.dat")[0]
    np.testing.assert_array_equal(dat[:, 0], [1, 2, 13, 21])  # max(1, ceil(cost))
    dat2 = _rows(write_coco(tmp_path / "b", c, cost_scale=2) / "data_f3/bbobexp_f3_DIM2.dat")[0]
    np.testing.assert_array_equal(dat2[:, 0], [1, 3, 25, 41])  # exact in function-value units
    assert "1:41|" in (tmp_path / "b/FRAC/bbobexp_f3.info").read_text()


def test_write_errors_and_overwrite(tmp_path):
    c = _hand_campaign()
    out = write_coco(tmp_path, c)
    with pytest.raises(FileExistsError):
        write_coco(tmp_path, c)
    (out / "stale.txt").write_text("x")
    assert write_coco(tmp_path, c, overwrite=True) == out
    assert not (out / "stale.txt").exists()
    with pytest.raises(ValueError, match="^algorithm_info: "):
        write_coco(tmp_path / "x", c, algorithm_info="two\nlines")
    with pytest.raises(ValueError, match="^cost_scale: "):
        write_coco(tmp_path / "x", c, cost_scale=0)
    with pytest.raises(ValueError, match="^campaign: "):
        write_coco(tmp_path / "x", object())


def test_evaluation_triggers_values():
    # as cocoex 2.8.2 writes them for a 300-evaluation run in dimension 3
    assert evaluation_triggers(300, 3) == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 14, 15, 17, 19, 22, 25, 28, 30, 31, 35,
                                           39, 44, 50, 56, 60, 63, 70, 79, 89, 100, 112, 125, 141, 150, 158, 177, 199,
                                           223, 251, 281, 300]


# ----------------------------------------------------------------------------- against cocoex's own files


def test_format_matches_cocoex_observer(tmp_path, monkeypatch):
    cocoex = pytest.importorskip("cocoex")
    monkeypatch.chdir(tmp_path)
    suite = cocoex.Suite("bbob", "", "function_indices: 1 dimensions: 2,3 instance_indices: 1-2")
    observer = cocoex.Observer("bbob", "result_folder: RS algorithm_name: RS")
    rng = np.random.default_rng(0)
    for problem in suite:
        problem.observe_with(observer)
        for _ in range(300):
            problem(rng.uniform(-5, 5, problem.dimension))
        problem.free()
    del observer
    theirs = tmp_path / "exdata" / "RS"
    ours = write_coco(tmp_path / "ours", _hand_campaign(algorithm="RS", function=[1, 1, 1, 1]))

    def info_keys(path):
        return [re.findall(r"(\w+) = ", line) for line in path.read_text().splitlines()[::3]]

    assert info_keys(ours / "bbobexp_f1.info") == info_keys(theirs / "bbobexp_f1.info")
    info = (theirs / "bbobexp_f1.info").read_text()
    for field in ("suite = 'bbob'", "Precision = 1.000e-08", "logger = 'bbob'", "data_format = 'bbob-new2'"):
        assert field in info and field in (ours / "bbobexp_f1.info").read_text()
    assert re.search(r"^data_f1/bbobexp_f1_DIM2\.dat, 1:300\|\d\.\de[+-]\d\d, 2:300\|\d\.\de[+-]\d\d$", info, re.M)
    for d in (2, 3):
        for ext in ("dat", "tdat"):
            blocks = _rows(theirs / f"data_f1/bbobexp_f1_DIM{d}.{ext}")
            assert len(blocks) == 2 and all(b[0, 0] == 1 and b[-1, 0] == 300 for b in blocks)
            assert all(b.shape[1] == 5 + d for b in blocks)  # ours: the same first 5 columns, no x
        # the .tdat evaluations are exactly cocoex's triggers
        for b in _rows(theirs / f"data_f1/bbobexp_f1_DIM{d}.tdat"):
            assert list(b[:, 0].astype(int)) == evaluation_triggers(300, d)


# ----------------------------------------------------------------------------- read back by cocopp


def _synthetic_campaign(*, fractional=False, seed=0, dims=(2, 5)):
    """2 functions x 2 dimensions x 3 instances on TARGETS; f8 in 5-D has 2 runs per instance."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in (1, 8):
        for d in dims:
            for _ in range(2 if (f, d) == (8, 5) else 1):
                for i in (1, 2, 3):
                    depth = int(rng.integers(0, 52))  # number of targets reached
                    steps = np.cumsum(rng.integers(1, 40, size=51)).astype(float)
                    if fractional:
                        steps = steps + 0.5 * rng.integers(0, 2, size=51)
                        steps = np.maximum.accumulate(steps)
                    tc = np.where(np.arange(51) < depth, steps, INF)
                    total = (steps[depth - 1] if depth else 0.0) + float(rng.integers(1, 200)) + (0.5 if fractional else 0.0)
                    rows.append((f, i, d, tc, total))
    f, i, d, tc, total = zip(*rows)
    return Campaign(algorithm="SYN", function=f, instance=i, dimension=d, target_costs=np.array(tc), total_cost=total)


def _load(cocopp, folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cocopp.pproc.DataSetList(str(folder))


@pytest.mark.parametrize("fractional", [False, True])
def test_cocopp_reads_back_the_art(tmp_path, fractional):
    cocopp = pytest.importorskip("cocopp")
    c = _synthetic_campaign(fractional=fractional)
    dsl = _load(cocopp, write_coco(tmp_path, c))
    assert sorted((ds.funcId, ds.dim) for ds in dsl) == c.problems()
    from cocopp import testbedsettings

    # cocopp's own bbob targets are TARGETS, bit for bit
    np.testing.assert_array_equal(testbedsettings.current_testbed.pprldmany_target_values((1, 2)), TARGETS)
    tab = art_table(c)
    for ds in dsl:
        idx = c.runs_of(ds.funcId, ds.dim)
        idx = idx[np.argsort(c.instance[idx], kind="stable")]
        assert list(ds.instancenumbers) == list(c.instance[idx])
        # cocopp's aRT (detERT) at every target == ours on the costs rounded up to integers
        theirs = np.array(ds.detERT(list(TARGETS)))
        ours = average_runtime(np.ceil(c.target_costs[idx]), np.ceil(c.total_cost[idx]))
        np.testing.assert_allclose(theirs, ours, rtol=1e-12)
        np.testing.assert_array_equal(np.isinf(theirs), np.isinf(ours))
        if not fractional:
            np.testing.assert_allclose(theirs, tab[(ds.funcId, ds.dim)].art, rtol=1e-12)
        # per-run first hitting evaluations (detEvals, nan = never) for a few targets
        for j in (0, 10, 25, 50):
            ev = ds.detEvals([TARGETS[j]])[0]
            want = np.ceil(c.target_costs[idx, j])
            np.testing.assert_array_equal(np.where(np.isnan(ev), INF, ev), want)
        np.testing.assert_array_equal(ds.readmaxevals, np.ceil(c.total_cost[idx]))


def test_cocopp_ecdf_samples_match(tmp_path):
    """pprldmany's bootstrap, replayed with cocopp's own detEvals/drawSP, on data where each
    (function, target) is solved by all runs or by none (so both bootstraps are exact)."""
    cocopp = pytest.importorskip("cocopp")
    from cocopp import toolsstats

    rng = np.random.default_rng(1)
    rows = []
    for f, depth in ((1, 40), (2, 12), (3, 0)):
        for i in (1, 2, 3):
            steps = np.cumsum(rng.integers(1, 30, size=51)).astype(float)
            rows.append((f, i, np.where(np.arange(51) < depth, steps, INF), steps[-1] + 5))
    f, i, tc, total = zip(*rows)
    c = Campaign(algorithm="ALLNONE", function=f, instance=i, dimension=[5] * 9, target_costs=np.array(tc), total_cost=total)
    dsl = _load(cocopp, write_coco(tmp_path, c))
    n = default_n_samples(3)  # pprldmany.main's sample size for 3 runs per function: 99
    samples = []
    for ds in sorted(dsl, key=lambda ds: ds.funcId):
        for t in TARGETS:
            evals = ds.detEvals([t])[0]
            succ, unsucc = evals[~np.isnan(evals)] / 5, ds.maxevals[np.isnan(evals)] / 5
            samples.extend(toolsstats.drawSP(succ, unsucc, [50], samplesize=n)[1] if len(succ) else [INF] * n)
    samples = np.array(samples)
    x, y = runtime_ecdf(c, 5)
    xs, counts = np.unique(samples[np.isfinite(samples)], return_counts=True)
    np.testing.assert_allclose(x, xs, rtol=1e-12)
    np.testing.assert_allclose(y, np.cumsum(counts) / samples.size, rtol=1e-12)


def test_cocopp_postprocessing_runs(tmp_path):
    """``python -m cocopp`` on the written folder: exit 0 and an index.html.

    2 functions x 1 dimension x 3 instances: about 4 s on 2 cores (2 dimensions: 12 s)."""
    pytest.importorskip("cocopp")
    pytest.importorskip("matplotlib")
    folder = write_coco(tmp_path / "exdata", _synthetic_campaign(dims=(2,)))
    env = dict(os.environ, MPLBACKEND="Agg")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cocopp", "-o", str(tmp_path / "ppdata"), str(folder)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "ppdata" / "index.html").is_file()
    assert elapsed < 120

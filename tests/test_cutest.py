"""gradkit.suites.cutest: sif2jax's unconstrained CUTEst problems as a benchmark suite.

Skipped without sif2jax.  ``pytest.importorskip("sif2jax")`` would run sif2jax's full
``__init__`` (a minute or more: CLEUVEN7 builds a matrix with 36 000 eager scatters at import),
so the suite's own loader, which imports only the unconstrained subpackage, is the probe.
"""

import importlib.metadata
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from gradkit.suites import cutest

try:
    SOURCES = {p.name: p for p in cutest.sif2jax_problems()}
except ImportError as error:  # sif2jax is optional (extra "suites")
    pytest.skip(str(error), allow_module_level=True)


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


def _stated(source):
    value = source.expected_objective_value
    value = value() if callable(value) else value
    return None if value is None else float(np.asarray(value, dtype=np.float64))


# Classic problems whose stated optimum and minimizer sif2jax gives and the audit confirms.
CLASSIC = ["ROSENBR", "BEALE", "HELIX", "BOX3", "DENSCHNA", "HIMMELBH"]


@pytest.mark.parametrize("name", CLASSIC)
def test_matches_sif2jax(name):
    (problem,) = cutest.problems([name])
    source = SOURCES[name]
    y0 = np.asarray(source.y0, dtype=np.float64)
    assert problem.dimension == y0.size and problem.x0.dtype == np.float64
    np.testing.assert_array_equal(problem.x0, y0)
    assert not problem.x0.flags.writeable
    assert float(problem(problem.x0)) == float(source.objective(jnp.asarray(y0), source.args))
    assert problem.f_opt == _stated(source) and problem.f_opt_source == cutest.SOURCE_SIF2JAX
    assert problem.has_known_optimum and problem.f_opt_note is None
    x_star = source.expected_result
    assert x_star is not None
    assert abs(float(problem(jnp.asarray(x_star, dtype=jnp.float64))) - problem.f_opt) <= 1e-8


def _bfgs(problem):
    value_and_grad = jax.jit(jax.value_and_grad(problem))
    fun = lambda x: tuple(np.asarray(v, dtype=np.float64) for v in value_and_grad(x))
    return scipy.optimize.minimize(fun, problem.x0, jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 2000}).fun


@pytest.mark.parametrize("name", ["ROSENBR", "BEALE", "HELIX"])
def test_bfgs_reaches_f_opt(name):
    """An independent solver (scipy BFGS on jax.grad) from x0 reaches sif2jax's f_opt."""
    (problem,) = cutest.problems([name])
    f = _bfgs(problem)
    assert abs(f - problem.f_opt) <= 1e-6
    assert cutest.is_solved(f, problem.f_opt)


@pytest.mark.parametrize("name", ["DANIWOODLS", "JENSMP", "PALMER5C"])
def test_bfgs_confirms_audited_f_opt(name):
    """Where the audit corrected sif2jax's value, BFGS reaches the corrected one, not the stated one."""
    (problem,) = cutest.problems([name])
    assert problem.f_opt_source == cutest.SOURCE_AUDITED and problem.f_opt != problem.f_opt_sif2jax
    assert problem.f_opt_sif2jax == _stated(SOURCES[name]) and problem.f_opt_note.startswith("sif2jax states")
    f = _bfgs(problem)
    assert abs(f - problem.f_opt) <= 1e-6 * max(1.0, abs(problem.f_opt))
    assert not cutest.is_solved(f, problem.f_opt_sif2jax)  # judged by the stated value, it would fail


def test_names_and_errors():
    assert [p.name for p in cutest.problems(["rosenbr", "BEALE"])] == ["ROSENBR", "BEALE"]
    assert cutest.problems(["rosenbr"])[0] is cutest.problems(["ROSENBR"])[0]
    with pytest.raises(ValueError, match=r"unknown CUTEst problem 'ROSENBRK'.*did you mean ROSENBR") as info:
        cutest.problems(["ROSENBRK"])
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="named twice"):
        cutest.problems(["BEALE", "beale"])
    with pytest.raises(ValueError, match="max_dimension 10"):
        cutest.problems(["CHNROSNB"], max_dimension=10)
    with pytest.raises(ValueError, match="10FOLDTRLS.*unbounded below"):
        cutest.problems(["10FOLDTRLS"])
    assert cutest.problems(["10FOLDTRLS"], include_broken=True)[0].f_opt is None
    with pytest.raises(ValueError, match="shape"):
        cutest.problems(["BEALE"])[0](jnp.zeros(3))


def test_catalogue_and_metadata_counts():
    everything = cutest.problems(include_broken=True)
    names = [p.name for p in everything]
    assert names == sorted(SOURCES) == list(cutest.names()) and len(set(names)) == len(names)
    broken = dict(cutest.broken_problems())
    assert set(broken) == {"10FOLDTRLS"} and [p.name for p in cutest.problems()] == [n for n in names if n not in broken]
    small = cutest.problems(max_dimension=10)
    assert small and all(p.dimension <= 10 for p in small)
    assert {p.name for p in small} == {p.name for p in everything if p.dimension <= 10 and p.name not in broken}
    # sif2jax's metadata: f_opt_sif2jax is exactly what sif2jax states, for every problem
    stated = {name: _stated(source) for name, source in SOURCES.items()}
    assert {p.name: p.f_opt_sif2jax for p in everything} == stated
    with_value = [p for p in everything if p.f_opt_sif2jax is not None]
    disputed = [name for name, entry in cutest.F_OPT_AUDIT.items() if entry[1] is None]
    assert sum(p.has_known_optimum for p in everything) == len(with_value) - len(disputed)
    assert sum(not p.has_known_optimum for p in everything) == len(everything) - len(with_value) + len(disputed)
    for p in everything:
        assert p.has_known_optimum == (p.f_opt_source is not None)
        if p.name in cutest.F_OPT_AUDIT and importlib.metadata.version("sif2jax") == cutest.AUDITED_SIF2JAX_VERSION:
            assert p.f_opt_note is not None and p.f_opt == cutest.F_OPT_AUDIT[p.name][1]  # every audit entry applies


def test_analytic_corrections():
    chainwoo, dixmaanb, mexhat = cutest.problems(["CHAINWOO", "DIXMAANB", "MEXHAT"])
    assert float(jax.jit(chainwoo)(jnp.ones(chainwoo.dimension))) == chainwoo.f_opt == 1.0
    assert float(jax.jit(dixmaanb)(jnp.zeros(dixmaanb.dimension))) == dixmaanb.f_opt == 1.0
    x1 = 1.0 + np.sqrt(0.02 + 1e-5)  # the closed-form minimizer
    assert abs(float(mexhat(jnp.array([x1, x1**2]))) - mexhat.f_opt) <= 1e-12


def test_select_and_fits():
    rosen, chnrosnb = cutest.problems(["ROSENBR", "CHNROSNB"])
    assert cutest.fits(rosen, runs=8, steps=100, max_bytes=2**20) is None
    kept, skipped = cutest.select([rosen, chnrosnb], runs=8, steps=100, max_bytes=2 * 8 * 16 * 8)
    assert kept == [rosen]
    assert skipped[0][0] == "CHNROSNB" and skipped[0][1].startswith("memory: dimension 50 x 8 runs")
    kept, skipped = cutest.select([rosen, chnrosnb], runs=8, steps=100, max_bytes=2**30, max_work=1000)
    assert kept == [] and [s[1].split(":")[0] for s in skipped] == ["time", "time"]
    with pytest.raises(ValueError, match="runs must be positive"):
        cutest.fits(rosen, runs=0, steps=1, max_bytes=1)


def test_solved_and_reference_values():
    assert cutest.solved_threshold(0.0) == pytest.approx(1e-8 + 1e-6)
    assert cutest.solved_threshold(-1000.0, tol_abs=0.0, tol_rel=1e-3) == pytest.approx(-999.0)
    assert cutest.is_solved(1.0 + 1e-6, 1.0) and not cutest.is_solved(1.0 + 1e-5, 1.0) and not cutest.is_solved(float("nan"), 1.0)
    assert cutest.more_wild_solved(0.01, 1.0, 0.0, 0.1) and not cutest.more_wild_solved(0.5, 1.0, 0.0, 0.1)
    rosen, judge, lanczos, engval1 = cutest.problems(["ROSENBR", "JUDGE", "LANCZOS1LS", "ENGVAL1"])
    assert lanczos.f_opt_sif2jax is None and judge.f_opt is None and "disputed" in judge.f_opt_note
    refs = cutest.reference_values([rosen, judge, lanczos, engval1], {"judge": 16.08, "LANCZOS1LS": 1e-9, "ROSENBR": 1e-3})
    assert refs == {
        "ROSENBR": (0.0, "sif2jax"),
        "JUDGE": (16.08, "best found"),
        "LANCZOS1LS": (1e-9, "best found"),
        "ENGVAL1": (engval1.f_opt, "sif2jax (audited)"),
    }
    assert cutest.reference_values([rosen], {"ROSENBR": -1.0})["ROSENBR"] == (-1.0, cutest.SOURCE_BELOW_SIF2JAX)
    with pytest.raises(ValueError, match="no reference value for JUDGE, LANCZOS1LS"):
        cutest.reference_values([rosen, judge, lanczos], {"JUDGE": float("nan")})


def test_grad_under_jit_and_vmap():
    """jit(vmap(grad)) over a batch equals per-point grad (incl. a problem whose data sits in args)."""
    rng = np.random.default_rng(0)
    for problem in cutest.problems(["ROSENBR", "CHNROSNB", "PALMER1C"]):
        points = problem.x0 + 0.1 * rng.standard_normal((4, problem.dimension))
        batched = jax.jit(jax.vmap(jax.grad(problem)))(jnp.asarray(points))
        grad = jax.jit(jax.grad(problem))
        single = np.stack([np.asarray(grad(jnp.asarray(x))) for x in points])
        np.testing.assert_allclose(np.asarray(batched), single, rtol=1e-12, atol=1e-12 * np.abs(single).max())
        values = jax.jit(jax.vmap(problem))(jnp.asarray(points))
        assert values.shape == (4,) and values.dtype == jnp.float64


def test_broken_problems_checks():
    assert [n for n, _ in cutest.broken_problems("float32")] == ["10FOLDTRLS"]
    (tenfold,) = cutest.problems(["10FOLDTRLS"], include_broken=True)
    assert cutest.check(tenfold, "float64") is None  # evaluates cleanly at x0; it is unbounded below
    assert "inf" in cutest.check(tenfold, "float32")
    assert "10FOLDTRLS" not in {p.name for p in cutest.problems(dtype="float32")}
    with pytest.raises(ValueError, match="dtype"):
        cutest.broken_problems("int32")


def test_import_is_light_and_leaves_x64_alone():
    """A fresh process: one-line ImportError without sif2jax; with it only the unconstrained
    subpackage is imported and jax_enable_x64 stays off."""
    code = (
        "import sys, jax\n"
        "from gradkit.suites import cutest\n"
        "sys.modules['sif2jax'] = None  # as if not installed\n"
        "try:\n"
        "    cutest.problems(['ROSENBR'])\n"
        "except ImportError as error:\n"
        "    assert 'pip install -e \".[suites]\"' in str(error) and '\\n' not in str(error), error\n"
        "else:\n"
        "    raise AssertionError('no ImportError without sif2jax')\n"
        "del sys.modules['sif2jax']\n"
        "(p,) = cutest.problems(['ROSENBR'])\n"
        "assert p.x0.tolist() == [-1.2, 1.0], p.x0\n"
        "assert not jax.config.jax_enable_x64\n"
        "assert 'sif2jax.cutest._constrained_minimisation' not in sys.modules\n"
        "assert p(p.x0).dtype == jax.numpy.float32\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

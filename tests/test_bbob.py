"""gradkit.suites.bbob against COCO's own implementation (the ``cocoex`` package).

Every function f1-f24, instances 1-15, dimensions 2, 3, 5, 10, 20, 40: values at random
points (inside and outside [-5, 5]^d, so the boundary penalties count) and at ``x_opt`` equal
cocoex's to 1e-9 relative (absolute below magnitude 1); ``x_opt`` is COCO's best parameter
and ``name`` its problem id.  Ours is evaluated with one jitted, vmapped call per (function,
dimension) over all instances and points, which bounds compile time.  Then: one compile for
many instances, ``jax.grad`` against central differences, float32, and argument errors.
"""

from __future__ import annotations

import dataclasses
import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _jax_counters import compiles
from gradkit import lifting
from gradkit.suites.bbob import FUNCTION_GROUPS, NONSMOOTH, BBOBProblem, bbob, evaluate, instance_data

cocoex = pytest.importorskip("cocoex")

FUNCTIONS = tuple(range(1, 25))
DIMENSIONS = (2, 3, 5, 10, 20, 40)
INSTANCES = tuple(range(1, 16))
SMOOTH = frozenset({1, 2, 3, 4, 6, 8, 9, 10, 11, 12, 19, 20})  # C^1 on all of R^d
RTOL = 1e-9


@pytest.fixture(autouse=True)
def _x64():
    """float64 for these tests whatever the global setting (restored afterwards)."""
    with jax.enable_x64(True):
        yield


@functools.cache
def _suite():
    # ask for instances 1-15 explicitly: the default instances of "bbob" depend on the year
    return cocoex.Suite("bbob", "instances: 1-15", "dimensions: 2,3,5,10,20,40")


def _coco(function: int, dimension: int, instance: int):
    return _suite().get_problem_by_function_dimension_instance(function, dimension, instance)


def _assert_close(ours, ref, what: str) -> None:
    """Relative error <= RTOL, absolute where |ref| < 1."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    err = np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err.max() <= RTOL, f"{what}: error {err.max():.3g} at {worst}: ours {ours[worst]!r}, COCO {ref[worst]!r}"


def _stack(datas):
    return {k: np.stack([d[k] for d in datas]) for k in datas[0]}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_values_match_cocoex(function):
    """Every instance 1-15 in every COCO dimension: random points in the box, points outside it,
    and x_opt (where both ours and COCO's equal f_opt)."""
    ours_fn = jax.jit(jax.vmap(partial(evaluate, function)))  # one compile per dimension
    for dim in DIMENSIONS:
        rng = np.random.default_rng(1000 * function + dim)
        data = _stack([instance_data(function, i, dim) for i in INSTANCES])
        points = np.concatenate(
            [rng.uniform(-5, 5, (len(INSTANCES), 4, dim)),  # the region of interest
             rng.uniform(-8, 8, (len(INSTANCES), 2, dim)),  # mostly outside: the penalties
             data["x_opt"][:, None, :]],
            axis=1,
        )
        ours = np.asarray(ours_fn(points, data))
        assert ours.shape == points.shape[:2] and ours.dtype == np.float64
        problems = [_coco(function, dim, i) for i in INSTANCES]
        ref = np.array([[problem(x) for x in xs] for problem, xs in zip(problems, points)])
        _assert_close(ours, ref, f"f{function} d{dim}")
        _assert_close(ours[:, -1], data["f_opt"], f"ours at x_opt, f{function} d{dim}")
        _assert_close(ref[:, -1], data["f_opt"], f"COCO at x_opt, f{function} d{dim}")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_optimum_and_name_match_cocoex(function, tmp_path, monkeypatch):
    """``x_opt`` is COCO's best parameter (COCO prints it to a file in the working directory),
    COCO's value there is ``f_opt``, and ``name`` is COCO's problem id."""
    monkeypatch.chdir(tmp_path)
    for dim in DIMENSIONS:
        problems = [bbob(function, instance, dim) for instance in INSTANCES]
        cocos = [_coco(function, dim, instance) for instance in INSTANCES]
        assert [p.name for p in problems] == [c.id for c in cocos]
        f_opt = np.array([p.f_opt for p in problems])
        _assert_close([c(p.x_opt) for p, c in zip(problems, cocos)], f_opt, f"COCO at x_opt, f{function} d{dim}")
        best = []
        for coco in cocos:
            coco._best_parameter("print")
            best.append([float(v) for v in (tmp_path / "._bbob_problem_best_parameter.txt").read_text().split()])
        x_opt = np.array([p.x_opt for p in problems])
        # COCO prints 16 decimals: equal to that precision (the arrays are built bit for bit as in C)
        np.testing.assert_allclose(x_opt, np.array(best), rtol=0, atol=1e-15, err_msg=f"f{function} d{dim}")


def test_problem_object():
    p = bbob(7, 3, 5)
    assert dataclasses.is_dataclass(p) and [f.name for f in dataclasses.fields(p)] == ["function", "instance", "dimension", "data"]
    assert set(vars(p)) == {"function", "instance", "dimension", "data"}  # plain: every attribute a field
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.instance = 4
    assert p.name == "bbob_f007_i03_d05" and p.domain == ((-5.0, 5.0),) * 5
    assert isinstance(p.f_opt, float) and p.x_opt.shape == (5,) and p.x_opt.dtype == np.float64
    assert p.smooth is False and bbob(8, 1, 2).smooth is True
    assert float(p(p.x_opt)) == pytest.approx(p.f_opt, abs=1e-12)
    # same keys and shapes for every instance of one (function, dimension): instances stack
    for function in FUNCTIONS:
        shapes = [{k: v.shape for k, v in instance_data(function, i, 3).items()} for i in (1, 2)]
        assert shapes[0] == shapes[1] and {"x_opt", "f_opt"} <= set(shapes[0]) and shapes[0]["f_opt"] == ()
        assert all(v.dtype == np.float64 for v in instance_data(function, 1, 3).values())
    assert sorted(i for group in FUNCTION_GROUPS.values() for i in group) == list(FUNCTIONS)
    assert FUNCTION_GROUPS["moderate"] == (6, 7, 8, 9) and FUNCTION_GROUPS["weakly-structured"] == (20, 21, 22, 23, 24)


def test_generators_follow_the_c_code():
    """The legacy generators, transcribed line by line from suite_bbob_legacy_code.c, against the
    vectorized ones the module uses: equal bit for bit."""
    import math

    from gradkit.suites.bbob_instances import _gauss, _rotation, _unif

    def unif(n, seed):
        seed = max(abs(seed), 1)
        akt, rgrand = seed, [0] * 32
        for i in range(39, -1, -1):
            tmp = akt // 127773
            akt = 16807 * (akt - tmp * 127773) - 2836 * tmp
            akt += 2147483647 if akt < 0 else 0
            if i < 32:
                rgrand[i] = akt
        aktrand, out = rgrand[0], []
        for _ in range(n):
            tmp = akt // 127773
            akt = 16807 * (akt - tmp * 127773) - 2836 * tmp
            akt += 2147483647 if akt < 0 else 0
            tmp = aktrand // 67108865
            aktrand, rgrand[tmp] = rgrand[tmp], akt
            out.append(aktrand / 2.147483647e9 or 1e-99)
        return np.array(out)

    def rotation(seed, dim):
        g = _gauss(dim * dim, seed)
        b = [[g[j * dim + i] for j in range(dim)] for i in range(dim)]
        for i in range(dim):
            for j in range(i):
                prod = 0.0
                for k in range(dim):
                    prod += b[k][i] * b[k][j]
                for k in range(dim):
                    b[k][i] -= prod * b[k][j]
            prod = 0.0
            for k in range(dim):
                prod += b[k][i] * b[k][i]
            for k in range(dim):
                b[k][i] /= math.sqrt(prod)
        return np.array(b)

    for n, seed in [(1, 1), (7, 0), (40, -3), (3200, 1000024), (4040, 160021), (50, 2**31 - 1), (60, 5 * 10**9)]:
        np.testing.assert_array_equal(_unif(n, seed), unif(n, seed))
    for dim, seed in [(2, 10015), (5, 1030007), (12, 20023)]:
        np.testing.assert_array_equal(_rotation(seed, dim), rotation(seed, dim))


def test_compiles_once_for_many_instances():
    x = np.linspace(-1.0, 2.0, 5)
    jitted = jax.jit(evaluate, static_argnums=0)
    before = compiles()
    values = [float(jitted(15, x, instance_data(15, i, 5))) for i in (1, 2, 3)]
    assert compiles() - before <= 1  # 0 if this very program was compiled before in this process
    if hasattr(jitted, "_cache_size"):
        assert jitted._cache_size() == 1
    assert values == pytest.approx([float(bbob(15, i, 5)(x)) for i in (1, 2, 3)], rel=1e-13)
    assert len(set(values)) == 3  # the instance data really is an argument

    # problems as jit arguments (a pytree: instance and arrays are leaves)
    call = jax.jit(lambda problem, x: problem(x))
    before = compiles()
    values = [float(call(bbob(15, i, 5), x)) for i in (4, 5, 6)]
    assert compiles() - before <= 1
    if hasattr(call, "_cache_size"):
        assert call._cache_size() == 1
    assert values == pytest.approx([float(bbob(15, i, 5)(x)) for i in (4, 5, 6)], rel=1e-13)

    # gradkit's compile cache keys the three problems alike (the arrays are lifted)
    specs = {lifting.lift(bbob(15, i, 5), floats=False)[0] for i in (1, 2, 3)}
    assert len(specs) == 1 and lifting.lift(bbob(16, 1, 5), floats=False)[0] not in specs

    # problems stack like their data: vmap over instances
    problems = [bbob(15, i, 5) for i in (1, 2, 3)]
    stacked = jax.tree.map(lambda *leaves: np.stack(leaves), *problems)
    assert isinstance(stacked, BBOBProblem) and stacked.data["R"].shape == (3, 5, 5)
    batched = jax.jit(jax.vmap(lambda problem, x: problem(x), in_axes=(0, None)))(stacked, x)
    np.testing.assert_allclose(batched, [float(p(x)) for p in problems], rtol=1e-13)


def test_nonsmooth_is_exactly_the_non_c1_functions():
    assert set(NONSMOOTH) == set(FUNCTIONS) - SMOOTH
    assert all(isinstance(text, str) and text and "\n" not in text for text in NONSMOOTH.values())
    assert all(bbob(f, 1, 2).smooth == (f in SMOOTH) for f in FUNCTIONS)


GRAD_DIM = 4


@pytest.mark.parametrize("function", FUNCTIONS)
def test_gradients(function):
    """``jax.grad`` is finite everywhere we look (x_opt, the origin, inside and outside the box);
    it agrees with central differences for the C^1 functions, and almost everywhere for the
    piecewise smooth ones (not f7, f16, f23, whose steps, 3^11 frequencies or 2^-33 kinks
    defeat differences); f7's gradient is 0 on its plateaus."""
    f = partial(evaluate, function)
    data = instance_data(function, 2, GRAD_DIM)
    rng = np.random.default_rng(function)
    near = data["x_opt"] + rng.uniform(-0.5, 0.5, (4, GRAD_DIM))
    box = rng.uniform(-4.5, 4.5, (4, GRAD_DIM))
    points = np.concatenate([near, box, data["x_opt"][None], np.zeros((1, GRAD_DIM)), rng.uniform(-8, 8, (2, GRAD_DIM))])
    directions = rng.normal(size=points.shape)
    h = 1e-6

    @jax.jit
    def probe(x, v, data):
        g = jax.vmap(jax.grad(f), in_axes=(0, None))(x, data)
        value, plus, minus = f(jnp.stack([x, x + h * v, x - h * v]), data)  # one copy of f in the program
        return g, jnp.sum(g * v, axis=-1), (plus - minus) / (2 * h), value

    g, gv, fd, value = (np.asarray(a) for a in probe(points, directions, data))
    assert np.isfinite(g).all(), f"f{function}: non-finite gradient at {points[~np.isfinite(g).all(axis=1)]}"
    if function not in (7, 16, 23):
        # near x_opt and in the box; f19's cos(100 (z_i^2 - z_{i+1})^2 + ...) is too fast for differences in the box
        checked = slice(0, 4 if function == 19 else 8)
        tol = 1e-5 * np.maximum(1.0, np.abs(gv[checked])) + 1e-9 * np.abs(value[checked])
        assert (np.abs(gv[checked] - fd[checked]) <= tol).all(), (function, gv[checked], fd[checked])
    if function == 7:
        assert (g[4:8] == 0).all()  # plateaus inside the box: zero gradient
    if function in SMOOTH:
        assert np.abs(g[8]).max() < 1e-6 * max(1.0, np.abs(g).max())  # a smooth minimum: zero gradient at x_opt


def test_float32():
    """float32 everywhere (x64 off): every function and its gradient run (one program for all 24),
    return float32, stay finite, and agree with COCO where float32 can."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, (3, 3))
    datas = [instance_data(function, 1, 3) for function in FUNCTIONS]

    def all_functions(x, datas):
        values = [evaluate(f, x, d) for f, d in zip(FUNCTIONS, datas)]
        grads = [jax.vmap(jax.grad(partial(evaluate, f)), in_axes=(0, None))(x, d) for f, d in zip(FUNCTIONS, datas)]
        return values, grads

    with jax.enable_x64(False):
        values, grads = jax.jit(all_functions)(x.astype(np.float32), datas)
    for function, value, g in zip(FUNCTIONS, values, grads):
        assert value.dtype == np.float32 and g.dtype == np.float32, function
        assert np.isfinite(np.asarray(value)).all() and np.isfinite(np.asarray(g)).all(), function
        if function not in (16, 19, 23):  # these amplify rounding by design (cos of 1e6-1e7, 2^32 z)
            coco = _coco(function, 3, 1)
            ref = np.array([coco(xi) for xi in x.astype(np.float32).astype(np.float64)])
            np.testing.assert_allclose(np.asarray(value), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max(), err_msg=str(function))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: bbob(25, 1, 2), r"^function must be 1\.\.24, got 25$"),
        (lambda: bbob(0, 1, 2), r"^function must be 1\.\.24, got 0$"),
        (lambda: bbob(1.0, 1, 2), "^function must be an int"),
        (lambda: bbob(True, 1, 2), "^function must be an int"),
        (lambda: bbob(1, 0, 2), r"^instance must be >= 1, got 0$"),
        (lambda: bbob(1, "1", 2), "^instance must be an int"),
        (lambda: bbob(1, np.bool_(True), 2), "^instance must be an int"),
        (lambda: bbob(1, 1, 1), r"^dimension must be >= 2, got 1$"),
        (lambda: bbob(1, 1, 2.0), "^dimension must be an int"),
        (lambda: instance_data(25, 1, 2), "^function must be"),
        (lambda: instance_data(3, -1, 2), "^instance must be"),
        (lambda: instance_data(3, 1, 0), "^dimension must be"),
        (lambda: evaluate(25, np.zeros(2), instance_data(1, 1, 2)), "^function must be"),
        (lambda: evaluate(1, np.zeros(3), instance_data(1, 1, 2)), "^x has dimension 3 but data is for dimension 2"),
        (lambda: evaluate(1, np.zeros(1), instance_data(1, 1, 2)), "^x must have shape"),
        (lambda: evaluate(1, np.zeros(2), {}), "^data must be"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_numpy_integers_are_ints():
    assert bbob(np.int64(3), np.int32(2), np.uint8(5)).name == "bbob_f003_i02_d05"

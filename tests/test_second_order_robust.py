"""The second-order solvers under stress: honest result codes (gradkit.results), integer, mixed
and half-precision params, Hessian-free on indefinite Hessians, bad arguments, compile-once."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit.optim import hessian_free, minimize, newton, newton_cg, newton_cg_trust_region, newton_root
from gradkit.optim.hessian_free import martens_cg
from gradkit.optim.minimize import _run_compiled
from gradkit.optim.root import _solve_compiled
from gradkit.results import Code, SolverError


def rosenbrock(x):
    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def saddle(p):
    """Indefinite Hessian at the start (1, 1e-3); minima at (0, ±1/√2), f = -1/4."""
    return p[0] ** 2 - p[1] ** 2 + p[1] ** 4


SOLVERS = {
    "newton": newton,
    "newton_cg": newton_cg,
    "trust_region": newton_cg_trust_region,
    "hessian_free": lambda: hessian_free(curvature="hessian"),
}


# ----------------------------------------------------------------------------- result codes


def test_minimize_never_reports_converged_for_a_nan_value():
    # value NaN everywhere, gradient 2x = 0 at the start: the old loop said converged
    f = lambda x: jnp.sum(x**2) + jnp.log(-1.0)
    res = minimize(f, jnp.zeros(2), newton_cg())
    assert int(res.code) == Code.NONFINITE and not bool(res.converged)
    assert int(res.iterations) == 0


def test_minimize_stops_at_the_last_finite_iterate():
    # log x[0] -> -inf as x[0] -> 0: Newton-CG drives x[0] to 0 and f to -inf
    f = lambda x: jnp.sum(x**2) + jnp.log(x[0])
    res = minimize(f, jnp.array([1.0, 2.0]), newton_cg())
    assert int(res.code) == Code.NONFINITE
    assert np.all(np.isfinite(res.params)) and np.isfinite(float(res.value))
    np.testing.assert_allclose(float(res.value), float(f(res.params)), rtol=1e-12)
    # diverging gradient descent: the overflow step is not taken
    res = minimize(lambda x: jnp.sum(x**2), jnp.array([1.0]), optax.sgd(3.0), maxiter=5000)
    assert int(res.code) == Code.NONFINITE
    x = float(res.params[0])
    with np.errstate(over="ignore"):
        assert np.isfinite(x * x) and not np.isfinite((5 * x) * (5 * x))  # f at the next step, -5x, overflows


def test_minimize_max_steps_breakdown_and_throw():
    opt = newton()  # one optimizer and objective: one compiled loop for the calls below
    res = minimize(rosenbrock, jnp.array([-1.2, 1.0]), opt, maxiter=3)
    assert int(res.code) == Code.MAX_STEPS and int(res.iterations) == 3
    with pytest.raises(SolverError, match="MAX_STEPS"):
        minimize(rosenbrock, jnp.array([-1.2, 1.0]), opt, maxiter=3, throw=True)
    # converged: finite and within tolerance
    res = minimize(rosenbrock, jnp.array([-1.2, 1.0]), opt, gtol=1e-9)
    assert int(res.code) == Code.CONVERGED and float(res.grad_norm) <= 1e-9
    np.testing.assert_allclose(float(res.grad_norm), float(optax.tree.norm(jax.grad(rosenbrock)(res.params))))
    # no progress possible: zero updates while the gradient is not small
    res = minimize(rosenbrock, jnp.array([-1.2, 1.0]), optax.sgd(0.0), stall_steps=4)
    assert int(res.code) == Code.BREAKDOWN and int(res.iterations) == 4
    # float32 runs out of precision before gtol=1e-12: params stop moving, reported as breakdown
    # (x - c with c = 1/3 in float64 never vanishes for float32 x; the step rounds away)
    third = jnp.asarray(1 / 3, jnp.float64)
    res = minimize(lambda x: jnp.sum((x - third) ** 2), jnp.array([2.0, -1.0], jnp.float32), opt,
                   gtol=1e-12, maxiter=500)
    assert int(res.code) == Code.BREAKDOWN and int(res.iterations) < 500
    np.testing.assert_allclose(res.params, 1 / 3, rtol=2 * float(jnp.finfo(jnp.float32).eps))
    # float32 Newton from an indefinite point (λ_min = -368.4): a finite damped step, not inf
    res = minimize(rosenbrock, jnp.array([0.5, 1.5], jnp.float32), opt, gtol=1e-3)
    assert bool(res.converged)
    np.testing.assert_allclose(res.params, 1.0, atol=1e-3)


def test_newton_root_codes():
    # F = log x from 3: x₁ = 3 - 3 log 3 < 0, F(x₁) = NaN; the last finite iterate is 3
    res = newton_root(jnp.log, 3.0)
    assert int(res.code) == Code.NONFINITE and float(res.x) == 3.0
    np.testing.assert_allclose(float(res.residual), np.log(3.0), rtol=1e-15)
    no_root = lambda x: x**2 + 1
    res = newton_root(no_root, 0.0)  # f'(0) = 0: singular
    assert int(res.code) == Code.BREAKDOWN and float(res.x) == 0.0
    with pytest.raises(SolverError):
        newton_root(no_root, 0.0, throw=True)
    sqrt2 = lambda x: x**2 - 2
    res = newton_root(sqrt2, 1.0, maxiter=2)  # 1 -> 1.5 -> 17/12
    assert int(res.code) == Code.MAX_STEPS
    np.testing.assert_allclose(float(res.x), 17 / 12, rtol=1e-15)
    res = newton_root(sqrt2, 1.0)
    assert bool(res.converged)
    np.testing.assert_allclose(float(res.x), np.sqrt(2), rtol=1e-15)


def test_states_report_the_inner_solve():
    f = lambda x: 0.5 * x @ jnp.diag(jnp.array([1.0, 4.0])) @ x
    x0 = jnp.array([1.0, 1.0])
    opt = newton_cg()
    _, state = opt.update(jax.grad(f)(x0), opt.init(x0), x0, value_fn=f)
    assert int(state.cg_code) == Code.CONVERGED and not bool(state.negative_curvature)
    _, state = opt.update(jax.grad(saddle)(jnp.array([0.0, 0.1])), opt.init(x0), jnp.array([0.0, 0.1]),
                          value_fn=saddle)
    assert int(state.cg_code) == Code.NEGATIVE_CURVATURE and bool(state.negative_curvature)
    tr = newton_cg_trust_region(initial_radius=1e-3)
    _, state = tr.update(jax.grad(f)(x0), tr.init(x0), x0, value_fn=f)
    assert bool(state.hit_boundary) and int(state.cg_code) == Code.CONVERGED


# ----------------------------------------------------------------------------- dtypes


def test_integer_params():
    res = minimize(lambda x: jnp.sum((x - 0.5) ** 2), jnp.array([1, 2]), newton_cg())
    assert res.params.dtype == jnp.result_type(float) and bool(res.converged)
    np.testing.assert_allclose(res.params, 0.5, atol=1e-12)
    for make in SOLVERS.values():
        with pytest.raises(TypeError, match="params"):
            make().init(jnp.array([1, 2]))


def separable(p):
    """Minimizer a = 1, b = 2; Hessian diagonal: 2 + 1.2 (a-1)², cosh(b - 2)."""
    return jnp.sum((p["a"] - 1) ** 2 + 0.1 * (p["a"] - 1) ** 4) + jnp.sum(jnp.cosh(p["b"] - 2))


@pytest.mark.parametrize("name", list(SOLVERS))
def test_mixed_leaf_dtypes(name):
    p = {"a": jnp.array([3.0, -1.0, 0.5], jnp.float32), "b": jnp.array([1.5, 2.5])}
    opt = SOLVERS[name]()
    updates, _ = opt.update(jax.grad(separable)(p), opt.init(p), p, value_fn=separable)
    assert updates["a"].dtype == jnp.float32 and updates["b"].dtype == jnp.float64
    res = minimize(separable, p, opt, gtol=1e-6)
    assert bool(res.converged)
    assert res.params["a"].dtype == jnp.float32 and res.params["b"].dtype == jnp.float64
    np.testing.assert_allclose(res.params["a"], 1.0, atol=1e-5)
    np.testing.assert_allclose(res.params["b"], 2.0, atol=2e-6)  # |∇f| <= 1e-6, curvature >= 1


def test_mixed_dtype_newton_step_is_the_hand_step():
    p = {"a": jnp.array([3.0, -1.0], jnp.float32), "b": jnp.array([1.5])}
    a, b = np.array([3.0, -1.0]), np.array([1.5])
    hand_a = -(2 * (a - 1) + 0.4 * (a - 1) ** 3) / (2 + 1.2 * (a - 1) ** 2)  # separable: diagonal Newton
    hand_b = -np.sinh(b - 2) / np.cosh(b - 2)
    opt = newton(line_search=None)
    updates, _ = opt.update(jax.grad(separable)(p), opt.init(p), p, value_fn=separable)
    np.testing.assert_allclose(updates["a"], hand_a.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(updates["b"], hand_b, rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_reaches_its_own_precision(dtype):
    center = np.array([0.3, -1.7])
    f = lambda x: jnp.sum((x - center.astype(np.float32)) ** 2 + 0.5 * (x - center.astype(np.float32)) ** 4)
    ulp = float(jnp.finfo(dtype).eps)
    for name, make in SOLVERS.items():
        opt = make()
        x = jnp.array([2.0, 1.0], dtype)
        state = opt.init(x)
        step = jax.jit(lambda x, s, opt=opt: opt.update(jax.grad(f)(x), s, x, value_fn=f))
        for _ in range(12):
            u, state = step(x, state)
            assert u.dtype == dtype
            x = optax.apply_updates(x, u)
        assert x.dtype == dtype
        # within one unit in the last place of the minimizer
        np.testing.assert_array_less(np.abs(np.asarray(x, np.float64) - center), ulp * np.abs(center) + 1e-12,
                                     err_msg=name)


# ----------------------------------------------------------------------------- Hessian-free, indefinite


def test_martens_cg_negative_curvature_by_hand():
    # first direction p = b = e₂ has pᵀBp = -2: no iterate yet, follow p scaled |pᵀb|/|pᵀBp| = 1/2
    B = jnp.diag(jnp.array([1.0, -2.0]))
    res = martens_cg(lambda v: B @ v, jnp.array([0.0, 1.0]), jnp.zeros(2))
    assert int(res.code) == Code.NEGATIVE_CURVATURE and int(res.iterations) == 0
    np.testing.assert_allclose(res.x, [0.0, 0.5], rtol=1e-15)
    # one CG step from 0 on B = diag(3, -1), b = (1, 1): α = 2/2 gives x = (1, 1); the next
    # direction (2, 6) has curvature 12 - 36 < 0: stop, keep x
    B = jnp.diag(jnp.array([3.0, -1.0]))
    res = martens_cg(lambda v: B @ v, jnp.array([1.0, 1.0]), jnp.zeros(2))
    assert int(res.code) == Code.NEGATIVE_CURVATURE and int(res.iterations) == 1
    np.testing.assert_allclose(res.x, [1.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(float(res.curvature), -24.0, rtol=1e-15)
    # positive definite: the exact solve
    B = jnp.array([[4.0, 1.0], [1.0, 3.0]])
    res = martens_cg(lambda v: B @ v, jnp.array([1.0, 2.0]), jnp.zeros(2))
    assert int(res.code) == Code.CONVERGED
    np.testing.assert_allclose(res.x, np.linalg.solve(np.asarray(B), [1.0, 2.0]), rtol=1e-12)


@pytest.mark.parametrize("case", ["progress", "negative_first", "negative_later", "max_steps", "exact"])
def test_martens_cg_matvecs_are_the_products_it_makes(case):
    """``matvecs`` (Hessian-free's ``hvp_count``) against the products counted by the map itself,
    for each way CG stops: Martens' progress test, non-positive curvature at the first or a later
    direction, the iteration limit, a zero residual."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    spd = q @ np.diag(np.logspace(0, 6, 60)) @ q.T
    setups = {"progress": (spd, 250), "max_steps": (spd, 7), "exact": (np.diag([4.0, 2.0]), 250),
              "negative_first": (np.diag([1.0, -2.0]), 250), "negative_later": (np.diag([3.0, -1.0]), 250)}
    matrix, maxiter = setups[case]
    b = {"negative_first": np.array([0.0, 1.0])}.get(case, np.ones(len(matrix)))
    made = []

    def matvec(v):
        made.append(1)
        return jnp.asarray(matrix) @ v

    with jax.disable_jit():
        res = martens_cg(matvec, jnp.asarray(b), jnp.zeros(len(b)), maxiter=maxiter)
    expected = {"progress": Code.CONVERGED, "max_steps": Code.MAX_STEPS, "exact": Code.CONVERGED,
                "negative_first": Code.NEGATIVE_CURVATURE, "negative_later": Code.NEGATIVE_CURVATURE}[case]
    assert int(res.code) == expected
    if case == "progress":
        assert 10 < int(res.iterations) < maxiter  # stopped by the progress test
    assert int(res.stats["matvecs"]) == len(made)


def test_hessian_free_raises_damping_on_negative_curvature():
    x0 = jnp.array([1.0, 1e-3])
    opt = hessian_free(1e-4, curvature="hessian")
    updates, state = opt.update(jax.grad(saddle)(x0), opt.init(x0), x0, value_fn=saddle)
    assert bool(state.negative_curvature) and int(state.cg_code) == Code.NEGATIVE_CURVATURE
    np.testing.assert_allclose(float(state.damping), 1.5e-4, rtol=1e-15)
    assert float(saddle(x0 + updates)) < float(saddle(x0))


@pytest.mark.parametrize("problem", ["saddle", "rosenbrock", "chained"])
def test_hessian_free_with_the_hessian_is_as_fast_as_newton_cg(problem):
    f, x0 = {"saddle": (saddle, jnp.array([1.0, 1e-3])),
             "rosenbrock": (rosenbrock, jnp.array([-1.2, 1.0])),
             "chained": (rosenbrock, jnp.asarray(np.tile([-1.2, 1.0], 5)))}[problem]
    reference = minimize(f, x0, newton_cg(), gtol=1e-8)
    # small damping: the case where rejected steps used to grow λ 1.5x at a time (1360 steps on the saddle)
    res = minimize(f, x0, hessian_free(1e-4, curvature="hessian"), gtol=1e-8, maxiter=2000)
    assert bool(reference.converged) and bool(res.converged)
    assert int(res.iterations) < 3 * int(reference.iterations)


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("build, match", [
    (lambda: newton_cg(cg_maxiter=0), "cg_maxiter"),
    (lambda: newton_cg_trust_region(cg_maxiter=0), "cg_maxiter"),
    (lambda: hessian_free(cg_maxiter=0), "cg_maxiter"),
    (lambda: hessian_free(boost=1.0), "boost"),
    (lambda: hessian_free(boost=float("inf")), "boost"),
    (lambda: hessian_free(drop=1.0), "drop"),
    (lambda: hessian_free(drop=0.0), "drop"),
    (lambda: hessian_free(initial_damping=0.0), "initial_damping"),
    (lambda: hessian_free(initial_damping=float("nan")), "initial_damping"),
    (lambda: hessian_free(initial_damping=float("inf")), "initial_damping"),
    (lambda: hessian_free(warm_start_decay=1.5), "warm_start_decay"),
    (lambda: hessian_free(warm_start_decay=float("nan")), "warm_start_decay"),
    (lambda: newton_cg_trust_region(initial_radius=0.0), "initial_radius"),
    (lambda: newton_cg_trust_region(initial_radius=float("inf")), "initial_radius"),
    (lambda: newton_cg_trust_region(initial_radius=float("nan")), "initial_radius"),
    (lambda: newton_cg_trust_region(max_radius=float("inf")), "max_radius"),
    (lambda: newton_cg_trust_region(2.0, 1.0), "max_radius"),
    (lambda: newton_cg_trust_region(eta=float("nan")), "eta"),
    (lambda: newton_cg_trust_region(eta=-0.1), "eta"),
    (lambda: newton(damping=float("nan")), "damping"),
    (lambda: newton(damping=-1.0), "damping"),
    (lambda: newton(min_curvature=float("inf")), "min_curvature"),
    (lambda: newton_cg(max_line_search_steps=0), "max_line_search_steps"),
    (lambda: minimize(rosenbrock, jnp.ones(2), newton(), gtol=float("nan")), "gtol"),
    (lambda: minimize(rosenbrock, jnp.ones(2), newton(), gtol=-1.0), "gtol"),
    (lambda: minimize(rosenbrock, jnp.ones(2), newton(), maxiter=-1), "maxiter"),
    (lambda: newton_root(jnp.sin, 1.0, tol=float("nan")), "tol"),
    (lambda: newton_root(jnp.sin, 1.0, maxiter=-1), "maxiter"),
])
def test_bad_arguments_raise_before_compute(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_minimize_compiles_once_per_objective_and_optimizer():
    opt = newton_cg()
    f = lambda x: jnp.sum((x - 1) ** 2 + x**4)
    minimize(f, jnp.array([2.0, 3.0]), opt)
    size = _run_compiled._cache_size()
    for start, gtol in ([[0.5, -1.0], 1e-6], [[4.0, 4.0], 1e-8]):
        res = minimize(f, jnp.array(start), opt, gtol=gtol)
        assert bool(res.converged)
    assert _run_compiled._cache_size() == size
    # an unhashable callable objective (``__eq__`` without ``__hash__``) compiles once too

    class Shifted:
        def __init__(self, c):
            self.c = jnp.asarray(c)

        def __eq__(self, other):
            return self.c == other.c

        def __call__(self, x):
            return jnp.sum((x - self.c) ** 2 + x**4)

    objective = Shifted([0.5, -0.5])
    first = minimize(objective, jnp.array([2.0, 3.0]), opt)
    size = _run_compiled._cache_size()
    again = minimize(objective, jnp.array([-2.0, 1.0]), opt)
    assert _run_compiled._cache_size() == size
    np.testing.assert_allclose(first.params, again.params, atol=1e-5)
    # newton_root: the same
    root = lambda x: x**3 - 2
    newton_root(root, 1.0)
    size = _solve_compiled._cache_size()
    np.testing.assert_allclose(float(newton_root(root, 2.0).x), 2 ** (1 / 3), rtol=1e-15)
    assert _solve_compiled._cache_size() == size


_VMAPPED_HESSIAN_FREE = """
import jax, jax.numpy as jnp, optax, numpy as np
from gradkit.landscapes import himmelblau as f
from gradkit.optim import hessian_free
opt = hessian_free(curvature="hessian")

def step(carry, _):
    x, state = carry
    value, grad = jax.value_and_grad(f)(x)
    updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
    return (optax.apply_updates(x, updates), state), None

run = jax.jit(jax.vmap(lambda x: jax.lax.scan(step, (x, opt.init(x)), None, length=20)[0][0]))
print(np.asarray(run(jnp.array([[-4.5, -4.5], [-4.5, 4.5], [4.5, -4.5], [4.5, 4.5]]))).tolist())
"""


def test_vmapped_hessian_free_terminates_and_matches_one_run_at_a_time():
    """Under ``vmap`` a ``while_loop`` keeps a lane running while its test is true and freezes
    it where the body's copy of the test is false: a test that re-evaluates ``f`` (rounded
    differently in the two compiled copies) froze a lane the test kept active, and the
    CG-iterate walk-back never ended (seen under the test suite's XLA flags).  The whole
    vmapped scan runs in a subprocess with a time limit, so a hang fails instead of blocking,
    and its finals equal the starts run one at a time (where no lane can be frozen)."""
    import ast
    import subprocess
    import sys

    try:
        out = subprocess.run([sys.executable, "-c", _VMAPPED_HESSIAN_FREE], capture_output=True, text=True,
                             timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the vmapped Hessian-free scan did not finish in 120 s")
    assert out.returncode == 0, out.stderr[-2000:]
    batched = np.asarray(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    from gradkit.landscapes import himmelblau as f

    opt = hessian_free(curvature="hessian")

    @jax.jit
    def step(x, state):
        value, grad = jax.value_and_grad(f)(x)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(x, updates), state

    for start, final in zip([[-4.5, -4.5], [-4.5, 4.5], [4.5, -4.5], [4.5, 4.5]], batched):
        x = jnp.asarray(start)
        state = opt.init(x)
        for _ in range(20):
            x, state = step(x, state)
        np.testing.assert_allclose(final, np.asarray(x), rtol=1e-6, atol=1e-6)

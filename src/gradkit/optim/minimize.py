"""A compiled loop that runs any optimizer (gradkit's second-order ones, any optax or gradkit
first-order one) to a gradient tolerance and says honestly why it stopped."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gradkit.derivatives import scalar_fn
from gradkit.optim._common import PyTree
from gradkit.optim.quasi_newton import _SMALL as SMALL_PROBLEM
from gradkit.optim.quasi_newton import LBFGSState, accepted_point, trial_judge
from gradkit.lifting import Spec, call_with_fallback, lift, note_compile
from gradkit.optim._second_order import (
    ValueFn,
    check_count,
    check_finite_start,
    check_nonnegative_finite,
    compute_dtype,
    needs_cast,
    to_compute,
)
from gradkit.results import Code, Result, make_result, maybe_throw, select_code, tree_all_finite

MinimizeResult = Result
""":func:`minimize` returns a :class:`gradkit.results.Result` (this name is kept for imports)."""


def _promote_integers(params: PyTree) -> PyTree:
    """Integer (and bool) leaves as the default float dtype; float leaves unchanged."""
    default = jnp.result_type(float)

    def promote(leaf: Any) -> Any:
        dtype = jnp.result_type(leaf)
        return jnp.asarray(leaf, default) if not jnp.issubdtype(dtype, jnp.inexact) else leaf

    return jax.tree.map(promote, params)


def _stored_value_and_grad(state: Any) -> tuple[Any, Any] | None:
    """The value and gradient at the new point that a line search or trust region keeps in its
    state (exactly one of each), else None."""
    found = lambda name: [v for _, v in optax.tree.get_all_with_path(state, name) if v is not None]
    values, grads = found("value"), found("grad")
    return (values[0], grads[0]) if len(values) == 1 and len(grads) == 1 else None


def _two_steps_per_trip(step: Any, keep_going: Any) -> Any:
    """A loop body that takes ``step`` twice, the second time only while ``keep_going`` holds:
    the same iterates, iteration counts and stopping step as one step per trip.  For L-BFGS under
    ``vmap`` the loop-carried copies and the kernels at the trip boundary are then paid every
    other step, and XLA fuses across the two steps: 1000 vmapped 2-D runs to ``gtol = 7.6e-10``
    on Himmelblau took 13.5 ms -> 10.7 ms (one core, medians of 9 calls; Rosenbrock 2-D
    21.6 -> 16.7 ms).  BFGS gains nothing (its step is fewer, smaller kernels), and for large
    problems the ``cond`` copies the ``(m, n)`` memory (Rosenbrock n = 1000: 140 ms with it,
    121 ms without), so only L-BFGS on at most ``quasi_newton._SMALL`` parameters uses it."""

    def two_steps(carry: tuple) -> tuple:
        carry = step(carry)
        return jax.lax.cond(keep_going(carry), step, lambda same: same, carry)

    return two_steps


def _finite_and_moved(new_x: PyTree, x: PyTree, new_grad: PyTree = None) -> tuple[jax.Array, jax.Array]:
    """``(every entry of new_x -- and of new_grad, when given -- finite, some entry non-finite or
    changed)`` as one reduction per leaf: each entry's code 0 (unchanged), 1 (changed) or 2 (not
    finite), and the largest code."""
    grads = jax.tree.leaves(new_x) if new_grad is None else jax.tree.leaves(new_grad)
    codes = [jnp.max(jnp.where(jnp.isfinite(a) & jnp.isfinite(g), (a != b).astype(jnp.int8), jnp.int8(2)))
             for a, b, g in zip(jax.tree.leaves(new_x), jax.tree.leaves(x), grads)]
    worst = functools.reduce(jnp.maximum, codes)
    return worst < 2, worst >= 1


def _run(value_spec: Spec, optimizer_spec: Spec, value_leaves: tuple, optimizer_leaves: tuple, params: PyTree,
         gtol: Any, maxiter: Any, stall_steps: Any) -> Result:
    note_compile("gradkit.optim.minimize", value_spec, optimizer_spec)
    f = scalar_fn(value_spec.rebuild(value_leaves), "minimize value_fn")
    opt = optax.with_extra_args_support(optimizer_spec.rebuild(optimizer_leaves))
    state0 = opt.init(params)
    # the stored value/grad sit at the optimizer's own (compute-dtype) new point: reuse them only
    # when that is exactly the new params, i.e. no leaf was cast
    reuse = _stored_value_and_grad(state0) is not None and not needs_cast(params)
    norm_dtype = compute_dtype(params)
    grad_norm_of = lambda grad: optax.tree.norm(to_compute(grad, norm_dtype))
    value0, grad0 = jax.value_and_grad(f)(params)

    def evaluate(x: PyTree, state: Any) -> tuple[jax.Array, PyTree]:
        if not reuse:
            return jax.value_and_grad(f)(x)
        value, grad = _stored_value_and_grad(state)
        value, grad = value.astype(value0.dtype), optax.tree.cast_like(grad, grad0)
        return jax.lax.cond(jnp.isfinite(value), lambda _: (value, grad), jax.value_and_grad(f), x)

    def finite(x: PyTree, value: jax.Array, grad: PyTree) -> jax.Array:
        return jnp.isfinite(value) & tree_all_finite(grad) & tree_all_finite(x)

    # carry: i, x, state, value, grad, ‖g‖, steps without moving, ended non-finite, and whether to
    # go on -- decided at the end of a step and carried, so that the loop's test (and under vmap
    # the select that keeps finished runs as they are, in every carried array's kernel) reads one
    # flag, not the four counters that the step writes: 1000 vmapped BFGS runs on Himmelblau 2-D
    # took 1.24x -> 1.07x optimistix's BFGS time (one core)
    def with_verdict(carry: tuple) -> tuple:
        i, _, _, _, _, grad_norm, still, bad = carry
        return carry + ((i < maxiter) & ~(grad_norm <= gtol) & ~bad & (still < stall_steps),)

    def keep_going(carry: tuple) -> jax.Array:
        return carry[-1]

    def guarded_step(carry: tuple) -> tuple:
        """A step of an optimizer that judges its own trials (:mod:`gradkit.optim.quasi_newton`):
        a non-finite value or gradient at a finite trial point goes to its ``update``, which
        rejects it and backtracks; the loop ends non-finite only if a trial point itself is."""
        i, x, state, value, grad, grad_norm, still, _, _ = carry
        updates, new_state = opt.update(grad, state, x, value_fn=f, value=value, grad=grad)
        new_x = optax.apply_updates(x, updates)
        new_value, new_grad = jax.value_and_grad(f)(new_x)
        ok, moved = _finite_and_moved(new_x, x)
        return with_verdict((i + 1, new_x, new_state, new_value, new_grad, grad_norm_of(new_grad),
                             jnp.where(moved, 0, still + 1), ~ok))

    def step(carry: tuple) -> tuple:
        i, x, state, value, grad, grad_norm, still, _, _ = carry
        updates, new_state = opt.update(grad, state, x, value_fn=f, value=value, grad=grad)
        new_x = optax.apply_updates(x, updates)
        new_value, new_grad = evaluate(new_x, new_state)
        # not finite: the loop stops, so `moved` then only needs to be defined
        all_finite, moved = _finite_and_moved(new_x, x, new_grad)
        ok = all_finite & jnp.isfinite(new_value)
        pick = lambda new, old: optax.tree.where(ok, new, old)
        return with_verdict((i + ok.astype(i.dtype), pick(new_x, x), pick(new_state, state), pick(new_value, value),
                             pick(new_grad, grad), jnp.where(ok, grad_norm_of(new_grad), grad_norm),
                             jnp.where(moved, 0, still + 1), ~ok))

    start_ok = finite(params, value0, grad0)
    carry = with_verdict((jnp.asarray(0), params, state0, value0, grad0, grad_norm_of(grad0), jnp.asarray(0), ~start_ok))
    judge = trial_judge(state0)
    guarded = judge is not None
    body = guarded_step if guarded else step
    if isinstance(judge, LBFGSState) and judge.point.size <= SMALL_PROBLEM:
        body = _two_steps_per_trip(body, keep_going)
    i, x, state, value, grad, grad_norm, still, bad, _ = jax.lax.while_loop(keep_going, body, carry)
    if guarded:  # a last trial that was not finite: report the optimizer's accepted point instead
        point, point_value, point_grad = accepted_point(trial_judge(state), x)
        good = jnp.isfinite(value) & tree_all_finite(grad)
        x = optax.tree.where(good, x, point)
        grad = optax.tree.where(good, grad, point_grad)
        value = jnp.where(good, value, point_value.astype(value.dtype))
        grad_norm = grad_norm_of(grad)
    code = select_code((bad, Code.NONFINITE), (grad_norm <= gtol, Code.CONVERGED),
                       (still >= stall_steps, Code.BREAKDOWN), default=Code.MAX_STEPS)
    return make_result(x, code, i, value=value, grad_norm=grad_norm, state=state)


_run_compiled = jax.jit(_run, static_argnums=(0, 1))


def minimize(
    value_fn: ValueFn,
    params: PyTree,
    optimizer: optax.GradientTransformation,
    *,
    gtol: float = 1e-5,
    maxiter: int = 1000,
    stall_steps: int = 20,
    throw: bool = False,
) -> Result:
    """Run ``optimizer`` on ``value_fn`` from ``params`` until ``||∇f|| <= gtol``, in one
    ``lax.while_loop``::

        g = ∇f(x);  u, s = optimizer.update(g, s, x, value_fn=f, value=f(x));  x ← x + u

    Works with gradkit's second-order optimizers and with any optax/gradkit first-order one
    (the extra keywords are dropped for those).  When the state carries the value and
    gradient at the new point (line searches, trust region) they are reused.  Compiled once
    per what ``value_fn`` and ``optimizer`` compute (:mod:`gradkit.lifting`): calling it again in a
    Python loop -- with other params, ``gtol`` or ``maxiter``, or a freshly built optimizer that
    differs only in numeric hyperparameters (``newton_cg()``, ``adam(lr)`` for a new ``lr``) --
    does not retrace.  Integer params are promoted
    to the default float dtype (float32, float64 under ``jax_enable_x64``); float params keep
    their dtypes.

    Returns a :class:`gradkit.results.Result`: ``res.params`` (= ``res.x``), ``res.code``,
    ``res.converged``, ``res.iterations`` (accepted steps) and stats ``value``, ``grad_norm``
    (at the returned params) and ``state`` (the optimizer's state there).  Codes:

    - ``CONVERGED``: ``||∇f|| <= gtol`` with value, gradient and params all finite;
    - ``NONFINITE``: a step produced a NaN/inf value, gradient or params (or the start did);
      the loop stops and returns the last finite iterate and its state;
    - ``BREAKDOWN``: no progress is possible — the params did not change for ``stall_steps``
      consecutive steps while ``||∇f|| > gtol`` (a line search that found no decrease, a trust
      region shrunk ``4^stall_steps``-fold, a step below the params' rounding level);
    - ``MAX_STEPS``: ``maxiter`` steps were taken first.

    ``throw=True`` raises :class:`gradkit.results.SolverError` unless converged.

    Newton-CG with an exact inner solve minimizes a quadratic ``½ xᵀAx - bᵀx`` in one step, at
    ``x = A⁻¹b``:

    >>> import jax.numpy as jnp
    >>> from gradkit.optim import newton_cg
    >>> A, b = jnp.array([[3.0, 1.0], [1.0, 2.0]]), jnp.array([1.0, 1.0])
    >>> res = minimize(lambda x: 0.5 * x @ A @ x - b @ x, jnp.zeros(2), newton_cg(cg_tol=0.0))
    >>> res.message, int(res.iterations), [round(x, 4) for x in res.params.tolist()]
    ('converged: the tolerance was met', 1, [0.2, 0.4])
    """
    check_nonnegative_finite("minimize", "gtol", gtol)
    check_count("minimize", "maxiter", maxiter, 0)
    check_count("minimize", "stall_steps", stall_steps, 1)
    if not jax.tree.leaves(params):
        raise ValueError("minimize: params is an empty pytree")
    params = _promote_integers(params)
    check_finite_start("minimize", params)
    value_spec, value_leaves = lift(value_fn, floats=False)
    result = call_with_fallback(optimizer, lambda spec, leaves: _run_compiled(
        value_spec, spec, value_leaves, leaves, params, gtol, maxiter, stall_steps))
    return maybe_throw(result, throw, "minimize")

"""Many optimization runs in one compiled call: ``jit(vmap(scan))`` over a run axis.

Each run ``r`` has a start point ``x_r`` (any pytree; the leading axis of every
leaf indexes runs) and optionally its own hyperparameters ``h_r`` (arrays with
a leading run axis, passed to ``make_optimizer(**h_r)`` as traced values, so a
learning-rate grid costs no recompilation).  One step of one run is

    f, g = value_and_grad(objective)(x);   u, s = opt.update(g, s, x, value=f, grad=g, value_fn=objective);   x ← x + u

The keywords reach every optimizer family: optax's line searches and ``optax.lbfgs``
(``value``, ``grad``, ``value_fn``), gradkit's SAM, Newton, Newton-CG, trust region,
Hessian-free and forward gradients (``value_fn``), ``optax.contrib.sophia``
(``obj_fn``, passed unless the state holds an optax line search, whose ``value_fn``
would reject it); first-order optimizers drop them (``optax.with_extra_args_support``).

**Verdicts.**  Iterate ``x_k`` (``k = 0`` the start, ``k = steps`` the last) is *within
tolerance* when every test that applies holds:

- ``|f(x_k) - f*| <= tol + rtol · f_scale`` when ``f_star`` is given and finite;
- ``min_j ||x_k - m_j|| <= xtol`` when ``xtol`` and ``minimizers`` (``(m, dim)``) are given;
- otherwise ``||∇f(x_k)|| <= tol + rtol · ||∇f(x_0)||`` (the gradient test).

Use ``rtol`` in float32: ``f`` is only known to about ``eps·|f|`` and a quasi-Newton
method such as ``optax.lbfgs`` stalls with ``||∇f||`` near ``sqrt(eps)`` times the
gradient's scale, short of an absolute gradient tolerance such as 1e-6 that float64
reaches; ``rtol = 1e-3`` on the gradient test asks for a thousand-fold reduction,
which both precisions can meet.  Per run: ``first_hit`` (first step within),
``settled_step`` (first step after which the run stays within to the end; -1 when the
last iterate is not within), ``ended_within``, ``converged = ended_within & ~diverged``
and ``ever_hit = (first_hit >= 0) & ~diverged``.  Nothing is stored per step: each step
shifts its flag into a 32-bit word per run (two integer operations, in the kernel of the
tolerance test), and every 32 steps the word is folded into the first point within tolerance
and the last point outside it, two int32 per run (:class:`_Marks`).  Optimizers whose cost is
read from their state fold every step (the cost when a streak begins needs it).

**Cost** is counted in gradient-equivalents (:data:`COST_UNITS`): value 1/2, gradient
(or value and gradient) 1, Hessian-vector product 2, Jacobian-vector product 1.  The
units are measured, not assumed: on the 670k-parameter MLP of ``benchmarks/hvp.py`` one
HVP takes 4.6 ms against 2.4 ms for a gradient (ratio 1.9), and one forward-mode JVP
with a Gaussian tangent 5.8 ms against 4.7 ms for backprop (``benchmarks/forward_gradient.py``,
ratio 1.2; 0.6 with rank-one tangents); a value is a forward pass, about half of the
forward-plus-backward gradient.  Every method pays 1 for ``value_and_grad`` at the start
and, per step, what :data:`COST_MODELS` (keyed by optimizer-state type, found anywhere in
the state tree) says on top of the runner's ``value_and_grad`` at the new point (1):
SAM +1 gradient; gradkit Newton-CG / Hessian-free + 2 per HVP (``hvp_count``), the trust
region +2 per HVP and its trial ``value_and_grad``; dense Newton + 2·n (n HVPs make the
Hessian); optax zoom line search (``optax.lbfgs``) +1 per ``info.num_linesearch_steps``;
optax backtracking +1/2 per step of it; Hutchinson (``optax.contrib.sophia``, gradkit's
``sophia``) +2 on the steps whose estimator key moved (one HVP every ``update_interval``
steps: counted at the rate the method needs, although under ``vmap`` ``lax.cond`` computes
both branches); AdaHessian +2 (one Hutchinson probe per step); forward gradients
``num_tangents`` JVPs.  Where the state already holds the value and gradient at the new point (zoom line search, trust region) or the method
never uses the gradient (forward gradients), the runner's own ``value_and_grad`` is
bookkeeping and is not counted.  Register a new state type in :data:`COST_MODELS`.

A run whose objective value becomes NaN/inf (a non-finite point propagates into
the value) is flagged ``diverged`` and frozen at its last finite point on a check
boundary (every recorded step; in final-state mode every 100 steps and after the
last); its neighbours in the batch are untouched.
The run axis is split into chunks (bounded memory, a tqdm bar counting run-steps) and
each chunk is sharded over every local device (data-parallel, no communication).
Multi-host: call ``jax.distributed.initialize()`` first; ``jax.devices()`` then spans
hosts and the same mesh shards over all of them.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import math
import warnings
from typing import Any, NamedTuple
from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gradkit.lifting import Spec, Uncompared, call_with_fallback, lift, note_compile
from gradkit.optim.quasi_newton import accepted_point, trial_judge
from gradkit.optim import (AdaHessianState, ForwardGradientState, HessianFreeState, HutchinsonState,
                           NewtonCGState, NewtonState, SamState, TrustRegionState)

PyTree = Any
OptimizerFactory = Callable[..., optax.GradientTransformation]
OptimizerLike = optax.GradientTransformation | OptimizerFactory

_DEFAULT_MAX_BYTES = 4 * 1024**3

COST_UNITS: dict[str, float] = {"value": 0.5, "grad": 1.0, "hvp": 2.0, "jvp": 1.0}
"""Gradient-equivalents of one evaluation (see the module doc for the measurements)."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Per-run results, NumPy arrays with the run axis first.

    ``final``: last point (pytree); ``final_value``, ``final_grad_norm``;
    ``diverged``: the run hit NaN/inf and was frozen; ``first_hit``: first step
    ``k`` (0 = the start) within tolerance, -1 if never; ``settled_step``: first step
    after which the run stays within tolerance to the end (time-to-ε), -1 when the last
    iterate is not within; ``ended_within``: the last iterate is within tolerance;
    ``final_distance``: distance of the last point to the nearest given minimizer (NaN
    without minimizers); ``cost``: gradient-equivalents spent over the run;
    ``cost_to_settle``: those spent up to ``settled_step`` (inf when not settled);
    ``steps_recorded``: the step index of each recorded column; ``trajectory``
    (pytree, leaves ``(runs, recorded, ...)``), ``values`` and ``grad_norms``
    (``(runs, recorded)``) when recording, else ``None``.
    """

    final: PyTree
    final_value: np.ndarray
    final_grad_norm: np.ndarray
    diverged: np.ndarray
    steps_recorded: np.ndarray
    first_hit: np.ndarray
    settled_step: np.ndarray
    ended_within: np.ndarray
    final_distance: np.ndarray
    cost: np.ndarray
    cost_to_settle: np.ndarray
    trajectory: PyTree | None = None
    values: np.ndarray | None = None
    grad_norms: np.ndarray | None = None

    @property
    def converged(self) -> np.ndarray:
        """``ended_within & ~diverged``: the last iterate is within tolerance and finite."""
        return self.ended_within & ~self.diverged

    @property
    def ever_hit(self) -> np.ndarray:
        """``(first_hit >= 0) & ~diverged``: touched the tolerance once (maybe left again)."""
        return (self.first_hit >= 0) & ~self.diverged

    @property
    def hit_step(self) -> np.ndarray:
        """Deprecated alias of :attr:`first_hit`."""
        warnings.warn("RunResult.hit_step is deprecated; use first_hit (or settled_step)", DeprecationWarning,
                      stacklevel=2)
        return self.first_hit


# --------------------------------------------------------------------------------------
# cost models
# --------------------------------------------------------------------------------------


class CostModel(NamedTuple):
    """Gradient-equivalents one optimizer step spends, read from one node of its state.

    ``per_step``: a constant added every step; ``counted(old, new)``: the traced amount
    read from the node before and after the step (``None``: nothing variable);
    ``replaces_runner_evaluation``: the runner's ``value_and_grad`` at the new point is not
    counted (the state already holds it, or the method never uses the gradient).
    """

    per_step: float = 0.0
    counted: Callable[[Any, Any], jax.Array] | None = None
    replaces_runner_evaluation: bool = False


def _hvps(old: Any, new: Any) -> jax.Array:
    return COST_UNITS["hvp"] * (new.hvp_count - old.hvp_count)


def _key_moved(old: Any, new: Any) -> jax.Array:
    data = lambda k: jax.random.key_data(k) if jnp.issubdtype(k.dtype, jax.dtypes.prng_key) else k
    return COST_UNITS["hvp"] * jnp.any(data(old.key) != data(new.key))


def _closure_value(fn: Callable[..., Any], name: str, default: Any) -> Any:
    """A closed-over variable of ``fn`` (e.g. ``num_tangents`` of forward gradient descent)."""
    try:
        return inspect.getclosurevars(fn).nonlocals.get(name, default)
    except (TypeError, ValueError):
        return default


def _cost_models() -> dict[type, Callable[[optax.GradientTransformation, PyTree], CostModel]]:
    """The built-in registry (see the module doc)."""
    zoom = optax.ScaleByZoomLinesearchState
    backtracking = optax.ScaleByBacktrackingLinesearchState
    return {
        SamState: lambda opt, x: CostModel(per_step=COST_UNITS["grad"]),
        NewtonCGState: lambda opt, x: CostModel(counted=_hvps),
        HessianFreeState: lambda opt, x: CostModel(counted=_hvps),
        TrustRegionState: lambda opt, x: CostModel(COST_UNITS["grad"], _hvps, True),
        NewtonState: lambda opt, x: CostModel(per_step=COST_UNITS["hvp"] * ravel_pytree(x)[0].size),
        zoom: lambda opt, x: CostModel(
            counted=lambda o, n: COST_UNITS["grad"] * n.info.num_linesearch_steps, replaces_runner_evaluation=True),
        backtracking: lambda opt, x: CostModel(counted=lambda o, n: COST_UNITS["value"] * n.info.num_linesearch_steps),
        optax.contrib.HutchinsonState: lambda opt, x: CostModel(counted=_key_moved),
        HutchinsonState: lambda opt, x: CostModel(counted=_key_moved),  # gradkit's Sophia-H
        AdaHessianState: lambda opt, x: CostModel(per_step=COST_UNITS["hvp"]),  # one Hutchinson probe per step
        ForwardGradientState: lambda opt, x: CostModel(
            per_step=COST_UNITS["jvp"] * _closure_value(opt.update, "num_tangents", 1),
            replaces_runner_evaluation=True),
    }


COST_MODELS: dict[type, Callable[[optax.GradientTransformation, PyTree], CostModel]] = _cost_models()
"""Optimizer-state type -> ``(optimizer, params) -> CostModel`` for gradkit's and optax's states
(see the module doc); add an entry for a new state type whose steps cost more than one gradient."""


def _state_nodes(state: Any, path: tuple = ()) -> list[tuple[tuple, type]]:
    """Paths (tuple/list indices and dict keys) of every node of a registered type in ``state``."""
    found = [(path, type(state))] if type(state) in COST_MODELS else []
    if isinstance(state, (tuple, list)):
        for i, child in enumerate(state):
            found += _state_nodes(child, path + (i,))
    elif isinstance(state, dict):
        for k in state:
            found += _state_nodes(state[k], path + (k,))
    return found


def _at(state: Any, path: tuple) -> Any:
    for p in path:
        state = state[p]
    return state


class _Cost(NamedTuple):
    """The cost model of one optimizer: a constant per step plus traced counts."""

    per_step: float
    counted: tuple[tuple[tuple, Callable[[Any, Any], jax.Array]], ...]

    def step(self, old_state: Any, new_state: Any) -> jax.Array:
        extra = sum((fn(_at(old_state, p), _at(new_state, p)) for p, fn in self.counted), jnp.zeros([]))
        return self.per_step + extra


def _cost_of(opt: optax.GradientTransformation, params: PyTree, state: Any) -> _Cost:
    """Combine the cost models of every registered node of ``state``."""
    per_step, counted, replaced = 0.0, [], False
    for path, kind in _state_nodes(state):
        model = COST_MODELS[kind](opt, params)
        per_step += model.per_step
        replaced |= model.replaces_runner_evaluation
        if model.counted is not None:
            counted.append((path, model.counted))
    return _Cost(per_step + (0.0 if replaced else COST_UNITS["grad"]), tuple(counted))


def _has_line_search(state: Any) -> bool:
    kinds = (optax.ScaleByZoomLinesearchState, optax.ScaleByBacktrackingLinesearchState)
    if isinstance(state, kinds):
        return True
    if isinstance(state, (tuple, list)):
        return any(_has_line_search(s) for s in state)
    if isinstance(state, dict):
        return any(_has_line_search(s) for s in state.values())
    return False


# --------------------------------------------------------------------------------------
# the compiled runner
# --------------------------------------------------------------------------------------


def _record_stride(record: str | int, steps: int) -> int:
    """Steps between recorded points: ``"final"`` -> 0 (nothing recorded), ``"trajectory"`` -> 1."""
    if record == "final":
        return 0
    if record == "trajectory":
        return 1
    if isinstance(record, int) and not isinstance(record, bool) and record >= 1:
        return record
    raise ValueError(f"record must be 'final', 'trajectory' or a positive int stride, got {record!r}")


_LANES = 16  # runs per device are padded to a multiple of this (see run_batch)
_CHECK_EVERY = 100  # final-state mode: steps between divergence checks


class _Marks(NamedTuple):
    """Per run, ``hit``: the first point within tolerance, and ``miss``: the last point that was
    not (-1: none); ``settled = miss + 1`` when the last point is within.  Two int32 per run and
    ``t``, the index of the next point to check (a scalar shared by all runs).

    Updated point by point (:meth:`advance`) or from a word of up to 32 points' flags
    (:meth:`flush`).  The runner does the latter for optimizers of constant cost: a step then
    only shifts its flag into the word, two integer operations in the kernel of the tolerance
    test, and the fold costs two small memory-bound kernels every 32 steps.  (Folding every
    step made the test's kernel compute-bound in XLA:CPU's cost model, which then split it over
    the cores from ~1.5k runs, a thread hand-off every step: 1.3-2x slower between 2k and 20k
    runs on 2 cores.)"""

    hit: jax.Array
    miss: jax.Array
    t: jax.Array

    @staticmethod
    def start(within: jax.Array) -> _Marks:
        """Point 0 checked."""
        return _Marks(jnp.where(within, 0, -1).astype(jnp.int32), jnp.where(within, -1, 0).astype(jnp.int32),
                      jnp.asarray(1, jnp.int32))

    def advance(self, within: jax.Array) -> _Marks:
        """Point ``t`` checked."""
        return _Marks(jnp.where((self.hit < 0) & within, self.t, self.hit), jnp.where(within, self.miss, self.t),
                      self.t + 1)

    def flush(self, bits: jax.Array, length: int) -> _Marks:
        """Points ``t .. t + length - 1`` (``length <= 32``) checked, their flags in the low
        ``length`` bits of the uint32 ``bits``, point ``t`` in the highest: the first hit from
        the leading zeros, the last miss from the trailing ones."""
        full = jnp.uint32((1 << length) - 1)
        first = length - 32 + jax.lax.clz(bits).astype(jnp.int32)
        misses = ~bits & full
        trailing_hits = jax.lax.population_count((misses & (~misses + 1)) - 1).astype(jnp.int32)
        hit = jnp.where((self.hit < 0) & (bits != 0), self.t + first, self.hit)
        miss = jnp.where(misses != 0, self.t + (length - 1) - trailing_hits, self.miss)
        return _Marks(hit, miss, self.t + length)


class _Tolerance(NamedTuple):
    """The hashable verdict rule (see the module doc)."""

    tol: float
    rtol: float
    f_star: float | None
    f_scale: float
    xtol: float | None
    minimizers: tuple[tuple[float, ...], ...] | None

    @property
    def on_value(self) -> bool:
        return self.f_star is not None and math.isfinite(self.f_star)

    @property
    def on_point(self) -> bool:
        return self.xtol is not None and self.minimizers is not None

    def distance(self, x: PyTree) -> jax.Array:
        """Distance from ``x`` to the nearest minimizer (NaN without minimizers)."""
        flat = ravel_pytree(x)[0]
        if self.minimizers is None:
            return jnp.full([], jnp.nan, flat.dtype)
        mins = jnp.asarray(self.minimizers, flat.dtype)
        return jnp.sqrt(jnp.min(jnp.sum((flat[None] - mins) ** 2, axis=-1)))

    def within(self, x: PyTree, value: jax.Array, grad: PyTree, grad_scale: jax.Array) -> jax.Array:
        tests = []
        if self.on_value:
            tests.append(jnp.abs(value - self.f_star) <= self.tol + self.rtol * self.f_scale)
        if self.on_point:
            tests.append(self.distance(x) <= self.xtol)
        if not tests:
            tests.append(optax.tree.norm(grad) <= self.tol + self.rtol * grad_scale)
        return functools.reduce(jnp.logical_and, tests)


def _extra_kwargs(state: Any, objective: Callable[[PyTree], jax.Array], value: jax.Array, grad: PyTree
                  ) -> dict[str, Any]:
    """The extra keywords every optimizer family reads (see the module doc)."""
    kwargs = {"value_fn": objective, "value": value, "grad": grad}
    if not _has_line_search(state):
        kwargs["obj_fn"] = objective
    return kwargs


def _single_run(
    objective_spec: Spec,
    optimizer_spec: Spec,
    steps: int,
    stride: int,
    rule: _Tolerance,
) -> Callable[[PyTree, Mapping[str, jax.Array], tuple, tuple], dict[str, Any]]:
    """The scan for one run; vmapped over the run axis by :func:`_compiled`.  The objective and
    the optimizer (or factory) are rebuilt from their specs and lifted leaves (traced), so one
    program serves every optimizer that differs only in numbers (see :mod:`gradkit.lifting`)."""

    # divergence is checked every block_len steps (the record stride) and after the last step
    block_len = stride or min(steps, _CHECK_EVERY)

    def one(x0: PyTree, hparams: Mapping[str, jax.Array], objective_leaves: tuple, optimizer_leaves: tuple
            ) -> dict[str, Any]:
        objective = objective_spec.rebuild(objective_leaves)
        make_optimizer = optimizer_spec.rebuild(optimizer_leaves)
        is_opt = isinstance(make_optimizer, optax.GradientTransformation)
        raw = make_optimizer if is_opt else make_optimizer(**hparams)
        opt = optax.with_extra_args_support(raw)
        value0, grad0 = jax.value_and_grad(objective)(x0)
        grad_scale = optax.tree.norm(grad0)
        state0 = opt.init(x0)
        cost_model = _cost_of(raw, x0, state0)
        judge = trial_judge(state0)
        variable = bool(cost_model.counted)

        def met(x: PyTree, value: jax.Array, grad: PyTree) -> jax.Array:
            return rule.within(x, value, grad, grad_scale)

        def checked_step(carry: tuple) -> tuple[tuple, jax.Array]:
            """One update and the tolerance test at the new point (not yet masked by divergence)."""
            x, state, value, grad, marks, diverged, spent = carry
            updates, new_state = opt.update(grad, state, x, **_extra_kwargs(state, objective, value, grad))
            x = optax.apply_updates(x, updates)
            value, grad = jax.value_and_grad(objective)(x)
            now = met(x, value, grad)
            if variable:  # cumulative cost, and the cost when the current streak within tol began
                total = spent[0] + cost_model.step(state, new_state)
                begins = now & ~diverged & (marks.miss == marks.t - 1)
                spent = (total, jnp.where(begins, total, spent[1]))
            return (x, new_state, value, grad, marks, diverged, spent), now

        def step(carry: tuple, _: None) -> tuple[tuple, None]:
            """A step that folds its point into the marks (variable cost: the cost when a streak
            begins needs them every step).  A diverged run's points never count."""
            carry, now = checked_step(carry)
            return carry[:4] + (carry[4].advance(now & ~carry[5]),) + carry[5:], None

        def flagged_step(carry: tuple, _: None) -> tuple[tuple, None]:
            """A step that shifts its flag into a 32-bit word (folded by :meth:`_Marks.flush`)."""
            inner, bits = carry
            inner, now = checked_step(inner)
            return (inner, (bits << 1) | now.astype(jnp.uint32)), None

        def group(carry: tuple, _: None, size: int = 32) -> tuple[tuple, None]:
            """``size <= 32`` flagged steps, then their word folded into the marks (divergence
            is fixed within a block: a diverged run's word is cleared)."""
            (carry, bits), _ = jax.lax.scan(flagged_step, (carry, jnp.uint32(0)), None, length=size)
            bits = jnp.where(carry[5], jnp.uint32(0), bits)
            return carry[:4] + (carry[4].flush(bits, size),) + carry[5:], None

        def steps_of(length: int, carry: tuple) -> tuple:
            """``length`` steps, their points folded into the marks."""
            if variable:
                return jax.lax.scan(step, carry, None, length=length)[0]
            groups, rest = divmod(length, 32)
            if groups:
                carry, _ = jax.lax.scan(group, carry, None, length=groups)
            if rest:
                carry, _ = group(carry, None, rest)
            return carry

        def block(length: int) -> Callable[[tuple, None], tuple[tuple, Any]]:
            """``length`` unchecked steps, then the divergence check: NaN/inf in the point
            propagates into f, so testing the value is enough.  A diverged run returns to the
            block's start (its last finite point on a block boundary) and stays there for good;
            its optimizer state may go non-finite but never reaches the point again.  Checking
            per block instead of per step keeps the loop fused (~2x faster on CPU).  The value is
            recomputed here rather than taken from the loop, so the loop carries it only for an
            optimizer that reads it (XLA drops it otherwise: one kernel fewer per step)."""

            def run_block(carry: tuple, _: None) -> tuple[tuple, Any]:
                x_start, _, value_start, grad_start, _, diverged, _ = carry
                x, state, _, grad, marks, _, spent = steps_of(length, carry)
                value = objective(x)
                if judge is not None:  # a non-finite trial is a rejected step: carry on from the accepted point
                    point, point_value, point_grad = accepted_point(trial_judge(state), x)
                    good = jnp.isfinite(value) & jnp.all(jnp.isfinite(ravel_pytree(grad)[0]))
                    pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(good, a, b.astype(a.dtype)), new, old)
                    x, value, grad = pick(x, point), pick(value, point_value), pick(grad, point_grad)
                diverged = diverged | ~jnp.isfinite(value)
                keep = lambda old, new: jax.tree.map(lambda a, b: jnp.where(diverged, a, b), old, new)
                x, value, grad = keep(x_start, x), keep(value_start, value), keep(grad_start, grad)
                out = (x, value, optax.tree.norm(grad)) if stride else None
                return (x, state, value, grad, marks, diverged, spent), out

            return run_block

        within0 = met(x0, value0, grad0)
        start_cost = jnp.asarray(COST_UNITS["grad"], jnp.result_type(float))
        spent0 = (start_cost, jnp.where(within0, start_cost, jnp.inf)) if variable else ()
        carry = (x0, state0, value0, grad0, _Marks.start(within0), jnp.asarray(False), spent0)
        carry, recorded = jax.lax.scan(block(block_len), carry, None, length=steps // block_len)
        if steps % block_len:  # final-state mode only: the stride divides steps
            carry, _ = block(steps % block_len)(carry, None)
        x, _, value, grad, marks, diverged, spent = carry
        hit, ended = marks.hit, marks.miss != steps
        settled = jnp.where(ended, marks.miss + 1, -1)
        if variable:
            cost, cost_to_settle = spent[0], jnp.where(ended, spent[1], jnp.inf)
        else:  # a constant per step: no carry, computed from the settled step
            cost = start_cost + steps * cost_model.per_step
            cost_to_settle = jnp.where(ended, start_cost + settled * cost_model.per_step, jnp.inf)
        result = {"final": x, "final_value": value, "final_grad_norm": optax.tree.norm(grad),
                  "first_hit": hit, "settled_step": settled, "ended_within": ended,
                  "final_distance": rule.distance(x), "cost": cost, "cost_to_settle": cost_to_settle,
                  "diverged": diverged}
        if stride:
            traj, values, norms = recorded
            result["trajectory"] = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), x0, traj)
            result["values"] = jnp.concatenate([value0[None], values])
            result["grad_norms"] = jnp.concatenate([optax.tree.norm(grad0)[None], norms])
        return result

    return one


@functools.lru_cache(maxsize=128)
def _compiled(objective_spec: Spec, optimizer_spec: Spec, steps: int, stride: int,
              rule: _Tolerance) -> Callable[..., dict[str, Any]]:
    """``jit(shard_map(vmap(run)))`` over every device, cached by what the objective and the
    optimizer (or factory) compute (:func:`gradkit.lifting.lift`), so repeated calls -- also with a
    fresh optimizer of other numeric hyperparameters -- reuse the compiled executable.
    ``shard_map`` (not automatic partitioning) makes each device run exactly the one-device
    program on its block of runs, so results are bit-identical on 1 and many devices."""
    note_compile("gradkit.runs", objective_spec, optimizer_spec)
    batched = jax.vmap(_single_run(objective_spec, optimizer_spec, steps, stride, rule), in_axes=(0, 0, None, None))
    devices = tuple(jax.devices())
    if len(devices) == 1:
        return jax.jit(batched)
    spec, same = PartitionSpec("runs"), PartitionSpec()
    return jax.jit(jax.shard_map(batched, mesh=_run_sharding(devices).mesh, in_specs=(spec, spec, same, same),
                                 out_specs=spec, check_vma=False))


@functools.lru_cache(maxsize=64)
def _chunk_of(lo: int, hi: int, chunk: int, sharding: NamedSharding) -> Callable[[PyTree], PyTree]:
    """Runs ``lo:hi`` of every leaf, padded to ``chunk`` by repeating the last run (so every
    chunk has the compiled shape), placed with ``sharding``: one jitted call (~30 us) where
    the eager slicing, repeat, concatenate and device_put cost ~0.4 ms at 10^3 runs."""

    def take(a: jax.Array) -> jax.Array:
        part = a[lo:hi]
        pad = chunk - (hi - lo)
        if pad:
            part = jnp.concatenate([part, jnp.repeat(part[-1:], pad, axis=0)])
        return part

    return jax.jit(lambda tree: jax.tree.map(take, tree), out_shardings=sharding)


@functools.lru_cache(maxsize=8)
def _run_sharding(devices: tuple[jax.Device, ...]) -> NamedSharding:
    """The run axis split over ``devices`` (a 1-D mesh), cached: building it costs ~10 us per call."""
    return NamedSharding(Mesh(np.asarray(devices), ("runs",)), PartitionSpec("runs"))


def estimate_bytes(n_runs: int, steps: int, point_size: int, record: str | int, itemsize: int = 4) -> int:
    """Bytes of the recorded arrays: ``runs × (steps/stride + 1) × (point size + 2) × itemsize``."""
    stride = _record_stride(record, steps)
    columns = (steps // stride + 1) if stride else 1
    return n_runs * columns * (point_size + 2) * itemsize


# --------------------------------------------------------------------------------------
# argument checks (all before any compute)
# --------------------------------------------------------------------------------------


def _check_steps(steps: Any) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


def _check_nonnegative(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a non-negative number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}"
                         + (" (an infinite tolerance would call every run converged)" if math.isinf(number) else ""))


def _check_starts(starts: Any) -> int:
    """The number of runs in ``starts``: an array ``(runs, dim)`` or a pytree of arrays with a
    common leading run axis."""
    if isinstance(starts, (list, tuple)) and not hasattr(starts, "_fields"):
        raise TypeError(f"starts must be an array of shape (runs, dim) or a pytree of arrays with a leading run "
                        f"axis, got a Python {type(starts).__name__}; use jnp.asarray(starts)")
    leaves = jax.tree.leaves(starts)
    if not leaves:
        raise ValueError("starts must contain at least one array, got an empty pytree")
    if any(not hasattr(leaf, "shape") for leaf in leaves):
        raise TypeError("starts must hold arrays (with a leading run axis), got a Python scalar leaf")
    if not isinstance(starts, dict) and len(leaves) == 1 and jnp.ndim(leaves[0]) == 1:
        raise ValueError(f"starts must have shape (runs, dim), got a 1-D array of shape {jnp.shape(leaves[0])}; "
                         "for one run use starts[None], for 1-D problems starts[:, None]")
    if any(jnp.ndim(leaf) == 0 for leaf in leaves):
        raise ValueError("starts must have a leading run axis, got a 0-d array")
    for leaf in leaves:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"starts must be floating-point arrays (the runs move these points), got dtype {dtype}; "
                            "use jnp.asarray(starts, float)")
    n_runs = int(jnp.shape(leaves[0])[0])
    if n_runs == 0:
        raise ValueError("starts is empty (0 runs): give at least one start point")
    if any(jnp.shape(leaf)[0] != n_runs for leaf in leaves):
        raise ValueError("every leaf of starts must have the same leading (run) axis")
    return n_runs


def _check_objective(objective: Callable[[PyTree], jax.Array], objective_spec: Spec, starts: PyTree) -> None:
    """``objective`` must return a scalar at one start point (``jax.eval_shape``: nothing runs;
    cached per objective spec and point structure, so a loop of calls pays it once)."""
    leaves, treedef = jax.tree.flatten(starts)
    spec = (treedef, tuple((tuple(jnp.shape(a)[1:]), jnp.result_type(a)) for a in leaves))
    shape = _objective_output_shape(objective_spec, spec, Uncompared(objective))
    if shape != ():
        raise ValueError(f"objective must return a scalar, got shape {shape} at one start point")


@functools.lru_cache(maxsize=256)
def _objective_output_shape(objective_spec: Spec, spec: tuple, objective: Uncompared) -> Any:
    treedef, shapes = spec
    point = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in shapes])
    out = jax.eval_shape(objective.obj, point)
    return getattr(out, "shape", type(out).__name__)


def _tolerance(tol: Any, rtol: Any, f_star: Any, f_scale: Any, xtol: Any, minimizers: Any, point_size: int
               ) -> _Tolerance:
    _check_nonnegative("tol", tol)
    _check_nonnegative("rtol", rtol)
    _check_nonnegative("xtol", xtol, allow_none=True)
    _check_nonnegative("f_scale", f_scale)
    mins = None
    if minimizers is not None:
        arr = np.asarray(minimizers, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != point_size:
            raise ValueError(f"minimizers must be an (m, dim) array with dim = {point_size}, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("minimizers must be finite")
        mins = tuple(tuple(float(v) for v in row) for row in arr)
    if xtol is not None and mins is None:
        raise ValueError("xtol needs minimizers (an (m, dim) array of known minimizers)")
    return _Tolerance(float(tol), float(rtol), None if f_star is None else float(f_star), float(f_scale),
                      None if xtol is None else float(xtol), mins)


def run_batch(
    objective: Callable[[PyTree], jax.Array],
    make_optimizer: OptimizerLike,
    starts: PyTree,
    steps: int,
    hparams: Mapping[str, Any] | None = None,
    record: str | int = "final",
    tol: float = 1e-6,
    f_star: float | None = None,
    chunk_size: int = 262144,
    max_bytes: int = _DEFAULT_MAX_BYTES,
    progress: bool = False,
    *,
    rtol: float = 0.0,
    f_scale: float = 1.0,
    xtol: float | None = None,
    minimizers: Any = None,
) -> RunResult:
    """Run ``make_optimizer(**hparams[r])`` from ``starts[r]`` for every run ``r`` (see module doc).

    ``make_optimizer`` is a factory of traced hyperparameters, or an optimizer itself
    (then ``hparams`` must be empty); any optax transformation, including
    ``GradientTransformationExtraArgs`` that read ``value`` / ``grad`` / ``value_fn``.
    The compiled executable is cached per (what the objective computes, what the optimizer or
    factory computes, steps, record, tolerance rule): a fresh optimizer that differs only in
    numeric hyperparameters (``adam(0.01)`` after ``adam(0.1)``) reuses it, its numbers passed
    as traced arguments (:mod:`gradkit.lifting`).

    ``hparams`` maps names to arrays with the same leading run axis as ``starts``
    (or scalars, broadcast).  Within tolerance (module doc): ``|f - f_star| <= tol +
    rtol·f_scale`` when ``f_star`` is finite, ``min ||x - minimizers_j|| <= xtol`` when
    ``xtol`` is given, else ``||∇f|| <= tol + rtol·||∇f(x0)||`` (use ``rtol`` in float32).
    ``record``: ``"final"``, ``"trajectory"`` or a stride ``k`` (every k-th step).
    Trajectory records larger than ``max_bytes`` are refused with the estimate.
    """
    _check_steps(steps)
    stride = _record_stride(record, steps)
    if stride and steps % stride:
        raise ValueError(f"the record stride {stride} must divide steps={steps}")
    n_runs = _check_starts(starts)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    leaves = jax.tree.leaves(starts)
    point_size = sum(int(np.prod(jnp.shape(leaf)[1:])) for leaf in leaves)
    rule = _tolerance(tol, rtol, f_star, f_scale, xtol, minimizers, point_size)
    is_opt = isinstance(make_optimizer, optax.GradientTransformation)
    if hparams and is_opt:
        raise ValueError("hparams need an optimizer factory, not an optimizer instance")
    if not is_opt and not callable(make_optimizer):
        raise TypeError(f"make_optimizer must be an optax GradientTransformation or a factory, "
                        f"got {type(make_optimizer).__name__}")
    hparams = {k: jnp.broadcast_to(jnp.asarray(v), (n_runs,)) if jnp.ndim(v) == 0 else jnp.asarray(v)
               for k, v in (hparams or {}).items()}
    for k, v in hparams.items():
        if v.shape[0] != n_runs:
            raise ValueError(f"hyperparameter {k!r} has {v.shape[0]} values for {n_runs} runs")
    if not callable(objective):
        raise TypeError(f"objective must be callable, got {type(objective).__name__}")
    objective_spec, objective_leaves = lift(objective, floats=False)
    _check_objective(objective, objective_spec, starts)
    if stride:  # only recording needs memory that grows with the steps
        needed = estimate_bytes(n_runs, steps, point_size, record, jnp.result_type(leaves[0]).itemsize)
        if needed > max_bytes:
            raise ValueError(
                f"recording {record!r} for {n_runs} runs x {steps} steps needs about {needed / 1e9:.2f} GB "
                f"(> max_bytes = {max_bytes / 1e9:.2f} GB); record every k-th step (record=k) or 'final'"
            )

    n_dev = jax.device_count()
    n_chunks = -(-n_runs // chunk_size)
    chunk = -(-n_runs // n_chunks)  # equal chunks: at most n_chunks - 1 padded runs
    # a multiple of LANES runs per device: every run then goes through XLA's vectorized loop body, never a
    # scalar remainder loop or a batch-of-one specialization (whose rounding can differ in the last bit,
    # e.g. FMA contraction or a transcendental's scalar path), so results do not depend on chunk_size or
    # on the device count
    chunk = -(-chunk // (n_dev * _LANES)) * (n_dev * _LANES)
    sharding = _run_sharding(tuple(jax.devices()))
    inputs = (starts, hparams)

    def dispatch(optimizer_spec: Spec, optimizer_leaves: tuple) -> list[tuple[int, dict[str, Any]]]:
        fn = _compiled(objective_spec, optimizer_spec, int(steps), stride, rule)
        pieces = []
        for lo in range(0, n_runs, chunk):
            hi = min(lo + chunk, n_runs)
            if n_dev == 1 and lo == 0 and hi == n_runs == chunk:
                part = inputs  # the whole batch, unpadded, on the only device: no copy
            else:  # one compiled slice-and-pad per chunk geometry, not a dozen eager ops per call
                part = _chunk_of(lo, hi, chunk, sharding)(inputs)
            # dispatch every chunk before reading any back, so the device never waits on the host
            pieces.append((hi - lo, fn(*part, objective_leaves, optimizer_leaves)))
        return pieces

    # floats lifted; if the optimizer branches on a hyperparameter in Python, keyed by value instead
    pieces = call_with_fallback(make_optimizer, dispatch)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_runs * steps, desc="run-steps", unit="step", unit_scale=True)
    pieces_np = []
    for n, out in pieces:
        pieces_np.append(jax.tree.map(lambda a, n=n: np.asarray(a)[:n], out))
        if bar is not None:
            bar.update(n * steps)
    if bar is not None:
        bar.close()
    merged = jax.tree.map(lambda *parts: np.concatenate(parts), *pieces_np) if len(pieces_np) > 1 else pieces_np[0]
    recorded_steps = np.arange(0, steps + 1, stride) if stride else np.array([steps])
    return RunResult(steps_recorded=recorded_steps, **merged)


def run(
    objective: Callable[[PyTree], jax.Array],
    optimizer: optax.GradientTransformation,
    starts: PyTree,
    steps: int,
    record: str | int = "final",
    tol: float = 1e-6,
    f_star: float | None = None,
    **kwargs: Any,
) -> RunResult:
    """Run one optimizer from every start point (leading axis of ``starts``) in one compiled call.

    See :func:`run_batch` for ``record``, the tolerance rule (``tol``, ``rtol``, ``f_star``,
    ``f_scale``, ``xtol``, ``minimizers``), cost counting, chunking and sharding.
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax GradientTransformation, got {type(optimizer).__name__} "
                        "(use run_batch or sweep for a factory)")
    return run_batch(objective, optimizer, starts, steps, None, record, tol, f_star, **kwargs)


# --------------------------------------------------------------------------------------
# sweeps
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """A sweep's results with coordinates.

    ``results[name]`` is the :class:`RunResult` of optimizer ``name`` over its
    flattened grid: run ``r`` used ``grids[name][r // n_starts]`` (a dict of
    hyperparameter values, ``[{}]`` without a grid) from start ``r % n_starts``.

    Held-out selection: configs are chosen on the even-numbered starts (0, 2, 4, ...)
    and judged on the odd-numbered ones, so a verdict is never tuned on itself (with
    a single start both halves are that start).
    """

    results: dict[str, RunResult]
    grids: dict[str, list[dict[str, float]]]
    n_starts: int
    steps: int

    def per_config(self, name: str, field: str = "first_hit") -> np.ndarray:
        """``field`` of optimizer ``name`` reshaped to ``(configs, starts)``."""
        return np.asarray(getattr(self.results[name], field)).reshape(len(self.grids[name]), self.n_starts)

    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        """Start indices of the tuning half (even) and the held-out half (odd)."""
        idx = np.arange(self.n_starts)
        if self.n_starts == 1:
            return idx, idx
        return idx[::2], idx[1::2]

    def _stats(self, name: str, starts: np.ndarray) -> list[dict[str, float]]:
        """Per config of ``name``, the verdicts over the start indices ``starts``: fractions
        converged / ever hit / diverged, censored medians (an unsettled run counts as the
        budget: ``steps``, or its whole cost)."""
        conv = self.per_config(name, "converged")[:, starts]
        settled = np.where(conv, self.per_config(name, "settled_step")[:, starts], self.steps)
        cost = np.where(conv, self.per_config(name, "cost_to_settle")[:, starts], self.per_config(name, "cost")[:, starts])
        ever = self.per_config(name, "ever_hit")[:, starts]
        div = self.per_config(name, "diverged")[:, starts]
        return [{"converged": float(c.mean()), "ever_hit": float(e.mean()), "median_settled": float(np.median(s)),
                 "median_cost": float(np.median(k)), "diverged": float(d.mean())}
                for c, e, s, k, d in zip(conv, ever, settled, cost, div)]

    def summary(self) -> list[dict[str, Any]]:
        """One row per (optimizer, config) over every start: ``converged`` (fraction ending
        within tol, finite), ``ever_hit`` (fraction touching it once), ``median_settled`` and
        ``median_cost`` (censored: an unsettled run counts as the budget), ``diverged``."""
        everything = np.arange(self.n_starts)
        return [{"optimizer": name, **cfg, **stats}
                for name in self.results for cfg, stats in zip(self.grids[name], self._stats(name, everything))]

    def best_config(self, name: str) -> int:
        """Index into ``grids[name]`` of the config chosen on the tuning half: most converged,
        then fewest censored median settled steps, then least censored median cost."""
        stats = self._stats(name, self.halves()[0])
        keys = [(-s["converged"], s["median_settled"], s["median_cost"]) for s in stats]
        return min(range(len(keys)), key=keys.__getitem__)

    def at_grid_edge(self, name: str, index: int) -> bool:
        """Whether a swept hyperparameter (more than one value) of config ``index`` is the first
        or last value of its grid: the optimum may lie outside the grid."""
        configs = self.grids[name]
        for key in configs[index]:
            values = list(dict.fromkeys(c[key] for c in configs))
            if len(values) > 1 and configs[index][key] in (values[0], values[-1]):
                return True
        return False

    def best(self) -> list[dict[str, Any]]:
        """One row per optimizer at its best config chosen on the tuning half, judged on the
        held-out half (:meth:`halves`): the config's keys, ``converged``, ``ever_hit``,
        ``median_settled``, ``median_cost``, ``diverged`` and ``at_grid_edge``.  Sorted best
        first: most converged, ties broken by the area under the performance profile (steps to
        settle, :func:`gradkit.profiles.performance_profile`), then the median settled step."""
        from gradkit.profiles import performance_profile, profile_area

        held_out = self.halves()[1]
        area = dict(zip(*(lambda p: (p.solvers, profile_area(p)))(performance_profile(self))))
        rows = []
        for name in self.results:
            k = self.best_config(name)
            row = {"optimizer": name, **self.grids[name][k], **self._stats(name, held_out)[k],
                   "at_grid_edge": self.at_grid_edge(name, k), "profile_area": float(area[name])}
            rows.append(row)
        return sorted(rows, key=lambda r: (-r["converged"], -r["profile_area"], r["median_settled"], r["median_cost"]))


def grid_product(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """The cross product of a hyperparameter grid as a list of dicts."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(list(grid[n]) for n in names))]


def _is_learning_rate(key: str) -> bool:
    return key in ("lr", "learning_rate", "step_size") or key.endswith("learning_rate")


def _check_grid(name: str, make: OptimizerLike, grid: Mapping[str, Sequence[float]]) -> None:
    """Grid keys the factory accepts (``inspect.signature``), finite values, positive learning rates."""
    if not grid:
        return
    if isinstance(make, optax.GradientTransformation):
        raise ValueError(f"grids[{name!r}] sweeps {sorted(grid)} but optimizers[{name!r}] is an optimizer instance; "
                         "give a factory (e.g. optim.adam) to sweep its hyperparameters")
    try:
        params = inspect.signature(make).parameters
    except (TypeError, ValueError):
        params = None
    if params is not None and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [p for p, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
        for key in grid:
            if key not in accepted:
                raise ValueError(f"grids[{name!r}] has key {key!r}, which optimizers[{name!r}] does not accept; "
                                 f"expected one of {accepted}")
    for key, values in grid.items():
        values = list(np.ravel(np.asarray(values, dtype=object))) if not isinstance(values, (list, tuple)) else values
        if len(values) == 0:
            raise ValueError(f"grids[{name!r}][{key!r}] is empty; give at least one value")
        for v in values:
            try:
                number = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"grids[{name!r}][{key!r}] must hold numbers, got {v!r}") from None
            if not math.isfinite(number):
                raise ValueError(f"grids[{name!r}][{key!r}] must hold finite numbers, got {v!r}")
            if _is_learning_rate(key) and number <= 0:
                raise ValueError(f"grids[{name!r}][{key!r}] learning rates must be positive, got {v!r}")


def sweep(
    objective: Callable[[PyTree], jax.Array],
    optimizers: Mapping[str, OptimizerLike],
    starts: PyTree,
    grids: Mapping[str, Mapping[str, Sequence[float]]],
    steps: int,
    tol: float = 1e-6,
    f_star: float | None = None,
    record: str | int = "final",
    **kwargs: Any,
) -> SweepResult:
    """Every optimizer × every config of its grid × every start, one compiled call per optimizer.

    ``optimizers[name](**config)`` builds the optimizer (or ``optimizers[name]`` is an
    optimizer, swept over no grid); ``grids[name]`` maps hyperparameter names to value
    lists (e.g. ``{"learning_rate": [1e-3, 1e-2]}``).  The configs are vmapped as traced
    arrays, never recompiled per value.  ``record``, the tolerance keywords (``rtol``,
    ``f_scale``, ``xtol``, ``minimizers``) and chunking as in :func:`run_batch`.
    """
    _check_steps(steps)
    n_starts = _check_starts(starts)
    if not isinstance(optimizers, Mapping) or not optimizers:
        raise ValueError("optimizers must be a non-empty mapping name -> optimizer factory (or optimizer)")
    unknown = [name for name in grids if name not in optimizers]
    if unknown:
        raise ValueError(f"grids has entries {unknown} for no optimizer; optimizers are {list(optimizers)}")
    for name, make in optimizers.items():
        _check_grid(name, make, grids.get(name, {}))
    results, flat_grids = {}, {}
    for name, make in optimizers.items():
        configs = grid_product(grids.get(name, {})) or [{}]
        n_cfg = len(configs)
        tiled = jax.tree.map(lambda a: jnp.tile(a, (n_cfg,) + (1,) * (jnp.ndim(a) - 1)), starts)
        hp = {k: jnp.repeat(jnp.asarray([c[k] for c in configs], dtype=jnp.result_type(float)), n_starts)
              for k in configs[0]}
        results[name] = run_batch(objective, make, tiled, steps, hp or None, record, tol, f_star, **kwargs)
        flat_grids[name] = configs
    return SweepResult(results, flat_grids, n_starts, steps)


def start_grid(domain: Sequence[tuple[float, float]], per_axis: int, margin: float = 0.05) -> jax.Array:
    """A regular grid of start points inside ``domain`` (a ``margin`` fraction in from each edge),
    shape ``(per_axis ** dim, dim)``."""
    axes = [np.linspace(lo + margin * (hi - lo), hi - margin * (hi - lo), per_axis) for lo, hi in domain]
    mesh = np.meshgrid(*axes, indexing="ij")
    return jnp.asarray(np.stack([m.reshape(-1) for m in mesh], axis=1))


def nearest_minimum(points: np.ndarray, minima: Iterable[Sequence[float]], radius: float = 1e-2) -> np.ndarray:
    """Index of the listed minimum within ``radius`` of each point, or -1 (for basin maps)."""
    mins = np.asarray(list(minima), dtype=np.float64)
    if mins.size == 0:
        return np.full(len(points), -1)
    dist = np.linalg.norm(np.asarray(points)[:, None, :] - mins[None], axis=-1)
    idx = np.argmin(dist, axis=1)
    return np.where(dist[np.arange(len(points)), idx] <= radius, idx, -1)

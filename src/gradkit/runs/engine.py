"""The compiled runner: ``jit(shard_map(vmap(scan)))`` over a run axis (see :mod:`gradkit.runs`)."""

from __future__ import annotations

import functools
import math
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gradkit import _compile
from gradkit.lifting import Spec, call_with_fallback, lift, note_compile
from gradkit.optim.quasi_newton import accepted_point, trial_judge
from gradkit.runs.checks import _check_objective, _check_objective_data, _check_starts, _check_steps, _tolerance
from gradkit.runs import multihost
from gradkit.runs.costs import COST_UNITS, _Cost, _cost_of, _has_line_search, _vector
from gradkit.runs.result import RunResult
from gradkit.runs.units import Counts, as_counts, gradient_equivalents
from gradkit.runs.verdicts import _Ladder, _Marks, _Tolerance

PyTree = Any
OptimizerFactory = Callable[..., optax.GradientTransformation]
OptimizerLike = optax.GradientTransformation | OptimizerFactory

_DEFAULT_MAX_BYTES = 4 * 1024**3

FAST_COMPILE_OPTIONS = _compile.FAST_COMPILE_OPTIONS
"""The XLA options of ``fast_compile=True`` (:data:`gradkit._compile.FAST_COMPILE_OPTIONS`)."""


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

def _extra_kwargs(state: Any, objective: Callable[[PyTree], jax.Array], value: jax.Array, grad: PyTree
                  ) -> dict[str, Any]:
    """The extra keywords every optimizer family reads (see the module doc)."""
    kwargs = {"value_fn": objective, "value": value, "grad": grad}
    if not _has_line_search(state):
        kwargs["obj_fn"] = objective
    return kwargs


def _ladder(targets: Sequence[float] | None, rule: _Tolerance) -> _Ladder | None:
    """The hashable target ladder (checked: finite targets, a finite ``f_star`` to measure from)."""
    if targets is None:
        return None
    values = np.ravel(np.asarray(targets, dtype=np.float64))
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"targets must be a non-empty sequence of finite f - f_star thresholds, got {targets!r}")
    if not rule.on_value:
        raise ValueError("targets need a finite f_star (each target is a threshold on f - f_star)")
    return _Ladder(tuple(float(v) for v in values), float(rule.f_star))


def _check_step_cost(step_cost: Any) -> Counts | None:
    """``step_cost`` as :class:`Counts` of Python floats (hashable), checked: finite, ``>= 0``
    per kind, a positive cost; a bare number is that many gradients."""
    if step_cost is None:
        return None
    numbers = as_counts(step_cost)
    ok = all(isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) and c >= 0 for c in numbers)
    if not ok or not gradient_equivalents(numbers) > 0:
        raise ValueError(f"step_cost must be a positive finite number of gradient-equivalents or Counts of "
                         f"finite counts >= 0, got {step_cost!r}")
    return Counts(*(float(c) for c in numbers))


def _bind_data(objective: Callable[..., jax.Array], data: PyTree) -> Callable[[PyTree], jax.Array]:
    """``x -> objective(x, data)``: one run's objective over its own data (a BBOB instance, ...)."""
    return lambda x: objective(x, data)


def _single_run(
    objective_spec: Spec,
    optimizer_spec: Spec,
    steps: int,
    stride: int,
    rule: _Tolerance,
    ladder: _Ladder | None = None,
    with_data: bool = False,
    step_cost: Counts | None = None,
) -> Callable[..., dict[str, Any]]:
    """The scan for one run; vmapped over the run axis by :func:`_compiled`.  The objective and
    the optimizer (or factory) are rebuilt from their specs and lifted leaves (traced), so one
    program serves every optimizer that differs only in numbers (see :mod:`gradkit.lifting`).
    ``with_data``: the run's ``data`` (a pytree) is the objective's second argument."""

    # divergence is checked every block_len steps (the record stride) and after the last step
    block_len = stride or min(steps, _CHECK_EVERY)

    def one(x0: PyTree, hparams: Mapping[str, jax.Array], data: PyTree, objective_leaves: tuple,
            optimizer_leaves: tuple) -> dict[str, Any]:
        objective = objective_spec.rebuild(objective_leaves)
        if with_data:
            objective = _bind_data(objective, data)
        make_optimizer = optimizer_spec.rebuild(optimizer_leaves)
        is_opt = isinstance(make_optimizer, optax.GradientTransformation)
        raw = make_optimizer if is_opt else make_optimizer(**hparams)
        opt = optax.with_extra_args_support(raw)
        value0, grad0 = jax.value_and_grad(objective)(x0)
        grad_scale = optax.tree.norm(grad0)
        state0 = opt.init(x0)
        cost_model = _cost_of(raw, x0, state0) if step_cost is None else _Cost(step_cost, ())
        judge = trial_judge(state0)
        variable = bool(cost_model.counted)
        dtype = jnp.result_type(float)

        def met(x: PyTree, value: jax.Array, grad: PyTree) -> jax.Array:
            return rule.within(x, value, grad, grad_scale)

        def checked_step(carry: tuple) -> tuple[tuple, jax.Array]:
            """One update and the tolerance test at the new point (not yet masked by divergence)."""
            x, state, value, grad, marks, diverged, spent, reached = carry
            updates, new_state = opt.update(grad, state, x, **_extra_kwargs(state, objective, value, grad))
            x = optax.apply_updates(x, updates)
            value, grad = jax.value_and_grad(objective)(x)
            now = met(x, value, grad)
            if variable:  # cumulative counts (a scalar per kind), and the cost when the current streak began
                more = cost_model.step_counts(state, new_state, dtype)
                counts = Counts(*(a + b for a, b in zip(spent[0], more)))
                begins = now & ~diverged & (marks.miss == marks.t - 1)
                spent = (counts, jnp.where(begins, gradient_equivalents(counts), spent[1]))
            if ladder is not None:
                reached = ladder.advance(reached, value, ~diverged, spent[0] if variable else None)
            return (x, new_state, value, grad, marks, diverged, spent, reached), now

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
                x_start, _, value_start, grad_start, _, diverged, _, _ = carry
                x, state, _, grad, marks, _, spent, reached = steps_of(length, carry)
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
                return (x, state, value, grad, marks, diverged, spent, reached), out

            return run_block

        within0 = met(x0, value0, grad0)
        start_cost = jnp.asarray(COST_UNITS["grad"], dtype)
        start_counts, per_step = _vector(Counts(grads=1), dtype), _vector(cost_model.per_step, dtype)
        spent0 = (Counts(*start_counts), jnp.where(within0, start_cost, jnp.inf)) if variable else ()
        reached0 = ladder.start(value0, tuple(start_counts)) if ladder is not None else ()
        carry = (x0, state0, value0, grad0, _Marks.start(within0), jnp.asarray(False), spent0, reached0)
        carry, recorded = jax.lax.scan(block(block_len), carry, None, length=steps // block_len)
        if steps % block_len:  # final-state mode only: the stride divides steps
            carry, _ = block(steps % block_len)(carry, None)
        x, _, value, grad, marks, diverged, spent, reached = carry
        hit, ended = marks.hit, marks.miss != steps
        settled = jnp.where(ended, marks.miss + 1, -1)
        if variable:
            counts, cost_to_settle = jnp.stack(spent[0]), jnp.where(ended, spent[1], jnp.inf)
        else:  # a constant per step: no carry, computed from the settled step
            counts = start_counts + steps * per_step
            cost_to_settle = jnp.where(ended, start_cost + settled * cost_model.per_step_cost, jnp.inf)
        cost = gradient_equivalents(counts)
        result = {"final": x, "final_value": value, "final_grad_norm": optax.tree.norm(grad),
                  "first_hit": hit, "settled_step": settled, "ended_within": ended,
                  "final_distance": rule.distance(x), "cost": cost, "cost_to_settle": cost_to_settle,
                  "diverged": diverged, "counts": counts}
        if ladder is not None:
            _, target_steps, target_counts = reached
            hit = target_steps >= 0
            if variable:
                target_counts = jnp.stack(target_counts, axis=-1)
            else:
                target_counts = jnp.where(hit[:, None], start_counts + target_steps[:, None] * per_step, jnp.inf)
            result["target_steps"], result["target_counts"] = target_steps, target_counts
            result["target_costs"] = jnp.where(hit, gradient_equivalents(target_counts), jnp.inf)
        if stride:
            traj, values, norms = recorded
            result["trajectory"] = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), x0, traj)
            result["values"] = jnp.concatenate([value0[None], values])
            result["grad_norms"] = jnp.concatenate([optax.tree.norm(grad0)[None], norms])
        return result

    return one


@functools.lru_cache(maxsize=128)
def _compiled(objective_spec: Spec, optimizer_spec: Spec, steps: int, stride: int,
              rule: _Tolerance, ladder: _Ladder | None = None, with_data: bool = False,
              step_cost: Counts | None = None, fast_compile: bool = False) -> Callable[..., dict[str, Any]]:
    """``jit(shard_map(vmap(run)))`` over every device, cached by what the objective and the
    optimizer (or factory) compute (:func:`gradkit.lifting.lift`), so repeated calls -- also with a
    fresh optimizer of other numeric hyperparameters -- reuse the compiled executable.
    ``shard_map`` (not automatic partitioning) makes each device run exactly the one-device
    program on its block of runs, so results are bit-identical on 1 and many devices.
    ``fast_compile``: compiled with :data:`FAST_COMPILE_OPTIONS` on CPU."""
    note_compile("gradkit.runs", objective_spec, optimizer_spec)
    one = _single_run(objective_spec, optimizer_spec, steps, stride, rule, ladder, with_data, step_cost)
    batched = jax.vmap(one, in_axes=(0, 0, 0, None, None))
    devices = tuple(jax.devices())
    options = _compile.cpu_options(fast_compile)
    if len(devices) == 1:
        return jax.jit(batched, compiler_options=options)
    spec, same = PartitionSpec("runs"), PartitionSpec()
    return jax.jit(jax.shard_map(batched, mesh=_run_sharding(devices).mesh, in_specs=(spec, spec, spec, same, same),
                                 out_specs=spec, check_vma=False), compiler_options=options)


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
    objective_data: PyTree = None,
    targets: Sequence[float] | None = None,
    step_cost: float | Counts | None = None,
    gather_to: int | None = None,
    fast_compile: bool = False,
) -> RunResult | None:
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

    ``objective_data``: a pytree of arrays with the runs' leading axis; run ``r`` then minimizes
    ``objective(x, objective_data[r])`` -- e.g. every instance of a BBOB function in one compiled
    call.  ``targets``: COCO's ladder of ``f - f_star`` thresholds (needs a finite ``f_star``); the
    result then holds, per run and target, the first step ``target_steps`` (-1: never) and the
    gradient-equivalents spent up to it, ``target_costs`` (``inf``: never), the runtime COCO's
    aRT and ECDFs are made of, and ``target_counts`` ``(runs, targets, 4)``: the values, gradients,
    HVPs and JVPs (:data:`~gradkit.runs.units.COUNT_KINDS` order) spent up to it (``inf``: never),
    of which ``target_costs`` is the weighted sum.  ``step_cost``: what one step spends, replacing
    the cost model read from the optimizer's state (for an optimizer without one, measured by
    :func:`gradkit.runs.costs.measure_step_counts`): a :class:`~gradkit.runs.units.Counts` per
    kind, or a number of gradient-equivalents (counted as that many gradients).

    Under ``jax.distributed`` (more than one process, :mod:`gradkit.runs.multihost`) the runs are
    split over every device of every process and the results gathered: every process gets the
    same ``RunResult``, bit for bit the one a single process computes -- or only process
    ``gather_to`` does, the others getting ``None``.  Every process must pass the same arguments
    (host arrays built identically, or global ``jax.Array`` s); a mismatch raises ``ValueError``.

    ``fast_compile=True`` compiles with :data:`FAST_COMPILE_OPTIONS` on CPU: about half the
    compile time, runs up to 5x slower -- for many small calls, where compiling is most of the
    work (the landscape race).  Results may differ from the default's in the last bits.
    """
    gather_to = multihost.check_gather_to(gather_to)
    if not isinstance(fast_compile, bool):
        raise ValueError(f"fast_compile must be True or False, got {fast_compile!r}")
    many_processes = multihost.is_multiprocess()
    if many_processes:  # global arrays fetched whole: the checks and the chunking read host values
        starts, hparams, objective_data = multihost.to_host((starts, hparams, objective_data))
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
    with_data = objective_data is not None
    if with_data:
        _check_objective_data(objective_data, n_runs)
    ladder = _ladder(targets, rule)
    step_cost = _check_step_cost(step_cost)
    objective_spec, objective_leaves = lift(objective, floats=False)
    _check_objective(objective, objective_spec, starts, objective_data)
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
    inputs = (starts, hparams, objective_data)
    if many_processes:
        replicated = NamedSharding(sharding.mesh, PartitionSpec())  # a full copy on every device of the run mesh
        inputs, objective_leaves = multihost.to_mesh((inputs, objective_leaves), replicated)
        settings = (int(steps), stride, repr(rule), repr(ladder), step_cost, chunk_size, objective_spec.identities,
                    fast_compile)

    def dispatch(optimizer_spec: Spec, optimizer_leaves: tuple) -> list[tuple[int, dict[str, Any]]]:
        if many_processes:  # before any compute: a mismatch would otherwise hang or mix runs
            multihost.check_same_on_every_process(
                {"starts": starts, "hparams": hparams, "objective_data": objective_data,
                 "the objective's arrays": objective_leaves, "the optimizer's hyperparameters": optimizer_leaves,
                 "the optimizer": optimizer_spec.identities, "steps, record or the tolerance": settings},
                "run_batch")
            optimizer_leaves = multihost.to_mesh(optimizer_leaves, replicated)
        fn = _compiled(objective_spec, optimizer_spec, int(steps), stride, rule, ladder, with_data, step_cost,
                       fast_compile)
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
    if progress and multihost.is_main_process():
        from tqdm.auto import tqdm

        bar = tqdm(total=n_runs * steps, desc="run-steps", unit="step", unit_scale=True)
    pieces_np = []
    for n, out in pieces:
        if many_processes:  # every process takes part in the gather, even when only one keeps it
            out = multihost.gather(out, gather_to)
        if out is not None:
            pieces_np.append(jax.tree.map(lambda a, n=n: np.asarray(a)[:n], out))
        if bar is not None:
            bar.update(n * steps)
    if bar is not None:
        bar.close()
    if not pieces_np:  # multi-process, gathered to another process
        return None
    merged = jax.tree.map(lambda *parts: np.concatenate(parts), *pieces_np) if len(pieces_np) > 1 else pieces_np[0]
    recorded_steps = np.arange(0, steps + 1, stride) if stride else np.array([steps])
    if ladder is not None:
        merged["targets"] = np.asarray(ladder.targets)
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
) -> RunResult | None:
    """Run one optimizer from every start point (leading axis of ``starts``) in one compiled call.

    See :func:`run_batch` for ``record``, the tolerance rule (``tol``, ``rtol``, ``f_star``,
    ``f_scale``, ``xtol``, ``minimizers``), cost counting, chunking and sharding.
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax GradientTransformation, got {type(optimizer).__name__} "
                        "(use run_batch or sweep for a factory)")
    return run_batch(objective, optimizer, starts, steps, None, record, tol, f_star, **kwargs)


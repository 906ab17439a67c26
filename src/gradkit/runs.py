"""Many optimization runs in one compiled call: ``jit(vmap(scan))`` over a run axis.

Each run ``r`` has a start point ``x_r`` (any pytree; the leading axis of every
leaf indexes runs) and optionally its own hyperparameters ``h_r`` (arrays with
a leading run axis, passed to ``make_optimizer(**h_r)`` as traced values, so a
learning-rate grid costs no recompilation).  One step of one run is

    f, g = value_and_grad(objective)(x);   u, s = opt.update(g, s, x, value_fn=objective, value=f);   x ← x + u

(the keywords reach optimizers that need the objective — SAM, Newton, Newton-CG,
forward gradients — and are dropped for the others by ``optax.with_extra_args_support``).

A run whose objective value becomes NaN/inf (a non-finite point propagates into
the value) is flagged ``diverged`` and frozen at its last finite point on a check
boundary (every recorded step; in final-state mode every 100 steps and after the
last); its neighbours in the batch are untouched.
The run axis is split into chunks (bounded memory, a tqdm bar) and each chunk is
sharded over every local device (data-parallel, no communication).  Multi-host:
call ``jax.distributed.initialize()`` first; ``jax.devices()`` then spans hosts
and the same mesh shards over all of them.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any
OptimizerFactory = Callable[..., optax.GradientTransformation]
OptimizerLike = optax.GradientTransformation | OptimizerFactory

_DEFAULT_MAX_BYTES = 4 * 1024**3


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Per-run results, NumPy arrays with the run axis first.

    ``final``: last point (pytree); ``final_value``, ``final_grad_norm``;
    ``hit_step``: first step ``k`` (0 = the start) at which the tolerance was met,
    -1 if never; ``diverged``: the run hit NaN/inf and was frozen;
    ``steps_recorded``: the step index of each recorded column;
    ``trajectory`` (pytree, leaves ``(runs, recorded, ...)``), ``values`` and
    ``grad_norms`` (``(runs, recorded)``) when recording, else ``None``.
    """

    final: PyTree
    final_value: np.ndarray
    final_grad_norm: np.ndarray
    hit_step: np.ndarray
    diverged: np.ndarray
    steps_recorded: np.ndarray
    trajectory: PyTree | None = None
    values: np.ndarray | None = None
    grad_norms: np.ndarray | None = None

    @property
    def converged(self) -> np.ndarray:
        """Runs that met the tolerance at some step and did not diverge."""
        return (self.hit_step >= 0) & ~self.diverged


def _record_stride(record: str | int, steps: int) -> int:
    """Steps between recorded points: ``"final"`` -> 0 (nothing recorded), ``"trajectory"`` -> 1."""
    if record == "final":
        return 0
    if record == "trajectory":
        return 1
    if isinstance(record, int) and record >= 1:
        return record
    raise ValueError(f"record must be 'final', 'trajectory' or a positive int stride, got {record!r}")


_CHECK_EVERY = 100  # final-state mode: steps between divergence checks


def _advance_hit(hit: jax.Array, met_now: jax.Array) -> jax.Array:
    """One step of first-hit tracking in a single int: ``hit >= 0`` is the step at which the
    tolerance was first met; ``hit = -j < 0`` means steps ``0 .. j-1`` were checked and missed,
    so a hit now is step ``j = -hit``.  No step counter is carried (one kernel fewer per step)."""
    return jnp.where(hit >= 0, hit, jnp.where(met_now, -hit, hit - 1))


def _single_run(
    objective: Callable[[PyTree], jax.Array],
    make_optimizer: OptimizerLike,
    steps: int,
    stride: int,
    tol: float,
    f_star: float | None,
) -> Callable[[PyTree, Mapping[str, jax.Array]], dict[str, Any]]:
    """The scan for one run; vmapped over the run axis by :func:`_compiled`."""

    needs_norm = f_star is None or not math.isfinite(f_star)
    # divergence is checked every block_len steps (the record stride) and after the last step
    block_len = stride or min(steps, _CHECK_EVERY)

    def met(value: jax.Array, grad: PyTree) -> jax.Array:
        if needs_norm:
            return optax.tree.norm(grad) <= tol
        return jnp.abs(value - f_star) <= tol

    def one(x0: PyTree, hparams: Mapping[str, jax.Array]) -> dict[str, Any]:
        is_opt = isinstance(make_optimizer, optax.GradientTransformation)
        opt = optax.with_extra_args_support(make_optimizer if is_opt else make_optimizer(**hparams))
        value0, grad0 = jax.value_and_grad(objective)(x0)

        def step(carry: tuple, _: None) -> tuple[tuple, None]:
            x, state, value, grad, hit, diverged = carry
            updates, state = opt.update(grad, state, x, value_fn=objective, value=value)
            x = optax.apply_updates(x, updates)
            value, grad = jax.value_and_grad(objective)(x)
            return (x, state, value, grad, _advance_hit(hit, met(value, grad) & ~diverged), diverged), None

        def block(length: int) -> Callable[[tuple, None], tuple[tuple, Any]]:
            """``length`` unchecked steps, then the divergence check: NaN/inf in the point
            propagates into f, so testing the value is enough.  A diverged run returns to the
            block's start (its last finite point on a block boundary) and stays there for good;
            its optimizer state may go non-finite but never reaches the point again.  Checking
            per block instead of per step keeps the loop fused (~2x faster on CPU).  The value is
            recomputed here rather than taken from the loop, so the loop carries it only for an
            optimizer that reads it (XLA drops it otherwise: one kernel fewer per step)."""

            def run_block(carry: tuple, _: None) -> tuple[tuple, Any]:
                x_start, _, value_start, grad_start, _, diverged = carry
                (x, state, _, grad, hit, _), _ = jax.lax.scan(step, carry, None, length=length)
                value = objective(x)
                diverged = diverged | ~jnp.isfinite(value)
                keep = lambda old, new: jax.tree.map(lambda a, b: jnp.where(diverged, a, b), old, new)
                x, value, grad = keep(x_start, x), keep(value_start, value), keep(grad_start, grad)
                out = (x, value, optax.tree.norm(grad)) if stride else None
                return (x, state, value, grad, hit, diverged), out

            return run_block

        hit0 = jnp.where(met(value0, grad0), 0, -1).astype(jnp.int32)
        carry = (x0, opt.init(x0), value0, grad0, hit0, jnp.asarray(False))
        carry, recorded = jax.lax.scan(block(block_len), carry, None, length=steps // block_len)
        if steps % block_len:  # final-state mode only: the stride divides steps
            carry, _ = block(steps % block_len)(carry, None)
        x, _, value, grad, hit, diverged = carry
        result = {"final": x, "final_value": value, "final_grad_norm": optax.tree.norm(grad),
                  "hit_step": jnp.maximum(hit, -1), "diverged": diverged}
        if stride:
            traj, values, norms = recorded
            result["trajectory"] = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), x0, traj)
            result["values"] = jnp.concatenate([value0[None], values])
            result["grad_norms"] = jnp.concatenate([optax.tree.norm(grad0)[None], norms])
        return result

    return one


@functools.lru_cache(maxsize=128)
def _compiled(objective: Callable[[PyTree], jax.Array], make_optimizer: OptimizerLike, steps: int, stride: int,
              tol: float, f_star: float | None) -> Callable[..., dict[str, Any]]:
    """``jit(vmap(run))``, cached so repeated calls with the same objective and optimizer
    (or factory) reuse the compiled executable."""
    return jax.jit(jax.vmap(_single_run(objective, make_optimizer, steps, stride, tol, f_star)))


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
) -> RunResult:
    """Run ``make_optimizer(**hparams[r])`` from ``starts[r]`` for every run ``r`` (see module doc).

    ``make_optimizer`` is a factory of traced hyperparameters, or an optimizer itself
    (then ``hparams`` must be empty).  The compiled executable is cached per
    (objective, optimizer or factory, steps, record, tol, f_star).

    ``hparams`` maps names to arrays with the same leading run axis as ``starts``
    (or scalars, broadcast).  ``tol`` applies to ``|f - f_star|`` when ``f_star``
    is given and finite, else to ``||∇f||``.  ``record``: ``"final"``,
    ``"trajectory"`` or a stride ``k`` (every k-th step).  Trajectory records larger
    than ``max_bytes`` are refused with the estimate (use a stride).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    stride = _record_stride(record, steps)
    if stride and steps % stride:
        raise ValueError(f"the record stride {stride} must divide steps={steps}")
    leaves = jax.tree.leaves(starts)
    if not leaves:
        raise ValueError("starts must contain at least one array")
    n_runs = int(jnp.shape(leaves[0])[0])
    if any(jnp.shape(leaf)[0] != n_runs for leaf in leaves):
        raise ValueError("every leaf of starts must have the same leading (run) axis")
    if hparams and isinstance(make_optimizer, optax.GradientTransformation):
        raise ValueError("hparams need an optimizer factory, not an optimizer instance")
    hparams = {k: jnp.broadcast_to(jnp.asarray(v), (n_runs,)) if jnp.ndim(v) == 0 else jnp.asarray(v)
               for k, v in (hparams or {}).items()}
    for k, v in hparams.items():
        if v.shape[0] != n_runs:
            raise ValueError(f"hyperparameter {k!r} has {v.shape[0]} values for {n_runs} runs")
    if stride:  # only recording needs memory that grows with the steps
        point_size = sum(int(np.prod(jnp.shape(leaf)[1:])) for leaf in leaves)
        needed = estimate_bytes(n_runs, steps, point_size, record, jnp.result_type(leaves[0]).itemsize)
        if needed > max_bytes:
            raise ValueError(
                f"recording {record!r} for {n_runs} runs x {steps} steps needs about {needed / 1e9:.2f} GB "
                f"(> max_bytes = {max_bytes / 1e9:.2f} GB); record every k-th step (record=k) or 'final'"
            )

    fn = _compiled(objective, make_optimizer, steps, stride, float(tol), None if f_star is None else float(f_star))
    n_dev = jax.device_count()
    n_chunks = -(-n_runs // chunk_size)
    chunk = -(-n_runs // n_chunks)  # equal chunks: at most n_chunks - 1 padded runs
    chunk = -(-chunk // n_dev) * n_dev  # a multiple of the device count
    sharding = _run_sharding(tuple(jax.devices()))
    pieces: list[tuple[int, dict[str, Any]]] = []
    bounds = range(0, n_runs, chunk)
    if progress:
        from tqdm.auto import tqdm

        bounds = tqdm(bounds, desc="runs", unit="chunk")
    for lo in bounds:
        hi = min(lo + chunk, n_runs)
        pad = chunk - (hi - lo)

        def take(a: jax.Array) -> jax.Array:
            if n_dev == 1 and not pad and hi - lo == len(a):
                return a  # the whole batch on the only device: no copy
            part = a[lo:hi]
            if pad:  # repeat the last run so every chunk has the compiled shape
                part = jnp.concatenate([part, jnp.repeat(part[-1:], pad, axis=0)])
            return jax.device_put(part, sharding)

        # dispatch every chunk before reading any back, so the device never waits on the host
        pieces.append((hi - lo, fn(jax.tree.map(take, starts), {k: take(v) for k, v in hparams.items()})))
    pieces_np = [jax.tree.map(lambda a, n=n: np.asarray(a)[:n], out) for n, out in pieces]
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

    See :func:`run_batch` for ``record``, ``tol``, ``f_star``, chunking and sharding.
    """
    return run_batch(objective, optimizer, starts, steps, None, record, tol, f_star, **kwargs)


# --------------------------------------------------------------------------------------
# sweeps
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """A sweep's results with coordinates.

    ``results[name]`` is the :class:`RunResult` of optimizer ``name`` over its
    flattened grid: run ``r`` used ``grid[name][r // n_starts]`` (a dict of
    hyperparameter values) from start ``r % n_starts``.
    """

    results: dict[str, RunResult]
    grids: dict[str, list[dict[str, float]]]
    n_starts: int
    steps: int

    def per_config(self, name: str, field: str = "hit_step") -> np.ndarray:
        """``field`` of optimizer ``name`` reshaped to ``(configs, starts)``."""
        return np.asarray(getattr(self.results[name], field)).reshape(len(self.grids[name]), self.n_starts)

    def summary(self) -> list[dict[str, Any]]:
        """One row per (optimizer, config): success rate, median steps to tolerance, divergence rate."""
        rows = []
        for name in self.results:
            hits = self.per_config(name, "hit_step")
            diverged = self.per_config(name, "diverged")
            for cfg, h, d in zip(self.grids[name], hits, diverged):
                ok = (h >= 0) & ~d
                rows.append({"optimizer": name, **cfg, "success": float(ok.mean()),
                             "median_steps": float(np.median(h[ok])) if ok.any() else math.nan,
                             "diverged": float(d.mean())})
        return rows

    def best(self) -> list[dict[str, Any]]:
        """Per optimizer, the config with the highest success rate (ties: fewest median steps)."""
        rows = self.summary()
        best = {}
        for row in rows:
            key = (-row["success"], row["median_steps"] if row["success"] > 0 else math.inf)
            if row["optimizer"] not in best or key < best[row["optimizer"]][0]:
                best[row["optimizer"]] = (key, row)
        return sorted((r for _, r in best.values()),
                      key=lambda r: (-r["success"], r["median_steps"] if r["success"] else math.inf))


def grid_product(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """The cross product of a hyperparameter grid as a list of dicts."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(list(grid[n]) for n in names))]


def sweep(
    objective: Callable[[PyTree], jax.Array],
    optimizers: Mapping[str, OptimizerFactory],
    starts: PyTree,
    grids: Mapping[str, Mapping[str, Sequence[float]]],
    steps: int,
    tol: float = 1e-6,
    f_star: float | None = None,
    record: str | int = "final",
    **kwargs: Any,
) -> SweepResult:
    """Every optimizer × every config of its grid × every start, one compiled call per optimizer.

    ``optimizers[name](**config)`` builds the optimizer; ``grids[name]`` maps
    hyperparameter names to value lists (e.g. ``{"learning_rate": [1e-3, 1e-2]}``).
    The configs are vmapped as traced arrays, never recompiled per value.
    ``record`` as in :func:`run_batch` (recorded arrays are flattened the same way).
    """
    n_starts = int(jnp.shape(jax.tree.leaves(starts)[0])[0])
    results, flat_grids = {}, {}
    for name, make in optimizers.items():
        configs = grid_product(grids.get(name, {}))
        if not configs:
            configs = [{}]
        n_cfg = len(configs)
        tiled = jax.tree.map(lambda a: jnp.tile(a, (n_cfg,) + (1,) * (jnp.ndim(a) - 1)), starts)
        hp = {k: jnp.repeat(jnp.asarray([c[k] for c in configs], dtype=jnp.result_type(float)), n_starts)
              for k in configs[0]}
        results[name] = run_batch(objective, make, tiled, steps, hp, record, tol, f_star, **kwargs)
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

"""Verdicts: the tolerance rule and the per-run marks of the first and last points within it."""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

PyTree = Any

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



class _Ladder(NamedTuple):
    """COCO's runtime to a ladder of targets: per run, the step (and the counts spent) at which
    ``f(x_k) - f* <= target_j`` first held, for every target ``j``.  A point of a diverged run
    never counts (its value is NaN/inf, or the run is frozen)."""

    targets: tuple[float, ...]
    f_star: float

    def start(self, value: jax.Array, counts: tuple) -> tuple:
        """``(k, steps, at_hit)`` after point 0 (``counts``: a scalar per kind spent on it): ``k``
        the index of the last point checked, ``at_hit`` per kind a ``(targets,)`` array of the
        counts when each target was first reached, ``inf`` where not reached."""
        hit = self.hits(value)
        return (jnp.asarray(0, jnp.int32), jnp.where(hit, 0, -1).astype(jnp.int32),
                tuple(jnp.where(hit, c, jnp.inf).astype(jnp.result_type(c)) for c in counts))

    def hits(self, value: jax.Array) -> jax.Array:
        targets = jnp.asarray(self.targets, jnp.result_type(value))
        return value - self.f_star <= targets

    def advance(self, ladder: tuple, value: jax.Array, ok: jax.Array, counts: tuple | None) -> tuple:
        """Point ``k + 1`` (of value ``value``, counted when ``ok``) checked; ``counts``: a scalar per
        kind, the evaluations spent up to it (``None``: a constant per step, computed from the steps
        later).  One scalar per kind rather than a vector: the loop then compiles as without counts."""
        k, steps, at_hit = ladder
        k = k + 1
        new = self.hits(value) & ok & (steps < 0)
        steps = jnp.where(new, k, steps)
        if counts is not None:
            at_hit = tuple(jnp.where(new, c, a) for c, a in zip(counts, at_hit))
        return k, steps, at_hit

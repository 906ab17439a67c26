"""BFGS and L-BFGS with a line search folded into the steps: one function-and-gradient evaluation
per ``update``, so thousands of vmapped runs move in lockstep.

optax's ``lbfgs`` runs a zoom line search in an inner ``while_loop`` at every step; under
``jax.vmap`` every run then waits for the slowest run's line search at every step.  Here the
line search is part of the iteration (as optimistix's solvers do): ``update`` receives the value
and gradient at the current point (the trial), decides, and proposes the next trial:

* the first call accepts the start ``x₀`` and proposes ``x₀ + α₀ d₀`` with ``d₀ = -g₀``,
  ``α₀ = min(1, 1/||g₀||₁)``;
* a trial ``x_acc + s`` is **accepted** when ``f(trial) <= f(x_acc) + c₁ g(x_acc)ᵀs`` (Armijo) and
  finite -- or, where ``f`` can no longer resolve that decrease, when ``f(trial)`` is within
  ``10 ε |f(x_acc)|`` of ``f(x_acc)`` and the gradient is smaller (so the last digits of a
  minimization are not lost to rounding, as in Hager and Zhang's approximate Wolfe test).
  Then with ``y = g(trial) - g(x_acc)`` and ``sᵀy > 0`` the
  inverse-Hessian approximation is updated,

      BFGS:    H ← (I - ρ s yᵀ) H (I - ρ y sᵀ) + ρ s sᵀ,   ρ = 1/(sᵀy)   (H₀ = (sᵀy / yᵀy) I at the first pair)
      L-BFGS:  the last ``memory_size`` pairs, H₀ = (sᵀy / yᵀy) I; H g by the two-loop
               recursion (up to 64 parameters) or, the same H, by its compact representation
               (above: see :class:`LBFGSState`),

  and the next trial is ``x_acc + d``, ``d = -H g`` (the unit step; ``-g`` if ``d`` is not a
  descent direction);
* a rejected trial's step is halved (``backtrack`` factor): the next trial is ``x_acc + β s``; after
  ``max_backtracks`` rejections the memory is dropped and the step restarts from ``-g``.

The step ``s`` is read from the point ``update`` is given (``params - x_acc``), so the state keeps
no direction or step length: under ``vmap`` every carried array is a select and a copy per step
(1000 vmapped runs on Himmelblau 2-D, one core, timed in alternation with optimistix's BFGS alone:
1.06-1.12x its time with them, 0.99-1.02x without).

So a step costs one evaluation whatever happens, and ``update`` reads ``value`` (and ``grad``,
default: the ``updates`` it is given) from the extra keywords that :func:`gradkit.optim.minimize`
and :mod:`gradkit.runs` pass (``value_fn`` is not needed).  State: :class:`BFGSState` /
:class:`LBFGSState`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from gradkit.optim._common import PyTree, check_float_params, check_positive
from gradkit.optim._second_order import check_count

GradientTransformationExtraArgs = optax.GradientTransformationExtraArgs


class BFGSState(NamedTuple):
    """The accepted ``point`` with its value and gradient (flat; not
    named ``value``/``grad``, which would read as the values at the *new* point); ``rejected``
    trials in a row (-1 before the first update); the inverse-Hessian approximation ``h``
    ``(n, n)``; ``pairs`` (0 until the first curvature pair).  The pending trial is not kept: it
    is the point the next ``update`` is given, and its step from ``point`` is ``params - point``."""

    point: jax.Array
    point_value: jax.Array
    point_grad: jax.Array
    rejected: jax.Array
    h: jax.Array
    pairs: jax.Array


class LBFGSState(NamedTuple):
    """As :class:`BFGSState`, with the last ``memory_size`` pairs ``s``, ``y`` (``(m, n)`` each,
    ``pairs`` of them filled, the newest in row ``newest``) in place of ``h``; their inner
    products are computed once, when a pair is stored.  Two layouts, by the number ``n`` of
    parameters (static):

    * ``n <= 64`` (:data:`_SMALL`; many small runs under ``vmap``): the rows shift up at every new
      pair (newest last, ``newest`` stays ``m - 1``); ``sy`` ``(m,)`` holds the curvatures
      ``sᵢᵀyᵢ``, ``yy`` is ``None``; ``H g`` by the two-loop recursion;
    * ``n > 64``: a ring (a new pair overwrites the oldest row in place, no ``(m, n)`` copy per
      step); ``sy`` ``(m, m)`` holds ``sᵢᵀyⱼ`` and ``yy`` ``(m, m)`` holds ``yᵢᵀyⱼ`` (rows and
      columns as the memory's rows); ``H g`` by the compact representation
      (:func:`_compact_product`)."""

    point: jax.Array
    point_value: jax.Array
    point_grad: jax.Array
    rejected: jax.Array
    s: jax.Array
    y: jax.Array
    sy: jax.Array
    newest: jax.Array
    pairs: jax.Array
    yy: jax.Array | None = None


QuasiNewtonState = (BFGSState, LBFGSState)
"""The state types of :func:`bfgs` and :func:`lbfgs` (``isinstance`` checks)."""


def trial_judge(state: Any) -> Any:
    """The :class:`BFGSState` / :class:`LBFGSState` node of an optimizer state, or ``None``: an
    optimizer that judges its own trials, whose non-finite trial is a rejected step (the accepted
    point is in the node), not a diverged run."""
    nodes = jax.tree.leaves(state, is_leaf=lambda n: isinstance(n, QuasiNewtonState))
    found = [n for n in nodes if isinstance(n, QuasiNewtonState)]
    return found[0] if len(found) == 1 else None


def accepted_point(node: Any, like: PyTree) -> tuple[PyTree, jax.Array, PyTree]:
    """``(point, value, grad)`` of the judge's accepted point, unravelled like ``like``."""
    unravel = ravel_pytree(like)[1]
    return unravel(node.point), node.point_value, unravel(node.point_grad)


def _first_step(g: jax.Array) -> jax.Array:
    return jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.sum(jnp.abs(g)), jnp.finfo(g.dtype).tiny))


_SMALL = 64  # up to this dimension, L-BFGS shifts its memory and the line search's inner products are separate


def _dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """``aᵀb`` over the last axis, for the L-BFGS two-loop recursion.  Up to :data:`_UNROLLED`
    entries it is written out as multiply-adds, so that the recursion's chain of 2m dot products
    is elementwise arithmetic on the run axis under ``vmap`` instead of 2m small reductions:
    1000 vmapped 2-D runs on Himmelblau took 41 ms -> 27 ms (one core, medians of 9 calls).  The
    line search's three inner products use it too (they have one consumer, the acceptance test's
    reduction, which then holds them).  Not for a product with several consumers: XLA recomputes
    a fused expression in every consumer (BFGS's update written out ran 2x slower, and its
    descent test ``dᵀg`` 1.2x)."""
    n = a.shape[-1]
    if n > _UNROLLED:
        return jnp.dot(a, b) if a.ndim == b.ndim == 1 else jnp.sum(a * b, axis=-1)
    total = a[..., 0] * b[..., 0]
    for k in range(1, n):
        total = total + a[..., k] * b[..., k]
    return total


_UNROLLED = 8  # up to this dimension, dot products written out as multiply-adds


def _matvec(h: jax.Array, v: jax.Array) -> jax.Array:
    """``H v`` as a ``dot``, a kernel of its own also for tiny ``n``: written as a multiply-and-sum,
    XLA fused the whole BFGS update into every consumer of the product and of the new matrix
    (1000 vmapped runs, one core: Rosenbrock 10-D 97 -> 77 ms, Himmelblau 2-D 1.2x -> 1.1x
    optimistix's BFGS)."""
    return h @ v


def _bfgs_update(h: jax.Array, s: jax.Array, y: jax.Array, first: jax.Array) -> jax.Array:
    """``(I - ρ s yᵀ) H (I - ρ y sᵀ) + ρ s sᵀ``, with ``H = (sᵀy / yᵀy) I`` at the first pair."""
    sy, yy = jnp.dot(s, y), jnp.dot(y, y)
    h = jnp.where(first, (sy / yy) * jnp.eye(s.size, dtype=s.dtype), h)
    rho = 1.0 / sy
    hy = _matvec(h, y)
    # expanded form: H - ρ (s (Hy)ᵀ + (Hy) sᵀ) + (ρ² yᵀHy + ρ) s sᵀ
    return h - rho * (jnp.outer(s, hy) + jnp.outer(hy, s)) + (rho * rho * jnp.dot(y, hy) + rho) * jnp.outer(s, s)


def _two_loop(g: jax.Array, s: jax.Array, y: jax.Array, sy: jax.Array, pairs: jax.Array) -> jax.Array:
    """``H g`` by the L-BFGS two-loop recursion over the stored pairs (newest last; ``sy`` their
    curvatures ``sᵢᵀyᵢ``; only the ``pairs`` newest are used), ``H₀ = γ I``, ``γ = sᵀy / yᵀy`` of
    the newest pair (``I`` without pairs)::

        q = g;  for i newest..oldest: αᵢ = ρᵢ sᵢᵀq,  q ← q - αᵢ yᵢ      (ρᵢ = 1 / sᵢᵀyᵢ)
        r = γ q;  for i oldest..newest: βᵢ = ρᵢ yᵢᵀr,  r ← r + sᵢ (αᵢ - βᵢ)

    Unrolled over the (static) memory: a few fused kernels instead of two sequential loops per
    step (for many small runs under ``vmap``)."""
    m = s.shape[0]
    valid = jnp.arange(m) >= m - pairs
    rho = jnp.where(valid, 1.0 / jnp.where(valid, sy, 1.0), 0.0)
    q, alphas = g, [None] * m
    for i in reversed(range(m)):
        alphas[i] = rho[i] * _dot(s[i], q)
        q = q - alphas[i] * y[i]
    gamma = jnp.where(pairs > 0, sy[-1] / jnp.where(pairs > 0, _dot(y[-1], y[-1]), 1.0), 1.0)
    r = gamma * q
    for i in range(m):
        b = rho[i] * _dot(y[i], r)
        r = r + s[i] * (alphas[i] - b)
    return r


def _compact_product(g: jax.Array, s: jax.Array, y: jax.Array, sy: jax.Array, yy: jax.Array,
                     newest: jax.Array, pairs: jax.Array) -> jax.Array:
    """The two-loop recursion's ``H g`` (same ``H``) from inner products kept in the state, for a
    ring memory (newest row ``newest``; ``sy[i, j] = sᵢᵀyⱼ``, ``yy[i, j] = yᵢᵀyⱼ``; only the
    ``pairs`` newest are used).  Indexing the pairs by age k = 0 (newest) ... and writing the
    recursion's coefficients as linear systems (the compact representation of Byrd, Nocedal and
    Schnabel, 1994)::

        (D + L) α = Sᵀg                      L_kj = s_kᵀy_j (j newer than k), D = diag(s_kᵀy_k)
        (D + U) β = γ (Yᵀg - YᵀY α) + U α     U_kj = y_kᵀs_j (j older than k)
        H g = γ (g - Y α) + S (α - β)

    Two products with the memory for ``Sᵀg``, ``Yᵀg``, two for the result and two m x m triangular
    solves: a handful of kernels, where the recursion's 2m dependent inner products over n
    entries are ~60 (Rosenbrock n = 1000: 121 -> 94 ms on one core, together with one stacked
    reduction for the line search's inner products)."""
    m = s.shape[0]
    ages = jnp.arange(m)
    ring = (newest - ages) % m  # age -> row, and row -> age: the map is its own inverse
    valid = ages < pairs
    both = valid[:, None] & valid[None, :]
    sy_age = jnp.where(both, sy[ring][:, ring], 0.0)  # [k, j] = s_kᵀy_j
    yy_age = jnp.where(both, yy[ring][:, ring], 0.0)
    diag = jnp.diag(jnp.where(valid, jnp.diagonal(sy_age), 1.0))  # empty slots: α = β = 0
    lower, upper = jnp.tril(sy_age, -1), jnp.triu(sy_age.T, 1)
    alpha = jax.scipy.linalg.solve_triangular(diag + lower, jnp.where(valid, (s @ g)[ring], 0.0), lower=True)
    gamma = jnp.where(pairs > 0, sy_age[0, 0] / jnp.where(pairs > 0, yy_age[0, 0], 1.0), 1.0)
    y_q = jnp.where(valid, (y @ g)[ring], 0.0) - yy_age @ alpha
    beta = jax.scipy.linalg.solve_triangular(diag + upper, gamma * y_q + upper @ alpha, lower=False)
    return gamma * (g - alpha[ring] @ y) + (alpha - beta)[ring] @ s


def _quasi_newton(name: str, memory_size: int | None, c1: Any, backtrack: Any, max_backtracks: int
                  ) -> GradientTransformationExtraArgs:
    check_positive(name, "c1", c1)
    check_positive(name, "backtrack", backtrack)
    check_count(name, "max_backtracks", max_backtracks, 1)
    if memory_size is not None:
        check_count(name, "memory_size", memory_size, 1)
    dense = memory_size is None

    def init(params: PyTree) -> BFGSState | LBFGSState:
        check_float_params(name, params)
        flat = ravel_pytree(params)[0]
        n, dtype = flat.size, flat.dtype
        zero = jnp.zeros((), dtype)
        common = dict(point=flat, point_value=zero, point_grad=jnp.zeros_like(flat),
                      rejected=jnp.full((), -1, jnp.int32), pairs=jnp.zeros((), jnp.int32))
        if dense:
            return BFGSState(h=jnp.eye(n, dtype=dtype), **common)
        memory = dict(s=jnp.zeros((memory_size, n), dtype), y=jnp.zeros((memory_size, n), dtype),
                      newest=jnp.asarray(memory_size - 1, jnp.int32))
        if n > _SMALL:  # a ring, with the inner products of every two pairs
            gram = jnp.zeros((memory_size, memory_size), dtype)
            return LBFGSState(sy=gram, yy=gram, **memory, **common)
        return LBFGSState(sy=jnp.zeros((memory_size,), dtype), yy=None, **memory, **common)

    def descent(g: jax.Array, h: Any, s: Any, y: Any, sy: Any, yy: Any, newest: Any, pairs: jax.Array) -> jax.Array:
        if dense:
            d = -_matvec(h, g)
        elif yy is None:
            d = -_two_loop(g, s, y, sy, pairs)
        else:
            d = -_compact_product(g, s, y, sy, yy, newest, pairs)
        return jnp.where(jnp.dot(d, g) < 0, d, -g)

    def update(updates: PyTree, state: Any, params: PyTree = None, *, value: Any = None,
               grad: PyTree = None, **extra_args: Any) -> tuple[PyTree, Any]:
        del extra_args
        if params is None or value is None:
            raise ValueError(f"{name}.update needs params and the value at them: "
                             f"update(grads, state, params, value=f(params)) (gradkit.optim.minimize and "
                             "gradkit.runs pass it)")
        x, unravel = ravel_pytree(params)
        g = ravel_pytree(grad if grad is not None else updates)[0].astype(x.dtype)
        f = jnp.asarray(value, x.dtype)
        start = state.rejected < 0  # the first update
        s_new, y_new = x - state.point, g - state.point_grad  # the trial's step and gradient change
        if x.size > _SMALL:  # the six reductions over the parameters as one (3 kernels, not ~17)
            pg = state.point_grad
            sums = jnp.sum(jnp.stack([pg * s_new, g * g, pg * pg, s_new * y_new, y_new * y_new,
                                      jnp.where(jnp.isfinite(g), 0.0, 1.0).astype(x.dtype)]), axis=1)
            slope, gg, pgpg, sy_new, yy_new, g_finite = sums[0], sums[1], sums[2], sums[3], sums[4], sums[5] == 0
        else:
            slope, gg, pgpg = _dot(state.point_grad, s_new), _dot(g, g), _dot(state.point_grad, state.point_grad)
            sy_new, yy_new, g_finite = jnp.dot(s_new, y_new), jnp.dot(y_new, y_new), jnp.isfinite(g)
        decrease = state.point_value + c1 * slope  # slope: the step's directional derivative gᵀs
        # Armijo, or (where f can no longer resolve the decrease: within 10 ulp of f) a smaller gradient
        rounding = 10 * jnp.finfo(x.dtype).eps * jnp.abs(state.point_value)
        flat_enough = (f <= state.point_value + rounding) & (gg < pgpg)
        # accepted: start, or (Armijo or flat enough) with f and every g_k finite.  For small
        # problems the scalar test is folded into the reduction over g's entries: XLA then computes
        # it once (a reduction is a kernel of its own) instead of again inside every consumer
        # fusion (every state entry)
        ok = jnp.all(start | (((f <= decrease) | flat_enough) & jnp.isfinite(f) & g_finite))
        # on acceptance: the new pair and memory
        usable = ok & ~start & (sy_new > jnp.finfo(x.dtype).eps * yy_new)
        if dense:
            h = jnp.where(usable, _bfgs_update(state.h, s_new, y_new, state.pairs == 0), state.h)
            s_mem = y_mem = sy_mem = newest = yy_mem = None
        elif x.size <= _SMALL:  # shift the rows up, the new pair last
            h, newest, yy_mem = None, state.newest, None
            roll = lambda mem, row: jnp.concatenate([mem[1:], row[None]])
            s_mem = jnp.where(usable, roll(state.s, s_new), state.s)
            y_mem = jnp.where(usable, roll(state.y, y_new), state.y)
            sy_mem = jnp.where(usable, roll(state.sy, sy_new), state.sy)
        else:  # a ring: the new pair overwrites the oldest row in place (not usable: the newest row rewritten as it is)
            h = None
            newest = jnp.where(usable, (state.newest + 1) % memory_size, state.newest)
            put = lambda mem, row: jax.lax.dynamic_update_index_in_dim(
                mem, jnp.where(usable, row, jax.lax.dynamic_index_in_dim(mem, newest, keepdims=False)), newest, 0)
            s_mem, y_mem = put(state.s, s_new), put(state.y, y_new)

            def put_cross(gram: jax.Array, row: jax.Array, column: jax.Array) -> jax.Array:
                new = jax.lax.dynamic_update_index_in_dim(gram, row, newest, 0)
                return jnp.where(usable, jax.lax.dynamic_update_index_in_dim(new, column[:, None], newest, 1), gram)

            y_y_new = y_mem @ y_new
            sy_mem = put_cross(state.sy, y_mem @ s_new, s_mem @ y_new)  # row s_newᵀyⱼ, column sᵢᵀy_new
            yy_mem = put_cross(state.yy, y_y_new, y_y_new)
        pairs = jnp.where(usable, jnp.minimum(state.pairs + 1, 1 if dense else memory_size), state.pairs)
        x_acc = jnp.where(ok, x, state.point)
        f_acc = jnp.where(ok, f, state.point_value)
        g_acc = jnp.where(ok, g, state.point_grad)
        rejected = jnp.where(ok, 0, state.rejected + 1)
        restart = rejected >= max_backtracks  # give up on this direction: steepest descent, fresh memory
        if dense:
            h = jnp.where(restart, jnp.eye(x.size, dtype=x.dtype), h)
        pairs = jnp.where(restart, 0, pairs)
        fresh = ok | restart
        direction = descent(g_acc, h, s_mem, y_mem, sy_mem, yy_mem, newest, pairs)
        alpha = jnp.where(start | restart, _first_step(g_acc), 1.0).astype(x.dtype)
        rejected = jnp.where(restart, 0, rejected)
        # a fresh direction from the accepted point, or the rejected trial's step shortened
        trial = jnp.where(fresh, x_acc + alpha * direction, state.point + backtrack * s_new)
        common = dict(point=x_acc, point_value=f_acc, point_grad=g_acc, rejected=rejected, pairs=pairs)
        new = BFGSState(h=h, **common) if dense else LBFGSState(s=s_mem, y=y_mem, sy=sy_mem, newest=newest,
                                                                   yy=yy_mem, **common)
        step = unravel(trial - x)
        return jax.tree.map(lambda u, p: u.astype(jnp.result_type(p)), step, params), new

    return GradientTransformationExtraArgs(init, update)


def bfgs(*, c1: float = 1e-4, backtrack: float = 0.5, max_backtracks: int = 30) -> GradientTransformationExtraArgs:
    """BFGS with a dense inverse-Hessian approximation and a line search folded into the steps
    (see the module doc): one evaluation per step, lockstep under ``vmap``.  For small problems
    (the ``n x n`` matrix); :func:`lbfgs` for large ones."""
    return _quasi_newton("bfgs", None, c1, backtrack, max_backtracks)


def lbfgs(memory_size: int = 10, *, c1: float = 1e-4, backtrack: float = 0.5, max_backtracks: int = 30
          ) -> GradientTransformationExtraArgs:
    """L-BFGS (the last ``memory_size`` pairs; ``H g`` by the two-loop recursion, or above 64
    parameters by its compact representation) with a line search folded into the steps (see the
    module doc): one evaluation per step, lockstep under ``vmap``.  optax's
    ``optax.lbfgs`` (zoom line search, strong Wolfe) stays available as it is."""
    return _quasi_newton("lbfgs", memory_size, c1, backtrack, max_backtracks)

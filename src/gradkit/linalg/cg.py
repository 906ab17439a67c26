"""Matrix-free conjugate gradient over pytrees, and the Steihaug-Toint trust-region variant.

Both take the operator as a function ``matvec(v) -> A v`` on pytrees (an HVP, a GGN
product, a dense matrix wrapped in a lambda) and run in one ``lax.while_loop``, so
they compile, ``vmap`` and differentiate like any other JAX function.

Preconditioned CG for ``A x = b`` (``A`` symmetric positive definite; ``M⁻¹`` = ``precond``)::

    r₀ = b - A x₀,  z₀ = M⁻¹ r₀,  p₀ = z₀
    αₖ = <rₖ, zₖ> / <pₖ, A pₖ>
    xₖ₊₁ = xₖ + αₖ pₖ,   rₖ₊₁ = rₖ - αₖ A pₖ,   zₖ₊₁ = M⁻¹ rₖ₊₁
    βₖ = <rₖ₊₁, zₖ₊₁> / <rₖ, zₖ>,   pₖ₊₁ = zₖ₊₁ + βₖ pₖ

until ``||rₖ|| <= max(tol ||b||, atol)``.  When ``<p, A p> <= 0`` the operator is not
positive definite along ``p``: CG stops there, keeps the last iterate and says so in
the returned :class:`gradkit.results.Result` instead of dividing by a non-positive
curvature (no NaN).

Both return a :class:`gradkit.results.Result`: ``solution`` (the ``x`` or step ``p``),
``code`` (``CONVERGED``, ``MAX_STEPS``, ``NONFINITE``, ``NEGATIVE_CURVATURE``), ``iterations``
(CG steps that moved the iterate) and ``stats``: ``matvecs`` (operator applications: one per
step, plus the one that found negative curvature, plus one for ``r₀`` when a start ``x0`` is
given), ``residual_norm`` (``||b - A x||`` as tracked by the recurrence),
``negative_curvature`` (a direction with ``<p, A p> <= 0`` was met), ``curvature`` (the last
``<p, A p>``), ``hit_boundary`` (Steihaug: the step ended on the trust-region boundary) and,
for Steihaug, ``model`` (the model value ``m(p)``).

Compile once: both run through a jitted core, so a Python loop of eager calls compiles once.
The operator (and ``precond``) enters that core as a *pytree argument* when it is a registered
pytree — its leaves (arrays: the point ``x`` of an HVP) dynamic, its treedef (the loss function)
static — and as a static argument (hashed by ``==``/``hash``, by identity when unhashable)
otherwise.  So ``gradkit.hvp_operator(f, x)``, a ``jax.tree_util.Partial``, a bound method of a
pytree operator, or the same function object each call reuse one executable; a fresh Python
``lambda`` per call has a new identity and compiles anew.

Inputs and dtypes: a right-hand side with leaves of mixed dtypes is solved leaf by leaf in
each leaf's own dtype (scalars in the promoted real dtype); float16 / bfloat16 leaves are
computed in float32 and returned in their own dtype.  Non-finite ``b``, ``x0`` or operator
products give ``Code.NONFINITE`` and the last finite iterate, never ``CONVERGED``.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit.derivatives import StaticKey, tree_mismatch
from gradkit.results import Code, Result, make_result, maybe_throw, select_code, tree_all_finite

PyTree = Any
Matvec = Callable[[PyTree], PyTree]


# ----------------------------------------------------------------------------- operators


@jax.tree_util.register_pytree_node_class
class StaticOperator:
    """A callable that is not a pytree, carried through ``jit`` in the treedef (static)."""

    def __init__(self, key: StaticKey) -> None:
        self.key = key

    def __call__(self, v: PyTree) -> PyTree:
        return self.key.fn(v)

    def tree_flatten(self) -> tuple[tuple, StaticKey]:
        return (), self.key

    @classmethod
    def tree_unflatten(cls, key: StaticKey, children: tuple) -> StaticOperator:
        return cls(key)


def _is_leaf_object(obj: Any) -> bool:
    leaves, treedef = jax.tree.flatten(obj)
    return treedef.num_leaves == 1 and treedef.num_nodes == 1 and len(leaves) == 1 and leaves[0] is obj


def as_operator(op: Any, solver: str, arg: str = "matvec") -> Any:
    """``op`` as a ``jit`` argument: a registered pytree as is (leaves dynamic, treedef static);
    a bound method of a pytree as a ``jax.tree_util.Partial`` of it (its object dynamic);
    any other callable wrapped static (by ``hash``/``==``, by identity when unhashable)."""
    if not callable(op):
        raise TypeError(f"{solver}: {arg} must be a callable v -> A v, got {type(op).__name__}")
    if not _is_leaf_object(op):
        return op
    owner = getattr(op, "__self__", None)
    if inspect.ismethod(op) and owner is not None and not _is_leaf_object(owner):
        return jax.tree_util.Partial(op.__func__, owner)
    return StaticOperator(StaticKey(op))


# ----------------------------------------------------------------------------- validation


def _is_traced(value: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def check_int(solver: str, arg: str, value: Any, minimum: int = 1) -> int:
    """``value`` as a Python int, or a ``ValueError`` naming ``arg`` if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{solver}: {arg} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_nonnegative(solver: str, arg: str, value: Any) -> None:
    """A ``ValueError`` naming ``arg`` if a concrete ``value`` has a NaN or a negative entry."""
    if value is None or _is_traced(value):
        return
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number) or np.any(np.isnan(array)) or np.any(array < 0):
        raise ValueError(f"{solver}: {arg} must be a number >= 0 (not NaN), got {value!r}")


def _check_rhs(name: str, b: PyTree, x0: PyTree | None, arg: str = "b") -> None:
    if not jax.tree.leaves(b):
        raise ValueError(f"{name}: the right-hand side {arg} is an empty pytree")
    if x0 is not None:
        problem = tree_mismatch(b, x0, "x0")
        if problem:
            raise ValueError(f"{name}: {problem}")


# ----------------------------------------------------------------------------- dtypes


def compute_dtype(dtype: Any) -> Any:
    """The dtype arithmetic runs in: float16 / bfloat16 / integers promote to float32."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return jnp.promote_types(dtype, jnp.complex64)
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits >= 32:
        return dtype
    return jnp.dtype(jnp.float32)


def _real_dtype(tree: PyTree) -> Any:
    return jnp.result_type(*[jnp.real(jnp.zeros((), leaf.dtype)).dtype for leaf in jax.tree.leaves(tree)])


def _cast_like(tree: PyTree, dtypes: PyTree) -> PyTree:
    return jax.tree.map(lambda leaf, dtype: jnp.asarray(leaf).astype(dtype), tree, dtypes)


def _add_scale(x: PyTree, scale: jax.Array, y: PyTree) -> PyTree:
    """``x + scale y`` leaf by leaf, each leaf keeping the dtype of ``x``."""
    return jax.tree.map(lambda a, b: (a + scale * b).astype(a.dtype), x, y)


def _vdot(a: PyTree, b: PyTree, dtype: Any) -> jax.Array:
    return jnp.real(optax.tree.vdot(a, b)).astype(dtype)


def _compute_operator(op: Matvec, like: PyTree, solver: str) -> tuple[Matvec, PyTree, PyTree]:
    """``op`` seen on vectors in compute dtypes: its input cast to the caller's leaf dtypes, its
    output checked against ``like``'s structure and cast to the compute dtypes.  Returns the
    wrapped operator, the caller's dtypes and the compute dtypes (pytrees of dtypes)."""
    dtypes = jax.tree.map(lambda leaf: jnp.asarray(leaf).dtype, like)
    compute = jax.tree.map(compute_dtype, dtypes)

    def apply(v: PyTree) -> PyTree:
        out = op(_cast_like(v, dtypes))
        problem = tree_mismatch(like, out, "operator output")
        if problem:
            raise ValueError(f"{solver}: {problem}")
        return _cast_like(out, compute)

    return apply, dtypes, compute


# ----------------------------------------------------------------------------- CG


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den`` where ``den != 0``, else 0 (no NaN on the branch a ``where`` discards)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), 0)


def cg(
    matvec: Matvec,
    b: PyTree,
    x0: PyTree | None = None,
    *,
    tol: float | jax.Array = 1e-5,
    atol: float | jax.Array = 0.0,
    maxiter: int | None = None,
    precond: Matvec | None = None,
    norm_ord: int = 2,
    throw: bool = False,
) -> Result:
    """Solve ``A x = b`` by (preconditioned) conjugate gradient on pytrees, matrix-free.

    Stops when ``||r|| <= max(tol ||b||, atol)`` (``norm_ord`` 2, or 1 as scipy's
    Newton-CG measures it), after ``maxiter`` steps (default ``10 n``), at the first
    direction of non-positive curvature ``<p, A p> <= 0`` (reported, never divided by), or
    at the first non-finite product (``Code.NONFINITE``, ``x`` the last finite iterate).
    ``precond(r)`` applies ``M⁻¹`` (symmetric positive definite) and defaults to the identity.
    Returns a :class:`gradkit.results.Result` (``res.x``, ``res.code``, ``res.converged``,
    ``res.residual_norm``, ...; see the module docstring); ``throw=True`` raises
    :class:`gradkit.results.SolverError` unless it converged.  Compiled once per operator
    treedef, tree structure, shapes and static options (see the module docstring).

    >>> import jax.numpy as jnp
    >>> A = jnp.array([[4.0, 1.0], [1.0, 3.0]])      # A⁻¹ (1, 2) = (1/11, 7/11)
    >>> res = cg(lambda v: A @ v, jnp.array([1.0, 2.0]))
    >>> res.message, int(res.iterations), [round(x, 5) for x in res.x.tolist()]
    ('converged: the tolerance was met', 2, [0.09091, 0.63636])
    """
    _check_rhs("cg", b, x0)
    if norm_ord not in (1, 2) or isinstance(norm_ord, bool):
        raise ValueError(f"cg: norm_ord must be 1 or 2, got {norm_ord!r}")
    maxiter = 10 * optax.tree.size(b) if maxiter is None else check_int("cg", "maxiter", maxiter, minimum=1)
    check_nonnegative("cg", "tol", tol)
    check_nonnegative("cg", "atol", atol)
    operator = as_operator(matvec, "cg")
    preconditioner = None if precond is None else as_operator(precond, "cg", "precond")
    result = _cg_core(operator, b, x0, tol, atol, preconditioner, maxiter=maxiter, norm_ord=norm_ord)
    return maybe_throw(result, throw, "cg")


def _cg_impl(matvec: Matvec, b: PyTree, x0: PyTree | None, tol: jax.Array, atol: jax.Array,
             precond: Matvec | None, *, maxiter: int, norm_ord: int) -> Result:
    op, dtypes, compute = _compute_operator(matvec, b, "cg")
    b = _cast_like(b, compute)
    dtype = _real_dtype(b)
    if precond is None:
        apply_precond = lambda r: r
    else:
        apply_precond = lambda r: _cast_like(precond(_cast_like(r, dtypes)), compute)
    norm = lambda tree: optax.tree.norm(tree, ord=norm_ord).astype(dtype)
    false = jnp.asarray(False)

    if x0 is None:
        x, r, start_matvecs = optax.tree.zeros_like(b), b, 0
        safe_start = x
    else:
        x = _cast_like(x0, compute)
        r = jax.tree.map(lambda bi, ai: (bi - ai).astype(bi.dtype), b, op(x))
        start_matvecs = 1
        safe_start = optax.tree.where(tree_all_finite(x), x, optax.tree.zeros_like(x))
    z = apply_precond(r)
    rz = _vdot(r, z, dtype)
    start_finite = tree_all_finite(b) & tree_all_finite(r) & tree_all_finite(z) & jnp.isfinite(rz)
    threshold = jnp.maximum(jnp.asarray(tol, dtype) * norm(b), jnp.asarray(atol, dtype))
    # carry: k, x, r, p, <r, z>, ||r||, negative, nonfinite, curvature
    state = (jnp.asarray(0), x, r, z, rz, norm(r), false, ~start_finite, jnp.zeros((), dtype))

    def keep_going(state: tuple) -> jax.Array:
        k, _, _, _, _, r_norm, negative, nonfinite, _ = state
        return (k < maxiter) & (r_norm > threshold) & ~negative & ~nonfinite

    def step(state: tuple) -> tuple:
        k, x, r, p, rz, r_norm, _, _, _ = state
        ap = op(p)
        curvature = _vdot(p, ap, dtype)
        products_finite = jnp.isfinite(curvature)  # p is finite, so <p, Ap> is finite only if Ap is
        negative = products_finite & ~(curvature > 0)
        alpha = jnp.where(negative, 0, _safe_div(rz, curvature))
        x_new = _add_scale(x, alpha, p)
        r_new = _add_scale(r, -alpha, ap)
        z_new = apply_precond(r_new)
        rz_new = _vdot(r_new, z_new, dtype)
        p_new = _add_scale(z_new, _safe_div(rz_new, rz), p)
        nonfinite = ~(products_finite & tree_all_finite((x_new, r_new, z_new, p_new)) & jnp.isfinite(rz_new))
        stop = negative | nonfinite
        keep = lambda old, new: optax.tree.where(stop, old, new)
        x, r, p = keep(x, x_new), keep(r, r_new), keep(p, p_new)
        rz, r_norm = jnp.where(stop, rz, rz_new), jnp.where(stop, r_norm, norm(r_new))
        curvature = jnp.where(jnp.isfinite(curvature), curvature, jnp.nan)
        return (k + 1, x, r, p, rz, r_norm, negative, nonfinite, curvature)

    # the search direction p₀ = z₀ rides in the ``z`` slot of the carry
    k, x, r, _, _, r_norm, negative, nonfinite, curvature = jax.lax.while_loop(keep_going, step, state)
    x = optax.tree.where(start_finite, x, safe_start)
    stopped_early = ((negative | nonfinite) & (k > 0)).astype(k.dtype)  # that step did not move x
    code = select_code((nonfinite, Code.NONFINITE), (r_norm <= threshold, Code.CONVERGED),
                       (negative, Code.NEGATIVE_CURVATURE), default=Code.MAX_STEPS)
    return make_result(_cast_like(x, dtypes), code, k - stopped_early, matvecs=k + start_matvecs,
                       residual_norm=r_norm, negative_curvature=negative, curvature=curvature,
                       hit_boundary=false)


_cg_core = jax.jit(_cg_impl, static_argnames=("maxiter", "norm_ord"))


def _boundary_steps(z: PyTree, d: PyTree, radius: jax.Array, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """The two roots ``ta <= tb`` of ``||z + t d|| = radius`` (``ta <= 0 <= tb`` inside the
    region), in the cancellation-free form (Golub & Van Loan p. 97)."""
    a = _vdot(d, d, dtype)
    b = 2 * _vdot(z, d, dtype)
    c = _vdot(z, z, dtype) - radius**2
    disc = jnp.sqrt(jnp.maximum(b * b - 4 * a * c, 0))
    aux = b + jnp.where(b >= 0, disc, -disc)
    ta, tb = _safe_div(-aux, 2 * a), _safe_div(-2 * c, aux)
    return jnp.minimum(ta, tb), jnp.maximum(ta, tb)


def steihaug_cg(
    matvec: Matvec,
    grad: PyTree,
    radius: float | jax.Array,
    *,
    tol: float | jax.Array = 0.5,
    atol: float | jax.Array = 0.0,
    maxiter: int | None = None,
    throw: bool = False,
) -> Result:
    """Steihaug-Toint CG for the trust-region subproblem (Nocedal & Wright, Algorithm 7.2)::

        min_p  m(p) = <g, p> + ½ <p, B p>   subject to  ||p|| <= radius

    CG on ``B p = -g`` from ``p = 0`` that stops (a) when ``||r|| < max(tol ||g||, atol)``,
    (b) when the next iterate would leave the region — it returns the boundary point along
    the current direction — or (c) at a direction ``d`` with ``<d, B d> <= 0``, returning
    whichever boundary point along ``d`` has the lower model value.  ``B`` may be
    indefinite.  The model value is tracked by the recurrence
    ``m(z + t d) = m(z) + t <r, d> + ½ t² <d, B d>`` (``r = g + B z``), so it costs no
    extra products.  Returns a :class:`gradkit.results.Result` with ``solution`` the step ``p``,
    ``stats["model"]`` its model value ``m(p)`` and ``stats["hit_boundary"]`` for (b) or (c);
    the code is ``CONVERGED`` for (a), (b) and (c) — each solves the subproblem — with
    ``negative_curvature`` saying (c), ``MAX_STEPS`` otherwise, and ``NONFINITE`` (the last
    finite step kept) when ``grad`` or a product is not finite.  ``radius`` must be finite
    and > 0.  Compiled once per operator treedef, tree structure and shapes.
    """
    _check_rhs("steihaug_cg", grad, None, "grad")
    maxiter = 10 * optax.tree.size(grad) if maxiter is None else check_int("steihaug_cg", "maxiter", maxiter, 1)
    check_nonnegative("steihaug_cg", "tol", tol)
    check_nonnegative("steihaug_cg", "atol", atol)
    if not _is_traced(radius):
        r = np.asarray(radius)
        if not np.issubdtype(r.dtype, np.number) or not np.all(np.isfinite(r)) or np.any(r <= 0):
            raise ValueError(f"steihaug_cg: radius must be finite and > 0, got {radius!r}")
    result = _steihaug_core(as_operator(matvec, "steihaug_cg"), grad, radius, tol, atol, maxiter=maxiter)
    return maybe_throw(result, throw, "steihaug_cg")


def _steihaug_impl(matvec: Matvec, grad: PyTree, radius: jax.Array, tol: jax.Array, atol: jax.Array, *,
                   maxiter: int) -> Result:
    op, dtypes, compute = _compute_operator(matvec, grad, "steihaug_cg")
    grad = _cast_like(grad, compute)
    dtype = _real_dtype(grad)
    radius = jnp.asarray(radius, dtype)
    g_norm = optax.tree.norm(grad).astype(dtype)
    grad_finite = tree_all_finite(grad)
    grad = optax.tree.where(grad_finite, grad, optax.tree.zeros_like(grad))
    threshold = jnp.maximum(jnp.asarray(tol, dtype) * g_norm, jnp.asarray(atol, dtype))
    zero = jnp.zeros((), dtype)
    false = jnp.asarray(False)
    z0 = optax.tree.zeros_like(grad)
    # carry: k, z, r, d, <r, r>, model value, done, boundary, negative, curvature, nonfinite
    state = (jnp.asarray(0), z0, grad, jax.tree.map(jnp.negative, grad), g_norm**2, zero,
             ~(g_norm >= threshold) | (g_norm == 0) | ~grad_finite, false, false, zero, ~grad_finite)

    def keep_going(state: tuple) -> jax.Array:
        return (state[0] < maxiter) & ~state[6]

    def step(state: tuple) -> tuple:
        k, z, r, d, rr, model, _, _, _, _, _ = state
        bd = op(d)
        dbd = _vdot(d, bd, dtype)
        rd = _vdot(r, d, dtype)
        negative = ~(dbd > 0)
        ta, tb = _boundary_steps(z, d, radius, dtype)
        model_at = lambda t: model + t * rd + 0.5 * t * t * dbd
        # (c) non-positive curvature: the boundary point with the lower model value
        t_neg = jnp.where(model_at(ta) < model_at(tb), ta, tb)
        alpha = _safe_div(rr, dbd)
        z_next = _add_scale(z, alpha, d)
        # (b) the CG step leaves the region: stop where it crosses the boundary
        outside = ~negative & (optax.tree.norm(z_next).astype(dtype) >= radius)
        t = jnp.where(negative, t_neg, jnp.where(outside, tb, alpha))
        z_new = _add_scale(z, t, d)
        model_new = model_at(t)
        r_new = _add_scale(r, alpha, bd)
        rr_new = _vdot(r_new, r_new, dtype)
        d_new = _add_scale(jax.tree.map(jnp.negative, r_new), _safe_div(rr_new, rr), d)
        # d is finite, so <d, Bd> is finite only if Bd is
        nonfinite = ~(tree_all_finite((z_new, r_new, d_new)) & jnp.isfinite(dbd) & jnp.isfinite(model_new)
                      & jnp.isfinite(rr_new))
        boundary = (negative | outside) & ~nonfinite
        converged = ~boundary & (jnp.sqrt(rr_new) < threshold)
        keep = lambda old, new: optax.tree.where(nonfinite, old, new)
        z_new, r_new, d_new = keep(z, z_new), keep(r, r_new), keep(d, d_new)
        rr_new, model_new = jnp.where(nonfinite, rr, rr_new), jnp.where(nonfinite, model, model_new)
        done = boundary | converged | nonfinite
        return (k + 1, z_new, r_new, d_new, rr_new, model_new, done, boundary, negative & ~nonfinite,
                jnp.where(jnp.isfinite(dbd), dbd, jnp.nan), nonfinite)

    k, z, r, _, rr, model, _, boundary, negative, curvature, nonfinite = jax.lax.while_loop(keep_going, step, state)
    residual = jnp.sqrt(rr)
    solved = boundary | (residual < threshold) | (g_norm == 0)
    code = select_code((nonfinite, Code.NONFINITE), (solved, Code.CONVERGED), default=Code.MAX_STEPS)
    return make_result(_cast_like(z, dtypes), code, k, matvecs=k, residual_norm=residual,
                       negative_curvature=negative, curvature=curvature, hit_boundary=boundary, model=model)


_steihaug_core = jax.jit(_steihaug_impl, static_argnames=("maxiter",))

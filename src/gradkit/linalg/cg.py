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
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from gradkit.derivatives import tree_mismatch
from gradkit.results import Code, Result, make_result, maybe_throw, select_code, tree_all_finite

PyTree = Any
Matvec = Callable[[PyTree], PyTree]


def _real_dtype(tree: PyTree) -> Any:
    return jnp.result_type(*[jnp.real(leaf).dtype for leaf in jax.tree.leaves(tree)])


def _check_rhs(name: str, b: PyTree, x0: PyTree | None) -> None:
    if not jax.tree.leaves(b):
        raise ValueError(f"{name}: the right-hand side is an empty pytree")
    if x0 is not None:
        problem = tree_mismatch(b, x0, "x0")
        if problem:
            raise ValueError(f"{name}: {problem}")


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
    Newton-CG measures it), after ``maxiter`` steps (default ``10 n``), or at the first
    direction of non-positive curvature ``<p, A p> <= 0`` (reported, never divided by).
    ``precond(r)`` applies ``M⁻¹`` (symmetric positive definite) and defaults to the identity.
    Returns a :class:`gradkit.results.Result` (``res.x``, ``res.code``, ``res.converged``,
    ``res.residual_norm``, ...; see the module docstring); ``throw=True`` raises
    :class:`gradkit.results.SolverError` unless it converged.
    """
    _check_rhs("cg", b, x0)
    if norm_ord not in (1, 2):
        raise ValueError(f"cg: norm_ord must be 1 or 2, got {norm_ord!r}")
    maxiter = 10 * optax.tree.size(b) if maxiter is None else int(maxiter)
    if maxiter < 0:
        raise ValueError(f"cg: maxiter must be >= 0, got {maxiter}")
    dtype = _real_dtype(b)
    apply_precond = precond if precond is not None else (lambda r: r)
    norm = lambda tree: optax.tree.norm(tree, ord=norm_ord).astype(dtype)

    if x0 is None:
        x, r, start_matvecs = optax.tree.zeros_like(b), b, 0
    else:
        x = x0
        r = optax.tree.sub(b, matvec(x0))
        start_matvecs = 1
    z = apply_precond(r)
    threshold = jnp.maximum(jnp.asarray(tol, dtype) * norm(b), jnp.asarray(atol, dtype))
    zero = jnp.zeros((), dtype)
    false = jnp.asarray(False)
    state = (jnp.asarray(0), x, r, z, jnp.real(optax.tree.vdot(r, z)).astype(dtype), norm(r), false, zero)

    def keep_going(state: tuple) -> jax.Array:
        k, _, _, _, _, r_norm, negative, _ = state
        return (k < maxiter) & (r_norm > threshold) & ~negative

    def step(state: tuple) -> tuple:
        k, x, r, p, rz, _, _, _ = state
        ap = matvec(p)
        curvature = jnp.real(optax.tree.vdot(p, ap)).astype(dtype)
        negative = ~(curvature > 0)  # also catches NaN
        alpha = jnp.where(negative, 0, _safe_div(rz, curvature))
        x_new = optax.tree.add_scale(x, alpha, p)
        r_new = optax.tree.add_scale(r, -alpha, ap)
        z_new = apply_precond(r_new)
        rz_new = jnp.real(optax.tree.vdot(r_new, z_new)).astype(dtype)
        p_new = optax.tree.add_scale(z_new, _safe_div(rz_new, rz), p)
        keep = lambda old, new: optax.tree.where(negative, old, new)
        x, r, p = keep(x, x_new), keep(r, r_new), keep(p, p_new)
        rz = jnp.where(negative, rz, rz_new)
        return (k + 1, x, r, p, rz, norm(r), negative, curvature)

    # the search direction p₀ = z₀ rides in the ``z`` slot of the carry
    k, x, r, _, _, r_norm, negative, curvature = jax.lax.while_loop(keep_going, step, state)
    iterations = k - negative.astype(k.dtype)
    finite = jnp.isfinite(r_norm) & tree_all_finite(x)
    code = select_code((~finite, Code.NONFINITE), (r_norm <= threshold, Code.CONVERGED),
                       (negative, Code.NEGATIVE_CURVATURE), default=Code.MAX_STEPS)
    result = make_result(x, code, iterations, matvecs=k + start_matvecs, residual_norm=r_norm,
                         negative_curvature=negative, curvature=curvature, hit_boundary=false)
    return maybe_throw(result, throw, "cg")


def _boundary_steps(z: PyTree, d: PyTree, radius: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The two roots ``ta <= tb`` of ``||z + t d|| = radius`` (``ta <= 0 <= tb`` inside the
    region), in the cancellation-free form (Golub & Van Loan p. 97)."""
    a = optax.tree.vdot(d, d)
    b = 2 * optax.tree.vdot(z, d)
    c = optax.tree.vdot(z, z) - radius**2
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
    ``negative_curvature`` saying (c), ``MAX_STEPS`` or ``NONFINITE`` otherwise.
    """
    _check_rhs("steihaug_cg", grad, None)
    maxiter = 10 * optax.tree.size(grad) if maxiter is None else int(maxiter)
    dtype = _real_dtype(grad)
    radius = jnp.asarray(radius, dtype)
    g_norm = optax.tree.norm(grad).astype(dtype)
    threshold = jnp.maximum(jnp.asarray(tol, dtype) * g_norm, jnp.asarray(atol, dtype))
    zero = jnp.zeros((), dtype)
    false = jnp.asarray(False)
    z0 = optax.tree.zeros_like(grad)
    # carry: k, z, r, d, <r, r>, model value, done, boundary, negative, curvature
    state = (jnp.asarray(0), z0, grad, optax.tree.scale(-1.0, grad), g_norm**2, zero,
             ~(g_norm >= threshold) | (g_norm == 0), false, false, zero)

    def keep_going(state: tuple) -> jax.Array:
        return (state[0] < maxiter) & ~state[6]

    def step(state: tuple) -> tuple:
        k, z, r, d, rr, model, _, _, _, _ = state
        bd = matvec(d)
        dbd = optax.tree.vdot(d, bd).astype(dtype)
        rd = optax.tree.vdot(r, d).astype(dtype)
        negative = ~(dbd > 0)
        ta, tb = _boundary_steps(z, d, radius)
        model_at = lambda t: model + t * rd + 0.5 * t * t * dbd
        # (c) non-positive curvature: the boundary point with the lower model value
        t_neg = jnp.where(model_at(ta) < model_at(tb), ta, tb)
        alpha = _safe_div(rr, dbd)
        z_next = optax.tree.add_scale(z, alpha, d)
        # (b) the CG step leaves the region: stop where it crosses the boundary
        outside = ~negative & (optax.tree.norm(z_next).astype(dtype) >= radius)
        t = jnp.where(negative, t_neg, jnp.where(outside, tb, alpha))
        z_new = optax.tree.add_scale(z, t, d)
        model_new = model_at(t)
        r_new = optax.tree.add_scale(r, alpha, bd)
        rr_new = optax.tree.vdot(r_new, r_new).astype(dtype)
        d_new = optax.tree.add_scale(optax.tree.scale(-1.0, r_new), _safe_div(rr_new, rr), d)
        boundary = negative | outside
        converged = ~boundary & (jnp.sqrt(rr_new) < threshold)
        return (k + 1, z_new, r_new, d_new, rr_new, model_new, boundary | converged, boundary, negative, dbd)

    k, z, r, _, rr, model, _, boundary, negative, curvature = jax.lax.while_loop(keep_going, step, state)
    residual = jnp.sqrt(rr)
    solved = boundary | (residual < threshold) | (g_norm == 0)
    finite = jnp.isfinite(model) & tree_all_finite(z)
    code = select_code((~finite, Code.NONFINITE), (solved, Code.CONVERGED), default=Code.MAX_STEPS)
    result = make_result(z, code, k, matvecs=k, residual_norm=residual, negative_curvature=negative,
                         curvature=curvature, hit_boundary=boundary, model=model)
    return maybe_throw(result, throw, "steihaug_cg")

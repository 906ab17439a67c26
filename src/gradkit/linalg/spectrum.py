"""The Hessian's spectrum from matrix-vector products alone: power (subspace) iteration,
Lanczos, Hutchinson and Hutch++ traces, stochastic Lanczos quadrature (SLQ) density.

Every function takes ``matvec(v) -> A v`` on pytrees shaped like ``like`` (typically
``gradkit.hvp_operator(loss, params)``, or a curvature operator of ``gradkit.curvature``)
and never forms ``A``.  Methods that keep a Krylov basis (Lanczos, SLQ, Hutch++,
subspace iteration with ``k > 1``) hold it as a dense ``(m, n)`` array over
``ravel_pytree(like)`` — ``m`` vectors of ``n`` parameters, so ``m`` is the memory knob
(100 vectors of a 10M-parameter model in float32 take 4 GB).

Every public function runs through a jitted core (compiled once per operator treedef, tree
structure, shapes and integer/str options; see :mod:`gradkit.linalg.cg` for how an operator
is passed): pass ``gradkit.hvp_operator(loss, params)``, a ``jax.tree_util.Partial`` or the
same function object each call — a fresh ``lambda`` per call cannot be cached.  Arithmetic
runs in float32 at least (float16 / bfloat16 operators and vectors are promoted; results come
back in the caller's dtype); ``like`` may mix leaf dtypes.  ``power_iteration``, ``lanczos``
and ``lanczos_eigenvalues`` return a :class:`gradkit.results.Result` whose solution
(``Eigenpairs`` / ``LanczosResult``) fields read through (``res.eigenvalues``); trace
estimators carry a ``finite`` flag.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gradkit.derivatives import tree_mismatch
from gradkit.linalg.cg import as_operator, check_int, check_nonnegative, compute_dtype
from gradkit.results import Code, Result, make_result, maybe_throw, select_code

PyTree = Any
Matvec = Callable[[PyTree], PyTree]
DISTRIBUTIONS = ("rademacher", "normal")
WHICH = ("largest", "smallest", "magnitude")


def _flat_operator(matvec: Matvec, like: PyTree, solver: str) -> tuple[Callable[[jax.Array], jax.Array], Callable,
                                                                         Any, Any]:
    """``matvec`` as a map on flat compute-dtype vectors of ``ravel_pytree(like)``: returns it,
    ``unravel`` (flat -> the caller's leaf dtypes), the compute dtype and the caller's real dtype."""
    flat, unravel = ravel_pytree(like)
    dtype = compute_dtype(flat.dtype)
    result_dtype = jnp.result_type(*[jnp.real(jnp.zeros((), leaf.dtype)).dtype for leaf in jax.tree.leaves(like)])

    def flat_matvec(v: jax.Array) -> jax.Array:
        out = matvec(unravel(v.astype(flat.dtype)))
        problem = tree_mismatch(like, out, "operator output")
        if problem:
            raise ValueError(f"{solver}: {problem}")
        return ravel_pytree(out)[0].astype(dtype)

    return flat_matvec, lambda v: unravel(v.astype(flat.dtype)), dtype, result_dtype


def _size(solver: str, like: PyTree) -> int:
    leaves = jax.tree.leaves(like)
    n = sum(int(np.size(leaf)) for leaf in leaves)
    if n == 0:
        raise ValueError(f"{solver}: like must be a non-empty pytree of arrays (the operator's domain), got {like!r}")
    return n


def _probes(key: jax.Array, count: int, n: int, dtype: Any, distribution: str) -> jax.Array:
    if distribution == "rademacher":
        return jax.random.rademacher(key, (count, n), dtype=dtype)
    return jax.random.normal(key, (count, n), dtype=dtype)


def _check_choice(solver: str, arg: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{solver}: {arg} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _default_tol(dtype: Any) -> float:
    """``max(1e-6, 10 √eps)``: 1e-6 in float64, 3.5e-3 in float32 (reachable by a Ritz residual)."""
    return max(1e-6, 10 * float(np.sqrt(np.finfo(dtype).eps)))


def _ritz_order(theta: jax.Array, which: str) -> jax.Array:
    """Indices of ``theta`` by ``which``; ties in magnitude put the positive value first."""
    if which == "largest":
        return jnp.argsort(-theta)
    if which == "smallest":
        return jnp.argsort(theta)
    return jnp.lexsort((-theta, -jnp.abs(theta)))


class Eigenpairs(NamedTuple):
    """Eigenvalue estimates and their eigenvectors (a pytree with a leading ``k`` axis)."""

    eigenvalues: jax.Array
    eigenvectors: PyTree
    iterations: jax.Array


def power_iteration(
    matvec: Matvec,
    like: PyTree,
    key: jax.Array,
    k: int = 1,
    *,
    num_iters: int = 100,
    tol: float | None = None,
    oversample: int = 2,
    throw: bool = False,
) -> Result:
    """The ``k`` eigenvalues of largest magnitude by block power (subspace) iteration with
    Rayleigh-Ritz on an oversampled block of ``p = min(n, k + oversample)`` vectors::

        V ← qr(A V).Q,   Vᵀ A V = Y Θ Yᵀ,   Ritz pairs (θᵢ, V yᵢ)

    until the ``k`` wanted Ritz residuals ``||A uᵢ - θᵢ uᵢ|| <= tol · maxⱼ |θⱼ|`` (``Code.CONVERGED``)
    or ``num_iters`` block products (``Code.MAX_STEPS``).  The oversampling resolves eigenvalues
    of equal magnitude and opposite sign (``±λ``), on which plain power iteration oscillates;
    convergence rate ``|λ_{p+1} / λ_k|`` per block product.  Eigenvalues come sorted by
    decreasing magnitude (the positive one first on a ``±`` tie).  On a Hessian with a large
    negative eigenvalue that is the one it returns (use :func:`lanczos_eigenvalues` for the
    algebraic ends).  ``tol`` defaults to ``max(1e-6, 10 √eps)`` of the compute dtype.

    Returns a :class:`gradkit.results.Result`: solution :class:`Eigenpairs` (``res.eigenvalues``,
    ``res.eigenvectors``), code ``CONVERGED`` / ``MAX_STEPS`` / ``NONFINITE`` (a product was not
    finite: the last finite block is used), stats ``matvecs`` and ``residuals`` (the ``k``
    Ritz residual norms).  ``throw=True`` raises unless converged.
    """
    k = check_int("power_iteration", "k", k)
    num_iters = check_int("power_iteration", "num_iters", num_iters)
    oversample = check_int("power_iteration", "oversample", oversample, minimum=0)
    check_nonnegative("power_iteration", "tol", tol)
    n = _size("power_iteration", like)
    if k > n:
        raise ValueError(f"power_iteration: k={k} exceeds the dimension {n} of like")
    result = _power_core(as_operator(matvec, "power_iteration"), like, key, tol, k=k, num_iters=num_iters,
                         block=min(n, k + oversample))
    return maybe_throw(result, throw, "power_iteration")


def _power_impl(matvec: Matvec, like: PyTree, key: jax.Array, tol: jax.Array | None, *, k: int, num_iters: int,
                block: int) -> Result:
    flat_matvec, unravel, dtype, result_dtype = _flat_operator(matvec, like, "power_iteration")
    n = ravel_pytree(like)[0].size
    tol = jnp.asarray(_default_tol(dtype) if tol is None else tol, dtype)
    block_matvec = lambda v: jax.vmap(flat_matvec, in_axes=1, out_axes=1)(v)  # columns are vectors

    def ritz(v: jax.Array, av: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        small = v.T @ av
        theta, y = jnp.linalg.eigh(0.5 * (small + small.T))
        order = _ritz_order(theta, "magnitude")[:k]
        theta, y = theta[order], y[:, order]
        residuals = jnp.linalg.norm(av @ y - (v @ y) * theta, axis=0)
        return theta, v @ y, residuals

    def done(theta: jax.Array, residuals: jax.Array) -> jax.Array:
        return jnp.max(residuals) <= tol * jnp.max(jnp.abs(theta))

    v0, _ = jnp.linalg.qr(jax.random.normal(key, (n, block), dtype))
    av0 = block_matvec(v0)
    finite0 = jnp.all(jnp.isfinite(av0))
    theta0, _, residuals0 = ritz(v0, av0)

    def keep_going(state: tuple) -> jax.Array:
        i, _, _, theta, residuals, nonfinite = state
        return (i < num_iters) & ~done(theta, residuals) & ~nonfinite

    def step(state: tuple) -> tuple:
        i, v, av, theta, residuals, _ = state
        v_new, _ = jnp.linalg.qr(av)
        av_new = block_matvec(v_new)
        theta_new, _, residuals_new = ritz(v_new, av_new)
        bad = ~(jnp.all(jnp.isfinite(av_new)) & jnp.all(jnp.isfinite(theta_new)))
        pick = lambda old, new: jnp.where(bad, old, new)
        return (i + 1, pick(v, v_new), pick(av, av_new), pick(theta, theta_new), pick(residuals, residuals_new), bad)

    state = (jnp.asarray(1), v0, av0, theta0, residuals0, ~finite0)
    i, v, av, _, _, nonfinite = jax.lax.while_loop(keep_going, step, state)
    theta, vectors, residuals = ritz(v, av)
    code = select_code((nonfinite, Code.NONFINITE), (done(theta, residuals), Code.CONVERGED), default=Code.MAX_STEPS)
    pairs = Eigenpairs(theta.astype(result_dtype), jax.vmap(unravel)(vectors.T), i)
    return make_result(pairs, code, i, matvecs=i * block, residuals=residuals.astype(result_dtype))


_power_core = jax.jit(_power_impl, static_argnames=("k", "num_iters", "block"))


class LanczosResult(NamedTuple):
    """``Vᵀ A V = T``: ``alphas`` the diagonal of ``T`` (m,), ``betas`` its off-diagonal
    (m-1,), ``basis`` the orthonormal Lanczos vectors as rows (m, n) over ``ravel_pytree``."""

    alphas: jax.Array
    betas: jax.Array
    basis: jax.Array

    def tridiagonal(self) -> jax.Array:
        """The ``m x m`` tridiagonal matrix ``T``."""
        return jnp.diag(self.alphas) + jnp.diag(self.betas, 1) + jnp.diag(self.betas, -1)


def _check_v0(solver: str, like: PyTree, v0: PyTree | None) -> None:
    if v0 is None:
        return
    problem = tree_mismatch(like, v0, "v0")
    if problem:
        raise ValueError(f"{solver}: v0 must be shaped like like: {problem}")
    if not _traced(v0):
        flat = np.concatenate([np.ravel(np.asarray(leaf, np.float64)) for leaf in jax.tree.leaves(v0)])
        if not np.all(np.isfinite(flat)):
            raise ValueError(f"{solver}: v0 must be finite")
        if not np.any(flat):
            raise ValueError(f"{solver}: v0 is all zeros; a Krylov method needs a nonzero start (or pass v0=None)")


def _traced(tree: PyTree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def lanczos(matvec: Matvec, like: PyTree, key: jax.Array, num_steps: int, v0: PyTree | None = None, *,
            throw: bool = False) -> Result:
    """``num_steps`` steps of Lanczos with full re-orthogonalization::

        w = A vⱼ - βⱼ₋₁ vⱼ₋₁,  αⱼ = <w, vⱼ>,  w ← w - αⱼ vⱼ,  w ← w - V (Vᵀ w) (twice),
        βⱼ = ||w||,  vⱼ₊₁ = w / βⱼ

    from ``v0`` (default: a random normal vector from ``key``).  On breakdown
    (``βⱼ ≈ 0``: an invariant subspace was found) the next vector is a fresh random one
    orthogonal to the basis and ``βⱼ = 0``, so ``T`` stays a valid projection and its
    eigenvalues stay eigenvalues of ``A`` (counted in ``stats["restarts"]``).

    Returns a :class:`gradkit.results.Result`: solution :class:`LanczosResult` (``res.alphas``,
    ``res.betas``, ``res.basis``; ``res.solution.tridiagonal()``), ``iterations`` the steps
    completed, stats ``matvecs``, ``restarts`` and ``beta_last`` (the ``β_m`` that couples
    ``T`` to the rest of the space, for Ritz residuals ``|β_m Q[m-1, i]|``).  Codes:
    ``CONVERGED`` (all steps done), ``BREAKDOWN`` (a traced ``v0`` was zero or not finite: the
    run started from the random vector instead), ``NONFINITE`` (a product was not finite at
    step ``j``: steps from ``j`` on are padded — ``αᵢ = α₀``, ``βᵢ₋₁ = 0``, zero basis rows —
    so ``T``'s extreme eigenvalues are the finite block's).  A concrete all-zero or
    non-finite ``v0`` is a ``ValueError``.
    """
    n = _size("lanczos", like)
    m = check_int("lanczos", "num_steps", num_steps)
    if m > n:
        raise ValueError(f"lanczos: num_steps={m} exceeds the dimension {n} of like")
    _check_v0("lanczos", like, v0)
    result = _lanczos_core(as_operator(matvec, "lanczos"), like, key, v0, num_steps=m)
    return maybe_throw(result, throw, "lanczos")


def _lanczos_impl(matvec: Matvec, like: PyTree, key: jax.Array, v0: PyTree | None, *, num_steps: int) -> Result:
    flat_matvec, _, dtype, result_dtype = _flat_operator(matvec, like, "lanczos")
    n, m = ravel_pytree(like)[0].size, num_steps
    key_start, key_restart = jax.random.split(key)
    random_start = lambda: jax.random.normal(key_start, (n,), dtype)
    if v0 is None:
        start, bad_start = random_start(), jnp.asarray(False)
    else:
        start = ravel_pytree(v0)[0].astype(dtype)
        start_norm = jnp.linalg.norm(start)
        bad_start = ~(jnp.isfinite(start_norm) & (start_norm > 0))
        # lax.cond, not jnp.where: the n random draws cost as much as a product, so only on a bad start
        start = jax.lax.cond(bad_start, random_start, lambda: start)
    start = start / jnp.linalg.norm(start)
    basis = jnp.zeros((m + 1, n), dtype).at[0].set(start)  # row m is scratch
    eps, tiny = jnp.finfo(dtype).eps, jnp.finfo(dtype).tiny

    def project_out(w: jax.Array, basis: jax.Array) -> jax.Array:
        return w - basis.T @ (basis @ w)

    def orthogonalize(w: jax.Array, basis: jax.Array) -> jax.Array:
        # DGKS: a second pass only when the first cancelled more than 1/√2 of ||w|| ("twice is
        # enough"); lax.cond so that the usual case reads the (m+1, n) basis twice, not four times
        once = project_out(w, basis)
        cancelled = jnp.linalg.norm(once) < 0.7071 * jnp.linalg.norm(w)
        return jax.lax.cond(cancelled, lambda u: project_out(u, basis), lambda u: u, once)

    def fresh_vector(j: jax.Array, basis: jax.Array) -> jax.Array:
        fresh = jax.random.normal(jax.random.fold_in(key_restart, j), (n,), dtype)
        for _ in range(2):
            fresh = project_out(fresh, basis)
        return fresh / jnp.linalg.norm(fresh)

    def body(j: int, state: tuple) -> tuple:
        basis, alphas, betas, previous_beta, steps, restarts = state
        v = basis[j]
        w = flat_matvec(v) - previous_beta * basis[jnp.maximum(j - 1, 0)]
        alpha = jnp.vdot(w, v)
        w = orthogonalize(w - alpha * v, basis)
        beta = jnp.linalg.norm(w)
        scale = jnp.maximum(jnp.abs(alpha), previous_beta)
        breakdown = beta <= n * eps * jnp.maximum(scale, tiny)
        # only on breakdown: a random draw and its orthogonalization cost about a product each
        next_v = jax.lax.cond(breakdown, lambda: fresh_vector(j, basis), lambda: w / jnp.where(breakdown, 1, beta))
        beta = jnp.where(breakdown, 0, beta)
        ok = (steps == j) & jnp.all(jnp.isfinite(next_v)) & jnp.isfinite(alpha) & jnp.isfinite(beta)
        basis = basis.at[j + 1].set(jnp.where(ok, next_v, 0))
        alphas = alphas.at[j].set(jnp.where(ok, alpha, 0))
        betas = betas.at[j].set(jnp.where(ok, beta, 0))
        return (basis, alphas, betas, jnp.where(ok, beta, 0), steps + ok.astype(steps.dtype),
                restarts + (ok & breakdown).astype(restarts.dtype))

    zeros = jnp.zeros((m,), dtype)
    zero = jnp.asarray(0)
    state = (basis, zeros, zeros, jnp.zeros((), dtype), zero, zero)
    basis, alphas, betas, _, steps, restarts = jax.lax.fori_loop(0, m, body, state)
    index = jnp.arange(m)
    beta_last = jnp.where(steps == m, betas[-1], 0)
    alphas = jnp.where(index < steps, alphas, jnp.where(steps > 0, alphas[0], jnp.nan))
    betas = jnp.where(index < steps - 1, betas, 0)
    basis = jnp.where((jnp.arange(m + 1) < steps)[:, None], basis, 0)[:m]
    code = select_code((steps < m, Code.NONFINITE), (bad_start, Code.BREAKDOWN))
    solution = LanczosResult(alphas.astype(result_dtype), betas[:-1].astype(result_dtype), basis)
    return make_result(solution, code, steps, matvecs=steps + (steps < m).astype(steps.dtype), restarts=restarts,
                       beta_last=beta_last.astype(result_dtype))


_lanczos_core = jax.jit(_lanczos_impl, static_argnames=("num_steps",))


def lanczos_eigenvalues(
    matvec: Matvec,
    like: PyTree,
    key: jax.Array,
    k: int = 1,
    *,
    num_steps: int | None = None,
    which: Literal["largest", "smallest", "magnitude"] = "largest",
    tol: float | None = None,
    throw: bool = False,
) -> Result:
    """The ``k`` extreme eigenpairs from the Ritz pairs of ``num_steps`` Lanczos steps
    (default ``min(n, max(2k + 20, 30))``): ``T = QΘQᵀ``, eigenvectors ``Vᵀ Q``.
    ``which``: ``"largest"`` (algebraic, sharpness), ``"smallest"`` or ``"magnitude"``.
    The ends of the spectrum converge first, geometrically in the gap.

    Returns a :class:`gradkit.results.Result`: solution :class:`Eigenpairs` (``res.eigenvalues``,
    ``res.eigenvectors``), stats ``matvecs`` and ``residuals``, the Ritz residual norms
    ``||A uᵢ - θᵢ uᵢ|| = |β_m Q[m-1, i]|`` (free from the recurrence).  Code ``CONVERGED`` when
    every returned residual is ``<= tol · maxᵢ |θᵢ|`` (``tol`` default ``max(1e-6, 10 √eps)``),
    ``MAX_STEPS`` when more steps are needed, else :func:`lanczos`'s ``NONFINITE`` / ``BREAKDOWN``.

    The two largest eigenvalues of ``diag(1, 2, ..., 50)`` from 30 matrix-vector products:

    >>> import jax, jax.numpy as jnp
    >>> d = jnp.arange(1.0, 51.0)
    >>> res = lanczos_eigenvalues(lambda v: d * v, jnp.zeros(50), jax.random.PRNGKey(0), k=2)
    >>> [round(x, 3) for x in res.eigenvalues.tolist()], res.message
    ([50.0, 49.0], 'converged: the tolerance was met')
    """
    k = check_int("lanczos_eigenvalues", "k", k)
    _check_choice("lanczos_eigenvalues", "which", which, WHICH)
    check_nonnegative("lanczos_eigenvalues", "tol", tol)
    n = _size("lanczos_eigenvalues", like)
    steps = min(n, max(2 * k + 20, 30)) if num_steps is None else check_int("lanczos_eigenvalues", "num_steps",
                                                                             num_steps)
    if steps > n:
        raise ValueError(f"lanczos_eigenvalues: num_steps={steps} exceeds the dimension {n} of like")
    if k > steps:
        raise ValueError(f"lanczos_eigenvalues: k={k} exceeds num_steps={steps}")
    result = _lanczos_eigenvalues_core(as_operator(matvec, "lanczos_eigenvalues"), like, key, tol, k=k,
                                       num_steps=steps, which=which)
    return maybe_throw(result, throw, "lanczos_eigenvalues")


def _lanczos_eigenvalues_impl(matvec: Matvec, like: PyTree, key: jax.Array, tol: jax.Array | None, *, k: int,
                              num_steps: int, which: str) -> Result:
    _, unravel, dtype, _ = _flat_operator(matvec, like, "lanczos_eigenvalues")
    run = _lanczos_impl(matvec, like, key, None, num_steps=num_steps)
    lanczos_result = run.solution
    tridiagonal = LanczosResult(lanczos_result.alphas.astype(dtype), lanczos_result.betas.astype(dtype),
                                lanczos_result.basis).tridiagonal()
    theta, q = jnp.linalg.eigh(tridiagonal)
    order = _ritz_order(theta, which)[:k]
    residuals = jnp.abs(run.beta_last.astype(dtype) * q[-1, order])
    tol = jnp.asarray(_default_tol(dtype) if tol is None else tol, dtype)
    accurate = jnp.max(residuals) <= tol * jnp.max(jnp.abs(theta[order]))
    code = jnp.where(run.code == Code.CONVERGED, select_code((~accurate, Code.MAX_STEPS)), run.code)
    vectors = (lanczos_result.basis.T @ q[:, order]).T
    pairs = Eigenpairs(theta[order].astype(lanczos_result.alphas.dtype), jax.vmap(unravel)(vectors),
                       jnp.asarray(num_steps))
    return make_result(pairs, code, run.iterations, matvecs=run.matvecs,
                       residuals=residuals.astype(lanczos_result.alphas.dtype))


_lanczos_eigenvalues_core = jax.jit(_lanczos_eigenvalues_impl, static_argnames=("k", "num_steps", "which"))


class TraceEstimate(NamedTuple):
    """A stochastic trace estimate, its standard error (``nan`` when not available), the
    number of operator products it cost and ``finite``: False when a product was not finite
    (the estimate is then NaN, never a silently wrong number)."""

    estimate: jax.Array
    stderr: jax.Array
    matvecs: int
    finite: jax.Array | bool = True


def hutchinson_trace(
    matvec: Matvec,
    like: PyTree,
    key: jax.Array,
    num_samples: int = 100,
    *,
    distribution: Literal["rademacher", "normal"] = "rademacher",
    batch_size: int | None = None,
) -> TraceEstimate:
    """Hutchinson's estimator ``tr(A) ≈ (1/s) Σᵢ zᵢᵀ A zᵢ`` with ``E[z zᵀ] = I``.

    Rademacher probes give the least variance, ``2 (||A||_F² - Σ A_ii²) / s``.  Products
    run ``batch_size`` at a time (``lax.map``; default all at once).  A non-finite product
    makes the estimate NaN with ``finite=False``.
    """
    s = check_int("hutchinson_trace", "num_samples", num_samples)
    _check_choice("hutchinson_trace", "distribution", distribution, DISTRIBUTIONS)
    if batch_size is not None:
        batch_size = check_int("hutchinson_trace", "batch_size", batch_size)
    _size("hutchinson_trace", like)
    estimate, stderr, finite = _hutchinson_core(as_operator(matvec, "hutchinson_trace"), like, key, num_samples=s,
                                                distribution=distribution, batch_size=batch_size)
    return TraceEstimate(estimate, stderr, s, finite)


def _hutchinson_impl(matvec: Matvec, like: PyTree, key: jax.Array, *, num_samples: int, distribution: str,
                     batch_size: int | None) -> tuple[jax.Array, jax.Array, jax.Array]:
    flat_matvec, _, dtype, result_dtype = _flat_operator(matvec, like, "hutchinson_trace")
    s = num_samples
    z = _probes(key, s, ravel_pytree(like)[0].size, dtype, distribution)
    quad = jax.lax.map(lambda v: jnp.vdot(v, flat_matvec(v)), z, batch_size=batch_size)
    finite = jnp.all(jnp.isfinite(quad))
    quad = jnp.where(finite, quad, jnp.nan)
    stderr = jnp.std(quad, ddof=1) / jnp.sqrt(s) if s > 1 else jnp.asarray(jnp.nan, dtype)
    return jnp.mean(quad).astype(result_dtype), stderr.astype(result_dtype), finite


_hutchinson_core = jax.jit(_hutchinson_impl, static_argnames=("num_samples", "distribution", "batch_size"))


def hutch_plus_plus(matvec: Matvec, like: PyTree, key: jax.Array, num_matvecs: int = 99) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021) with ``m`` products, ``m/3`` per stage::

        Q = qr(A S).Q                      S: n x m/3 Rademacher
        tr(A) ≈ tr(Qᵀ A Q) + (3/m) tr(Gᵀ (I - QQᵀ) A (I - QQᵀ) G)

    Exact the low-rank part, Hutchinson on the rest: error ``O(1/m)`` instead of
    Hutchinson's ``O(1/√m)`` for matrices with decaying spectra.  A non-finite product
    makes the estimate NaN with ``finite=False``.
    """
    m = check_int("hutch_plus_plus", "num_matvecs", num_matvecs, minimum=3)
    _size("hutch_plus_plus", like)
    estimate, finite = _hutch_plus_plus_core(as_operator(matvec, "hutch_plus_plus"), like, key, third=m // 3)
    return TraceEstimate(estimate, jnp.asarray(jnp.nan, estimate.dtype), 3 * (m // 3), finite)


def _hutch_plus_plus_impl(matvec: Matvec, like: PyTree, key: jax.Array, *, third: int) -> tuple[jax.Array, jax.Array]:
    flat_matvec, _, dtype, result_dtype = _flat_operator(matvec, like, "hutch_plus_plus")
    n = ravel_pytree(like)[0].size
    block = jax.vmap(flat_matvec)
    key_s, key_g = jax.random.split(key)
    s = _probes(key_s, third, n, dtype, "rademacher")
    sketch = block(s).T
    q, _ = jnp.linalg.qr(jnp.where(jnp.isfinite(sketch), sketch, 0))  # (n, third)
    aq = block(q.T).T
    low_rank = jnp.trace(q.T @ aq)
    g = _probes(key_g, third, n, dtype, "rademacher").T
    g = g - q @ (q.T @ g)
    ag = block(g.T).T
    residual = jnp.trace(g.T @ ag) / third
    finite = jnp.all(jnp.isfinite(sketch)) & jnp.all(jnp.isfinite(aq)) & jnp.all(jnp.isfinite(ag))
    estimate = jnp.where(finite, low_rank + residual, jnp.nan)
    return estimate.astype(result_dtype), finite


_hutch_plus_plus_core = jax.jit(_hutch_plus_plus_impl, static_argnames=("third",))


class SpectralDensity(NamedTuple):
    """Gauss quadrature nodes and weights from stochastic Lanczos quadrature, one row per
    probe: ``(1/n) tr f(A) ≈ mean over probes of Σⱼ weights[p, j] f(nodes[p, j])``; ``finite``
    (one flag per probe) is False for a probe whose products were not finite (its row is NaN)."""

    nodes: jax.Array
    weights: jax.Array
    finite: jax.Array | bool = True

    def expectation(self, fn: Callable[[jax.Array], jax.Array]) -> jax.Array:
        """``(1/n) tr f(A)`` estimated as ``mean_p Σ_j w_pj f(θ_pj)``."""
        return jnp.mean(jnp.sum(self.weights * fn(self.nodes), axis=-1))

    def on_grid(self, grid: jax.Array, sigma: float | jax.Array) -> jax.Array:
        """The density smoothed by a Gaussian of width ``sigma`` on ``grid``:
        ``φ(t) = mean_p Σ_j w_pj N(t; θ_pj, σ²)`` (integrates to 1)."""
        diff = grid[:, None, None] - self.nodes[None]
        kernel = jnp.exp(-0.5 * (diff / sigma) ** 2) / (sigma * jnp.sqrt(2 * jnp.pi))
        return jnp.mean(jnp.sum(self.weights[None] * kernel, axis=-1), axis=-1)


def slq_density(
    matvec: Matvec,
    like: PyTree,
    key: jax.Array,
    *,
    num_probes: int = 10,
    num_steps: int = 80,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019; Ubaru et al. 2017).

    For each unit Rademacher probe ``v``, ``m`` Lanczos steps give ``T = QΘQᵀ``; the
    nodes are the Ritz values ``θⱼ`` and the weights ``τⱼ² = Q[0, j]²`` (they sum to 1),
    so that ``vᵀ f(A) v ≈ Σⱼ τⱼ² f(θⱼ)`` — Gauss quadrature exact for polynomials of
    degree ``2m - 1``.  Averaged over probes this estimates the spectral density.  A probe
    whose Lanczos run met a non-finite product has NaN nodes and weights and
    ``finite[p] = False``.
    """
    p = check_int("slq_density", "num_probes", num_probes)
    m = check_int("slq_density", "num_steps", num_steps)
    n = _size("slq_density", like)
    if m > n:
        raise ValueError(f"slq_density: num_steps={m} exceeds the dimension {n} of like")
    nodes, weights, finite = _slq_core(as_operator(matvec, "slq_density"), like, key, num_probes=p, num_steps=m)
    return SpectralDensity(nodes, weights, finite)


def _slq_impl(matvec: Matvec, like: PyTree, key: jax.Array, *, num_probes: int, num_steps: int
              ) -> tuple[jax.Array, jax.Array, jax.Array]:
    _, unravel, dtype, result_dtype = _flat_operator(matvec, like, "slq_density")
    n = ravel_pytree(like)[0].size
    keys = jax.random.split(key, num_probes + 1)
    probes = _probes(keys[0], num_probes, n, dtype, "rademacher") / jnp.sqrt(n)

    def one(probe: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        run = _lanczos_impl(matvec, like, k, unravel(probe), num_steps=num_steps)
        result = run.solution
        tridiagonal = LanczosResult(result.alphas.astype(dtype), result.betas.astype(dtype), result.basis)
        theta, q = jnp.linalg.eigh(tridiagonal.tridiagonal())
        ok = run.code != Code.NONFINITE
        nan = jnp.asarray(jnp.nan, dtype)
        return jnp.where(ok, theta, nan), jnp.where(ok, q[0] ** 2, nan), ok

    nodes, weights, finite = jax.lax.map(lambda args: one(*args), (probes, keys[1:]))
    return nodes.astype(result_dtype), weights.astype(result_dtype), finite


_slq_core = jax.jit(_slq_impl, static_argnames=("num_probes", "num_steps"))

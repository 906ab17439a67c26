"""The Hessian's spectrum from matrix-vector products alone: power (subspace) iteration,
Lanczos, Hutchinson and Hutch++ traces, stochastic Lanczos quadrature (SLQ) density.

Every function takes ``matvec(v) -> A v`` on pytrees shaped like ``like`` (typically
``gradkit.hvp_operator(loss, params)``, or ``lambda v: gradkit.hvp(loss, params, v)``)
and never forms ``A``.  Methods that keep a Krylov basis (Lanczos, SLQ, Hutch++,
subspace iteration with ``k > 1``) hold it as a dense ``(m, n)`` array over
``ravel_pytree(like)`` — ``m`` vectors of ``n`` parameters, so ``m`` is the memory knob
(100 vectors of a 10M-parameter model in float32 take 4 GB).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

PyTree = Any
Matvec = Callable[[PyTree], PyTree]


def _flat_operator(matvec: Matvec, like: PyTree) -> tuple[Callable[[jax.Array], jax.Array], Callable, jax.Array]:
    """``matvec`` seen as a map on flat vectors of ``ravel_pytree(like)``."""
    flat, unravel = ravel_pytree(like)
    if flat.size == 0:
        raise ValueError("the operator acts on an empty pytree")

    def flat_matvec(v: jax.Array) -> jax.Array:
        return ravel_pytree(matvec(unravel(v.astype(flat.dtype))))[0].astype(flat.dtype)

    return flat_matvec, unravel, flat


def _probes(key: jax.Array, count: int, n: int, dtype: Any, distribution: str) -> jax.Array:
    if distribution == "rademacher":
        return jax.random.rademacher(key, (count, n), dtype=dtype)
    if distribution == "normal":
        return jax.random.normal(key, (count, n), dtype=dtype)
    raise ValueError(f"unknown probe distribution {distribution!r}; use 'rademacher' or 'normal'")


def _check_count(name: str, arg: str, value: int, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name}: {arg} must be an integer >= {minimum}, got {value!r}")
    return int(value)


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
    tol: float = 1e-6,
) -> Eigenpairs:
    """The ``k`` eigenvalues of largest magnitude by (block) power iteration::

        W = A V,   V = qr(W).Q        (k = 1: v ← A v / ||A v||)

    until every Rayleigh quotient changes by less than ``tol`` (relative) or ``num_iters``
    products of the block; then Rayleigh-Ritz on ``Vᵀ A V``.  Eigenvalues come sorted by
    decreasing magnitude.  Power iteration finds the largest *magnitude*: on a Hessian
    with a large negative eigenvalue that is the one it returns (use :func:`lanczos_eigenvalues`
    for the algebraic ends).  Convergence rate ``|λ_{k+1} / λ_k|`` per product.
    """
    k = _check_count("power_iteration", "k", k)
    num_iters = _check_count("power_iteration", "num_iters", num_iters)
    flat_matvec, unravel, flat = _flat_operator(matvec, like)
    if k > flat.size:
        raise ValueError(f"power_iteration: k={k} exceeds the dimension {flat.size}")
    block_matvec = jax.vmap(flat_matvec)  # rows are vectors
    v0, _ = jnp.linalg.qr(jax.random.normal(key, (flat.size, k), flat.dtype))

    def rayleigh(v: jax.Array, av: jax.Array) -> jax.Array:
        return jnp.sum(v * av, axis=0)

    def keep_going(state: tuple) -> jax.Array:
        i, _, _, old, new = state
        change = jnp.max(jnp.abs(new - old) / jnp.maximum(jnp.abs(new), jnp.finfo(flat.dtype).tiny))
        return (i < num_iters) & ~(change <= tol)

    def step(state: tuple) -> tuple:
        i, v, av, _, new = state
        v, _ = jnp.linalg.qr(av)
        av = block_matvec(v.T).T
        return i + 1, v, av, new, rayleigh(v, av)

    av0 = block_matvec(v0.T).T
    inf = jnp.full((k,), jnp.inf, flat.dtype)
    i, v, av, _, _ = jax.lax.while_loop(keep_going, step, (jnp.asarray(1), v0, av0, inf, rayleigh(v0, av0)))
    ritz_values, ritz_vectors = jnp.linalg.eigh(v.T @ av)
    order = jnp.argsort(-jnp.abs(ritz_values))
    vectors = (v @ ritz_vectors[:, order]).T
    return Eigenpairs(ritz_values[order], jax.vmap(unravel)(vectors), i)


class LanczosResult(NamedTuple):
    """``Vᵀ A V = T``: ``alphas`` the diagonal of ``T`` (m,), ``betas`` its off-diagonal
    (m-1,), ``basis`` the orthonormal Lanczos vectors as rows (m, n) over ``ravel_pytree``."""

    alphas: jax.Array
    betas: jax.Array
    basis: jax.Array

    def tridiagonal(self) -> jax.Array:
        """The ``m x m`` tridiagonal matrix ``T``."""
        return jnp.diag(self.alphas) + jnp.diag(self.betas, 1) + jnp.diag(self.betas, -1)


def lanczos(matvec: Matvec, like: PyTree, key: jax.Array, num_steps: int, v0: PyTree | None = None) -> LanczosResult:
    """``num_steps`` steps of Lanczos with full re-orthogonalization::

        w = A vⱼ - βⱼ₋₁ vⱼ₋₁,  αⱼ = <w, vⱼ>,  w ← w - αⱼ vⱼ,  w ← w - V (Vᵀ w) (twice),
        βⱼ = ||w||,  vⱼ₊₁ = w / βⱼ

    from ``v0`` (default: a random normal vector from ``key``).  On breakdown
    (``βⱼ ≈ 0``: an invariant subspace was found) the next vector is a fresh random one
    orthogonal to the basis and ``βⱼ = 0``, so ``T`` stays a valid projection and its
    eigenvalues stay eigenvalues of ``A``.
    """
    flat_matvec, _, flat = _flat_operator(matvec, like)
    n = flat.size
    m = _check_count("lanczos", "num_steps", num_steps)
    if m > n:
        raise ValueError(f"lanczos: num_steps={m} exceeds the dimension {n}")
    key_start, key_restart = jax.random.split(key)
    start = jax.random.normal(key_start, (n,), flat.dtype) if v0 is None else ravel_pytree(v0)[0].astype(flat.dtype)
    start = start / jnp.linalg.norm(start)
    basis = jnp.zeros((m + 1, n), flat.dtype).at[0].set(start)  # row m is scratch
    eps = jnp.finfo(flat.dtype).eps

    def orthogonalize(w: jax.Array, basis: jax.Array) -> jax.Array:
        for _ in range(2):
            w = w - basis.T @ (basis @ w)
        return w

    def body(j: int, state: tuple) -> tuple:
        basis, alphas, betas, previous_beta = state
        v = basis[j]
        w = flat_matvec(v) - previous_beta * basis[jnp.maximum(j - 1, 0)]
        alpha = jnp.vdot(w, v)
        w = orthogonalize(w - alpha * v, basis)
        beta = jnp.linalg.norm(w)
        scale = jnp.maximum(jnp.abs(alpha), previous_beta)
        breakdown = beta <= n * eps * jnp.maximum(scale, jnp.finfo(flat.dtype).tiny)
        fresh = orthogonalize(jax.random.normal(jax.random.fold_in(key_restart, j), (n,), flat.dtype), basis)
        next_v = jnp.where(breakdown, fresh / jnp.linalg.norm(fresh), w / jnp.where(breakdown, 1, beta))
        beta = jnp.where(breakdown, 0, beta)
        basis = basis.at[j + 1].set(next_v)
        return basis, alphas.at[j].set(alpha), betas.at[j].set(beta), beta

    zeros = jnp.zeros((m,), flat.dtype)
    basis, alphas, betas, _ = jax.lax.fori_loop(0, m, body, (basis, zeros, zeros, jnp.zeros((), flat.dtype)))
    return LanczosResult(alphas, betas[:-1], basis[:m])


def lanczos_eigenvalues(
    matvec: Matvec,
    like: PyTree,
    key: jax.Array,
    k: int = 1,
    *,
    num_steps: int | None = None,
    which: Literal["largest", "smallest", "magnitude"] = "largest",
) -> Eigenpairs:
    """The ``k`` extreme eigenpairs from the Ritz pairs of ``num_steps`` Lanczos steps
    (default ``min(n, max(2k + 20, 30))``): ``T = QΘQᵀ``, eigenvectors ``Vᵀ Q``.
    ``which``: ``"largest"`` (algebraic, sharpness), ``"smallest"`` or ``"magnitude"``.
    The ends of the spectrum converge first, geometrically in the gap."""
    k = _check_count("lanczos_eigenvalues", "k", k)
    flat, unravel = ravel_pytree(like)
    n = flat.size
    steps = min(n, max(2 * k + 20, 30)) if num_steps is None else int(num_steps)
    if k > steps:
        raise ValueError(f"lanczos_eigenvalues: k={k} exceeds num_steps={steps}")
    result = lanczos(matvec, like, key, steps)
    theta, q = jnp.linalg.eigh(result.tridiagonal())
    if which == "largest":
        order = jnp.argsort(-theta)
    elif which == "smallest":
        order = jnp.argsort(theta)
    elif which == "magnitude":
        order = jnp.argsort(-jnp.abs(theta))
    else:
        raise ValueError(f"lanczos_eigenvalues: which must be 'largest', 'smallest' or 'magnitude', got {which!r}")
    order = order[:k]
    vectors = (result.basis.T @ q[:, order]).T
    return Eigenpairs(theta[order], jax.vmap(unravel)(vectors), jnp.asarray(steps))


class TraceEstimate(NamedTuple):
    """A stochastic trace estimate, its standard error (``nan`` when not available) and
    the number of operator products it cost."""

    estimate: jax.Array
    stderr: jax.Array
    matvecs: int


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
    run ``batch_size`` at a time (``lax.map``; default all at once).
    """
    s = _check_count("hutchinson_trace", "num_samples", num_samples)
    flat_matvec, _, flat = _flat_operator(matvec, like)
    z = _probes(key, s, flat.size, flat.dtype, distribution)
    quad = jax.lax.map(lambda v: jnp.vdot(v, flat_matvec(v)), z, batch_size=batch_size)
    stderr = jnp.std(quad, ddof=1) / jnp.sqrt(s) if s > 1 else jnp.asarray(jnp.nan, flat.dtype)
    return TraceEstimate(jnp.mean(quad), stderr, s)


def hutch_plus_plus(matvec: Matvec, like: PyTree, key: jax.Array, num_matvecs: int = 99) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021) with ``m`` products, ``m/3`` per stage::

        Q = qr(A S).Q                      S: n x m/3 Rademacher
        tr(A) ≈ tr(Qᵀ A Q) + (3/m) tr(Gᵀ (I - QQᵀ) A (I - QQᵀ) G)

    Exact the low-rank part, Hutchinson on the rest: error ``O(1/m)`` instead of
    Hutchinson's ``O(1/√m)`` for matrices with decaying spectra.
    """
    m = _check_count("hutch_plus_plus", "num_matvecs", num_matvecs, minimum=3)
    third = m // 3
    flat_matvec, _, flat = _flat_operator(matvec, like)
    block = jax.vmap(flat_matvec)
    key_s, key_g = jax.random.split(key)
    s = _probes(key_s, third, flat.size, flat.dtype, "rademacher")
    q, _ = jnp.linalg.qr(block(s).T)  # (n, third)
    low_rank = jnp.trace(q.T @ block(q.T).T)
    g = _probes(key_g, third, flat.size, flat.dtype, "rademacher").T
    g = g - q @ (q.T @ g)
    residual = jnp.trace(g.T @ block(g.T).T) / third
    return TraceEstimate(low_rank + residual, jnp.asarray(jnp.nan, flat.dtype), 3 * third)


class SpectralDensity(NamedTuple):
    """Gauss quadrature nodes and weights from stochastic Lanczos quadrature, one row per
    probe: ``(1/n) tr f(A) ≈ mean over probes of Σⱼ weights[p, j] f(nodes[p, j])``."""

    nodes: jax.Array
    weights: jax.Array

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
    degree ``2m - 1``.  Averaged over probes this estimates the spectral density.
    """
    p = _check_count("slq_density", "num_probes", num_probes)
    flat, unravel = ravel_pytree(like)
    keys = jax.random.split(key, p + 1)
    probes = _probes(keys[0], p, flat.size, flat.dtype, "rademacher") / jnp.sqrt(flat.size)

    def one(probe: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
        result = lanczos(matvec, like, k, num_steps, v0=unravel(probe))
        theta, q = jnp.linalg.eigh(result.tridiagonal())
        return theta, q[0] ** 2

    nodes, weights = jax.lax.map(lambda args: one(*args), (probes, keys[1:]))
    return SpectralDensity(nodes, weights)

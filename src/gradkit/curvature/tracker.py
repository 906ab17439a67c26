"""Curvature tracked during training: sharpness, trace, Adam's preconditioned sharpness, the
GGN's top eigenvalue and the spectral density, every ``every`` steps, compiled once.

In :func:`gradkit.train.fit`::

    params, history = fit(loss, params, opt, data, epochs, batch, key,
                          tracker=CurvatureTracker(every=100, adam=AdamPreconditioner()))
    history.curvature.eigenvalues          # (records, k), history.curvature.steps

In your own optax loop (pure and jittable; ``lax.cond`` skips the work between records)::

    tracker = CurvatureTracker(loss, every=100, max_records=steps // 100 + 1)
    tstate = tracker.init(params, key)
    for step in range(steps):
        tstate = tracker.update(tstate, step, params, batch, opt_state)   # BEFORE this step's update
        params, opt_state = train_step(params, opt_state, batch)
    records = tracker.records(tstate)

At a recorded step ``t`` the tracker sees the iterate ``θ_t`` and the optimizer state from
which step ``t``'s update will be computed, on the batch that update uses, and records

* ``eigenvalues``: the top-``k`` eigenvalues of ``H_t = ∇²L(θ_t)`` by Lanczos
  (``lanczos_steps`` steps; re-orthogonalized when ``k > 1``), warm-started from the previous
  record's top eigenvectors ``v₀ = Σᵢ uᵢ / ||·||`` (a random vector at the first record);
  ``residuals``: ``||H u - θ u|| / |θ| = |β_m Q[m-1, i]| / |θ|`` for each Ritz pair (small = converged);
* ``trace``: Hutch++ with ``trace_matvecs`` products;
* ``preconditioned_sharpness``: ``λ_max(P_t^{-1/2} H_t P_t^{-1/2}) = λ_max(P_t^{-1} H_t)`` for Adam
  (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability"), where Adam's
  step ``t`` (optax form, ``c = count + 1`` updates including this one) is
  ``θ_{t+1} = θ_t - η P_t^{-1} m_t`` with::

      m_t = β₁ m + (1-β₁) g_t,   ν_t = β₂ ν + (1-β₂) g_t²
      P_t = (1 - β₁^c) · diag( sqrt(ν_t / (1 - β₂^c) + ε_root) + ε )

  (``m``, ``ν``, ``count`` read from the Adam state in ``opt_state``; ``g_t`` recomputed on the
  batch, so ``P_t`` is exactly the preconditioner of the update about to be taken).  The
  learning rate is not in ``P``: Adam on a quadratic is stable while
  ``λ_max(P^{-1}H) < (2 + 2β₁) / ((1 - β₁) η)`` (``38/η`` for ``β₁ = 0.9``; see
  :func:`adam_threshold`), and with a schedule compare with ``η_t``;
* ``ggn_eigenvalue`` (optional): the GGN's top eigenvalue, batch ``(x, y)``;
* the SLQ spectral density at the steps in ``density_steps``.

Cost: a record is ``lanczos_steps`` Hessian-vector products (``+ trace_matvecs``, ``+ lanczos_steps``
each for ``adam`` and ``ggn``) and little else: the Lanczos loop is unrolled, and for ``k = 1`` runs
without re-orthogonalization (its ``~2 m²`` vector reads cost as much as the products on 670k params).
Overhead budget (benchmarks/curvature.py, MLP 784-512-512-10, 670k params, batch 128, Adam, CPU):
the top eigenvector turns almost completely over 100 Adam steps (``|cos| = 0.005-0.37`` between
records), so the warm start helps little and the accuracy is set by the Lanczos size: ≤ 1 % over
every warm record needs ``m ≈ 8`` products (``m = 6``: up to 5 %; ``m = 10`` (the default): 0.02 %).
One product costs ``1.7-2.2`` train steps there, so the floor for 1 % is ``8 x 1.7 ≈ 14 %`` of 100
train steps: ≤ 10 % at ≤ 1 % is not reachable at ``every=100`` on that machine (a finding, not a
tuning gap); ``every=150`` with ``m = 8`` meets both.

Everything runs in one compiled function: ``step`` and the state are traced, so recording
never recompiles.  Records beyond ``max_records`` are dropped and counted (``dropped``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gradkit._validate import check_prng_key
from gradkit.curvature.operator import _cast, _compute_dtype, ggn, hessian, unravel_compute
from gradkit.linalg import hutch_plus_plus, slq_density
from gradkit.lifting import Spec, lift, note_compile
from gradkit.linalg.spectrum import SpectralDensity

PyTree = Any


class AdamPreconditioner(NamedTuple):
    """Adam's hyperparameters as in ``optax.adam`` (``b1``, ``b2``, ``eps``, ``eps_root``): what
    :class:`CurvatureTracker` needs to rebuild Adam's exact preconditioner ``P_t``."""

    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    eps_root: float = 0.0


def adam_threshold(learning_rate: float, b1: float = 0.9) -> float:
    """The stability threshold of Adam's preconditioned sharpness (Cohen et al. 2022):
    ``(2 + 2β₁) / ((1 - β₁) η)`` — ``38/η`` at ``β₁ = 0.9`` (GD's is ``2/η``)."""
    if not learning_rate > 0:
        raise ValueError(f"adam_threshold: learning_rate must be > 0, got {learning_rate!r}")
    if not 0 <= b1 < 1:
        raise ValueError(f"adam_threshold: b1 must be in [0, 1), got {b1!r}")
    return (2 + 2 * b1) / ((1 - b1) * learning_rate)


def _is_adam_state(node: Any) -> bool:
    fields = getattr(node, "_fields", None)
    return fields is not None and {"count", "mu", "nu"} <= set(fields)


def find_adam_state(opt_state: PyTree) -> Any:
    """The first state in ``opt_state`` with ``count``, ``mu`` and ``nu`` fields (optax's
    ``ScaleByAdamState``, gradkit's ``AdamState``), or None."""
    for node in jax.tree.leaves(opt_state, is_leaf=_is_adam_state):
        if _is_adam_state(node):
            return node
    return None


def adam_preconditioner(adam_state: Any, grads: PyTree, hyper: AdamPreconditioner) -> PyTree:
    """``P_t = (1 - β₁^c) (sqrt(ν_t / (1 - β₂^c) + ε_root) + ε)`` with ``ν_t = β₂ ν + (1-β₂) g²`` and
    ``c = count + 1``: the diagonal (a pytree) of the preconditioner of the Adam update computed
    from ``adam_state`` and ``grads`` (see the module docstring)."""
    b1, b2, eps, eps_root = hyper
    c = (jnp.asarray(adam_state.count) + 1).astype(jnp.result_type(*jax.tree.leaves(grads)))

    def one(nu: jax.Array, g: jax.Array) -> jax.Array:
        nu_t = b2 * nu.astype(g.dtype) + (1 - b2) * g * g
        return (1 - b1**c) * (jnp.sqrt(nu_t / (1 - b2**c) + eps_root) + eps)

    return jax.tree.map(one, adam_state.nu, grads)


class TrackerState(NamedTuple):
    """The tracker's carry: records (rows for ``max_records`` entries; NaN / -1 until written),
    the warm-start eigenvectors (leading ``k`` axis), a key and the number of records taken."""

    key: jax.Array
    count: jax.Array
    steps: jax.Array
    eigenvalues: jax.Array
    residuals: jax.Array
    trace: jax.Array | None
    preconditioned_sharpness: jax.Array | None
    ggn_eigenvalue: jax.Array | None
    density_nodes: jax.Array | None
    density_weights: jax.Array | None
    vectors: PyTree
    precond_vector: PyTree
    ggn_vector: PyTree


@dataclasses.dataclass
class CurvatureRecords:
    """What a :class:`CurvatureTracker` recorded, as NumPy arrays with one row per record:
    ``steps (r,)``, ``eigenvalues (r, k)``, ``residuals (r, k)``, ``trace (r,)``,
    ``preconditioned_sharpness (r,)``, ``ggn_eigenvalue (r,)`` (None when not tracked),
    ``density``: step -> :class:`gradkit.linalg.SpectralDensity`; ``dropped``: records past
    ``max_records`` that were not kept."""

    steps: np.ndarray
    eigenvalues: np.ndarray
    residuals: np.ndarray
    trace: np.ndarray | None
    preconditioned_sharpness: np.ndarray | None
    ggn_eigenvalue: np.ndarray | None
    density: dict[int, SpectralDensity]
    dropped: int

    @property
    def sharpness(self) -> np.ndarray:
        """The top Hessian eigenvalue per record, ``eigenvalues[:, 0]``."""
        return self.eigenvalues[:, 0]


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"CurvatureTracker: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _unrolled_lanczos(flat_matvec: Callable[[jax.Array], jax.Array], start: jax.Array, steps: int,
                      reorthogonalize: bool = True) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``steps`` Lanczos steps from ``start`` (unit norm), unrolled in Python::

        w = A vⱼ - βⱼ₋₁ vⱼ₋₁ - αⱼ vⱼ,   w ← w - Σᵢ≤ⱼ <vᵢ, w> vᵢ  (DGKS: twice if needed),   βⱼ = ||w||,  vⱼ₊₁ = w / βⱼ

    ``reorthogonalize=False`` keeps the three-term recurrence alone (``~8 m`` vector reads in
    all): orthogonality is then lost once a Ritz value converges, which only adds copies of it
    to ``T``; the largest Ritz value stays within ``[λ_min, λ_max]`` and converges at least as
    fast (Paige 1980; Greenbaum 1989), so it is the right choice for ``k = 1`` only.
    Returns ``alphas (m,)``, ``betas (m-1,)``, the basis ``V (m, n)`` and ``β_m``.  Unrolled so that
    step ``j`` re-orthogonalizes against its ``j + 1`` vectors only (static slices: ``~2 m²``
    vector reads in all, not ``4 m (m+1)`` over a preallocated basis) with no loop carry, no
    ``dynamic_update_slice`` and no ``lax.cond``: a record costs ``m`` products plus that.  On
    breakdown (``βⱼ <= √eps max(|αⱼ|, βⱼ₋₁)``: an invariant subspace, or the Ritz values
    converged to working precision) the later steps are padded with
    ``αᵢ = α₀``, ``β = 0`` and zero vectors, so ``T``'s extreme eigenvalues are the block's
    (the convention of :func:`gradkit.linalg.lanczos`)."""
    dtype = start.dtype

    def project_out(w: jax.Array, vectors: list[jax.Array]) -> jax.Array:  # classical Gram-Schmidt
        coefficients = [jnp.vdot(u, w) for u in vectors]
        return w - sum(c * u for c, u in zip(coefficients, vectors))

    eps, tiny = jnp.finfo(dtype).eps, jnp.finfo(dtype).tiny
    basis, alphas, betas = [start], [], []
    alive = jnp.asarray(True)
    beta = jnp.zeros((), dtype)
    for j in range(steps):
        v = basis[j]
        w = flat_matvec(v)
        if j:
            w = w - beta * basis[j - 1]
        alpha = jnp.vdot(w, v)
        w = w - alpha * v
        if reorthogonalize:
            once = project_out(w, basis)
            # DGKS: the second pass only when the first cancelled more than 1/√2 of ||w||
            w = jax.lax.cond(jnp.linalg.norm(once) < 0.7071 * jnp.linalg.norm(w),
                             lambda u, vs: project_out(u, vs), lambda u, vs: u, once, basis)
        scale = jnp.maximum(jnp.abs(alpha), beta)
        new_beta = jnp.linalg.norm(w)
        ok = alive & jnp.isfinite(alpha) & jnp.isfinite(new_beta)
        alphas.append(jnp.where(ok, alpha, alphas[0] if alphas else jnp.nan))
        alive = ok & (new_beta > jnp.sqrt(eps) * jnp.maximum(scale, tiny))
        beta = jnp.where(alive, new_beta, 0)
        betas.append(beta)
        basis.append(jnp.where(alive, w / jnp.where(alive, new_beta, 1), 0))
    return jnp.stack(alphas), jnp.stack(betas[:-1]) if steps > 1 else jnp.zeros((0,), dtype), \
        jnp.stack(basis[:steps]), betas[-1]


def _top_eigenpairs(matvec: Callable, like: PyTree, key: jax.Array, k: int, steps: int,
                    warm: PyTree, has_warm: jax.Array) -> tuple[jax.Array, jax.Array, PyTree]:
    """Top-``k`` Ritz pairs ``(θᵢ, uᵢ = Vᵀ qᵢ)`` of ``steps`` Lanczos steps (``T = V A Vᵀ = QΘQᵀ``)
    from the warm start ``v₀ = Σᵢ uᵢ`` (the previous record's vectors; a random vector from
    ``key`` when there are none), with relative residuals
    ``||A uᵢ - θᵢ uᵢ|| / |θᵢ| = |β_m Q[m-1, i]| / |θᵢ|`` (free from the recurrence): exactly
    ``steps`` operator products in all."""
    flat_like, _ = ravel_pytree(like)
    dtype = flat_like.dtype

    def flat_matvec(v: jax.Array) -> jax.Array:
        return ravel_pytree(matvec(unravel_compute(like, v)))[0].astype(dtype)

    w = jnp.sum(jax.vmap(lambda t: ravel_pytree(t)[0])(warm), axis=0).astype(dtype)
    w_norm = jnp.linalg.norm(w)
    usable = has_warm & (w_norm > 0) & jnp.isfinite(w_norm)
    # lax.cond: the n random draws cost about one product, so only when there is no warm start
    start = jax.lax.cond(usable, lambda: w / jnp.where(usable, w_norm, 1),
                         lambda: (lambda r: r / jnp.linalg.norm(r))(jax.random.normal(key, w.shape, dtype)))
    # k = 1: no re-orthogonalization (see _unrolled_lanczos): the top Ritz value does not need it,
    # and it would cost ~2 m² vector reads, as much as the m products themselves on 670k params
    alphas, betas, basis, beta_last = _unrolled_lanczos(flat_matvec, start, steps, reorthogonalize=k > 1)
    tri = jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)
    theta, q = jnp.linalg.eigh(tri)
    order = jnp.argsort(-theta)[:k]
    values = theta[order]
    flat_vectors = (basis.T @ q[:, order]).T
    norms = jnp.linalg.norm(flat_vectors, axis=1, keepdims=True)  # 1 unless orthogonality was lost
    flat_vectors = flat_vectors / jnp.where(norms > 0, norms, 1)
    vectors = jax.vmap(lambda v: unravel_compute(like, v))(flat_vectors)
    residuals = jnp.abs(beta_last * q[-1, order]) / jnp.abs(values)
    return values, residuals, vectors


@dataclasses.dataclass(frozen=True)
class CurvatureTracker:
    """Records curvature every ``every`` steps (see the module docstring for what and how).

    ``loss_fn(params, batch) -> scalar`` (``fit`` supplies its own when None); ``k`` top
    eigenvalues from ``lanczos_steps`` Lanczos steps; ``trace_matvecs`` Hutch++ products
    (0: no trace); ``adam``: record Adam's preconditioned sharpness with these
    hyperparameters; ``ggn = (model_fn, loss_of_outputs)``: record the GGN's top eigenvalue;
    ``density_steps``: steps at which to record the SLQ density (``density_probes`` probes of
    ``density_lanczos_steps`` steps); ``max_records`` rows are kept.  Krylov sizes are capped
    at the number of parameters."""

    loss_fn: Callable[[PyTree, PyTree], Any] | None = None
    every: int = 100
    k: int = 1
    lanczos_steps: int = 10
    trace_matvecs: int = 30
    adam: AdamPreconditioner | None = None
    ggn: tuple[Callable, Callable] | None = None
    density_steps: tuple[int, ...] = ()
    density_probes: int = 4
    density_lanczos_steps: int = 40
    max_records: int = 100

    def __post_init__(self) -> None:
        if self.loss_fn is not None and not callable(self.loss_fn):
            raise TypeError(f"CurvatureTracker: loss_fn must be callable, got {type(self.loss_fn).__name__}")
        _positive_int("every", self.every)
        _positive_int("k", self.k)
        _positive_int("lanczos_steps", self.lanczos_steps, minimum=self.k)
        if self.trace_matvecs != 0:
            _positive_int("trace_matvecs (or 0 for no trace)", self.trace_matvecs, minimum=3)
        if self.adam is not None and not isinstance(self.adam, AdamPreconditioner):
            raise TypeError(f"CurvatureTracker: adam must be an AdamPreconditioner or None, got {type(self.adam).__name__}")
        if self.ggn is not None and not (isinstance(self.ggn, tuple) and len(self.ggn) == 2
                                         and all(callable(f) for f in self.ggn)):
            raise TypeError("CurvatureTracker: ggn must be a pair (model_fn, loss_of_outputs) of callables")
        if not isinstance(self.density_steps, tuple) or not all(
                isinstance(s, (int, np.integer)) and s >= 0 for s in self.density_steps):
            raise ValueError(f"CurvatureTracker: density_steps must be a tuple of step numbers >= 0, "
                             f"got {self.density_steps!r}")
        if any(s % self.every for s in self.density_steps):
            raise ValueError(f"CurvatureTracker: density_steps {self.density_steps} must be multiples of every={self.every} "
                             "(the density is taken at recorded steps)")
        _positive_int("density_probes", self.density_probes)
        _positive_int("density_lanczos_steps", self.density_lanczos_steps)
        _positive_int("max_records", self.max_records)

    def bind(self, loss_fn: Callable[[PyTree, PyTree], Any], num_steps: int) -> CurvatureTracker:
        """This tracker with ``loss_fn`` filled in (if it had none) and room for every record of
        a run of ``num_steps`` steps (what :func:`gradkit.train.fit` calls)."""
        needed = max(1, math.ceil(num_steps / self.every))
        return dataclasses.replace(self, loss_fn=self.loss_fn if self.loss_fn is not None else loss_fn,
                                   max_records=max(self.max_records, needed))

    def init(self, params: PyTree, key: jax.Array) -> TrackerState:
        """Empty records and zero warm-start vectors for ``params``."""
        if not jax.tree.leaves(params):
            raise ValueError("CurvatureTracker.init: params is an empty pytree")
        check_prng_key("CurvatureTracker.init", "key", key)
        size = sum(int(jnp.size(leaf)) for leaf in jax.tree.leaves(params))
        if self.k > size:
            raise ValueError(f"CurvatureTracker.init: k={self.k} top eigenvalues asked of {size} parameters; "
                             f"use k <= {size}")
        dtype = _compute_dtype(params)
        rows = self.max_records
        nan = lambda *shape: jnp.full(shape, jnp.nan, dtype)
        zeros_like = lambda count: jax.tree.map(
            lambda leaf: jnp.zeros((count, *jnp.shape(leaf)), dtype), params)
        density = bool(self.density_steps)
        n = ravel_pytree(params)[0].size
        d, p, m = len(self.density_steps), self.density_probes, min(self.density_lanczos_steps, n)
        return TrackerState(
            key=key,
            count=jnp.zeros((), jnp.int32),
            steps=jnp.full((rows,), -1, jnp.int32),
            eigenvalues=nan(rows, self.k),
            residuals=nan(rows, self.k),
            trace=nan(rows) if self.trace_matvecs else None,
            preconditioned_sharpness=nan(rows) if self.adam is not None else None,
            ggn_eigenvalue=nan(rows) if self.ggn is not None else None,
            density_nodes=nan(d, p, m) if density else None,
            density_weights=nan(d, p, m) if density else None,
            vectors=zeros_like(self.k),
            precond_vector=zeros_like(1) if self.adam is not None else None,
            ggn_vector=zeros_like(1) if self.ggn is not None else None,
        )

    def update(self, tstate: TrackerState, step: int | jax.Array, params: PyTree, batch: PyTree,
               opt_state: Any = None) -> TrackerState:
        """Record at ``step`` if ``step % every == 0`` (else return ``tstate`` unchanged), from
        ``params`` and ``opt_state`` *before* this step's update and the batch it uses.  Pure;
        under ``jit`` the recording branch runs only on recorded steps (``lax.cond``)."""
        if self.loss_fn is None:
            raise ValueError("CurvatureTracker.update: no loss_fn; pass CurvatureTracker(loss_fn, ...)")
        if self.adam is not None and find_adam_state(opt_state) is None:
            raise ValueError("CurvatureTracker.update: adam= is set but opt_state holds no Adam state "
                             "(a NamedTuple with count, mu, nu); pass the optimizer state")
        if self.ggn is not None and not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError("CurvatureTracker.update: ggn= needs the batch as a pair (inputs, targets)")
        step = jnp.asarray(step, jnp.int32)
        return jax.lax.cond(step % self.every == 0,
                            lambda s: self._record(s, step, params, batch, opt_state), lambda s: s, tstate)

    def _record(self, tstate: TrackerState, step: jax.Array, params: PyTree, batch: PyTree,
                opt_state: Any) -> TrackerState:
        dtype = _compute_dtype(params)
        like = _cast(params, dtype)
        key = jax.random.fold_in(tstate.key, tstate.count)
        k_top, k_trace, k_pre, k_ggn, k_density = jax.random.split(key, 5)
        has_warm = tstate.count > 0
        n = ravel_pytree(like)[0].size
        steps = min(self.lanczos_steps, n)  # a Krylov space cannot outgrow the dimension
        row = tstate.count
        write = lambda arr, value: arr.at[row].set(value, mode="drop")

        # loss_fn(params, batch) always, also for batch=None (the operator alone would call loss_fn(params))
        objective = self.loss_fn if batch is not None else (lambda p: self.loss_fn(p, None))
        matvec = hessian(objective, like, batch).linearize()
        values, residuals, vectors = _top_eigenpairs(matvec, like, k_top, self.k, steps,
                                                     tstate.vectors, has_warm)
        new = tstate._replace(count=tstate.count + 1, steps=write(tstate.steps, step),
                              eigenvalues=write(tstate.eigenvalues, values),
                              residuals=write(tstate.residuals, residuals), vectors=vectors)
        if self.trace_matvecs:
            estimate = hutch_plus_plus(matvec, like, k_trace, self.trace_matvecs).estimate
            new = new._replace(trace=write(tstate.trace, estimate))
        if self.adam is not None:
            grads = jax.grad(lambda p: self.loss_fn(p, batch))(like)
            p_diag = adam_preconditioner(find_adam_state(opt_state), grads, self.adam)
            scale = jax.tree.map(lambda d: 1 / jnp.sqrt(d), p_diag)

            def preconditioned(v: PyTree) -> PyTree:
                return jax.tree.map(jnp.multiply, scale, matvec(jax.tree.map(jnp.multiply, scale, v)))

            top, _, vec = _top_eigenpairs(preconditioned, like, k_pre, 1, steps,
                                          tstate.precond_vector, has_warm)
            new = new._replace(preconditioned_sharpness=write(tstate.preconditioned_sharpness, top[0]),
                               precond_vector=vec)
        if self.ggn is not None:
            model_fn, loss_of_outputs = self.ggn
            ggn_matvec = ggn(model_fn, loss_of_outputs, like, tuple(batch)).linearize()
            top, _, vec = _top_eigenpairs(ggn_matvec, like, k_ggn, 1, steps,
                                          tstate.ggn_vector, has_warm)
            new = new._replace(ggn_eigenvalue=write(tstate.ggn_eigenvalue, top[0]), ggn_vector=vec)
        if self.density_steps:
            matches = jnp.asarray(self.density_steps, jnp.int32) == step
            slot = jnp.argmax(matches)

            def density(state: TrackerState) -> TrackerState:
                result = slq_density(matvec, like, k_density, num_probes=self.density_probes,
                                     num_steps=min(self.density_lanczos_steps, n))
                return state._replace(density_nodes=state.density_nodes.at[slot].set(result.nodes),
                                      density_weights=state.density_weights.at[slot].set(result.weights))

            new = jax.lax.cond(jnp.any(matches), density, lambda s: s, new)
        return new

    def compiled_update(self) -> Callable[..., TrackerState]:
        """``jax.jit(self.update)``, compiled once per what this tracker computes (its settings
        and ``loss_fn``'s code and values, :mod:`gradkit.lifting`), not per tracker object: the
        trackers :func:`gradkit.train.fit` binds anew on every call share one program."""
        spec, leaves = lift(self, floats=False)
        return functools.partial(_compiled_update, spec, leaves)

    def records(self, tstate: TrackerState) -> CurvatureRecords:
        """The records taken so far, as NumPy arrays (one row per record)."""
        count = int(tstate.count)
        rows = min(count, self.max_records)
        cut = lambda arr: None if arr is None else np.asarray(arr)[:rows]
        density = {}
        if self.density_steps:
            nodes, weights = np.asarray(tstate.density_nodes), np.asarray(tstate.density_weights)
            for i, s in enumerate(self.density_steps):
                if np.all(np.isfinite(nodes[i])):
                    density[int(s)] = SpectralDensity(nodes[i], weights[i])
        return CurvatureRecords(steps=cut(tstate.steps), eigenvalues=cut(tstate.eigenvalues),
                                residuals=cut(tstate.residuals), trace=cut(tstate.trace),
                                preconditioned_sharpness=cut(tstate.preconditioned_sharpness),
                                ggn_eigenvalue=cut(tstate.ggn_eigenvalue), density=density,
                                dropped=count - rows)


@functools.partial(jax.jit, static_argnums=0)
def _compiled_update(spec: Spec, leaves: tuple, tstate: TrackerState, step: Any, params: PyTree, batch: PyTree,
                     opt_state: Any) -> TrackerState:
    note_compile("gradkit.curvature.CurvatureTracker", spec)
    return spec.rebuild(leaves).update(tstate, step, params, batch, opt_state)

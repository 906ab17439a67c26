"""One curvature operator: the Hessian, the generalized Gauss-Newton matrix and the Fisher
(true and empirical) of a loss at some params, as pytree linear operators.

Definitions (``θ`` the params, a batch of ``N`` examples, ``z = m(θ, x)`` the model outputs,
``ℓ(z, y)`` the loss of the outputs, ``J = ∂z/∂θ``):

* Hessian             ``H = ∇²_θ L(θ)``
* GGN                 ``G = Jᵀ H_ℓ J`` with ``H_ℓ = ∇²_z ℓ(z, y)``  (PSD when ``ℓ`` is convex in ``z``)
* true Fisher         ``F = (1/N) Σᵢ Jᵢᵀ F_z Jᵢ``, ``F_z = E_{y~p(y|zᵢ)}[∇_z log p ∇_z log pᵀ]``
  in closed form for the exponential-family likelihoods: softmax (``diag(p) - p pᵀ``, ``p = softmax(z)``),
  Bernoulli (``σ(z)(1 - σ(z))``) and Gaussian with unit variance (``I``).  For these canonical
  links the Fisher *is* the GGN of the mean negative log-likelihood.
* empirical Fisher    ``F̂ = (1/N) Σᵢ gᵢ gᵢᵀ`` with ``gᵢ = ∇_θ ℓᵢ(θ)`` the per-example gradients:
  ``F̂ v = (1/N) Jₗᵀ (Jₗ v)`` where ``Jₗ`` (N x n) is the Jacobian of the ``vmap``-ed per-example
  losses, so no per-example gradient is stored.

Every operator ``A`` (a :class:`CurvatureOperator`) offers::

    op(v)                    A v (+ λ v when damped), a pytree shaped like the params
    op.batched_matvec(vs)    A vₖ for vectors stacked on a leading axis: one linearization, vmap-ed
    op.linearize()           the map v -> A v with the linearization done once (for a Krylov loop)
    op.diagonal(key, s)      Hutchinson's diag(A) ≈ (1/s) Σ zⱼ ⊙ A zⱼ, z Rademacher (unbiased)
    op.dense()               the n x n matrix over ravel_pytree(params)   (small problems)
    op.damped(λ)             A + λ I
    op.params, op.size, op.shape, op.dtype, op.compute_dtype

Operators are registered pytrees: the functions (and the kind of Fisher) are static and
compared by identity, the params, batch and damping are children.  A freshly built
operator for the same functions passed to a jitted function therefore reuses its compiled
form.  Parameters in bfloat16/float16 are computed in float32; vectors come back in the
dtype they went in.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Literal
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gradkit._validate import check_prng_key
from gradkit.derivatives import scalar_fn, tree_mismatch

PyTree = Any
Likelihood = Literal["softmax", "bernoulli", "gaussian"]
LIKELIHOODS: tuple[str, ...] = ("softmax", "bernoulli", "gaussian")


def _compute_dtype(tree: PyTree) -> Any:
    """float32 for half-precision (or integer) params, else the params' own float dtype."""
    leaves = jax.tree.leaves(tree)
    dtype = jnp.result_type(*leaves) if leaves else jnp.float32
    if not jnp.issubdtype(dtype, jnp.floating) or jnp.finfo(dtype).bits < 32:
        return jnp.float32
    return dtype


def _cast(tree: PyTree, dtype: Any) -> PyTree:
    return jax.tree.map(lambda leaf: jnp.asarray(leaf).astype(dtype), tree)


def _check_params(name: str, params: PyTree) -> None:
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError(f"{name}: params is an empty pytree")
    for i, leaf in enumerate(leaves):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise TypeError(f"{name}: params leaf {i} has dtype {jnp.result_type(leaf)}; expected a float dtype")


def _check_callable(name: str, arg: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{name}: {arg} must be callable, got {type(fn).__name__}")
    from gradkit.runs import multihost

    multihost.check_no_global_closure(fn, name, arg, f"{name}({arg}, params, batch) with {arg} taking the batch "
                                      "as its last argument")


def _check_samples(name: str, value: Any) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name}: num_samples must be an integer >= 1, got {value!r}")
    return int(value)


class CurvatureOperator(abc.ABC):
    """A symmetric linear operator ``A`` on pytrees shaped like ``params`` (see the module
    docstring for the four kinds and every method).  Subclasses define ``_linear_map``,
    which linearizes at the (compute-dtype) params and returns ``v -> A v`` without damping."""

    kind: str = "operator"

    def __init__(self, functions: tuple, params: PyTree, batch: PyTree, damping: Any = 0.0) -> None:
        self.functions = functions
        self.params = params
        self.batch = batch
        self.damping = damping

    # -- pytree protocol: functions static, (params, batch, damping) children ------------
    def tree_flatten(self) -> tuple[tuple, tuple]:
        return (self.params, self.batch, self.damping), self.functions

    @classmethod
    def tree_unflatten(cls, functions: tuple, children: tuple) -> CurvatureOperator:
        op = object.__new__(cls)
        op.functions = functions
        op.params, op.batch, op.damping = children
        return op

    # -- sizes ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """``n``, the number of scalar parameters."""
        return int(sum(jnp.size(leaf) for leaf in jax.tree.leaves(self.params)))

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, n)``."""
        return (self.size, self.size)

    @property
    def dtype(self) -> Any:
        """The params' dtype (the dtype vectors are expected and returned in)."""
        return jnp.result_type(*jax.tree.leaves(self.params))

    @property
    def compute_dtype(self) -> Any:
        """The dtype products are computed in: float32 for bfloat16/float16 params."""
        return _compute_dtype(self.params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.size}, dtype={jnp.dtype(self.dtype).name})"

    # -- products ------------------------------------------------------------------------
    @abc.abstractmethod
    def _linear_map(self) -> Callable[[PyTree], PyTree]:
        """Linearize at the params (in the compute dtype) and return ``v -> A v`` (no damping)."""

    def _wrap(self, linear_map: Callable[[PyTree], PyTree]) -> Callable[[PyTree], PyTree]:
        """``v -> A v + λ v``, computed in the compute dtype, returned in ``v``'s dtypes."""
        compute = self.compute_dtype

        def apply(v: PyTree) -> PyTree:
            v32 = _cast(v, compute)
            out = jax.tree.map(lambda a, x: a + jnp.asarray(self.damping, compute) * x, linear_map(v32), v32)
            return jax.tree.map(lambda o, x: o.astype(jnp.result_type(x)), out, v)

        return apply

    def _check_vector(self, v: PyTree, what: str) -> None:
        problem = tree_mismatch(self.params, v, what)
        if problem:
            raise ValueError(f"{type(self).__name__}: {problem}")

    def linearize(self) -> Callable[[PyTree], PyTree]:
        """The map ``v -> A v`` with the model linearized once (``jax.linearize``): every call
        then costs one tangent pass (plus its transpose for GGN/Fisher), not a fresh primal.
        A plain closure: hand it to a Krylov solver inside one jitted function."""
        apply = self._wrap(self._linear_map())

        def matvec(v: PyTree) -> PyTree:
            self._check_vector(v, "vector")
            return apply(v)

        return matvec

    def __call__(self, v: PyTree) -> PyTree:
        """``A v`` (``+ λ v`` when damped), a pytree shaped like ``v``.  Compiled once per
        operator type and shapes (the operator is a pytree argument of one cached ``jit``), so
        eager calls in a Python loop run at compiled speed."""
        self._check_vector(v, "vector")
        return _matvec_compiled(self, v)

    def _matvec(self, v: PyTree) -> PyTree:
        return self._wrap(self._linear_map())(v)

    def batched_matvec(self, vs: PyTree) -> PyTree:
        """``A vₖ`` for every ``vₖ`` stacked on the leading axis of the leaves of ``vs``:
        ``jax.linearize`` once, then ``vmap`` of the tangent map."""
        leaves = jax.tree.leaves(vs)
        sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(f"{type(self).__name__}.batched_matvec: the leaves of vs need one shared leading "
                             f"(batch) axis, got leading sizes {sizes}")
        self._check_vector(jax.tree.map(lambda leaf: leaf[0], vs), "vectors (one row of vs)")
        return _batched_matvec_compiled(self, vs)

    def _batched_matvec(self, vs: PyTree) -> PyTree:
        return jax.vmap(self._wrap(self._linear_map()))(vs)

    def diagonal(self, key: jax.Array, num_samples: int = 100) -> PyTree:
        """Hutchinson's estimate of ``diag(A)``: ``(1/s) Σⱼ zⱼ ⊙ A zⱼ`` with ``s = num_samples``
        Rademacher probes (``E[z ⊙ A z] = diag(A)`` since ``E[zᵢ zⱼ] = δᵢⱼ``); unbiased, with
        variance ``Σ_{j≠i} A_ij² / s`` per entry.  Products go through :meth:`batched_matvec`."""
        s = _check_samples(f"{type(self).__name__}.diagonal", num_samples)
        check_prng_key(f"{type(self).__name__}.diagonal", "key", key)
        return _diagonal_compiled(self, key, s)

    def _diagonal(self, key: jax.Array, s: int) -> PyTree:
        flat, unravel = ravel_pytree(self.params)
        z = jax.random.rademacher(key, (s, flat.size), dtype=self.compute_dtype)
        zs = jax.vmap(unravel)(z.astype(flat.dtype))
        products = self._batched_matvec(zs)
        flat_products = jax.vmap(lambda t: ravel_pytree(_cast(t, self.compute_dtype))[0])(products)
        estimate = jnp.mean(z * flat_products, axis=0)
        return jax.tree.map(lambda e, p: e.astype(jnp.result_type(p)), unravel_compute(self.params, estimate), self.params)

    def dense(self) -> jax.Array:
        """The ``n x n`` matrix over ``ravel_pytree(params)`` (``A[:, j] = A eⱼ``), in the
        compute dtype.  ``n`` products: for small problems and tests."""
        return _dense_compiled(self)

    def _dense(self) -> jax.Array:
        flat, unravel = ravel_pytree(self.params)
        eye = jnp.eye(flat.size, dtype=self.compute_dtype)
        apply = self._wrap(self._linear_map())
        columns = jax.vmap(lambda e: ravel_pytree(apply(unravel_compute(self.params, e)))[0])(eye)
        return columns.T

    def damped(self, damping: float | jax.Array) -> CurvatureOperator:
        """``A + λ I`` (added to any damping already there); ``λ`` may be traced."""
        if not isinstance(damping, jax.core.Tracer):
            if isinstance(damping, bool) or np.ndim(damping) != 0 or not np.isrealobj(damping):
                raise TypeError(f"{type(self).__name__}.damped: damping must be a real scalar, got {damping!r}")
            value = float(damping)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{type(self).__name__}.damped: damping must be a finite number >= 0, got {damping!r}")
        return self.tree_unflatten(self.functions, (self.params, self.batch, self.damping + damping))


# The compiled forms of the eager entry points: the operator is a pytree argument (its functions
# static, its params, batch and damping traced), so one executable serves every operator of a
# type, functions and shapes -- a fresh operator per call included.
_matvec_compiled = jax.jit(lambda op, v: op._matvec(v))
_batched_matvec_compiled = jax.jit(lambda op, vs: op._batched_matvec(vs))
_diagonal_compiled = jax.jit(lambda op, key, s: op._diagonal(key, s), static_argnums=2)
_dense_compiled = jax.jit(lambda op: op._dense())


def unravel_compute(like: PyTree, flat: jax.Array) -> PyTree:
    """Unravel ``flat`` into a pytree shaped like ``like`` keeping ``flat``'s dtype (the
    ``ravel_pytree`` unraveller would cast back to the leaves' own dtypes)."""
    leaves, treedef = jax.tree.flatten(like)
    out, start = [], 0
    for leaf in leaves:
        size = int(jnp.size(leaf))
        out.append(flat[start:start + size].reshape(jnp.shape(leaf)))
        start += size
    return jax.tree.unflatten(treedef, out)


def _loss_closure(loss_fn: Callable, batch: PyTree) -> Callable[[PyTree], jax.Array]:
    fn = scalar_fn(loss_fn, "loss_fn")
    return (lambda p: fn(p)) if batch is None else (lambda p: fn(p, batch))


@jax.tree_util.register_pytree_node_class
class HessianOperator(CurvatureOperator):
    """``H v = ∇²L(θ) v`` by forward-over-reverse (``linearize`` of ``grad``)."""

    kind = "hessian"

    def _linear_map(self) -> Callable[[PyTree], PyTree]:
        (loss_fn,) = self.functions
        params = _cast(self.params, self.compute_dtype)
        return jax.linearize(jax.grad(_loss_closure(loss_fn, self.batch)), params)[1]


def _split_batch(name: str, batch: PyTree) -> tuple[Any, Any]:
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(f"{name}: batch must be a pair (inputs, targets), got {type(batch).__name__}")
    return batch[0], batch[1]


def _model_linearization(model_fn: Callable, params: PyTree, x: Any) -> tuple[Any, Callable, Callable]:
    """Outputs ``z``, ``J v`` (linearized model) and ``Jᵀ u`` (its transpose)."""
    z, jvp_fn = jax.linearize(lambda p: model_fn(p, x), params)
    transpose = jax.linear_transpose(jvp_fn, params)
    return z, jvp_fn, lambda u: transpose(u)[0]


@jax.tree_util.register_pytree_node_class
class GGNOperator(CurvatureOperator):
    """``G v = Jᵀ H_ℓ J v``: ``J v`` by the linearized model, ``H_ℓ`` by forward-over-reverse
    on ``loss_of_outputs`` at the outputs, ``Jᵀ`` by transposing the linearization."""

    kind = "ggn"

    def _linear_map(self) -> Callable[[PyTree], PyTree]:
        model_fn, loss_of_outputs = self.functions
        x, y = _split_batch("ggn", self.batch)
        params = _cast(self.params, self.compute_dtype)
        z, jvp_fn, vjp_fn = _model_linearization(model_fn, params, x)
        loss_z = scalar_fn(lambda out: loss_of_outputs(out, y), "loss_of_outputs")
        h_loss = jax.linearize(jax.grad(loss_z), z)[1]
        return lambda v: vjp_fn(h_loss(jvp_fn(v)))


def output_fisher(likelihood: Likelihood, z: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """``u -> F_z u / N`` for outputs ``z`` of shape ``(N, ...)`` (one row per example):
    softmax ``(p ⊙ u - p (pᵀu))`` over the last axis with ``p = softmax(z)``; Bernoulli
    ``σ(z)(1 - σ(z)) u`` elementwise; Gaussian (unit variance) ``u``."""
    n = jnp.shape(z)[0] if jnp.ndim(z) else 1
    if likelihood == "softmax":
        p = jax.nn.softmax(z, axis=-1)
        return lambda u: (p * u - p * jnp.sum(p * u, axis=-1, keepdims=True)) / n
    if likelihood == "bernoulli":
        s = jax.nn.sigmoid(z)
        return lambda u: s * (1 - s) * u / n
    if likelihood == "gaussian":
        return lambda u: u / n
    raise ValueError(f"fisher: likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")


@jax.tree_util.register_pytree_node_class
class FisherOperator(CurvatureOperator):
    """True Fisher ``F v = (1/N) Σᵢ Jᵢᵀ F_z Jᵢ v`` with the closed-form output Fisher
    :func:`output_fisher` (an exact expectation over the model's own ``y``, no sampling)."""

    kind = "fisher"

    def _linear_map(self) -> Callable[[PyTree], PyTree]:
        model_fn, likelihood = self.functions
        x = self.batch[0] if isinstance(self.batch, (tuple, list)) else self.batch
        params = _cast(self.params, self.compute_dtype)
        z, jvp_fn, vjp_fn = _model_linearization(model_fn, params, x)
        f_z = output_fisher(likelihood, z)
        return lambda v: vjp_fn(f_z(jvp_fn(v)))


@jax.tree_util.register_pytree_node_class
class EmpiricalFisherOperator(CurvatureOperator):
    """Empirical Fisher ``F̂ v = (1/N) Σᵢ gᵢ (gᵢᵀ v)``: ``gᵢᵀ v`` for all ``i`` at once by the
    linearized ``vmap`` of ``per_example_loss``, then the transpose sums ``gᵢ`` weighted by them."""

    kind = "empirical_fisher"

    def _linear_map(self) -> Callable[[PyTree], PyTree]:
        (per_example_loss,) = self.functions
        params = _cast(self.params, self.compute_dtype)
        n = jax.tree.leaves(self.batch)[0].shape[0]
        losses = jax.vmap(scalar_fn(per_example_loss, "per_example_loss"), in_axes=(None, 0))
        _, jvp_fn = jax.linearize(lambda p: losses(p, self.batch), params)
        transpose = jax.linear_transpose(jvp_fn, params)
        return lambda v: jax.tree.map(lambda g: g / n, transpose(jvp_fn(v))[0])

    def per_example_gradients(self) -> PyTree:
        """``gᵢ = ∇_θ ℓᵢ(θ)`` stacked on a leading ``N`` axis (``vmap`` of ``grad``), in the compute dtype."""
        (per_example_loss,) = self.functions
        params = _cast(self.params, self.compute_dtype)
        grad = jax.grad(scalar_fn(per_example_loss, "per_example_loss"))
        return jax.vmap(grad, in_axes=(None, 0))(params, self.batch)


def hessian(loss_fn: Callable[..., Any], params: PyTree, batch: PyTree = None) -> HessianOperator:
    """The Hessian ``∇²L(θ)`` of ``loss_fn(params, batch)`` (or ``loss_fn(params)`` when
    ``batch`` is None) as a :class:`CurvatureOperator`.

    >>> import jax.numpy as jnp
    >>> A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
    >>> H = hessian(lambda w: 0.5 * w @ A @ w, jnp.zeros(2))
    >>> H(jnp.array([1.0, 0.0])).tolist(), H.dense().tolist()
    ([3.0, 1.0], [[3.0, 1.0], [1.0, 2.0]])
    """
    _check_callable("hessian", "loss_fn", loss_fn)
    _check_params("hessian", params)
    return HessianOperator((loss_fn,), params, batch)


def ggn(model_fn: Callable[[PyTree, Any], Any], loss_of_outputs: Callable[[Any, Any], Any], params: PyTree,
        batch: tuple[Any, Any]) -> GGNOperator:
    """The generalized Gauss-Newton matrix ``Jᵀ H_ℓ J`` of ``L(θ) = loss_of_outputs(model_fn(θ, x), y)``
    at ``batch = (x, y)``, as a :class:`CurvatureOperator`.

    For least squares on a linear model ``z = X w`` with ``ℓ = ½ mean (z - y)²`` it is ``XᵀX / N``:

    >>> import jax.numpy as jnp
    >>> X, y = jnp.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]), jnp.array([1.0, 2.0, 2.0])
    >>> G = ggn(lambda w, x: x @ w, lambda z, t: 0.5 * jnp.mean((z - t) ** 2), jnp.zeros(2), (X, y))
    >>> bool(jnp.allclose(G.dense(), X.T @ X / 3))
    True
    """
    _check_callable("ggn", "model_fn", model_fn)
    _check_callable("ggn", "loss_of_outputs", loss_of_outputs)
    _check_params("ggn", params)
    _split_batch("ggn", batch)
    return GGNOperator((model_fn, loss_of_outputs), params, tuple(batch))


def fisher(model_fn: Callable[[PyTree, Any], Any], params: PyTree, batch: Any,
           likelihood: Likelihood = "softmax") -> FisherOperator:
    """The true Fisher ``(1/N) Σᵢ Jᵢᵀ F_z Jᵢ`` of the model ``z = model_fn(θ, x)`` under an
    exponential-family ``likelihood`` (``"softmax"`` logits, ``"bernoulli"`` logits,
    ``"gaussian"`` means with unit variance).  ``batch`` is ``x`` or ``(x, y)`` (``y`` unused:
    the true Fisher averages over the model's own predictive distribution).  It equals the
    GGN of the mean negative log-likelihood (softmax/binary cross-entropy, ``½ mean Σ (z - y)²``)."""
    _check_callable("fisher", "model_fn", model_fn)
    _check_params("fisher", params)
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"fisher: likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
    return FisherOperator((model_fn, likelihood), params, batch)


def empirical_fisher(per_example_loss: Callable[[PyTree, Any], Any], params: PyTree,
                     batch: PyTree) -> EmpiricalFisherOperator:
    """The empirical Fisher ``(1/N) Σᵢ gᵢ gᵢᵀ``, ``gᵢ = ∇_θ per_example_loss(θ, exampleᵢ)``, where
    ``batch`` is a pytree of arrays whose leading axis (``N``) indexes the examples (e.g. ``(x, y)``)."""
    _check_callable("empirical_fisher", "per_example_loss", per_example_loss)
    _check_params("empirical_fisher", params)
    leaves = jax.tree.leaves(batch)
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
    if not leaves or len(sizes) != 1 or None in sizes:
        raise ValueError(f"empirical_fisher: batch needs arrays sharing a leading example axis, got leading sizes {sizes}")
    return EmpiricalFisherOperator((per_example_loss,), params, batch)

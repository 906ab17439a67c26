"""Forward mode with rank-one tangents on matrix leaves, exploited where the matrix is multiplied.

A tangent ``V = a bᵀ`` on a matrix parameter ``W`` enters a dense layer as
``X V = (X a) bᵀ``: a matrix-vector product and an outer product, ``O(batch·(m + n))``
instead of the ``O(batch·m·n)`` of ``X @ V`` that ``jax.jvp`` (and XLA) compute from the
materialized ``V``.  :func:`rank_one_jvp` evaluates ``f``'s jaxpr with such factored
tangents: ``dot_general`` (either operand, one contracting dimension, no batch dimensions),
``transpose``, ``convert_element_type`` and nested ``jit`` keep the factors; every other
primitive gets the dense tangent through its own JVP rule (``jax.jvp`` of the primitive), so the
result is always ``∇f·V`` exactly, the saving is wherever the matrix meets a matmul first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.extend.core as jex
import jax.numpy as jnp
from jax import lax

_KEEPS_FACTORS = ("jit", "pjit")


class RankOne(NamedTuple):
    """The tangent ``left ⊗ right`` of a matrix leaf, kept factored."""

    left: jax.Array
    right: jax.Array

    def dense(self) -> jax.Array:
        return self.left[:, None] * self.right[None, :]


Tangent = jax.Array | RankOne | None


def rank_one_jvp(f: Callable[[Any], jax.Array], params: Any, tangents: Sequence[Tangent]) -> tuple[Any, Any]:
    """``(f(θ), ∇f(θ)·v)`` for ``tangents`` aligned with ``jax.tree.leaves(params)``: a dense
    array, a :class:`RankOne` (matrix leaves) or ``None`` (no tangent) per leaf."""
    leaves, treedef = jax.tree.flatten(params)
    closed = jax.make_jaxpr(lambda *ls: f(jax.tree.unflatten(treedef, ls)))(*leaves)
    outs, out_tangents = _eval_jaxpr(closed.jaxpr, closed.consts, leaves, list(tangents))
    out_tangents = [_densify(t) if t is not None else jnp.zeros_like(o) for o, t in zip(outs, out_tangents)]
    return outs[0], out_tangents[0]


def _densify(t: Tangent) -> jax.Array | None:
    return t.dense() if isinstance(t, RankOne) else t


def _eval_jaxpr(jaxpr: jex.Jaxpr, consts: Sequence[Any], primals: Sequence[Any], tangents: Sequence[Tangent]
                ) -> tuple[list[Any], list[Tangent]]:
    env: dict[Any, Any] = {}
    tangent_env: dict[Any, Tangent] = {}

    def read(v: Any) -> Any:
        return v.val if isinstance(v, jex.Literal) else env[v]

    def read_tangent(v: Any) -> Tangent:
        return None if isinstance(v, jex.Literal) else tangent_env.get(v)

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, primals))
    tangent_env.update((v, t) for v, t in zip(jaxpr.invars, tangents) if t is not None)
    for eqn in jaxpr.eqns:
        outs, out_tangents = _jvp_eqn(eqn, [read(v) for v in eqn.invars], [read_tangent(v) for v in eqn.invars])
        env.update(zip(eqn.outvars, outs))
        tangent_env.update((v, t) for v, t in zip(eqn.outvars, out_tangents) if t is not None)
    return [read(v) for v in jaxpr.outvars], [read_tangent(v) for v in jaxpr.outvars]


def _jvp_eqn(eqn: jex.JaxprEqn, primals: list[Any], tangents: list[Tangent]) -> tuple[list[Any], list[Tangent]]:
    prim = eqn.primitive
    bound = prim.get_bind_params(eqn.params)  # jax < 0.5: (subfuns, params); now: params
    subfuns, params = bound if isinstance(bound, tuple) else ((), bound)

    def bind(*args: Any) -> list[Any]:
        out = prim.bind(*subfuns, *args, **params)
        return list(out) if prim.multiple_results else [out]

    if all(t is None for t in tangents):
        return bind(*primals), [None] * len(eqn.outvars)
    if any(isinstance(t, RankOne) for t in tangents):
        if prim.name == "dot_general":
            factored = _dot_general(primals, tangents, params, eqn.outvars[0].aval.dtype)
            if factored is not None:
                return bind(*primals), [factored]
        elif prim.name == "transpose" and tuple(params["permutation"]) == (1, 0):
            return bind(*primals), [RankOne(tangents[0].right, tangents[0].left)]
        elif prim.name == "convert_element_type":
            t = tangents[0]
            return bind(*primals), [RankOne(t.left.astype(params["new_dtype"]), t.right.astype(params["new_dtype"]))]
        elif prim.name in _KEEPS_FACTORS:
            inner = eqn.params["jaxpr"]
            return _eval_jaxpr(inner.jaxpr, inner.consts, primals, tangents)
    return _dense_jvp(bind, primals, [_densify(t) for t in tangents])


def _dense_jvp(bind: Callable[..., list[Any]], primals: list[Any], tangents: list[jax.Array | None]
               ) -> tuple[list[Any], list[Tangent]]:
    """The primitive's own JVP, differentiating only the inputs that carry a tangent."""
    moving = [i for i, t in enumerate(tangents) if t is not None]

    def partial_bind(*moved: Any) -> list[Any]:
        args = list(primals)
        for i, value in zip(moving, moved):
            args[i] = value
        return bind(*args)

    outs, out_tangents = jax.jvp(partial_bind, [primals[i] for i in moving], [tangents[i] for i in moving])
    return outs, [None if t.dtype == jax.dtypes.float0 else t for t in out_tangents]


def _dot_general(primals: list[Any], tangents: list[Tangent], params: dict[str, Any], out_dtype: Any
                 ) -> jax.Array | None:
    """``d(L·R) = dL·R + L·dR`` with a factored ``dL`` or ``dR``; ``None`` (use the dense rule)
    for batch dimensions or a matrix contracted on both axes."""
    (contract_l, contract_r), (batch_l, batch_r) = params["dimension_numbers"]
    if batch_l or batch_r or len(contract_l) != 1:
        return None
    lhs, rhs = primals
    dot = dict(precision=params.get("precision"), preferred_element_type=params.get("preferred_element_type"))
    total = None
    for side, t in enumerate(tangents):
        if t is None:
            continue
        if isinstance(t, RankOne):
            contracted = (contract_l if side == 0 else contract_r)[0]
            along, free = (t.left, t.right) if contracted == 0 else (t.right, t.left)
            if side == 1:  # L · (a bᵀ): (L a) ⊗ b, the free factor last
                u = lax.dot_general(lhs, along, (((contract_l[0],), (0,)), ((), ())), **dot)
                term = u[..., None] * free
            else:  # (a bᵀ) · R: a ⊗ (bᵀ R), the free factor first
                u = lax.dot_general(along, rhs, (((0,), (contract_r[0],)), ((), ())), **dot)
                term = jnp.expand_dims(free, tuple(range(1, 1 + u.ndim))) * u[None]
        else:
            args = [t, rhs] if side == 0 else [lhs, t]
            term = lax.dot_general(*args, params["dimension_numbers"], **dot)
        term = term.astype(out_dtype)
        total = term if total is None else total + term
    return total

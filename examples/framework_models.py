"""Curvature of Flax NNX and Equinox models with gradkit: HVP, top Hessian eigenvalues, Newton-CG.

gradkit works on any pytree, so a framework model enters through its parameter pytree and a
pure loss of it:

* Flax NNX: ``graphdef, params = nnx.split(model, nnx.Param)``,
  ``loss(params) = CE(nnx.merge(graphdef, params)(x), y)``;
* Equinox: ``params, static = eqx.partition(model, eqx.is_inexact_array)``,
  ``loss(params) = CE(vmap(eqx.combine(params, static))(x), y)``.

For each: one HVP ``H v`` (``gradkit.hvp``, forward-over-reverse), its agreement with the dense
Hessian ``jax.hessian`` of the flattened parameters (small model), the top-3 eigenvalues by
Lanczos (``gradkit.linalg.lanczos_eigenvalues`` on ``gradkit.hvp_operator``), and Newton-CG
(``gradkit.optim.minimize(loss, params, newton_cg())``) on the model's own parameter pytree.
A framework that is not installed is skipped (``pip install flax equinox``).

    python examples/framework_models.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from typing import Any
from collections.abc import Callable

import jax
import jax.flatten_util
import jax.numpy as jnp
import optax

import gradkit as gk
from gradkit.linalg import lanczos_eigenvalues
from gradkit.optim import minimize, newton_cg

Problem = tuple[Callable[[Any], jax.Array], Any]


def synthetic_data(batch: int, n_in: int, n_classes: int, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inputs ``x ~ N(0, I)`` and labels from a random linear teacher (so a small MLP can fit them)."""
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, (batch, n_in))
    y = jnp.argmax(x @ jax.random.normal(kw, (n_in, n_classes)), axis=-1)
    return x, y


def _objective(logits_fn: Callable[[Any], jax.Array], y: jax.Array, l2: float) -> Callable[[Any], jax.Array]:
    """``L(θ) = mean CE(logits(θ), y) + (l2 / 2) ||θ||²`` (the L2 term makes the minimum strict)."""

    def loss(params: Any) -> jax.Array:
        ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_fn(params), y))
        return ce + 0.5 * l2 * sum(jnp.sum(p**2) for p in jax.tree.leaves(params))

    return loss


def nnx_problem(n_in: int = 4, width: int = 8, n_classes: int = 3, batch: int = 64, l2: float = 1e-2,
                seed: int = 0) -> Problem:
    """A Flax NNX MLP ``n_in → width (tanh) → n_classes``: ``(loss(params), params)`` with
    ``params`` the ``nnx.State`` of its ``nnx.Param`` variables."""
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.hidden = nnx.Linear(n_in, width, rngs=rngs)
            self.out = nnx.Linear(width, n_classes, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.out(jnp.tanh(self.hidden(x)))

    graphdef, params = nnx.split(MLP(nnx.Rngs(seed)), nnx.Param)
    x, y = synthetic_data(batch, n_in, n_classes, jax.random.PRNGKey(seed + 1))
    return _objective(lambda p: nnx.merge(graphdef, p)(x), y, l2), params


def equinox_problem(n_in: int = 4, width: int = 8, n_classes: int = 3, batch: int = 64, l2: float = 1e-2,
                    seed: int = 0) -> Problem:
    """An Equinox ``eqx.nn.MLP`` (one tanh hidden layer): ``(loss(params), params)`` with
    ``params`` its inexact-array leaves (``eqx.partition``)."""
    import equinox as eqx

    model = eqx.nn.MLP(n_in, n_classes, width, depth=1, activation=jnp.tanh, key=jax.random.PRNGKey(seed))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    x, y = synthetic_data(batch, n_in, n_classes, jax.random.PRNGKey(seed + 1))
    return _objective(lambda p: jax.vmap(eqx.combine(p, static))(x), y, l2), params


def dense_hvp_error(loss: Callable[[Any], jax.Array], params: Any, v: Any) -> float:
    """``max |hvp(L, θ, v) - ∇²L(θ) v|`` with ``∇²L`` the dense ``jax.hessian`` of the flat parameters."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    dense = jax.hessian(lambda f: loss(unravel(f)))(flat)
    matrix_free = jax.flatten_util.ravel_pytree(gk.hvp(loss, params, v))[0]
    return float(jnp.max(jnp.abs(matrix_free - dense @ jax.flatten_util.ravel_pytree(v)[0])))


def study(name: str, problem: Problem, lanczos_steps: int) -> None:
    loss, params = problem
    n = jax.flatten_util.ravel_pytree(params)[0].size
    v = jax.tree.map(jnp.ones_like, params)
    print(f"== {name}: {n} parameters, pytree {type(params).__module__}.{type(params).__name__}")
    print(f"   hvp vs dense jax.hessian: max |difference| = {dense_hvp_error(loss, params, v):.2e}")
    top = jax.jit(lambda p: lanczos_eigenvalues(gk.hvp_operator(loss, p), p, jax.random.PRNGKey(0), k=3,
                                                 num_steps=lanczos_steps).eigenvalues)(params)
    print(f"   top-3 Hessian eigenvalues at init (Lanczos, {lanczos_steps} steps): {[round(float(e), 5) for e in top]}")
    start = time.perf_counter()
    res = jax.block_until_ready(jax.jit(lambda p: minimize(loss, p, newton_cg(), gtol=1e-6, maxiter=100))(params))
    seconds = time.perf_counter() - start
    print(f"   Newton-CG: loss {float(loss(params)):.5f} -> {float(res.value):.6f}, ||grad|| {float(res.grad_norm):.1e}, "
          f"{int(res.iterations)} iterations, converged={bool(res.converged)}, {seconds:.2f} s (with compile); "
          f"result pytree {type(res.params).__name__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller models and fewer Lanczos steps")
    args = parser.parse_args()
    sizes = dict(width=6, batch=32) if args.quick else dict(width=16, batch=256)
    steps = 12 if args.quick else 30
    for name, module, build in (("Flax NNX", "flax", nnx_problem), ("Equinox", "equinox", equinox_problem)):
        if importlib.util.find_spec(module) is None:
            print(f"== {name}: skipped ({module} is not installed; pip install flax equinox)")
            continue
        study(name, build(**sizes), steps)


if __name__ == "__main__":
    main()

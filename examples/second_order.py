"""Second order, from the seed's Newton steps to the spectrum of a network's Hessian.

1. Seed 000 / 003: Newton's method for roots (x = 0.6972243622680052 from x0 = 2) and for
   minima (g(x) = eˣ - log x: x* = Ω = 0.5671432904...; the seed-003 example from (4, 4),
   Newton vs gradient descent on the contours).
2. Chained Rosenbrock (n = 1000): Newton-CG (Armijo), Newton-CG (Wolfe), trust-region
   Newton-CG and L-BFGS (optax) to ||∇f|| <= 1e-6: iterations, HVPs, time.
3. A small MLP on synthetic data: Hessian-free (GGN) vs Adam, and the Hessian's spectrum at
   the end — top eigenvalues by Lanczos, trace by Hutch++, SLQ density (plotted).

    python examples/second_order.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, NamedTuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradkit as gk
from gradkit import landscapes, plot
from gradkit.linalg import hutch_plus_plus, lanczos_eigenvalues, slq_density
from gradkit.runs.costs import COST_UNITS
from gradkit.optim import hessian_free, minimize, newton, newton_cg, newton_cg_trust_region, newton_root


def seed003(p: jax.Array) -> jax.Array:
    """The seed-003 Newton example ``x⁴ + 0.9y⁴ + 4x² + 2y² - xy - 0.2x²y`` (points on the last axis)."""
    x, y = p[..., 0], p[..., 1]
    return x**4 + 0.9 * y**4 + 4 * x**2 + 2 * y**2 - x * y - 0.2 * x**2 * y


def seed_newton(out: str) -> None:
    root = newton_root(lambda x: x**4 - 8 * x**3 + 21 * x**2 - 24 * x + 9, 2.0)
    print(f"root of x^4 - 8x^3 + 21x^2 - 24x + 9 from x0 = 2: {float(root.x):.16f} "
          f"({int(root.iterations)} iterations; seed: 0.6972243622680052)")
    g = lambda x: jnp.exp(x[0]) - jnp.log(x[0])
    result = minimize(g, jnp.array([1.0]), newton(), gtol=1e-14)
    print(f"argmin e^x - log x: {float(result.params[0]):.16f} in {int(result.iterations)} Newton steps "
          "(the omega constant 0.5671432904097838)")

    fn = seed003
    paths = {}
    for name, opt, steps in [("Newton", newton(), 8), ("GD lr 0.01", gk.optim.sgd(0.01), 200)]:
        x, state, path = jnp.array([4.0, 4.0]), opt.init(jnp.zeros(2)), [np.array([4.0, 4.0])]
        for _ in range(steps):
            u, state = optax.with_extra_args_support(opt).update(jax.grad(fn)(x), state, x, value_fn=fn)
            x = x + u
            path.append(np.asarray(x))
        paths[name] = np.array(path)
    print("seed 003, Newton from (4, 4):", np.round(paths["Newton"][1:4], 4).tolist(), "...",
          f"|x_8| = {np.linalg.norm(paths['Newton'][-1]):.1e}")
    land = landscapes.Landscape(name="seed 003", fn=fn, formula="x^4 + 0.9y^4 + 4x^2 + 2y^2 - xy - 0.2x^2y", dim=2,
                                domain=((-1.0, 4.5), (-1.0, 4.5)), minima=((0.0, 0.0),), min_value=0.0,
                                log_scale=True)
    ax = plot.plot_landscape(land, paths)
    print("wrote", plot.save(ax, f"{out}/second_order_seed003.png"))


def rosenbrock(x: jax.Array) -> jax.Array:
    return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosenbrock_race(n: int) -> None:
    x0 = jnp.asarray(np.tile([-1.2, 1.0], n // 2))
    print(f"\nchained Rosenbrock n = {n}, to ||grad|| <= 1e-6:")
    print("| method | iterations | HVPs | f | seconds (compiled) |\n|---|---|---|---|---|")
    for name, opt in [("Newton-CG (Armijo)", newton_cg()), ("Newton-CG (Wolfe)", newton_cg(line_search="wolfe")),
                      ("trust-region Newton-CG", newton_cg_trust_region()), ("L-BFGS (optax)", optax.lbfgs())]:
        solve = jax.jit(lambda x, opt=opt: minimize(rosenbrock, x, opt, gtol=1e-6, maxiter=50_000))
        jax.block_until_ready(solve(x0))
        start = time.perf_counter()
        result = jax.block_until_ready(solve(x0))
        seconds = time.perf_counter() - start
        hvps = int(getattr(result.state, "hvp_count", 0))
        print(f"| {name} | {int(result.iterations)} | {hvps if hvps else '-'} | {float(result.value):.2e} | "
              f"{seconds:.3f} |")


def mlp_problem(n_samples: int = 512) -> tuple[Any, Callable[..., jax.Array], Callable[..., jax.Array], Any]:
    """A 4-32-32-1 tanh MLP regressing ``y = sin(2 x₁) + x₂ x₃`` on ``n_samples`` Gaussian inputs:
    ``(params, model_fn, loss_fn, value_fn)`` with ``value_fn(p) = loss_fn(model_fn(p)) = ½ mean (ŷ - y)²``."""
    kx, kp = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, (n_samples, 4))
    y = (jnp.sin(2 * x[:, :1]) + x[:, 1:2] * x[:, 2:3])
    sizes = [4, 32, 32, 1]
    keys = jax.random.split(kp, len(sizes) - 1)
    params = [{"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
              for k, m, n in zip(keys, sizes[:-1], sizes[1:])]

    def model_fn(p: Any) -> jax.Array:
        h = x
        for layer in p[:-1]:
            h = jnp.tanh(h @ layer["w"] + layer["b"])
        return h @ p[-1]["w"] + p[-1]["b"]

    loss_fn = lambda out: 0.5 * jnp.mean((out - y) ** 2)
    value_fn = lambda p: loss_fn(model_fn(p))
    return params, model_fn, loss_fn, value_fn


class CostCurve(NamedTuple):
    """A loss curve on the cost axis: ``cost[k]`` gradient-equivalents spent before ``loss[k]``
    (``cost[0] = 0``, the start), after ``steps`` optimizer steps."""

    cost: np.ndarray
    loss: np.ndarray
    steps: int


def hf_cost(hvp_counts: np.ndarray) -> np.ndarray:
    """Gradient-equivalents after each Hessian-free step: ``c_k = k · grad + hvp · H_k``, with
    ``H_k`` the GGN products so far (``HessianFreeState.hvp_count``) and the units of
    ``gradkit.runs.costs.COST_UNITS`` (grad 1, HVP 2): one gradient per step plus 2 per product."""
    hvp_counts = np.asarray(hvp_counts, dtype=np.float64)
    steps = np.arange(len(hvp_counts), dtype=np.float64)
    return steps * COST_UNITS["grad"] + COST_UNITS["hvp"] * hvp_counts


def hf_vs_adam(hf_steps: int, adam_steps: int, n_samples: int = 512, cg_maxiter: int = 100
               ) -> tuple[dict[str, CostCurve], Any, Callable[..., jax.Array]]:
    """Hessian-free (GGN, ``cg_maxiter`` CG iterations at most) and Adam (lr 3e-3) from the same
    start on :func:`mlp_problem`; each loss curve on the cost axis (:func:`hf_cost` for HF,
    ``c_k = k · grad`` for Adam: one gradient per step).  Returns ``(curves, HF params, value_fn)``."""
    params, model_fn, loss_fn, value_fn = mlp_problem(n_samples)
    hf = hessian_free(1.0, cg_maxiter=cg_maxiter)
    hf_step = jax.jit(lambda p, s: hf.update(jax.grad(value_fn)(p), s, p, value_fn=value_fn, model_fn=model_fn,
                                             loss_fn=loss_fn))
    p, s = params, hf.init(params)
    loss_hf, hvps = [float(value_fn(params))], [0]
    for _ in range(hf_steps):
        u, s = hf_step(p, s)
        p = optax.apply_updates(p, u)
        loss_hf.append(float(value_fn(p)))
        hvps.append(int(s.hvp_count))
    adam = optax.adam(3e-3)

    @jax.jit
    def adam_run(q0: Any) -> jax.Array:
        def body(carry: Any, _: Any) -> tuple[Any, jax.Array]:
            q, st = carry
            u, st = adam.update(jax.grad(value_fn)(q), st, q)
            q = optax.apply_updates(q, u)
            return (q, st), value_fn(q)
        return jax.lax.scan(body, (q0, adam.init(q0)), None, length=adam_steps)[1]

    loss_adam = np.concatenate([[float(value_fn(params))], np.asarray(adam_run(params))])
    curves = {
        "Hessian-free (GGN)": CostCurve(hf_cost(np.asarray(hvps)), np.asarray(loss_hf), hf_steps),
        "Adam (lr 3e-3)": CostCurve(np.arange(adam_steps + 1) * COST_UNITS["grad"], loss_adam, adam_steps),
    }
    return curves, p, value_fn


CURVE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def draw_cost_curves(curves: dict[str, CostCurve], ax: Any) -> Any:
    """Each loss curve against gradient-equivalents in its own colour, log loss axis, limits
    spanning every curve's finite points; the legend says how many steps each curve took."""
    for colour, (name, curve) in zip(CURVE_COLOURS, curves.items()):
        ax.plot(curve.cost, curve.loss, color=colour, marker="o" if curve.steps <= 30 else None, markersize=3,
                label=f"{name}: {curve.steps} steps, {curve.cost[-1]:.0f} grad-eq.")
    finite = [c.loss[np.isfinite(c.loss) & (c.loss > 0)] for c in curves.values()]
    lo, hi = min(float(f.min()) for f in finite), max(float(f.max()) for f in finite)
    ax.set_yscale("log")
    ax.set_ylim(lo / 1.5, hi * 1.5)
    ax.set_xlim(0, max(float(c.cost[-1]) for c in curves.values()) * 1.02)
    ax.set_xlabel("cost: gradient-equivalents (gradient 1, Hessian/GGN-vector product 2)")
    ax.set_ylabel("training loss ½ mean (ŷ - y)²")
    ax.set_title("MLP 4-32-32-1: loss per unit of compute", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    return ax


def mlp_picture(curves: dict[str, CostCurve], density: Any = None) -> Any:
    """The figure of ``second_order_mlp.png``: the cost curves, and the SLQ spectral density at the
    HF solution beside them when ``density`` is given."""
    plt = plot._pyplot()
    fig, axes = plt.subplots(1, 2 if density is not None else 1, figsize=(12, 4.4) if density is not None else (6.4, 4.4),
                             squeeze=False, layout="constrained")
    draw_cost_curves(curves, axes[0, 0])
    if density is not None:
        plot.plot_spectral_density(density, ax=axes[0, 1], label="SLQ density at the HF solution")
        axes[0, 1].set_title("Hessian spectrum at the Hessian-free solution", fontsize=10)
    return fig


def mlp_spectrum(out: str, quick: bool) -> None:
    hf_steps, adam_steps = (10, 300) if quick else (60, 3000)
    curves, p, value_fn = hf_vs_adam(hf_steps, adam_steps)
    hf, adam = curves.values()
    print(f"\nMLP 4-32-32-1 regression: Hessian-free {hf_steps} steps ({hf.cost[-1]:.0f} gradient-equivalents) -> "
          f"{hf.loss[-1]:.2e};  Adam {adam_steps} steps ({adam.cost[-1]:.0f} gradient-equivalents) -> "
          f"{adam.loss[-1]:.2e}")

    op = gk.hvp_operator(value_fn, p)
    top = lanczos_eigenvalues(op, p, jax.random.PRNGKey(1), k=3, num_steps=60)
    trace = hutch_plus_plus(op, p, jax.random.PRNGKey(2), 300)
    density = slq_density(op, p, jax.random.PRNGKey(3), num_probes=4 if quick else 16, num_steps=60)
    print(f"Hessian at the HF solution: top eigenvalues {np.round(np.asarray(top.eigenvalues), 4).tolist()}, "
          f"trace (Hutch++) {float(trace.estimate):.4f}")
    print("wrote", plot.save(mlp_picture(curves, density), f"{out}/second_order_mlp.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller problems (CI)")
    parser.add_argument("--out", default="gradkit-out", help="folder for the PNGs (default gradkit-out)")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_enable_x64", True)
    seed_newton(args.out)
    rosenbrock_race(100 if args.quick else 1000)
    mlp_spectrum(args.out, args.quick)


if __name__ == "__main__":
    main()

"""The edge of stability (Cohen et al. 2021, 2022), measured with gradkit.curvature.

Full-batch gradient descent on a small tanh MLP (3-16-16-1) fit by mean squared error to the
Advertising data shipped with gradkit (features and sales standardized).  The sharpness
λ_max(∇²L) first rises (progressive sharpening) and then hovers at GD's stability threshold
2/η instead of exceeding it: the edge of stability.  Adam's preconditioned sharpness
λ_max(P⁻¹∇²L) (P Adam's exact preconditioner, bias corrections and ε included) does the same
against its threshold (2 + 2β₁)/((1 - β₁)η) = 38/η for β₁ = 0.9.

Each run is one compiled ``lax.scan`` with a :class:`gradkit.curvature.CurvatureTracker`
inside; the learning rate is a traced argument, so the three GD runs share one compilation
(and the three Adam runs another).

    python examples/edge_of_stability.py [--quick] [--out DIR]   (writes DIR/edge_of_stability.png, DIR =
    gradkit-out by default; an --out ending in .png is the file itself)
"""

from __future__ import annotations

import argparse
from pathlib import Path
import os
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradkit import curvature, data, models

PyTree = Any
GD_RATES = (0.2, 0.25, 0.3)
ADAM_RATES = (0.01, 0.02, 0.03)
B1 = 0.9


def advertising_problem(width: int = 16, seed: int = 0) -> tuple[Callable, PyTree, tuple[jax.Array, jax.Array]]:
    """``(loss, params0, batch)``: ``L(θ) = ½ mean (f(x) - y)²`` for a tanh MLP 3-width-width-1
    on the standardized Advertising data (200 examples, full batch)."""
    ds = data.load_advertising(np.float32)
    x = (ds.features - ds.features.mean(0)) / ds.features.std(0)
    y = (ds.targets - ds.targets.mean()) / ds.targets.std()
    model = models.mlp([3, width, width, 1], activation="tanh")

    def loss(params: PyTree, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
        return 0.5 * jnp.mean((model.apply(params, batch[0])[:, 0] - batch[1]) ** 2)

    return loss, model.init(jax.random.PRNGKey(seed)), (jnp.asarray(x), jnp.asarray(y))


def make_runner(loss: Callable, make_optimizer: Callable[[jax.Array], optax.GradientTransformation],
                tracker: curvature.CurvatureTracker, steps: int) -> Callable:
    """``run(params, batch, learning_rate, key) -> (tracker_state, losses)``: ``steps`` full-batch
    steps of ``make_optimizer(learning_rate)``, the tracker called before every update; jitted
    once (the learning rate is traced)."""

    @jax.jit
    def run(params: PyTree, batch: Any, learning_rate: jax.Array, key: jax.Array) -> tuple:
        optimizer = make_optimizer(learning_rate)

        def body(carry: tuple, step: jax.Array) -> tuple:
            params, opt_state, tstate = carry
            tstate = tracker.update(tstate, step, params, batch, opt_state)
            value, grads = jax.value_and_grad(loss)(params, batch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, tstate), value

        carry = (params, optimizer.init(params), tracker.init(params, key))
        (_, _, tstate), values = jax.lax.scan(body, carry, jnp.arange(steps))
        return tstate, values

    return run


def sharpness_runs(rates: tuple[float, ...], steps: int, every: int, *, adam: bool = False, width: int = 16,
                   lanczos_steps: int = 20) -> dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each learning rate: ``(steps, sharpness, losses)`` — GD's λ_max(H), or with ``adam``
    Adam's preconditioned sharpness λ_max(P⁻¹H) — recorded every ``every`` steps."""
    loss, params, batch = advertising_problem(width)
    tracker = curvature.CurvatureTracker(
        loss, every=every, lanczos_steps=lanczos_steps, trace_matvecs=0, max_records=-(-steps // every),
        adam=curvature.AdamPreconditioner(b1=B1) if adam else None)
    make = (lambda lr: optax.adam(lr, b1=B1)) if adam else optax.sgd
    run = make_runner(loss, make, tracker, steps)
    out = {}
    for rate in rates:
        tstate, values = run(params, batch, jnp.asarray(rate, jnp.float32), jax.random.PRNGKey(1))
        records = tracker.records(tstate)
        value = records.preconditioned_sharpness if adam else records.sharpness
        out[rate] = (records.steps, value, np.asarray(values))
    return out


def plot(gd: dict, adam: dict, path: str) -> None:
    """Two panels: GD's sharpness with the 2/η lines, Adam's preconditioned sharpness with 38/η."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    panels = ((axes[0], gd, lambda r: 2 / r, "2/η", "GD: sharpness λ_max(H)"),
              (axes[1], adam, lambda r: curvature.adam_threshold(r, B1), "38/η",
               "Adam (β₁ = 0.9): preconditioned sharpness λ_max(P⁻¹H)"))
    for ax, runs, threshold, label, title, drop_first in ((*panels[0], False), (*panels[1], True)):
        top = 0.0
        for color, (rate, (steps, value, _)) in zip(colors, runs.items()):
            keep = (steps > 0) if drop_first else (steps >= 0)  # Adam's P at step 0: one gradient, off the scale
            ax.plot(steps[keep], value[keep], color=color, lw=1.6, label=f"η = {rate:g}")
            ax.axhline(threshold(rate), color=color, ls="--", lw=1.1, label=f"{label} = {threshold(rate):.4g}")
            top = max(top, threshold(rate), float(np.nanmax(value[keep])))
        ax.set_ylim(0, 1.25 * top)
        ax.set_xlabel("step")
        ax.set_ylabel("sharpness")
        ax.set_title(title, fontsize=11)
        ax.legend(loc="upper center", ncol=3, fontsize=8, frameon=False)
        ax.grid(alpha=0.3)
    fig.suptitle("Edge of stability: full-batch training of a tanh MLP on the Advertising data", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize(name: str, runs: dict, threshold: Callable[[float], float]) -> None:
    print(f"| {name} | η | threshold | start | max | mean over the last third (/threshold) | final loss |")
    print("|---|---|---|---|---|---|---|")
    for rate, (steps, value, losses) in runs.items():
        value = value[steps > 0] if name == "Adam" else value  # Adam's step-0 P comes from one gradient
        tail = value[-max(1, len(value) // 3):]
        print(f"| {name} | {rate:g} | {threshold(rate):.4g} | {value[0]:.4g} | "
              f"{np.nanmax(value):.4g} | {np.mean(tail):.4g} ({np.mean(tail) / threshold(rate):.3f}) | "
              f"{losses[-1]:.3g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    parser.add_argument("--out", default="gradkit-out",
                        help="folder for edge_of_stability.png (default gradkit-out; a path ending in .png is the file)")
    args = parser.parse_args()
    path = Path(args.out) if args.out.endswith(".png") else Path(args.out) / "edge_of_stability.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    quick = args.quick or os.environ.get("GRADKIT_QUICK") == "1"
    steps, every = (600, 20) if quick else (2500, 10)
    gd = sharpness_runs(GD_RATES, steps, every)
    adam = sharpness_runs(ADAM_RATES, steps, every, adam=True)
    summarize("GD", gd, lambda r: 2 / r)
    summarize("Adam", adam, lambda r: curvature.adam_threshold(r, B1))
    plot(gd, adam, str(path))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

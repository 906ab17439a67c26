"""Forward gradient descent vs backprop SGD (Baydin et al. 2022, seed 002).

1. 2D: Rosenbrock and Beale, SGD vs FGD (one Rademacher tangent), same learning rate,
   several tangent seeds; trajectories over the contours.
2. Softmax regression and an MLP on scikit-learn's digits (8x8 images, shipped with
   scikit-learn; a synthetic stand-in if it is not installed): same learning-rate
   schedule, mean over seeds of the loss vs step and vs wall time.

    python examples/forward_gradient.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.ticker import FormatStrFormatter

from gradkit import landscapes, optim, plot, runs


def load_digits() -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:  # a synthetic stand-in with the same shapes
        rng = np.random.default_rng(0)
        centers = rng.normal(size=(10, 64))
        y = rng.integers(0, 10, 1797)
        return (centers[y] + rng.normal(size=(1797, 64))).astype(np.float32), y, "synthetic digits-like data"
    data = sk_digits()
    return (data.data / 16.0).astype(np.float32), data.target, "scikit-learn digits"


def softmax_regression(key, dims):
    return {"w": jnp.zeros((dims[0], dims[-1])), "b": jnp.zeros(dims[-1])}


def mlp(key, dims):
    keys = jax.random.split(key, len(dims) - 1)
    return [{"w": jax.random.normal(k, (m, n)) * jnp.sqrt(2.0 / m), "b": jnp.zeros(n)}
            for k, m, n in zip(keys, dims[:-1], dims[1:])]


def logits_of(params, x):
    if isinstance(params, dict):
        return x @ params["w"] + params["b"]
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def train(loss, params, make_opt, steps, keys):
    """One jitted scan per key, compiled once (the key is a traced argument of ``make_opt(key)``);
    returns the loss per step for every key, ``(len(keys), steps)``, and the mean wall time per step."""
    @jax.jit
    def go(params, key):
        opt = make_opt(key)

        def step(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        return jax.lax.scan(step, (params, opt.init(params)), length=steps)[1]

    jax.block_until_ready(go(params, keys[0]))  # compile
    losses, seconds = [], []
    for key in keys:
        start = time.perf_counter()
        losses.append(np.asarray(jax.block_until_ready(go(params, key))))
        seconds.append((time.perf_counter() - start) / steps)
    return np.stack(losses), float(np.mean(seconds))


def two_d(out: str, steps: int, seeds: int) -> None:
    for name, start, lr in [("rosenbrock", (-1.2, 1.0), 1e-3), ("beale", (1.0, 1.5), 1e-2)]:
        f = landscapes.get(name)
        starts = jnp.tile(jnp.asarray([start]), (seeds, 1))
        keys = jax.random.split(jax.random.PRNGKey(0), seeds)
        sgd = runs.run(f, optim.sgd(lr), starts[:1], steps, record="trajectory")
        fgd = runs.run_batch(f, lambda key: optim.forward_gradient_descent(optim.sgd(lr), key, objective=f,
                                                                           distribution="rademacher"),
                             starts, steps, {"key": keys}, record="trajectory")
        paths = {f"SGD lr {lr:g}": sgd.trajectory[0]}
        paths.update({f"FGD seed {i}": fgd.trajectory[i] for i in range(min(seeds, 3))})
        ax = plot.plot_landscape(f, paths, title=f"{name}: SGD vs forward gradient descent, {steps} steps")
        path = plot.save(ax, f"{out}/fgd_{name}.png")
        print(f"{name}: f after {steps} steps  SGD {sgd.values[0, -1]:.3e}   FGD mean over {seeds} seeds "
              f"{np.mean(fgd.values[:, -1]):.3e}  (wrote {path})")


class DigitsCurves(NamedTuple):
    """One model's runs: backprop SGD's loss per step and seconds per step, and forward gradient's
    loss per step for every tangent seed ``(seeds, steps)`` and its mean seconds per step."""

    sgd: np.ndarray
    sgd_seconds: float
    fgd: np.ndarray
    fgd_seconds: float


DIGITS_MODELS = ("softmax regression", "MLP 64-32-10")


def classification_curves(steps: int, seeds: int, models: tuple[str, ...] = DIGITS_MODELS,
                          n_samples: int | None = None,
                          data: tuple[np.ndarray, np.ndarray, str] | None = None) -> tuple[dict[str, DigitsCurves], str]:
    """Full-batch softmax cross-entropy ``L = -mean Σ_c y_c log softmax(f(x))_c`` on the digits
    (or ``data = (x, y, source)``; the first ``n_samples``), trained by SGD and by forward gradient
    descent (rank-one tangents, ``seeds`` tangent seeds), same cosine learning-rate schedule from
    0.05 over ``steps`` steps."""
    x, y, source = load_digits() if data is None else data
    x, labels = jnp.asarray(x[:n_samples]), jax.nn.one_hot(jnp.asarray(y[:n_samples]), 10)
    schedule = optax.cosine_decay_schedule(0.05, steps)  # FGD variance grows with n: keep lr modest
    builders = {"softmax regression": (softmax_regression, [64, 10]), "MLP 64-32-10": (mlp, [64, 32, 10])}
    curves = {}
    for model_name in models:
        init, dims = builders[model_name]
        params = init(jax.random.PRNGKey(0), dims)

        def loss(p):
            return -jnp.mean(jnp.sum(labels * jax.nn.log_softmax(logits_of(p, x)), axis=-1))

        sgd_losses, sgd_time = train(loss, params, lambda key: optim.sgd(schedule), steps, [jax.random.PRNGKey(0)])
        fgd_losses, fgd_time = train(loss, params, lambda key: optim.forward_gradient_descent(
            optim.sgd(schedule), key, objective=loss, distribution="rank_one"), steps,
            [jax.random.PRNGKey(s) for s in range(seeds)])
        curves[model_name] = DigitsCurves(sgd_losses[0], sgd_time, fgd_losses, fgd_time)
    return curves, source


def digits_picture(curves: dict[str, DigitsCurves]) -> Any:
    """One row per model: loss vs step (left) and vs wall time (right); backprop SGD in blue, forward
    gradient in orange as the mean over seeds with the min-max band of the seeds.  One legend
    under the figure; constrained layout, so the panels fill the figure."""
    plt = plot._pyplot()
    fig, axes = plt.subplots(len(curves), 2, figsize=(11, 3.3 * len(curves) + 0.6), squeeze=False,
                             layout="constrained")
    for row, (model_name, c) in enumerate(curves.items()):
        steps_axis = np.arange(len(c.sgd))
        seeds = len(c.fgd)
        for ax, scale, label in ((axes[row, 0], 1.0, "step"), (axes[row, 1], None, "wall time (ms)")):
            x_sgd = steps_axis if scale else steps_axis * c.sgd_seconds * 1e3
            x_fgd = steps_axis if scale else steps_axis * c.fgd_seconds * 1e3
            ax.plot(x_sgd, c.sgd, color="tab:blue", label="backprop SGD")
            ax.plot(x_fgd, c.fgd.mean(axis=0), color="tab:orange", label=f"forward gradient, rank-one: mean of {seeds} seeds")
            ax.fill_between(x_fgd, c.fgd.min(axis=0), c.fgd.max(axis=0), color="tab:orange", alpha=0.25, linewidth=0,
                            label=f"forward gradient: min-max over the {seeds} seeds")
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.1f"))
            ax.yaxis.set_minor_formatter(FormatStrFormatter("%.1f"))
            ax.set_xlabel(label)
            ax.set_ylabel("training loss")
            ax.set_title(f"{model_name}: loss vs {label.split(' (')[0]}", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return fig


def classification(out: str, steps: int, seeds: int) -> None:
    curves, source = classification_curves(steps, seeds)
    print(f"\n{source}: full batch")
    for model_name, c in curves.items():
        print(f"  {model_name:<20} final loss  SGD {c.sgd[-1]:.4f}  FGD (mean of {seeds}) {c.fgd.mean(axis=0)[-1]:.4f}   "
              f"time/step  SGD {c.sgd_seconds * 1e6:.0f} us  FGD {c.fgd_seconds * 1e6:.0f} us")
    print("  wrote", plot.save(digits_picture(curves), f"{out}/fgd_digits.png"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps and seeds (CI)")
    parser.add_argument("--out", default="gradkit-out", help="folder for the PNGs (default gradkit-out)")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    steps, seeds = (200, 2) if args.quick else (2000, 5)
    two_d(args.out, steps, seeds)
    classification(args.out, steps, seeds)


if __name__ == "__main__":
    main()

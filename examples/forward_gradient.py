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

import jax
import jax.numpy as jnp
import numpy as np
import optax

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


def train(loss, params, opt, steps):
    """One jitted scan; returns the loss per step and the wall time per step."""
    @jax.jit
    def go(params):
        def step(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        return jax.lax.scan(step, (params, opt.init(params)), length=steps)[1]

    jax.block_until_ready(go(params))  # compile
    start = time.perf_counter()
    losses = jax.block_until_ready(go(params))
    return np.asarray(losses), (time.perf_counter() - start) / steps


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


def classification(out: str, steps: int, seeds: int) -> None:
    x, y, source = load_digits()
    x, labels = jnp.asarray(x), jax.nn.one_hot(jnp.asarray(y), 10)
    print(f"\n{source}: {x.shape[0]} samples, {x.shape[1]} features, full batch")
    schedule = optax.cosine_decay_schedule(0.05, steps)  # FGD variance grows with n: keep lr modest
    curves = {}
    for model_name, init, dims in [("softmax regression", softmax_regression, [64, 10]), ("MLP 64-32-10", mlp, [64, 32, 10])]:
        params = init(jax.random.PRNGKey(0), dims)

        def loss(p):
            return -jnp.mean(jnp.sum(labels * jax.nn.log_softmax(logits_of(p, x)), axis=-1))

        sgd_losses, sgd_time = train(loss, params, optim.sgd(schedule), steps)
        fgd = [train(loss, params, optim.forward_gradient_descent(optim.sgd(schedule), jax.random.PRNGKey(s),
                                                                  objective=loss, distribution="rank_one"), steps)
               for s in range(seeds)]
        fgd_losses = np.mean([c for c, _ in fgd], axis=0)
        fgd_time = float(np.mean([t for _, t in fgd]))
        print(f"  {model_name:<20} final loss  SGD {sgd_losses[-1]:.4f}  FGD (mean of {seeds}) {fgd_losses[-1]:.4f}   "
              f"time/step  SGD {sgd_time * 1e6:.0f} us  FGD {fgd_time * 1e6:.0f} us")
        curves[model_name] = (sgd_losses, sgd_time, np.asarray([c for c, _ in fgd]), fgd_time)

    plt = plot._pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for row, (model_name, (sgd_losses, sgd_time, fgd_runs, fgd_time)) in enumerate(curves.items()):
        plot.plot_loss_curves({"backprop SGD": sgd_losses, "forward gradient (rank-one)": fgd_runs}, ax=axes[row, 0])
        axes[row, 0].set_title(f"{model_name}: loss vs step", fontsize=9)
        steps_axis = np.arange(len(sgd_losses))
        axes[row, 1].plot(steps_axis * sgd_time * 1e3, sgd_losses, label="backprop SGD")
        axes[row, 1].plot(steps_axis * fgd_time * 1e3, fgd_runs.mean(axis=0), label="forward gradient, rank-one (mean)")
        axes[row, 1].set_yscale("log")
        axes[row, 1].set_xlabel("wall time (ms)")
        axes[row, 1].set_title(f"{model_name}: loss vs wall time", fontsize=9)
        axes[row, 1].legend(fontsize=8)
    print("  wrote", plot.save(fig, f"{out}/fgd_digits.png"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps and seeds (CI)")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    steps, seeds = (200, 2) if args.quick else (2000, 5)
    two_d(args.out, steps, seeds)
    classification(args.out, steps, seeds)


if __name__ == "__main__":
    main()

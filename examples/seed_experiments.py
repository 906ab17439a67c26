"""The seed experiments, end to end on the data gradkit ships or scikit-learn provides.

1. Seed 000: linear regression on the Advertising data by full-batch gradient descent, the
   gradient computed four ways — by hand (2/n Xᵀ(Xw - y)), central finite differences (the
   seed's ``d_vec_to_vec``), dual numbers and ``jax.grad`` — same trajectory, timed.
2. Seed 001/003: logistic regression (digit 0 vs rest) and softmax regression on scikit-learn's
   digits with ``gradkit.train.fit``; the seed-003 backprop-by-hand of a 2-layer sigmoid
   network checked against ``jax.grad``.
3. Seed 002: vanishing gradients — 5 hidden sigmoid layers of 128, cross-entropy, lr 0.01:
   SGD vs SGD+momentum 0.9 vs RMSProp vs Adam; loss curves and per-layer gradient norms.

    python examples/seed_experiments.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradkit import data, losses, models, optim, plot, train
from gradkit.diff import dual, numeric


def advertising_four_ways(epochs: int) -> dict[str, np.ndarray]:
    ds = data.load_advertising()
    x = (ds.features - ds.features.mean()) / ds.features.std()  # the seed's normalization
    x = np.c_[x, np.ones(len(x))]
    y = ds.targets
    n = len(y)
    w0 = np.random.default_rng(0).random(4)

    def mse_numpy(w):  # works on floats and on dual numbers
        residual = x @ w - y
        return (residual * residual).mean()

    jax_grad = jax.jit(jax.grad(lambda w: jnp.mean((jnp.asarray(x) @ w - jnp.asarray(y)) ** 2)))
    routes = {
        "by hand": lambda w: 2.0 / n * x.T @ (x @ w - y),
        "central differences": lambda w: numeric.gradient(mse_numpy, w),
        "dual numbers": lambda w: dual.gradient(mse_numpy, w),
        "jax.grad": lambda w: np.asarray(jax_grad(jnp.asarray(w))),
    }
    jax_grad(jnp.asarray(w0))  # compile outside the timing
    finals, losses_by_route = {}, {}
    print(f"Advertising, linear regression, full-batch GD, lr 0.01, {epochs} epochs:")
    print("| gradient | final w | final MSE | max abs diff to by-hand | seconds |\n|---|---|---|---|---|")
    for name, grad in routes.items():
        w, curve = w0.copy(), []
        start = time.perf_counter()
        for _ in range(epochs):
            curve.append(mse_numpy(w))
            w = w - 0.01 * grad(w)
        seconds = time.perf_counter() - start
        finals[name], losses_by_route[name] = w, np.array(curve)
        gap = np.abs(w - finals["by hand"]).max()
        print(f"| {name} | {np.round(w, 4).tolist()} | {mse_numpy(w):.4f} | {gap:.1e} | {seconds:.3f} |")
    spread = max(np.abs(w - finals["by hand"]).max() for w in finals.values())
    if spread > 1e-7:
        raise AssertionError(f"the four gradient routes disagree by {spread:.1e}")
    exact = np.linalg.lstsq(x, y, rcond=None)[0]
    print(f"least squares: {np.round(exact, 4).tolist()}, MSE {mse_numpy(exact):.4f}")
    return losses_by_route


def seed003_backprop_check() -> None:
    """Seed 003: a 2-2-1 sigmoid network with squared error, its gradient by the chain rule."""
    rng = np.random.default_rng(3)
    x, target = rng.normal(size=2), 1.0
    w1, b1, w2, b2 = rng.normal(size=(2, 2)), rng.normal(size=2), rng.normal(size=2), rng.normal()
    sigmoid = lambda z: 1 / (1 + np.exp(-z))
    z1 = w1 @ x + b1
    a1 = sigmoid(z1)
    z2 = w2 @ a1 + b2
    a2 = sigmoid(z2)
    delta2 = (a2 - target) * a2 * (1 - a2)  # dL/dz2 for L = ½(a2 - t)²
    delta1 = delta2 * w2 * a1 * (1 - a1)  # dL/dz1
    by_hand = {"w1": np.outer(delta1, x), "b1": delta1, "w2": delta2 * a1, "b2": delta2}

    def loss(p):
        hidden = jax.nn.sigmoid(p["w1"] @ x + p["b1"])
        return 0.5 * (jax.nn.sigmoid(p["w2"] @ hidden + p["b2"]) - target) ** 2

    auto = jax.grad(loss)({"w1": w1, "b1": b1, "w2": w2, "b2": b2})
    gap = max(float(np.abs(np.asarray(auto[k]) - by_hand[k]).max()) for k in by_hand)
    print(f"\nseed 003 backprop by hand vs jax.grad (2-2-1 sigmoid net): max difference {gap:.1e}")
    if gap > 1e-12:
        raise AssertionError(f"backprop by hand and jax.grad disagree by {gap:.1e}")


def digits_classifiers(epochs: int) -> None:
    try:
        ds = data.load_digits(np.float64)
    except ImportError:
        print("\n(scikit-learn not installed: digits experiments skipped)")
        return
    key = jax.random.PRNGKey(0)
    (x_train, y_train), (x_test, y_test) = data.train_test_split(key, (ds.features, ds.targets), 0.25)
    binary = (y_train == 0).astype(np.float64), (y_test == 0).astype(np.float64)
    logistic = models.logistic_regression(64, dtype=jnp.float64)
    loss = lambda p, b: jnp.mean(losses.binary_cross_entropy(logistic.apply(p, b[0]), b[1]))
    params, _ = train.fit(loss, logistic.init(key), optim.sgd(0.5), (x_train, binary[0]), epochs, 64, key,
                          progress=False)
    acc = float(losses.accuracy(logistic.apply(params, jnp.asarray(x_test)), jnp.asarray(binary[1])))
    print(f"\ndigits, logistic regression (0 vs rest): test accuracy {acc:.3f}")
    softmax = models.softmax_regression(64, 10, dtype=jnp.float64)
    loss = lambda p, b: jnp.mean(losses.softmax_cross_entropy(softmax.apply(p, b[0]), b[1]))
    params, history = train.fit(loss, softmax.init(key), optim.sgd(0.5), (x_train, y_train), epochs, 64, key,
                                progress=False)
    acc = float(losses.accuracy(softmax.apply(params, jnp.asarray(x_test)), jnp.asarray(y_test)))
    print(f"digits, softmax regression: test accuracy {acc:.3f} (train loss {history.epoch_loss[-1]:.3f})")


VANISHING_OPTIMIZERS = ("SGD", "SGD + momentum 0.9", "RMSProp", "Adam")


def vanishing_data(epochs: int, n_samples: int | None = None, width: int = 128
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Seed 002: a sigmoid MLP 64 → width ×5 → 10, softmax cross-entropy, lr 0.01, batches of 64, trained
    by each of :data:`VANISHING_OPTIMIZERS` on the digits (the first ``n_samples``).  Returns the
    per-step losses and per-step, per-layer gradient norms ``‖∂L/∂W_l‖`` (``(steps, layers)``)."""
    try:
        ds = data.load_digits(np.float32)
    except ImportError:
        ds = data.make_classification(jax.random.PRNGKey(0), 1797, 64, 10)
    features, targets = ds.features[:n_samples], ds.targets[:n_samples]
    model = models.mlp([64] + [width] * 5 + [10], activation="sigmoid")
    loss = lambda p, b: jnp.mean(losses.softmax_cross_entropy(model.apply(p, b[0]), b[1]))
    params0 = model.init(jax.random.PRNGKey(1))
    makers = dict(zip(VANISHING_OPTIMIZERS, (optim.sgd(0.01), optim.momentum(0.01, beta=0.9), optim.rmsprop(0.01),
                                             optim.adam(0.01))))
    curves, norms = {}, {}
    for name, opt in makers.items():
        _, history = train.fit(loss, params0, opt, (features, targets), epochs, 64, jax.random.PRNGKey(2),
                               progress=False)
        curves[name], norms[name] = np.asarray(history.step_loss), np.asarray(history.grad_norms)
    return curves, norms


def vanishing_picture(curves: dict[str, np.ndarray], sgd_norms: np.ndarray, epochs: int) -> Any:
    """Left: each optimizer's training loss per step (one line each, no band: one run each).
    Right: SGD's gradient norm per layer, layer 0 (input side) to the last, log scale.  Legends
    sit below the axes, so they cover no curve."""
    plt = plot._pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
    for colour, (name, curve) in zip(("tab:blue", "tab:orange", "tab:green", "tab:red"), curves.items()):
        ax1.plot(np.arange(len(curve)), curve, color=colour, label=name, linewidth=1.2)
    ax1.set_xlabel(f"step (batches of 64, {epochs} epoch{'s' * (epochs != 1)})")
    ax1.set_ylabel("training loss (cross-entropy)")
    ax1.set_title("5 sigmoid layers, lr 0.01: training loss", fontsize=10)
    ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    layers = sgd_norms.shape[1]
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, layers))
    for layer in range(layers):
        ax2.plot(np.arange(len(sgd_norms)), sgd_norms[:, layer], color=colours[layer],
                 label=f"layer {layer}" + (" (input)" if layer == 0 else " (output)" if layer == layers - 1 else ""))
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("gradient norm of the layer's weights")
    ax2.set_title("SGD, per-layer gradient norms: the first layers barely learn", fontsize=10)
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(4, layers), frameon=False)
    return fig


def vanishing_gradients(epochs: int, out: str) -> None:
    curves, norms = vanishing_data(epochs)
    print(f"\nvanishing gradients: 5 sigmoid layers of 128, lr 0.01, {epochs} epochs")
    print("| optimizer | final loss | first-layer / last-layer gradient norm (first epoch) |\n|---|---|---|")
    for name in curves:
        steps = max(1, len(curves[name]) // epochs)
        ratio = norms[name][:steps, 0].mean() / norms[name][:steps, -1].mean()
        print(f"| {name} | {curves[name][-1]:.3f} | {ratio:.1e} |")
    print("wrote", plot.save(vanishing_picture(curves, norms["SGD"], epochs), f"{out}/vanishing_gradients.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer epochs (CI)")
    parser.add_argument("--out", default="gradkit-out", help="folder for the PNGs (default gradkit-out)")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_enable_x64", True)
    advertising_four_ways(20 if args.quick else 100)
    seed003_backprop_check()
    digits_classifiers(3 if args.quick else 30)
    vanishing_gradients(2 if args.quick else 30, args.out)


if __name__ == "__main__":
    main()

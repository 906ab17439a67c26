"""Forward-gradient step vs backprop step on MLPs: time per step and compiled peak temp memory.

A step is: gradient (forward gradient with one tangent, or ``jax.grad``) + SGD update,
jitted, params donated.  Tangents: ``rank_one`` (``a bᵀ`` on each weight matrix, kept factored:
a dense layer's tangent is a matrix-vector product), ``rademacher``, ``normal``.  Memory is XLA's own accounting of the compiled step
(``memory_analysis()``: temporaries, i.e. activations kept for the backward pass).

Second table (memory only, compilation without timing): an activation-heavy network, a deep
narrow tanh MLP whose identical hidden layers are stacked and run by ``lax.scan`` (depth >= 16,
batch 4096; one activation ``A = 4·batch·width`` bytes).  Backprop (``jax.grad``, the scan loss
and the same network unrolled in Python, its best layout: one activation per layer where
``lax.scan``'s residuals hold two) keeps ``≥ depth·A``.  Forward gradients:

* ``FG jvp``: ``optim.forward_gradient`` (``jax.jvp`` through the user's scan loss): ``5A``
  (``h``, a copy of ``h``, ``ḣW``, ``h v_W``, ``hW``), 0.29x backprop-unrolled at depth 16.
* ``FG scan``: ``optim.forward.scan_forward_gradient``: one scan carrying ``(h, ḣ)``, each
  layer's tangent drawn inside it from a folded key, ``ż`` ordered before ``hW``, fused
  ``tanh`` derivative, ``ĝ = s v`` drawn again after the scan: ``4A`` with dense tangents,
  ``3A`` (the floor: ``h``, ``ḣ``/``ż`` and the matmul output being formed) with ``rank_one``.

    python benchmarks/forward_gradient.py
    python benchmarks/forward_gradient.py --quick
    python benchmarks/forward_gradient.py --memory     # only the memory table (no timing)
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

from gradkit import optim
from gradkit.optim.forward import scan_forward_gradient


def mlp_problem(widths: list[int], batch: int):
    keys = jax.random.split(jax.random.PRNGKey(0), len(widths) + 1)
    params = [{"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
              for k, m, n in zip(keys[:-1], widths[:-1], widths[1:])]
    x = jax.random.normal(keys[-1], (batch, widths[0]))
    y = jax.nn.one_hot(jnp.arange(batch) % widths[-1], widths[-1])

    def loss(p):
        h = x
        for layer in p[:-1]:
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        logits = h @ p[-1]["w"] + p[-1]["b"]
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits), axis=-1))

    return loss, params


def deep_problem(depth: int, width: int, batch: int, n_in: int = 32, n_out: int = 10):
    """``depth`` identical hidden layers ``h ← tanh(h W_l + b_l)`` (weights stacked ``(depth, width,
    width)``) between a ``n_in → width`` tanh input layer and a ``width → n_out`` softmax head.

    Returns ``(parts, params, scan_loss, unrolled_loss)``: ``parts = (stem, affine, tanh, head)`` for
    :func:`gradkit.optim.forward.scan_forward_gradient`, ``params = (w_in, {"w", "b"}, w_out)``, and
    the same loss as a user writes it for ``jax.grad``: hidden stack in a ``lax.scan``, or unrolled
    in a Python loop."""
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    params = (jax.random.normal(keys[0], (n_in, width)) / jnp.sqrt(n_in),
              {"w": jax.random.normal(keys[1], (depth, width, width)) / jnp.sqrt(width), "b": jnp.zeros((depth, width))},
              jax.random.normal(keys[2], (width, n_out)) / jnp.sqrt(width))
    x = jax.random.normal(keys[3], (batch, n_in))
    y = jnp.arange(batch) % n_out

    def stem(w_in):
        return jnp.tanh(x @ w_in)

    def affine(layer, h):
        return h @ layer["w"] + layer["b"]

    def head(w_out, h):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(h @ w_out, y))

    def scan_loss(p):
        h, _ = jax.lax.scan(lambda h, layer: (jnp.tanh(affine(layer, h)), None), stem(p[0]), p[1])
        return head(p[2], h)

    def unrolled_loss(p):
        h = stem(p[0])
        for i in range(depth):
            h = jnp.tanh(h @ p[1]["w"][i] + p[1]["b"][i])
        return head(p[2], h)

    return (stem, affine, jnp.tanh, head), params, scan_loss, unrolled_loss


def sgd_step(gradient, lr: float = 1e-3):
    """Jitted ``θ ← θ - lr·gradient(θ, key)`` (optax SGD), params donated."""
    opt = optax.sgd(lr)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(params, key):
        u, _ = opt.update(gradient(params, key), opt.init(params), params)
        return optax.apply_updates(params, u)

    return step


def memory_rows(configs) -> list[dict]:
    """Compiled peak temporary memory (no timing) of an SGD step on :func:`deep_problem`: backprop
    (``jax.grad`` of the scan and of the unrolled loss), forward gradient through ``jax.jvp`` of
    the scan loss (:func:`gradkit.optim.forward_gradient`), and the layer-streamed forward gradient
    (:func:`gradkit.optim.forward.scan_forward_gradient`).  ``floor``: the bytes a layer step must
    hold, ``h``, ``ḣ`` (or ``ż``) and the matmul output being formed, 3 activations."""
    rows, key = [], jax.random.PRNGKey(1)
    for depth, width, batch in configs:
        (stem, affine, act, head), params, scan_loss, unrolled_loss = deep_problem(depth, width, batch)
        bp_scan = temp_bytes(sgd_step(lambda p, k: jax.grad(scan_loss)(p)), params, key)
        bp_unrolled = temp_bytes(sgd_step(lambda p, k: jax.grad(unrolled_loss)(p)), params, key)
        activation = batch * width * 4
        n = sum(p.size for p in jax.tree.leaves(params))
        for dist in ("rademacher", "normal", "rank_one"):
            jvp = temp_bytes(sgd_step(lambda p, k, d=dist: optim.forward_gradient(scan_loss, p, k, distribution=d)[1]),
                             params, key)
            fg = temp_bytes(sgd_step(lambda p, k, d=dist: scan_forward_gradient(stem, affine, act, head, p, k,
                                                                                distribution=d)[1]), params, key)
            rows.append({"model": f"tanh MLP depth {depth} width {width}", "params": n, "batch": batch,
                         "tangents": dist, "activation MB": activation / 1e6,
                         "backprop (scan) temp MB": bp_scan / 1e6, "backprop (unrolled) temp MB": bp_unrolled / 1e6,
                         "FG jvp temp MB": jvp / 1e6, "forward-gradient temp MB": fg / 1e6,
                         "FG scan activations": fg / activation, "floor MB": 3 * activation / 1e6,
                         "FG jvp ratio vs unrolled": jvp / bp_unrolled,
                         "ratio vs scan": fg / bp_scan, "ratio vs unrolled": fg / bp_unrolled})
    return rows


def steps(loss, lr: float = 1e-3):
    opt = optax.sgd(lr)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def backprop(params, key):
        del key
        g = jax.grad(loss)(params)
        u, _ = opt.update(g, opt.init(params), params)
        return optax.apply_updates(params, u)

    def forward_step(distribution):
        @functools.partial(jax.jit, donate_argnums=(0,))
        def forward(params, key):
            _, g = optim.forward_gradient(loss, params, key, distribution=distribution)
            u, _ = opt.update(g, opt.init(params), params)
            return optax.apply_updates(params, u)

        return forward

    return {"backprop": backprop, "FG rank_one": forward_step("rank_one"), "FG rademacher": forward_step("rademacher"),
            "FG normal": forward_step("normal")}


def temp_bytes(fn, params, key) -> int:
    return int(fn.lower(params, key).compile().memory_analysis().temp_size_in_bytes)


def run(configs, repeats: int) -> list[dict]:
    rows = []
    key = jax.random.PRNGKey(1)
    for name, widths, batch in configs:
        loss, params = mlp_problem(widths, batch)
        fns = steps(loss)
        state = {k: jax.tree.map(jnp.copy, params) for k in fns}
        mem = {k: temp_bytes(fn, state[k], key) for k, fn in fns.items()}
        samples = {k: [] for k in fns}
        for r in range(repeats + 2):  # 2 warm-up rounds, then alternate
            for k, fn in fns.items():
                start = time.perf_counter()
                state[k] = jax.block_until_ready(fn(state[k], key))
                if r >= 2:
                    samples[k].append(time.perf_counter() - start)
        t = {k: statistics.median(v) for k, v in samples.items()}
        n = sum(p.size for p in jax.tree.leaves(params))
        for k in ("FG rank_one", "FG rademacher", "FG normal"):
            rows.append({"model": name, "params": n, "batch": batch, "tangents": k[3:],
                         "backprop ms": t["backprop"] * 1e3, "forward-gradient ms": t[k] * 1e3,
                         "time ratio": t[k] / t["backprop"], "backprop temp MB": mem["backprop"] / 1e6,
                         "forward-gradient temp MB": mem[k] / 1e6, "memory ratio": mem[k] / max(mem["backprop"], 1)})
    return rows


MEMORY_COLUMNS = ["model", "batch", "tangents", "activation MB", "backprop (scan) temp MB",
                  "backprop (unrolled) temp MB", "FG jvp temp MB", "FG jvp ratio vs unrolled", "forward-gradient temp MB",
                  "FG scan activations", "floor MB", "ratio vs scan", "ratio vs unrolled"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no JSON written")
    parser.add_argument("--memory", action="store_true", help="only the activation-heavy memory table")
    args = parser.parse_args()
    quick = args.quick
    memory_configs = [(16, 32, 4096)] if quick else [(16, 64, 4096), (32, 64, 4096), (64, 64, 4096)]
    _timing.report("forward_gradient_memory", memory_rows(memory_configs), MEMORY_COLUMNS, quick)
    if args.memory:
        return
    if quick:
        configs, repeats = [("MLP 64-32-10", [64, 32, 10], 32)], 3
    else:
        configs, repeats = [("MLP 784-512-512-10", [784, 512, 512, 10], 512),
                            ("MLP 784-1024x4-10", [784, 1024, 1024, 1024, 1024, 10], 512),
                            ("MLP 784-1024x4-10", [784, 1024, 1024, 1024, 1024, 10], 4096)], 15
    rows = run(configs, repeats)
    _timing.report("forward_gradient", rows, ["model", "params", "batch", "tangents", "backprop ms", "forward-gradient ms", "time ratio",
                               "backprop temp MB", "forward-gradient temp MB", "memory ratio"], quick)


if __name__ == "__main__":
    main()

"""Forward-gradient step vs backprop step on MLPs: time per step and compiled peak temp memory.

A step is: gradient (forward gradient with one tangent, or ``jax.grad``) + SGD update,
jitted, params donated.  Tangents: ``rank_one`` (``a bᵀ`` on each weight matrix, kept factored:
a dense layer's tangent is a matrix-vector product), ``rademacher``, ``normal``.  Memory is XLA's own accounting of the compiled step
(``memory_analysis()``: temporaries, i.e. activations kept for the backward pass).

Second table (memory only, compilation without timing): an activation-heavy network, a deep
narrow tanh MLP whose identical hidden layers are stacked and run by ``lax.scan`` (depth >= 16,
batch 4096): backprop must keep every layer's activations for the backward pass, a
forward-gradient step only the current layer's primal and tangent, so its peak temporary memory
is a small, depth-independent fraction of backprop's.  Backprop is also measured on the same
network unrolled in Python (its best layout: XLA stores one activation per layer there, where
``lax.scan``'s residuals hold two).

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


def deep_problem(depth: int, width: int, batch: int, scan: bool = True, n_in: int = 32, n_out: int = 10):
    """``depth`` identical hidden layers ``h ← tanh(h W_l + b_l)`` (weights stacked ``(depth, width,
    width)``) between a ``n_in → width`` input layer and a ``width → n_out`` softmax head; the hidden
    stack runs in a ``lax.scan`` (``scan=True``) or a Python loop."""
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {"w_in": jax.random.normal(keys[0], (n_in, width)) / jnp.sqrt(n_in),
              "w": jax.random.normal(keys[1], (depth, width, width)) / jnp.sqrt(width),
              "b": jnp.zeros((depth, width)),
              "w_out": jax.random.normal(keys[2], (width, n_out)) / jnp.sqrt(width)}
    x = jax.random.normal(keys[3], (batch, n_in))
    y = jnp.arange(batch) % n_out

    def loss(p):
        h = jnp.tanh(x @ p["w_in"])
        if scan:
            h, _ = jax.lax.scan(lambda h, wb: (jnp.tanh(h @ wb[0] + wb[1]), None), h, (p["w"], p["b"]))
        else:
            for i in range(depth):
                h = jnp.tanh(h @ p["w"][i] + p["b"][i])
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(h @ p["w_out"], y))

    return loss, params


def memory_rows(configs) -> list[dict]:
    """Compiled peak temporary memory (no timing) of backprop (scan and unrolled) and of a
    forward-gradient step (scan) on :func:`deep_problem`."""
    rows, key = [], jax.random.PRNGKey(1)
    for depth, width, batch in configs:
        loss, params = deep_problem(depth, width, batch, scan=True)
        unrolled, _ = deep_problem(depth, width, batch, scan=False)
        scan_fns, unrolled_fns = steps(loss), steps(unrolled)
        bp_scan, bp_unrolled = temp_bytes(scan_fns["backprop"], params, key), temp_bytes(unrolled_fns["backprop"], params, key)
        n = sum(p.size for p in jax.tree.leaves(params))
        for k in ("FG rademacher", "FG normal"):
            fg = temp_bytes(scan_fns[k], params, key)
            rows.append({"model": f"tanh MLP depth {depth} width {width}", "params": n, "batch": batch,
                         "tangents": k[3:], "backprop (scan) temp MB": bp_scan / 1e6,
                         "backprop (unrolled) temp MB": bp_unrolled / 1e6, "forward-gradient temp MB": fg / 1e6,
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


MEMORY_COLUMNS = ["model", "params", "batch", "tangents", "backprop (scan) temp MB", "backprop (unrolled) temp MB",
                  "forward-gradient temp MB", "ratio vs scan", "ratio vs unrolled"]


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

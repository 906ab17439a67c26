"""Forward-gradient step vs backprop step on MLPs: time per step and compiled peak temp memory.

A step is: gradient (forward gradient with one tangent, or ``jax.grad``) + SGD update,
jitted, params donated.  Tangents: ``rank_one`` (``a bᵀ`` on each weight matrix, kept factored:
a dense layer's tangent is a matrix-vector product), ``rademacher``, ``normal``.  Memory is XLA's own accounting of the compiled step
(``memory_analysis()``: temporaries, i.e. activations kept for the backward pass).

    python benchmarks/forward_gradient.py
    python benchmarks/forward_gradient.py --quick
"""

from __future__ import annotations

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


def main() -> None:
    quick = _timing.quick_requested(__doc__)
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

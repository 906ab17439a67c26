"""HVP cost: gradkit.hvp (three modes) and hvp_operator vs raw ``jax.jvp(jax.grad(f))`` and vs ``grad``.

Same process, same jit, medians after warm-up.  ``--quick`` is the CI smoke size.

    python benchmarks/hvp.py            # MLP 784-512-512-10 (~0.67M params), batch 256
    python benchmarks/hvp.py --quick
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

import gradkit as gk


def make_problem(widths: list[int], batch: int, key: jax.Array):
    keys = jax.random.split(key, len(widths) + 1)
    params = [
        {"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
        for k, m, n in zip(keys[:-1], widths[:-1], widths[1:])
    ]
    x = jax.random.normal(keys[-1], (batch, widths[0]))
    y = jax.nn.one_hot(jnp.arange(batch) % widths[-1], widths[-1])

    def loss(p):
        h = x
        for layer in p[:-1]:
            h = jnp.tanh(h @ layer["w"] + layer["b"])
        logits = h @ p[-1]["w"] + p[-1]["b"]
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits), axis=-1))

    return loss, params


def run(quick: bool) -> list[dict]:
    widths, batch = ([64, 32, 10], 32) if quick else ([784, 512, 512, 10], 256)
    loss, params = make_problem(widths, batch, jax.random.PRNGKey(0))
    v = jax.tree.map(jnp.ones_like, params)
    n = sum(x.size for x in jax.tree.leaves(params))
    raw = jax.jit(lambda p, t: jax.jvp(jax.grad(loss), (p,), (t,))[1])
    candidates = {
        "jax.grad (reference cost of one gradient)": jax.jit(jax.grad(loss)),
        "raw jax.jvp(jax.grad(f))": raw,
        "gradkit.hvp fwd_rev": jax.jit(lambda p, t: gk.hvp(loss, p, t, mode="fwd_rev")),
        "gradkit.hvp rev_rev": jax.jit(lambda p, t: gk.hvp(loss, p, t, mode="rev_rev")),
        "gradkit.hvp rev_fwd": jax.jit(lambda p, t: gk.hvp(loss, p, t, mode="rev_fwd")),
    }
    repeats = 5 if quick else 30
    t_raw = _timing.median_time(lambda: raw(params, v), repeats=repeats)
    rows = []
    for name, fn in candidates.items():
        args = (params,) if name.startswith("jax.grad") else (params, v)
        t = _timing.median_time(lambda: fn(*args), repeats=repeats)
        rows.append({"what": name, "params": n, "median ms": t * 1e3, "vs raw jvp(grad)": t / t_raw})
    op = gk.hvp_operator(loss, params)
    op_jit = jax.jit(op)
    t = _timing.median_time(lambda: op_jit(v), repeats=repeats)
    rows.append({"what": "gradkit.hvp_operator (linearized once), per product", "params": n,
                 "median ms": t * 1e3, "vs raw jvp(grad)": t / t_raw})
    return rows


def main() -> None:
    quick = _timing.quick_requested(__doc__)
    rows = run(quick)
    _timing.report("hvp", rows, ["what", "params", "median ms", "vs raw jvp(grad)"], quick)


if __name__ == "__main__":
    main()

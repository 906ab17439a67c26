"""Per-update time of every gradkit optimizer vs the same optax optimizer on a 10M-parameter pytree.

One jitted ``(grads, state, params) -> (params', state')`` per optimizer (update +
apply_updates), ours and optax's timed alternately in the same process; medians
after warm-up.  ``--quick`` is the CI smoke size (10k parameters).

    python benchmarks/optimizers.py
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

PAIRS = {
    "sgd": (lambda: optim.sgd(1e-3), lambda: optax.sgd(1e-3)),
    "momentum (heavy ball)": (lambda: optim.momentum(1e-3, 0.9), lambda: optax.sgd(1e-3, momentum=0.9)),
    "nesterov": (lambda: optim.nesterov(1e-3, 0.9), lambda: optax.sgd(1e-3, momentum=0.9, nesterov=True)),
    "adagrad": (lambda: optim.adagrad(1e-3), lambda: optax.adagrad(1e-3)),
    "rmsprop": (lambda: optim.rmsprop(1e-3), lambda: optax.rmsprop(1e-3)),
    "adam": (lambda: optim.adam(1e-3), lambda: optax.adam(1e-3)),
    "adamax": (lambda: optim.adamax(1e-3), lambda: optax.adamax(1e-3)),
    "nadam": (lambda: optim.nadam(1e-3), lambda: optax.nadam(1e-3)),
    "adabelief": (lambda: optim.adabelief(1e-3), lambda: optax.adabelief(1e-3)),
    "amsgrad": (lambda: optim.amsgrad(1e-3), lambda: optax.amsgrad(1e-3)),
    "lion": (lambda: optim.lion(1e-3), lambda: optax.lion(1e-3)),
    # no optax counterpart: compared with the nearest optax optimizer (marked *)
    "momentum (EMA form)*": (lambda: optim.momentum(1e-3, 0.9, form="ema"), lambda: optax.sgd(1e-3, momentum=0.9)),
    "adasmooth (M=10)*": (lambda: optim.adasmooth(1e-3), lambda: optax.rmsprop(1e-3)),
}


def make_params(quick: bool) -> dict:
    shapes = [(100, 50), (50, 100)] if quick else [(2000, 2000), (2000, 1500), (1500, 1000), (1000, 1000), (1000, 500)]
    keys = jax.random.split(jax.random.PRNGKey(0), len(shapes))
    return {f"layer{i}": {"w": jax.random.normal(k, s), "b": jnp.zeros(s[1])} for i, (k, s) in enumerate(zip(keys, shapes))}


def step_fn(opt: optax.GradientTransformation):
    @functools.partial(jax.jit, donate_argnums=(1, 2))  # in place, as in a training loop
    def step(grads, state, params):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def run(quick: bool) -> list[dict]:
    params = make_params(quick)
    grads = jax.tree.map(lambda p: 1e-2 * jnp.cos(p), params)
    n = sum(x.size for x in jax.tree.leaves(params))
    repeats = 5 if quick else 40
    rows = []
    for name, (ours_make, theirs_make) in PAIRS.items():
        ours, theirs = ours_make(), theirs_make()
        runners = []
        for opt in (ours, theirs):
            p = jax.tree.map(jnp.copy, params)
            runners.append([step_fn(opt), opt.init(p), p])
        samples = ([], [])
        for r in range(repeats + 2):  # two warm-up rounds, then alternate ours/optax to cancel drift
            for i, runner in enumerate(runners):
                fn, state, p = runner
                start = time.perf_counter()
                p, state = jax.block_until_ready(fn(grads, state, p))
                if r >= 2:
                    samples[i].append(time.perf_counter() - start)
                runner[1:] = [state, p]
        t_ours, t_ref = statistics.median(samples[0]), statistics.median(samples[1])
        rows.append({"optimizer": name, "params": n, "gradkit ms": t_ours * 1e3, "optax ms": t_ref * 1e3,
                     "ratio": t_ours / t_ref})
    return rows


def main() -> None:
    quick = _timing.quick_requested(__doc__)
    rows = run(quick)
    _timing.report("optimizers", rows, ["optimizer", "params", "gradkit ms", "optax ms", "ratio"], quick)


if __name__ == "__main__":
    main()

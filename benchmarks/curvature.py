"""Curvature tracking overhead and accuracy: the top Hessian eigenvalue every 100 steps while
training an MLP 784-512-512-10 (~670k params) with Adam, batch 128, on synthetic 10-class data
(Gaussian blobs, ``gradkit.data.make_classification``, separation 0.05: overlapping classes).

* overhead = (time of one tracker record) / (100 x time of one training step), both medians
  of blocked calls after a warm-up compile, timed in alternation in one process;
* accuracy = |tracked - converged| / converged at every recorded step (max over the warm
  records, and at the last one), where the tracked value comes from the warm-started Lanczos of
  the tracker, and the converged one from 100 Lanczos steps from a fresh random start at the
  same params and batch;
* the floor: one Hessian-vector product (linearize included) timed against a train step, so
  ``m`` products cost at least ``m x (HVP / step)`` train steps: the budget (10 % at every=100)
  allows ``10 / (HVP / step)`` products.

Rows for several Lanczos sizes ``m``.  ``--quick`` is the CI smoke size (MLP 64-32-10).

    python benchmarks/curvature.py            # writes benchmarks/results/curvature.json
    python benchmarks/curvature.py --quick
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

from gradkit import curvature, data, linalg, losses, models

EVERY = 100


def run(quick: bool) -> list[dict]:
    widths, n, batch_size = ([64, 32, 10], 512, 64) if quick else ([784, 512, 512, 10], 8192, 128)
    train_steps = 5 * EVERY if not quick else 60
    every = EVERY if not quick else 20
    sizes = (6, 8, 10, 12) if not quick else (5,)
    key = jax.random.PRNGKey(0)
    ds = data.make_classification(key, n, widths[0], widths[-1], separation=0.05)
    x, y = jnp.asarray(ds.features, jnp.float32), jnp.asarray(ds.targets)
    model = models.mlp(widths, activation="relu")
    params0 = model.init(jax.random.PRNGKey(1))
    count = sum(leaf.size for leaf in jax.tree.leaves(params0))

    def loss(params, batch):
        return jnp.mean(losses.softmax_cross_entropy(model.apply(params, batch[0]), batch[1]))

    opt = optax.adam(1e-3)

    @jax.jit
    def step(params, state, batch):
        grads = jax.grad(loss)(params, batch)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    def batch_at(i):
        start = (i * batch_size) % (n - batch_size)
        return x[start:start + batch_size], y[start:start + batch_size]

    # train once, keeping the params/state/batch at each recorded step
    params, state, checkpoints = params0, opt.init(params0), []
    for i in range(train_steps):
        if i % every == 0:
            checkpoints.append((i, params, state, batch_at(i)))
        params, state = step(params, state, batch_at(i))

    repeats = 5 if quick else 15
    rows = []
    last_step = checkpoints[-1][0]
    converged = [float(linalg.lanczos_eigenvalues(curvature.hessian(loss, p, b).linearize(), p, jax.random.PRNGKey(7),
                                                  k=1, num_steps=min(100, count)).eigenvalues[0])
                 for _, p, _, b in checkpoints]
    hvp = jax.jit(lambda p, b, v: curvature.hessian(loss, p, b)(v))
    ones = jax.tree.map(jnp.ones_like, params0)
    for m in sizes:
        tracker = curvature.CurvatureTracker(loss, every=every, lanczos_steps=m, trace_matvecs=0,
                                             max_records=len(checkpoints))
        update = jax.jit(tracker.update)
        tstate = tracker.init(params0, jax.random.PRNGKey(3))
        for i, p, s, b in checkpoints:
            tstate = update(tstate, i, p, b, s)
        tracked = tracker.records(tstate).sharpness
        errors = [100 * abs(float(t) - c) / abs(c) for t, c in zip(tracked, converged)]
        warm = tstate._replace(count=jnp.ones_like(tstate.count))
        b0, s0 = batch_at(0), opt.init(params0)
        t_step, t_record, t_hvp = _timing.interleaved_medians(
            [lambda: step(params0, s0, b0), lambda: update(warm, 0, params0, b0, None),
             lambda: hvp(params0, b0, ones)], repeats=repeats)
        rows.append({
            "model": f"MLP {'-'.join(map(str, widths))} ({count / 1e3:.0f}k params), batch {batch_size}",
            "lanczos steps (warm start)": m,
            "train step (ms)": 1e3 * t_step,
            "one record (ms)": 1e3 * t_record,
            "one HVP (train steps)": t_hvp / t_step,
            "record / (m HVPs)": t_record / (m * t_hvp),
            f"overhead at every={every} (%)": 100 * t_record / (every * t_step),
            f"floor: m HVPs at every={every} (%)": 100 * m * t_hvp / (every * t_step),
            "tracked λ_max": float(tracked[-1]),
            "converged λ_max (100 steps)": converged[-1],
            "rel. error (%)": errors[-1],
            "max rel. error, warm records (%)": max(errors[1:]) if len(errors) > 1 else errors[0],
            "at step": last_step,
        })
    return rows


def main() -> None:
    quick = _timing.quick_requested(__doc__.split("\n\n")[0])
    rows = run(quick)
    _timing.report("curvature", rows, list(rows[0]), quick)
    hvp = min(r["one HVP (train steps)"] for r in rows)
    good = [r["lanczos steps (warm start)"] for r in rows if r["max rel. error, warm records (%)"] <= 1]
    every = EVERY if not quick else 20
    print(f"floor: one HVP = {hvp:.2f} train steps, so 10 % of {every} steps allows {0.1 * every / hvp:.1f} HVPs; "
          f"≤ 1 % on every warm record needs m = {min(good) if good else '> ' + str(rows[-1]['lanczos steps (warm start)'])}")


if __name__ == "__main__":
    main()

"""Calling gradkit the way users do: a fresh optimizer in every call.

``for lr in lrs: gk.runs.run(f, gk.optim.adam(lr), ...)`` builds a new optimizer object per call.
gradkit caches compiled programs by what an optimizer computes (``gradkit.lifting``), so such a
loop compiles once.  For ``runs.run`` (Rosenbrock, 1000 runs x 1000 steps), ``optim.minimize``
(Rosenbrock 10-D) and ``train.fit`` (linear regression, 8 steps), this script times, in one
process, medians of alternating calls after warm-up:

- *built once*: the optimizer object made once outside the loop;
- *fresh, same lr*: ``adam(0.01)`` made inside every call;
- *fresh, new lr*: ``adam(lr)`` with another learning rate every call (five values in turn);

and counts XLA backend compiles (``jax.monitoring``) during the timed calls (after the warm-up
calls of each column), plus the first call's time (the one compile).  ``runs.run`` is also
compared with a hand-fused ``jit(vmap(scan))`` optax loop built once.

    python benchmarks/compile_once.py            # writes benchmarks/results/compile_once.json
    python benchmarks/compile_once.py --quick
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

import gradkit as gk

COMPILES = {"count": 0}
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: COMPILES.__setitem__("count", COMPILES["count"]
                                                       + (event == "/jax/core/compile/backend_compile_duration")))
LRS = (0.01, 0.012, 0.014, 0.016, 0.018)


def hand_fused(f, opt: optax.GradientTransformation, steps: int):
    def one(x0):
        def step(carry, _):
            x, s = carry
            u, s = opt.update(jax.grad(f)(x), s, x)
            return (optax.apply_updates(x, u), s), None

        return jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)[0][0]

    return jax.jit(jax.vmap(one))


def cases(quick: bool) -> dict[str, tuple]:
    """name -> (call(optimizer) -> result, {optimizer kind -> factory lr -> optimizer})."""
    n, steps = (100, 100) if quick else (1000, 1000)
    rosen = gk.landscapes.get("rosenbrock")
    starts = jax.random.uniform(jax.random.PRNGKey(0), (n, 2), minval=-2, maxval=2)
    r10 = gk.landscapes.get("rosenbrock", dim=10)
    x10 = jnp.zeros(10)
    key = jax.random.PRNGKey(1)
    X = jax.random.normal(key, (256, 8))
    data = (X, X @ jnp.arange(8.0))
    loss = lambda p, b: jnp.mean((b[0] @ p["w"] - b[1]) ** 2)
    p0 = {"w": jnp.zeros(8)}
    adams = {"gradkit adam": gk.optim.adam, "optax adam": optax.adam}
    return {
        f"runs.run ({n} runs x {steps} steps)": (
            lambda opt: gk.runs.run(rosen, opt, starts, steps, tol=1e-6, f_star=0.0).final, adams,
            lambda: (lambda ref: (lambda: ref(starts)))(hand_fused(rosen, optax.adam(0.01), steps))),
        "optim.minimize (Rosenbrock 10-D, 200 its)": (
            lambda opt: gk.optim.minimize(r10, x10, opt, maxiter=200).params, adams, None),
        "optim.minimize newton_cg (Rosenbrock 10-D, 200 its)": (
            lambda opt: gk.optim.minimize(r10, x10, opt, maxiter=200).params,
            {"gradkit newton_cg": lambda lr: gk.optim.newton_cg()}, None),
        "train.fit (8 steps of batch 32)": (
            lambda opt: gk.train.fit(loss, p0, opt, data, 1, 32, key, progress=False)[0], adams, None),
    }


def rows_for(quick: bool) -> list[dict]:
    repeats = 3 if quick else 15
    rows = []
    for case, (call, kinds, reference) in cases(quick).items():
        for kind, make in kinds.items():
            once = make(LRS[0])
            lrs = itertools.cycle(LRS)
            start = COMPILES["count"]
            t0 = time.perf_counter()
            jax.block_until_ready(call(make(LRS[0])))
            first = time.perf_counter() - t0
            first_compiles = COMPILES["count"] - start
            fns = [lambda: call(once), lambda: call(make(LRS[0])), lambda: call(make(next(lrs)))]
            for fn in fns:  # warm every column (each of the five learning rates once)
                for _ in range(len(LRS)):
                    jax.block_until_ready(fn())
            before = COMPILES["count"]
            t_once, t_same, t_new = _timing.interleaved_medians(fns, repeats, warmup=0)
            row = {"call": case, "optimizer": kind, "first call s (compile)": first,
                   "compiles in first call": first_compiles, "built once ms": t_once * 1e3,
                   "fresh, same lr ms": t_same * 1e3, "fresh, new lr ms": t_new * 1e3,
                   "fresh / built once": t_new / t_once, "compiles while timed": COMPILES["count"] - before}
            if reference is not None:
                ref = reference()
                t_ref, t_new2 = _timing.interleaved_medians([ref, fns[2]], repeats)
                row["hand-fused optax ms"] = t_ref * 1e3
                row["fresh / hand-fused"] = t_new2 / t_ref
            rows.append(row)
    return rows


def main() -> None:
    quick = _timing.quick_requested(__doc__)
    rows = rows_for(quick)
    columns = ["call", "optimizer", "first call s (compile)", "built once ms", "fresh, same lr ms", "fresh, new lr ms",
               "fresh / built once", "compiles while timed"]
    _timing.report("compile_once", rows, columns, quick)
    fused = [r for r in rows if "hand-fused optax ms" in r]
    print()
    _timing.print_table(fused, ["call", "optimizer", "hand-fused optax ms", "fresh / hand-fused"])


if __name__ == "__main__":
    main()

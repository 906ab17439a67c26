"""A BBOB campaign the gradkit way vs the way COCO is usually driven, same work, same process.

The campaign: Adam (learning rate 1e-2) on all 24 BBOB functions × instances 1-15, one start per
instance (uniform in [-4, 4]^d), a budget of 1000·d gradient-equivalents (1000·d steps), recording
for every run the cost at which each of COCO's 51 targets Δf = 10^2 … 10^-8 was first reached.

- **gradkit**: :func:`gradkit.race.campaign.run_campaign` -- one compiled call per (function,
  dimension) over the 15 instances (their shifts, rotations and f_opt are per-run data).  Timed
  after a first call (whose compile time is reported separately), median of repeats.
- **Python loop** (how COCO is driven: ``for problem in suite: while budget: x = step(x)``): per
  problem a jitted ``jax.value_and_grad`` of the same function fused with the Adam update into
  one jitted call per step (the fastest a Python loop gets), the targets checked in Python as
  COCO's observer does per evaluation.  Its time per step is measured per function (instance 1,
  1000 steps) and scaled to the campaign's steps and runs (the loop's cost is per step).

Also with 100 starts per instance in 2-D (1500 runs per call): the loop's time grows with the runs,
gradkit's much less.  Per function, the speed-up is bounded by the function's own float64 cost
per run-step (transcendentals are scalar code on XLA:CPU): ``loop us/step`` over ``gradkit
us/run-step`` in the per-function table.

    python benchmarks/suites.py            # dimensions 2 and 5; writes benchmarks/results/suites.json
    python benchmarks/suites.py --quick
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

from gradkit.race import campaign
from gradkit.race.coco import TARGETS
from gradkit.suites.bbob import evaluate, instance_data

LR = 1e-2


def gradkit_times(dimension: int, function: int, instances: tuple[int, ...], starts: int) -> tuple[float, float]:
    """(first call incl. compile, median of 3 later calls) of one (function, dimension) call."""
    config = campaign.CampaignConfig(functions=(function,), dimensions=(dimension,), instances=instances,
                                     optimizers=("adam",), learning_rates=(LR,), starts_per_instance=starts)
    contender = campaign.validate(config)["adam"]
    call = lambda: campaign.run_function(function, dimension, "adam", contender, config)  # NumPy out: on the host
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    times = []
    for _ in range(3):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def loop_seconds_per_step(dimension: int, function: int, instance: int, steps: int) -> float:
    """Seconds per step of one problem driven step by step from Python (see the module doc)."""
    opt = optax.adam(LR)
    data = {k: jnp.asarray(v) for k, v in instance_data(function, instance, dimension).items()}

    @jax.jit
    def step(x, state):
        value, grad = jax.value_and_grad(lambda y: evaluate(function, y, data) - data["f_opt"])(x)
        updates, state = opt.update(grad, state, x)
        return optax.apply_updates(x, updates), state, value

    x0 = jnp.asarray(campaign.starts_for(dimension, (instance,), 1, 0)[0])
    jax.block_until_ready(step(x0, opt.init(x0)))  # compile outside the timing
    start = time.perf_counter()
    x, state, level, hits = x0, opt.init(x0), 0, []
    for k in range(steps):
        x, state, value = step(x, state)
        delta = float(value)  # the observer reads every value
        while level < len(TARGETS) and delta <= TARGETS[level]:
            hits.append(k)
            level += 1
    return (time.perf_counter() - start) / steps


def main() -> None:
    quick = _timing.quick_requested(__doc__)
    jax.config.update("jax_enable_x64", True)  # the targets reach 1e-8
    functions = (1, 8, 15, 21) if quick else tuple(range(1, 25))
    instances = (1, 2, 3) if quick else tuple(range(1, 16))
    loop_steps = 200 if quick else 1000
    rows, per_function = [], []
    for starts in ((1,) if quick else (1, 100)):
        for dimension in ((2, 5) if starts == 1 else (2,)):
            steps = 1000 * dimension
            runs_per_call = len(instances) * starts
            first = gk = loop = 0.0
            for function in functions:
                f_first, f_gk = gradkit_times(dimension, function, instances, starts)
                per_step = loop_seconds_per_step(dimension, function, 1, loop_steps)
                first, gk, loop = first + f_first, gk + f_gk, loop + per_step * steps * runs_per_call
                if starts == 1:
                    per_function.append({"dimension": dimension, "function": function,
                                         "loop us/step": per_step * 1e6,
                                         "gradkit us/run-step": f_gk / (steps * runs_per_call) * 1e6,
                                         "speed-up": per_step * steps * runs_per_call / f_gk})
            rows.append({"dimension": dimension, "starts per instance": starts,
                         "runs": len(functions) * runs_per_call, "steps per run": steps, "gradkit s": gk,
                         "gradkit first call s (compile)": first, "Python loop s (from us/step)": loop,
                         "speed-up": loop / gk})
    print("whole campaign (Adam, lr 1e-2, 24 functions x 15 instances):")
    _timing.report("suites", rows, list(rows[0]), quick)
    print("per function (one start per instance):")
    _timing.report("suites_per_function", per_function, list(per_function[0]), quick)


if __name__ == "__main__":
    main()

"""Many optimization runs in one compiled call: ``jit(vmap(scan))`` over a run axis.

Each run ``r`` has a start point ``x_r`` (any pytree; the leading axis of every
leaf indexes runs) and optionally its own hyperparameters ``h_r`` (arrays with
a leading run axis, passed to ``make_optimizer(**h_r)`` as traced values, so a
learning-rate grid costs no recompilation).  One step of one run is

    f, g = value_and_grad(objective)(x);   u, s = opt.update(g, s, x, value=f, grad=g, value_fn=objective);   x ← x + u

The keywords reach every optimizer family: optax's line searches and ``optax.lbfgs``
(``value``, ``grad``, ``value_fn``), gradkit's SAM, Newton, Newton-CG, trust region,
Hessian-free and forward gradients (``value_fn``), ``optax.contrib.sophia``
(``obj_fn``, passed unless the state holds an optax line search, whose ``value_fn``
would reject it); first-order optimizers drop them (``optax.with_extra_args_support``).

**Verdicts.**  Iterate ``x_k`` (``k = 0`` the start, ``k = steps`` the last) is *within
tolerance* when every test that applies holds:

- ``|f(x_k) - f*| <= tol + rtol · f_scale`` when ``f_star`` is given and finite;
- ``min_j ||x_k - m_j|| <= xtol`` when ``xtol`` and ``minimizers`` (``(m, dim)``) are given;
- otherwise ``||∇f(x_k)|| <= tol + rtol · ||∇f(x_0)||`` (the gradient test).

Use ``rtol`` in float32: ``f`` is only known to about ``eps·|f|`` and a quasi-Newton
method such as ``optax.lbfgs`` stalls with ``||∇f||`` near ``sqrt(eps)`` times the
gradient's scale, short of an absolute gradient tolerance such as 1e-6 that float64
reaches; ``rtol = 1e-3`` on the gradient test asks for a thousand-fold reduction,
which both precisions can meet.  Per run: ``first_hit`` (first step within),
``settled_step`` (first step after which the run stays within to the end; -1 when the
last iterate is not within), ``ended_within``, ``converged = ended_within & ~diverged``
and ``ever_hit = (first_hit >= 0) & ~diverged``.  Nothing is stored per step: each step
shifts its flag into a 32-bit word per run (two integer operations, in the kernel of the
tolerance test), and every 32 steps the word is folded into the first point within tolerance
and the last point outside it, two int32 per run (:class:`_Marks`).  Optimizers whose cost is
read from their state fold every step (the cost when a streak begins needs it).

**Cost** is counted in gradient-equivalents (:data:`COST_UNITS`): value 1/2, gradient
(or value and gradient) 1, Hessian-vector product 2, Jacobian-vector product 1.  The
units are measured, not assumed: on the 670k-parameter MLP of ``benchmarks/hvp.py`` one
HVP takes 4.6 ms against 2.4 ms for a gradient (ratio 1.9), and one forward-mode JVP
with a Gaussian tangent 5.8 ms against 4.7 ms for backprop (``benchmarks/forward_gradient.py``,
ratio 1.2; 0.6 with rank-one tangents); a value is a forward pass, about half of the
forward-plus-backward gradient.  Every method pays 1 for ``value_and_grad`` at the start
and, per step, what :data:`COST_MODELS` (keyed by optimizer-state type, found anywhere in
the state tree) says on top of the runner's ``value_and_grad`` at the new point (1):
SAM +1 gradient; gradkit Newton-CG + 2 per HVP (``hvp_count``), Hessian-free the same plus
+1/2 per value of its walk-back over CG iterates and its Armijo search (``value_count``), the trust
region +2 per HVP and its trial ``value_and_grad``; dense Newton + 2·n (n HVPs make the
Hessian); optax zoom line search (``optax.lbfgs``) +1 per ``info.num_linesearch_steps``;
optax backtracking +1/2 per step of it; Hutchinson (``optax.contrib.sophia``, gradkit's
``sophia``) +2 on the steps whose estimator key moved (one HVP every ``update_interval``
steps: counted at the rate the method needs, although under ``vmap`` ``lax.cond`` computes
both branches); AdaHessian +2 (one Hutchinson probe per step); forward gradients
``num_tangents`` JVPs.  Where the state already holds the value and gradient at the new point (zoom line search, trust region) or the method
never uses the gradient (forward gradients), the runner's own ``value_and_grad`` is
bookkeeping and is not counted.  Register a new state type in :data:`COST_MODELS`.

Every cost model states its spend as **counts per kind** (:class:`Counts`: values, gradients,
HVPs, JVPs, in :data:`COUNT_KINDS` order; :mod:`gradkit.runs.units`), and gradient-equivalents
are derived from them, ``Σ_k COST_UNITS[k] · counts_k`` (:func:`gradient_equivalents`).  A
``value_and_grad`` counts as one gradient (its value is not counted again); a *value* is a call
that computes ``f`` alone, so COCO's function evaluations are ``values + grads``.  Each result
holds ``counts`` ``(runs, 4)``, and with ``targets`` ``target_counts`` ``(runs, targets, 4)``: the
evaluations of each kind spent until each target was first reached (``inf``: never).

A run whose objective value becomes NaN/inf (a non-finite point propagates into
the value) is flagged ``diverged`` and frozen at its last finite point on a check
boundary (every recorded step; in final-state mode every 100 steps and after the
last); its neighbours in the batch are untouched.
The run axis is split into chunks (bounded memory, a tqdm bar counting run-steps) and
each chunk is sharded over every local device (data-parallel, no communication).
Multi-host (:mod:`gradkit.runs.multihost`): call ``multihost.initialize()`` (on a cluster,
``jax.distributed.initialize()``) first; ``jax.devices()`` then spans every process, the run axis
is split over all of their devices, and the results are all-gathered, so every process gets the
one-process ``RunResult`` bit for bit.  Every process must pass the same arguments (checked by a
digest, an error rather than a hang); ``python -m gradkit.runs.launch -n 2 -d 2 script.py``
rehearses a job on one machine.
"""

from gradkit.runs.costs import COST_MODELS, COST_UNITS, CostModel
from gradkit.runs.engine import OptimizerFactory, OptimizerLike, estimate_bytes, run, run_batch
from gradkit.runs.result import RunResult
from gradkit.runs.units import COUNT_KINDS, Counts, gradient_equivalents
from gradkit.runs.sweeps import SweepResult, grid_product, nearest_minimum, start_grid, sweep

__all__ = ["COST_MODELS", "COST_UNITS", "COUNT_KINDS", "CostModel", "Counts", "OptimizerFactory", "OptimizerLike",
           "RunResult", "SweepResult", "estimate_bytes", "gradient_equivalents", "grid_product", "nearest_minimum", "run",
           "run_batch", "start_grid", "sweep"]

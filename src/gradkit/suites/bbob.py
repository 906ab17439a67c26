"""COCO's 24 noiseless BBOB functions (f1-f24) in JAX, value-identical to COCO's C code.

This is a port of COCO's ``bbob`` suite (``code-experiments/src/suite_bbob.c`` and the
``f_*.c`` / ``transform_*.c`` files it includes): the same legacy random generators
(``bbob2009_unif``, ``bbob2009_gauss``, Gram-Schmidt rotations, ``x_opt`` / ``f_opt``), the
same seeds per function and instance, the same transformation chains; rotation matrices and
``x_opt`` are bit-identical to COCO's.  Values agree with the ``cocoex`` package to ~1e-13
relative or better, except f16 and f19 (~3e-11: ``cos`` of arguments up to 1e7 amplifies the
last-bit differences of XLA's sums and fused multiply-adds); the tests demand 1e-9.

Two layers:

- :func:`instance_data` builds every number one instance needs as float64 NumPy arrays
  (``x_opt``, ``f_opt``, rotations ``R``/``Q``, conditioning diagonals ``lam``, Gallagher
  peaks, ...).  All instances of one ``(function, dimension)`` have the same keys and shapes,
  so they stack along a leading axis.
- :func:`evaluate` is pure ``jax.numpy``: ``function`` is a static Python int, ``data`` may be
  traced.  ``jax.jit(jax.vmap(partial(evaluate, f)))`` over stacked instances is one program
  per ``(function, dimension)``.  ``x`` has shape ``(..., dimension)`` (leading axes batch with
  unbatched ``data``); the result has shape ``(...)`` and ``x``'s floating dtype (float32 works).

:func:`bbob` wraps both in a :class:`BBOBProblem` (a frozen dataclass, also a pytree whose
leaves are ``instance`` and the arrays, so jitting over problems compiles once per function
and dimension).

Instance generation (COCO's seeds and generators; ``R`` is COCO's ``rot1``, ``Q`` its ``rot2``)
lives in :mod:`gradkit.suites.bbob_instances`.

Gradients (``jax.grad``).  12 functions are continuously differentiable on all of R^d,
though not all C^2: f1, f8, f9, f19; f2, f3, f4, f10, f11, where ``T_osz``'s kink at 0 only
enters through an even function (``T_osz(u)^2``, ``cos(2π T_osz(u))``) whose slope vanishes
there; f6 (the sector weights jump where ``z_i = 0`` but ``w z_i^2`` has a continuous slope,
and ``T_osz(y)^0.9`` of ``y ~ |x - x_opt|^2`` is flat at ``x_opt``); f12 (``T_asy`` has slope 1
at 0 from both sides) and f20 (``z sin sqrt|z|`` has slope 0 at 0).  The other 12 are listed
in :data:`NONSMOOTH` with what ``jax.grad`` returns there: kinks on measure-zero sets (``|.|``,
``max``/``min``, cones, ``T_osz`` followed by a rotation), and f7, piecewise constant, whose
``grad`` is zero on its plateaus.  Every kink is guarded (no ``log(0)``, ``sqrt(0)`` or
``0 ** 0.25`` in a derivative), so the gradient is finite everywhere, also at ``x_opt``,
where it is the true gradient (0) or, at a kink, a one-sided or zero choice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from gradkit.suites.bbob_instances import FUNCTION_GROUPS, _check_int, _instance_data, instance_data

__all__ = ["BBOBProblem", "bbob", "evaluate", "instance_data", "FUNCTION_GROUPS", "NONSMOOTH", "NAMES"]

Array = jax.Array


NAMES: dict[int, str] = {
    1: "sphere", 2: "separable ellipsoid", 3: "separable Rastrigin", 4: "Bueche-Rastrigin",
    5: "linear slope", 6: "attractive sector", 7: "step ellipsoid", 8: "Rosenbrock",
    9: "rotated Rosenbrock", 10: "ellipsoid", 11: "discus", 12: "bent cigar", 13: "sharp ridge",
    14: "different powers", 15: "Rastrigin", 16: "Weierstrass", 17: "Schaffer F7 (cond 10)",
    18: "Schaffer F7 (cond 1000)", 19: "Griewank-Rosenbrock", 20: "Schwefel",
    21: "Gallagher 101 peaks", 22: "Gallagher 21 peaks", 23: "Katsuura", 24: "Lunacek bi-Rastrigin",
}
"""Short names of the 24 functions."""

_TOSZ_ROTATED = ("T_osz (sign(u) |u| e^(0.049 (sin c1 log|u| + sin c2 log|u|))) has a bounded slope with no limit at u = 0, "
                 "and the rotation after it carries that into every z: no derivative on the hyperplanes (R(x - x_opt))_i = 0 "
                 "(through x_opt); grad exact elsewhere (a.e.), slope 1 for T_osz at 0.")
NONSMOOTH: dict[int, str] = {
    5: "Linear inside the box; COCO holds x_i at x_opt_i = +-5 once x_i x_opt_i >= 25, so the value is flat beyond the "
       "optimum's face: a kink at x_i = x_opt_i; grad is -s_i before it and 0 from it on (0 at x_opt).",
    7: "Piecewise constant (z rounded to a grid): grad is 0 a.e. inside [-5, 5]^d (plus 1e-5 d|z_1|/dx in the cell around x_opt "
       "where the rounded part vanishes) plus the boundary penalty's gradient outside; it never points downhill on the plateaus.",
    13: "100 ||(z_2..z_d)|| is a cone: not differentiable on the ridge z_2 = ... = z_d = 0 (a line through x_opt); "
        "grad exact off it, and takes the subgradient 0 of the norm on it.",
    14: "sqrt(sum |z_i|^(2 + 4 (i-1)/(d-1))) is a cone at x_opt only (C^1 everywhere else); grad there is 0 (a subgradient).",
    15: _TOSZ_ROTATED,
    16: _TOSZ_ROTATED + " (The 12-term Weierstrass sum itself is smooth.)",
    17: "(z_i^2 + z_{i+1}^2)^0.25 and ^0.1 have infinite slope where a pair (z_i, z_{i+1}) vanishes (codimension 2, "
        "includes x_opt): not even Lipschitz there; grad exact elsewhere, 0 for that term there.",
    18: "(z_i^2 + z_{i+1}^2)^0.25 and ^0.1 have infinite slope where a pair (z_i, z_{i+1}) vanishes (codimension 2, "
        "includes x_opt): not even Lipschitz there; grad exact elsewhere, 0 for that term there.",
    21: "max over the 101 peaks kinks where two peaks tie; grad is that of the highest peak, exact a.e.",
    22: "max over the 21 peaks kinks where two peaks tie; grad is that of the highest peak, exact a.e.",
    23: "Katsuura's |2^j z - round(2^j z)| (j = 1..32) kinks on a grid of spacing 2^-33 in every z_i: differentiable a.e. "
        "but the gradient is huge and jumps at every cell; grad is the a.e. gradient of the cell x lies in.",
    24: "min of the two quadratic funnels kinks where they are equal; grad is that of the smaller funnel, exact a.e.",
}
"""Functions that are not continuously differentiable on all of R^d, and what ``jax.grad`` gives there.

The other twelve (f1, f2, f3, f4, f6, f8, f9, f10, f11, f12, f19, f20) are C^1 everywhere.  The
boundary penalties ``sum max(0, |x_i| - 5)^2`` are C^1 and do not make a function non-smooth."""

_SMOOTH = frozenset(range(1, 25)) - frozenset(NONSMOOTH)


# --------------------------------------------------------------------------- shared transformations


def _matvec(m: Array, v: Array) -> Array:
    """``m @ v`` over the last axis of ``v``: COCO's ``transform_vars_affine`` with ``b = 0``."""
    return jnp.matmul(v, m.T, precision=jax.lax.Precision.HIGHEST)


def _tosz(x: Array) -> Array:
    """COCO's oscillation ``T_osz`` (``transform_vars_oscillate`` / ``transform_obj_oscillate``).

    ``x > 0``: ``exp(x_hat + 0.49 (sin x_hat + sin 0.79 x_hat))^0.1`` with ``x_hat = log(x) / 0.1``;
    ``x < 0``: ``-exp(x_hat + 0.49 (sin 0.55 x_hat + sin 0.31 x_hat))^0.1`` with ``x_hat = log(-x) / 0.1``;
    ``0 -> 0``.  Computed as ``|x| exp(0.049 (...))`` (equal to ~1 ulp, no overflow in float32).
    """
    nonzero = x != 0
    pos = x > 0
    ax = jnp.where(nonzero, jnp.abs(x), 1.0)
    xh = jnp.log(ax) / 0.1
    osc = jnp.sin(jnp.where(pos, 1.0, 0.55) * xh) + jnp.sin(jnp.where(pos, 0.79, 0.31) * xh)
    y = jnp.sign(x) * ax * jnp.exp(0.1 * 0.49 * osc)
    return jnp.where(nonzero, y, x)


def _tasy(x: Array, beta: float) -> Array:
    """COCO's ``transform_vars_asymmetric``: ``x_i^(1 + beta (i-1)/(d-1) sqrt(x_i))`` where ``x_i > 0``."""
    dim = x.shape[-1]
    coef = jnp.asarray([(beta * i) / (dim - 1.0) for i in range(dim)], dtype=x.dtype)
    pos = x > 0
    xs = jnp.where(pos, x, 1.0)
    return jnp.where(pos, xs ** (1.0 + coef * jnp.sqrt(xs)), x)


def _penalty(x: Array) -> Array:
    """``sum_i max(0, |x_i| - 5)^2``, COCO's boundary penalty."""
    return jnp.sum(jnp.square(jnp.maximum(jnp.abs(x) - 5.0, 0.0)), axis=-1)


def _rastrigin(z: Array) -> Array:
    dim = z.shape[-1]
    return 10.0 * (dim - jnp.sum(jnp.cos(2.0 * math.pi * z), axis=-1)) + jnp.sum(z * z, axis=-1)


def _rosenbrock(z: Array) -> Array:
    a, b = z[..., :-1], z[..., 1:]
    return 100.0 * jnp.sum(jnp.square(a * a - b), axis=-1) + jnp.sum(jnp.square(a - 1.0), axis=-1)


def _ellipsoid(z: Array, lam: Array) -> Array:
    return jnp.sum(lam * z * z, axis=-1)


def _safe_sqrt(s: Array) -> Array:
    """``sqrt(s)`` for ``s >= 0`` whose gradient at 0 is 0 (not ``inf * 0 = nan``)."""
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


# --------------------------------------------------------------------------- the 24 functions


def _f1(x, d):
    return jnp.sum(jnp.square(x - d["x_opt"]), axis=-1) + d["f_opt"]


def _f2(x, d):
    return _ellipsoid(_tosz(x - d["x_opt"]), d["lam"]) + d["f_opt"]


def _f3(x, d):
    z = d["lam"] * _tasy(_tosz(x - d["x_opt"]), 0.2)
    return _rastrigin(z) + d["f_opt"]


def _f4(x, d):
    z = _tosz(x - d["x_opt"])
    even = np.arange(x.shape[-1]) % 2 == 0
    z = jnp.where((z > 0) & even, 10.0 * d["lam"], d["lam"]) * z
    return _rastrigin(z) + d["f_opt"] + 100.0 * _penalty(x)


def _f5(x, d):
    s, xo = d["slope"], d["x_opt"]
    x = jnp.where(x * xo < 25.0, x, xo)  # beyond the optimum's face the value stays f_opt
    return jnp.sum(5.0 * jnp.abs(s) - s * x, axis=-1) + d["f_opt"]


def _f6(x, d):
    z = _matvec(d["M"], x - d["x_opt"])
    raw = jnp.sum(jnp.where(d["x_opt"] * z > 0, 100.0 * 100.0 * z * z, z * z), axis=-1)
    y = _tosz(raw)
    pos = y > 0
    return jnp.where(pos, jnp.where(pos, y, 1.0) ** 0.9, 0.0) + d["f_opt"]


def _f7(x, d):
    z = _matvec(d["lam"][:, None] * d["Q"], x - d["x_opt"])
    x1 = z[..., 0]
    z = jnp.where(jnp.abs(z) > 0.5, jnp.floor(z + 0.5), jnp.floor(10.0 * z + 0.5) / 10.0)
    z = _matvec(d["R"], z)
    core = jnp.maximum(jnp.abs(x1) * 1.0e-4, _ellipsoid(z, d["weights"]))
    return 0.1 * core + _penalty(x) + d["f_opt"]


def _f8(x, d):
    return _rosenbrock(d["scale"] * (x - d["x_opt"]) + 1.0) + d["f_opt"]


def _f9(x, d):
    return _rosenbrock(_matvec(d["scale"] * d["R"], x) + 0.5) + d["f_opt"]


def _f10(x, d):
    return _ellipsoid(_tosz(_matvec(d["R"], x - d["x_opt"])), d["lam"]) + d["f_opt"]


def _f11(x, d):
    z = _tosz(_matvec(d["R"], x - d["x_opt"]))
    return 1.0e6 * z[..., 0] ** 2 + jnp.sum(z[..., 1:] ** 2, axis=-1) + d["f_opt"]


def _f12(x, d):
    z = _matvec(d["R"], _tasy(_matvec(d["R"], x - d["x_opt"]), 0.5))
    return z[..., 0] ** 2 + jnp.sum(1.0e6 * z[..., 1:] ** 2, axis=-1) + d["f_opt"]


def _f13(x, d):
    z = _matvec(d["M"], x - d["x_opt"])
    return 100.0 * _safe_sqrt(jnp.sum(z[..., 1:] ** 2, axis=-1)) + z[..., 0] ** 2 + d["f_opt"]


def _f14(x, d):
    z = _matvec(d["R"], x - d["x_opt"])
    return _safe_sqrt(jnp.sum(jnp.abs(z) ** d["powers"], axis=-1)) + d["f_opt"]


def _f15(x, d):
    z = _tasy(_tosz(_matvec(d["R"], x - d["x_opt"])), 0.2)
    return _rastrigin(_matvec(d["M"], z)) + d["f_opt"]


_WEIERSTRASS_A = np.array([math.pow(0.5, k) for k in range(12)])
_WEIERSTRASS_B = np.array([math.pow(3.0, k) for k in range(12)])
_WEIERSTRASS_F0 = float(sum(_WEIERSTRASS_A[k] * math.cos(2 * math.pi * _WEIERSTRASS_B[k] * 0.5) for k in range(12)))


def _f16(x, d):
    dim = x.shape[-1]
    z = _matvec(d["M"], _tosz(_matvec(d["R"], x - d["x_opt"])))
    a, b = jnp.asarray(_WEIERSTRASS_A, dtype=x.dtype), jnp.asarray(_WEIERSTRASS_B, dtype=x.dtype)
    terms = jnp.cos(2.0 * math.pi * (z + 0.5)[..., None] * b) * a
    s = jnp.sum(terms, axis=(-2, -1))
    return 10.0 * (s / dim - _WEIERSTRASS_F0) ** 3 + d["f_opt"] + (10.0 / dim) * _penalty(x)


def _schaffers(z: Array) -> Array:
    dim = z.shape[-1]
    s = z[..., :-1] ** 2 + z[..., 1:] ** 2
    pos = s > 0
    ss = jnp.where(pos, s, 1.0)
    terms = jnp.where(pos, ss**0.25 * (1.0 + jnp.sin(50.0 * ss**0.1) ** 2), 0.0)
    return (jnp.sum(terms, axis=-1) / (dim - 1.0)) ** 2


def _f17(x, d):
    z = _tasy(_matvec(d["R"], x - d["x_opt"]), 0.5)
    z = _matvec(d["Q"] * d["lam"][:, None], z)
    return _schaffers(z) + d["f_opt"] + 10.0 * _penalty(x)


_f18 = _f17


def _f19(x, d):
    dim = x.shape[-1]
    z = _matvec(d["scale"] * d["R"], x) + 0.5
    a, b = z[..., :-1], z[..., 1:]
    c1, c2 = a * a - b, 1.0 - a
    t = 100.0 * c1 * c1 + c2 * c2  # C's order: cos(t) of t up to ~1e7 amplifies any other rounding
    return 10.0 + 10.0 * jnp.sum(t / 4000.0 - jnp.cos(t), axis=-1) / (dim - 1) + d["f_opt"]


def _f20(x, d):
    dim = x.shape[-1]
    two_abs_xopt = 2.0 * (0.5 * 4.2096874637)
    xh = 2.0 * (d["sign"] * x)
    zh = jnp.concatenate([xh[..., :1], xh[..., 1:] + 0.25 * (xh[..., :-1] - two_abs_xopt)], axis=-1)
    z = 100.0 * (d["lam"] * (zh - two_abs_xopt) + two_abs_xopt)
    az = jnp.abs(z)
    pos = az > 0
    g = jnp.where(pos, z * jnp.sin(jnp.sqrt(jnp.where(pos, az, 1.0))), 0.0)
    pen = jnp.sum(jnp.square(jnp.maximum(az - 500.0, 0.0)), axis=-1)
    return 0.01 * (pen + 418.9828872724339 - jnp.sum(g, axis=-1) / dim) + d["f_opt"]


def _f21(x, d):
    dim = x.shape[-1]
    tx = _matvec(d["R"], x)
    q = jnp.sum(d["scales"] * jnp.square(tx[..., None, :] - d["peaks"]), axis=-1)
    best = jnp.max(d["heights"] * jnp.exp((-0.5 / dim) * q), axis=-1)
    f = _tosz(10.0 - jnp.maximum(best, 0.0))
    return f * f + _penalty(x) + d["f_opt"]


_f22 = _f21

_KATSUURA_POW2 = np.array([math.pow(2.0, j) for j in range(1, 33)])


def _f23(x, d):
    dim = x.shape[-1]
    z = _matvec(d["M"], x - d["x_opt"])
    pow2 = jnp.asarray(_KATSUURA_POW2, dtype=x.dtype)
    t = z[..., None] * pow2
    s = jnp.sum(jnp.abs(t - jnp.floor(t + 0.5)) / pow2, axis=-1)
    logprod = jnp.sum(jnp.log1p(jnp.arange(1, dim + 1, dtype=x.dtype) * s), axis=-1)  # log prod_i (1 + i s_i), no overflow
    value = 10.0 / dim / dim * (-1.0 + jnp.exp(10.0 / math.pow(dim, 1.2) * logprod))
    return value + d["f_opt"] + _penalty(x)


def _f24(x, d):
    dim = x.shape[-1]
    mu0 = 2.5
    s = 1.0 - 0.5 / (math.sqrt(dim + 20.0) - 4.1)
    mu1 = -math.sqrt((mu0 * mu0 - 1.0) / s)
    xh = 2.0 * (d["sign"] * x)
    z = _matvec(d["R"], _matvec(d["lam"][:, None] * d["Q"], xh - mu0))
    sum1 = jnp.sum(jnp.square(xh - mu0), axis=-1)
    sum2 = jnp.sum(jnp.square(xh - mu1), axis=-1)
    sum3 = jnp.sum(jnp.cos(2.0 * math.pi * z), axis=-1)
    return jnp.minimum(sum1, 1.0 * dim + s * sum2) + 10.0 * (dim - sum3) + 1.0e4 * _penalty(x) + d["f_opt"]


_IMPL = {i: globals()[f"_f{i}"] for i in range(1, 25)}


def evaluate(function: int, x: Array, data: Mapping[str, Array]) -> Array:
    """Value of BBOB function ``function`` at ``x`` for the instance described by ``data``.

    ``function`` is static (a Python int 1..24); ``data`` is :func:`instance_data`'s dict (its
    arrays may be traced: jit/vmap/grad over instances); ``x`` has shape ``(..., d)``, result
    shape ``(...)`` in ``x``'s floating dtype.  With ``z`` the transformed variable, ``f_opt``
    added last, ``pen(x) = sum max(0, |x_i| - 5)^2``, ``T_osz``/``T_asy^b`` COCO's oscillation
    and asymmetry, ``Λ^c = diag(c^((i-1)/(2(d-1))))`` and ``R``, ``Q`` the instance rotations
    (COCO's order of transformations, which is not always the documentation's):

    - f1 sphere: ``||x - x_opt||^2``
    - f2 ellipsoid: ``sum 10^(6 (i-1)/(d-1)) z_i^2``, ``z = T_osz(x - x_opt)``
    - f3 Rastrigin: ``10 (d - sum cos 2πz_i) + ||z||^2``, ``z = Λ^10 T_asy^0.2(T_osz(x - x_opt))``
    - f4 Bueche-Rastrigin: as f3 with ``z_i = s_i T_osz(x - x_opt)_i``, ``s_i = 10^((i-1)/(2(d-1)))``
      times 10 where ``z_i > 0`` and ``i`` odd; ``+ 100 pen(x)``
    - f5 linear slope: ``sum 5|s_i| - s_i z_i``, ``s_i = sign(x_opt_i) 10^((i-1)/(d-1))``, ``x_opt_i = 5 sign(s_i)``,
      ``z_i = x_i`` where ``x_i x_opt_i < 25``, else ``x_opt_i``
    - f6 attractive sector: ``T_osz(sum (100 z_i)^2 [z_i x_opt_i > 0] + z_i^2 [else])^0.9``, ``z = R Λ^10 Q (x - x_opt)``
    - f7 step ellipsoid: ``0.1 max(|ẑ_1| / 1e4, sum 100^((i-1)/(d-1)) z_i^2) + pen(x)``, ``ẑ = Λ^10 Q (x - x_opt)``,
      ``z = R round(ẑ)`` (round to integers where ``|ẑ_i| > 0.5``, else to 0.1)
    - f8 Rosenbrock: ``sum 100 (z_i^2 - z_{i+1})^2 + (z_i - 1)^2``, ``z = max(1, sqrt(d)/8) (x - x_opt) + 1``
    - f9 rotated Rosenbrock: as f8 with ``z = max(1, sqrt(d)/8) R x + 1/2``
    - f10 ellipsoid: as f2 with ``z = T_osz(R (x - x_opt))``
    - f11 discus: ``10^6 z_1^2 + sum_{i>1} z_i^2``, ``z = T_osz(R (x - x_opt))``
    - f12 bent cigar: ``z_1^2 + 10^6 sum_{i>1} z_i^2``, ``z = R T_asy^0.5(R (x - x_opt))``
    - f13 sharp ridge: ``z_1^2 + 100 sqrt(sum_{i>1} z_i^2)``, ``z = R Λ^10 Q (x - x_opt)``
    - f14 different powers: ``sqrt(sum |z_i|^(2 + 4 (i-1)/(d-1)))``, ``z = R (x - x_opt)``
    - f15 Rastrigin: as f3 with ``z = R Λ^10 Q T_asy^0.2(T_osz(R (x - x_opt)))``
    - f16 Weierstrass: ``10 (1/d sum_i sum_k 2^-k cos(2π 3^k (z_i + 1/2)) - f0)^3 + 10/d pen(x)``, ``k = 0..11``,
      ``f0 = sum_k 2^-k cos(π 3^k)``, ``z = R Λ^(1/100) Q T_osz(R (x - x_opt))``
    - f17/f18 Schaffers F7: ``(1/(d-1) sum sqrt(s_i) (1 + sin^2(50 s_i^0.2)))^2 + 10 pen(x)``,
      ``s_i = sqrt(z_i^2 + z_{i+1}^2)``, ``z = Λ^c Q T_asy^0.5(R (x - x_opt))``, ``c = 10`` (f17), ``1000`` (f18)
    - f19 Griewank-Rosenbrock: ``10 + 10/(d-1) sum (t_i/4000 - cos t_i)``, ``t_i = 100 (z_i^2 - z_{i+1})^2 + (1 - z_i)^2``,
      ``z = max(1, sqrt(d)/8) R x + 1/2``
    - f20 Schwefel: ``0.01 (418.9828872724339 - 1/d sum z_i sin sqrt|z_i| + sum max(0, |z_i| - 500)^2)``,
      ``z = 100 (Λ^10 (ẑ - c) + c)``, ``ẑ_1 = x̂_1``, ``ẑ_i = x̂_i + (x̂_{i-1} - c)/4``, ``x̂ = 2 sign(x_opt) x``,
      ``c = 4.2096874637`` (COCO's internal ``2|x_opt|``; the ``x_opt`` it reports is ``±4.2096874633/2``)
    - f21/f22 Gallagher: ``T_osz(10 - max_j w_j exp(-1/(2d) (R x - y_j)^T C_j (R x - y_j)))^2 + pen(x)``,
      101 (f21) or 21 (f22) peaks ``y_j`` (``"peaks"``), diagonal ``C_j`` (``"scales"``), heights ``w_j``
    - f23 Katsuura: ``10/d^2 ((prod_i (1 + i sum_{j=1}^{32} |2^j z_i - round(2^j z_i)| / 2^j))^(10/d^1.2) - 1) + pen(x)``,
      ``z = R Λ^100 Q (x - x_opt)``
    - f24 Lunacek bi-Rastrigin: ``min(sum (x̂_i - 2.5)^2, d + s sum (x̂_i - μ1)^2) + 10 (d - sum cos 2πz_i) + 10^4 pen(x)``,
      ``x̂ = 2 sign(x_opt) x``, ``z = R Λ^100 Q (x̂ - 2.5)``, ``s = 1 - 1/(2 sqrt(d + 20) - 8.2)``, ``μ1 = -sqrt(5.25 / s)``
    """
    function = _check_int("function", function, 1, 24)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim < 1 or x.shape[-1] < 2:
        raise ValueError(f"x must have shape (..., dimension) with dimension >= 2, got shape {x.shape}")
    if "x_opt" not in data or "f_opt" not in data:
        raise ValueError("data must be instance_data(function, instance, dimension) (keys 'x_opt', 'f_opt', ...)")
    if jnp.shape(data["x_opt"])[-1] != x.shape[-1]:
        raise ValueError(f"x has dimension {x.shape[-1]} but data is for dimension {jnp.shape(data['x_opt'])[-1]}")
    d = {k: jnp.asarray(v, dtype=x.dtype) for k, v in data.items()}
    return _IMPL[function](x, d)


# --------------------------------------------------------------------------- problem objects


@dataclasses.dataclass(frozen=True, eq=False)
class BBOBProblem:
    """One BBOB problem: ``problem(x) == evaluate(problem.function, x, problem.data)``.

    A plain frozen dataclass (every attribute a field), and a pytree: the leaves are
    ``instance`` (as a 0-d integer array) and the arrays of ``data``; ``function`` and
    ``dimension`` are static.  So ``jax.jit(lambda p, x: p(x))`` compiles once per function
    and dimension, and problems of one function and dimension stack with ``jax.tree.map``.
    """

    function: int
    instance: int
    dimension: int
    data: dict

    def __call__(self, x: Array) -> Array:
        """``evaluate(self.function, x, self.data)``."""
        return evaluate(self.function, x, self.data)

    @property
    def x_opt(self) -> np.ndarray:
        """COCO's optimal solution (``best_parameter``)."""
        return np.asarray(self.data["x_opt"])

    @property
    def f_opt(self) -> float:
        """COCO's optimal value offset ``f_opt`` (the value at ``x_opt`` up to ~1e-12)."""
        return float(self.data["f_opt"])

    @property
    def domain(self) -> tuple[tuple[float, float], ...]:
        """The region of interest, ``(-5, 5)`` per coordinate (all optima lie in it)."""
        return ((-5.0, 5.0),) * self.dimension

    @property
    def name(self) -> str:
        """COCO's problem id, e.g. ``bbob_f001_i01_d02``."""
        return f"bbob_f{self.function:03d}_i{int(self.instance):02d}_d{self.dimension:02d}"

    @property
    def smooth(self) -> bool:
        """Whether the function is C^1 everywhere (else see :data:`NONSMOOTH`)."""
        return self.function in _SMOOTH


def _flatten(p: BBOBProblem):
    instance = p.instance
    if isinstance(instance, (int, np.integer)):
        instance = np.asarray(instance)  # an array leaf: lifted (traced), not part of the compile key
    keys = tuple(p.data)
    return (instance, tuple(p.data[k] for k in keys)), (p.function, p.dimension, keys)


def _unflatten(aux, children) -> BBOBProblem:
    function, dimension, keys = aux
    instance, values = children
    if isinstance(instance, np.ndarray) and instance.ndim == 0 and np.issubdtype(instance.dtype, np.integer):
        instance = int(instance)
    p = object.__new__(BBOBProblem)
    for name, value in (("function", function), ("instance", instance), ("dimension", dimension),
                        ("data", dict(zip(keys, values)))):
        object.__setattr__(p, name, value)
    return p


jax.tree_util.register_pytree_node(BBOBProblem, _flatten, _unflatten)


def bbob(function: int, instance: int, dimension: int) -> BBOBProblem:
    """BBOB function ``function`` (1..24), instance ``instance`` (>= 1), in ``dimension`` (>= 2).

    ``bbob(f, i, d).name`` is COCO's id ``bbob_f{f:03d}_i{i:02d}_d{d:02d}``; values equal
    ``cocoex.Suite("bbob", "", "").get_problem_by_function_dimension_instance(f, d, i)``.  COCO
    itself defines dimensions 2, 3, 5, 10, 20, 40 (its C rotations stop at 44); other
    dimensions use the same generators.
    """
    function = _check_int("function", function, 1, 24)
    instance = _check_int("instance", instance, 1)
    dimension = _check_int("dimension", dimension, 2)
    return BBOBProblem(function, instance, dimension, dict(_instance_data(function, instance, dimension)))

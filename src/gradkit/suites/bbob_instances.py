"""COCO's BBOB instance generation (NumPy only): every number one instance of f1-f24 needs.

A port of the legacy generators in COCO's ``suite_bbob_legacy_code.c`` and the
``f_*_bbob_problem_allocate`` functions: the shuffled Park-Miller generator (``bbob2009_unif``),
Box-Muller normals (``bbob2009_gauss``), Gram-Schmidt rotations, ``x_opt`` / ``f_opt``, the
conditioning diagonals and Gallagher's peaks, all bit-identical to COCO's.  The JAX functions
that consume these arrays are in :mod:`gradkit.suites.bbob`, which re-exports
:func:`instance_data`.

Naming of rotations: ``R`` is the rotation COCO draws from seed ``rseed + 1000000`` (its
``rot1``) and ``Q`` the one from ``rseed`` (its ``rot2``); functions with a single rotation
keep it as ``R`` whatever its seed (f9, f19, f21, f22 use ``rseed``).  ``rseed`` is
``function + 10000 * instance``, except f4 (``3 + ...``) and f18 (``17 + ...``), whose
``f_opt`` seeds follow the same rule.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

__all__ = ["instance_data"]

_PEAKS = {21: 101, 22: 21}
"""Number of Gallagher peaks: f21 has 101, f22 has 21."""


# --------------------------------------------------------------------------- validation


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if high is not None and not low <= value <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {value}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


# --------------------------------------------------------------------------- COCO's legacy generators


_LCG_A, _LCG_M = 16807, 2147483647


def _park_miller(seed: int, count: int) -> list[int]:
    """The states ``seed * 16807^k mod (2^31 - 1)``, ``k = 1..count`` (what C's Schrage steps give
    for ``0 < seed < 2^31 - 1``), in blocks of NumPy uint64 products (< 2^62, exact)."""
    block = min(count, 128)
    first, v = [], seed
    for _ in range(block):
        v = v * _LCG_A % _LCG_M
        first.append(v)
    if count == block:
        return first
    out = np.empty(count, dtype=np.uint64)
    out[:block] = first
    step, m = np.uint64(pow(_LCG_A, block, _LCG_M)), np.uint64(_LCG_M)
    for k in range(block, count, block):
        n = min(block, count - k)
        out[k : k + n] = out[k - block : k - block + n] * step % m
    return out.tolist()


@functools.lru_cache(maxsize=4096)
def _unif(n: int, seed: int) -> np.ndarray:
    """``bbob2009_unif``: ``n`` uniforms in (0, 1] from COCO's shuffled Park-Miller generator."""
    seed = abs(int(seed))
    if seed < 1:
        seed = 1
    if seed < _LCG_M:
        states = _park_miller(seed, 40 + n)
    else:  # C's Schrage steps on a seed >= 2^31 - 1 are not a plain modular product: follow them
        states, akt = [], seed
        for _ in range(40 + n):
            tmp = akt // 127773  # (int) floor((double) aktseed / 127773), exact for 0 <= aktseed < 2^53
            akt = 16807 * (akt - tmp * 127773) - 2836 * tmp
            if akt < 0:
                akt += 2147483647
            states.append(akt)
    rgrand = states[39 - 31 : 40][::-1]  # warm-up step i = 39 .. 0 stores rgrand[i] for i < 32
    aktrand = rgrand[0]
    out = [0.0] * n
    for i, akt in enumerate(states[40:]):
        tmp = aktrand // 67108865
        aktrand = rgrand[tmp]
        rgrand[tmp] = akt
        out[i] = aktrand / 2.147483647e9
    arr = np.array(out, dtype=np.float64)
    arr[arr == 0.0] = 1e-99
    arr.flags.writeable = False
    return arr


def _gauss(n: int, seed: int) -> np.ndarray:
    """``bbob2009_gauss``: Box-Muller on ``2 n`` uniforms (libm ``log``/``cos`` as in C)."""
    u = _unif(2 * n, seed).tolist()
    g = [math.sqrt(-2.0 * math.log(u[i])) * math.cos(2.0 * math.pi * u[n + i]) for i in range(n)]
    return np.array([v if v != 0.0 else 1e-99 for v in g], dtype=np.float64)


@functools.lru_cache(maxsize=1024)
def _rotation(seed: int, dim: int) -> np.ndarray:
    """``bbob2009_compute_rotation``: Gram-Schmidt on the columns of a Gaussian matrix."""
    b = _gauss(dim * dim, seed).reshape(dim, dim).T.copy()  # B[i][j] = g[j * dim + i]
    # C runs modified Gram-Schmidt column by column (for i: for j < i: b_i -= <b_i, b_j> b_j, then
    # normalize b_i); updating every later column as soon as b_j is final applies the same
    # operations in the same order to each column, so the result is the same bit for bit.  Sums
    # accumulate top to bottom as in C (np.cumsum is sequential; np.dot and np.sum are not).
    for j in range(dim):
        b[:, j] /= math.sqrt(np.cumsum(b[:, j] * b[:, j])[-1])
        if j + 1 < dim:
            prods = np.cumsum(b[:, j + 1 :] * b[:, j : j + 1], axis=0)[-1]
            b[:, j + 1 :] -= prods * b[:, j : j + 1]
    b.flags.writeable = False
    return b


def _xopt(seed: int, dim: int) -> np.ndarray:
    """``bbob2009_compute_xopt``: uniform on a 1e-4 grid in [-4, 4), never exactly 0."""
    x = 8.0 * np.floor(1e4 * _unif(dim, seed)) / 1e4 - 4.0
    x[x == 0.0] = -1e-5
    return x


def _fopt(function: int, instance: int) -> float:
    """``bbob2009_compute_fopt``: a Cauchy-like draw rounded to 0.01, clipped to [-1000, 1000]."""
    rseed = {4: 3, 18: 17}.get(function, function)
    rrseed = rseed + 10000 * instance
    g1 = _gauss(1, rrseed)[0]
    g2 = _gauss(1, rrseed + 1)[0]
    return min(1000.0, max(-1000.0, math.floor(100.0 * 100.0 * g1 / g2 + 0.5) / 100.0))


def _powers(base: float, dim: int) -> np.ndarray:
    """``pow(base, i / (dim - 1))`` for ``i = 0 .. dim-1``."""
    return np.array([math.pow(base, i / (dim - 1.0)) for i in range(dim)], dtype=np.float64)


def _combine(rot1: np.ndarray, lam: np.ndarray, rot2: np.ndarray) -> np.ndarray:
    """``M = rot1 diag(lam) rot2`` summed over ``k`` in C's order (``M_ij += rot1_ik lam_k rot2_kj``)."""
    m = np.zeros_like(rot1)
    for k in range(rot1.shape[0]):
        m += np.outer(rot1[:, k] * lam[k], rot2[k])
    return m


def _rosenbrock_scale(dim: int) -> float:
    return max(1.0, math.sqrt(dim) / 8.0)


# --------------------------------------------------------------------------- instance data


@functools.lru_cache(maxsize=2048)
def _instance_data(function: int, instance: int, dim: int) -> dict[str, np.ndarray]:
    seed = function + 10000 * instance
    if function == 4:
        seed = 3 + 10000 * instance
    elif function == 18:
        seed = 17 + 10000 * instance
    d: dict[str, Any] = {"f_opt": _fopt(function, instance)}
    rot1 = lambda: _rotation(seed + 1000000, dim)  # COCO's rot1
    rot2 = lambda: _rotation(seed, dim)  # COCO's rot2
    sqrt10 = math.sqrt(10.0)

    if function in (1, 2, 3, 4, 6, 7, 10, 11, 13, 14, 15, 16, 17, 18, 23):
        d["x_opt"] = _xopt(seed, dim)
    if function == 2:
        d["lam"] = _powers(1.0e6, dim)
    elif function == 3:
        d["lam"] = np.array([math.pow(10.0, 0.5 * i / (dim - 1.0)) for i in range(dim)])
    elif function == 4:
        x = d["x_opt"]
        x[::2] = np.abs(x[::2])
        d["lam"] = _powers(sqrt10, dim)
    elif function == 5:
        xo = _xopt(seed, dim)
        d["x_opt"] = np.where(xo < 0.0, -5.0, 5.0)
        d["slope"] = np.where(xo > 0.0, 1.0, -1.0) * _powers(math.sqrt(100.0), dim)
    elif function in (6, 13, 15, 23):
        d["R"], d["Q"] = rot1(), rot2()
        d["lam"] = _powers({6: sqrt10, 13: sqrt10, 15: sqrt10, 23: math.sqrt(100.0)}[function], dim)
        d["M"] = _combine(d["R"], d["lam"], d["Q"])
    elif function == 7:
        d["R"], d["Q"] = rot1(), rot2()
        d["lam"] = np.array([math.sqrt(math.pow(100.0 / 10.0, i / (dim - 1))) for i in range(dim)])
        d["weights"] = _powers(100.0, dim)
    elif function == 8:
        d["x_opt"] = 0.75 * _xopt(seed, dim)
        d["scale"] = _rosenbrock_scale(dim)
    elif function in (9, 19):
        r = rot2()
        scale = _rosenbrock_scale(dim)
        d["R"], d["scale"] = r, scale
        d["x_opt"] = np.cumsum(r, axis=0)[-1] / (2.0 * scale)  # R^T 1 / (2 scale), COCO's best_parameter
    elif function == 10:
        d["R"], d["lam"] = rot1(), _powers(1.0e6, dim)
    elif function in (11, 14):
        d["R"] = rot1()
        if function == 14:
            d["powers"] = np.array([2.0 + (4.0 * i) / (dim - 1.0) for i in range(dim)])
    elif function == 12:
        d["x_opt"] = _xopt(seed + 1000000, dim)  # COCO draws f12's x_opt from rseed + 1000000
        d["R"] = rot1()
    elif function == 16:
        d["R"], d["Q"] = rot1(), rot2()
        d["lam"] = _powers(1.0 / math.sqrt(100.0), dim)
        d["M"] = _combine(d["R"], d["lam"], d["Q"])
    elif function in (17, 18):
        d["R"], d["Q"] = rot1(), rot2()
        d["lam"] = _powers(math.sqrt(10.0 if function == 17 else 1000.0), dim)
    elif function == 20:
        u = _unif(dim, seed)
        d["sign"] = np.where(u - 0.5 < 0.0, -1.0, 1.0)
        d["x_opt"] = d["sign"] * (0.5 * 4.2096874633)  # COCO's best_parameter (x_hat uses ...637)
        d["lam"] = _powers(sqrt10, dim)
    elif function in (21, 22):
        d.update(_gallagher(seed, dim, _PEAKS[function]))
    elif function == 24:
        d["R"], d["Q"] = rot1(), rot2()
        d["sign"] = np.where(_gauss(dim, seed) < 0.0, -1.0, 1.0)
        d["x_opt"] = d["sign"] * (0.5 * 2.5)
        d["lam"] = _powers(math.sqrt(100.0), dim)

    out = {}
    for k, v in d.items():
        arr = np.array(v, dtype=np.float64)
        arr.flags.writeable = False
        out[k] = arr
    return out


def _gallagher(seed: int, dim: int, peaks: int) -> dict[str, np.ndarray]:
    """``f_gallagher_bbob_problem_allocate``: rotation, peak positions, widths and heights."""
    if peaks == 101:
        b, c, cond0 = 10.0, 5.0, math.sqrt(1000.0)
    else:
        b, c, cond0 = 9.8, 4.9, 1000.0
    rot = _rotation(seed, dim)
    # qsort on the uniforms: ties have probability ~0, so a stable argsort gives the same order
    order = np.argsort(_unif(peaks - 1, seed), kind="stable")
    cond = np.empty(peaks)
    cond[0] = cond0
    heights = np.empty(peaks)
    heights[0] = 10.0
    for i in range(1, peaks):
        cond[i] = math.pow(1000.0, float(order[i - 1]) / float(peaks - 2))
        heights[i] = float(i - 1) / float(peaks - 2) * (9.1 - 1.1) + 1.1
    scales = np.empty((peaks, dim))
    for i in range(peaks):
        perm = np.argsort(_unif(dim, seed + 1000 * i), kind="stable")
        scales[i] = [math.pow(cond[i], float(perm[j]) / float(dim - 1) - 0.5) for j in range(dim)]
    u = _unif(dim * peaks, seed)
    x_opt = 0.8 * (b * u[:dim] - c)
    # local[j, i] = sum_k rot[i, k] (b u[j d + k] - c), summed over k in order as in C
    local = np.cumsum(rot[None, :, :] * (b * u.reshape(peaks, 1, dim) - c), axis=-1)[..., -1]
    local[0] *= 0.8
    return {"x_opt": x_opt, "R": rot, "peaks": local, "scales": scales, "heights": heights}


def instance_data(function: int, instance: int, dimension: int) -> dict[str, np.ndarray]:
    """Every number BBOB function ``function``, instance ``instance`` in ``dimension`` needs.

    Returns float64 NumPy arrays (read-only; copy to modify): always ``"x_opt"`` (COCO's
    ``best_parameter``, shape ``(dimension,)``) and ``"f_opt"`` (shape ``()``), plus, per
    function, rotations ``"R"``/``"Q"`` ``(d, d)``, diagonal scalings ``"lam"`` ``(d,)``
    (``lam_i = c^((i-1)/(d-1))`` for the function's conditioning ``c``), f5's ``"slope"``,
    f7's ``"weights"``, f8/f9/f19's ``"scale"`` ``()``, f14's ``"powers"``, f20/f24's
    ``"sign"``, and Gallagher's (f21: 101, f22: 21 peaks) ``"peaks"`` ``(P, d)`` (peak
    centres in rotated coordinates), ``"scales"`` ``(P, d)`` and ``"heights"`` ``(P,)``.
    Keys and shapes depend only on ``(function, dimension)``, so instances stack.

    Seeds are COCO's: ``rseed = function + 10000 * instance`` (f4: ``3 + ...``, f18:
    ``17 + ...``), rotations from ``rseed`` and ``rseed + 1000000``.
    """
    function = _check_int("function", function, 1, 24)
    instance = _check_int("instance", instance, 1)
    dimension = _check_int("dimension", dimension, 2)
    return dict(_instance_data(function, instance, dimension))


FUNCTION_GROUPS: dict[str, tuple[int, ...]] = {
    "separable": (1, 2, 3, 4, 5),
    "moderate": (6, 7, 8, 9),
    "ill-conditioned": (10, 11, 12, 13, 14),
    "multimodal": (15, 16, 17, 18, 19),
    "weakly-structured": (20, 21, 22, 23, 24),
}
"""bbob function groups, as cocopp's ``pproc.DataSetList.dictByFuncGroupSingleObjective``
(there named ``separ``, ``lcond``, ``hcond``, ``multi``, ``mult2``): separable, moderate
(low or moderate conditioning), unimodal with high conditioning, multimodal with adequate
global structure, multimodal with weak global structure."""

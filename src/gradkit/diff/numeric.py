"""Finite differences: derivative, gradient, Jacobian (m x n) and Hessian.

Error model (``ε`` = machine epsilon of the dtype, ``h`` the step, ``|f|`` the
size of the function values, ``M_k`` a bound on the k-th derivative):

* forward  ``(f(x+h) - f(x)) / h``:              error ≈ ``h M_2 / 2 + 2 ε |f| / h``,
  minimised at ``h* ≈ 2 sqrt(ε |f| / M_2)``; default ``h = sqrt(ε) · max(1, |x|)``,
  giving about half the significant digits (~1e-8 relative in float64).
* central  ``(f(x+h) - f(x-h)) / 2h``:           error ≈ ``h² M_3 / 6 + ε |f| / h``,
  minimised at ``h* ≈ (3 ε |f| / M_3)^(1/3)``; default ``h = ε^(1/3) · max(1, |x|)``,
  giving about two thirds of the digits (~1e-11 relative in float64).
* second differences (Hessian) ``(f(x+h e_i+h e_j) - f(x+h e_i-h e_j) - f(x-h e_i+h e_j)
  + f(x-h e_i-h e_j)) / 4h²``: error ≈ ``h² M_4 / 6 + ε |f| / h²``; default
  ``h = ε^(1/4) · max(1, |x|)`` (~1e-8 relative in float64).

The seed's ``epsilon = 1e-13`` is far below these optima: the rounding term
``ε |f| / h`` then dominates (it gives -1.5987 instead of -1.6003 on the seed's
``sin(tan(x)^cos(x) · cos(x)^tan(x))`` at 1).  Steps are scaled per coordinate
to ``|x_i|`` so that large coordinates are not perturbed below their ulp.

Functions accept any callable that maps an array to an array (NumPy or JAX);
inputs are converted to NumPy float arrays (float64 unless given float32).
"""

from __future__ import annotations

from typing import Any, Literal
from collections.abc import Callable

import numpy as np

Scheme = Literal["forward", "central"]


def _as_float_array(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def default_step(x: Any, scheme: Scheme | Literal["second"] = "central") -> np.ndarray:
    """Near-optimal step per coordinate: ``ε^p · max(1, |x|)`` with ``p`` = 1/2 (forward),
    1/3 (central), 1/4 (second differences); ``ε`` is the dtype's machine epsilon."""
    x = _as_float_array(x)
    power = {"forward": 1 / 2, "central": 1 / 3, "second": 1 / 4}[scheme]
    step = np.finfo(x.dtype).eps ** power * np.maximum(1.0, np.abs(x))
    # Make x + h exactly representable so the divided difference uses the true h.
    return ((x + step) - x).astype(x.dtype)


def _eval(f: Callable[[np.ndarray], Any], x: np.ndarray) -> np.ndarray:
    return np.asarray(f(x), dtype=np.result_type(x.dtype, np.float32))


def _steps(x: np.ndarray, h: Any, scheme: str) -> np.ndarray:
    if h is None:
        return default_step(x, scheme)  # type: ignore[arg-type]
    steps = np.broadcast_to(np.asarray(h, dtype=x.dtype), x.shape)
    if np.any(steps <= 0):
        raise ValueError(f"finite-difference step h must be positive, got {h}")
    return steps


def _check_scheme(scheme: str) -> None:
    if scheme not in ("forward", "central"):
        raise ValueError(f"scheme must be 'forward' or 'central', got {scheme!r}")


def derivative(
    f: Callable[[Any], Any], x: Any, h: Any = None, scheme: Scheme = "central"
) -> np.ndarray:
    """``f'(x)`` of an elementwise (or scalar) function.

    forward: ``(f(x + h) - f(x)) / h``;  central: ``(f(x + h) - f(x - h)) / (2h)``.
    """
    _check_scheme(scheme)
    x = _as_float_array(x)
    steps = _steps(x, h, scheme)
    if scheme == "forward":
        return (_eval(f, x + steps) - _eval(f, x)) / steps
    return (_eval(f, x + steps) - _eval(f, x - steps)) / (2 * steps)


def jacobian(
    f: Callable[[Any], Any], x: Any, h: Any = None, scheme: Scheme = "central"
) -> np.ndarray:
    """Jacobian ``J[i, j] = ∂f_i/∂x_j`` of ``f: R^n -> R^m`` as an ``m x n`` matrix.

    Column j is ``(f(x + h_j e_j) - f(x - h_j e_j)) / (2 h_j)`` (central) or
    ``(f(x + h_j e_j) - f(x)) / h_j`` (forward).  ``x`` and ``f(x)`` of any shape are
    flattened (row-major); a scalar ``f`` gives a ``1 x n`` row, as in the seed.
    """
    _check_scheme(scheme)
    x = _as_float_array(x)
    flat = x.reshape(-1)
    steps = _steps(flat, None if h is None else np.broadcast_to(h, x.shape).reshape(-1), scheme)

    def fx(z: np.ndarray) -> np.ndarray:
        return _eval(f, z.reshape(x.shape)).reshape(-1)

    base = fx(flat) if scheme == "forward" else None
    columns = []
    for j in range(flat.size):
        shift = np.zeros_like(flat)
        shift[j] = steps[j]
        if scheme == "forward":
            columns.append((fx(flat + shift) - base) / steps[j])
        else:
            columns.append((fx(flat + shift) - fx(flat - shift)) / (2 * steps[j]))
    return np.stack(columns, axis=1)


def gradient(
    f: Callable[[Any], Any], x: Any, h: Any = None, scheme: Scheme = "central"
) -> np.ndarray:
    """``∇f(x)`` of a scalar ``f``, same shape as ``x``: the transpose of its 1 x n Jacobian."""
    x = _as_float_array(x)
    value = np.asarray(f(x))
    if value.size != 1:
        raise ValueError(f"gradient: f must return a scalar, got shape {value.shape}")
    return jacobian(f, x, h=h, scheme=scheme).reshape(x.shape)


def hessian(f: Callable[[Any], Any], x: Any, h: Any = None) -> np.ndarray:
    """Hessian ``H[i, j] = ∂²f/∂x_i∂x_j`` of a scalar ``f`` by central second differences.

    Diagonal: ``(f(x + 2h e_i) - 2 f(x) + f(x - 2h e_i)) / (4h²)``; off-diagonal: the
    four-point formula in the module docstring.  Returns an ``n x n`` symmetric matrix
    over the flattened ``x``.
    """
    x = _as_float_array(x)
    flat = x.reshape(-1)
    n = flat.size
    steps = default_step(flat, "second") if h is None else _steps(flat, h, "central")

    def fx(z: np.ndarray) -> float:
        value = _eval(f, z.reshape(x.shape))
        if value.size != 1:
            raise ValueError(f"hessian: f must return a scalar, got shape {value.shape}")
        return float(value.reshape(()))

    f0 = fx(flat)
    hess = np.empty((n, n), dtype=flat.dtype)
    for i in range(n):
        ei = np.zeros_like(flat)
        ei[i] = steps[i]
        hess[i, i] = (fx(flat + 2 * ei) - 2 * f0 + fx(flat - 2 * ei)) / (4 * steps[i] ** 2)
        for j in range(i + 1, n):
            ej = np.zeros_like(flat)
            ej[j] = steps[j]
            mixed = (
                fx(flat + ei + ej) - fx(flat + ei - ej) - fx(flat - ei + ej) + fx(flat - ei - ej)
            ) / (4 * steps[i] * steps[j])
            hess[i, j] = hess[j, i] = mixed
    return hess

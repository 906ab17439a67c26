"""Dual numbers: forward-mode automatic differentiation from scratch (seed 000).

A dual number ``a + b ε`` with ``ε² = 0`` carries a value ``a`` and a tangent
``b``.  Taylor's theorem gives ``f(a + b ε) = f(a) + f'(a) b ε``, so evaluating
any composition of the operations below on ``Dual(x, v)`` yields ``f(x)`` and
the directional derivative ``f'(x) v`` in one pass, exact to rounding.

Values and tangents are NumPy arrays (any shape, broadcasting as NumPy does),
so one pass differentiates an elementwise function at many points at once.

The math functions here (``exp``, ``sin``, ...) accept a :class:`Dual` *or* a
plain array; on plain input they fall back to ``jax.numpy``, so a function
written with them runs under the dual route, under ``jax.grad`` and under
finite differences alike (this is what :func:`gradkit.diff.check.check` uses).
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

ArrayLike = Any


class Dual:
    """A dual number ``value + tangent·ε`` with ``ε² = 0``.

    Arithmetic rules (u, v duals; primes are tangents):

    * ``(u ± v)' = u' ± v'``
    * ``(u v)' = u' v + u v'``
    * ``(u / v)' = (u' v - u v') / v²``
    * ``(u ** c)' = c u^(c-1) u'`` for a constant ``c``
    * ``(c ** v)' = c^v ln(c) v'`` for a constant ``c``
    * ``(u ** v)' = u^v (v' ln u + v u' / u)``
    * ``(A @ B)' = A' @ B + A @ B'``
    """

    __slots__ = ("value", "tangent")
    # Make NumPy defer to our reflected operators (ndarray + Dual -> Dual.__radd__).
    __array_ufunc__ = None

    def __init__(self, value: ArrayLike, tangent: ArrayLike | None = None) -> None:
        self.value = np.asarray(value, dtype=np.result_type(np.asarray(value).dtype, np.float64))
        if tangent is None:
            tangent = np.zeros_like(self.value)
        self.tangent = np.asarray(tangent, dtype=self.value.dtype)

    # -- helpers ---------------------------------------------------------
    @staticmethod
    def lift(x: Dual | ArrayLike) -> Dual:
        """Return ``x`` as a dual number (constants get a zero tangent)."""
        return x if isinstance(x, Dual) else Dual(x, None)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def T(self) -> Dual:
        return Dual(self.value.T, self.tangent.T)

    def __len__(self) -> int:
        return len(self.value)

    def __getitem__(self, index: Any) -> Dual:
        return Dual(self.value[index], self.tangent[index])

    def reshape(self, *shape: Any) -> Dual:
        return Dual(self.value.reshape(*shape), self.tangent.reshape(*shape))

    def sum(self, axis: Any = None, keepdims: bool = False) -> Dual:
        """``(Σ u)' = Σ u'``."""
        return sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Dual:
        """``(mean u)' = mean u'``."""
        return Dual(
            np.mean(self.value, axis=axis, keepdims=keepdims),
            np.mean(self.tangent, axis=axis, keepdims=keepdims),
        )

    def __repr__(self) -> str:
        return f"{self.value!r} + {self.tangent!r}*ε"

    # -- arithmetic ------------------------------------------------------
    def __neg__(self) -> Dual:
        return Dual(-self.value, -self.tangent)

    def __pos__(self) -> Dual:
        return self

    def __abs__(self) -> Dual:
        return abs_(self)

    def __add__(self, other: Any) -> Dual:
        o = Dual.lift(other)
        return Dual(self.value + o.value, self.tangent + o.tangent)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Dual:
        o = Dual.lift(other)
        return Dual(self.value - o.value, self.tangent - o.tangent)

    def __rsub__(self, other: Any) -> Dual:
        return Dual.lift(other) - self

    def __mul__(self, other: Any) -> Dual:
        o = Dual.lift(other)
        return Dual(self.value * o.value, self.tangent * o.value + self.value * o.tangent)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Dual:
        o = Dual.lift(other)
        quotient = self.value / o.value
        return Dual(quotient, (self.tangent - quotient * o.tangent) / o.value)

    def __rtruediv__(self, other: Any) -> Dual:
        return Dual.lift(other) / self

    def __pow__(self, other: Any) -> Dual:
        if not isinstance(other, Dual):
            exponent = np.asarray(other, dtype=self.value.dtype)
            # Power rule: valid for negative bases with integer exponents too.
            return Dual(
                self.value**exponent,
                exponent * self.value ** (exponent - 1) * self.tangent,
            )
        power = self.value**other.value
        return Dual(
            power,
            power * (other.tangent * np.log(self.value) + other.value * self.tangent / self.value),
        )

    def __rpow__(self, other: Any) -> Dual:
        base = np.asarray(other, dtype=self.value.dtype)
        power = base**self.value
        return Dual(power, power * np.log(base) * self.tangent)

    def __matmul__(self, other: Any) -> Dual:
        o = Dual.lift(other)
        return Dual(self.value @ o.value, self.tangent @ o.value + self.value @ o.tangent)

    def __rmatmul__(self, other: Any) -> Dual:
        return Dual.lift(other) @ self


# -- elementary functions ----------------------------------------------------


def _unary(
    name: str,
    primal: Callable[[np.ndarray], np.ndarray],
    slope: Callable[[np.ndarray, np.ndarray], np.ndarray],
    fallback: Callable[[ArrayLike], Any],
    rule: str,
) -> Callable[[Any], Any]:
    """Build ``f(u)`` with ``f(u)' = slope(u, f(u)) · u'``; non-duals use ``fallback``."""

    def fn(x: Any) -> Any:
        if not isinstance(x, Dual):
            return fallback(x)
        y = primal(x.value)
        return Dual(y, slope(x.value, y) * x.tangent)

    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = f"``{name}`` on dual numbers: {rule}. Plain input falls back to ``jax.numpy``."
    return fn


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Stable for large |x|: never exponentiates a positive number.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


exp = _unary("exp", np.exp, lambda x, y: y, jnp.exp, "(e^u)' = e^u u'")
log = _unary("log", np.log, lambda x, y: 1.0 / x, jnp.log, "(ln u)' = u'/u")
sin = _unary("sin", np.sin, lambda x, y: np.cos(x), jnp.sin, "(sin u)' = cos(u) u'")
cos = _unary("cos", np.cos, lambda x, y: -np.sin(x), jnp.cos, "(cos u)' = -sin(u) u'")
tan = _unary("tan", np.tan, lambda x, y: 1.0 + y * y, jnp.tan, "(tan u)' = (1 + tan² u) u'")
sqrt = _unary("sqrt", np.sqrt, lambda x, y: 0.5 / y, jnp.sqrt, "(√u)' = u' / (2√u)")
tanh = _unary("tanh", np.tanh, lambda x, y: 1.0 - y * y, jnp.tanh, "(tanh u)' = (1 - tanh² u) u'")
sigmoid = _unary(
    "sigmoid",
    _sigmoid,
    lambda x, y: y * (1.0 - y),
    lambda x: 1.0 / (1.0 + jnp.exp(-jnp.asarray(x))),
    "(σ(u))' = σ(u)(1 - σ(u)) u'",
)
abs_ = _unary("abs", np.abs, lambda x, y: np.sign(x), jnp.abs, "|u|' = sign(u) u' (0 at u = 0)")


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Sum of the entries: ``(Σ u)' = Σ u'``. Plain input falls back to ``jnp.sum``."""
    if not isinstance(x, Dual):
        return jnp.sum(jnp.asarray(x), axis=axis, keepdims=keepdims)
    return Dual(
        np.sum(x.value, axis=axis, keepdims=keepdims),
        np.sum(x.tangent, axis=axis, keepdims=keepdims),
    )


def power(x: Any, exponent: Any) -> Any:
    """``x ** exponent`` for duals or plain arrays (see :meth:`Dual.__pow__`)."""
    return x**exponent


# -- drivers ------------------------------------------------------------------


def _as_float_array(x: ArrayLike) -> np.ndarray:
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def _primal_and_tangent(out: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(out, Dual):
        return out.value, out.tangent
    # f did not depend on its input: a constant has a zero derivative.
    value = np.asarray(out, dtype=np.float64)
    return value, np.zeros_like(value)


def jvp(f: Callable[[Any], Any], x: ArrayLike, v: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass: ``(f(x), ∂f(x)·v)`` from ``f(Dual(x, v))``."""
    x = _as_float_array(x)
    v = np.asarray(v, dtype=x.dtype)
    if v.shape != x.shape:
        raise ValueError(f"jvp: tangent shape {v.shape} does not match input shape {x.shape}")
    return _primal_and_tangent(f(Dual(x, v)))


def derivative(f: Callable[[Any], Any], x: ArrayLike) -> np.ndarray:
    """``f'(x)`` for a scalar function, in one dual pass with tangent 1.

    For array ``x`` this is the seed's ``auto_diff``: every entry gets tangent 1,
    so for an *elementwise* ``f`` the result is ``f'`` at every point of ``x``.
    Example (seed 000): ``derivative(lambda x: x*(3*x+2)**0.5, 2.0) = 3.8890873``.
    """
    x = _as_float_array(x)
    return jvp(f, x, np.ones_like(x))[1]


def gradient(f: Callable[[Any], Any], x: ArrayLike) -> np.ndarray:
    """``∇f(x)`` for scalar ``f``, one dual pass per coordinate:
    ``∂f/∂x_i = tangent of f(Dual(x, e_i))``.  Same shape as ``x``."""
    x = _as_float_array(x)
    grad = np.empty(x.shape, dtype=x.dtype)
    for i in range(x.size):
        basis = np.zeros(x.size, dtype=x.dtype)
        basis[i] = 1.0
        _, tangent = jvp(f, x, basis.reshape(x.shape))
        if np.ndim(tangent) != 0:
            raise ValueError(
                f"gradient: f must return a scalar, got shape {np.shape(tangent)}; "
                "use jacobian for vector outputs"
            )
        grad.flat[i] = tangent
    return grad


def jacobian(f: Callable[[Any], Any], x: ArrayLike) -> np.ndarray:
    """Jacobian ``J[i, j] = ∂f_i/∂x_j`` (shape m x n, as in the seed), one pass per column."""
    x = _as_float_array(x)
    flat = x.reshape(-1)
    columns = []
    for j in range(flat.size):
        basis = np.zeros_like(flat)
        basis[j] = 1.0
        _, tangent = jvp(lambda z: f(z.reshape(x.shape)), flat, basis)
        columns.append(np.reshape(tangent, -1))
    return np.stack(columns, axis=1)

"""Test functions for optimizers: 2D landscapes and their N-dimensional versions.

Every landscape is a pure ``jax.numpy`` function of ``x`` with shape ``(..., dim)``
(the last axis holds the coordinates, leading axes batch), returning shape
``(...)``.  Each carries its formula, a plotting domain, every known global
minimizer and the global minimum value ``f*``.

Minimizers and minimum values are exact to double precision: closed forms where
they exist (McCormick ``(1/2 - π/3, -1/2 - π/3)``, ``f* = -√3/2 - π/3``), else
the correctly rounded float64 of a Newton solve in exact rational arithmetic
(six-hump camel, Himmelblau, Styblinski-Tang: polynomial stationarity
conditions), so a tolerance of ``1e-12`` on ``|f - f*|`` means what it says.
``Landscape.f_star(dtype)`` is the minimum as a run in ``dtype`` can see it
(float32 cannot resolve six-hump camel's ``f*`` to 1e-12).

The ``saddle`` landscape ``x² - y²`` is unbounded below: it has no minimizers
(``minima == ()``), ``min_value == f_star(...) == -inf`` and
``bounded_below`` is False, so ``|f - f*| <= tol`` can never hold and
``distance_to_minimizer`` is ``inf`` everywhere — a run that stops at its
saddle point is never a success.

>>> import jax, jax.numpy as jnp
>>> f = get("himmelblau")
>>> float(f(jnp.array([3.0, 2.0])))
0.0
>>> get("rastrigin", dim=3).minima
((0.0, 0.0, 0.0),)
>>> bowl = get("quadratic", condition=1e3)   # an ill-conditioned bowl: Hessian eigenvalues 1 .. 1e3
>>> jnp.linalg.eigvalsh(jax.hessian(bowl)(jnp.zeros(2))).tolist()
[1.0, 1000.0]
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gradkit import _compile

Array = jax.Array
PI = math.pi


@dataclasses.dataclass(frozen=True)
class Landscape:
    """A named objective ``f: R^dim -> R`` with its known global minimizers.

    ``minima`` holds every global minimizer (empty when ``f`` is unbounded below);
    ``min_value`` the global minimum value ``f* = f(x*)`` (``-inf`` when unbounded below),
    exact to double precision: its relative error is at most ``value_tol``;
    ``saddles`` known saddle points; ``log_scale`` suggests log-spaced contour levels;
    ``any_dim`` marks landscapes defined in every dimension (``get(name, dim=n)``).
    """

    name: str
    fn: Callable[[Array], Array]
    formula: str
    dim: int
    domain: tuple[tuple[float, float], ...]
    minima: tuple[tuple[float, ...], ...]
    min_value: float
    value_tol: float = 1e-15
    saddles: tuple[tuple[float, ...], ...] = ()
    log_scale: bool = False
    any_dim: bool = False

    def __call__(self, x: Array) -> Array:
        x = jnp.asarray(x)
        if x.shape[-1:] != (self.dim,):
            raise ValueError(
                f"landscape {self.name!r} takes points with last axis {self.dim}, got shape {x.shape}"
            )
        return self.fn(x)

    @property
    def minimizers(self) -> tuple[tuple[float, ...], ...]:
        """Every known global minimizer ``x*`` (the same tuple as ``minima``)."""
        return self.minima

    @property
    def bounded_below(self) -> bool:
        """``True`` when ``f`` has a finite global minimum (``min_value > -inf``, minimizers known)."""
        return bool(self.minima) and math.isfinite(self.min_value)

    def minima_array(self, dtype: Any = None) -> Array:
        """The global minimizers as a ``(k, dim)`` array (``k = 0`` when unbounded below)."""
        return jnp.asarray(self.minima, dtype=dtype).reshape(-1, self.dim)

    def distance_to_minimizer(self, x: Array) -> Array:
        """``min_k ||x - x*_k||₂`` for ``x`` of shape ``(..., dim)``: Euclidean distance to the nearest
        global minimizer, shape ``(...)``; ``inf`` everywhere when there is none (unbounded below)."""
        x = jnp.asarray(x)
        if x.shape[-1:] != (self.dim,):
            raise ValueError(
                f"distance_to_minimizer: x must have last axis {self.dim} for {self.name!r}, got shape {x.shape}"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        if not self.minima:
            return jnp.full(x.shape[:-1], jnp.inf, dtype=x.dtype)
        mins = self.minima_array(x.dtype)
        return jnp.min(jnp.linalg.norm(x[..., None, :] - mins, axis=-1), axis=-1)

    def distance_to_minimum(self, x: Array) -> Array:
        """Alias of :meth:`distance_to_minimizer` (kept for existing callers)."""
        return self.distance_to_minimizer(x)

    def f_star(self, dtype: Any = None) -> float:
        """The minimum as seen in ``dtype``: ``min_k f(round(x*_k))`` with ``f`` evaluated in ``dtype`` at
        each minimizer rounded to ``dtype`` — the value a perfect run in that precision reaches, so
        ``|f - f_star(float32)| <= 1e-6`` is attainable.  float64 (or wider) gives ``min_value``;
        ``-inf`` when unbounded below.  ``dtype=None``: jax's default float dtype.
        """
        dt = np.dtype(jnp.result_type(float) if dtype is None else dtype)
        if not jnp.issubdtype(dt, jnp.floating):
            raise TypeError(f"f_star: dtype must be a floating dtype, got {dt}")
        if not self.bounded_below:
            return -math.inf
        if dt.itemsize >= 8:
            return self.min_value
        return self._f_star_low_precision(dt.name)

    def _f_star_low_precision(self, dtype_name: str) -> float:
        cache = self._cache
        if dtype_name not in cache:
            # op by op, as a user evaluates f at a point (a compiled f may differ in the last bit)
            values = self.fn(self.minima_array(jnp.dtype(dtype_name)))
            cache[dtype_name] = float(jnp.min(values))
        return cache[dtype_name]

    @functools.cached_property
    def _cache(self) -> dict[str, float]:
        return {}

    @functools.cached_property
    def _quick_fn(self) -> Callable[[Array], Array]:
        """``fn`` compiled once with XLA's quick CPU settings, for :attr:`f_scale` (a median over
        10⁴ points): op by op it costs ~0.2 s per landscape, ~1 s of a race's first run."""
        return _compile.quick_jit(self.fn)

    @functools.cached_property
    def f_scale(self) -> float:
        """A characteristic magnitude of ``f - f*`` over the domain, for relative tolerances:
        ``median |f(x) - f*|`` over a 101 x 101 grid of the domain (2D) or 4096 points drawn
        uniformly from it with a fixed seed (other dims), evaluated once and cached.
        Unbounded below: the median of ``|f(x) - f(s)|`` with ``s`` the first saddle (else the
        sample median of ``f``), since ``f - f*`` is infinite.
        """
        lo = np.array([b[0] for b in self.domain], dtype=np.float64)
        hi = np.array([b[1] for b in self.domain], dtype=np.float64)
        if self.dim == 2:
            axes = [np.linspace(lo[i], hi[i], 101) for i in range(2)]
            points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
        else:
            points = lo + (hi - lo) * np.random.default_rng(0).random((4096, self.dim))
        values = np.asarray(self._quick_fn(jnp.asarray(points, dtype=jnp.float32)), dtype=np.float64)
        values = values[np.isfinite(values)]
        if self.bounded_below:
            reference = self.min_value
        elif self.saddles:
            reference = float(self._quick_fn(jnp.asarray(self.saddles[0], dtype=jnp.float32)))
        else:
            reference = float(np.median(values))
        return float(np.median(np.abs(values - reference)))


def _xy(x: Array) -> tuple[Array, Array]:
    return x[..., 0], x[..., 1]


def _safe_norm(x: Array) -> Array:
    """``||x||`` along the last axis with gradient 0 (a valid subgradient) at the origin."""
    sq = jnp.sum(x * x, axis=-1)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


# -- 2D only ---------------------------------------------------------------------


def seed_quadratic(x: Array) -> Array:
    """``f = 0.1 w1² + 2 w2²`` — the seed 002 exercise."""
    w1, w2 = _xy(x)
    return 0.1 * w1**2 + 2.0 * w2**2


def seed_quartic(x: Array) -> Array:
    """``f = 2x⁴ + y⁴ - 4x² + 2y²`` (seed 000), minima (±1, 0), f = -2."""
    a, b = _xy(x)
    return 2 * a**4 + b**4 - 4 * a**2 + 2 * b**2


def seed_gaussian_bowl(x: Array) -> Array:
    """``f = 2x² + 3y² - exp(-(x² + y²))`` (seed 000), minimum (0, 0), f = -1."""
    a, b = _xy(x)
    return 2 * a**2 + 3 * b**2 - jnp.exp(-(a**2 + b**2))


def seed_newton(x: Array) -> Array:
    """``f = x⁴ + 0.9y⁴ + 4x² + 2y² - xy - 0.2x²y`` (seed 003 Newton example)."""
    a, b = _xy(x)
    return a**4 + 0.9 * b**4 + 4 * a**2 + 2 * b**2 - a * b - 0.2 * a**2 * b


def six_hump_camel(x: Array) -> Array:
    """``f = (4 - 2.1x² + x⁴/3)x² + xy + (-4 + 4y²)y²``."""
    a, b = _xy(x)
    return (4 - 2.1 * a**2 + a**4 / 3) * a**2 + a * b + (-4 + 4 * b**2) * b**2


def beale(x: Array) -> Array:
    """``f = (1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²``."""
    a, b = _xy(x)
    return (1.5 - a + a * b) ** 2 + (2.25 - a + a * b**2) ** 2 + (2.625 - a + a * b**3) ** 2


def booth(x: Array) -> Array:
    """``f = (x + 2y - 7)² + (2x + y - 5)²``."""
    a, b = _xy(x)
    return (a + 2 * b - 7) ** 2 + (2 * a + b - 5) ** 2


def himmelblau(x: Array) -> Array:
    """``f = (x² + y - 11)² + (x + y² - 7)²`` — four global minima."""
    a, b = _xy(x)
    return (a**2 + b - 11) ** 2 + (a + b**2 - 7) ** 2


def goldstein_price(x: Array) -> Array:
    """Goldstein-Price: ``[1 + (x+y+1)²(19 - 14x + 3x² - 14y + 6xy + 3y²)] ·
    [30 + (2x - 3y)²(18 - 32x + 12x² + 48y - 36xy + 27y²)]``."""
    a, b = _xy(x)
    first = 1 + (a + b + 1) ** 2 * (19 - 14 * a + 3 * a**2 - 14 * b + 6 * a * b + 3 * b**2)
    second = 30 + (2 * a - 3 * b) ** 2 * (18 - 32 * a + 12 * a**2 + 48 * b - 36 * a * b + 27 * b**2)
    return first * second


def matyas(x: Array) -> Array:
    """``f = 0.26(x² + y²) - 0.48xy``."""
    a, b = _xy(x)
    return 0.26 * (a**2 + b**2) - 0.48 * a * b


def levi13(x: Array) -> Array:
    """Lévi N.13: ``sin²(3πx) + (x-1)²(1 + sin²(3πy)) + (y-1)²(1 + sin²(2πy))``."""
    a, b = _xy(x)
    return (
        jnp.sin(3 * PI * a) ** 2
        + (a - 1) ** 2 * (1 + jnp.sin(3 * PI * b) ** 2)
        + (b - 1) ** 2 * (1 + jnp.sin(2 * PI * b) ** 2)
    )


def three_hump_camel(x: Array) -> Array:
    """``f = 2x² - 1.05x⁴ + x⁶/6 + xy + y²``."""
    a, b = _xy(x)
    return 2 * a**2 - 1.05 * a**4 + a**6 / 6 + a * b + b**2


def mccormick(x: Array) -> Array:
    """``f = sin(x + y) + (x - y)² - 1.5x + 2.5y + 1``."""
    a, b = _xy(x)
    return jnp.sin(a + b) + (a - b) ** 2 - 1.5 * a + 2.5 * b + 1


def saddle(x: Array) -> Array:
    """``f = x² - y²``: a saddle at the origin, unbounded below (runs on it diverge)."""
    a, b = _xy(x)
    return a**2 - b**2


# -- N-dimensional ------------------------------------------------------------------


def rosenbrock(x: Array) -> Array:
    """Chained Rosenbrock ``f = Σ_i 100 (x_{i+1} - x_i²)² + (1 - x_i)²``, minimum at ones."""
    head, tail = x[..., :-1], x[..., 1:]
    return jnp.sum(100.0 * (tail - head**2) ** 2 + (1.0 - head) ** 2, axis=-1)


def rastrigin(x: Array) -> Array:
    """``f = 10 n + Σ_i (x_i² - 10 cos(2π x_i))``, minimum 0 at the origin.

    Evaluated as the identical ``Σ_i (x_i² + 20 sin²(π x_i))`` (``1 - cos 2t = 2 sin² t``): no
    cancellation, so ``f`` is exactly 0 at the minimizer and accurate near it in every dtype.
    """
    return jnp.sum(x**2 + 20.0 * jnp.sin(PI * x) ** 2, axis=-1)


def ackley(x: Array) -> Array:
    """``f = -20 exp(-0.2 sqrt(mean x²)) - exp(mean cos 2πx) + 20 + e``, minimum 0 at 0.

    Not differentiable at the minimizer (a cone tip); the gradient there is defined
    as 0, a valid subgradient.  Evaluated as the identical
    ``-20 expm1(-0.2 sqrt(mean x²)) - e expm1(-2 mean sin²(πx))`` (``cos 2t - 1 = -2 sin² t``):
    no cancellation of ``20 + e`` against the exponentials, so ``f`` is exactly 0 at the
    minimizer and accurate near it in float32.
    """
    n = x.shape[-1]
    radius = _safe_norm(x) / math.sqrt(n)
    return -20.0 * jnp.expm1(-0.2 * radius) - math.e * jnp.expm1(-2.0 * jnp.mean(jnp.sin(PI * x) ** 2, axis=-1))


def styblinski_tang(x: Array) -> Array:
    """``f = ½ Σ_i (x_i⁴ - 16 x_i² + 5 x_i)``; minimum ``-39.16616570377141546… n`` at every
    ``x_i = -2.90353402777117709…``, the smallest root of ``2x³ - 16x + 5/2 = 0``."""
    return 0.5 * jnp.sum(x**4 - 16 * x**2 + 5 * x, axis=-1)


def make_quadratic(condition: float = 100.0) -> Callable[[Array], Array]:
    """``f = ½ Σ_i λ_i x_i²`` with ``λ_i = κ^{i/(n-1)}`` from 1 to the condition number κ."""

    def quadratic(x: Array) -> Array:
        n = x.shape[-1]
        exponents = jnp.arange(n, dtype=x.dtype) / max(n - 1, 1)
        return 0.5 * jnp.sum(jnp.asarray(condition, x.dtype) ** exponents * x**2, axis=-1)

    return quadratic


# -- registry -------------------------------------------------------------------------

# Correctly rounded float64 of the exact minimizers / minima (Newton's method in exact
# rational arithmetic from the float64 guess, 8 iterations, then rounded once; the
# stationarity residual before rounding is below 1e-40).
# Styblinski-Tang, per coordinate: x* = -2.90353402777117709512, f* = -39.16616570377141546389.
_STYBLINSKI_X = -2.903534027771177
_STYBLINSKI_F = -39.16616570377141
# Six-hump camel: x* = ±(0.08984201310031806242, -0.71265640302073963340),
# f* = -1.03162845348987735042.  The often-quoted (0.0898420136830, -0.7126564032704) is off by
# 6e-10 (its gradient is 4e-9); its value agrees with f* to 2e-18.
_SIX_HUMP_X = (0.08984201310031806, -0.7126564030207396)
_SIX_HUMP_F = -1.0316284534898774
# McCormick: x* = (1/2 - π/3, -1/2 - π/3), f* = -√3/2 - π/3 (sin(x+y) = sin(-2π/3)).
# x* = (-0.54719755119659774615, -1.54719755119659774615), f* = -1.91322295498103639292.
_MCCORMICK_X = (-0.5471975511965977, -1.5471975511965979)
_MCCORMICK_F = -1.9132229549810364
_HIMMELBLAU_MINIMA = (
    (3.0, 2.0),
    (-2.805118086952745, 3.131312518250573),
    (-3.779310253377747, -3.2831859912861696),
    (3.5844283403304917, -1.8481265269644036),
)


def _fixed(name: str, fn: Callable[[Array], Array], formula: str, domain: Any, minima: Any,
           min_value: float, **extra: Any) -> Callable[..., Landscape]:
    def factory(dim: int = 2) -> Landscape:
        if dim != 2:
            raise ValueError(f"landscape {name!r} is 2D only, got dim={dim}")
        return Landscape(name, fn, formula, 2, tuple(domain), tuple(minima), min_value, **extra)

    return factory


def _nd(name: str, fn_for: Callable[..., Callable[[Array], Array]], formula: str, bound: tuple[float, float],
        minimizer: Callable[[int], tuple[float, ...]], value: Callable[[int], float], min_dim: int = 1,
        **extra: Any) -> Callable[..., Landscape]:
    def factory(dim: int = 2, **params: Any) -> Landscape:
        if not isinstance(dim, int) or dim < min_dim:
            raise ValueError(f"landscape {name!r} needs an int dim >= {min_dim}, got {dim!r}")
        fn = fn_for(**params)
        return Landscape(name, fn, formula, dim, (bound,) * dim, (minimizer(dim),), value(dim), any_dim=True,
                         **extra)

    return factory


def _plain(fn: Callable[[Array], Array]) -> Callable[..., Callable[[Array], Array]]:
    def build(**params: Any) -> Callable[[Array], Array]:
        if params:
            raise ValueError(f"{fn.__name__} takes no parameters, got {sorted(params)}")
        return fn

    return build


def _quadratic_builder(condition: float = 100.0) -> Callable[[Array], Array]:
    if isinstance(condition, (int, float)) and condition < 1:
        raise ValueError(f"quadratic: condition must be >= 1, got {condition}")
    return make_quadratic(condition)


SUITE: dict[str, Callable[..., Landscape]] = {
    "seed_quadratic": _fixed("seed_quadratic", seed_quadratic, "0.1 w1^2 + 2 w2^2",
                             ((-6, 6), (-3, 3)), [(0.0, 0.0)], 0.0),
    "seed_quartic": _fixed("seed_quartic", seed_quartic, "2x^4 + y^4 - 4x^2 + 2y^2",
                           ((-1.8, 1.8), (-1.5, 1.5)), [(1.0, 0.0), (-1.0, 0.0)], -2.0,
                           saddles=((0.0, 0.0),)),
    "seed_gaussian_bowl": _fixed("seed_gaussian_bowl", seed_gaussian_bowl,
                                 "2x^2 + 3y^2 - exp(-(x^2 + y^2))", ((-1, 1), (-1, 1)), [(0.0, 0.0)], -1.0),
    "seed_newton": _fixed("seed_newton", seed_newton, "x^4 + 0.9y^4 + 4x^2 + 2y^2 - xy - 0.2x^2y",
                          ((-5, 5), (-5, 5)), [(0.0, 0.0)], 0.0, log_scale=True),
    "six_hump_camel": _fixed("six_hump_camel", six_hump_camel, "(4 - 2.1x^2 + x^4/3)x^2 + xy + (-4 + 4y^2)y^2",
                             ((-2, 2), (-1, 1)),
                             [_SIX_HUMP_X, (-_SIX_HUMP_X[0], -_SIX_HUMP_X[1])], _SIX_HUMP_F),
    "beale": _fixed("beale", beale, "(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
                    ((-4.5, 4.5), (-4.5, 4.5)), [(3.0, 0.5)], 0.0, log_scale=True),
    "booth": _fixed("booth", booth, "(x + 2y - 7)^2 + (2x + y - 5)^2", ((-10, 10), (-10, 10)),
                    [(1.0, 3.0)], 0.0, log_scale=True),
    "himmelblau": _fixed("himmelblau", himmelblau, "(x^2 + y - 11)^2 + (x + y^2 - 7)^2", ((-5, 5), (-5, 5)),
                         _HIMMELBLAU_MINIMA, 0.0, log_scale=True),
    "goldstein_price": _fixed("goldstein_price", goldstein_price,
                              "[1 + (x+y+1)^2(19-14x+3x^2-14y+6xy+3y^2)][30 + (2x-3y)^2(18-32x+12x^2+48y-36xy+27y^2)]",
                              ((-2, 2), (-2, 2)), [(0.0, -1.0)], 3.0, log_scale=True),
    "matyas": _fixed("matyas", matyas, "0.26(x^2 + y^2) - 0.48xy", ((-10, 10), (-10, 10)), [(0.0, 0.0)], 0.0,
                     log_scale=True),
    "levi13": _fixed("levi13", levi13, "sin^2(3πx) + (x-1)^2(1 + sin^2(3πy)) + (y-1)^2(1 + sin^2(2πy))",
                     ((-10, 10), (-10, 10)), [(1.0, 1.0)], 0.0),
    "three_hump_camel": _fixed("three_hump_camel", three_hump_camel, "2x^2 - 1.05x^4 + x^6/6 + xy + y^2",
                               ((-5, 5), (-5, 5)), [(0.0, 0.0)], 0.0, log_scale=True),
    "mccormick": _fixed("mccormick", mccormick, "sin(x + y) + (x - y)^2 - 1.5x + 2.5y + 1",
                        ((-1.5, 4), (-3, 4)), [_MCCORMICK_X], _MCCORMICK_F),
    "saddle": _fixed("saddle", saddle, "x^2 - y^2 (unbounded below)", ((-2, 2), (-2, 2)), [],
                     -math.inf, saddles=((0.0, 0.0),)),
    "rosenbrock": _nd("rosenbrock", _plain(rosenbrock), "Σ 100(x_{i+1} - x_i^2)^2 + (1 - x_i)^2", (-2.0, 2.0),
                      lambda n: (1.0,) * n, lambda n: 0.0, min_dim=2, log_scale=True),
    "rastrigin": _nd("rastrigin", _plain(rastrigin), "10n + Σ (x_i^2 - 10 cos 2πx_i)", (-5.12, 5.12),
                     lambda n: (0.0,) * n, lambda n: 0.0),
    "ackley": _nd("ackley", _plain(ackley), "-20 exp(-0.2 sqrt(mean x^2)) - exp(mean cos 2πx) + 20 + e",
                  (-5.0, 5.0), lambda n: (0.0,) * n, lambda n: 0.0),
    "styblinski_tang": _nd("styblinski_tang", _plain(styblinski_tang), "½ Σ (x_i^4 - 16x_i^2 + 5x_i)",
                           (-5.0, 5.0), lambda n: (_STYBLINSKI_X,) * n, lambda n: _STYBLINSKI_F * n),
    "quadratic": _nd("quadratic", _quadratic_builder, "½ Σ κ^{i/(n-1)} x_i^2 (condition number κ)",
                     (-5.0, 5.0), lambda n: (0.0,) * n, lambda n: 0.0, log_scale=True),
}


def names() -> tuple[str, ...]:
    """Names of every landscape in the suite."""
    return tuple(SUITE)


def get(name: str, dim: int = 2, **params: Any) -> Landscape:
    """The landscape ``name`` in dimension ``dim`` (``params``: e.g. ``condition`` for ``quadratic``).

    Raises ``ValueError`` listing the valid names when ``name`` is unknown.
    """
    if name not in SUITE:
        raise ValueError(f"unknown landscape {name!r}; valid names: {', '.join(SUITE)}")
    factory = SUITE[name]
    return factory(dim, **params) if params else factory(dim)

"""CUTEst's unconstrained problems (through ``sif2jax``) as a gradkit benchmark suite.

``sif2jax`` is an optional dependency (``pip install -e ".[suites]"``); it is imported on first
use, never at ``import gradkit``.

>>> rosen, beale = problems(["rosenbr", "BEALE"])
>>> round(float(rosen(rosen.x0)), 4), rosen.f_opt, beale.dimension
(24.2, 0.0, 2)

A race keeps what fits (``kept, skipped = select(problems(), runs=64, steps=1000,
max_bytes=2**30)``) and judges runs against ``reference_values(kept, best_found)``
(``{name: (value, source)}``).

What a problem is.  :class:`CUTEstProblem` wraps one sif2jax problem: ``x0`` is the SIF file's
starting point (float64 NumPy, read-only), ``dimension`` its length and ``problem(x)`` the
objective, pure ``jax.numpy`` (``jit``/``vmap``/``grad`` all work; ``x`` has shape
``(dimension,)``).  Run CUTEst in float64 (``with jax.enable_x64(True):``): the problems were
written and their optimal values stated for double precision; in float32 ``10FOLDTRLS`` already
overflows at ``x0`` (:func:`broken_problems`).  sif2jax 0.0.8 has 197 unconstrained problems
(its tuple lists SCURLY10, SCURLY20 and SCURLY30 twice), of 2 to 123 200 variables.

Optimal values.  ``f_opt`` is sif2jax's ``expected_objective_value`` as corrected by the audit
of :mod:`gradkit.suites.cutest_audit` (:data:`F_OPT_AUDIT`, re-exported here): sif2jax's
numbers are transcribed by hand and many are wrong, so every one of sif2jax 0.0.8
(:data:`AUDITED_SIF2JAX_VERSION`) was checked by L-BFGS and Newton runs.  35 are corrected
(``f_opt_source == "sif2jax (audited)"``), 11 disputed (``f_opt is None``; tables then use the
best value found, :func:`reference_values`); ``f_opt_sif2jax`` always keeps sif2jax's number
and ``f_opt_note`` the evidence.  An audit entry applies only while sif2jax still states the
audited value, so a fixed sif2jax wins.

Budgets and scores.  :func:`fits` and :func:`select` skip problems that would not fit a memory
or time budget and say why; :func:`is_solved`, :func:`solved_threshold`,
:func:`more_wild_solved` and :func:`reference_values` judge runs against ``f_opt`` or the best
value found.  They live in :mod:`gradkit.suites.cutest_budget` and are re-exported here.

Broken problems.  :func:`problems` skips the problems listed by :func:`broken_problems` and
rejects explicitly requested ones with the reason.  In float64 every problem evaluates to a
finite value and gradient at ``x0``; the one listed is 10FOLDTRLS, unbounded below as sif2jax
(and pycutest) read its SIF file.  In float32 it also overflows at ``x0``.

Import cost.  ``import sif2jax`` takes a minute or more (sif2jax 0.0.8's ``CLEUVEN7`` module runs
36 000 eager scatter updates at import) and switches ``jax_enable_x64`` on globally (its LISWET
modules call ``jax.config.update``).  This module imports only
``sif2jax.cutest._unconstrained_minimisation`` (about a second): when ``sif2jax`` is not yet
imported it registers ``sif2jax`` and ``sif2jax.cutest`` as package modules whose ``__init__``
runs on the first attribute access, so a later ``import sif2jax; sif2jax.problems`` still gets
the complete package, with the same problem classes.  The x64 flag is left as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import importlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradkit.suites.cutest_audit import (
    AUDITED_SIF2JAX_VERSION,
    F_OPT_AUDIT,
    SOURCE_AUDITED,
    SOURCE_SIF2JAX,
    _applied,
    _stated_optimum,
)
from gradkit.suites.cutest_budget import (
    DEFAULT_TOL_ABS as DEFAULT_TOL_ABS,
    DEFAULT_TOL_REL as DEFAULT_TOL_REL,
    SOURCE_BELOW_SIF2JAX,
    SOURCE_BEST_FOUND,
    fits,
    is_solved,
    more_wild_solved,
    reference_values,
    select,
    solved_threshold,
)

__all__ = [
    "AUDITED_SIF2JAX_VERSION",
    "CUTEstProblem",
    "F_OPT_AUDIT",
    "SOURCE_AUDITED",
    "SOURCE_BELOW_SIF2JAX",
    "SOURCE_BEST_FOUND",
    "SOURCE_SIF2JAX",
    "broken_problems",
    "check",
    "fits",
    "is_solved",
    "more_wild_solved",
    "names",
    "problems",
    "reference_values",
    "select",
    "sif2jax_problems",
    "solved_threshold",
]

INSTALL_HINT = 'pip install -e ".[suites]"'
_UNCONSTRAINED = "sif2jax.cutest._unconstrained_minimisation"

# --- broken problems ---------------------------------------------------------------------

_UNBOUNDED_10FOLDTRLS = "unbounded below: E(1)..E(N-2) enter linearly, as sif2jax and pycutest read the SIF; L-BFGS reaches -1.75e12"
_BROKEN: dict[str, dict[str, str]] = {
    "float64": {"10FOLDTRLS": _UNBOUNDED_10FOLDTRLS},
    "float32": {"10FOLDTRLS": f"f(x0) = 1e40 overflows float32; also {_UNBOUNDED_10FOLDTRLS}"},
}


# --- importing sif2jax ----------------------------------------------------------------------


@contextlib.contextmanager
def _x64(enabled: bool) -> Iterator[None]:
    """Run the body with ``jax_enable_x64`` set to ``enabled``; afterwards the flag is what it was."""
    before = bool(jax.config.jax_enable_x64)
    try:
        if hasattr(jax, "enable_x64"):
            with jax.enable_x64(enabled):
                yield
        else:  # older JAX
            from jax.experimental import disable_x64, enable_x64

            with enable_x64() if enabled else disable_x64():
                yield
    finally:
        if bool(jax.config.jax_enable_x64) != before:
            jax.config.update("jax_enable_x64", before)


def _float64() -> contextlib.AbstractContextManager[None]:
    return _x64(True)


def _deferred_package(name: str) -> None:
    """Register package ``name`` without running its ``__init__``; the first attribute access runs it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        module.__dict__.pop("__getattr__", None)
        loader.exec_module(module)  # the real __init__, in this module object
        return getattr(module, attr)

    module.__dict__["__getattr__"] = __getattr__
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


def _unconstrained_module() -> Any:
    """``sif2jax.cutest._unconstrained_minimisation``, importing as little of sif2jax as possible."""
    module = sys.modules.get(_UNCONSTRAINED)
    if module is not None:
        return module
    try:
        if sys.modules.get("sif2jax") is None and importlib.util.find_spec("sif2jax") is None:
            raise ModuleNotFoundError("No module named 'sif2jax'")
        # sif2jax imports this subpackage after modules that switch x64 on, so build it under x64 too.
        with _float64():
            for package in ("sif2jax", "sif2jax.cutest"):
                if package not in sys.modules:
                    _deferred_package(package)
            return importlib.import_module(_UNCONSTRAINED)
    except ImportError as error:
        raise ImportError(f"the CUTEst suite needs sif2jax ({error}): {INSTALL_HINT}") from error


@functools.cache
def _sources() -> dict[str, Any]:
    """sif2jax's unconstrained problems by upper-case name, sorted (exact duplicates dropped)."""
    found: dict[str, Any] = {}
    for problem in _unconstrained_module().unconstrained_minimisation_problems:
        # sif2jax 0.0.8 lists SCURLY10/20/30 twice, as equal instances: keep the first.
        found.setdefault(str(problem.name).upper(), problem)
    return dict(sorted(found.items()))


def sif2jax_problems() -> tuple[Any, ...]:
    """sif2jax's unconstrained problem objects, one per name, sorted by name."""
    return tuple(_sources().values())


def names() -> tuple[str, ...]:
    """Names of all of sif2jax's unconstrained problems (broken ones included), sorted."""
    return tuple(str(p.name) for p in _sources().values())


# --- problems -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class CUTEstProblem:
    """One unconstrained CUTEst problem: ``problem(x)`` is its objective at ``x`` (shape ``(dimension,)``).

    ``f_opt`` is the optimal objective value (sif2jax's, audited; None when unknown or
    disputed), ``f_opt_source`` where it comes from (:data:`SOURCE_SIF2JAX`,
    :data:`SOURCE_AUDITED` or None), ``f_opt_sif2jax`` sif2jax's own number and ``f_opt_note``
    the audit's evidence.  ``x0``, the SIF starting point as a read-only float64 array, is
    computed on first access (building all 197 eagerly costs seconds).  ``sif2jax_problem`` is
    the wrapped sif2jax object.  Instances are cached per name and compare by identity;
    ``gradkit.runs`` keys its compiled programs by the wrapped problem, so two problems never
    share (or needlessly rebuild) a program.
    """

    name: str
    dimension: int
    f_opt: float | None
    sif2jax_problem: Any = dataclasses.field(repr=False)
    f_opt_sif2jax: float | None = None
    f_opt_source: str | None = None
    f_opt_note: str | None = None

    @property
    def x0(self) -> np.ndarray:
        """The SIF file's starting point, float64, read-only (computed once per problem)."""
        return _starting_point(self)

    def __call__(self, x: Any) -> jax.Array:
        """The objective at ``x``: a scalar in ``x``'s floating dtype; pure, so jit/vmap/grad apply.

        Some sif2jax problems hold float64 data (built under x64), which JAX does not demote, so
        with float32 ``x`` part of the arithmetic may run in float64; the result is cast back.
        """
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            x = x.astype(jnp.result_type(float))
        if x.shape != (self.dimension,):
            raise ValueError(f"CUTEst problem {self.name} takes x of shape ({self.dimension},), got {x.shape}")
        problem = self.sif2jax_problem
        return jnp.reshape(problem.objective(x, problem.args), ()).astype(x.dtype)

    @property
    def has_known_optimum(self) -> bool:
        """Whether ``f_opt`` is known: stated by sif2jax and not disputed by the audit."""
        return self.f_opt is not None


@functools.cache
def _starting_point(problem: CUTEstProblem) -> np.ndarray:
    """``problem.x0``, cached here rather than on the instance: an instance holds
    only its fields, so ``gradkit.runs`` keys it by what it computes (the wrapped sif2jax problem),
    not by identity."""
    with _float64():  # SIF starting points are float64 numbers
        x0 = np.array(problem.sif2jax_problem.y0, dtype=np.float64).reshape(problem.dimension)
    x0.setflags(write=False)
    return x0


@functools.cache
def _build(key: str) -> CUTEstProblem:
    source = _sources()[key]
    with _float64():  # stated optima are float64 numbers; the shape of y0 costs no evaluation
        stated = _stated_optimum(source)
        shape = jax.eval_shape(lambda: source.y0).shape
    if len(shape) != 1:
        raise ValueError(f"CUTEst problem {source.name}: y0 has shape {shape}, not a vector")
    f_opt, label, note = _applied(key, stated)
    return CUTEstProblem(
        name=str(source.name), dimension=int(shape[0]), f_opt=f_opt, sif2jax_problem=source,
        f_opt_sif2jax=stated, f_opt_source=label, f_opt_note=note,
    )


def _dtype_key(dtype: Any) -> str:
    key = np.dtype(dtype).name
    if key not in _BROKEN:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return key


def broken_problems(dtype: Any = "float64", *, recheck: bool = False) -> list[tuple[str, str]]:
    """``(name, reason)`` for every problem that does not evaluate cleanly at ``x0`` in ``dtype``.

    By default the audited list for sif2jax 0.0.8: 10FOLDTRLS, unbounded below (float64 and
    float32), which in float32 also overflows at ``x0``.  ``recheck=True`` instead evaluates
    value and gradient of every problem at ``x0`` now (:func:`check`; about a minute, each
    problem compiles once); it finds only evaluation failures, not unboundedness.
    """
    key = _dtype_key(dtype)
    if not recheck:
        present = set(_sources())
        return [(str(_sources()[name].name), why) for name, why in sorted(_BROKEN[key].items()) if name in present]
    out = []
    for name in _sources():
        reason = check(_build(name), key)
        if reason is not None:
            out.append((_build(name).name, reason))
    return out


def check(problem: CUTEstProblem, dtype: Any = "float64") -> str | None:
    """Why ``problem`` does not evaluate cleanly at ``x0`` in ``dtype`` (finite value and gradient), or None.

    Runs with ``jax_enable_x64`` set for ``dtype`` (off for float32, so the problem's data are
    float32 too), whatever the global setting.
    """
    key = _dtype_key(dtype)
    with _x64(key == "float64"):
        try:
            value, grad = jax.jit(jax.value_and_grad(problem))(jnp.asarray(problem.x0, dtype=key))
            value, grad = np.asarray(value), np.asarray(grad)
        except Exception as error:  # any failure is a reason to skip
            return f"evaluation at x0 raised {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    if not np.isfinite(value):
        return f"f(x0) = {float(value)} in {key}"
    if not np.isfinite(grad).all():
        return f"gradient at x0 has {int((~np.isfinite(grad)).sum())} non-finite entries in {key}"
    return None


def problems(
    names: Sequence[str] | None = None,
    *,
    max_dimension: int | None = None,
    dtype: Any = "float64",
    include_broken: bool = False,
) -> list[CUTEstProblem]:
    """CUTEst's unconstrained problems: all (sorted by name), or exactly ``names``, in that order.

    Names match sif2jax's case-insensitively.  Without ``names`` the problems of
    :func:`broken_problems` for ``dtype`` are left out (that function says why; keep them with
    ``include_broken=True``) and so are those above ``max_dimension``.  An explicitly named
    problem that is unknown, broken (unless ``include_broken``), above ``max_dimension`` or
    named twice raises ValueError saying so.
    """
    if max_dimension is not None and (not isinstance(max_dimension, int) or max_dimension < 1):
        raise ValueError(f"max_dimension must be a positive int or None, got {max_dimension!r}")
    broken = {} if include_broken else {name.upper(): why for name, why in broken_problems(dtype)}
    catalogue = _sources()
    if names is None:
        chosen = [_build(key) for key in catalogue if key not in broken]
        return [p for p in chosen if max_dimension is None or p.dimension <= max_dimension]
    if isinstance(names, str):
        names = [names]
    out, seen = [], set()
    for requested in names:
        key = str(requested).upper()
        if key not in catalogue:
            close = difflib.get_close_matches(key, list(catalogue), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else "see gradkit.suites.cutest.names()"
            raise ValueError(f"unknown CUTEst problem {requested!r} (sif2jax's unconstrained problems): {hint}")
        if key in seen:
            raise ValueError(f"CUTEst problem {requested!r} is named twice")
        if key in broken:
            raise ValueError(f"CUTEst problem {requested!r} is broken in {_dtype_key(dtype)}: {broken[key]}")
        seen.add(key)
        problem = _build(key)
        if max_dimension is not None and problem.dimension > max_dimension:
            raise ValueError(f"CUTEst problem {requested!r} has dimension {problem.dimension} > max_dimension {max_dimension}")
        out.append(problem)
    return out

"""CUTEst's unconstrained problems (through ``sif2jax``) as a gradkit benchmark suite.

``sif2jax`` is an optional dependency (``pip install -e ".[suites]"``); it is imported on first
use, never at ``import gradkit``.

>>> rosen, beale = problems(["rosenbr", "BEALE"])
>>> rosen(rosen.x0), rosen.f_opt              # 24.2, 0.0
>>> kept, skipped = select(problems(), runs=64, steps=1000, max_bytes=2**30)
>>> refs = reference_values(kept, best_found)  # {name: (value, source)}

What a problem is.  :class:`CUTEstProblem` wraps one sif2jax problem: ``x0`` is the SIF file's
starting point (float64 NumPy, read-only), ``dimension`` its length and ``problem(x)`` the
objective, pure ``jax.numpy`` (``jit``/``vmap``/``grad`` all work; ``x`` has shape
``(dimension,)``).  Run CUTEst in float64 (``with jax.enable_x64(True):``): the problems were
written and their optimal values stated for double precision; in float32 ``10FOLDTRLS`` already
overflows at ``x0`` (:func:`broken_problems`).  sif2jax 0.0.8 has 197 unconstrained problems
(its tuple lists SCURLY10, SCURLY20 and SCURLY30 twice), of 2 to 123 200 variables.

Optimal values.  sif2jax's ``expected_objective_value`` (a property: a 0-d array or ``None``) is
transcribed by hand from SIF comments, NIST and papers, and sif2jax tests only its objectives
against pycutest, not these numbers.  Many are wrong: SIF lower bounds taken for optima (``0``
for least-squares problems whose residuals cannot all vanish), values copied from a
neighbouring problem (PALMER5C-8C carry PALMER4C's), sign or scale slips (ENGVAL1's
``-14997`` for a sum of non-negative terms, MGH10LS's squared standard deviation), truncated
digits (EDENSCH ``12003.2`` for ``12003.2846``).  So this module audited every stated value of
sif2jax 0.0.8 (:data:`AUDITED_SIF2JAX_VERSION`) with L-BFGS from ``x0`` and, where the value was
in doubt, Newton (trust-region, exact Hessian or Hessian-vector products) from ``x0``, from
sif2jax's ``expected_result`` and from random starts (:data:`F_OPT_AUDIT`):

- corrected (``f_opt_source == "sif2jax (audited)"``, 35 problems): the minimum is established
  analytically (convexity, a constant plus squares, a closed form) or by an independent
  certified value (NIST), or the stated value agrees to its stated digits with a converged
  run; ``f_opt`` is the converged value to double precision;
- disputed (``f_opt is None``, 11 problems): the stated value is demonstrably not the minimum
  but nothing independent confirms what is; tables then use the best value found
  (:func:`reference_values`).

``f_opt_sif2jax`` always keeps sif2jax's number and ``f_opt_note`` the evidence.  An audit
entry applies only while sif2jax still states the audited value, so a fixed sif2jax wins.  The
five problems above 20 000 variables (CYCLIC3LS, CYCLOOCFLS, INDEFM, YATP1CLS, YATP1LS) were
not audited.

Solved.  A run is solved when ``f - f_ref <= tol_abs + tol_rel * max(1, |f_ref|)``
(:func:`solved_threshold`, :func:`is_solved`): COCO's absolute target ``f - f_opt <= 1e-8`` for
problems whose optimum is near 0, scaled with ``|f_opt|`` otherwise, because CUTEst optima
span orders of magnitude (BOX -1864.5, FREUROTH 608159.2) and are known to finite precision.  Defaults ``tol_abs = 1e-8``,
``tol_rel = 1e-6``; with them the relative term dominates (``1e-6`` at ``f_opt = 0``).  Where no
optimum is known, ``f_ref`` is Moré and Wild's ``f_L``, the best value any contender found
(:func:`reference_values` marks the source), and :func:`more_wild_solved` gives their
data-profile test ``f(x0) - f >= (1 - tau) (f(x0) - f_L)``.

Fitting a budget.  :func:`fits` and :func:`select` skip problems that would not fit a memory or
time budget and always say why; :func:`problems` skips the problems listed by
:func:`broken_problems` and rejects explicitly requested ones with the reason.  In float64
every problem evaluates to a finite value and gradient at ``x0``; the one listed is 10FOLDTRLS,
unbounded below as sif2jax (and pycutest) read its SIF file.  In float32 it also overflows at
``x0``.

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
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

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
AUDITED_SIF2JAX_VERSION = "0.0.8"

SOURCE_SIF2JAX = "sif2jax"
SOURCE_AUDITED = "sif2jax (audited)"
SOURCE_BEST_FOUND = "best found"
SOURCE_BELOW_SIF2JAX = "best found (below sif2jax)"

DEFAULT_TOL_ABS = 1e-8
DEFAULT_TOL_REL = 1e-6

_UNCONSTRAINED = "sif2jax.cutest._unconstrained_minimisation"

# --- audit of sif2jax 0.0.8 ---------------------------------------------------------------

_LINEAR_LS = "linear least squares, so convex: Newton from x0 and 6 random starts converges to this value"
_PALMER_COPY = f"the stated value is PALMER4C's; {_LINEAR_LS}"
_DIXMAAN = (
    "f = 1 + non-negative quartic terms + a positive-definite quadratic form, so f >= f(0) = 1; "
    "sif2jax's expected_result and L-BFGS from x0 give 1.0"
)
_LUKSAN = "0 is sif2jax's guess for a least-squares problem; Newton from x0 and 4 random starts converge to {}, none near 0"

F_OPT_AUDIT: dict[str, tuple[float, float | None, str]] = {
    # name: (value sif2jax 0.0.8 states, audited f_opt or None when disputed, evidence)
    "BOX": (-9999.0, -1864.5379265602494, "-(n-1) is the SIF's lower bound; BOX is convex, L-BFGS + Newton-CG converge here (|g| < 1e-12)"),
    "CHAINWOO": (0.0, 1.0, "f = 1 + a sum of squares that all vanish at x = 1 (sif2jax's expected_result)"),
    "CHWIRUT1LS": (2.3894212, 2384.47713930935, "1000x off: NIST certifies a residual sum of squares of 2.38448e3; Newton converges here"),
    "CHWIRUT2LS": (513.05, 513.0480294068653, "NIST certifies 5.1304802941e2; Newton from x0 converges here"),
    "CRAGGLVY": (1688.2, 1688.2153097144298, "stated to 5 digits; L-BFGS + Newton-CG from x0 converge here (|g| < 1e-7)"),
    "DANIWOODLS": (0.0040132, 0.004317308408291051, "NIST certifies 4.3173084083e-3; Newton from x0 and 6 random starts converge here"),
    "EDENSCH": (12003.2, 12003.284592020766, "stated to 6 digits, truncated; L-BFGS + Newton-CG from x0 converge here (|g| < 1e-6)"),
    "ELATVIDU": (0.0, 1.7127803548622047, "0 is the SIF's lower bound; El-Attar-Vidyasagar-Dutta's minimum is 1.712780354 (Newton)"),
    "ENGVAL1": (-14997.0, 5548.668419415775, "the stated value is -f(1); ENGVAL1 is convex, L-BFGS + Newton-CG converge here (|g| < 1e-6)"),
    "FREUROTH": (608160.0, 608159.1890463287, "stated to 6 digits; L-BFGS + Newton-CG from x0 converge 0.81 below it"),
    "JENSMP": (124.362, 124.36218235561485, "stated to 6 digits; Newton from x0 and 6 random starts converge here"),
    "MEXHAT": (-0.0898793, -0.04001, "closed form: the minimum is -0.04 - invp (invp = 1e-5) at x2 = x1^2, (x1-1)^2 = 0.02 + invp"),
    "MGH10LS": (100548.02858932, 87.94585517093304, "a squared NIST standard deviation; NIST certifies 87.945855171 (at expected_result)"),
    "PALMER1C": (0.097605048, 0.09759799126307325, _LINEAR_LS),
    "PALMER1D": (0.652673985, 0.6526825943736618, f"the stated value is below the minimum; {_LINEAR_LS}"),
    "PALMER5C": (0.050310687, 2.12808666605508, _PALMER_COPY),
    "PALMER5D": (0.050310687, 87.33939952784803, _PALMER_COPY),
    "PALMER6C": (0.050310687, 0.016387421618642647, _PALMER_COPY),
    "PALMER7C": (0.050310687, 0.6019856723141999, _PALMER_COPY),
    "PALMER8C": (0.050310687, 0.1597680634702326, _PALMER_COPY),
    **{name: (0.0, 1.0, _DIXMAAN) for name in (
        "DIXMAANB", "DIXMAANC", "DIXMAAND", "DIXMAANE1", "DIXMAANF", "DIXMAANG", "DIXMAANH", "DIXMAANI1",
        "DIXMAANJ", "DIXMAANK", "DIXMAANL", "DIXMAANM1", "DIXMAANN", "DIXMAANO", "DIXMAANP",
    )},
    # disputed: the stated value is not the minimum, and nothing independent says what is
    "EXPFIT": (8.7945855171, None, "the stated value is MGH10's optimum / 10; Newton from x0 and 6 random starts converge to 0.240510594"),
    "JUDGE": (0.0, None, "0 is the SIF's lower bound; Newton from x0 and 6 random starts converge to 16.081730133"),
    "KOWOSB": (0.00102734, None, "MGH's non-global local value (at infinity); Newton from x0 converges to 3.07800947e-4"),
    "PENALTY3": (0.001, None, "L-BFGS and Newton reach -1.0004e-3 (f >= -1e-3 exactly; the double sums round to ~4e-7 there)"),
    "LUKSAN12LS": (0.0, None, _LUKSAN.format("local minima 3447.53 to 3724.71")),
    "LUKSAN13LS": (0.0, None, _LUKSAN.format("25188.8596")),
    "LUKSAN14LS": (0.0, None, _LUKSAN.format("123.9235 to 123.9568")),
    "LUKSAN15LS": (0.0, None, _LUKSAN.format("3.56969705")),
    "LUKSAN16LS": (0.0, None, _LUKSAN.format("3.56969705")),
    "LUKSAN17LS": (0.0, None, _LUKSAN.format("0.493161290")),
    "10FOLDTRLS": (0.0, None, "unbounded below (see broken_problems)"),
}
"""Audit of sif2jax 0.0.8's optimal values: name -> (stated, audited ``f_opt`` or None if disputed, evidence)."""

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
    the wrapped sif2jax object.  Instances are cached per name and compare by identity.
    """

    name: str
    dimension: int
    f_opt: float | None
    sif2jax_problem: Any = dataclasses.field(repr=False)
    f_opt_sif2jax: float | None = None
    f_opt_source: str | None = None
    f_opt_note: str | None = None

    @functools.cached_property
    def x0(self) -> np.ndarray:
        """The SIF file's starting point, float64, read-only."""
        with _float64():  # SIF starting points are float64 numbers
            x0 = np.array(self.sif2jax_problem.y0, dtype=np.float64).reshape(self.dimension)
        x0.setflags(write=False)
        return x0

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


def _stated_optimum(source: Any) -> float | None:
    """sif2jax's ``expected_objective_value`` as a float (None when absent, non-scalar or not finite)."""
    value = getattr(source, "expected_objective_value", None)
    if callable(value):  # a property in sif2jax 0.0.8; tolerate a method
        value = value()
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    if array.size != 1 or not np.isfinite(array).all():
        return None
    return float(array.reshape(()))


@functools.cache
def _build(key: str) -> CUTEstProblem:
    source = _sources()[key]
    with _float64():  # stated optima are float64 numbers; the shape of y0 costs no evaluation
        stated = _stated_optimum(source)
        shape = jax.eval_shape(lambda: source.y0).shape
    if len(shape) != 1:
        raise ValueError(f"CUTEst problem {source.name}: y0 has shape {shape}, not a vector")
    f_opt, label, note = stated, (None if stated is None else SOURCE_SIF2JAX), None
    audit = F_OPT_AUDIT.get(key)
    if audit is not None and stated is not None and math.isclose(audit[0], stated, rel_tol=1e-12, abs_tol=1e-300):
        audited, why = audit[1], audit[2]
        if audited is None:
            f_opt, label, note = None, None, f"sif2jax's {stated!r} disputed: {why}"
        else:
            f_opt, label, note = audited, SOURCE_AUDITED, f"sif2jax states {stated!r}; audited {audited!r}: {why}"
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


# --- budgets --------------------------------------------------------------------------------


def _positive(label: str, value: Any, kind: type | tuple[type, ...] = int) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ValueError(f"{label} must be positive, got {value!r}")


def fits(
    problem: CUTEstProblem,
    *,
    runs: int,
    steps: int,
    max_bytes: int,
    vectors_per_run: int = 16,
    bytes_per_value: int = 8,
    max_work: float = 1e10,
) -> str | None:
    """Why ``problem`` would not fit the budget, or None when it fits.

    Memory: ``runs`` runs at once each hold ``vectors_per_run`` arrays of ``dimension`` values
    (parameters, gradient, optimizer state, recorded iterates; 16 covers Adam-like methods with
    room to spare, L-BFGS with memory m needs about 2m + 4) of ``bytes_per_value`` bytes (8 for
    float64); over ``max_bytes`` it does not fit.  Time: ``dimension * steps * runs``
    coordinate-steps, a proxy for evaluation time since a gradient of most CUTEst problems
    costs O(dimension) (a few dense ones, e.g. EIGENALS or MSQRTALS, cost more); over
    ``max_work`` it does not fit.  The default 1e10 is minutes of CPU time.
    """
    _positive("runs", runs)
    _positive("steps", steps)
    _positive("max_bytes", max_bytes)
    _positive("vectors_per_run", vectors_per_run)
    _positive("bytes_per_value", bytes_per_value)
    _positive("max_work", max_work, (int, float))
    n = problem.dimension
    memory = n * runs * vectors_per_run * bytes_per_value
    if memory > max_bytes:
        return (
            f"memory: dimension {n} x {runs} runs x {vectors_per_run} vectors x {bytes_per_value} B = {memory:,} B "
            f"> max_bytes {max_bytes:,}"
        )
    work = n * steps * runs
    if work > max_work:
        return f"time: dimension {n} x {steps} steps x {runs} runs = {work:.3g} coordinate-steps > max_work {max_work:.3g}"
    return None


def select(
    problems: Iterable[CUTEstProblem],
    *,
    runs: int,
    steps: int,
    max_bytes: int,
    vectors_per_run: int = 16,
    bytes_per_value: int = 8,
    max_work: float = 1e10,
) -> tuple[list[CUTEstProblem], list[tuple[str, str]]]:
    """``(kept, skipped)``: the problems that :func:`fits` the budget and ``(name, reason)`` for the others."""
    kept, skipped = [], []
    for problem in problems:
        reason = fits(
            problem, runs=runs, steps=steps, max_bytes=max_bytes, vectors_per_run=vectors_per_run,
            bytes_per_value=bytes_per_value, max_work=max_work,
        )
        if reason is None:
            kept.append(problem)
        else:
            skipped.append((problem.name, reason))
    return kept, skipped


# --- solved ---------------------------------------------------------------------------------


def solved_threshold(f_ref: float, *, tol_abs: float = DEFAULT_TOL_ABS, tol_rel: float = DEFAULT_TOL_REL) -> float:
    """The largest objective value that counts as solved: ``f_ref + tol_abs + tol_rel * max(1, |f_ref|)``."""
    if tol_abs < 0 or tol_rel < 0:
        raise ValueError(f"tolerances must be >= 0, got tol_abs={tol_abs!r}, tol_rel={tol_rel!r}")
    return float(f_ref) + tol_abs + tol_rel * max(1.0, abs(float(f_ref)))


def is_solved(f: float, f_ref: float, *, tol_abs: float = DEFAULT_TOL_ABS, tol_rel: float = DEFAULT_TOL_REL) -> bool:
    """Whether a run that reached ``f`` solved a problem with reference optimum ``f_ref`` (NaN never does)."""
    return bool(np.isfinite(f)) and float(f) <= solved_threshold(f_ref, tol_abs=tol_abs, tol_rel=tol_rel)


def more_wild_solved(f: float, f0: float, f_ref: float, tau: float) -> bool:
    """Moré–Wild's test for data profiles: ``f(x0) - f >= (1 - tau) * (f(x0) - f_ref)`` (NaN never passes)."""
    if not 0 < tau < 1:
        raise ValueError(f"tau must lie in (0, 1), got {tau!r}")
    return bool(np.isfinite(f)) and float(f0) - float(f) >= (1.0 - tau) * (float(f0) - float(f_ref))


def reference_values(
    problems: Iterable[CUTEstProblem],
    best_found: Mapping[str, float],
    *,
    tol_abs: float = DEFAULT_TOL_ABS,
    tol_rel: float = DEFAULT_TOL_REL,
) -> dict[str, tuple[float, str]]:
    """Per problem name the reference optimum and its source, for tables that must mark it.

    - ``f_opt`` known: ``(f_opt, "sif2jax")``, or ``"sif2jax (audited)"`` where the audit corrected it,
      unless some contender got below it by more than the solved tolerance: then the stated
      value is not the minimum and the reference is ``(best, "best found (below sif2jax)")``.
    - otherwise Moré–Wild's ``f_L``: ``(best_found[name], "best found")``, the best value any
      contender reached.

    ``best_found`` maps names (any case) to the best objective value any contender found; NaN
    entries count as missing.  A problem with neither raises ValueError naming it.
    """
    best = {str(k).upper(): float(v) for k, v in best_found.items() if not math.isnan(float(v))}
    out: dict[str, tuple[float, str]] = {}
    missing = []
    for problem in problems:
        found = best.get(problem.name.upper())
        if problem.f_opt is not None:
            margin = solved_threshold(problem.f_opt, tol_abs=tol_abs, tol_rel=tol_rel) - problem.f_opt
            if found is not None and found < problem.f_opt - margin:
                out[problem.name] = (found, SOURCE_BELOW_SIF2JAX)
            else:
                out[problem.name] = (problem.f_opt, problem.f_opt_source or SOURCE_SIF2JAX)
        elif found is not None:
            out[problem.name] = (found, SOURCE_BEST_FOUND)
        else:
            missing.append(problem.name)
    if missing:
        raise ValueError(f"no reference value for {', '.join(missing)}: no known optimum and no best found")
    return out

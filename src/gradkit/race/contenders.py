"""The race's contenders: gradkit's optimizers by name, any optax alias by dotted name, an import
path ``pkg.module:factory``, or a factory / transformation object (see :func:`contender`)."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import jax
import optax

from gradkit import optim

def sam(learning_rate: Any) -> optax.GradientTransformationExtraArgs:
    """SAM around SGD, ``x ← x - η ∇f(x + ρ g/||g||)`` with ``ρ = 0.05`` (``gradkit.optim.sam``)."""
    return optim.sam(optim.sgd(learning_rate), rho=0.05)


_FGD_KEY = 0


def fgd(learning_rate: Any) -> optax.GradientTransformationExtraArgs:
    """Forward-gradient descent, ``x ← x - η (∇f·v) v`` with ``v ~ N(0, I)``, one tangent per step
    (``gradkit.optim.forward_gradient_descent`` around SGD).  Every run draws the same tangent
    sequence (key 0): common random numbers, so differences between configs are not noise."""
    return optim.forward_gradient_descent(optim.sgd(learning_rate), jax.random.PRNGKey(_FGD_KEY))


def hessian_free(**config: Any) -> optax.GradientTransformationExtraArgs:
    """Hessian-free on the exact Hessian (``gradkit.optim.hessian_free(curvature="hessian")``): a
    2D landscape has no model/loss split for the Gauss-Newton matrix."""
    return optim.hessian_free(curvature="hessian", **config)


@dataclasses.dataclass(frozen=True)
class Contender:
    """An optimizer in the race: ``make(**config)`` builds it; ``swept`` names the
    hyperparameters taken from the race's grid (``()``: one config, no grid)."""

    make: Callable[..., optax.GradientTransformation] | optax.GradientTransformation
    swept: tuple[str, ...]
    family: str
    default_learning_rate: float | None = None


CONTENDERS: dict[str, Contender] = {
    **{name: Contender(make, ("learning_rate",), "first-order") for name, make in optim.FIRST_ORDER.items()},
    "lbfgs": Contender(optax.lbfgs, (), "quasi-Newton"),  # optax's own: memory 10, zoom (strong Wolfe) line search
    "bfgs": Contender(optim.bfgs, (), "quasi-Newton"),  # gradkit's: line search folded into the steps
    "newton_cg": Contender(optim.newton_cg, (), "second-order"),
    "newton_cg_trust_region": Contender(optim.newton_cg_trust_region, (), "second-order"),
    "hessian_free": Contender(hessian_free, (), "second-order"),
    **{name: Contender(make, ("learning_rate",), "Hessian-aware") for name, make in optim.HESSIAN_AWARE.items()},
    "sam": Contender(sam, ("learning_rate",), "sharpness-aware"),
    "fgd": Contender(fgd, ("learning_rate",), "forward-gradient"),
}
"""Every optimizer ``--optimizers`` can name."""

DEFAULT_OPTIMIZERS = (*(n for n in optim.FIRST_ORDER if n != "adamw"), "lbfgs", "newton_cg")


_EXPECTED_PATH = " (expected an import path pkg.module:factory or a dotted name such as optax.contrib.prodigy)"
_EXPECTED_FACTORY = " (expected a factory learning_rate -> optax.GradientTransformation, or a transformation)"


def _import_object(path: str) -> Any:
    """``pkg.module:attr`` or a dotted ``pkg.module.attr`` (the longest importable module prefix, then
    attributes).  ``ValueError`` naming the path when it does not resolve."""
    module_path, colon, attrs = path.partition(":")
    if colon:
        candidates = [(module_path, attrs.split("."))]
    else:
        parts = path.split(".")
        candidates = [(".".join(parts[:cut]), parts[cut:]) for cut in range(len(parts) - 1, 0, -1)]
    missing = None
    for module_name, rest in candidates:
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):  # this prefix is no module: try a shorter one
                missing = missing or err
                continue
            raise ValueError(f"--optimizers {path!r} does not resolve: importing {module_name} failed: {err}"
                             f"{_EXPECTED_PATH}") from None
        except Exception as err:
            raise ValueError(f"--optimizers {path!r} does not resolve: importing {module_name} failed: "
                             f"{type(err).__name__}: {err}{_EXPECTED_PATH}") from None
        for attr in rest:
            if not hasattr(obj, attr):
                raise ValueError(f"--optimizers {path!r} does not resolve: {getattr(obj, '__name__', obj)} "
                                 f"has no attribute {attr!r}{_EXPECTED_PATH}")
            obj = getattr(obj, attr)
        return obj
    raise ValueError(f"--optimizers {path!r} does not resolve: {missing}{_EXPECTED_PATH}")


def _positional_lr(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``learning_rate -> fn(learning_rate)`` for a factory whose learning rate has another name."""

    def make(learning_rate: Any) -> optax.GradientTransformation:
        return fn(learning_rate)

    return make


def _default_learning_rate(params: Mapping[str, inspect.Parameter], name: str) -> float | None:
    default = params[name].default if name in params else inspect.Parameter.empty
    return float(default) if isinstance(default, int | float) and not isinstance(default, bool) else None


def contender(spec: Any, name: str | None = None) -> Contender:
    """The :class:`Contender` for ``spec``: a gradkit name (:data:`CONTENDERS`); a string import path
    ``pkg.module:factory`` or dotted name (``optax.adamw``, ``optax.contrib.prodigy``); a factory
    ``learning_rate -> GradientTransformation`` (swept over the race's learning rates); a factory of
    no arguments or a ``GradientTransformation`` (one config).  The factory is called once with a
    learning rate of 1e-3 to check it returns a ``GradientTransformation``; any failure is a
    ``ValueError`` naming ``name``."""
    label = name or (spec if isinstance(spec, str) else getattr(spec, "__name__", type(spec).__name__))
    if isinstance(spec, Contender):
        return spec
    if isinstance(spec, str):
        if spec in CONTENDERS:
            return CONTENDERS[spec]
        if ":" not in spec and "." not in spec:
            close = difflib.get_close_matches(spec, list(CONTENDERS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown optimizer {spec!r} (expected any of: {', '.join(CONTENDERS)}, an optax alias "
                             f"such as optax.adamw, or an import path pkg.module:factory{hint})")
        spec = _import_object(spec)
    if isinstance(spec, optax.GradientTransformation):
        return Contender(spec, (), "custom")
    if not callable(spec):
        raise ValueError(f"optimizer {label!r} is a {type(spec).__name__}, not a GradientTransformation or a factory{_EXPECTED_FACTORY}")
    try:
        params = inspect.signature(spec).parameters
    except (TypeError, ValueError):
        params = {}
    required = [p for p, v in params.items() if v.default is inspect.Parameter.empty
                and v.kind in (v.POSITIONAL_ONLY, v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
    if "learning_rate" in params and params["learning_rate"].kind is not inspect.Parameter.POSITIONAL_ONLY:
        make, swept, default = spec, ("learning_rate",), _default_learning_rate(params, "learning_rate")
    elif len(required) == 1 and params[required[0]].kind is not inspect.Parameter.KEYWORD_ONLY:
        make, swept, default = _positional_lr(spec), ("learning_rate",), None
    elif not required:
        make, swept, default = spec, (), None
    else:
        raise ValueError(f"optimizer {label!r} needs arguments {required}{_EXPECTED_FACTORY}")
    try:
        built = make(learning_rate=1e-3) if swept else make()
    except Exception as err:
        raise ValueError(f"optimizer {label!r} failed when built: {type(err).__name__}: {err}{_EXPECTED_FACTORY}") from None
    if not isinstance(built, optax.GradientTransformation):
        raise ValueError(f"optimizer {label!r} returned a {type(built).__name__}, not an optax.GradientTransformation{_EXPECTED_FACTORY}")
    return Contender(make, swept, "custom", default)


def measured_step_cost(contender: Contender, objective: Any, x0: Any) -> float | None:
    """Gradient-equivalents per step of a custom contender whose optimizer state has no registered
    cost model, measured on ``objective`` from ``x0`` at a learning rate of 1e-3
    (:func:`gradkit.runs.costs.measure_step_cost`, ``Σ_k COST_UNITS[k] · counts_k`` of
    :func:`measured_step_counts`); ``None`` for gradkit's own optimizers and for states the runner
    already knows how to count."""
    counts = measured_step_counts(contender, objective, x0)
    return None if counts is None else float(counts.cost)


def measured_step_counts(contender: Contender, objective: Any, x0: Any) -> Any:
    """The :class:`gradkit.runs.units.Counts` per kind (values, grads, HVPs, JVPs) one step of a
    custom contender without a registered cost model spends, measured as
    :func:`measured_step_cost` (:func:`gradkit.runs.costs.measure_step_counts`); ``None`` where
    that is ``None``."""
    from gradkit.runs.costs import has_cost_model, measure_step_counts

    if contender.family != "custom":
        return None
    hparams = {"learning_rate": 1e-3} if contender.swept else {}
    opt = contender.make if isinstance(contender.make, optax.GradientTransformation) else contender.make(**hparams)
    if has_cost_model(opt, x0):
        return None
    return measure_step_counts(opt, objective, x0)


def resolve(optimizers: Sequence[Any] | Mapping[str, Any]) -> dict[str, Contender]:
    """Name -> :class:`Contender` for a race's ``optimizers``: a sequence of names / import paths /
    objects, or a mapping name -> any of those."""
    items = optimizers.items() if isinstance(optimizers, Mapping) else (
        (o if isinstance(o, str) else getattr(o, "__name__", type(o).__name__), o) for o in optimizers)
    out: dict[str, Contender] = {}
    for name, spec in items:
        if name in out:
            raise ValueError(f"--optimizers names {name!r} twice (expected distinct names)")
        out[name] = contender(spec, name)
    if not out:
        raise ValueError("unknown optimizer (none given) (expected at least one)")
    return out

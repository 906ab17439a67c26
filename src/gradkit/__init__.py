"""gradkit: a JAX toolkit for people who study and invent optimizers.

``gk.plot``, ``gk.race``, ``gk.profiles``, ``gk.suites``, ``gk.exercise`` and ``gk.cli`` are imported on
first use (module ``__getattr__``), so ``import gradkit`` does not pay for matplotlib or
the race machinery.

Sixteen runs of Adam on Himmelblau from a grid of starts, one compiled call; a run *converged*
when it ended within ``tol`` of ``f*`` and never diverged:

>>> import gradkit as gk
>>> f = gk.landscapes.get("himmelblau")
>>> res = gk.runs.run(f, gk.optim.adam(0.1), gk.runs.start_grid(f.domain, 4), steps=500, tol=1e-4, f_star=0.0)
>>> int(res.converged.sum()), int(res.settled_step.max()) < 500
(16, True)
"""

import importlib
from typing import Any

from gradkit import (
    curvature,
    data,
    derivatives,
    diff,
    landscapes,
    linalg,
    losses,
    models,
    optim,
    results,
    runs,
    train,
)
from gradkit.derivatives import (
    batched_hvp,
    directional_derivative,
    ggn_vp,
    hessian,
    hvp,
    hvp_operator,
    jacobian,
)
from gradkit.diff import check
from gradkit.landscapes import Landscape

__version__ = "0.1.0"

_LAZY = ("plot", "race", "profiles", "suites", "exercise", "cli")


def __getattr__(name: str) -> Any:
    """Import the lazy submodules (:data:`_LAZY`) on first access."""
    if name in _LAZY:
        module = importlib.import_module(f"gradkit.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'gradkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "Landscape",
    "data",
    "losses",
    "models",
    "train",
    "batched_hvp",
    "check",
    "curvature",
    "derivatives",
    "diff",
    "directional_derivative",
    "ggn_vp",
    "hessian",
    "hvp",
    "hvp_operator",
    "jacobian",
    "landscapes",
    "linalg",
    "optim",
    "profiles",
    "results",
    "runs",
    "suites",
    "plot",
    "race",
    "exercise",
    "cli",
]

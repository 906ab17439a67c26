"""A race's settings, their validation (every check before any compute) and its result types."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from gradkit import landscapes, runs
from gradkit.race.contenders import DEFAULT_OPTIMIZERS, Contender, resolve

DEFAULT_LANDSCAPES = ("rosenbrock", "himmelblau", "six_hump_camel", "rastrigin", "seed_quadratic")
DEFAULT_LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
_MAX_RECORDED = 100  # recorded columns per run when the record stride is chosen automatically


@dataclasses.dataclass(frozen=True)
class RaceConfig:
    """A race: ``landscapes`` × ``optimizers`` × (``learning_rates`` for those that take one) ×
    ``starts_per_axis²`` start points, ``steps`` steps each.  Success is
    ``|f - f*| <= tol + rtol · f_scale`` at the final step (see the module doc).
    ``record_every=None`` records at most 100 points per run (the largest divisor of
    ``steps`` that keeps it so).  ``out=None``: no files.  ``workers``: threads that compile
    and run the optimizers of a landscape concurrently (default: the usable CPU cores;
    results do not depend on it).  ``fast_compile``: compile the race's programs with XLA's quick
    CPU settings (:data:`gradkit.runs.engine.FAST_COMPILE_OPTIONS`): compiling is most of a race's
    work, the runs are small."""

    landscapes: Sequence[str] = DEFAULT_LANDSCAPES
    optimizers: Sequence[Any] | Mapping[str, Any] = DEFAULT_OPTIMIZERS
    learning_rates: Sequence[float] = DEFAULT_LEARNING_RATES
    starts_per_axis: int = 12
    steps: int = 500
    tol: float = 1e-4
    rtol: float = 0.0
    record_every: int | None = None
    out: str | None = "gradkit-out"
    top: int = 5
    progress: bool = False
    workers: int | None = None
    paths_per_optimizer: int = 4
    fast_compile: bool = True


@dataclasses.dataclass(frozen=True)
class LandscapeRace:
    """One landscape's race: its start points, the sweep, the tolerance used and the
    leaderboard (``SweepResult.best()`` rows), and the pictures written."""

    landscape: landscapes.Landscape
    starts: np.ndarray
    sweep: runs.SweepResult
    f_star: float
    tol: float
    leaderboard: list[dict[str, Any]]
    pictures: list[str]


@dataclasses.dataclass(frozen=True)
class RaceResult:
    """A whole race: the per-landscape results, the pooled profiles and every file written."""

    config: RaceConfig
    races: list[LandscapeRace]
    performance: Any
    data: Any
    files: list[str]


# ----------------------------------------------------------------------------- validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def record_stride(steps: int, record_every: int | None) -> int:
    """The record stride: ``record_every`` when given (it must divide ``steps``), else the
    smallest divisor ``k`` of ``steps`` with ``steps / k <= 100``."""
    if record_every is not None:
        return record_every
    return next(k for k in range(1, steps + 1) if steps % k == 0 and steps // k <= _MAX_RECORDED)


def validate(config: RaceConfig) -> None:
    """Every check that needs no compute, so bad input fails in a line before the sweep runs.

    Raises ``ValueError`` naming the setting and what was expected."""
    if not _is_int(config.starts_per_axis) or config.starts_per_axis < 2:
        raise ValueError(f"--starts {config.starts_per_axis!r} is invalid (expected an integer >= 2: start points "
                         f"per axis; half of the starts select the learning rate, the other half are scored)")
    if not _is_int(config.steps) or config.steps < 1:
        raise ValueError(f"--steps {config.steps!r} is invalid (expected a positive integer)")
    lrs = list(config.learning_rates)
    bad = [v for v in lrs if not (isinstance(v, int | float) and math.isfinite(v) and v > 0)]
    if bad or not lrs:
        raise ValueError(f"--lrs {' '.join(map(str, bad or lrs))} is invalid (expected finite learning rates > 0)")
    for flag, value in (("--tol", config.tol), ("--rtol", config.rtol)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{flag} {value!r} is invalid (expected a finite number >= 0)")
    if config.tol == 0 and config.rtol == 0:
        raise ValueError("--tol 0 with --rtol 0 is invalid (expected one of them > 0: no float run meets |f - f*| <= 0)")
    if config.record_every is not None and (not _is_int(config.record_every) or config.record_every < 1
                                            or config.steps % config.record_every):
        raise ValueError(f"--record-every {config.record_every!r} is invalid (expected a positive integer "
                         f"dividing --steps {config.steps})")
    if config.workers is not None and (not _is_int(config.workers) or config.workers < 1):
        raise ValueError(f"--workers {config.workers!r} is invalid (expected a positive integer)")
    if not isinstance(config.fast_compile, bool):
        raise ValueError(f"fast_compile {config.fast_compile!r} is invalid (expected True or False)")
    if not _is_int(config.top) or config.top < 1:
        raise ValueError(f"--top {config.top!r} is invalid (expected a positive integer)")
    valid = ", ".join(landscapes.names())
    unknown = [n for n in config.landscapes if n not in landscapes.names()]
    if unknown or not config.landscapes:
        raise ValueError(f"unknown landscape {', '.join(map(repr, unknown)) or '(none given)'} (expected any of: {valid})")
    unbounded = [n for n in config.landscapes if not landscapes.get(n).bounded_below]
    if unbounded:
        bounded = ", ".join(n for n in landscapes.names() if landscapes.get(n).bounded_below)
        raise ValueError(f"landscape {', '.join(unbounded)} is unbounded below, so |f - f*| <= tol never holds "
                         f"(expected a landscape with a finite minimum: {bounded})")
    if len(set(config.landscapes)) != len(config.landscapes):
        raise ValueError(f"--landscapes {' '.join(config.landscapes)} names one twice (expected distinct names: "
                         "each landscape is raced once)")
    if not isinstance(config.optimizers, Mapping) and len(set(map(str, config.optimizers))) != len(config.optimizers):
        raise ValueError(f"--optimizers {' '.join(map(str, config.optimizers))} names one twice (expected distinct names)")
    contenders(config)
    if config.out is not None and jax.process_index() == 0:  # only process 0 writes (jax.distributed)
        check_writable(config.out)



def check_writable(out: str | Path) -> Path:
    """Create ``out`` and write and delete a temporary file in it; ``ValueError`` if that fails."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".gradkit-write-test-"):
            pass
    except OSError as err:
        raise ValueError(f"--out {str(out)!r} is not writable: {err.strerror or err} "
                         f"(expected a folder gradkit can create and write files in)") from None
    return path


def contenders(config: RaceConfig) -> dict[str, Contender]:
    """Name -> :class:`Contender` of every optimizer in the race (``ValueError`` naming a bad one)."""
    return resolve(config.optimizers)


def grids_for(config: RaceConfig) -> dict[str, dict[str, list[float]]]:
    """Each optimizer's grid: ``{"learning_rate": lrs}`` for those that take one, ``{}`` else."""
    return {name: {hp: [float(v) for v in config.learning_rates] for hp in c.swept}
            for name, c in contenders(config).items()}


def tolerance(land: landscapes.Landscape, config: RaceConfig) -> float:
    """The absolute tolerance on ``|f - f*|`` used on ``land``: ``tol + rtol · f_scale``."""
    return float(config.tol + config.rtol * land.f_scale)


def _default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def total_run_steps(config: RaceConfig) -> int:
    """Run-steps in the whole race: Σ over landscapes and optimizers of configs × starts × steps."""
    n_starts = config.starts_per_axis**2
    configs = sum(len(runs.grid_product(g)) or 1 for g in grids_for(config).values())
    return len(config.landscapes) * configs * n_starts * config.steps


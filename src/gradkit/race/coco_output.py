"""Write a :class:`~gradkit.race.coco.Campaign` in COCO's data format, for cocopp.

:func:`write_coco` writes what ``cocoex.Observer("bbob", ...)`` (cocoex 2.8.2, logger
``bbob``, ``data_format = 'bbob-new2'``) writes for one algorithm, so that
``python -m cocopp <folder>/<algorithm>`` post-processes gradkit runs like any COCO data::

    <folder>/<algorithm>/bbobexp_f<f>.info             one entry per dimension of function f
    <folder>/<algorithm>/data_f<f>/bbobexp_f<f>_DIM<d>.dat    target-triggered rows
    <folder>/<algorithm>/data_f<f>/bbobexp_f<f>_DIM<d>.tdat   evaluation-triggered rows

An ``.info`` entry is three lines, as cocoex writes them (entries separated by a newline,
none after the last; the first line is broken here at the backslash)::

    suite = 'bbob', funcId = 1, DIM = 2, Precision = 1.000e-08, algId = 'ALG', coco_version = '2.8.2', \
logger = 'bbob', data_format = 'bbob-new2', settings = ''
    % <algorithm_info>
    data_f1/bbobexp_f1_DIM2.dat, 1:1000|1.2e-09, 2:840|8.1e-09, 3:1000|3.4e-03

with ``instance:evaluations|final Δf`` per run (one item per run; runs sharing an instance
repeat it, which cocopp reads as repetitions).  The ``.dat`` / ``.tdat`` files hold one
block per run, in the order of the ``.info`` line, each a ``%`` header line followed by rows
``evaluations g-evaluations Δf Δf Δf``: ``g-evaluations`` is 0 (no constraints), the third
column is what cocopp reads (``best noise-free fitness - Fopt``), the 4th and 5th (measured
and best measured fitness in cocoex) repeat Δf since ``f_opt`` is unknown here, and cocoex's
trailing ``x1 x2 ...`` columns are left out (cocopp does not read them for bbob).
cocoex's ``.mdat`` / ``.rdat`` files (recommendations, restarts) are not written; cocopp
does not need them.

What the files can and cannot say:

- **Resolution: the target ladder.**  A campaign knows only when each target was first
  reached, so a ``.dat`` row is written at the first evaluation, at each evaluation count
  where new targets were first reached, and at the last evaluation.  Its Δf is a value
  strictly inside ``(next target, deepest target reached]``: the geometric mean of the two
  (half a ladder step above ``targets[0]`` before the first target, half a step below
  ``targets[-1]`` after the last).  On the last row the run's ``best_delta_f`` is written
  instead when given (and strictly inside that interval after formatting).  The ``.tdat``
  rows are at cocoex's evaluation triggers (``floor(10^(k/20))`` and
  ``dimension · {1, 2, 5} · 10^i``, plus the last evaluation) with the same step-function Δf.
  Fixed-budget views in cocopp (``.tdat``) therefore have the ladder's resolution too.
- **Evaluations are gradient-equivalents, rounded up to integers.**  cocopp reads the ``.info``
  evaluation counts with ``int()`` (``pproc.DataSet.__init__``), so fractional counts such as
  ``12.5`` make it fail; the ``.dat`` files would accept floats, but the counts must agree
  between the files (cocopp warns otherwise).  Every cost ``c`` is written as
  ``max(1, ceil(c · cost_scale))`` (a COCO run starts at evaluation 1).  With the default
  ``cost_scale = 1`` the unit is a gradient-equivalent, rounded up; ``cost_scale = 2``
  counts exactly in function-value units (a function value = 1, a gradient = 2) when all
  costs are multiples of 0.5.  aRTs cocopp reports are those of :func:`gradkit.race.coco.
  average_runtime` on the rounded costs (identical when the costs are integers).
- cocopp reads the files with the ``bbob`` testbed: its 51 targets are
  :data:`gradkit.race.coco.TARGETS`, so campaigns on that ladder are read back exactly;
  on another ladder cocopp's targets fall between the ladder's rungs.  ``Precision`` is
  ``1e-8`` as in cocoex.

Only numpy and the standard library are used.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from .coco import Campaign

__all__ = ["write_coco", "COCO_VERSION", "DATA_FORMAT", "DEFAULT_ALGORITHM_INFO", "evaluation_triggers"]

COCO_VERSION = "2.8.2"
"""The cocoex version whose output :func:`write_coco` reproduces (written as ``coco_version``)."""

DATA_FORMAT = "bbob-new2"
"""cocoex 2.8.2's ``data_format`` for the ``bbob`` logger: 2nd column = constraint evaluations."""

DEFAULT_ALGORITHM_INFO = (
    "gradkit campaign: evaluations are gradient-equivalents (gradient 1, function value 0.5) rounded up; "
    "f-values at the resolution of the target ladder"
)

_PRECISION = 1e-8  # cocoex's log_target_precision, written as 'Precision = 1.000e-08'
_DAT_HEADER = (
    "% f evaluations | g evaluations | best noise-free fitness - Fopt (nan) + sum g_i+ "
    "| measured fitness - Fopt | best measured fitness - Fopt"
)


def _err(field: str, msg: str) -> ValueError:
    return ValueError(f"{field}: {msg}")


def evaluation_triggers(max_evaluations: int, dimension: int) -> list[int]:
    """cocoex's ``.tdat`` logging points up to ``max_evaluations``: the distinct
    ``floor(10^(k/20))``, ``k = 0, 1, ...`` and ``dimension · b · 10^i`` for ``b in (1, 2, 5)``
    (``coco_observer_evaluations``, ``number_evaluation_triggers = 20``,
    ``base_evaluation_triggers = "1,2,5"``), plus ``max_evaluations`` itself (the final row)."""
    out = {int(max_evaluations)}
    k = 0
    while (v := math.floor(10 ** (k / 20))) <= max_evaluations:
        out.add(v)
        k += 1
    i = 0
    while dimension * 10**i <= max_evaluations:
        out.update(v for b in (1, 2, 5) if (v := dimension * b * 10**i) <= max_evaluations)
        i += 1
    return sorted(out)


class _Ladder:
    """Representative Δf values of the ladder's intervals; level ``l`` = deepest target reached
    (``-1``: none)."""

    def __init__(self, targets: np.ndarray) -> None:
        t = np.asarray(targets, dtype=np.float64)
        self.t = t
        top = t[0] / t[1] if t.size > 1 else 10**0.2
        bottom = t[-2] / t[-1] if t.size > 1 else 10**0.2
        mids = np.sqrt(t[:-1] * t[1:])
        self.rep = np.concatenate([[t[0] * math.sqrt(top)], mids, [t[-1] / math.sqrt(bottom)]])

    def value(self, level: int) -> float:
        return float(self.rep[level + 1])

    def inside(self, level: int, v: float) -> bool:
        """Whether ``v`` lies safely (relative margin 1e-9) inside ``(t[level+1], t[level]]``."""
        hi = math.inf if level < 0 else float(self.t[level]) * (1 - 1e-9)
        lo = float(self.t[level + 1]) * (1 + 1e-9) if level + 1 < self.t.size else None
        return v <= hi and (v >= 0 if lo is None else v > lo)


def _fmt(v: float) -> str:
    return f"{v:+.9e}"


def _evals(cost: np.ndarray | float, scale: float) -> np.ndarray:
    return np.maximum(1, np.ceil(np.asarray(cost, dtype=np.float64) * scale)).astype(np.int64)


def _run_blocks(tc: np.ndarray, total: float, best: float | None, dim: int, ladder: _Ladder,
                scale: float) -> tuple[list[str], list[str], int, float]:
    """``.dat`` rows, ``.tdat`` rows, final evaluation count and final Δf of one run."""
    n_evals = int(_evals(total, scale))
    finite = np.isfinite(tc)
    hit = _evals(np.where(finite, tc, 0.0), scale)
    hit = np.where(finite, hit, np.iinfo(np.int64).max)

    def level_at(e: int) -> int:
        reached = np.flatnonzero(hit <= e)
        return int(reached[-1]) if reached.size else -1

    final_level = level_at(n_evals)
    final_value = ladder.value(final_level)
    if best is not None:
        written = float(_fmt(best))
        if ladder.inside(final_level, written):
            final_value = written

    def row(e: int, level: int) -> str:
        v = final_value if e == n_evals else ladder.value(level)
        s = _fmt(v)
        return f"{e} 0 {s} {s} {s}"

    dat_points = sorted({1, n_evals, *(int(e) for e in hit[finite])})
    dat, last = [], None
    for e in dat_points:
        lev = level_at(e)
        if e in (1, n_evals) or lev != last:
            dat.append(row(e, lev))
        last = lev
    tdat = [row(e, level_at(e)) for e in evaluation_triggers(n_evals, dim)]
    return dat, tdat, n_evals, final_value


def write_coco(folder: str | Path, campaign: Campaign, *, algorithm_info: str | None = None,
               cost_scale: float = 1.0, overwrite: bool = False) -> Path:
    """Write ``campaign`` in COCO's data format (cocoex 2.8.2, ``bbob-new2``) under
    ``folder/<campaign.algorithm>/`` and return that folder.

    One ``.info`` file per function (an entry per dimension, ascending), one ``.dat`` and one
    ``.tdat`` per (function, dimension) holding the runs sorted by instance (stable), see the
    module docstring for the layout, the rounding of costs to integer evaluation counts
    (``max(1, ceil(cost · cost_scale))``) and the target-ladder resolution of the Δf values.

    Args:
        folder: parent folder (created if missing).
        campaign: the runs.
        algorithm_info: the one-line ``%`` comment of every ``.info`` entry (default
            :data:`DEFAULT_ALGORITHM_INFO`).
        cost_scale: evaluations per unit of cost (``2``: a function value counts 1).
        overwrite: replace an existing non-empty ``folder/<algorithm>`` (deleted first);
            otherwise that raises :class:`FileExistsError`.

    Returns:
        ``Path(folder) / campaign.algorithm``, the argument to give cocopp.
    """
    if not isinstance(campaign, Campaign):
        raise _err("campaign", f"expected a Campaign, got {type(campaign).__name__}")
    info = DEFAULT_ALGORITHM_INFO if algorithm_info is None else algorithm_info
    if not isinstance(info, str) or "\n" in info or "\r" in info:
        raise _err("algorithm_info", "expected a one-line str")
    scale = float(cost_scale)
    if not (math.isfinite(scale) and scale > 0):
        raise _err("cost_scale", f"expected a finite value > 0, got {cost_scale!r}")

    out = Path(folder) / campaign.algorithm
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    ladder = _Ladder(campaign.targets)
    best = campaign.best_delta_f
    entries: dict[int, list[str]] = {}
    for f, d in campaign.problems():
        idx = campaign.runs_of(f, d)
        idx = idx[np.argsort(campaign.instance[idx], kind="stable")]
        dat_lines: list[str] = []
        tdat_lines: list[str] = []
        items = []
        for r in idx:
            dat, tdat, n_evals, final = _run_blocks(
                campaign.target_costs[r], float(campaign.total_cost[r]),
                None if best is None else float(best[r]), d, ladder, scale)
            dat_lines += [_DAT_HEADER, *dat]
            tdat_lines += [_DAT_HEADER, *tdat]
            items.append(f"{int(campaign.instance[r])}:{n_evals}|{final:.1e}")
        rel = f"data_f{f}/bbobexp_f{f}_DIM{d}"
        (out / f"data_f{f}").mkdir(exist_ok=True)
        (out / f"{rel}.dat").write_text("\n".join(dat_lines) + "\n")
        (out / f"{rel}.tdat").write_text("\n".join(tdat_lines) + "\n")
        header = (
            f"suite = '{campaign.suite}', funcId = {f}, DIM = {d}, Precision = {_PRECISION:.3e}, "
            f"algId = '{campaign.algorithm}', coco_version = '{COCO_VERSION}', logger = 'bbob', "
            f"data_format = '{DATA_FORMAT}', settings = ''"
        )
        entries.setdefault(f, []).append("\n".join([header, f"% {info}", f"{rel}.dat, " + ", ".join(items)]))
    for f, es in entries.items():
        (out / f"bbobexp_f{f}.info").write_text("\n".join(es))
    return out

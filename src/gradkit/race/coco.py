"""COCO's performance measures computed from a table of per-run target hitting costs.

The input is a :class:`Campaign`: one algorithm's runs on a suite (BBOB by default), each
run ``r`` on problem ``(function[r], instance[r], dimension[r])``, with
``target_costs[r, j]`` the cost at which the run *first* reached
``f - f_opt <= targets[j]`` (``inf`` if never) and ``total_cost[r]`` everything it spent.
Costs are gradient-equivalents (a gradient = 1, a function value = 0.5), the unit COCO
calls "function evaluations" when read through :mod:`gradkit.race.coco_output`.  A campaign
may also hold the counts of each kind (``target_counts``, ``total_counts``: values, gradients,
HVPs, JVPs, :data:`gradkit.runs.units.COUNT_KINDS`); every aRT and ECDF then takes
``unit=`` one of :data:`UNITS` (default ``"gradient-equivalents"``, or a kind such as ``"grads"``).

The measures follow cocopp 2.9 (the COCO post-processing, ``pip install cocopp``) so
numbers computed here agree with the ones cocopp reports on the same data:

- :data:`TARGETS`: the 51 targets ``10^2, 10^1.8, ..., 10^-8`` built exactly as cocopp
  builds them for the ``bbob`` suite (``cocopp/testbedsettings.py``,
  ``GECCOBBOBTestbed.settings["pprldmany_target_values"] = 10 ** np.arange(2, -8.2, -0.2)``,
  wrapped by ``pproc.TargetValues``, which sorts them in decreasing order).
- :func:`average_runtime` / :func:`art_table`: the average runtime aRT (cocopp's "ERT",
  ``pproc.DataSet.computeERTfromEvals`` and ``toolsstats.sp``).
- :func:`best_art_table`: the per-target best aRT over several algorithms
  (``cocopp/bestalg.py``, ``BestAlgSet``).
- :func:`algoperf_score`: AlgoPerf's integrated performance profile (Dahl et al. 2023),
  not a COCO measure but computed from the same kind of costs.

The bootstrapped runtime ECDFs (:func:`simulated_runtimes`, :func:`default_n_samples`,
:func:`runtime_ecdf`, :func:`group_ecdfs`, :func:`virtual_best`) live in
:mod:`gradkit.race.coco_ecdf`; they are re-exported here (imported lazily on first access,
so this module never imports :mod:`~gradkit.race.coco_ecdf` at import time).

Only numpy is used (and the function groups of :mod:`gradkit.suites.bbob_instances`).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from gradkit.runs.units import COUNT_KINDS
from gradkit.suites.bbob_instances import FUNCTION_GROUPS as BBOB_FUNCTION_GROUPS

if TYPE_CHECKING:  # re-exported lazily by __getattr__ at the end of this module
    from .coco_ecdf import default_n_samples, group_ecdfs, runtime_ecdf, simulated_runtimes, virtual_best

__all__ = [
    "TARGETS",
    "UNITS",
    "FUNCTION_GROUPS",
    "Campaign",
    "ArtRow",
    "average_runtime",
    "art_table",
    "simulated_runtimes",
    "default_n_samples",
    "runtime_ecdf",
    "group_ecdfs",
    "best_art_table",
    "virtual_best",
    "algoperf_score",
]

TARGETS: np.ndarray = np.array(sorted(10 ** np.arange(2, -8.2, -0.2), reverse=True))
"""COCO's 51 bbob targets Δf = 10^2, 10^1.8, ..., 10^-8 (decreasing), bit for bit as cocopp
builds them: ``10 ** np.arange(2, -8.2, -0.2)`` (``cocopp/testbedsettings.py``,
``GECCOBBOBTestbed.settings['pprldmany_target_values']``) sorted decreasingly by
``cocopp.pproc.TargetValues``.  The accumulated ``arange`` rounding makes most of them a few
ulp *larger* than ``10**(k/5)`` (the last is ``1.0000000000000042e-08``); cocopp's aligned
data rows are labelled ``np.power(10, k / 5)``, which are never larger, so its
``DataSet.detEvals(TARGETS)`` picks the row of the same nominal level."""

UNITS: tuple[str, ...] = ("gradient-equivalents", *COUNT_KINDS)
"""The units a runtime can be read in: gradient-equivalents (``target_costs`` / ``total_cost``) or
the count of one kind of evaluation (``target_counts[..., k]`` / ``total_counts[:, k]``, ``k`` the
kind's index in :data:`gradkit.runs.units.COUNT_KINDS`: values, grads, hvps, jvps)."""

FUNCTION_GROUPS = BBOB_FUNCTION_GROUPS  # defined once, with cocopp's names, in gradkit.suites.bbob_instances


# --------------------------------------------------------------------------- validation


def _err(field: str, msg: str) -> ValueError:
    return ValueError(f"{field}: {msg}")


def _int_array(name: str, x: object, *, minimum: int) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise _err(name, f"expected a 1-D array, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        if a.dtype.kind != "f" or not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise _err(name, f"expected integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and a.min() < minimum:
        raise _err(name, f"values must be >= {minimum}, got {a.min()}")
    return a


def _float_array(name: str, x: object) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _err(name, f"not convertible to float ({e})") from None
    if np.isnan(a).any():
        raise _err(name, "contains NaN")
    return a


def _check_costs(target_costs: object, total_cost: object, *, tc_name: str = "target_costs",
                 total_name: str = "total_cost", ndim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validated float copies of ``target_costs`` (``ndim``-D, runs first) and ``total_cost`` (R,)."""
    tc = _float_array(tc_name, target_costs)
    tot = _float_array(total_name, total_cost)
    if tc.ndim != ndim or tc.shape[0] == 0 or (ndim == 2 and tc.shape[1] == 0):
        want = "(runs, targets)" if ndim == 2 else "(runs,)"
        raise _err(tc_name, f"expected a non-empty array of shape {want}, got shape {tc.shape}")
    if tot.shape != tc.shape[:1]:
        raise _err(total_name, f"expected shape {tc.shape[:1]} (one per run), got shape {tot.shape}")
    if (tc < 0).any():
        raise _err(tc_name, f"costs must be >= 0, got {tc.min()}")
    if not np.isfinite(tot).all():
        raise _err(total_name, "must be finite (the cost every run spent)")
    if (tot < 0).any():
        raise _err(total_name, f"costs must be >= 0, got {tot.min()}")
    finite_tc = np.where(np.isfinite(tc), tc, -np.inf)
    worst = finite_tc.max(axis=1) if ndim == 2 else finite_tc
    bad = np.flatnonzero(worst > tot)
    if bad.size:
        r = int(bad[0])
        raise _err(tc_name, f"run {r} reached a target at cost {worst[r]} > its total_cost {tot[r]}")
    return tc, tot


def _unit_index(unit: object) -> int | None:
    """``None`` for gradient-equivalents, else the index of the kind in ``COUNT_KINDS``."""
    if not isinstance(unit, str) or unit not in UNITS:
        raise _err("unit", f"expected one of {', '.join(UNITS)}, got {unit!r}")
    return None if unit == UNITS[0] else COUNT_KINDS.index(unit)


def _check_counts(target_counts: object, total_counts: object, tc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated float copies of ``target_counts`` ``(R, T, K)`` and ``total_counts`` ``(R, K)``,
    ``K = len(COUNT_KINDS)``, consistent with the validated ``target_costs`` ``tc``."""
    counts = _float_array("target_counts", target_counts)
    totals = _float_array("total_counts", total_counts)
    kinds = len(COUNT_KINDS)
    if counts.shape != (*tc.shape, kinds):
        raise _err("target_counts", f"expected shape {(*tc.shape, kinds)} (runs, targets, kinds), got {counts.shape}")
    if totals.shape != (tc.shape[0], kinds):
        raise _err("total_counts", f"expected shape {(tc.shape[0], kinds)} (runs, kinds), got {totals.shape}")
    if (counts < 0).any() or (totals < 0).any() or not np.isfinite(totals).all():
        raise _err("target_counts", "counts must be >= 0 (inf = not reached) and total_counts finite")
    if (np.isfinite(counts) != np.isfinite(tc)[:, :, None]).any():
        raise _err("target_counts", "must be inf exactly where target_costs is (in every kind)")
    for k in range(kinds):
        _check_costs(counts[:, :, k], totals[:, k], tc_name="target_counts", total_name="total_counts")
        if (counts[:, 1:, k] < counts[:, :-1, k]).any():
            raise _err("target_counts", f"{COUNT_KINDS[k]} decrease along the (decreasing) targets")
    return counts, totals


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------- campaign


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Campaign:
    """One algorithm's runs on a suite, as target hitting costs (keyword-only fields).

    For run ``r`` (several runs may share a ``(function, instance, dimension)``, e.g. several
    starts per instance):

    - ``function[r]``, ``instance[r]``, ``dimension[r]``: positive ints;
    - ``target_costs[r, j]``: the cost (gradient-equivalents) at which the run first reached
      ``f - f_opt <= targets[j]``, ``inf`` if never; nondecreasing in ``j``;
    - ``total_cost[r]``: everything the run spent, finite and ``>=`` every finite target cost;
    - ``best_delta_f[r]`` (optional): the best ``f - f_opt`` the run saw, ``>= 0`` and
      consistent with the ladder (``<= targets[j]`` for every reached ``j``, ``> targets[j]``
      for every missed one); used only by :func:`gradkit.race.coco_output.write_coco`;
    - ``target_counts[r, j, k]`` and ``total_counts[r, k]`` (optional, together): the same
      runtimes counted per kind ``k`` of :data:`gradkit.runs.units.COUNT_KINDS` (values, grads,
      HVPs, JVPs): ``inf`` exactly where ``target_costs`` is, each kind nondecreasing in ``j``
      and ``<= total_counts[r, k]``; read with ``unit=`` (:meth:`runtimes`).

    ``targets`` is the strictly decreasing positive ladder (default :data:`TARGETS`),
    ``algorithm`` a name without whitespace, quotes or path separators (it names the
    output folder and cocopp's ``algId``), ``suite`` the COCO suite name.

    Arrays are stored as read-only float64/int64 copies.  Every bad field raises a one-line
    :class:`ValueError` starting with the field's name.
    """

    algorithm: str
    function: np.ndarray
    instance: np.ndarray
    dimension: np.ndarray
    target_costs: np.ndarray
    total_cost: np.ndarray
    targets: np.ndarray = dataclasses.field(default_factory=lambda: TARGETS.copy())
    best_delta_f: np.ndarray | None = None
    suite: str = "bbob"
    target_counts: np.ndarray | None = None
    total_counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.algorithm, str) or not self.algorithm:
            raise _err("algorithm", f"expected a non-empty str, got {self.algorithm!r}")
        if any(c.isspace() or c in "'\"/\\,%" for c in self.algorithm) or self.algorithm in (".", ".."):
            raise _err("algorithm", f"no whitespace, quotes, commas, '%' or path separators allowed, got {self.algorithm!r}")
        if not isinstance(self.suite, str) or not self.suite or any(c.isspace() or c in "'\"," for c in self.suite):
            raise _err("suite", f"expected a non-empty name without whitespace, quotes or commas, got {self.suite!r}")

        targets = _float_array("targets", self.targets)
        if targets.ndim != 1 or targets.size == 0:
            raise _err("targets", f"expected a non-empty 1-D array, got shape {targets.shape}")
        if not np.isfinite(targets).all() or (targets <= 0).any():
            raise _err("targets", "must be finite and > 0")
        if (np.diff(targets) >= 0).any():
            raise _err("targets", "must be strictly decreasing (easiest target first)")

        function = _int_array("function", self.function, minimum=1)
        n_runs = function.size
        if n_runs == 0:
            raise _err("function", "no runs (empty array)")
        instance = _int_array("instance", self.instance, minimum=1)
        dimension = _int_array("dimension", self.dimension, minimum=1)
        for name, a in (("instance", instance), ("dimension", dimension)):
            if a.size != n_runs:
                raise _err(name, f"expected {n_runs} entries (one per run, as function), got {a.size}")

        tc, tot = _check_costs(self.target_costs, self.total_cost)
        if tc.shape != (n_runs, targets.size):
            raise _err("target_costs", f"expected shape ({n_runs}, {targets.size}) (runs, targets), got {tc.shape}")
        decreasing = (tc[:, 1:] < tc[:, :-1]).any(axis=1)
        if decreasing.any():
            r = int(np.flatnonzero(decreasing)[0])
            raise _err("target_costs", f"run {r} is not nondecreasing along the (decreasing) targets")

        best = None
        if self.best_delta_f is not None:
            best = _float_array("best_delta_f", self.best_delta_f)
            if best.shape != (n_runs,):
                raise _err("best_delta_f", f"expected shape ({n_runs},), got {best.shape}")
            if not np.isfinite(best).all() or (best < 0).any():
                raise _err("best_delta_f", "must be finite and >= 0")
            reached = np.isfinite(tc)
            below = best[:, None] <= targets[None, :]
            bad = np.flatnonzero((reached != below).any(axis=1))
            if bad.size:
                r = int(bad[0])
                raise _err("best_delta_f", f"run {r}: {best[r]:.6g} disagrees with the targets it reached (target_costs)")

        object.__setattr__(self, "targets", _readonly(targets))
        object.__setattr__(self, "function", _readonly(function))
        object.__setattr__(self, "instance", _readonly(instance))
        object.__setattr__(self, "dimension", _readonly(dimension))
        object.__setattr__(self, "target_costs", _readonly(tc))
        object.__setattr__(self, "total_cost", _readonly(tot))
        object.__setattr__(self, "best_delta_f", None if best is None else _readonly(best))
        if (self.target_counts is None) != (self.total_counts is None):
            raise _err("target_counts", "target_counts and total_counts come together (give both or neither)")
        if self.target_counts is not None:
            counts, totals = _check_counts(self.target_counts, self.total_counts, tc)
            object.__setattr__(self, "target_counts", _readonly(counts))
            object.__setattr__(self, "total_counts", _readonly(totals))

    def runtimes(self, unit: str = "gradient-equivalents") -> tuple[np.ndarray, np.ndarray]:
        """``(target runtimes (R, T), total runtime (R,))`` in ``unit`` (:data:`UNITS`):
        ``(target_costs, total_cost)`` for ``"gradient-equivalents"``, else
        ``(target_counts[:, :, k], total_counts[:, k])`` with ``k = COUNT_KINDS.index(unit)``."""
        k = _unit_index(unit)
        if k is None:
            return self.target_costs, self.total_cost
        if self.target_counts is None:
            raise _err("unit", f"{unit!r} needs a campaign with target_counts and total_counts (this one has none)")
        return self.target_counts[:, :, k], self.total_counts[:, k]

    @property
    def n_runs(self) -> int:
        """Number of runs ``R``."""
        return int(self.function.size)

    def problems(self) -> list[tuple[int, int]]:
        """The ``(function, dimension)`` pairs with runs, sorted."""
        return sorted({(int(f), int(d)) for f, d in zip(self.function, self.dimension)})

    def dimensions(self) -> list[int]:
        """The dimensions with runs, sorted."""
        return sorted({int(d) for d in self.dimension})

    def runs_of(self, function: int, dimension: int) -> np.ndarray:
        """Indices of the runs on ``(function, dimension)``, in campaign order."""
        return np.flatnonzero((self.function == function) & (self.dimension == dimension))


# --------------------------------------------------------------------------- aRT


def _instance_multipliers(instances: np.ndarray) -> np.ndarray:
    """cocopp's instance balancing (``pproc.DataSet.instance_multipliers``): run ``r`` counts
    ``lcm(counts) / count(instance[r])`` times; an lcm over 24 is replaced by
    ``max(counts) * max(1, int(24 / max(counts)))``."""
    counts = Counter(int(i) for i in instances)
    values = list(counts.values())
    lcm = math.lcm(*values)
    if len(set(values)) > 1 and lcm > 24:
        m = max(values)
        lcm = m * max(1, int(24 / m))
    return np.array([int(lcm / counts[int(i)]) for i in instances], dtype=np.int64)


def average_runtime(target_costs: np.ndarray, total_cost: np.ndarray) -> np.ndarray:
    """Average runtime aRT per target (COCO's "expected running time", ERT).

    ``aRT_j = Σ_r min(target_costs[r, j], total_cost[r]) / #{r : target_costs[r, j] < inf}``:
    a successful run counts its cost to the target, an unsuccessful one its whole
    ``total_cost``; ``inf`` when no run reached target ``j``.  This is cocopp's
    ``DataSet.computeERTfromEvals`` / ``toolsstats.sp`` with ``maxevals = total_cost``.

    Args:
        target_costs: ``(R, T)`` costs, ``inf`` = never reached, all ``>= 0``.
        total_cost: ``(R,)`` finite costs, ``total_cost[r] >=`` every finite ``target_costs[r]``.

    Returns:
        ``(T,)`` float array.

    Raises:
        ValueError: bad shapes, NaN, negative costs, a target cost above the run's total.
    """
    tc, tot = _check_costs(target_costs, total_cost)
    return _art(tc, tot)


def _art(tc: np.ndarray, tot: np.ndarray) -> np.ndarray:
    succ = np.isfinite(tc)
    n_succ = succ.sum(axis=0)
    spent = np.where(succ, tc, tot[:, None]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_succ > 0, spent / np.maximum(n_succ, 1), np.inf)


class ArtRow(NamedTuple):
    """aRT of one ``(function, dimension)``: ``art[j]`` per target, ``n_success[j]`` runs that
    reached target ``j``, out of ``n_runs``."""

    art: np.ndarray
    n_success: np.ndarray
    n_runs: int


def _rows(campaign: Campaign, idx: np.ndarray, balance_instances: bool, unit: str = "gradient-equivalents"
          ) -> tuple[np.ndarray, np.ndarray]:
    target, total = campaign.runtimes(unit)
    tc, tot = target[idx], total[idx]
    if balance_instances:
        m = _instance_multipliers(campaign.instance[idx])
        tc, tot = np.repeat(tc, m, axis=0), np.repeat(tot, m)
    return tc, tot


def art_table(campaign: Campaign, *, balance_instances: bool = False, unit: str = "gradient-equivalents"
              ) -> dict[tuple[int, int], ArtRow]:
    """aRT per ``(function, dimension)`` of ``campaign``, over all its runs there.

    ``{(f, d): ArtRow(art (T,), n_success (T,), n_runs)}`` with ``art`` from
    :func:`average_runtime`, ``aRT_j = Σ_r min(t_rj, total_r) / #{r : t_rj < inf}`` of the
    runtimes ``t``, ``total`` in ``unit`` (:data:`UNITS`, :meth:`Campaign.runtimes`; e.g.
    ``"grads"``: gradients until the target, and over the whole run when it was missed).
    With ``balance_instances=True`` each run is counted ``lcm(c) / c_i`` times, ``c_i`` the
    number of runs on its instance, as cocopp does by default
    (``genericsettings.balance_instances``); the two agree whenever every instance has the same
    number of runs.  ``n_success``/``n_runs`` count the runs themselves.
    """
    out: dict[tuple[int, int], ArtRow] = {}
    for f, d in campaign.problems():
        idx = campaign.runs_of(f, d)
        tc, tot = _rows(campaign, idx, balance_instances, unit)
        n_succ = np.isfinite(campaign.target_costs[idx]).sum(axis=0)
        out[(f, d)] = ArtRow(_art(tc, tot), n_succ, int(idx.size))
    return out


# --------------------------------------------------------------------------- best algorithm


def _check_campaigns(campaigns: Sequence[Campaign]) -> list[Campaign]:
    cs = list(campaigns)
    if not cs or not all(isinstance(c, Campaign) for c in cs):
        raise _err("campaigns", "expected a non-empty sequence of Campaign")
    for c in cs[1:]:
        if c.targets.shape != cs[0].targets.shape or not np.array_equal(c.targets, cs[0].targets):
            raise _err("campaigns", f"{c.algorithm!r} uses other targets than {cs[0].algorithm!r}")
    return cs


def best_art_table(campaigns: Sequence[Campaign], *, balance_instances: bool = False,
                   unit: str = "gradient-equivalents") -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """Per ``(function, dimension)`` and target, the smallest aRT over ``campaigns`` and the
    index of the campaign attaining it: ``{(f, d): (best_art (T,), which (T,))}``, ``which = -1``
    where no campaign reached the target.  Ties go to the earlier campaign, as in cocopp's
    ``bestalg.BestAlgSet`` (strict ``<`` while scanning the algorithms).  ``unit``: as
    :func:`art_table`, ``best_j = min_c aRT_j(c)``."""
    cs = _check_campaigns(campaigns)
    tables = [art_table(c, balance_instances=balance_instances, unit=unit) for c in cs]
    keys = sorted(set().union(*tables))
    out = {}
    for key in keys:
        arts = np.array([t[key].art if key in t else np.full(cs[0].targets.size, np.inf) for t in tables])
        which = np.argmin(arts, axis=0)  # first minimum
        best = arts[which, np.arange(arts.shape[1])]
        out[key] = (best, np.where(np.isfinite(best), which, -1))
    return out


# --------------------------------------------------------------------------- AlgoPerf


def algoperf_score(t: np.ndarray, r_max: float = 4.0) -> np.ndarray:
    """AlgoPerf benchmark score per solver: the normalized integral of its performance profile.

    ``B_s = 1/(r_max - 1) ∫_1^{r_max} ρ_s(τ) dτ`` with ``ρ_s(τ) = |{p : r_{p,s} <= τ}| / |P|`` and
    ``r_{p,s} = t[p, s] / min_{s'} t[p, s']`` (Dahl et al. 2023, "Benchmarking Neural Network
    Training Algorithms", arXiv:2306.07179, Sec. "Integrating performance profiles for the
    benchmark score"; mlcommons/algorithmic-efficiency ``docs/DOCUMENTATION.md``, ``r_max = 4``).
    ρ_s is a step function, so the integral is exact, not on a τ grid (the reference
    ``scoring/performance_profile.py`` integrates a sampled profile with ``np.trapz``):
    ``B_s = (1/|P|) Σ_p max(0, r_max - r_{p,s}) / (r_max - 1)``.

    ``inf`` = unsolved (ratio ``inf``); a problem no solver solves counts in ``|P|`` only.
    When the best cost of a problem is 0, the solvers at 0 get ratio 1 and the others ``inf``
    (as :mod:`gradkit.race.profiles`).

    Args:
        t: ``(problems, solvers)`` costs, ``>= 0`` or ``inf``.
        r_max: upper integration limit, ``> 1`` and finite.

    Returns:
        ``(solvers,)`` scores in ``[0, 1]``.
    """
    a = _float_array("t", t)
    if a.ndim != 2 or 0 in a.shape:
        raise _err("t", f"expected a non-empty (problems, solvers) array, got shape {a.shape}")
    if (a < 0).any():
        raise _err("t", f"costs must be >= 0 (inf = unsolved), got {a.min()}")
    r_max = float(r_max)
    if not (math.isfinite(r_max) and r_max > 1):
        raise _err("r_max", f"expected a finite value > 1, got {r_max}")
    best = a.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(best == 0, np.where(a == 0, 1.0, np.inf), a / best)
    ratio = np.where(np.isfinite(best), ratio, np.inf)
    credit = np.clip(r_max - ratio, 0.0, None) / (r_max - 1)
    return credit.mean(axis=0)


# Public names defined in gradkit.race.coco_ecdf (which imports this module), re-exported
# lazily so that importing this module never imports coco_ecdf (no import cycle).
_ECDF_NAMES = frozenset({"simulated_runtimes", "default_n_samples", "runtime_ecdf", "group_ecdfs", "virtual_best"})


def __getattr__(name: str) -> object:
    if name in _ECDF_NAMES:
        from . import coco_ecdf

        value = getattr(coco_ecdf, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _ECDF_NAMES)


def selection_score(target_costs: np.ndarray) -> tuple[float, float]:
    """How a learning rate is chosen on tuning runs (BBOB instances, CUTEst problems): the key
    ``(fraction of (run, target) pairs reached, mean log10 runtime over those reached)``, the
    first higher-is-better, the second lower-is-better."""
    reached = np.isfinite(target_costs)
    mean_log = float(np.log10(np.maximum(target_costs[reached], 1e-300)).mean()) if reached.any() else math.inf
    return float(reached.mean()), mean_log

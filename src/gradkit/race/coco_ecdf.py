"""COCO's bootstrapped runtime ECDFs, computed from a :class:`~gradkit.race.coco.Campaign`.

The ECDF half of :mod:`gradkit.race.coco` (which re-exports every public name here), following
cocopp 2.9 like the rest of it:

- :func:`simulated_runtimes`, :func:`default_n_samples`, :func:`runtime_ecdf`,
  :func:`group_ecdfs`: the bootstrapped runtime ECDFs of ``cocopp/compall/pprldmany.py``
  (simulated restarts of ``toolsstats.drawSP``).
- :func:`virtual_best`: the best-algorithm line (``cocopp/bestalg.py``, ``BestAlgSet``).

This module imports :mod:`gradkit.race.coco`, never the reverse at import time.  Only numpy
is used besides it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .coco import FUNCTION_GROUPS, Campaign, _check_campaigns, _check_costs, _err, _rows, best_art_table

__all__ = [
    "simulated_runtimes",
    "default_n_samples",
    "runtime_ecdf",
    "group_ecdfs",
    "virtual_best",
]


# cocopp/compall/pprldmany.py main(): samplesize = N * max(2, int((100 + 1000 / (1 + in_a_hurry)) / N))
# with genericsettings.in_a_hurry = 1000 and N the largest number of runs per function.
_COCOPP_SAMPLE_BUDGET = 100 + 1000 / (1 + 1000)


# --------------------------------------------------------------------------- bootstrap / ECDF


def simulated_runtimes(target_costs: np.ndarray, total_costs: np.ndarray, n_samples: int,
                       rng: np.random.Generator | int | None = None, *, derandomized: bool = True) -> np.ndarray:
    """Runtimes of simulated restarts for one problem and one target (cocopp's ``toolsstats.drawSP``).

    One sample: draw a run uniformly with replacement; while the drawn run is unsuccessful
    (``target_costs[r] = inf``) add its ``total_costs[r]`` and draw again; finally add the
    successful run's ``target_costs[r]``.  With ``n_s`` successes among ``n`` runs the
    number of failed draws is geometric, so ``E[sample] = ((n - n_s)/n_s) · mean(unsuccessful
    totals) + mean(successful costs) = aRT`` (:func:`~gradkit.race.coco.average_runtime`).

    As in ``drawSP`` (``derandomized=True``), the *first* draws of the samples are successive
    random permutations of the runs (each run starts ``n_samples / n`` samples when that
    divides), the restarts are i.i.d. uniform; with every run successful and ``n | n_samples``
    the result is therefore exact: each run's cost ``n_samples / n`` times.  All runs
    unsuccessful: ``n_samples`` times ``inf`` (cocopp's ``pprldmany`` does the same).

    Args:
        target_costs: ``(n,)`` costs to the target, ``inf`` = not reached.
        total_costs: ``(n,)`` finite total costs of the same runs.
        n_samples: number of simulated runtimes, ``>= 1``.
        rng: a ``numpy.random.Generator`` or a seed.
        derandomized: permutation-based first draws (cocopp) instead of i.i.d. ones.

    Returns:
        ``(n_samples,)`` float array, unsorted.
    """
    tc, tot = _check_costs(target_costs, total_costs, total_name="total_costs", ndim=1)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise _err("n_samples", f"expected a positive int, got {n_samples!r}")
    return _simulate(tc, tot, int(n_samples), np.random.default_rng(rng), derandomized)


def _simulate(tc: np.ndarray, tot: np.ndarray, n: int, rng: np.random.Generator, derandomized: bool) -> np.ndarray:
    succ = np.isfinite(tc)
    if not succ.any():
        return np.full(n, np.inf)
    n_runs = tc.size
    if derandomized:
        idx = np.concatenate([rng.permutation(n_runs) for _ in range(-(-n // n_runs))])[:n]
    else:
        idx = rng.integers(n_runs, size=n)
    out = np.zeros(n)
    active = np.flatnonzero(~succ[idx])
    while active.size:
        out[active] += tot[idx[active]]
        idx[active] = rng.integers(n_runs, size=active.size)
        active = active[~succ[idx[active]]]
    return out + tc[idx]


def default_n_samples(max_runs: int) -> int:
    """cocopp's bootstrap sample size per (function, target) in ``pprldmany.main``:
    ``N · max(2, int((100 + 1000/1001) / N))`` with ``N`` the largest number of runs per
    function in the dimension (``genericsettings.in_a_hurry = 1000``); about 100."""
    if max_runs < 1:
        raise _err("max_runs", f"expected >= 1, got {max_runs}")
    return int(max_runs * max(2, int(_COCOPP_SAMPLE_BUDGET / max_runs)))


def _ecdf(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct finite values ``x`` and ``y[i] = #{samples <= x[i]} / #samples`` (inf counted
    in the denominator, as cocopp's ``pprldmany.plotdata``)."""
    n = samples.size
    finite = np.sort(samples[np.isfinite(samples)])
    x, counts = np.unique(finite, return_counts=True)
    return x, (np.cumsum(counts) / n if n else np.zeros(0))


def _functions_in(campaign: Campaign, dimension: int, functions: Iterable[int] | None) -> list[int]:
    present = sorted({int(f) for f in campaign.function[campaign.dimension == dimension]})
    if not present:
        raise _err("dimension", f"campaign {campaign.algorithm!r} has no runs in dimension {dimension}")
    if functions is None:
        return present
    wanted = sorted({int(f) for f in functions})
    missing = [f for f in wanted if f not in present]
    if missing:
        raise _err("functions", f"no runs of {campaign.algorithm!r} on f{missing[0]} in dimension {dimension}")
    if not wanted:
        raise _err("functions", "empty selection")
    return wanted


def runtime_ecdf(campaign: Campaign, dimension: int, functions: Iterable[int] | None = None,
                 n_samples: int | None = None, seed: int | np.random.Generator | None = 0, *,
                 balance_instances: bool = False, unit: str = "gradient-equivalents") -> tuple[np.ndarray, np.ndarray]:
    """Bootstrapped ECDF of runtime / dimension over (function, target) pairs, as cocopp's
    ``compall/pprldmany.py`` (the "runtime distributions" / ECDF figures, bbob suite).

    For each function (its runs on all instances pooled, as one cocopp ``DataSet``) and each
    target ``t_j``: ``n_samples`` simulated-restart runtimes (:func:`simulated_runtimes`),
    divided by ``dimension``.  All samples of all (function, target) pairs form one
    multiset ``S``; ``y(x) = #{s in S : s <= x} / |S|``, i.e. the fraction of
    (function, target) pairs solved within a budget of ``x · dimension`` (unsolved samples
    are ``inf`` and only count in ``|S|``).  cocopp plots it over ``log10(x)``.

    Args:
        campaign: the runs.
        dimension: the dimension (cocopp never aggregates over dimensions).
        functions: function ids to include (default: all with runs in ``dimension``).
        n_samples: samples per (function, target); default :func:`default_n_samples` of the
            largest number of runs per function.
        seed: seed or generator for the bootstrap.
        balance_instances: weight instances equally, as cocopp by default (see :func:`~gradkit.race.coco.art_table`).
        unit: the runtime's unit, one of :data:`~gradkit.race.coco.UNITS` (default gradient-equivalents;
            a kind such as ``"grads"`` reads the campaign's counts).

    Returns:
        ``(x, y)``: the distinct finite values of runtime/dimension, increasing, and the ECDF
        at them (a right-continuous step function; ``y[-1] < 1`` when some pairs are unsolved).
    """
    rng = np.random.default_rng(seed)
    fs = _functions_in(campaign, dimension, functions)
    blocks = [_rows(campaign, campaign.runs_of(f, dimension), balance_instances, unit) for f in fs]
    n = n_samples if n_samples is not None else default_n_samples(max(b[0].shape[0] for b in blocks))
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise _err("n_samples", f"expected a positive int, got {n!r}")
    samples = [_simulate(tc[:, j], tot, int(n), rng, True) for tc, tot in blocks for j in range(tc.shape[1])]
    return _ecdf(np.concatenate(samples) / dimension)


def group_ecdfs(campaign: Campaign, dimension: int, n_samples: int | None = None,
                seed: int | None = 0, *, groups: dict[str, Sequence[int]] | None = None,
                balance_instances: bool = False, unit: str = "gradient-equivalents"
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`runtime_ecdf` per function group (default :data:`~gradkit.race.coco.FUNCTION_GROUPS`), over the
    group's functions that have runs in ``dimension``; groups without any are left out.  ``unit``: as
    :func:`runtime_ecdf`."""
    groups = FUNCTION_GROUPS if groups is None else groups
    present = set(int(f) for f in campaign.function[campaign.dimension == dimension])
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, fs in groups.items():
        sel = [f for f in fs if f in present]
        if sel:
            out[name] = runtime_ecdf(campaign, dimension, sel, n_samples, seed, balance_instances=balance_instances,
                                     unit=unit)
    return out


# --------------------------------------------------------------------------- virtual best


def virtual_best(campaigns: Sequence[Campaign], dimension: int, functions: Iterable[int] | None = None,
                 n_samples: int | None = None, seed: int | np.random.Generator | None = 0, *,
                 balance_instances: bool = False, unit: str = "gradient-equivalents") -> tuple[np.ndarray, np.ndarray]:
    """ECDF of the virtual best solver, the line cocopp draws for its best (reference) algorithm.

    cocopp's ``bestalg.BestAlgSet`` picks, per function, dimension and target, the algorithm
    with the smallest aRT and keeps *that algorithm's runs* for the target;
    ``compall/pprldmany.py`` then bootstraps them with ``toolsstats.drawSP`` exactly like an
    algorithm's own runs.  Here likewise: for each ``(function, target)`` the campaign with the
    smallest aRT (:func:`~gradkit.race.coco.best_art_table`, ties to the earlier one) supplies its runs, which are
    bootstrapped by :func:`simulated_runtimes` (their mean is that best aRT) and ECDF'd over
    (function, target) pairs as in :func:`runtime_ecdf`.  Pairs no campaign solves count as
    unsolved.

    Args:
        campaigns: the algorithms, all on the same ``targets``.
        dimension, functions, n_samples, seed, balance_instances, unit: as :func:`runtime_ecdf`;
            ``functions`` defaults to every function any campaign ran in ``dimension``, and
            ``n_samples`` to :func:`default_n_samples` of the largest number of runs.

    Returns:
        ``(x, y)`` as :func:`runtime_ecdf`.
    """
    cs = _check_campaigns(campaigns)
    present = sorted({int(f) for c in cs for f in c.function[c.dimension == dimension]})
    if not present:
        raise _err("dimension", f"no campaign has runs in dimension {dimension}")
    fs = present if functions is None else sorted({int(f) for f in functions})
    missing = [f for f in fs if f not in present]
    if missing or not fs:
        raise _err("functions", f"no campaign has runs on f{missing[0]} in dimension {dimension}" if missing else "empty selection")
    best = best_art_table(cs, balance_instances=balance_instances, unit=unit)
    max_runs = max(c.runs_of(f, dimension).size for c in cs for f in fs)
    n = n_samples if n_samples is not None else default_n_samples(max_runs)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise _err("n_samples", f"expected a positive int, got {n!r}")
    rng = np.random.default_rng(seed)
    samples = []
    for f in fs:
        _, which = best[(f, dimension)]
        for j, k in enumerate(which):
            if k < 0:
                samples.append(np.full(int(n), np.inf))
                continue
            c = cs[int(k)]
            tc, tot = _rows(c, c.runs_of(f, dimension), balance_instances, unit)
            samples.append(_simulate(tc[:, j], tot, int(n), rng, True))
    return _ecdf(np.concatenate(samples) / dimension)

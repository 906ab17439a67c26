"""``gradkit race --suite bbob``: a BBOB campaign scored the way COCO scores it.

The campaign (:mod:`gradkit.race.campaign`) gives every (optimizer, learning rate) its runs.
Per optimizer and dimension the learning rate is chosen on the *odd* instances (1, 3, 5, ...)
and every reported number comes from the *even* ones (2, 4, ...), so no verdict is tuned on
itself (with a single instance both halves are that instance).  The selection score is the
fraction of (run, target) pairs reached within the budget -- the ECDF at the budget -- ties
broken by the smaller mean ``log10`` runtime over the pairs reached.

Reported per dimension: COCO's aRT (:func:`gradkit.race.coco.average_runtime`, in
gradient-equivalents, with the number of successful runs) per function at ``Δf = 10^-8`` and at
``10^-2``; the bootstrapped runtime ECDF of every optimizer and of the virtual best solver
(:func:`gradkit.race.coco.runtime_ecdf`, :func:`~gradkit.race.coco.virtual_best`); AlgoPerf's
integrated performance-profile score (:func:`gradkit.race.coco.algoperf_score`, runtime to
``Δf = 10^-8`` per held-out run); and per optimizer with a default learning rate the gap between
the tuned and the default learning rate's scores.  Files: the ECDF and learning-rate sensitivity
pictures, a JSON summary, and the runs in COCO's data format (``OUT/coco/<optimizer>``, readable
by ``python -m cocopp OUT/coco/*``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np

from gradkit.race import coco
from gradkit.race.coco import selection_score
from gradkit.race.campaign import CampaignConfig, Runs, run_campaign, total_runs, validate
from gradkit.race.config import check_writable
from gradkit.runs import multihost

REPORT_TARGETS = (1e-2, 1e-8)


@dataclasses.dataclass(frozen=True)
class BBOBRaceResult:
    """A BBOB race: the config, every (optimizer, lr)'s runs, the chosen learning rate per
    (optimizer, dimension), the held-out campaigns those give, the summary and the files written."""

    config: CampaignConfig
    runs: dict[tuple[str, float | None], Runs]
    chosen: dict[tuple[str, int], float | None]
    campaigns: dict[int, dict[str, coco.Campaign]]
    summary: dict[str, Any]
    files: list[str]


def _halves(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the tuning (odd instance numbers) and held-out (even) runs."""
    odd = instances % 2 == 1
    if odd.all() or not odd.any():
        return np.ones_like(odd), np.ones_like(odd)
    return odd, ~odd



def choose_learning_rates(results: dict[tuple[str, float | None], Runs], config: CampaignConfig
                          ) -> dict[tuple[str, int], float | None]:
    """Per (optimizer, dimension), the learning rate of the grid with the best
    :func:`selection_score` on the tuning instances (``None``: the optimizer takes none)."""
    chosen: dict[tuple[str, int], float | None] = {}
    grid = {float(v) for v in config.learning_rates}
    for dimension in config.dimensions:
        candidates: dict[str, list[tuple[tuple[float, float], float | None]]] = {}
        for (name, lr), r in results.items():
            if lr is not None and lr not in grid:
                continue  # a default learning rate outside the grid is measured, never chosen
            mask = (r.dimension == dimension) & _halves(r.instance)[0]
            frac, mean_log = selection_score(r.target_costs[mask])
            candidates.setdefault(name, []).append(((-frac, mean_log), lr))
        for name, scored in candidates.items():
            chosen[(name, dimension)] = min(scored, key=lambda item: item[0])[1]
    return chosen


def algorithm_name(name: str, lr: float | None) -> str:
    """A COCO algorithm id: the optimizer's name (``:`` and ``/`` made ``_``) and its learning rate."""
    base = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)
    return base if lr is None else f"{base}_lr{lr:.0e}"


def held_out_campaign(r: Runs, dimension: int) -> coco.Campaign:
    """The held-out runs of ``r`` in ``dimension`` as a :class:`gradkit.race.coco.Campaign`."""
    mask = (r.dimension == dimension) & _halves(r.instance)[1]
    return coco.Campaign(algorithm=algorithm_name(r.optimizer, r.learning_rate), function=r.function[mask],
                         instance=r.instance[mask], dimension=r.dimension[mask],
                         target_costs=r.target_costs[mask], total_cost=r.total_cost[mask],
                         target_counts=None if r.target_counts is None else r.target_counts[mask],
                         total_counts=None if r.total_counts is None else r.total_counts[mask])


def _target_index(value: float) -> int:
    return int(np.argmin(np.abs(np.log10(coco.TARGETS) - math.log10(value))))


def art_rows(campaigns: dict[str, coco.Campaign], dimension: int, functions: tuple[int, ...],
             unit: str = "gradient-equivalents") -> list[dict[str, Any]]:
    """Per function, per optimizer: aRT at each of :data:`REPORT_TARGETS` in ``unit``
    (:data:`gradkit.race.coco.UNITS`) and the successes."""
    rows = []
    for function in functions:
        row: dict[str, Any] = {"function": function}
        for name, camp in campaigns.items():
            idx = camp.runs_of(function, dimension)
            target_runtimes, total_runtime = camp.runtimes(unit)
            for target in REPORT_TARGETS:
                j = _target_index(target)
                art = coco.average_runtime(target_runtimes[idx][:, [j]], total_runtime[idx])[0]
                row[(name, target)] = (float(art), int(np.isfinite(camp.target_costs[idx][:, j]).sum()), len(idx))
        rows.append(row)
    return rows


def format_art_table(rows: list[dict[str, Any]], names: list[str], dimension: int,
                     unit: str = "gradient-equivalents") -> str:
    """The aRT table of one dimension: a row per function, per optimizer ``aRT/d (succ/runs)``,
    aRT in ``unit``."""
    width = max(18, *(len(n) + 2 for n in names))
    head = f"   {'f':>4}" + "".join(f"{name:>{width}}" for name in names)
    lines = [f"-- d = {dimension}: aRT / d to Δf <= 1e-8 (successful held-out runs / runs), {unit}",
             head]
    for row in rows:
        cells = []
        for name in names:
            art, succ, n = row[(name, 1e-8)]
            cells.append(f"{(f'{art / dimension:.3g}' if math.isfinite(art) else 'inf')} ({succ}/{n})")
        lines.append(f"   {row['function']:>4}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


def _final_target_costs(campaigns: dict[str, coco.Campaign]) -> np.ndarray:
    """``(problems, solvers)``: runtime to the last target per held-out run (same run order)."""
    return np.stack([c.target_costs[:, -1] for c in campaigns.values()], axis=1)


def bbob_race(config: CampaignConfig | None = None, out: str | None = None,
              echo: Callable[[str], Any] = print, unit: str = "gradient-equivalents") -> BBOBRaceResult:
    """Run the campaign, choose learning rates on the tuning instances, print per dimension the aRT
    table, the ECDF area and AlgoPerf score of each optimizer, and write files to ``out``.

    ``unit``: the aRT table's runtime (:data:`gradkit.race.coco.UNITS`: gradient-equivalents, or
    the count of values, grads, hvps or jvps); the budget, the learning-rate choice, the ECDF
    areas and the AlgoPerf scores stay in gradient-equivalents."""
    config = config if config is not None else CampaignConfig()
    coco._unit_index(unit)
    if not multihost.is_main_process():  # under jax.distributed: process 0 prints and writes, once
        config, out, echo = dataclasses.replace(config, progress=False), None, multihost.main_process_only(echo)
    table = validate(config)
    if out is not None:
        check_writable(out)
    n_runs = total_runs(config)
    echo(f"gradkit race --suite bbob: {len(config.functions)} function(s) x {len(config.dimensions)} dimension(s) x "
         f"{len(config.instances)} instance(s) x {config.starts_per_instance} start(s) x {len(table)} optimizer(s) "
         f"(learning rates {' '.join(f'{v:g}' for v in config.learning_rates)} for those that take one) = "
         f"{n_runs:,} runs, budget {config.budget}*d gradient-equivalents each")
    echo("  learning rate chosen on the odd instances, every number below on the even ones; targets "
         "Δf = f - f_opt in 10^2 ... 10^-8 (51, COCO's ladder); aRT = cost of all runs / successes")
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_runs, unit="run", desc="bbob", leave=False)
    try:
        results = run_campaign(config, on_progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    chosen = choose_learning_rates(results, config)
    campaigns: dict[int, dict[str, coco.Campaign]] = {}
    summary: dict[str, Any] = {"dimensions": {}}
    files: list[str] = []
    for dimension in config.dimensions:
        camps = {name: held_out_campaign(results[(name, chosen[(name, dimension)])], dimension) for name in table}
        campaigns[dimension] = camps
        echo(format_art_table(art_rows(camps, dimension, tuple(config.functions), unit), list(camps), dimension,
                              unit))
        scores = coco.algoperf_score(_final_target_costs(camps))
        lines, dim_summary = [], {}
        for k, (name, camp) in enumerate(camps.items()):
            reached = float(np.isfinite(camp.target_costs).mean())
            lr = chosen[(name, dimension)]
            gap = _default_gap(results, table[name], name, lr, dimension)
            dim_summary[name] = {"learning_rate": lr, "pairs_reached": reached, "algoperf_score": float(scores[k]),
                                 "default_learning_rate": table[name].default_learning_rate, "tuned_minus_default": gap}
            lines.append(f"   {name:<24} lr {('-' if lr is None else f'{lr:.0e}'):>6}  (run, target) pairs reached "
                         f"{reached:6.1%}  AlgoPerf score {scores[k]:.3f}"
                         + (f"  tuned - default lr: {gap:+.1%}" if gap is not None else ""))
        echo("\n".join(lines))
        summary["dimensions"][str(dimension)] = dim_summary
    if out is not None:
        files = _write_files(Path(out), config, results, chosen, campaigns, summary)
        for path in files:
            echo(f"wrote {path}")
    return BBOBRaceResult(config, results, chosen, campaigns, summary, files)


def _default_gap(results: dict[tuple[str, float | None], Runs], contender: Any, name: str, lr: float | None,
                 dimension: int) -> float | None:
    """Held-out (run, target) pairs reached at the tuned minus at the default learning rate
    (``None`` without a default, or when the default was not run)."""
    default = contender.default_learning_rate
    if lr is None or default is None or (name, float(default)) not in results:
        return None
    frac = lambda r: selection_score(r.target_costs[(r.dimension == dimension) & _halves(r.instance)[1]])[0]
    return frac(results[(name, lr)]) - frac(results[(name, float(default))])


def _write_files(out: Path, config: CampaignConfig, results: dict[tuple[str, float | None], Runs],
                 chosen: dict[tuple[str, int], float | None], campaigns: dict[int, dict[str, coco.Campaign]],
                 summary: dict[str, Any]) -> list[str]:
    from gradkit.race import coco_output
    from gradkit.race.bbob_pictures import plot_ecdfs, plot_learning_rate_sensitivity

    files = []
    for dimension, camps in campaigns.items():
        files.append(str(plot_ecdfs(camps, dimension, out / f"bbob_ecdf_d{dimension:02d}.png", budget=config.budget)))
    sensitivity = plot_learning_rate_sensitivity(results, config, out / "bbob_learning_rates.png")
    if sensitivity is not None:
        files.append(str(sensitivity))
    by_name: dict[str, list[coco.Campaign]] = {}
    for camps in campaigns.values():
        for name, camp in camps.items():
            by_name.setdefault(name, []).append(camp)
    for name, parts in by_name.items():  # one COCO algorithm per optimizer; its lr in the id when one for all
        merged = coco.Campaign(algorithm=parts[0].algorithm if len({p.algorithm for p in parts}) == 1
                               else algorithm_name(name, None),
            function=np.concatenate([p.function for p in parts]), instance=np.concatenate([p.instance for p in parts]),
            dimension=np.concatenate([p.dimension for p in parts]),
            target_costs=np.concatenate([p.target_costs for p in parts]),
            total_cost=np.concatenate([p.total_cost for p in parts]),
            **({} if any(p.target_counts is None for p in parts) else
               {"target_counts": np.concatenate([p.target_counts for p in parts]),
                "total_counts": np.concatenate([p.total_counts for p in parts])}))
        files.append(str(coco_output.write_coco(out / "coco", merged, overwrite=True)))
    path = out / "bbob_race.json"
    path.write_text(json.dumps({"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in
                                           dataclasses.asdict(config).items() if k != "optimizers"}
                                | {"optimizers": list(summary["dimensions"][str(config.dimensions[0])])},
                                "chosen_learning_rates": {f"{n} d{d}": lr for (n, d), lr in chosen.items()},
                                **summary}, indent=1))
    files.append(str(path))
    return files

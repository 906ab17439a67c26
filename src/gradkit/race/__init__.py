"""``gradkit race``: every optimizer family on a suite of landscapes, thousands of runs at once.

For each landscape: a grid of start points × (for methods with a learning rate) a
learning-rate grid × every optimizer, one :func:`gradkit.runs.sweep` call per
optimizer (one compiled call each), then a leaderboard and pictures.

What a verdict means (printed with every leaderboard, so a quoted table carries its context):

- **within tolerance**: ``|f(x) - f*| <= tol + rtol · f_scale`` with ``f* =
  landscape.f_star(dtype)`` — the landscape's minimum as attainable in the run's dtype
  (float32 by default), so a float32 run at the minimizer meets it — and ``f_scale``
  the landscape's value scale, so ``rtol`` asks for the same relative accuracy on a
  landscape whose values span 10^5 as on one that spans 1.  The test is on the
  *value*, the quantity every landscape defines (``saddle`` has no minimizer to
  measure a distance to).
- **converged**: the run *ended* within tolerance and never diverged (touching the
  tolerance once and leaving it again is not convergence).
- **time-to-ε**: the first step after which the run stays within tolerance to the end;
  a run that never settles is *censored* and counted as the budget (``steps``), so a
  median is over every run, not over the successes only.
- **cost**: gradient-equivalents (function values, gradients, Hessian-vector products
  and line-search trials, as counted by :mod:`gradkit.runs`), so first- and
  second-order methods meet fairly on the profiles.
- **best learning rate**: chosen on one half of the starts, every number reported on
  the other half (no selection bias); a best value on the edge of the grid is marked,
  since the true optimum may lie outside it.  Ties are broken by the
  performance-profile area, not by list order.

Per race (pooled over the landscapes, problems = landscape × start): a performance
profile and a data profile (PNG, CSV and JSON) and the leaderboards as JSON.
"""


from gradkit.race.config import (DEFAULT_LANDSCAPES, DEFAULT_LEARNING_RATES, LandscapeRace, RaceConfig, RaceResult,
                                 check_writable, contenders, grids_for, record_stride, tolerance, total_run_steps,
                                 validate)
from gradkit.race.contenders import (CONTENDERS, DEFAULT_OPTIMIZERS, Contender, contender, fgd, hessian_free,
                                     measured_step_cost, measured_step_counts, resolve, sam)
from gradkit.race.landscape import race, race_landscape
from gradkit.race.report import format_header, format_leaderboard, summary_dict

__all__ = ["CONTENDERS", "DEFAULT_LANDSCAPES", "DEFAULT_LEARNING_RATES", "DEFAULT_OPTIMIZERS", "Contender",
           "LandscapeRace", "RaceConfig", "RaceResult", "check_writable", "contender", "contenders", "fgd",
           "format_header", "format_leaderboard", "grids_for", "hessian_free", "measured_step_cost",
           "measured_step_counts", "race", "race_landscape", "record_stride", "resolve", "sam", "summary_dict",
           "tolerance", "total_run_steps", "validate"]

"""The ``gradkit`` command (also ``python -m gradkit``).

    gradkit landscapes                  list the landscape suite
    gradkit landscapes --plot NAME      write NAME's contour plot (minima marked) to a PNG
    gradkit exercise [--plot]           the seed 002 exercise: GD, momentum, RMSProp, Adam
    gradkit race [options]              every optimizer family on a landscape suite: leaderboards,
                                        pictures, performance and data profiles

Bad settings are reported in one line, ``gradkit <command>: <what was wrong> (expected ...)``,
with exit status 2, before anything is computed; so are argparse's own errors and a file that
cannot be written.  Every command writes under ``gradkit-out/`` (relative to the working folder)
unless ``--out`` is given.

Under ``python -m gradkit.runs.launch`` (which sets ``GRADKIT_PROCESS_ID``) or with
``gradkit race --distributed``, :func:`gradkit.runs.multihost.initialize` joins the
``jax.distributed`` job before any other JAX call.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import NoReturn

DEFAULT_OUT = "gradkit-out"
"""Where every command (and every example) writes unless ``--out`` is given, relative to the working folder."""

ENV_PROCESS_ID = "GRADKIT_PROCESS_ID"  # = gradkit.runs.multihost.ENV_ID, set by python -m gradkit.runs.launch


class UsageError(ValueError):
    """A bad command-line setting; its message is printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in the CLI's one-line form (still exit status 2, no usage block)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (expected the flags of {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _fail(command: str, message: str) -> int:
    print(f"gradkit {command}: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _writable(out: str) -> Path:
    """``out`` created and checked writable, or a one-line :class:`UsageError`."""
    from gradkit.race.config import check_writable

    try:
        return check_writable(out)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _distinct(flag: str, values: Sequence[object]) -> None:
    """A :class:`UsageError` when ``values`` names one item twice (it would run, and count, twice)."""
    from collections import Counter

    twice = [v for v, n in Counter(values).items() if n > 1]
    if twice:
        raise UsageError(f"{flag} {' '.join(map(str, values))} names {', '.join(map(str, dict.fromkeys(twice)))} "
                         f"twice (expected distinct values)")


def _race_out(args: argparse.Namespace) -> str | None:
    """The race's output folder: ``None`` under ``--no-plots``, else ``--out`` or :data:`DEFAULT_OUT`;
    ``--out`` together with ``--no-plots`` is a :class:`UsageError` (one of them would be ignored)."""
    if args.no_plots:
        if args.out is not None:
            raise UsageError(f"--out {args.out} and --no-plots contradict each other (expected one of them: --no-plots "
                             f"writes no files)")
        return None
    return args.out or DEFAULT_OUT


def wants_distributed(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the command joins a ``jax.distributed`` job: ``gradkit race --distributed``, or any
    command started by the local launcher (``python -m gradkit.runs.launch``, which sets
    ``GRADKIT_PROCESS_ID`` in every process's environment)."""
    return bool(getattr(args, "distributed", False)) or ENV_PROCESS_ID in environ


def _initialize_distributed() -> None:
    """:func:`gradkit.runs.multihost.initialize`, its failure reported as one line."""
    from gradkit.runs import multihost

    try:
        multihost.initialize()
    except Exception as err:  # jax raises ValueError or RuntimeError, with multi-line text
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(f"could not join the jax.distributed job: {first} (expected a cluster jax detects: SLURM, "
                         f"Open MPI, Kubernetes, Cloud TPU, or a local job from python -m gradkit.runs.launch)"
                         ) from None


def _cmd_landscapes(args: argparse.Namespace) -> int:
    from gradkit import landscapes, plot

    if args.plot:
        if args.plot not in landscapes.names():
            raise UsageError(f"unknown landscape {args.plot!r} (expected any of: {', '.join(landscapes.names())})")
        out = _writable(args.out or DEFAULT_OUT)
        land = landscapes.get(args.plot)
        path = plot.save(plot.plot_landscape(land), out / f"{land.name}.png")
        print(f"wrote {path}")
        return 0
    if args.out is not None:
        raise UsageError(f"--out {args.out} is used only with --plot (expected --plot NAME --out FOLDER, or no --out)")
    print(f"{'name':<20}{'dim':>5}  {'f*':>10}  {'global minimizers':<44} formula")
    for name in landscapes.names():
        land = landscapes.get(name)
        mins = "; ".join("(" + ", ".join(f"{c:.4g}" for c in m) + ")" for m in land.minima) or "none (unbounded)"
        dim = "n" if land.any_dim else "2"
        print(f"{name:<20}{dim:>5}  {land.min_value:>10.5g}  {mins:<44} {land.formula}")
    return 0


def _cmd_exercise(args: argparse.Namespace) -> int:
    if args.epochs < 2:
        raise UsageError(f"--epochs {args.epochs} is invalid (expected an integer >= 2: the table details epochs 1 and 2)")
    if args.out is not None and not args.plot:
        raise UsageError(f"--out {args.out} is used only with --plot (expected --plot --out FOLDER, or no --out)")
    out = _writable(args.out or DEFAULT_OUT) if args.plot else None
    import jax

    jax.config.update("jax_enable_x64", True)  # the seed's numbers are quoted to 7 digits
    from gradkit import exercise

    results = exercise.run_seed_exercise(epochs=args.epochs)
    print("f(w1, w2) = 0.1 w1^2 + 2 w2^2, start (-5, -2)  [seed 002 exercise]")
    print(exercise.format_table(results))
    if out is not None:
        print(f"wrote {exercise.plot_exercise(results, str(out / 'seed_exercise.png'))}")
    return 0


def _persistent_compilation_cache() -> None:
    """Keep XLA's compiled race kernels on disk (``$XDG_CACHE_HOME/gradkit/jax``, or the folder in
    ``JAX_COMPILATION_CACHE_DIR`` when set): a second ``gradkit race`` skips most compilation."""
    import os

    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    jax.config.update("jax_compilation_cache_dir", os.path.join(base, "gradkit", "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


_LANDSCAPE_ONLY = ("landscapes", "steps", "tol", "rtol", "record_every", "top", "no_fast_compile")
_SUITE_ONLY = ("functions", "dimensions", "instances", "budget", "problems", "unit")


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    """``"2,3,5"``, ``"1-15"`` or a mix (``"1-5,7"``) as a tuple of ints; one-line error otherwise."""
    values: list[int] = []
    try:
        for part in filter(None, text.replace(" ", ",").split(",")):
            lo, dash, hi = part.partition("-")
            values += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
    except ValueError:
        raise UsageError(f"{flag} {text!r} is invalid (expected integers such as 2,3,5 or a range such as 1-15)") from None
    if not values:
        raise UsageError(f"{flag} {text!r} is invalid (expected at least one integer)")
    _distinct(flag, values)
    return tuple(values)


def _refuse(args: argparse.Namespace, names: Sequence[str], suite: str) -> None:
    """Nothing is silently ignored: a flag the chosen suite does not use is an error."""
    given = [n for n in names if getattr(args, n, None) is not None]
    if given:
        flags = " ".join("--" + n.replace("_", "-") for n in given)
        raise UsageError(f"{flags} is not used by --suite {suite} (expected only the flags of that suite; see --help)")


def _cmd_race(args: argparse.Namespace) -> int:
    import time

    from gradkit import race

    if args.suite == "bbob":
        return _cmd_race_bbob(args)
    if args.suite == "cutest":
        return _cmd_race_cutest(args)
    _refuse(args, _SUITE_ONLY, "landscapes")
    _distinct("--landscapes", args.landscapes or ())
    _distinct("--lrs", args.lrs or ())
    defaults = race.RaceConfig()
    pick = lambda value, default: default if value is None else value
    config = race.RaceConfig(
        landscapes=tuple(pick(args.landscapes, defaults.landscapes)),
        optimizers=tuple(pick(args.optimizers, defaults.optimizers)),
        learning_rates=tuple(pick(args.lrs, defaults.learning_rates)), starts_per_axis=pick(args.starts, defaults.starts_per_axis),
        steps=pick(args.steps, defaults.steps), tol=pick(args.tol, defaults.tol), rtol=pick(args.rtol, defaults.rtol),
        record_every=args.record_every, out=_race_out(args), top=pick(args.top, defaults.top),
        progress=not args.no_progress, fast_compile=not args.no_fast_compile,
    )
    try:
        race.validate(config)
    except ValueError as err:
        raise UsageError(str(err)) from None
    _persistent_compilation_cache()
    start = time.perf_counter()
    race.race(config)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_race_bbob(args: argparse.Namespace) -> int:
    import time

    import jax

    from gradkit.race import bbob_race, campaign

    _refuse(args, _LANDSCAPE_ONLY + ("problems",), "bbob")
    for flag, values in (("--optimizers", args.optimizers), ("--lrs", args.lrs)):
        _distinct(flag, values or ())
    jax.config.update("jax_enable_x64", True)  # the targets reach f - f_opt = 1e-8
    defaults = campaign.CampaignConfig()
    optimizers = tuple(args.optimizers or campaign.DEFAULT_SUITE_OPTIMIZERS)
    lrs = tuple(args.lrs or campaign.DEFAULT_SUITE_LEARNING_RATES)
    config = campaign.CampaignConfig(
        functions=_int_list(args.functions, "--functions") if args.functions else defaults.functions,
        dimensions=_int_list(args.dimensions, "--dimensions") if args.dimensions else defaults.dimensions,
        instances=_int_list(args.instances, "--instances") if args.instances else defaults.instances,
        optimizers=optimizers, learning_rates=lrs, budget=defaults.budget if args.budget is None else args.budget,
        starts_per_instance=1 if args.starts is None else args.starts, progress=not args.no_progress)
    out = _race_out(args)
    try:
        campaign.validate(config)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if out is not None and jax.process_index() == 0:  # only process 0 writes (jax.distributed)
        _writable(out)
    _persistent_compilation_cache()
    start = time.perf_counter()
    bbob_race.bbob_race(config, out=out, unit=args.unit or "gradient-equivalents")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_race_cutest(args: argparse.Namespace) -> int:
    import time

    import jax

    from gradkit.race import cutest_race

    _refuse(args, _LANDSCAPE_ONLY + ("functions", "dimensions", "instances", "starts", "unit"), "cutest")
    for flag, values in (("--problems", args.problems), ("--optimizers", args.optimizers), ("--lrs", args.lrs)):
        _distinct(flag, values or ())
    from gradkit.suites import cutest

    try:
        cutest.names()  # imports only sif2jax's unconstrained problems
    except ImportError:
        raise UsageError('--suite cutest needs sif2jax (expected it installed: pip install -e ".[suites]")') from None
    if args.out is not None:
        if args.problems:  # an unknown or repeated problem name is reported first
            try:
                cutest.problems(args.problems)
            except ValueError as err:
                raise UsageError(str(err)) from None
        raise UsageError(f"--out {args.out} is not used by --suite cutest (expected no --out: the CUTEst race prints "
                         f"its tables and writes no files)")
    jax.config.update("jax_enable_x64", True)  # CUTEst optima are float64 numbers
    defaults = cutest_race.CutestConfig()
    config = cutest_race.CutestConfig(
        problems=tuple(args.problems) if args.problems else None,
        optimizers=tuple(args.optimizers or defaults.optimizers), learning_rates=tuple(args.lrs or defaults.learning_rates),
        budget=defaults.budget if args.budget is None else args.budget, progress=not args.no_progress)
    start = time.perf_counter()
    try:
        cutest_race.cutest_race(config)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gradkit`` command."""
    from gradkit import race

    parser = _Parser(prog="gradkit", description="A JAX toolkit for studying optimizers.")
    sub = parser.add_subparsers(dest="command", required=True)
    land = sub.add_parser("landscapes", help="list the 2D/N-D test functions, or plot one")
    land.add_argument("--plot", metavar="NAME", help="write a contour PNG of landscape NAME")
    land.add_argument("--out", default=None, help=f"output folder of --plot (default: {DEFAULT_OUT})")
    land.set_defaults(func=_cmd_landscapes)
    ex = sub.add_parser("exercise", help="the seed 002 exercise: GD, momentum, RMSProp, Adam on 0.1 w1^2 + 2 w2^2")
    ex.add_argument("--epochs", type=int, default=30, help="number of epochs, >= 2 (default 30)")
    ex.add_argument("--plot", action="store_true", help="write contours + trajectories to OUT/seed_exercise.png")
    ex.add_argument("--out", default=None, help=f"output folder of --plot (default: {DEFAULT_OUT})")
    ex.set_defaults(func=_cmd_exercise)

    defaults = race.RaceConfig()
    rc = sub.add_parser(
        "race", help="race every optimizer family on a landscape suite: leaderboards, pictures, profiles",
        description="Race optimizers on 2D landscapes from a grid of starts. A run is within tolerance when "
                    "|f - f*| <= tol + rtol*f_scale (f* = the landscape's minimum in the run dtype); converged = "
                    "ended within tolerance and never diverged. The best learning rate is chosen on half of the "
                    "starts and scored on the other half.")
    rc.add_argument("--suite", choices=("landscapes", "bbob", "cutest"), default="landscapes",
                    help="landscapes: gradkit's 2D landscapes (default); bbob: COCO's 24 BBOB functions, scored by "
                         "aRT and runtime ECDFs over COCO's 51 targets; cutest: sif2jax's unconstrained CUTEst problems")
    rc.add_argument("--landscapes", nargs="+", default=None, metavar="NAME",
                    help=f"default: {' '.join(defaults.landscapes)}")
    rc.add_argument("--functions", default=None, help="bbob: function numbers, e.g. 1-24 or 1,8,15 (default 1-24)")
    rc.add_argument("--unit", default=None, choices=("gradient-equivalents", "values", "grads", "hvps", "jvps"),
                    help="bbob: the aRT table's runtime: gradient-equivalents (default) or the count of values, "
                         "grads, hvps or jvps")
    rc.add_argument("--dimensions", default=None, help="bbob: dimensions, e.g. 2,3,5,10,20 (default 2,3,5)")
    rc.add_argument("--instances", default=None, help="bbob: instance numbers, e.g. 1-15 (default 1-15)")
    rc.add_argument("--budget", type=int, default=None,
                    help="bbob/cutest: gradient-equivalents per run, times the dimension for bbob (default 1000)")
    rc.add_argument("--problems", nargs="+", default=None, metavar="NAME",
                    help="cutest: sif2jax problem names (default: every unconstrained problem that fits)")
    rc.add_argument("--optimizers", nargs="+", default=None, metavar="NAME",
                    help=f"gradkit names ({' '.join(race.CONTENDERS)}), optax aliases by dotted name (optax.adamw, "
                         "optax.contrib.prodigy) or import paths pkg.module:factory, a factory learning_rate -> "
                         "optax.GradientTransformation (default: every first-order one but adamw, lbfgs, newton_cg; "
                         "bbob/cutest: sgd adam bfgs)")
    rc.add_argument("--lrs", nargs="+", type=float, default=None, metavar="LR",
                    help="learning-rate grid swept for every optimizer that takes one (default "
                         f"{' '.join(f'{v:g}' for v in defaults.learning_rates)}; bbob/cutest: 0.001 0.01 0.1)")
    rc.add_argument("--starts", type=int, default=None,
                    help=f"start points per axis, a grid over the domain (default {defaults.starts_per_axis}); bbob: "
                         "starts per instance, uniform in [-4, 4]^d (default 1)")
    rc.add_argument("--steps", type=int, default=None, help=f"steps per run (default {defaults.steps})")
    rc.add_argument("--tol", type=float, default=None, help=f"absolute tolerance on |f - f*| (default {defaults.tol:g})")
    rc.add_argument("--rtol", type=float, default=None,
                    help=f"tolerance relative to the landscape's value scale f_scale (default {defaults.rtol:g})")
    rc.add_argument("--record-every", type=int, default=None,
                    help="record every k-th step for the pictures (default: at most 100 points per run)")
    rc.add_argument("--top", type=int, default=None, help="optimizers drawn in the pictures")
    rc.add_argument("--out", default=None, help=f"output folder for PNGs, CSV and JSON (default {DEFAULT_OUT}; "
                                                 f"not with --no-plots or --suite cutest, which write no files)")
    rc.add_argument("--no-plots", action="store_true", help="write no files")
    rc.add_argument("--no-progress", action="store_true", help="no progress bar")
    rc.add_argument("--no-fast-compile", action="store_true", default=None,
                    help="landscapes: compile with XLA's default CPU optimisation (about twice the compile time of "
                         "the default quick settings; the runs are small, so the race takes longer)")
    rc.add_argument("--distributed", action="store_true",
                    help="join a jax.distributed job first (gradkit.runs.multihost.initialize: SLURM, Open MPI, "
                         "Kubernetes, Cloud TPU; implied under python -m gradkit.runs.launch): the runs are split "
                         "over every process's devices, process 0 prints and writes")
    rc.set_defaults(func=_cmd_race)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gradkit`` console script; returns the exit status (2: bad input)."""
    args = build_parser().parse_args(argv)
    try:
        if wants_distributed(args):
            _initialize_distributed()  # before any other JAX call
        return int(args.func(args))
    except UsageError as err:
        return _fail(args.command, str(err))
    except OSError as err:  # a file that could not be written after the checks (disk full, removed folder)
        where = f" {err.filename!r}" if getattr(err, "filename", None) else ""
        return _fail(args.command, f"could not write{where}: {err.strerror or err} (expected a writable --out folder "
                                   f"with free space)")
    except KeyboardInterrupt:
        print(f"gradkit {args.command}: interrupted (expected to run to the end; files written so far are kept)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

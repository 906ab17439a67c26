"""The ``gradkit`` command (also ``python -m gradkit``).

    gradkit landscapes                  list the landscape suite
    gradkit landscapes --plot NAME      write NAME's contour plot (minima marked) to a PNG
    gradkit exercise [--plot]           the seed 002 exercise: GD, momentum, RMSProp, Adam
    gradkit race [options]              every optimizer family on a landscape suite: leaderboards,
                                        pictures, performance and data profiles

Bad settings are reported in one line, ``gradkit <command>: <what was wrong> (expected ...)``,
with exit status 2, before anything is computed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from collections.abc import Sequence


class UsageError(ValueError):
    """A bad command-line setting; its message is printed as one line."""


def _fail(command: str, message: str) -> int:
    print(f"gradkit {command}: {message}", file=sys.stderr)
    return 2


def _cmd_landscapes(args: argparse.Namespace) -> int:
    from gradkit import landscapes, plot

    if args.plot:
        if args.plot not in landscapes.names():
            raise UsageError(f"unknown landscape {args.plot!r} (expected any of: {', '.join(landscapes.names())})")
        from gradkit.race import check_writable

        check_writable(args.out)
        land = landscapes.get(args.plot)
        path = plot.save(plot.plot_landscape(land), Path(args.out) / f"{land.name}.png")
        print(f"wrote {path}")
        return 0
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
    if args.plot:
        from gradkit.race import check_writable

        check_writable(args.out)
    import jax

    jax.config.update("jax_enable_x64", True)  # the seed's numbers are quoted to 7 digits
    from gradkit import exercise

    results = exercise.run_seed_exercise(epochs=args.epochs)
    print("f(w1, w2) = 0.1 w1^2 + 2 w2^2, start (-5, -2)  [seed 002 exercise]")
    print(exercise.format_table(results))
    if args.plot:
        print(f"wrote {exercise.plot_exercise(results, str(Path(args.out) / 'seed_exercise.png'))}")
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


def _cmd_race(args: argparse.Namespace) -> int:
    import time

    from gradkit import race

    config = race.RaceConfig(
        landscapes=tuple(args.landscapes), optimizers=tuple(args.optimizers),
        learning_rates=tuple(args.lrs), starts_per_axis=args.starts, steps=args.steps, tol=args.tol,
        rtol=args.rtol, record_every=args.record_every, out=None if args.no_plots else args.out, top=args.top,
        progress=not args.no_progress,
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gradkit`` command."""
    from gradkit import race

    parser = argparse.ArgumentParser(prog="gradkit", description="A JAX toolkit for studying optimizers.")
    sub = parser.add_subparsers(dest="command", required=True)
    land = sub.add_parser("landscapes", help="list the 2D/N-D test functions, or plot one")
    land.add_argument("--plot", metavar="NAME", help="write a contour PNG of landscape NAME")
    land.add_argument("--out", default="gradkit-out", help="output folder (default: gradkit-out)")
    land.set_defaults(func=_cmd_landscapes)
    ex = sub.add_parser("exercise", help="the seed 002 exercise: GD, momentum, RMSProp, Adam on 0.1 w1^2 + 2 w2^2")
    ex.add_argument("--epochs", type=int, default=30, help="number of epochs, >= 2 (default 30)")
    ex.add_argument("--plot", action="store_true", help="write contours + trajectories to OUT/seed_exercise.png")
    ex.add_argument("--out", default="gradkit-out", help="output folder (default: gradkit-out)")
    ex.set_defaults(func=_cmd_exercise)

    defaults = race.RaceConfig()
    rc = sub.add_parser(
        "race", help="race every optimizer family on a landscape suite: leaderboards, pictures, profiles",
        description="Race optimizers on 2D landscapes from a grid of starts. A run is within tolerance when "
                    "|f - f*| <= tol + rtol*f_scale (f* = the landscape's minimum in the run dtype); converged = "
                    "ended within tolerance and never diverged. The best learning rate is chosen on half of the "
                    "starts and scored on the other half.")
    rc.add_argument("--landscapes", nargs="+", default=list(defaults.landscapes), metavar="NAME",
                    help=f"default: {' '.join(defaults.landscapes)}")
    rc.add_argument("--optimizers", nargs="+", default=list(defaults.optimizers), metavar="NAME",
                    help=f"gradkit names ({' '.join(race.CONTENDERS)}), optax aliases by dotted name (optax.adamw, "
                         "optax.contrib.prodigy) or import paths pkg.module:factory, a factory learning_rate -> "
                         "optax.GradientTransformation (default: every first-order one but adamw, lbfgs, newton_cg)")
    rc.add_argument("--lrs", nargs="+", type=float, default=list(defaults.learning_rates), metavar="LR",
                    help="learning-rate grid swept for every optimizer that takes one")
    rc.add_argument("--starts", type=int, default=defaults.starts_per_axis,
                    help=f"start points per axis, a grid over the domain (default {defaults.starts_per_axis})")
    rc.add_argument("--steps", type=int, default=defaults.steps, help=f"steps per run (default {defaults.steps})")
    rc.add_argument("--tol", type=float, default=defaults.tol, help=f"absolute tolerance on |f - f*| (default {defaults.tol:g})")
    rc.add_argument("--rtol", type=float, default=defaults.rtol,
                    help=f"tolerance relative to the landscape's value scale f_scale (default {defaults.rtol:g})")
    rc.add_argument("--record-every", type=int, default=None,
                    help="record every k-th step for the pictures (default: at most 100 points per run)")
    rc.add_argument("--top", type=int, default=defaults.top, help="optimizers drawn in the pictures")
    rc.add_argument("--out", default="gradkit-out", help="output folder for PNGs, CSV and JSON (default gradkit-out)")
    rc.add_argument("--no-plots", action="store_true", help="write no files")
    rc.add_argument("--no-progress", action="store_true", help="no progress bar")
    rc.set_defaults(func=_cmd_race)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gradkit`` console script; returns the exit status (2: bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as err:
        return _fail(args.command, str(err))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

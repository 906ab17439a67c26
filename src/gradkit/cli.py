"""The ``gradkit`` command.

    gradkit landscapes                  list the landscape suite
    gradkit landscapes --plot NAME      write NAME's contour plot (minima marked) to a PNG
    gradkit exercise [--plot]           the seed 002 exercise: GD, momentum, RMSProp, Adam
    gradkit race [options]              every optimizer on a landscape suite, leaderboard + PNGs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from collections.abc import Sequence


def _cmd_landscapes(args: argparse.Namespace) -> int:
    from gradkit import landscapes, plot

    if args.plot:
        try:
            land = landscapes.get(args.plot)
        except ValueError as err:
            print(f"gradkit landscapes: {err}", file=sys.stderr)
            return 2
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
    import jax

    jax.config.update("jax_enable_x64", True)  # the seed's numbers are quoted to 7 digits
    from gradkit import exercise

    results = exercise.run_seed_exercise(epochs=args.epochs)
    print("f(w1, w2) = 0.1 w1^2 + 2 w2^2, start (-5, -2)  [seed 002 exercise]")
    print(exercise.format_table(results))
    if args.plot:
        print(f"wrote {exercise.plot_exercise(results, str(Path(args.out) / 'seed_exercise.png'))}")
    return 0


def _cmd_race(args: argparse.Namespace) -> int:
    import time

    from gradkit import race

    config = race.RaceConfig(
        landscapes=tuple(args.landscapes), optimizers=tuple(args.optimizers),
        learning_rates=tuple(args.lrs), starts_per_axis=args.starts, steps=args.steps, tol=args.tol,
        record_every=args.record_every, out=None if args.no_plots else args.out,
    )
    start = time.perf_counter()
    try:
        race.race(config)
    except ValueError as err:
        print(f"gradkit race: {err}", file=sys.stderr)
        return 2
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradkit", description="A JAX toolkit for studying optimizers.")
    sub = parser.add_subparsers(dest="command", required=True)
    land = sub.add_parser("landscapes", help="list the 2D/N-D test functions, or plot one")
    land.add_argument("--plot", metavar="NAME", help="write a contour PNG of landscape NAME")
    land.add_argument("--out", default="gradkit-out", help="output folder (default: gradkit-out)")
    land.set_defaults(func=_cmd_landscapes)
    ex = sub.add_parser("exercise", help="the seed 002 exercise: GD, momentum, RMSProp, Adam on 0.1 w1^2 + 2 w2^2")
    ex.add_argument("--epochs", type=int, default=30, help="number of epochs (default 30)")
    ex.add_argument("--plot", action="store_true", help="write contours + trajectories to OUT/seed_exercise.png")
    ex.add_argument("--out", default="gradkit-out", help="output folder (default: gradkit-out)")
    ex.set_defaults(func=_cmd_exercise)

    from gradkit import optim, race

    rc = sub.add_parser("race", help="race every optimizer on a landscape suite: leaderboard + pictures")
    rc.add_argument("--landscapes", nargs="+", default=list(race.DEFAULT_LANDSCAPES), metavar="NAME")
    rc.add_argument("--optimizers", nargs="+", default=list(optim.FIRST_ORDER), metavar="NAME")
    rc.add_argument("--lrs", nargs="+", type=float, default=list(race.DEFAULT_LEARNING_RATES), metavar="LR",
                    help="learning-rate grid swept for every optimizer")
    rc.add_argument("--starts", type=int, default=12, help="start points per axis (a grid over the domain)")
    rc.add_argument("--steps", type=int, default=500)
    rc.add_argument("--tol", type=float, default=1e-4, help="success: |f - f*| <= tol")
    rc.add_argument("--record-every", type=int, default=5, help="record every k-th step for the curves")
    rc.add_argument("--out", default="gradkit-out", help="output folder for the PNGs")
    rc.add_argument("--no-plots", action="store_true")
    rc.set_defaults(func=_cmd_race)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gradkit`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

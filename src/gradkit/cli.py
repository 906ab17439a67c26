"""The ``gradkit`` command.

    gradkit landscapes                  list the landscape suite
    gradkit landscapes --plot NAME      write NAME's contour plot (minima marked) to a PNG
    gradkit exercise [--plot]           the seed 002 exercise: GD, momentum, RMSProp, Adam
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradkit", description="A JAX toolkit for studying optimizers.")
    sub = parser.add_subparsers(dest="command", required=True)
    land = sub.add_parser("landscapes", help="list the 2D/N-D test functions, or plot one")
    land.add_argument("--plot", metavar="NAME", help="write a contour PNG of landscape NAME")
    land.add_argument("--out", default="gradkit-out", help="output folder (default: gradkit-out)")
    land.set_defaults(func=_cmd_landscapes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gradkit`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

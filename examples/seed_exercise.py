"""The seed 002 exercise: GD, momentum (EMA), RMSProp and Adam on f = 0.1 w1² + 2 w2² from (-5, -2).

Prints the step-by-step table for the first two epochs (gradient, optimizer state,
new point) like the seed's worked solution, the final point after 30 epochs, and
writes the four trajectories over the contours to gradkit-out/seed_exercise.png (its title
names the epochs actually run).

    python examples/seed_exercise.py [--quick] [--out DIR]

(``--quick`` runs 5 epochs instead of 30.)
"""

import argparse
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

from gradkit import exercise  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="gradkit-out", help="folder for seed_exercise.png (default gradkit-out)")
    parser.add_argument("--epochs", type=int, default=None, help=f"default {exercise.EPOCHS} (5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="5 epochs (CI)")
    args = parser.parse_args()
    epochs = args.epochs if args.epochs is not None else (5 if args.quick else exercise.EPOCHS)
    if epochs < 2:
        parser.error(f"--epochs {epochs} is invalid (expected an integer >= 2)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = exercise.run_seed_exercise(epochs=epochs)
    print(exercise.format_table(results))
    print("wrote", exercise.plot_exercise(results, f"{args.out}/seed_exercise.png"))


if __name__ == "__main__":
    main()

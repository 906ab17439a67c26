"""Three ways to a derivative (seed 000): dual numbers, finite differences, jax.grad.

Runs the seed's examples through every route of ``gradkit.diff.check`` and prints
the error table, plus the seed's own finite-difference attempt with h = 1e-13.

    python examples/autodiff_routes.py [--quick]

(``--quick`` is accepted for uniformity with the other examples; this one is already instant.)
"""

import argparse

import jax
import numpy as np

from gradkit.diff import check, dual, numeric

jax.config.update("jax_enable_x64", True)


def seed_ff(x):
    """sin(tan(x)^cos(x) · cos(x)^tan(x)) — the seed's 'try this by hand' example."""
    return dual.sin(dual.tan(x) ** dual.cos(x) * dual.cos(x) ** dual.tan(x))


def sqrt_product(x):
    """x (3x + 2)^(1/2); the seed's dual-number demo gives 3.8890873 at x = 2."""
    return x * (3 * x + 2) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="accepted for uniformity (this example is instant)")
    parser.parse_args()
    print("f(x) = x (3x+2)^0.5 at 2:  dual =", dual.derivative(sqrt_product, 2.0))
    seed_fd = (seed_ff(1.0 + 0.5e-13) - seed_ff(1.0 - 0.5e-13)) / 1e-13
    print(f"sin(tan^cos cos^tan) at 1: dual = {dual.derivative(seed_ff, 1.0):.12f}, "
          f"central FD (default step) = {float(numeric.derivative(seed_ff, 1.0)):.12f}, "
          f"seed FD with h=1e-13 = {float(seed_fd):.12f}")
    for name, f, x in [
        ("seed ff at 1", lambda v: dual.sum(seed_ff(v)), np.array([1.0])),
        ("tanh-softplus net", lambda v: dual.sum(dual.tanh(v) * dual.log(1 + dual.exp(v))), np.linspace(-2, 2, 5)),
    ]:
        print(f"\n== {name}")
        print(check(f, x, routes=("dual", "jax", "central", "forward")))


if __name__ == "__main__":
    main()

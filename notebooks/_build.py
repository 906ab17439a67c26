"""Regenerate the notebooks from their cell sources (kept here so diffs stay readable).

    python notebooks/_build.py
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

NOTEBOOKS = {
    "01_autodiff_from_scratch.ipynb": [
        new_markdown_cell(
            "# Autodiff from scratch (seed 000)\n\n"
            "Three routes to a derivative: **finite differences**, **dual numbers** "
            "(forward-mode AD in ~200 lines, `gradkit.diff.dual`) and **JAX**. "
            "`gradkit.diff.check` compares them leaf by leaf."
        ),
        new_code_cell(
            "import jax, numpy as np\n"
            "jax.config.update('jax_enable_x64', True)\n"
            "from gradkit.diff import dual, numeric, check\n"
            "f = lambda x: x * (3 * x + 2) ** 0.5\n"
            "print('dual  :', dual.derivative(f, 2.0))   # seed: 3.8890873\n"
            "print('jax   :', float(jax.grad(f)(2.0)))\n"
            "print('central FD:', float(numeric.derivative(f, 2.0)))"
        ),
        new_markdown_cell(
            "## Why not `epsilon = 1e-13`?\n\n"
            "Central differences have error ≈ h²|f'''|/6 (truncation) + ε|f|/h (rounding). "
            "The sum is smallest near h ≈ ε^(1/3) ≈ 6e-6, not at 1e-13."
        ),
        new_code_cell(
            "ff = lambda x: dual.sin(dual.tan(x) ** dual.cos(x) * dual.cos(x) ** dual.tan(x))\n"
            "exact = dual.derivative(ff, 1.0)\n"
            "hs = np.logspace(-14, -1, 27)\n"
            "errors = [abs(float(numeric.derivative(ff, 1.0, h=h)) - exact) for h in hs]\n"
            "best = hs[int(np.argmin(errors))]\n"
            "print(f'exact {exact:.12f}; best step {best:.1e}; default step {float(numeric.default_step(1.0)):.1e}')\n"
            "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
            "plt.loglog(hs, errors, 'o-'); plt.xlabel('h'); plt.ylabel('|error|'); plt.title('central difference error');"
        ),
        new_code_cell(
            "params = {'w': np.array([[0.3, -0.2], [0.1, 0.5]]), 'b': np.array([0.1, -0.1])}\n"
            "loss = lambda p: dual.sum(dual.tanh(p['w'] @ np.array([1.0, -2.0]) + p['b']) ** 2)\n"
            "report = check(loss, params, routes=('jax', 'dual', 'central', 'forward'))\n"
            "print(report)\n"
            "assert report.ok(rtol=1e-6)"
        ),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()

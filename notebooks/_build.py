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
    "02_optimizers_and_the_seed_exercise.ipynb": [
        new_markdown_cell(
            "# Optimizers as optax transformations (seed 002)\n\n"
            "Every gradkit optimizer is an `optax.GradientTransformation`. The seed exercise runs "
            "GD, EMA momentum, RMSProp and Adam on `0.1 w1² + 2 w2²` from (-5, -2)."
        ),
        new_code_cell(
            "import jax, jax.numpy as jnp, numpy as np, optax\n"
            "jax.config.update('jax_enable_x64', True)\n"
            "from gradkit import exercise, optim, landscapes, runs\n"
            "results = exercise.run_seed_exercise()\n"
            "print(exercise.format_table(results))\n"
            "exercise.plot_exercise(results, 'seed_exercise.png')"
        ),
        new_markdown_cell("Step-equality with optax, on a pytree, for 50 steps:"),
        new_code_cell(
            "params = {'w': jnp.ones((3, 2)), 'b': jnp.zeros(2)}\n"
            "loss = lambda p: jnp.sum(jnp.sin(p['w']) ** 2) + jnp.sum((p['b'] - 1) ** 2)\n"
            "def final(opt):\n"
            "    p, s = params, opt.init(params)\n"
            "    for _ in range(50):\n"
            "        u, s = opt.update(jax.grad(loss)(p), s, p); p = optax.apply_updates(p, u)\n"
            "    return p\n"
            "a, b = final(optim.adam(0.05, b1=0.8)), final(optax.adam(0.05, b1=0.8))\n"
            "print(max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))"
        ),
        new_markdown_cell("A learning-rate sweep over 400 start points of Himmelblau, one compiled call per optimizer:"),
        new_code_cell(
            "f = landscapes.get('himmelblau')\n"
            "starts = runs.start_grid(f.domain, 20)\n"
            "sweep = runs.sweep(f, {'adam': optim.adam, 'nesterov': optim.nesterov}, starts,\n"
            "                   {'adam': {'learning_rate': [0.01, 0.1]}, 'nesterov': {'learning_rate': [1e-3, 3e-3]}},\n"
            "                   300, tol=1e-6, f_star=0.0)\n"
            "for row in sweep.best(): print(row)"
        ),
    ],
    "03_forward_gradients.ipynb": [
        new_markdown_cell(
            "# Forward gradients (seed 002, Baydin et al. 2022)\n\n"
            "`g = (∇f·v) v` from one `jax.jvp`: unbiased, with variance `||∇f||² + (∂_i f)²` per "
            "coordinate for Gaussian tangents and `||∇f||² - (∂_i f)²` for Rademacher ones."
        ),
        new_code_cell(
            "import jax, jax.numpy as jnp, numpy as np\n"
            "jax.config.update('jax_enable_x64', True)\n"
            "from gradkit import optim, landscapes, runs, plot\n"
            "f = lambda t: jnp.sum(0.5 * jnp.arange(1.0, 5.0) * t ** 2 + jnp.sin(t))\n"
            "theta = jnp.array([0.3, -0.7, 1.1, 0.2]); G = np.asarray(jax.grad(f)(theta))\n"
            "keys = jax.random.split(jax.random.PRNGKey(0), 20000)\n"
            "for dist in ('normal', 'rademacher'):\n"
            "    g = np.asarray(jax.vmap(lambda k: optim.forward_gradient(f, theta, k, distribution=dist)[1])(keys))\n"
            "    theory = G @ G + (G ** 2 if dist == 'normal' else -G ** 2)\n"
            "    print(dist, 'mean', g.mean(0).round(3), 'grad', G.round(3))\n"
            "    print('   var', g.var(0).round(2), 'theory', theory.round(2))"
        ),
        new_markdown_cell(
            "Rank-one tangents: on a matrix leaf `W`, `V = a bᵀ` with Rademacher `a`, `b`. Every `V_ij` is "
            "±1 and `E[V_ij V_kl] = δ_ik δ_jl`, so the moments above are the Rademacher ones, but a dense "
            "layer's tangent `X V = (X a) bᵀ` is a matrix-vector product: XLA counts the step's FLOPs "
            "below backprop's."
        ),
        new_code_cell(
            "W = theta.reshape(2, 2); fw = lambda w: f(w.reshape(-1))\n"
            "g = np.asarray(jax.vmap(lambda k: optim.forward_gradient(fw, W, k, distribution='rank_one')[1])(keys))\n"
            "print('rank_one mean', g.reshape(-1, 4).mean(0).round(3), 'var', g.reshape(-1, 4).var(0).round(2),\n"
            "      'theory', (G @ G - G ** 2).round(2))\n"
            "x = jax.random.normal(jax.random.PRNGKey(2), (256, 256))\n"
            "params = [jax.random.normal(jax.random.PRNGKey(i), (256, 256)) / 16 for i in range(3)]\n"
            "def loss(ps):\n"
            "    h = x\n"
            "    for w in ps: h = jnp.tanh(h @ w)\n"
            "    return jnp.mean(h ** 2)\n"
            "flops = lambda fn: jax.jit(fn).lower(params).compile().cost_analysis()['flops']\n"
            "for name, fn in [('backprop', jax.grad(loss)),\n"
            "                 ('rademacher', lambda p: optim.forward_gradient(loss, p, keys[0], distribution='rademacher')[1]),\n"
            "                 ('rank_one', lambda p: optim.forward_gradient(loss, p, keys[0], distribution='rank_one')[1])]:\n"
            "    print(f'{name:>10}: {flops(fn) / 1e6:.0f} MFLOP')"
        ),
        new_code_cell(
            "beale = landscapes.get('beale')\n"
            "starts = jnp.tile(jnp.array([[1.0, 1.5]]), (4, 1))\n"
            "make = lambda key: optim.forward_gradient_descent(optim.sgd(1e-2), key, objective=beale)\n"
            "res = runs.run_batch(beale, make, starts, 1000, {'key': jax.random.split(jax.random.PRNGKey(1), 4)},\n"
            "                     record='trajectory')\n"
            "sgd = runs.run(beale, optim.sgd(1e-2), starts[:1], 1000, record='trajectory')\n"
            "paths = {'SGD': sgd.trajectory[0], **{f'FGD seed {i}': res.trajectory[i] for i in range(4)}}\n"
            "plot.plot_landscape(beale, paths);"
        ),
    ],
    "04_second_order.ipynb": [
        new_markdown_cell(
            "# Second order without the Hessian (seeds 000, 003)\n\n"
            "Newton's method for roots and minima, then the same idea at scale: conjugate gradient on "
            "Hessian-vector products (Newton-CG), trust regions (Steihaug), Hessian-free, and the "
            "Hessian's spectrum from Lanczos."
        ),
        new_code_cell(
            "import jax, jax.numpy as jnp, numpy as np, optax\n"
            "jax.config.update('jax_enable_x64', True)\n"
            "import gradkit as gk\n"
            "from gradkit.optim import newton, newton_cg, newton_cg_trust_region, newton_root, minimize\n"
            "print(newton_root(lambda x: x**4 - 8*x**3 + 21*x**2 - 24*x + 9, 2.0).x)   # seed: 0.6972243622680052\n"
            "f = lambda p: p[0]**4 + 0.9*p[1]**4 + 4*p[0]**2 + 2*p[1]**2 - p[0]*p[1] - 0.2*p[0]**2*p[1]\n"
            "opt, x = newton(), jnp.array([4.0, 4.0]); state = opt.init(x)\n"
            "for k in range(8):\n"
            "    u, state = opt.update(jax.grad(f)(x), state, x, value_fn=f); x = x + u\n"
            "    print(k + 1, np.round(np.asarray(x), 4))   # seed 003: (2.5828, 2.6262), (1.5925, 1.6858), ..."
        ),
        new_markdown_cell(
            "## Newton-CG on a 1000-dimensional Rosenbrock\n\n"
            "CG solves `H p = -g` to the relative tolerance `min(0.5, sqrt(||g||))`, one HVP per "
            "iteration; the whole solve is one compiled `while_loop`."
        ),
        new_code_cell(
            "rosen = lambda x: jnp.sum(100 * (x[1:] - x[:-1]**2)**2 + (1 - x[:-1])**2)\n"
            "x0 = jnp.asarray(np.tile([-1.2, 1.0], 500))\n"
            "for name, o in [('newton_cg', newton_cg()), ('trust region', newton_cg_trust_region())]:\n"
            "    r = jax.jit(lambda x, o=o: minimize(rosen, x, o, gtol=1e-6, maxiter=20000))(x0)\n"
            "    print(f'{name}: {int(r.iterations)} iterations, {int(r.state.hvp_count)} HVPs, f = {float(r.value):.1e}')"
        ),
        new_markdown_cell("## The spectrum of a small network's Hessian"),
        new_code_cell(
            "from gradkit.linalg import lanczos_eigenvalues, hutch_plus_plus, slq_density\n"
            "from gradkit import plot\n"
            "kx, kw = jax.random.split(jax.random.PRNGKey(0))\n"
            "X = jax.random.normal(kx, (256, 5)); y = jnp.sin(X.sum(1, keepdims=True))\n"
            "params = {'w1': jax.random.normal(kw, (5, 24)) / 2, 'b1': jnp.zeros(24), 'w2': jnp.ones((24, 1)) / 5}\n"
            "loss = lambda p: 0.5 * jnp.mean((jnp.tanh(X @ p['w1'] + p['b1']) @ p['w2'] - y)**2)\n"
            "op = gk.hvp_operator(loss, params)\n"
            "dense = np.linalg.eigvalsh(np.asarray(gk.hessian(loss, params, dense=True)))\n"
            "top = lanczos_eigenvalues(op, params, jax.random.PRNGKey(1), k=3, num_steps=40)\n"
            "print('Lanczos top-3 :', np.asarray(top.eigenvalues).round(6))\n"
            "print('eigvalsh top-3:', dense[::-1][:3].round(6))\n"
            "print('trace Hutch++ :', float(hutch_plus_plus(op, params, jax.random.PRNGKey(2), 90).estimate), 'exact', dense.sum())\n"
            "plot.plot_spectral_density(slq_density(op, params, jax.random.PRNGKey(3), num_probes=8, num_steps=40));"
        ),
    ],
    "05_vanishing_gradients.ipynb": [
        new_markdown_cell(
            "# Vanishing gradients (seed 002)\n\n"
            "Five hidden sigmoid layers of 128 on scikit-learn's digits, cross-entropy, lr 0.01. "
            "σ'(z) ≤ 1/4, so every layer shrinks the backpropagated gradient: the first layers barely "
            "move under SGD; adaptive methods rescale per parameter and recover."
        ),
        new_code_cell(
            "import jax, jax.numpy as jnp, numpy as np\n"
            "from gradkit import data, losses, models, optim, plot, train\n"
            "ds = data.load_digits()\n"
            "model = models.mlp([64] + [128] * 5 + [10], activation='sigmoid')\n"
            "loss = lambda p, b: jnp.mean(losses.softmax_cross_entropy(model.apply(p, b[0]), b[1]))\n"
            "params0 = model.init(jax.random.PRNGKey(1))\n"
            "curves, norms = {}, {}\n"
            "for name, opt in {'SGD': optim.sgd(0.01), 'momentum 0.9': optim.momentum(0.01, beta=0.9),\n"
            "                  'RMSProp': optim.rmsprop(0.01), 'Adam': optim.adam(0.01)}.items():\n"
            "    _, h = train.fit(loss, params0, opt, (ds.features, ds.targets), 5, 64, jax.random.PRNGKey(2), progress=False)\n"
            "    curves[name], norms[name] = h.step_loss, h.grad_norms\n"
            "    print(f'{name:13s} final loss {h.step_loss[-1]:.3f}   first/last layer grad norm {h.grad_norms[:, 0].mean() / h.grad_norms[:, -1].mean():.1e}')\n"
            "plot.plot_loss_curves(curves, log_y=False);"
        ),
        new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)\n"
            "for ax, name in zip(axes, ['SGD', 'Adam']):\n"
            "    plot.plot_grad_norms(norms[name], ax=ax, title=f'{name}: per-layer gradient norm')"
        ),
    ],
    "06_curvature_and_edge_of_stability.ipynb": [
        new_markdown_cell(
            "# Curvature operators, curvature tracking and the edge of stability\n\n"
            "`gradkit.curvature` turns a loss into a linear operator for the **Hessian**, the **GGN** "
            "(Jᵀ H_ℓ J), the **true Fisher** and the **empirical Fisher** — matvec, batched matvec, "
            "Hutchinson diagonal, dense, damping — that every `gradkit.linalg` solver accepts."
        ),
        new_code_cell(
            "import jax, jax.numpy as jnp, numpy as np, optax\n"
            "jax.config.update('jax_enable_x64', True)\n"
            "from gradkit import curvature, data, linalg, models, optim, train\n"
            "X = jax.random.normal(jax.random.PRNGKey(0), (64, 4))\n"
            "y = jax.random.randint(jax.random.PRNGKey(1), (64,), 0, 3)\n"
            "model = models.mlp([4, 8, 3], activation='tanh', dtype=jnp.float64)\n"
            "params = model.init(jax.random.PRNGKey(2))\n"
            "ce = lambda z, t: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), t[:, None], axis=1))\n"
            "loss = lambda p, b: ce(model.apply(p, b[0]), b[1])\n"
            "H = curvature.hessian(loss, params, (X, y))\n"
            "G = curvature.ggn(model.apply, ce, params, (X, y))\n"
            "F = curvature.fisher(model.apply, params, (X, y), 'softmax')\n"
            "print(H, '| GGN == true Fisher for softmax cross-entropy:', np.allclose(G.dense(), F.dense()))\n"
            "top = linalg.lanczos_eigenvalues(H, params, jax.random.PRNGKey(3), k=3)\n"
            "print('top-3 Hessian eigenvalues (Lanczos):', np.asarray(top.eigenvalues).round(5))\n"
            "print('                       (eigvalsh):', np.linalg.eigvalsh(H.dense())[::-1][:3].round(5))\n"
            "x = linalg.cg(G.damped(1e-3), jax.tree.map(jnp.ones_like, params), tol=1e-10).x   # a damped Gauss-Newton solve"
        ),
        new_markdown_cell(
            "## Curvature during training\n\n"
            "`CurvatureTracker` records the top Hessian eigenvalues (warm-started Lanczos), the trace "
            "(Hutch++) and — for Adam — the preconditioned sharpness λ_max(P⁻¹H) every `every` steps, "
            "compiled once. In `fit` its records land in `history.curvature`."
        ),
        new_code_cell(
            "ds = data.load_digits()\n"
            "net = models.mlp([64, 32, 10], activation='tanh')\n"
            "dloss = lambda p, b: ce(net.apply(p, b[0]), b[1])\n"
            "tracker = curvature.CurvatureTracker(every=20, k=2, adam=curvature.AdamPreconditioner())\n"
            "_, hist = train.fit(dloss, net.init(jax.random.PRNGKey(0)), optax.adam(1e-3), (ds.features, ds.targets), 2, 64,\n"
            "                    jax.random.PRNGKey(1), progress=False, tracker=tracker)\n"
            "rec = hist.curvature\n"
            "for row in zip(rec.steps, rec.eigenvalues[:, 0], rec.trace, rec.preconditioned_sharpness):\n"
            "    print('step %3d  λ_max %.3f  trace %.2f  λ_max(P⁻¹H) %.0f' % row)"
        ),
        new_markdown_cell(
            "## The edge of stability (Cohen et al. 2021, 2022)\n\n"
            "Full-batch GD on a tanh MLP, MSE on the Advertising data: the sharpness rises and then "
            "hovers at **2/η**. Adam's preconditioned sharpness does the same at **38/η** "
            "((2 + 2β₁)/((1 - β₁)η), β₁ = 0.9). The learning rate is traced: one compile per optimizer. "
            "(`examples/edge_of_stability.py` runs the long version.)"
        ),
        new_code_cell(
            "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
            "ad = data.load_advertising(np.float32)\n"
            "batch = (jnp.asarray((ad.features - ad.features.mean(0)) / ad.features.std(0)),\n"
            "         jnp.asarray((ad.targets - ad.targets.mean()) / ad.targets.std()))\n"
            "mlp = models.mlp([3, 16, 16, 1], activation='tanh')\n"
            "mse = lambda p, b: 0.5 * jnp.mean((mlp.apply(p, b[0])[:, 0] - b[1]) ** 2)\n"
            "p0, steps = mlp.init(jax.random.PRNGKey(0)), 900\n"
            "def runner(make_opt, adam):\n"
            "    tr = curvature.CurvatureTracker(mse, every=20, lanczos_steps=12, trace_matvecs=0, max_records=steps // 20,\n"
            "                                    adam=curvature.AdamPreconditioner() if adam else None)\n"
            "    @jax.jit\n"
            "    def run(lr):\n"
            "        opt = make_opt(lr)\n"
            "        def body(c, t):\n"
            "            p, s, ts = c\n"
            "            ts = tr.update(ts, t, p, batch, s)\n"
            "            u, s = opt.update(jax.grad(mse)(p, batch), s, p)\n"
            "            return (optax.apply_updates(p, u), s, ts), None\n"
            "        return jax.lax.scan(body, (p0, opt.init(p0), tr.init(p0, jax.random.PRNGKey(1))), jnp.arange(steps))[0][2]\n"
            "    return lambda lr: tr.records(run(jnp.float32(lr)))\n"
            "gd, adam = runner(optax.sgd, False), runner(optax.adam, True)\n"
            "fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))\n"
            "for ax, run, rates, thr, name in [(axes[0], gd, (0.2, 0.25, 0.3), lambda r: 2 / r, '2/η'),\n"
            "                                  (axes[1], adam, (0.01, 0.02, 0.03), lambda r: curvature.adam_threshold(r), '38/η')]:\n"
            "    for color, lr in zip(['C0', 'C1', 'C2'], rates):\n"
            "        rec = run(lr)\n"
            "        value = rec.preconditioned_sharpness if name == '38/η' else rec.sharpness\n"
            "        keep = rec.steps > 0 if name == '38/η' else rec.steps >= 0\n"
            "        ax.plot(rec.steps[keep], value[keep], color=color, label=f'η = {lr:g}')\n"
            "        ax.axhline(thr(lr), color=color, ls='--', label=f'{name} = {thr(lr):.4g}')\n"
            "        print(f'{name} = {thr(lr):8.4g}: mean of the last third {np.mean(value[-len(value) // 3:]):8.4g}')\n"
            "    ax.set_xlabel('step'); ax.set_ylabel('sharpness' if name == '2/η' else 'preconditioned sharpness')\n"
            "    ax.set_ylim(0, 1.3 * thr(rates[0])); ax.legend(ncol=3, fontsize=8, loc='upper center', frameon=False)\n"
            "axes[0].set_title('GD: λ_max(H)'); axes[1].set_title('Adam: λ_max(P⁻¹H)');"
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

"""The BBOB race's pictures: bootstrapped runtime ECDFs with the virtual best solver, and the
learning-rate sensitivity of every optimizer."""

from __future__ import annotations

from pathlib import Path
import numpy as np

from gradkit.race import coco
from gradkit.race.campaign import CampaignConfig, Runs


def _steps(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ECDFs ``(x, y)`` as drawable steps over ``log10 x``, each from ``(x_min, 0)`` to the largest x."""
    finite = [x for x, _ in curves.values() if x.size]
    lo = np.log10(min(float(x.min()) for x in finite)) if finite else 0.0
    hi = np.log10(max(float(x.max()) for x in finite)) if finite else 1.0
    out = {}
    for label, (x, y) in curves.items():
        xs = np.concatenate([[lo], np.log10(x), [hi]]) if x.size else np.array([lo, hi])
        out[label] = (xs, np.concatenate([[0.0], y, [y[-1] if y.size else 0.0]]))
    return out


VIRTUAL_BEST = "best of all (virtual)"


def ecdf_curves(campaigns: dict[str, coco.Campaign], dimension: int, functions: tuple[int, ...] | None = None,
                seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Label -> ``(log10(runtime / d), fraction of (function, target) pairs)`` step points of every
    optimizer and of the virtual best solver over ``functions`` (default: all that ran): the data
    :func:`plot_ecdfs` draws."""
    curves = {name: coco.runtime_ecdf(camp, dimension, functions, seed=seed) for name, camp in campaigns.items()}
    curves[VIRTUAL_BEST] = coco.virtual_best(list(campaigns.values()), dimension, functions, seed=seed)
    return _steps(curves)


def _panels(campaigns: dict[str, coco.Campaign]) -> dict[str, tuple[int, ...]]:
    """"all functions" and every COCO function group that ran."""
    ran = sorted({int(f) for c in campaigns.values() for f in c.function})
    panels = {f"all {len(ran)} functions": tuple(ran)}
    for group, members in coco.FUNCTION_GROUPS.items():
        present = tuple(f for f in members if f in ran)
        if present:
            panels[f"{group} (f{present[0]}-f{present[-1]})" if len(present) > 1 else f"{group} (f{present[0]})"] = present
    return panels


def plot_ecdfs(campaigns: dict[str, coco.Campaign], dimension: int, path: str | Path, budget: float | None = None
               ) -> Path:
    """COCO's runtime ECDFs for one dimension, over all functions and per function group: the
    fraction of (function, target) pairs reached against ``log10(runtime / d)`` in
    gradient-equivalents, bootstrapped as cocopp does, every optimizer (at its chosen learning
    rate, held-out instances) and the virtual best solver (a wide grey band under the others).
    Runtimes past ``budget`` (a dotted line, per run / d) are simulated restarts, as in cocopp."""
    from matplotlib import colormaps

    from gradkit import plot

    panels = _panels(campaigns)
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plot._figure((4.0 * ncols + 2.2, 3.2 * nrows), nrows=nrows, ncols=ncols, squeeze=False)
    palette = colormaps["tab20"]
    for ax, (title, functions) in zip(axes.flat, panels.items()):
        for k, (label, (x, y)) in enumerate(ecdf_curves(campaigns, dimension, functions).items()):
            virtual = label == VIRTUAL_BEST
            ax.step(x, y, where="post", label=label, linewidth=6.0 if virtual else 1.6, alpha=0.45 if virtual else 1.0,
                    color="0.5" if virtual else palette((2 * k) % 20 + (k // 10) % 2),
                    linestyle="-" if virtual or k < 10 else "--", zorder=1 if virtual else 2)
        if budget is not None:
            ax.axvline(np.log10(budget), color="k", linewidth=0.8, linestyle=":")
            ax.annotate("budget per run", (np.log10(budget), 0.02), rotation=90, fontsize=7, ha="right", va="bottom")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("log10(runtime / d)", fontsize=8)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("(function, target) pairs", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=min(5, len(labels)))
    fig.suptitle(f"BBOB d = {dimension}: runtime ECDFs over 51 targets (10^2 ... 10^-8), held-out instances, "
                 "bootstrapped as cocopp; runtime in gradient-equivalents", fontsize=9)
    return plot.save(fig, path)


def sensitivity_rows(results: dict[tuple[str, float | None], Runs], config: CampaignConfig
                     ) -> dict[tuple[str, int], list[tuple[float, float]]]:
    """(optimizer, dimension) -> ``[(learning rate, fraction of (run, target) pairs reached)]`` over
    every instance, ascending learning rate: the data :func:`plot_learning_rate_sensitivity` draws."""
    rows: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for (name, lr), r in results.items():
        if lr is None:
            continue
        for dimension in config.dimensions:
            mask = r.dimension == dimension
            rows.setdefault((name, dimension), []).append((lr, float(np.isfinite(r.target_costs[mask]).mean())))
    return {k: sorted(v) for k, v in rows.items()}


def plot_learning_rate_sensitivity(results: dict[tuple[str, float | None], Runs], config: CampaignConfig,
                                   path: str | Path) -> Path | None:
    """One panel per dimension: the fraction of (run, target) pairs reached against the learning
    rate, a line per optimizer that takes one (``None`` when none does)."""
    from gradkit import plot

    rows = sensitivity_rows(results, config)
    if not rows:
        return None
    dims = list(config.dimensions)
    fig, axes = plot._figure((4.2 * len(dims) + 1.8, 3.8), ncols=len(dims), squeeze=False)
    names = list(dict.fromkeys(name for name, _ in rows))
    for ax, dimension in zip(axes[0], dims):
        for name in names:
            pts = rows.get((name, dimension), [])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("learning rate")
        ax.set_title(f"d = {dimension}", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("(run, target) pairs reached")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.suptitle("BBOB: learning-rate sensitivity (all instances, budget "
                 f"{config.budget}*d gradient-equivalents)", fontsize=9)
    return plot.save(fig, path)

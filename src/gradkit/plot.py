"""Pictures: landscape contours with minima and trajectories, loss curves.

matplotlib is imported lazily with the non-interactive Agg backend when no
backend was chosen, so these functions work on headless machines and in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gradkit.landscapes import Landscape

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _pyplot() -> Any:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def landscape_grid(landscape: Landscape, resolution: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, Y, Z)`` on a ``resolution²`` grid over the landscape's domain (one vmapped call)."""
    if landscape.dim != 2:
        raise ValueError(f"landscape_grid needs a 2D landscape, {landscape.name!r} has dim {landscape.dim}")
    (x0, x1), (y0, y1) = landscape.domain
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    X, Y = np.meshgrid(xs, ys)
    points = jnp.asarray(np.stack([X, Y], axis=-1), dtype=jnp.float32)
    Z = np.asarray(jax.jit(landscape.fn)(points), dtype=np.float64)
    return X, Y, Z


def contour_levels(Z: np.ndarray, count: int = 30, log_scale: bool = False) -> np.ndarray:
    """Contour levels: linear in value, or log-spaced above the grid minimum when ``log_scale``."""
    finite = Z[np.isfinite(Z)]
    lo, hi = float(finite.min()), float(finite.max())
    if not log_scale or hi - lo <= 0:
        return np.linspace(lo, hi, count)
    offsets = np.logspace(np.log10(max((hi - lo) * 1e-6, 1e-12)), np.log10(hi - lo), count)
    return lo + offsets


def plot_landscape(
    landscape: Landscape,
    trajectories: Mapping[str, Any] | None = None,
    ax: Axes | None = None,
    resolution: int = 300,
    levels: int = 30,
    title: str | None = None,
) -> Axes:
    """Filled contours of a 2D landscape, its global minima (stars) and saddles (crosses),
    and optional trajectories ``{label: array (steps, 2)}`` drawn as lines with markers."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 5.2))
    X, Y, Z = landscape_grid(landscape, resolution)
    lv = contour_levels(Z, levels, landscape.log_scale)
    filled = ax.contourf(X, Y, Z, levels=lv, cmap="viridis")
    ax.contour(X, Y, Z, levels=lv, colors="k", linewidths=0.3, alpha=0.4)
    ax.figure.colorbar(filled, ax=ax, shrink=0.85, format="%.3g")
    if landscape.minima:
        mins = np.asarray(landscape.minima)
        ax.plot(mins[:, 0], mins[:, 1], "*", color="red", markersize=14, markeredgecolor="white",
                label="global minimum", linestyle="none")
    if landscape.saddles:
        sad = np.asarray(landscape.saddles)
        ax.plot(sad[:, 0], sad[:, 1], "x", color="orange", markersize=10, label="saddle", linestyle="none")
    for label, path in (trajectories or {}).items():
        path = np.asarray(path)
        ax.plot(path[:, 0], path[:, 1], "-o", markersize=2.5, linewidth=1.3, label=label)
    (x0, x1), (y0, y1) = landscape.domain
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title or f"{landscape.name}: {landscape.formula}", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    return ax


def save(fig_or_ax: Figure | Axes, path: str | Path, dpi: int = 120) -> Path:
    """Save a figure (or the figure of an axes) to ``path``, creating folders; returns the path."""
    plt = _pyplot()
    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_loss_curves(
    curves: Mapping[str, Sequence[float] | np.ndarray],
    ax: Axes | None = None,
    log_y: bool = True,
    xlabel: str = "step",
    ylabel: str = "loss",
) -> Axes:
    """Loss curves ``{label: values (steps,)}`` or, for 2D arrays ``(runs, steps)``, the median
    with a 10–90% quantile band over runs."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            ax.plot(values, label=label)
        else:
            steps = np.arange(values.shape[1])
            median = np.nanmedian(values, axis=0)
            lo, hi = np.nanquantile(values, [0.1, 0.9], axis=0)
            (line,) = ax.plot(steps, median, label=f"{label} (median)")
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
    if log_y:
        ax.set_yscale("symlog", linthresh=1e-8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return ax


def plot_heatmap(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    ax: Axes | None = None,
    title: str = "",
    cbar_label: str = "",
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
) -> Axes:
    """A labelled heatmap (e.g. success rate or median steps over optimizer × learning rate);
    NaN cells are left blank, every cell is annotated."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.8 * len(col_labels), 1.0 + 0.45 * len(row_labels)))
    matrix = np.asarray(matrix, dtype=np.float64)
    image = ax.imshow(np.ma.masked_invalid(matrix), aspect="auto", cmap=cmap)
    ax.figure.colorbar(image, ax=ax, label=cbar_label)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=8)
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=6, color="w")
    ax.set_title(title, fontsize=9)
    return ax


def plot_basins(
    landscape: Landscape,
    starts: np.ndarray,
    basin: np.ndarray,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Start-point basin map: each start coloured by the index of the minimum its run reached
    (grey: none), over the landscape's contour lines, minima marked."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 5.2))
    X, Y, Z = landscape_grid(landscape, 200)
    ax.contour(X, Y, Z, levels=contour_levels(Z, 25, landscape.log_scale), colors="k", linewidths=0.3, alpha=0.5)
    starts, basin = np.asarray(starts), np.asarray(basin)
    colors = plt.get_cmap("tab10")
    for k in range(len(landscape.minima)):
        sel = basin == k
        ax.scatter(starts[sel, 0], starts[sel, 1], s=12, color=colors(k), label=f"→ minimum {k}")
    none = basin < 0
    if none.any():
        ax.scatter(starts[none, 0], starts[none, 1], s=12, color="lightgrey", label="no minimum")
    mins = np.asarray(landscape.minima)
    if mins.size:
        for k, m in enumerate(mins):
            ax.plot(m[0], m[1], "*", color=colors(k), markersize=16, markeredgecolor="k")
    ax.set_title(title or f"{landscape.name}: which minimum each start reaches", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return ax


def plot_spectral_density(
    density: Any,
    sigma: float | None = None,
    ax: Axes | None = None,
    resolution: int = 1000,
    log_y: bool = True,
    label: str | None = None,
) -> Axes:
    """The smoothed spectral density ``φ(t) = mean_p Σ_j w_pj N(t; θ_pj, σ²)`` of a
    ``gradkit.linalg.SpectralDensity`` (SLQ), on a grid spanning its nodes; ``sigma``
    defaults to 1% of the spread of the nodes."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    nodes = np.asarray(density.nodes)
    lo, hi = float(nodes.min()), float(nodes.max())
    spread = max(hi - lo, 1e-12)
    sigma = 0.01 * spread if sigma is None else sigma
    grid = np.linspace(lo - 0.05 * spread - 3 * sigma, hi + 0.05 * spread + 3 * sigma, resolution)
    phi = np.asarray(density.on_grid(grid, sigma))
    ax.plot(grid, phi, label=label)
    if log_y:
        ax.set_yscale("log")
        ax.set_ylim(max(phi.max() * 1e-8, 1e-12), phi.max() * 2)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    if label:
        ax.legend(fontsize=8)
    return ax


def plot_grad_norms(
    grad_norms: np.ndarray,
    layer_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Per-layer gradient norms over training steps (``gradkit.train.History.grad_norms``,
    shape ``(steps, layers)``), log scale: vanishing gradients show as a fan of lines."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    grad_norms = np.asarray(grad_norms)
    names = layer_names or [f"layer {i}" for i in range(grad_norms.shape[1])]
    for layer, name in enumerate(names):
        ax.plot(grad_norms[:, layer], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("gradient norm")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return ax

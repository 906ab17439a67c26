"""Pictures: landscape contours with minima and trajectories, loss curves, heatmaps, profiles.

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


def _figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """A new figure with constrained layout (titles, labels and outside legends are never clipped)."""
    return _pyplot().subplots(nrows, ncols, figsize=figsize, layout="constrained", **kwargs)


def _spread_indices(starts: np.ndarray, count: int) -> np.ndarray:
    """``count`` row indices of ``starts`` (shape ``(n, 2)``) spread over the plane: greedy farthest-point
    sampling from the start nearest the centroid (deterministic)."""
    n = len(starts)
    if n <= count:
        return np.arange(n)
    finite = np.where(np.isfinite(starts).all(axis=1), 0.0, np.inf)
    chosen = [int(np.argmin(np.linalg.norm(starts - np.nanmean(starts, axis=0), axis=1) + finite))]
    dist = np.linalg.norm(starts - starts[chosen[0]], axis=1)
    for _ in range(count - 1):
        nxt = int(np.argmax(np.where(np.isfinite(dist), dist, -1.0)))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(starts - starts[nxt], axis=1))
    return np.asarray(chosen)


def _finite_prefix(path: np.ndarray) -> np.ndarray:
    """The points of ``path`` (steps, 2) before its first non-finite point."""
    bad = ~np.isfinite(path).all(axis=1)
    return path[: int(np.argmax(bad))] if bad.any() else path


def plot_landscape(
    landscape: Landscape,
    trajectories: Mapping[str, Any] | None = None,
    ax: Axes | None = None,
    resolution: int = 300,
    levels: int = 30,
    title: str | None = None,
    max_per_optimizer: int = 8,
) -> Axes:
    """Filled contours of a 2D landscape, its global minima (stars), saddles (crosses) and trajectories.

    ``trajectories``: ``{label: path}`` with ``path`` of shape ``(steps, 2)`` (one run) or
    ``(runs, steps, 2)`` (several starts): up to ``max_per_optimizer`` runs per label are drawn, chosen
    by farthest-point sampling of their start points so they spread over the domain, all in the label's
    colour as thin lines with a start marker (○) and an end marker (■); a run is drawn up to its first
    non-finite point.  One legend entry per label, placed outside the axes (it covers no line).

    Colours match the levels: when ``landscape.log_scale`` the contours show the gap ``f - f₀``
    (``f₀`` = the global minimum, or the grid minimum when lower) on log-spaced levels with a
    ``LogNorm`` colour scale, otherwise ``f`` on linear levels with a linear scale.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator

    if ax is None:
        _, ax = _figure((7.6, 5.4))
    X, Y, Z = landscape_grid(landscape, resolution)
    trajectories = dict(trajectories or {})
    cmap = "Greys" if trajectories else "viridis"
    if landscape.log_scale:
        finite = Z[np.isfinite(Z)]
        floor = float(finite.min())
        if landscape.bounded_below:
            floor = min(floor, landscape.min_value)
        gap = Z - floor
        top = float(np.nanmax(gap[np.isfinite(gap)]))
        bottom = max(top * 1e-6, float(np.min(gap[gap > 0])) if np.any(gap > 0) else top * 1e-6)
        lv = np.logspace(np.log10(bottom), np.log10(top), levels)
        clipped = np.clip(gap, lv[0], lv[-1])
        norm = LogNorm(vmin=lv[0], vmax=lv[-1])
        filled = ax.contourf(X, Y, clipped, levels=lv, norm=norm, cmap=cmap)
        ax.contour(X, Y, clipped, levels=lv[::3], colors="k", linewidths=0.3, alpha=0.35, negative_linestyles="solid")
        f0 = "f*" if landscape.bounded_below and floor == landscape.min_value else "min f on grid"
        cbar_label = f"f - {f0} (log scale)"
        ticks, formatter = LogLocator(), LogFormatterSciNotation()
    else:
        lv = contour_levels(Z, levels, False)
        filled = ax.contourf(X, Y, Z, levels=lv, cmap=cmap)
        ax.contour(X, Y, Z, levels=lv[::2], colors="k", linewidths=0.3, alpha=0.35, negative_linestyles="solid")
        cbar_label = "f"
        ticks, formatter = MaxNLocator(8), None
    ax.figure.colorbar(filled, ax=ax, shrink=0.9, label=cbar_label, ticks=ticks, format=formatter)
    handles: list[Any] = []
    palette = _pyplot().get_cmap("tab10")
    for k, (label, path) in enumerate(trajectories.items()):
        path = np.asarray(path, dtype=np.float64)
        if path.ndim == 2:
            path = path[None]
        if path.ndim != 3 or path.shape[-1] != 2:
            raise ValueError(f"plot_landscape: trajectory {label!r} must have shape (steps, 2) or "
                             f"(runs, steps, 2), got {path.shape}")
        color = palette(k % 10)
        for r in _spread_indices(path[:, 0], max_per_optimizer):
            run = _finite_prefix(path[r])
            if len(run) == 0:
                continue
            ax.plot(run[:, 0], run[:, 1], "-", color=color, linewidth=1.1, alpha=0.9)
            ax.plot(run[0, 0], run[0, 1], "o", markerfacecolor="white", markeredgecolor=color, markersize=5)
            ax.plot(run[-1, 0], run[-1, 1], "s", color=color, markeredgecolor="k", markeredgewidth=0.5,
                    markersize=5)
        shown = min(len(path), max_per_optimizer)
        runs_note = f" ({shown} of {len(path)} starts)" if len(path) > shown else ""
        handles.append(Line2D([], [], color=color, linewidth=1.5, label=f"{label}{runs_note}"))
    if landscape.minima:
        mins = np.asarray(landscape.minima)
        ax.plot(mins[:, 0], mins[:, 1], "*", color="red", markersize=14, markeredgecolor="white",
                linestyle="none")
        handles.append(Line2D([], [], marker="*", color="red", markeredgecolor="k", markersize=12,
                              linestyle="none", label="global minimum"))
    if landscape.saddles:
        sad = np.asarray(landscape.saddles)
        ax.plot(sad[:, 0], sad[:, 1], "x", color="orange", markersize=10, markeredgewidth=2, linestyle="none")
        handles.append(Line2D([], [], marker="x", color="orange", markeredgewidth=2, linestyle="none",
                              label="saddle"))
    if trajectories:
        handles.append(Line2D([], [], marker="o", markerfacecolor="white", markeredgecolor="k", linestyle="none",
                              label="start"))
        handles.append(Line2D([], [], marker="s", color="k", linestyle="none", label="end"))
    (x0, x1), (y0, y1) = landscape.domain
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title or f"{landscape.name}: {landscape.formula}", fontsize=9, wrap=True)
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=min(3, len(handles)),
                  fontsize=7, frameon=False)
    return ax


def save(fig_or_ax: Figure | Axes, path: str | Path, dpi: int = 120) -> Path:
    """Save a figure (or the figure of an axes) to ``path``, creating folders; returns the path.

    Saved with ``bbox_inches="tight"``, so titles, outside legends and colorbar labels are never cut off.
    """
    plt = _pyplot()
    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


_BAND = (0.25, 0.75)


def _diverged_rows(values: np.ndarray, flags: Any) -> np.ndarray:
    """Rows (runs) that diverged: flagged by the caller, or holding a non-finite value."""
    bad = ~np.isfinite(values).all(axis=1)
    if flags is not None:
        flags = np.asarray(flags, dtype=bool).reshape(-1)
        if flags.shape != (values.shape[0],):
            raise ValueError(f"plot_loss_curves: diverged flags must have shape ({values.shape[0]},), "
                             f"got {flags.shape}")
        bad = bad | flags
    return bad


def _band(values: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and interquartile range over runs (axis 0), values below ``floor`` raised to it."""
    values = np.maximum(values, floor)
    lo, median, hi = np.quantile(values, [_BAND[0], 0.5, _BAND[1]], axis=0)
    return median, lo, hi


def _log_overlap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Fraction of steps at which two bands ``(lo, hi)`` intersect by more than half the narrower one
    (in log y)."""
    la, ha = np.log10(a[0]), np.log10(a[1])
    lb, hb = np.log10(b[0]), np.log10(b[1])
    n = min(len(la), len(lb))
    la, ha, lb, hb = la[:n], ha[:n], lb[:n], hb[:n]
    inter = np.minimum(ha, hb) - np.maximum(la, lb)
    width = np.maximum(np.minimum(ha - la, hb - lb), 0.05)
    return float(np.mean(inter > 0.5 * width))


def plot_loss_curves(
    curves: Mapping[str, Sequence[float] | np.ndarray],
    ax: Axes | None = None,
    log_y: bool = True,
    xlabel: str = "step",
    ylabel: str = "loss",
    diverged: Mapping[str, Any] | None = None,
    steps: Sequence[float] | np.ndarray | None = None,
    layout: str = "auto",
    title: str | None = None,
) -> Axes:
    """Loss curves ``{label: values}``: a line for ``values`` of shape ``(steps,)``; for ``(runs, steps)``
    the median over runs with its interquartile band (25–75 %).

    Diverged runs — flagged in ``diverged[label]`` (bool ``(runs,)``, e.g. ``RunResult.diverged``) or
    holding a non-finite value — are left out of the median and band and counted in the legend:
    ``"momentum (12 of 144 diverged)"``.  ``log_y`` puts y on a log axis; values ``<= 0`` (``f - f*``
    reached exactly) are drawn at the floor ``1e-12 x`` the largest band value, and y is clipped to the
    range of the bands, so one wild curve cannot squash the others.  ``steps``: x values (default
    ``0, 1, ...``).  ``layout``: ``"overlay"`` (one axes), ``"panels"`` (small multiples, one axes per
    label, shared axes) or ``"auto"`` (panels when the bands of two labels overlap over most steps and no
    ``ax`` is given).  Returns the (first) axes; with panels every panel is in ``ax.figure.axes``.
    """
    if layout not in ("auto", "overlay", "panels"):
        raise ValueError(f"plot_loss_curves: layout must be 'auto', 'overlay' or 'panels', got {layout!r}")
    diverged = dict(diverged or {})
    unknown = set(diverged) - set(curves)
    if unknown:
        raise ValueError(f"plot_loss_curves: diverged has labels {sorted(unknown)} not in curves")
    prepared = []  # (label, kind, payload, n_diverged, n_runs)
    for label, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[None]
            single = True
        elif values.ndim == 2:
            single = False
        else:
            raise ValueError(f"plot_loss_curves: curve {label!r} must be 1D (steps,) or 2D (runs, steps), "
                             f"got shape {values.shape}")
        bad = _diverged_rows(values, diverged.get(label))
        prepared.append((label, single, values[~bad], int(bad.sum()), values.shape[0]))
    kept = [p[2] for p in prepared if p[2].size]
    top = max((float(np.quantile(v, _BAND[1], axis=0).max()) for v in kept), default=1.0)
    floor = abs(top) * 1e-12 if log_y and top > 0 else -np.inf
    if log_y and top <= 0:
        floor, top = 1e-12, 1.0
    bands = {p[0]: _band(p[2], floor) for p in prepared if p[2].size and not p[1]}
    if layout == "auto":
        pairs = [(a, b) for i, a in enumerate(bands) for b in list(bands)[i + 1:]]
        crowded = log_y and any(_log_overlap(bands[a][1:], bands[b][1:]) > 0.5 for a, b in pairs)
        layout = "panels" if crowded and ax is None and len(prepared) > 1 else "overlay"
    if layout == "panels":
        if ax is not None:
            raise ValueError("plot_loss_curves: layout='panels' draws its own figure; pass ax=None")
        n = len(prepared)
        ncols = min(3, n)
        nrows = -(-n // ncols)
        fig, axes = _figure((3.4 * ncols, 2.6 * nrows + 0.4), nrows, ncols, sharex=True, sharey=True, squeeze=False)
        axes_list = list(axes.flat)
        for extra in axes_list[n:]:
            extra.set_visible(False)
    else:
        if ax is None:
            _, ax = _figure((7.2, 4.4))
        axes_list = [ax] * len(prepared)
    palette = _pyplot().get_cmap("tab10")
    bottom = np.inf
    for k, (label, single, values, n_bad, n_runs) in enumerate(prepared):
        target = axes_list[k]
        color = palette(k % 10)
        note = ""
        if n_bad:
            note = f" (all {n_runs} diverged)" if n_bad == n_runs else f" ({n_bad} of {n_runs} diverged)"
        x = np.arange(values.shape[1] if values.size else 0) if steps is None else np.asarray(steps)
        if not values.size:
            target.plot([], [], color=color, label=f"{label}{note}")
        elif single:
            y = np.maximum(values[0], floor)
            target.plot(x[: len(y)], y, color=color, label=f"{label}{note}")
            bottom = min(bottom, float(np.min(y)))
        else:
            median, lo, hi = bands[label]
            target.plot(x[: len(median)], median, color=color, linewidth=1.6, label=f"{label}{note}")
            target.fill_between(x[: len(median)], lo, hi, color=color, alpha=0.22, linewidth=0)
            bottom = min(bottom, float(np.min(lo)))
        if layout == "panels":
            target.set_title(f"{label}{note}", fontsize=8)
    for target in dict.fromkeys(axes_list):
        if log_y:
            target.set_yscale("log")
            if np.isfinite(bottom) and top > 0:
                target.set_ylim(max(bottom, floor) / 2, top * 2)
        target.set_xlabel(xlabel)
        target.set_ylabel(ylabel)
        target.grid(True, which="major", alpha=0.3)
    first = axes_list[0]
    if layout == "overlay":
        first.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                     title="median, IQR band", title_fontsize=8)
        if title:
            first.set_title(title, fontsize=9, wrap=True)
    else:
        first.figure.suptitle(f"{title} — median, IQR band" if title else "median, IQR band", fontsize=10)
        for target in axes_list[: len(prepared)]:
            target.label_outer()
    return first


def _relative_luminance(rgba: Sequence[float]) -> float:
    """WCAG relative luminance ``0.2126 R + 0.7152 G + 0.0722 B`` of linearised sRGB."""
    channels = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def text_color_for(rgba: Sequence[float]) -> str:
    """``"black"`` or ``"white"``, whichever has the higher WCAG contrast ratio
    ``(L₁ + 0.05) / (L₂ + 0.05)`` against a cell of colour ``rgba`` (at least 4.58 : 1 for any colour)."""
    lum = _relative_luminance(rgba)
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


def plot_heatmap(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    ax: Axes | None = None,
    title: str = "",
    cbar_label: str = "",
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
    xlabel: str = "learning rate",
    ylabel: str = "optimizer",
    nan_text: str = "–",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Axes:
    """A labelled heatmap (e.g. success rate or median steps over optimizer x learning rate).

    Every cell is annotated with ``fmt.format(value)`` in black or white, whichever contrasts more
    with the cell's colour (:func:`text_color_for`); NaN cells are light grey and read ``nan_text``
    (e.g. ``"never"`` for steps that were never reached).  Axes are labelled ``xlabel`` / ``ylabel``,
    the colorbar ``cbar_label``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"plot_heatmap: matrix has shape {matrix.shape}, labels give "
                         f"({len(row_labels)}, {len(col_labels)})")
    plt = _pyplot()
    if ax is None:
        width = 2.6 + 0.72 * len(col_labels) + 0.06 * max((len(str(r)) for r in row_labels), default=0)
        _, ax = _figure((width, 1.6 + 0.42 * len(row_labels)))
    colormap = plt.get_cmap(cmap).with_extremes(bad="#e6e6e6")
    image = ax.imshow(np.ma.masked_invalid(matrix), aspect="auto", cmap=colormap, vmin=vmin, vmax=vmax)
    ax.figure.colorbar(image, ax=ax, label=cbar_label or None)
    ax.set_xticks(range(len(col_labels)), [str(c) for c in col_labels], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(row_labels)), [str(r) for r in row_labels], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            color = text_color_for(image.cmap(image.norm(value)))
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7, color=color)
        else:
            ax.text(j, i, nan_text, ha="center", va="center", fontsize=7, color="#444444")
    if title:
        ax.set_title(title, fontsize=9, wrap=True)
    return ax


def _format_value(value: Any) -> str:
    """A hyperparameter value as a short column label: ``0.001``, ``1e-05``, ``0.9``, ``adam``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)
    return f"{float(value):g}"


def plot_sweep_heatmap(
    sweep: Any,
    field: str = "converged",
    ax: Axes | None = None,
    title: str | None = None,
    cmap: str | None = None,
) -> Axes:
    """Heatmap of a ``gradkit.runs.SweepResult``: rows are optimizers (``sweep.results``), columns the swept
    hyperparameter values (``sweep.grids[name]``; the keys that vary, e.g. ``learning_rate``).

    Each cell reduces ``sweep.per_config(name, field)`` (shape ``(configs, starts)``) over the starts:
    a boolean field (``converged``, ``diverged``) gives the fraction of starts, shown as a percentage on
    a 0–100 % scale; an integer step field (``hit_step``, ``first_hit``, ``settled_step``; ``< 0`` =
    never) gives the median over the starts that reached it, ``"never"`` when none did; any other
    numeric field gives the median of its finite values.  Optimizers with different grids leave the
    cells they did not run as ``–``.
    """
    names = list(sweep.results)
    if not names:
        raise ValueError("plot_sweep_heatmap: the sweep has no results")
    configs = {name: [dict(c) for c in sweep.grids[name]] for name in names}
    keys = sorted({k for name in names for c in configs[name] for k in c})
    varying = [k for k in keys if len({repr(c.get(k)) for name in names for c in configs[name]}) > 1] or keys

    def column_of(config: Mapping[str, Any]) -> str:
        if len(varying) == 1:
            return _format_value(config.get(varying[0]))
        return ", ".join(f"{k}={_format_value(config.get(k))}" for k in varying)

    columns: list[str] = []
    for name in names:
        for c in configs[name]:
            label = column_of(c)
            if label not in columns:
                columns.append(label)
    matrix = np.full((len(names), len(columns)), np.nan)
    kind = None
    for i, name in enumerate(names):
        data = np.asarray(sweep.per_config(name, field))
        if data.ndim != 2 or data.shape[0] != len(configs[name]):
            raise ValueError(f"plot_sweep_heatmap: per_config({name!r}, {field!r}) must have shape "
                             f"({len(configs[name])}, starts), got {data.shape}")
        if data.dtype == bool:
            kind, cells = "fraction", data.mean(axis=1)
        elif np.issubdtype(data.dtype, np.integer):
            kind = "steps"
            cells = np.array([np.median(row[row >= 0]) if np.any(row >= 0) else np.nan for row in data])
        else:
            kind = "value"
            cells = np.array([np.median(row[np.isfinite(row)]) if np.isfinite(row).any() else np.nan
                              for row in data.astype(np.float64)])
        for c, value in zip(configs[name], cells):
            matrix[i, columns.index(column_of(c))] = value
    pretty = field.replace("_", " ")
    xlabel = ", ".join(k.replace("_", " ") for k in varying)
    n_starts = getattr(sweep, "n_starts", None)
    over = f", {n_starts} starts per cell" if n_starts else ""
    if kind == "fraction":
        return plot_heatmap(100 * matrix, names, columns, ax=ax, fmt="{:.0f}%", cmap=cmap or "viridis",
                            title=title or f"{pretty}: % of starts{over}", cbar_label=f"% of starts {pretty}",
                            xlabel=xlabel, vmin=0.0, vmax=100.0)
    if kind == "steps":
        return plot_heatmap(matrix, names, columns, ax=ax, fmt="{:.0f}", cmap=cmap or "viridis_r",
                            title=title or f"median {pretty} over the starts that got there{over}",
                            cbar_label=f"median {pretty}", xlabel=xlabel, nan_text="never")
    return plot_heatmap(matrix, names, columns, ax=ax, fmt="{:.3g}", cmap=cmap or "viridis",
                        title=title or f"{pretty}: median{over}", cbar_label=f"median {pretty}", xlabel=xlabel)


def _profile_legend(ax: Axes) -> None:
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def plot_performance_profile(profile: Any, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Dolan–Moré performance profile: for each solver ``s`` the step function
    ``ρ_s(τ) = |{p : r_{p,s} <= τ}| / |P|`` (``r_{p,s}`` = cost of ``s`` on problem ``p`` over the best
    solver's cost) against ``log₂ τ``.  ``profile`` has ``solvers`` (S names), ``taus`` (T,) and
    ``rho`` (S, T) — e.g. ``gradkit.profiles.PerformanceProfile``.  ``ρ_s(1)`` (at ``log₂ τ = 0``) is the
    fraction of problems where ``s`` is the fastest; the right end the fraction it solves at all."""
    taus = np.asarray(profile.taus, dtype=np.float64)
    rho = np.asarray(profile.rho, dtype=np.float64)
    solvers = list(profile.solvers)
    if taus.ndim != 1 or rho.shape != (len(solvers), len(taus)):
        raise ValueError(f"plot_performance_profile: rho must have shape (solvers, taus) = "
                         f"({len(solvers)}, {len(taus)}), got {rho.shape}")
    if np.any(taus < 1):
        raise ValueError("plot_performance_profile: taus must be >= 1 (ratios to the best solver)")
    if ax is None:
        _, ax = _figure((7.0, 4.2))
    x = np.log2(taus)
    for name, row in zip(solvers, rho):
        ax.step(x, row, where="post", label=name, linewidth=1.6)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(x.min(), x.max())
    ax.set_xlabel("log₂ τ   (within a factor τ of the best solver)")
    ax.set_ylabel("fraction of problems  ρ(τ)")
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "Performance profile (Dolan–Moré)", fontsize=9)
    _profile_legend(ax)
    return ax


def plot_data_profile(profile: Any, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Moré–Wild data profile: for each solver the fraction of problems solved within a budget,
    ``d_s(κ) = |{p : t_{p,s} <= κ}| / |P|``, as a step function of the budget ``κ`` (log x axis when
    the budgets span more than a factor 100).  ``profile`` has ``solvers`` (S), ``budgets`` (B,),
    ``fraction`` (S, B) and ``unit`` (e.g. ``"steps"``, ``"gradient evaluations"``) — e.g.
    ``gradkit.profiles.DataProfile``."""
    budgets = np.asarray(profile.budgets, dtype=np.float64)
    fraction = np.asarray(profile.fraction, dtype=np.float64)
    solvers = list(profile.solvers)
    if budgets.ndim != 1 or fraction.shape != (len(solvers), len(budgets)):
        raise ValueError(f"plot_data_profile: fraction must have shape (solvers, budgets) = "
                         f"({len(solvers)}, {len(budgets)}), got {fraction.shape}")
    if ax is None:
        _, ax = _figure((7.0, 4.2))
    for name, row in zip(solvers, fraction):
        ax.step(budgets, row, where="post", label=name, linewidth=1.6)
    positive = budgets[budgets > 0]
    if positive.size and positive.max() > 100 * positive.min():
        ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"budget ({profile.unit.replace('_', '-')})")
    ax.set_ylabel("fraction of problems solved")
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "Data profile (Moré–Wild)", fontsize=9)
    _profile_legend(ax)
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
        _, ax = _figure((7.2, 5.2))
    X, Y, Z = landscape_grid(landscape, 200)
    ax.contour(X, Y, Z, levels=contour_levels(Z, 25, landscape.log_scale), colors="k", linewidths=0.3, alpha=0.5,
               negative_linestyles="solid")
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
    ax.set_title(title or f"{landscape.name}: which minimum each start reaches", fontsize=9, wrap=True)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
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

"""Pictures: landscape contours with minima and trajectories, loss curves, heatmaps, profiles.

matplotlib is imported lazily with the non-interactive Agg backend when no
backend was chosen, so these functions work on headless machines and in CI.
"""

from __future__ import annotations

import dataclasses
import functools
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


def _frame_exit(run: np.ndarray, domain: Sequence[tuple[float, float]]) -> np.ndarray:
    """Where a drawn run was last seen: its last point when that lies inside ``domain`` (the frame),
    else the point where its last segment from inside the frame to outside crosses the frame's edge
    (the run's start when it never was inside)."""
    lo = np.array([d[0] for d in domain], dtype=np.float64)
    hi = np.array([d[1] for d in domain], dtype=np.float64)
    inside = np.all((run >= lo) & (run <= hi), axis=1)
    if inside[-1] or not inside.any():
        return run[-1] if inside[-1] else run[0]
    i = int(np.flatnonzero(inside)[-1])  # the last point inside; run[i + 1] is outside
    a, b = run[i], run[i + 1]
    d = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hi = np.where(d > 0, (hi - a) / d, np.inf)
        t_lo = np.where(d < 0, (lo - a) / d, np.inf)
    t = float(np.clip(np.min(np.minimum(t_hi, t_lo)), 0.0, 1.0))
    return a + t * d


SHARED_GAP_RANGE = (1e-6, 1e6)
"""The ``f - f*`` range of the colour scale every trajectory picture shares (log, 3 levels a decade)."""


@dataclasses.dataclass(frozen=True)
class ColourScale:
    """A landscape's filled-contour colours: ``values`` (the grid drawn), ``levels``, ``log`` (a
    ``LogNorm``), ``label`` (the colourbar's), ``shared`` (the same levels for every landscape)."""

    values: np.ndarray
    levels: np.ndarray
    log: bool
    label: str
    shared: bool


def landscape_colour_scale(landscape: Landscape, Z: np.ndarray, shared: bool = True, count: int = 30) -> ColourScale:
    """The colour scale of a landscape picture over the grid values ``Z``.

    ``shared`` (trajectory pictures): ``f - f*`` (``f*`` the global minimum, or the grid minimum when
    unbounded below or lower) on one log scale for every landscape — levels at 3 a decade over
    :data:`SHARED_GAP_RANGE`, values clipped into it — so a colour means the same gap in every
    picture.  Otherwise the landscape's own scale: log-spaced ``f - f₀`` when ``landscape.log_scale``,
    else ``f`` on linear levels."""
    finite = Z[np.isfinite(Z)]
    floor = float(finite.min())
    if landscape.bounded_below:
        floor = min(floor, landscape.min_value)
    f0 = "f*" if landscape.bounded_below and floor == landscape.min_value else "min f on grid"
    if shared:
        lo, hi = SHARED_GAP_RANGE
        levels = np.logspace(np.log10(lo), np.log10(hi), 3 * int(round(np.log10(hi / lo))) + 1)
        return ColourScale(np.clip(Z - floor, lo, hi), levels, True,
                           f"f - {f0} (log scale, shared by every landscape)", True)
    if landscape.log_scale:
        gap = Z - floor
        top = float(np.nanmax(gap[np.isfinite(gap)]))
        bottom = max(top * 1e-6, float(np.min(gap[gap > 0])) if np.any(gap > 0) else top * 1e-6)
        levels = np.logspace(np.log10(bottom), np.log10(top), count)
        return ColourScale(np.clip(gap, levels[0], levels[-1]), levels, True, f"f - {f0} (log scale)", False)
    return ColourScale(Z, contour_levels(Z, count, False), False, "f", False)


def plot_landscape(
    landscape: Landscape,
    trajectories: Mapping[str, Any] | None = None,
    ax: Axes | None = None,
    resolution: int = 300,
    levels: int = 30,
    title: str | None = None,
    max_per_optimizer: int = 8,
    diverged: Mapping[str, Any] | None = None,
    shared_scale: bool | None = None,
) -> Axes:
    """Filled contours of a 2D landscape, its global minima (stars), saddles (crosses) and trajectories.

    ``trajectories``: ``{label: path}`` with ``path`` of shape ``(steps, 2)`` (one run) or
    ``(runs, steps, 2)`` (several starts): up to ``max_per_optimizer`` runs per label are drawn, chosen
    by farthest-point sampling of their start points so they spread over the domain, all in the label's
    colour as lines with a start marker (○) and an end marker (■); a run is drawn up to its first
    non-finite point.  ``diverged[label]`` (bool ``(runs,)``) or a non-finite point marks a run as
    diverged: its end is a × at its last finite point.  The first label is drawn on top, each later
    one under it with a wider, translucent line, so no optimizer's path hides another's.  One
    legend entry per label, placed outside the axes (it covers no line).

    Colours (:func:`landscape_colour_scale`): with ``shared_scale`` (default: when trajectories are
    given) ``f - f*`` on the log scale every landscape shares; otherwise, when ``landscape.log_scale``,
    the gap ``f - f₀`` on log-spaced levels with a ``LogNorm``, else ``f`` on a linear scale.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator

    if ax is None:
        _, ax = _figure((7.6, 5.4))
    X, Y, Z = landscape_grid(landscape, resolution)
    trajectories = dict(trajectories or {})
    diverged = dict(diverged or {})
    cmap = "Greys" if trajectories else "viridis"
    scale = landscape_colour_scale(landscape, Z, bool(trajectories) if shared_scale is None else shared_scale, levels)
    if scale.log:
        norm = LogNorm(vmin=scale.levels[0], vmax=scale.levels[-1])
        filled = ax.contourf(X, Y, scale.values, levels=scale.levels, norm=norm, cmap=cmap)
        ax.contour(X, Y, scale.values, levels=scale.levels[::3], colors="k", linewidths=0.3, alpha=0.35,
                   negative_linestyles="solid")
        ticks, formatter = LogLocator(), LogFormatterSciNotation()
    else:
        filled = ax.contourf(X, Y, scale.values, levels=scale.levels, cmap=cmap)
        ax.contour(X, Y, scale.values, levels=scale.levels[::2], colors="k", linewidths=0.3, alpha=0.35,
                   negative_linestyles="solid")
        ticks, formatter = MaxNLocator(8), None
    ax.figure.colorbar(filled, ax=ax, shrink=0.9, label=scale.label, ticks=ticks, format=formatter)
    handles: list[Any] = []
    palette = _pyplot().get_cmap("tab10")
    n_labels = len(trajectories)
    any_diverged = False
    for k, (label, path) in enumerate(trajectories.items()):
        path = np.asarray(path, dtype=np.float64)
        if path.ndim == 2:
            path = path[None]
        if path.ndim != 3 or path.shape[-1] != 2:
            raise ValueError(f"plot_landscape: trajectory {label!r} must have shape (steps, 2) or "
                             f"(runs, steps, 2), got {path.shape}")
        flags = np.zeros(len(path), bool) if label not in diverged else np.asarray(diverged[label], bool).reshape(-1)
        if flags.shape != (len(path),):
            raise ValueError(f"plot_landscape: diverged[{label!r}] must have shape ({len(path)},), got {flags.shape}")
        color = palette(k % 10)
        z = 2.0 + (n_labels - k)  # the first label on top
        width = 1.1 + 0.5 * k  # later labels wider underneath, so they show around the ones above
        for r in _spread_indices(path[:, 0], max_per_optimizer):
            run = _finite_prefix(path[r])
            if len(run) == 0:
                continue
            gone = bool(flags[r]) or len(run) < path.shape[1]
            ax.plot(run[:, 0], run[:, 1], "-", color=color, linewidth=width, alpha=0.75, zorder=z)
            ax.plot(run[0, 0], run[0, 1], "o", markerfacecolor="white", markeredgecolor=color, markersize=5,
                    zorder=z + 20)
            if gone:  # × at the last finite point, or where the run left the frame on its way out
                any_diverged = True
                end = _frame_exit(run, landscape.domain)
                ax.plot(end[0], end[1], "x", color=color, markersize=9, markeredgewidth=2.2, zorder=z + 20.5,
                        clip_on=False)
            else:  # end markers above the minima's stars, so a run that reached one still shows its end
                ax.plot(run[-1, 0], run[-1, 1], "s", color=color, markeredgecolor="k", markeredgewidth=0.5,
                        markersize=5, zorder=z + 20)
        shown = min(len(path), max_per_optimizer)
        runs_note = f" ({shown} of {len(path)} starts)" if len(path) > shown else ""
        handles.append(Line2D([], [], color=color, linewidth=1.5, label=f"{label}{runs_note}"))
    if landscape.minima:
        mins = np.asarray(landscape.minima)
        ax.plot(mins[:, 0], mins[:, 1], "*", color="red", markersize=14, markeredgecolor="white",
                linestyle="none", zorder=20)
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
        if any_diverged:
            handles.append(Line2D([], [], marker="x", color="k", markeredgewidth=2, linestyle="none",
                                  label="diverged (last finite point, or where it left the frame)"))
    (x0, x1), (y0, y1) = landscape.domain
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title or f"{landscape.name}: {landscape.formula}", fontsize=9, wrap=True)
    if handles:  # under the axes, in as many columns (at most 3) as fit its width
        renderer = ax.figure.canvas.get_renderer()
        width = ax.get_window_extent(renderer).width
        for ncol in range(min(3, len(handles)), 0, -1):
            legend = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=ncol,
                               fontsize=7, frameon=False)
            if legend.get_window_extent(renderer).width <= width or ncol == 1:
                break
    return ax


def save(fig_or_ax: Figure | Axes, path: str | Path, dpi: int = 120) -> Path:
    """Save a figure (or the figure of an axes) to ``path``, creating folders; returns the path.

    Titles, outside legends and colorbar labels are never cut off: a figure with a layout engine
    (gradkit's own, constrained) is laid out by it at the saved size; any other gets
    ``tight_layout`` and is saved with ``bbox_inches="tight"``, a second full draw that constrained
    figures do not need (about a fifth of the drawing time of a race's pictures).
    """
    plt = _pyplot()
    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    laid_out = fig.get_layout_engine() is not None
    if not laid_out:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches=None if laid_out else "tight")
    plt.close(fig)
    return path


_BAND = (0.25, 0.75)
_INF_SENTINEL = 1e300  # +inf stand-in for quantiles (linear interpolation with inf gives nan)


def precision_floor(f_star: float, dtype: Any = np.float64, scale: float = 1.0) -> float:
    """The resolution of ``f - f*`` near the minimum in ``dtype``: ``eps(dtype) * max(|f*|, scale)``.

    Below it a difference ``f - f*`` is rounding noise (it can even be ``<= 0``); loss pictures
    shade the band under it ("below precision") and clip smaller values into it."""
    eps = float(np.finfo(np.dtype(dtype)).eps)
    magnitude = abs(float(f_star)) if np.isfinite(f_star) else 0.0
    return eps * max(magnitude, float(scale))


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


def divergence_column(row: np.ndarray) -> int:
    """The first recorded column of a diverged run that no longer shows the run: its first non-finite
    value, else the start of its frozen tail (gradkit's runner freezes a diverged run at its last
    finite point, so its recorded value stops changing); the last column when neither is found."""
    row = np.asarray(row, dtype=np.float64)
    bad = ~np.isfinite(row)
    if bad.any():
        return int(np.argmax(bad))
    n = len(row)
    changed = np.flatnonzero(row[1:] != row[:-1])  # column j + 1 differs from column j
    if n < 2:
        return n
    if changed.size == 0:
        return 1
    last = int(changed[-1]) + 1  # the last column that moved
    return last + 1 if last + 1 < n else n - 1  # no frozen tail: at least the last column is gone


def _quantiles(values: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles over axis 0 where ``+inf`` counts as larger than everything (a quantile that lands
    on or interpolates towards a ``+inf`` run is ``+inf``)."""
    finite = np.where(np.isposinf(values), _INF_SENTINEL, values)
    out = np.quantile(finite, qs, axis=0)
    return np.where(out >= _INF_SENTINEL * 1e-50, np.inf, out)


@dataclasses.dataclass(frozen=True)
class LossBand:
    """What a loss picture draws for one label: ``median``, ``lo``, ``hi`` (25/75 % quantiles) over
    ALL runs, a diverged run counting as ``+inf`` from its :func:`divergence_column` on; values below
    ``floor`` are clipped to it; ``diverged_fraction[t]`` the fraction of runs diverged by column ``t``;
    ``n_diverged`` of ``n_runs`` in all."""

    median: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    diverged_fraction: np.ndarray
    n_diverged: int
    n_runs: int


def loss_bands(values: Any, diverged: Any = None, floor: float = 0.0) -> LossBand:
    """Median and interquartile band of ``values`` ``(runs, steps)`` (or ``(steps,)``) over every run.

    A run flagged in ``diverged`` (bool ``(runs,)``) or holding a non-finite value counts as ``+inf``
    from the column it diverged (:func:`divergence_column`), so once more than half the runs have
    diverged the median is ``+inf`` (it leaves a log axis).  Finite values below ``floor`` (e.g.
    :func:`precision_floor`; ``f - f* <= 0`` from rounding) are clipped up to it."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2:
        raise ValueError(f"loss_bands: values must be (steps,) or (runs, steps), got shape {values.shape}")
    bad = _diverged_rows(values, diverged)
    shown = np.where(np.isfinite(values), np.maximum(values, floor), np.inf)
    gone = np.zeros(values.shape, dtype=bool)
    for r in np.flatnonzero(bad):
        gone[r, divergence_column(values[r]):] = True
    shown[gone] = np.inf
    lo, median, hi = _quantiles(shown, [_BAND[0], 0.5, _BAND[1]])
    return LossBand(median, lo, hi, gone.mean(axis=0), int(bad.sum()), values.shape[0])


def _log_overlap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Fraction of steps at which two bands ``(lo, hi)`` intersect by more than half the narrower one
    (in log y); steps where either band is not finite count as no overlap."""
    with np.errstate(divide="ignore", invalid="ignore"):
        la, ha = np.log10(a[0]), np.log10(a[1])
        lb, hb = np.log10(b[0]), np.log10(b[1])
    n = min(len(la), len(lb))
    la, ha, lb, hb = la[:n], ha[:n], lb[:n], hb[:n]
    ok = np.isfinite(la) & np.isfinite(ha) & np.isfinite(lb) & np.isfinite(hb)
    if not ok.any():
        return 0.0
    la, ha, lb, hb = (np.where(ok, v, 0.0) for v in (la, ha, lb, hb))
    inter = np.minimum(ha, hb) - np.maximum(la, lb)
    width = np.maximum(np.minimum(ha - la, hb - lb), 0.05)
    return float(np.mean((inter > 0.5 * width) & ok))


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
    floor: float | None = None,
    floor_label: str | None = None,
) -> Axes:
    """Loss curves ``{label: values}``: a line for ``values`` of shape ``(steps,)``; for ``(runs, steps)``
    the median over ALL runs with its interquartile band (25–75 %), computed by :func:`loss_bands`.

    Diverged runs — flagged in ``diverged[label]`` (bool ``(runs,)``, e.g. ``RunResult.diverged``) or
    holding a non-finite value — count as ``+inf`` from the step they diverged: when more than half
    have diverged the median leaves the axis (the band's top edge sooner).  The fraction diverged by
    each step is drawn as a dashed line on a secondary axis (right, 0–100 %) and counted in the
    legend: ``"momentum (12 of 144 diverged)"``.

    ``log_y`` puts y on a log axis.  ``floor``: the resolution below which values are noise (e.g.
    :func:`precision_floor` of ``f*``); it is shaded as a "below precision" band (``floor_label``
    says what it is) and smaller values, ``f - f* <= 0`` included, are clipped into it.  Without a
    ``floor`` on a log axis, ``1e-12 x`` the largest band value is used (and said so).  ``steps``: x
    values (default ``0, 1, ...``).  ``layout``: ``"overlay"`` (one axes), ``"panels"`` (small
    multiples, one axes per label, shared axes) or ``"auto"`` (panels when the bands of two labels
    overlap over most steps and no ``ax`` is given).  Returns the (first) axes; with panels every
    panel is in ``ax.figure.axes``.
    """
    if layout not in ("auto", "overlay", "panels"):
        raise ValueError(f"plot_loss_curves: layout must be 'auto', 'overlay' or 'panels', got {layout!r}")
    diverged = dict(diverged or {})
    unknown = set(diverged) - set(curves)
    if unknown:
        raise ValueError(f"plot_loss_curves: diverged has labels {sorted(unknown)} not in curves")
    arrays = {}
    for label, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim not in (1, 2):
            raise ValueError(f"plot_loss_curves: curve {label!r} must be 1D (steps,) or 2D (runs, steps), "
                             f"got shape {values.shape}")
        arrays[label] = values
    raw_top = max((float(np.max(v[np.isfinite(v)])) for v in arrays.values() if np.isfinite(v).any()), default=1.0)
    if floor is None:
        floor_value = abs(raw_top) * 1e-12 if log_y and raw_top > 0 else (1e-12 if log_y else -np.inf)
        floor_text = floor_label or (f"below {floor_value:.1g} (1e-12 x the largest value)" if log_y else None)
    else:
        floor_value = float(floor)
        floor_text = floor_label or f"below precision ({floor_value:.2g})"
    bands = {label: loss_bands(v, diverged.get(label), floor_value if log_y else -np.inf)
             for label, v in arrays.items()}
    # y spans the medians and where the bands start; a band edge climbing towards a divergence
    # runs off the top instead of squashing every other curve
    finite_hi = [b.hi[:1][np.isfinite(b.hi[:1])] for b in bands.values()] + [b.median[np.isfinite(b.median)]
                                                                             for b in bands.values()]
    top = max((float(v.max()) for v in finite_hi if v.size), default=1.0)
    if log_y and top <= floor_value:
        top = floor_value * 10
    multi = [label for label, v in arrays.items() if v.ndim == 2]
    if layout == "auto":
        pairs = [(a, b) for i, a in enumerate(multi) for b in multi[i + 1:]]
        crowded = log_y and any(_log_overlap((bands[a].lo, bands[a].hi), (bands[b].lo, bands[b].hi)) > 0.5
                                for a, b in pairs)
        layout = "panels" if crowded and ax is None and len(arrays) > 1 else "overlay"
    if layout == "panels":
        if ax is not None:
            raise ValueError("plot_loss_curves: layout='panels' draws its own figure; pass ax=None")
        n = len(arrays)
        ncols = min(3, n)
        nrows = -(-n // ncols)
        fig, axes = _figure((3.6 * ncols, 2.7 * nrows + 0.5), nrows, ncols, sharex=True, sharey=True, squeeze=False)
        axes_list = list(axes.flat)
        for extra in axes_list[n:]:
            extra.set_visible(False)
    else:
        if ax is None:
            _, ax = _figure((7.6, 5.4))
        axes_list = [ax] * len(arrays)
    palette = _pyplot().get_cmap("tab10")
    bottom = np.inf
    twins: dict[int, Any] = {}
    for k, (label, values) in enumerate(arrays.items()):
        target, band = axes_list[k], bands[label]
        color = palette(k % 10)
        note = ""
        if band.n_diverged:
            note = (f" (all {band.n_runs} diverged)" if band.n_diverged == band.n_runs
                    else f" ({band.n_diverged} of {band.n_runs} diverged)")
        x = np.arange(values.shape[-1]) if steps is None else np.asarray(steps, dtype=np.float64)
        x = x[: len(band.median)]
        median = np.where(np.isfinite(band.median), band.median, np.nan)
        target.plot(x, median, color=color, linewidth=1.6, label=f"{label}{note}")
        if values.ndim == 2:
            hi = np.where(np.isfinite(band.hi), np.minimum(band.hi, top * 1e3), top * 1e3)  # off the top
            lo = np.where(np.isfinite(band.lo), band.lo, np.nan)
            target.fill_between(x, lo, hi, color=color, alpha=0.22, linewidth=0)
            off = np.flatnonzero(~np.isfinite(band.median))
            if off.size:
                target.annotate("median → ∞ (diverged)", (x[off[0]], 1.0), xycoords=("data", "axes fraction"),
                                xytext=(2, -10), textcoords="offset points", fontsize=7, color=color,
                                ha="left", va="top")
        finite_lo = band.lo[np.isfinite(band.lo)]
        if finite_lo.size:
            bottom = min(bottom, float(finite_lo.min()))
        if band.n_diverged and values.ndim == 2:
            key = id(target)
            if key not in twins:
                twins[key] = target.twinx()
                twins[key].set_ylim(0, 100)
                twins[key].set_ylabel("% of runs diverged (dashed)", fontsize=8)
                twins[key].tick_params(labelsize=7)
            twins[key].plot(x, 100 * band.diverged_fraction, color=color, linestyle="--", linewidth=1.1,
                            alpha=0.9)
        if layout == "panels":
            target.set_title(f"{label}{note}", fontsize=8)
    for target in dict.fromkeys(axes_list):
        if log_y:
            target.set_yscale("log")
            low = max(min(bottom, top), floor_value) if np.isfinite(bottom) else floor_value
            ylo = min(low, floor_value) / 10 if floor is not None or low <= floor_value * 10 else low / 2
            target.set_ylim(ylo, top * 2)
            if np.isfinite(floor_value) and floor_value > ylo:
                target.axhspan(ylo, floor_value, color="#bbbbbb", alpha=0.45, linewidth=0, zorder=0,
                               label=floor_text)
        target.set_xlabel(xlabel)
        target.set_ylabel(ylabel)
        target.grid(True, which="major", alpha=0.3)
    first = axes_list[0]
    note = "median over all runs (diverged = +inf), IQR band"
    if layout == "overlay":
        # under the axes (the right side holds the diverged-% axis): it covers no line and leaves the plot its width
        first.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.14), borderaxespad=0.0,
                     ncol=2 if len(arrays) + (floor_text is not None) > 3 else 1, frameon=False,
                     title=note + ("; dashed, right axis: % of runs diverged by then" if twins else ""),
                     title_fontsize=7, alignment="left")
        if title:
            first.set_title(title, fontsize=9, wrap=True)
    else:
        shaded = f"; grey band: {floor_text}" if log_y and floor_text else ""
        dashed = "; dashed, right axis: % of runs diverged by then" if twins else ""
        first.figure.suptitle(f"{title}\n{note}{dashed}{shaded}" if title else f"{note}{dashed}{shaded}",
                              fontsize=9)
        for target in axes_list[: len(arrays)]:
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
        lines = title.count("\n") + 1 if title else 0
        # wide and tall enough for a few cells' title (wrapped) and colorbar label
        _, ax = _figure((max(width, 6.0), max(1.6 + 0.42 * len(row_labels), 2.2 + 0.25 * lines)))
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


SWEEP_FIELDS = ("converged", "ever_hit", "diverged", "ended_within", "first_hit", "settled_step", "final_value",
                "final_grad_norm", "final_distance", "cost", "cost_to_settle")
"""Per-run fields of a ``RunResult`` that :func:`plot_sweep_heatmap` can reduce per cell."""

_STEP_FIELDS = ("first_hit", "settled_step", "hit_step")


@dataclasses.dataclass(frozen=True)
class HeatmapCells:
    """What a sweep heatmap draws: ``values[i, j]`` for optimizer ``rows[i]`` at config ``columns[j]``
    (NaN where it did not run), ``successes`` / ``counts`` the runs that reached the field's event /
    all runs of the cell, ``greyed`` the cells drawn grey (fewer than ``min_success`` successes, step
    fields only), ``kind`` ``"fraction"`` / ``"steps"`` / ``"value"``, ``budget`` the step budget."""

    rows: list[str]
    columns: list[str]
    xlabel: str
    values: np.ndarray
    successes: np.ndarray
    counts: np.ndarray
    greyed: np.ndarray
    kind: str
    budget: int | None
    min_success: int


def _check_field(sweep: Any, field: str, names: list[str]) -> None:
    """A ``ValueError`` naming the valid fields (and the optimizers) unless ``field`` is readable."""
    if not isinstance(field, str):
        raise ValueError(f"plot_sweep_heatmap: field must be a string, one of {list(SWEEP_FIELDS)}; got {field!r}")
    hint = ""
    if field in names:
        hint = (f" ({field!r} is an optimizer of this sweep; every optimizer is drawn as a row — to draw only "
                f"some, pass a SweepResult with results/grids filtered to them)")
    try:
        sweep.per_config(names[0], field)
    except (AttributeError, KeyError, TypeError):
        raise ValueError(f"plot_sweep_heatmap: unknown field {field!r}{hint}; valid fields are "
                         f"{list(SWEEP_FIELDS)}; optimizers in the sweep: {names}") from None


def heatmap_cells(sweep: Any, field: str = "converged", min_success: int = 3) -> HeatmapCells:
    """The numbers a sweep heatmap shows, one cell per (optimizer, config), over every start.

    A boolean field (``converged``, ``diverged``, ...) gives the fraction of starts.  A step field
    (``settled_step``, ``first_hit``) gives the leaderboard's censored median
    (:meth:`gradkit.runs.SweepResult.summary`): a run that did not get there — for ``settled_step``
    one not ``converged``, for ``first_hit`` one that never hit or diverged — counts as the budget
    ``sweep.steps``; cells with fewer than ``min_success`` runs that got there are ``greyed``.  Any
    other numeric field gives the median of its finite values.  An unknown ``field`` raises a
    ``ValueError`` naming the valid ones.
    """
    names = list(sweep.results)
    if not names:
        raise ValueError("plot_sweep_heatmap: the sweep has no results")
    _check_field(sweep, field, names)
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
    shape = (len(names), len(columns))
    values, successes, counts = np.full(shape, np.nan), np.zeros(shape, int), np.zeros(shape, int)
    kind = "value"
    budget = getattr(sweep, "steps", None)

    def optional(name: str, other: str) -> np.ndarray | None:
        try:
            return np.asarray(sweep.per_config(name, other))
        except (AttributeError, KeyError, TypeError):
            return None

    for i, name in enumerate(names):
        data = np.asarray(sweep.per_config(name, field))
        if data.ndim != 2 or data.shape[0] != len(configs[name]):
            raise ValueError(f"plot_sweep_heatmap: per_config({name!r}, {field!r}) must have shape "
                             f"({len(configs[name])}, starts), got {data.shape}")
        if data.dtype == bool:
            kind, ok, cells = "fraction", data, data.mean(axis=1)
        elif np.issubdtype(data.dtype, np.integer) or field in _STEP_FIELDS:
            kind = "steps"
            if budget is None:
                raise ValueError(f"plot_sweep_heatmap: field {field!r} needs sweep.steps (the budget an "
                                 "unfinished run counts as, as in the leaderboard)")
            converged = optional(name, "converged") if field == "settled_step" else None
            if converged is not None:
                ok = converged.astype(bool)
            else:
                ok = data >= 0
                div = optional(name, "diverged")
                if div is not None:
                    ok = ok & ~div.astype(bool)
            cells = np.median(np.where(ok, data, budget).astype(np.float64), axis=1)
        else:
            ok = np.isfinite(data.astype(np.float64))
            cells = np.array([np.median(row[np.isfinite(row)]) if np.isfinite(row).any() else np.nan
                              for row in data.astype(np.float64)])
        for c, value, hits in zip(configs[name], cells, ok):
            j = columns.index(column_of(c))
            values[i, j], successes[i, j], counts[i, j] = value, int(hits.sum()), hits.size
    greyed = (successes < min_success) & (counts > 0) if kind == "steps" else np.zeros(shape, bool)
    xlabel = ", ".join(k.replace("_", " ") for k in varying)
    return HeatmapCells(names, columns, xlabel, values, successes, counts, greyed, kind,
                        None if budget is None else int(budget), int(min_success))


def plot_sweep_heatmap(
    sweep: Any,
    field: str = "converged",
    ax: Axes | None = None,
    title: str | None = None,
    cmap: str | None = None,
    min_success: int = 3,
) -> Axes:
    """Heatmap of a ``gradkit.runs.SweepResult``: rows are optimizers (``sweep.results``), columns the swept
    hyperparameter values (``sweep.grids[name]``; the keys that vary, e.g. ``learning_rate``).

    The cells are :func:`heatmap_cells`: a boolean field as a percentage of starts on a 0–100 % scale;
    a step field (``settled_step``, ``first_hit``) as the leaderboard's censored median (a run that
    never got there counts as the budget, shown ``≥budget`` when the median is censored) on a
    0–budget scale, cells where fewer than ``min_success`` runs got there grey with their count
    (``"1/144"``), and the figure says so; any other numeric field as the median of its finite
    values.  Optimizers with different grids leave the cells they did not run as ``–``.  An unknown
    ``field`` raises a ``ValueError`` naming the valid fields and optimizers.
    """
    cells = heatmap_cells(sweep, field, min_success)
    pretty = field.replace("_", " ")
    n_starts = getattr(sweep, "n_starts", None)
    over = f", {n_starts} starts per cell" if n_starts else ""
    if cells.kind == "fraction":
        return plot_heatmap(100 * cells.values, cells.rows, cells.columns, ax=ax, fmt="{:.0f}%",
                            cmap=cmap or "viridis", title=title or f"{pretty}: % of starts{over}",
                            cbar_label=f"% of starts {pretty}", xlabel=cells.xlabel, vmin=0.0, vmax=100.0)
    if cells.kind == "steps":
        shown = np.where(cells.greyed, np.nan, cells.values)
        budget = cells.budget
        note = (f"censored median: a run that never got there counts as the budget ({budget}); "
                f"grey: fewer than {cells.min_success} runs got there (count shown)")
        ax = plot_heatmap(shown, cells.rows, cells.columns, ax=ax, fmt="{:.0f}", cmap=cmap or "viridis_r",
                          title=f"{title or f'median {pretty}{over}'}\n{note}",
                          cbar_label=f"median {pretty} (censored at {budget})", xlabel=cells.xlabel,
                          nan_text="–", vmin=0.0, vmax=float(budget))
        labels = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
        for (i, j), value in np.ndenumerate(cells.values):
            text = labels.get((i, j))
            if text is None or not cells.counts[i, j]:
                continue
            if cells.greyed[i, j]:
                text.set_text(f"{cells.successes[i, j]}/{cells.counts[i, j]}")
            elif value >= budget:
                text.set_text(f"≥{budget}\n{cells.successes[i, j]}/{cells.counts[i, j]}")
        return ax
    return plot_heatmap(cells.values, cells.rows, cells.columns, ax=ax, fmt="{:.3g}", cmap=cmap or "viridis",
                        title=title or f"{pretty}: median{over}", cbar_label=f"median {pretty}",
                        xlabel=cells.xlabel)


_LINESTYLES = ("-", "--", ":")


def series_style(k: int) -> dict[str, Any]:
    """Colour and line style of series ``k``: 7 colours × 3 line styles keep 21 series distinct
    (series 14 and 0 share a colour, never a style)."""
    from matplotlib import colormaps

    colors = colormaps["Dark2"].colors  # 8 colours; the grey (last) is kept for "solves nothing"-like notes
    return {"color": colors[k % 7], "linestyle": _LINESTYLES[(k // 7) % 3]}


@dataclasses.dataclass(frozen=True)
class ProfileCurve:
    """One solver's step function as drawn: ``x`` (``log₂ τ`` or the budget), ``y`` (fraction of
    problems), ``label`` (the name, ``"(solves nothing)"`` added for an all-zero curve)."""

    solver: str
    label: str
    x: np.ndarray
    y: np.ndarray


def profile_curves(profile: Any) -> list[ProfileCurve]:
    """The curves a performance or data profile draws, one per solver, every one spanning the same x
    range (at least one unit wide, so a single-τ profile — one solver solving anything — still draws):
    a performance profile (``taus``, ``rho``) against ``log₂ τ``, a data profile (``budgets``,
    ``fraction``) against the budget.  A solver solving nothing is a flat zero line labelled so."""
    if hasattr(profile, "rho"):
        taus = np.asarray(profile.taus, dtype=np.float64)
        ys = np.asarray(profile.rho, dtype=np.float64)
        if taus.ndim != 1 or ys.shape != (len(profile.solvers), len(taus)):
            raise ValueError(f"plot_performance_profile: rho must have shape (solvers, taus) = "
                             f"({len(profile.solvers)}, {len(taus)}), got {ys.shape}")
        if np.any(taus < 1):
            raise ValueError("plot_performance_profile: taus must be >= 1 (ratios to the best solver)")
        x = np.log2(taus)
        right = max(float(x.max()) * 1.05, float(x.max()) + 1.0) if x.max() <= 0 or len(x) == 1 else float(x.max())
    else:
        x = np.asarray(profile.budgets, dtype=np.float64)
        ys = np.asarray(profile.fraction, dtype=np.float64)
        if x.ndim != 1 or ys.shape != (len(profile.solvers), len(x)):
            raise ValueError(f"plot_data_profile: fraction must have shape (solvers, budgets) = "
                             f"({len(profile.solvers)}, {len(x)}), got {ys.shape}")
        right = float(x.max()) if len(x) > 1 and x.max() > x.min() else float(x.max()) * 2 + 1.0
    if right > x[-1]:
        x = np.append(x, right)
        ys = np.concatenate([ys, ys[:, -1:]], axis=1)
    curves = []
    for name, y in zip(profile.solvers, ys):
        label = f"{name} (solves nothing)" if not np.any(y > 0) else str(name)
        curves.append(ProfileCurve(str(name), label, x, y))
    return curves


def _end_labels(ax: Axes, curves: list[ProfileCurve], styles: list[dict[str, Any]]) -> None:
    """Each curve's label at its right end, just outside the axes, nudged apart so none overlap."""
    from matplotlib.transforms import blended_transform_factory

    ax.figure.canvas.draw()  # the axes height in points, for the spacing
    height_pt = max(ax.get_window_extent().height * 72.0 / ax.figure.dpi, 1.0)
    gap = 9.5 / height_pt  # one 7-pt line of text and a little air, in axes fraction
    y0, y1 = ax.get_ylim()
    wanted = [((c.y[-1] - y0) / (y1 - y0), k) for k, c in enumerate(curves)]
    wanted.sort()
    placed: list[tuple[float, int]] = []
    for y, k in wanted:
        if placed and y < placed[-1][0] + gap:
            y = placed[-1][0] + gap
        placed.append((y, k))
    overflow = placed[-1][0] - 1.0 if placed else 0.0
    if overflow > 0:  # shift down, never below the first slot
        placed = [(max(y - overflow, i * gap - 0.0), k) for i, (y, k) in enumerate(placed)]
    transform = blended_transform_factory(ax.transAxes, ax.transAxes)
    for y, k in placed:
        c = curves[k]
        end = (c.y[-1] - y0) / (y1 - y0)
        style = {"--": " (dashed)", ":": " (dotted)"}.get(styles[k]["linestyle"], "")
        ax.annotate(f"{c.label}{style}", xy=(1.0, end), xycoords=transform, xytext=(1.04, y), textcoords=transform,
                    fontsize=7, color=styles[k]["color"], va="center", ha="left", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": styles[k]["color"], "linewidth": 0.6,
                                "linestyle": styles[k]["linestyle"], "shrinkA": 0, "shrinkB": 0})


def _draw_profile(ax: Axes, curves: list[ProfileCurve]) -> None:
    styles = [series_style(k) for k in range(len(curves))]
    for k, c in enumerate(curves):
        ax.step(c.x, c.y, where="post", label=c.label, linewidth=1.6, zorder=3 + len(curves) - k, **styles[k])
    ax.set_xlim(float(curves[0].x[0]) if curves else 0.0, float(curves[0].x[-1]) if curves else 1.0)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    if curves:
        _end_labels(ax, curves, styles)


def plot_performance_profile(profile: Any, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Dolan–Moré performance profile: for each solver ``s`` the step function
    ``ρ_s(τ) = |{p : r_{p,s} <= τ}| / |P|`` (``r_{p,s}`` = cost of ``s`` on problem ``p`` over the best
    solver's cost) against ``log₂ τ``.  ``profile`` has ``solvers`` (S names), ``taus`` (T,) and
    ``rho`` (S, T) — e.g. ``gradkit.profiles.PerformanceProfile``.  ``ρ_s(1)`` (at ``log₂ τ = 0``) is the
    fraction of problems where ``s`` is the fastest; the right end the fraction it solves at all.

    The curves are :func:`profile_curves` (one per solver, a solver solving nothing a labelled flat
    zero line), styled by :func:`series_style` and labelled at their right ends instead of a legend."""
    curves = profile_curves(profile)
    if ax is None:
        _, ax = _figure((7.6, 4.4))
    _draw_profile(ax, curves)
    ax.set_xlabel("log₂ τ   (within a factor τ of the best solver)")
    ax.set_ylabel("fraction of problems  ρ(τ)")
    ax.set_title(title or "Performance profile (Dolan–Moré)", fontsize=9)
    return ax


def plot_data_profile(profile: Any, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Moré–Wild data profile: for each solver the fraction of problems solved within a budget,
    ``d_s(κ) = |{p : t_{p,s} <= κ}| / |P|``, as a step function of the budget ``κ`` (log x axis when
    the budgets span more than a factor 100).  ``profile`` has ``solvers`` (S), ``budgets`` (B,),
    ``fraction`` (S, B) and ``unit`` (e.g. ``"steps"``, ``"gradient evaluations"``) — e.g.
    ``gradkit.profiles.DataProfile``.  Curves and labels as in :func:`plot_performance_profile`."""
    curves = profile_curves(profile)
    if ax is None:
        _, ax = _figure((7.6, 4.4))
    budgets = curves[0].x if curves else np.asarray(profile.budgets, dtype=np.float64)
    positive = budgets[budgets > 0]
    if positive.size and positive.max() > 100 * positive.min():
        ax.set_xscale("log")
        # a log axis cannot show budget 0: start at the smallest positive one
        curves = [dataclasses.replace(c, x=np.where(c.x > 0, c.x, positive.min())) for c in curves]
    _draw_profile(ax, curves)
    ax.set_xlabel(f"budget ({profile.unit.replace('_', '-')})")
    ax.set_ylabel("fraction of problems solved")
    ax.set_title(title or "Data profile (Moré–Wild)", fontsize=9)
    return ax


@dataclasses.dataclass(frozen=True)
class NamedMinimum:
    """A minimum of a landscape: ``point``, ``value`` ``f(point)``, ``name`` (e.g.
    ``"global min (0.09, -0.71)"``, ``"local min (-1.70, 0.80), f=-0.2155"``), ``is_global``."""

    name: str
    point: tuple[float, ...]
    value: float
    is_global: bool


@functools.lru_cache(maxsize=32)
def _local_minima_cached(name: str, domain: tuple[tuple[float, float], ...], per_axis: int) -> tuple:
    """Minima of landscape ``name`` from a ``per_axis²`` grid of starts: saddle-free Newton (steps
    ``-|H|⁻¹ g``, the best of 12 halvings that does not go uphill), every start at once; jax only
    evaluates ``f``, ``∇f`` and ``∇²f`` over the batch (three small compiles), numpy does the rest."""
    from gradkit import landscapes as _landscapes

    land = _landscapes.get(name)
    lo = np.array([d[0] for d in domain])
    hi = np.array([d[1] for d in domain])
    span = float(np.max(hi - lo))
    values_of = jax.jit(land.fn)  # f broadcasts over leading axes
    grad_of = jax.jit(jax.vmap(jax.grad(land.fn)))
    hess_of = jax.jit(jax.vmap(jax.hessian(land.fn)))
    scales = 2.0 ** -np.arange(12)

    def f(x: np.ndarray) -> np.ndarray:
        v = np.asarray(values_of(jnp.asarray(x)), dtype=np.float64)
        return np.where(np.isfinite(v), v, np.inf)

    def solve(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        for _ in range(60):
            g = np.asarray(grad_of(jnp.asarray(xs)), dtype=np.float64)
            w, v = np.linalg.eigh(np.asarray(hess_of(jnp.asarray(xs)), dtype=np.float64))
            w = np.maximum(np.abs(w), 1e-8 * (1.0 + np.max(np.abs(w), axis=1, keepdims=True)))
            d = -np.einsum("nij,nj->ni", v, np.einsum("nji,nj->ni", v, g) / w)
            d *= np.minimum(1.0, 0.1 * span / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-300))
            d = np.where(np.isfinite(d), d, 0.0)
            trials = np.clip(xs[:, None] + scales[None, :, None] * d[:, None], lo, hi)
            values = f(trials)
            best = np.argmin(values, axis=1)
            better = values[np.arange(len(xs)), best] <= f(xs)
            xs = np.where(better[:, None], trials[np.arange(len(xs)), best], xs)
        g = np.asarray(grad_of(jnp.asarray(xs)), dtype=np.float64)
        lowest = np.linalg.eigvalsh(np.asarray(hess_of(jnp.asarray(xs)), dtype=np.float64))[:, 0]
        return xs, f(xs), np.linalg.norm(g, axis=1), lowest

    axes = [np.linspace(a, b, per_axis) for a, b in domain]
    starts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(domain))
    xs, values, gnorm, lowest = solve(starts)
    found: list[tuple[tuple[float, ...], float]] = []
    order = np.argsort(values)
    for i in order:
        x = xs[i]
        inside = np.all((x > lo + 1e-6 * span) & (x < hi - 1e-6 * span))
        gtol = 1e-3 * max(1.0, abs(float(values[i])))
        if not inside or not np.isfinite(values[i]) or gnorm[i] > gtol or lowest[i] < -1e-6:
            continue  # on the boundary, short of a stationary point, or a saddle
        if not any(np.linalg.norm(x - np.asarray(y)) < 1e-3 * span for y, _ in found):
            found.append((tuple(float(v) for v in x), float(values[i])))
    return tuple(sorted(found, key=lambda m: (m[1], m[0])))


def local_minima(landscape: Landscape, per_axis: int = 11) -> list[NamedMinimum]:
    """Every minimum of a 2D landscape inside its domain, named: the listed global minima
    (``landscape.minima``) and the local ones found by saddle-free Newton from a ``per_axis²`` grid of starts
    (stationary points with a positive semi-definite Hessian, not on the boundary; cached per landscape), sorted by
    value.  Names read ``"global min (0.09, -0.71)"`` and ``"local min (1.70, -0.80), f=-0.2155"``."""
    listed = [tuple(float(v) for v in m) for m in landscape.minima]
    found: list[tuple[tuple[float, ...], float]] = []
    from gradkit import landscapes as _landscapes

    if landscape.dim == 2 and landscape.name in _landscapes.SUITE:
        found = list(_local_minima_cached(landscape.name, tuple(tuple(map(float, d)) for d in landscape.domain),
                                          per_axis))
    span = max(hi - lo for lo, hi in landscape.domain)
    f_star = landscape.min_value if landscape.bounded_below else -np.inf
    out = [NamedMinimum(f"global min ({m[0]:.2f}, {m[1]:.2f})" if len(m) == 2 else "global min", m,
                        float(f_star), True) for m in listed]
    for point, value in found:
        if any(np.linalg.norm(np.subtract(point, m)) < 1e-2 * span for m in listed):
            continue
        if np.isfinite(f_star) and value <= f_star + 1e-9 * max(1.0, abs(f_star)):
            continue  # a global minimum not listed: leave it out rather than call it local
        out.append(NamedMinimum(f"local min ({point[0]:.2f}, {point[1]:.2f}), f={value:.4g}", point, value, False))
    return out


def basin_labels(finals: np.ndarray, minima: Sequence[NamedMinimum], radius: float = 0.05) -> np.ndarray:
    """Index into ``minima`` of the minimum within ``radius`` of each final point, ``-1`` for a point
    near none of them (or not finite): what :func:`plot_basins` colours each start by."""
    finals = np.asarray(finals, dtype=np.float64)
    if not minima:
        return np.full(len(finals), -1)
    mins = np.asarray([m.point for m in minima], dtype=np.float64)
    dist = np.linalg.norm(finals[:, None, :] - mins[None], axis=-1)
    dist = np.where(np.isfinite(dist), dist, np.inf)
    idx = np.argmin(dist, axis=1)
    return np.where(dist[np.arange(len(finals)), idx] <= radius, idx, -1)


def plot_basins(
    landscape: Landscape,
    starts: np.ndarray,
    basin: np.ndarray | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    finals: np.ndarray | None = None,
    minima: Sequence[NamedMinimum] | None = None,
    radius: float = 0.05,
) -> Axes:
    """Start-point basin map: each start coloured by the minimum its run reached, over the landscape's
    contour lines, every minimum marked (★ global, ▲ local) and named in the legend.

    Give ``finals`` (the runs' last points): each is matched to the nearest of ``minima`` (default
    :func:`local_minima`: global and local minima, named) within ``radius`` (:func:`basin_labels`);
    only runs that end near no minimum are "no minimum".  Or give ``basin`` (index into
    ``landscape.minima`` per start, -1 none), the older form, naming only the global minima."""
    plt = _pyplot()
    if ax is None:
        _, ax = _figure((7.6, 5.2))
    if minima is None:
        minima = local_minima(landscape) if finals is not None else [
            NamedMinimum(f"global min ({m[0]:.2f}, {m[1]:.2f})", tuple(m), float(landscape.min_value), True)
            for m in landscape.minima]
    minima = list(minima)
    if finals is not None:
        basin = basin_labels(finals, minima, radius)
    if basin is None:
        raise ValueError("plot_basins: give finals (the runs' last points) or basin (a minimum index per start)")
    X, Y, Z = landscape_grid(landscape, 200)
    ax.contour(X, Y, Z, levels=contour_levels(Z, 25, landscape.log_scale), colors="k", linewidths=0.3, alpha=0.5,
               negative_linestyles="solid")
    starts, basin = np.asarray(starts), np.asarray(basin)
    colors = plt.get_cmap("tab10")
    for k, m in enumerate(minima):
        sel = basin == k
        color = colors(k % 10)
        count = f" ({int(sel.sum())} start{'' if sel.sum() == 1 else 's'})"
        ax.scatter(starts[sel, 0], starts[sel, 1], s=14, color=color, label=f"→ {m.name}{count}", zorder=3)
        ax.plot(m.point[0], m.point[1], "*" if m.is_global else "^", color=color, markersize=15 if m.is_global else 10,
                markeredgecolor="k", zorder=4, linestyle="none")
    none = basin < 0
    if none.any():
        ax.scatter(starts[none, 0], starts[none, 1], s=14, color="lightgrey", edgecolors="k", linewidths=0.3,
                   label=f"→ no minimum ({int(none.sum())} starts: diverged or stopped elsewhere)", zorder=3)
    ax.set_title(title or f"{landscape.name}: which minimum each start reaches", fontsize=9, wrap=True)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              title="start colour = minimum reached\n★ global, ▲ local minimum", title_fontsize=7)
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

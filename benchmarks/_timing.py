"""Shared timing helpers: medians of repeated, blocked calls after a warm-up compile."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import jax


def median_time(fn: Callable[[], Any], repeats: int = 20, warmup: int = 2) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` calls, each ended by ``block_until_ready``."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(fns: list[Callable[[], Any]], repeats: int = 20, warmup: int = 2,
                        rewarm: bool = False) -> list[float]:
    """Median wall times of several callables timed in alternation (cancels machine drift).
    ``rewarm``: each timed call right after an untimed call of the same callable, so that no
    callable is timed with the caches a much longer one left cold (1000 vmapped BFGS runs on
    Himmelblau took 0.15-0.2 ms more, of ~2 ms, when timed right after jaxopt's 1.6 s call)."""
    for fn in fns:
        for _ in range(warmup):
            jax.block_until_ready(fn())
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, times in zip(fns, samples):
            if rewarm:
                jax.block_until_ready(fn())
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


def machine() -> str:
    """A one-line description of where the numbers were taken."""
    dev = jax.devices()[0]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = f"{os.cpu_count()} cores" + (f", pinned to {usable}" if usable != os.cpu_count() else "")
    return f"{platform.machine()} ({cores}), {jax.device_count()} x {dev.platform}:{dev.device_kind}, jax {jax.__version__}"


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print ``rows`` as a Markdown table (the README quotes it verbatim)."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = [f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        print("| " + " | ".join(cells) + " |")


def write_json(name: str, rows: list[dict[str, Any]], out_dir: str | Path = "benchmarks/results") -> Path:
    """Write ``{"machine": ..., "rows": rows}`` to ``out_dir/name.json``."""
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    return path


def quick_requested(description: str | None = None) -> bool:
    """Parse the benchmarks' one flag, ``--quick`` (the CI smoke size)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no JSON written")
    return parser.parse_args().quick


def report(name: str, rows: list[dict[str, Any]], columns: list[str], quick: bool) -> None:
    """Print the machine and the table; write ``benchmarks/results/name.json`` unless ``quick``."""
    print(f"machine: {machine()}")
    print_table(rows, columns)
    if not quick:
        print("wrote", write_json(name, rows))

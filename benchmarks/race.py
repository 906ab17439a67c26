"""Wall time of the README's showcase, `gradkit race` with its defaults, on this machine.

Runs the command twice in fresh processes: once with an empty persistent compilation cache (what a
first run on a fresh machine pays: mostly XLA compilation) and once more with the cache filled (the
difference: the time spent compiling); then both again with ``--no-fast-compile`` (XLA's default
CPU optimisation instead of the race's quick compile settings).  The
cache is the CLI's own (``$XDG_CACHE_HOME/gradkit/jax``), under an empty temporary ``$XDG_CACHE_HOME``.
Writes benchmarks/results/race.json.  ``--quick`` races one landscape and two optimizers (smoke test).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _timing


def timed_race(args: list[str], cache: str, out: str) -> tuple[float, int]:
    # the cache where a user's `gradkit race` keeps it ($XDG_CACHE_HOME/gradkit/jax, set up by the CLI
    # with its own minimum compile time), here under an empty temporary $XDG_CACHE_HOME
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update({"XDG_CACHE_HOME": cache, "MPLBACKEND": "Agg"})
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gradkit", "race", "--no-progress", "--out", out, *args],
                          env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    runs = sum(int(n.replace(",", "")) for n in re.findall(r"([\d,]+) runs", proc.stdout.split("\n== ", 1)[0]))
    return seconds, runs


def main() -> None:
    quick = _timing.quick_requested(__doc__)
    args = ["--landscapes", "himmelblau", "--optimizers", "sgd", "adam", "--steps", "50"] if quick else []
    rows = []
    for extra in ([], ["--no-fast-compile"]):  # the default quick compile settings, then XLA's defaults
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            first, runs = timed_race(args + extra, cache, out)
            second, _ = timed_race(args + extra, cache, out)
        rows.append({"command": "gradkit race " + " ".join(args + extra), "runs": runs, "first run s": first,
                     "cached run s": second, "compiling s": first - second})
    _timing.print_table(rows, ["command", "runs", "first run s", "cached run s", "compiling s"])
    if not quick:
        path = Path(__file__).parent / "results" / "race.json"
        fast, full = rows
        path.write_text(json.dumps({"machine": _timing.machine(), "runs": fast["runs"], "seconds": fast["first run s"],
                                    "seconds_cached": fast["cached run s"],
                                    "seconds_full_compile": full["first run s"],
                                    "seconds_cached_full_compile": full["cached run s"]}, indent=1))
        print("wrote", path)


if __name__ == "__main__":
    main()

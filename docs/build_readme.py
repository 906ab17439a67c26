"""Rebuild the generated pages from their templates and the JSON in benchmarks/results/.

    python docs/build_readme.py           # write them
    python docs/build_readme.py --check   # exit 1 if one is out of date (a test runs this)

Writes README.md (from docs/README.template.md), docs/index.md (the same text, its links made
relative to docs/), docs/benchmarks.md (from docs/benchmarks.template.md) and docs/multihost.md
(from docs/multihost.template.md), replacing every
``@NAME@`` placeholder.  The README's expected outputs (its ``text`` blocks) are written in the
template by hand: tests/test_examples_notebooks.py checks them against what the blocks print.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table(rows, columns):
    """Markdown table; ``columns`` is a list of (header, key, format function)."""
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(row[key]) for _, key, fmt in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_words(machine: str) -> str:
    """``"x86_64 (2 cores), 1 x cpu:cpu, jax 0.10.2"`` -> ``"2 CPU cores (x86_64, jax 0.10.2)"``;
    ``"... (2 cores, pinned to 1) ..."`` -> ``"1 of 2 CPU cores (taskset; ...)"``."""
    m = re.fullmatch(r"(\S+) \((\d+) cores(?:, pinned to (\d+))?\), \d+ x cpu:cpu, jax (\S+)", machine)
    if not m:
        return machine
    if m.group(3):
        return f"{m.group(3)} of {m.group(2)} CPU cores (pinned with taskset; {m.group(1)}, jax {m.group(4)})"
    return f"{m.group(2)} CPU cores ({m.group(1)}, jax {m.group(4)})"


def ratio_range(rows: list[dict], solver: str, column: str) -> str:
    """``"0.82-0.90x"`` (or ``"0.90x"``): the smallest and largest ``column`` of ``solver``'s rows."""
    values = sorted(r[column] for r in rows if r["solver"] == solver)
    low, high = f"{values[0]:.2f}", f"{values[-1]:.2f}"
    return f"{low}x" if low == high else f"{low}–{high}x"


def replacements() -> dict[str, str]:
    """Every ``@NAME@`` placeholder of the templates and its text."""
    results = ROOT / "benchmarks" / "results"
    opt = json.loads((results / "optimizers.json").read_text())
    runs = json.loads((results / "runs.json").read_text())
    hvp = json.loads((results / "hvp.json").read_text())
    fg = json.loads((results / "forward_gradient.json").read_text())
    so_hvp = json.loads((results / "second_order_hvp.json").read_text())
    so_ncg = json.loads((results / "second_order_newton_cg.json").read_text())
    so_sharp = json.loads((results / "second_order_sharpness.json").read_text())
    curv = json.loads((results / "curvature.json").read_text())
    scale = json.loads((results / "hvp_scale.json").read_text())
    fg_mem = json.loads((results / "forward_gradient_memory.json").read_text())
    race = json.loads((results / "race.json").read_text())
    compile_once = json.loads((results / "compile_once.json").read_text())
    quasi_newton = json.loads((results / "quasi_newton.json").read_text())
    suites = json.loads((results / "suites.json").read_text())
    suites_fn = json.loads((results / "suites_per_function.json").read_text())
    multihost = json.loads((results / "multihost.json").read_text())
    qn_multi = [r for r in quasi_newton["rows"] if r["runs"] > 1]
    qn_big = [r for r in quasi_newton["rows"] if r["runs"] == 1]
    qn_by = {(r["problem"], r["solver"]): r for r in qn_multi}
    qn_big_by = {r["solver"]: r for r in qn_big}
    g3 = lambda v: f"{v:.3g}"
    throughput = [r for r in runs["rows"] if "gradkit run-steps/s" in r]
    big = next(r for r in runs["rows"] if "peak RSS GB" in r)
    slowest = min(suites_fn["rows"], key=lambda r: r["speed-up"])
    fastest = max(suites_fn["rows"], key=lambda r: r["speed-up"])
    ncg = {r["problem"]: r for r in so_ncg["rows"]}
    fresh_numpy = [r["vs numpy loop"] for r in throughput]
    same = [r for r in opt["rows"] if not r["optimizer"].endswith("*")]  # those optax also has
    headline = table([
        {"what": "10⁶ runs × 1000 steps of Adam on Rosenbrock, one `gk.runs.run` call",
         "measured": f"{big['seconds (incl. compile)']:.2f} s including compilation, peak memory {big['peak RSS GB']:.2f} GB"},
        {"what": "`gk.runs.run` with every verdict vs a hand-written `jit(vmap(scan))` optax loop (10³–10⁵ runs)",
         "measured": f"{min(r['vs hand-fused'] for r in throughput):.2f}–{max(r['vs hand-fused'] for r in throughput):.2f}x its speed; "
                     f"{min(fresh_numpy):,.0f}–{max(fresh_numpy):,.0f}x a NumPy loop"},
        {"what": "Newton-CG vs scipy's (`hessp`), Rosenbrock n = 100 / 1000",
         "measured": f"{ncg['Rosenbrock n=100']['speed-up']:.0f}x / {ncg['Rosenbrock n=1000']['speed-up']:.0f}x faster, no more HVPs"},
        {"what": "BBOB campaign (Adam, 24 functions × 15 instances) vs a Python loop",
         "measured": f"{min(r['speed-up'] for r in suites['rows']):.0f}–{max(r['speed-up'] for r in suites['rows']):.0f}x"},
        {"what": f"one update of a {opt['rows'][0]['params']:,}-parameter pytree vs optax's ({len(same)} optimizers)",
         "measured": f"{min(r['ratio'] for r in same):.2f}–{max(r['ratio'] for r in same):.2f}x its time"},
    ], [("what", "what", str), ("measured", "measured", str)])
    race_text = (
        f"`gradkit race` with its defaults ({race['runs']:,} runs; `python benchmarks/race.py`, {race['machine']}): "
        f"two fresh `python -m gradkit race` processes, wall time including Python's start-up and imports, the first "
        f"on an empty persistent compile cache: **{race['seconds']:.0f} s** the first time, **{race['seconds_cached']:.0f} s** "
        f"the second. The ~{race['seconds'] - race['seconds_cached']:.0f} s difference is XLA compiling one program per "
        "optimizer for every group of landscapes with the same dimension, f* and tolerance (the landscape is a traced "
        "`lax.switch` index: 28 programs, not 70), on worker threads, with XLA's quick CPU settings (legacy emitters, "
        "no LLVM optimisation: compiling is most of a race's work, its runs are small); the CLI keeps the programs in "
        "`$XDG_CACHE_HOME/gradkit/jax` "
        "(`~/.cache/gradkit/jax`; `$JAX_COMPILATION_CACHE_DIR` instead when that is set) and a second race loads from "
        "there (the second run still starts Python, traces the programs, loads them, runs the races and draws the "
        "pictures). With XLA's default CPU optimisation (`gradkit race --no-fast-compile`) the same race took "
        f"**{race['seconds_full_compile']:.0f} s** the first time and {race['seconds_cached_full_compile']:.0f} s the "
        "second. Machines of this description differ: on 2026-12-06 an earlier 2-core host had measured 91 s and 51 s "
        "(before the programs were shared and compiled quickly), and its single-core benchmarks ran about half as fast.")
    suites_text = (
        f"A BBOB campaign (Adam, 24 functions × 15 instances, budget 1000·d, the target ladder recorded every "
        f"step; `benchmarks/suites.py`, {suites['machine']}) against the usual Python loop over problems and "
        "steps (one jitted `value_and_grad` + update call per step, targets checked in Python), same work, same "
        "process:\n\n" + table(suites["rows"], [
            ("d", "dimension", str), ("starts / instance", "starts per instance", str), ("runs", "runs", str),
            ("gradkit s", "gradkit s", g3), ("first call s (compiles)", "gradkit first call s (compile)", g3),
            ("Python loop s", "Python loop s (from us/step)", g3), ("speed-up", "speed-up", lambda v: f"{v:.0f}x")])
        + "\n\nA 1000× speed-up is out of reach on this CPU, even with 100 starts per instance: batching removes "
          "the loop's dispatch (~20 µs a step), not the function's own float64 arithmetic, and per run-step that "
          f"arithmetic (plus the loop inside one compiled call) costs 1/{fastest['speed-up']:.0f} to "
          f"1/{slowest['speed-up']:.0f} of a loop step, as measured per function (one start per instance, "
          f"`benchmarks/results/suites_per_function.json`): the speed-up ranges from {slowest['speed-up']:.0f}× "
          f"(f{slowest['function']}, d = {slowest['dimension']}: {slowest['gradkit us/run-step']:.2g} µs per "
          f"run-step inside gradkit against {slowest['loop us/step']:.0f} µs per step of the loop) to "
          f"{fastest['speed-up']:.0f}× (f{fastest['function']}, d = {fastest['dimension']}).")
    return {
        "@T_HEADLINE@": headline,
        "@RACE_TEXT@": race_text,
        "@RACE_MACHINE@": machine_words(race["machine"]),
        "@SUITES_TABLE@": suites_text,
        "@T_COMPILE@": table(compile_once["rows"], [
            ("call", "call", str), ("optimizer", "optimizer", str),
            ("first call s (compile)", "first call s (compile)", g3), ("built once ms", "built once ms", g3),
            ("fresh, same lr ms", "fresh, same lr ms", g3), ("fresh, new lr ms", "fresh, new lr ms", g3),
            ("fresh / built once", "fresh / built once", lambda v: f"{v:.2f}x"),
            ("compiles in timed calls", "compiles while timed", str)]),
        "@COMPILE_WORST@": f"{max(r['fresh / built once'] for r in compile_once['rows']):.2f}",
        "@QN_MACHINE@": machine_words(quasi_newton["machine"]),
        "@QN_LBFGS_SAME@": ratio_range(qn_multi, "gradkit lbfgs", "vs optimistix, same method"),
        "@QN_NCG_SAME@": ratio_range(qn_multi, "gradkit newton_cg", "vs optimistix, same method"),
        "@QN_BFGS_SAME@": ratio_range(qn_multi, "gradkit bfgs", "vs optimistix, same method"),
        **{f"@QN_HIMMELBLAU_{key}_{stat}@": f"{qn_by[('himmelblau 2-D', solver)][column]:g}"
           for key, solver in (("GK", "gradkit bfgs"), ("OPTX", "optimistix BFGS"))
           for stat, column in (("MEDIAN", "median iterations"), ("MAX", "max iterations"))},
        "@QN_BIG_LBFGS@": f"{qn_big_by['gradkit lbfgs']['vs jaxopt LBFGS']:.2f}x",
        "@QN_BIG_NCG@": f"{qn_big_by['gradkit newton_cg']['vs jaxopt LBFGS']:.2f}x",
        "@QN_BIG_LBFGS_IT@": str(qn_big_by["gradkit lbfgs"]["max iterations"]),
        "@QN_BIG_JAXOPT_IT@": str(qn_big_by["jaxopt LBFGS"]["max iterations"]),
        "@T_QN@": table(qn_multi, [
            ("problem", "problem", str), ("solver", "solver", str), ("ms", "ms", g3),
            ("vs optimistix, same method", "vs optimistix, same method", lambda v: f"{v:.2f}x"),
            ("vs optimistix BFGS", "vs optimistix BFGS", lambda v: f"{v:.2f}x"),
            ("median iterations", "median iterations", lambda v: f"{v:g}"),
            ("max iterations", "max iterations", str), ("max final ‖g‖", "max final |g|", lambda v: f"{v:.1e}")]),
        "@T_QN_BIG@": table(qn_big, [
            ("solver", "solver", str), ("ms", "ms", g3), ("vs jaxopt LBFGS", "vs jaxopt LBFGS", lambda v: f"{v:.2f}x"),
            ("iterations", "max iterations", str), ("final ‖g‖", "max final |g|", lambda v: f"{v:.1e}")]),
        "@RACE_RUNS@": f"{race['runs']:,}",
        "@RACE_S@": f"{race['seconds']:.0f}",
        "@RACE_CACHED_S@": f"{race['seconds_cached']:.0f}",
        "@T_CURV@": table(curv["rows"], [
            ("Lanczos steps (warm start)", "lanczos steps (warm start)", str),
            ("train step ms", "train step (ms)", g3), ("one record ms", "one record (ms)", g3),
            ("one HVP / train step", "one HVP (train steps)", lambda v: f"{v:.2f}"),
            ("overhead at every=100", "overhead at every=100 (%)", lambda v: f"{v:.1f} %"),
            ("tracked λ_max", "tracked λ_max", g3), ("converged λ_max", "converged λ_max (100 steps)", g3),
            ("error, last record", "rel. error (%)", lambda v: f"{v:.2g} %"),
            ("worst error, warm records", "max rel. error, warm records (%)", lambda v: f"{v:.2g} %")]),
        "@T_SCALE@": table(scale["rows"], [
            ("what", "what", str), ("per product / grad", "per product / grad", lambda v: f"{v:.2f}"),
            ("peak temp MB", "peak temp MB", g3)]),
        "@SCALE_MACHINE@": scale["machine"],
        "@T_FG_MEM@": table(fg_mem["rows"], [
            ("model", "model", str), ("batch", "batch", str), ("tangents", "tangents", str),
            ("backprop (scan) MB", "backprop (scan) temp MB", g3),
            ("backprop (unrolled) MB", "backprop (unrolled) temp MB", g3),
            ("forward_gradient (jvp) MB", "FG jvp temp MB", g3),
            ("scan_forward_gradient MB", "forward-gradient temp MB", g3), ("floor MB", "floor MB", g3),
            ("vs scan", "ratio vs scan", lambda v: f"{v:.2f}"), ("vs unrolled", "ratio vs unrolled", lambda v: f"{v:.2f}")]),
        "@MACHINE@": opt["machine"],
        "@NPARAMS@": f"{opt['rows'][0]['params']:,}",
        "@T_OPT@": table(opt["rows"], [("optimizer", "optimizer", str), ("gradkit ms", "gradkit ms", g3),
                                       ("optax ms", "optax ms", g3), ("ratio", "ratio", lambda v: f"{v:.2f}")]),
        "@T_RUNS@": table(throughput, [
            ("runs", "runs", lambda v: f"{v:,}"), ("gradkit run-steps/s", "gradkit run-steps/s", g3),
            ("hand-fused jit(vmap(scan)) optax", "hand-fused run-steps/s", g3),
            ("vs hand-fused", "vs hand-fused", lambda v: f"{v:.2f}x"),
            ("fresh optimizer per call", "fresh optimizer per call run-steps/s", g3),
            ("fresh per call vs hand-fused", "fresh per call vs hand-fused", lambda v: f"{v:.2f}x"),
            ("hand-fused, gradkit.optim.adam", "hand-fused gradkit-adam run-steps/s", g3),
            ("vs gradkit-adam loop", "vs hand-fused gradkit-adam", lambda v: f"{v:.2f}x"),
            ("vs optax loop + per-step check", "vs hand-fused + per-step check", lambda v: f"{v:.2f}x"),
            ("seed-style NumPy loop", "numpy loop run-steps/s", g3),
            ("vs NumPy loop", "vs numpy loop", lambda v: f"{v:,.0f}x")]),
        "@BIG_S@": f"{big['seconds (incl. compile)']:.2f}",
        "@BIG_RATE@": f"{big['run-steps/s']:.3g}",
        "@BIG_MEM@": f"{big['peak RSS GB']:.2f}",
        "@T_FG@": table(fg["rows"], [
            ("model", "model", str), ("params", "params", lambda v: f"{v:,}"), ("batch", "batch", str),
            ("tangents", "tangents", str), ("backprop ms", "backprop ms", g3),
            ("forward-gradient ms", "forward-gradient ms", g3), ("time ratio", "time ratio", lambda v: f"{v:.2f}"),
            ("backprop temp MB", "backprop temp MB", g3), ("FG temp MB", "forward-gradient temp MB", g3),
            ("memory ratio", "memory ratio", lambda v: f"{v:.2f}")]),
        "@HVP_N@": f"{hvp['rows'][0]['params']:,}",
        "@T_HVP@": table(hvp["rows"], [("what", "what", str), ("median ms", "median ms", g3),
                                       ("vs raw `jax.jvp(jax.grad(f))`", "vs raw jvp(grad)", lambda v: f"{v:.2f}")]),
        "@T_SO_HVP@": table(so_hvp["rows"], [
            ("model", "model", str), ("what", "what", str), ("median ms", "median ms", g3),
            ("vs raw `jax.jvp(jax.grad(f))`", "vs raw jvp(grad)", lambda v: f"{v:.2f}"),
            ("peak temp MB", "peak temp MB", g3)]),
        "@T_NCG@": table(so_ncg["rows"], [
            ("problem", "problem", str), ("scipy iters", "scipy iters", str), ("scipy HVPs", "scipy HVPs", str),
            ("scipy final grad norm", "scipy grad norm", g3), ("scipy s", "scipy s", g3),
            ("gradkit iters", "gradkit iters", str), ("gradkit HVPs", "gradkit HVPs", str),
            ("gradkit final grad norm", "gradkit grad norm", g3), ("gradkit s", "gradkit s", g3),
            ("speed-up", "speed-up", lambda v: f"{v:.1f}x")]),
        "@MULTIHOST_TABLE@": (f"Measured on {multihost['machine']['cores']} CPU cores; Adam on Rosenbrock, "
                              f"{multihost['rows'][0]['runs']:,} runs x {multihost['rows'][0]['steps']} steps timed "
                              f"(median of 5 after a warm-up), then {multihost['rows'][0]['big runs']:,} runs x "
                              f"{multihost['rows'][0]['big steps']} steps in one call.\n\n" + table(multihost["rows"], [
            ("processes", "processes", str), ("devices", "devices", str), ("process", "process", str),
            ("run-steps/s", "run-steps/s", lambda v: f"{v:.3g}"),
            ("vs 1 process x 2 devices", "vs 1 process x 2 devices", lambda v: f"{v:.2f}x"),
            ("gathered MB per call", "gathered MB per call", lambda v: f"{v:.3g}"),
            ("10^7 runs: s (incl. compile)", "big seconds (incl. compile)", lambda v: f"{v:.3g}"),
            ("10^7 runs: gathered MB", "big gathered MB", lambda v: f"{v:.4g}"),
            ("RunResult bytes per run", "RunResult bytes per run", lambda v: f"{v:.1f}"),
            ("peak RSS GB", "peak RSS GB", lambda v: f"{v:.3g}")])),
        "@T_SHARP@": table(so_sharp["rows"], [("model", "model", str), ("what", "what", str),
                                               ("value", "value", g3), ("median s", "median s", g3)]),
    }


def render(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(key, value)
    left = sorted(set(re.findall(r"@[A-Z][A-Z0-9_]*@", template)))
    if left:
        raise SystemExit(f"placeholders with no value: {left}")
    return template


def docs_index(readme: str) -> str:
    """The README as the site's home page: links into docs/ made relative to it."""
    text = readme.replace("](docs/", "](").replace("](notebooks/)", "](tutorials/index.md)")
    return text.replace("This README is generated:", "This page is the README, generated:")


def pages() -> dict[Path, str]:
    """Each generated file and its content."""
    values = replacements()
    docs = ROOT / "docs"
    readme = render((docs / "README.template.md").read_text(), values)
    return {ROOT / "README.md": readme, docs / "index.md": docs_index(readme),
            docs / "benchmarks.md": render((docs / "benchmarks.template.md").read_text(), values),
            docs / "multihost.md": render((docs / "multihost.template.md").read_text(), values)}


def main(argv: list[str]) -> int:
    stale = []
    for path, text in pages().items():
        if path.exists() and path.read_text() == text:
            continue
        if "--check" in argv:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
            print("wrote", path)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python docs/build_readme.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

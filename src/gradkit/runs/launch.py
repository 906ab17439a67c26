"""Rehearse a multi-host job on one machine: ``python -m gradkit.runs.launch -n 2 -d 2 script.py``.

Starts ``n`` processes of ``script.py``, each with ``d`` CPU devices, joined by a coordinator on a
free loopback port (the standard rehearsal of a ``jax.distributed`` job).  The script calls
:func:`gradkit.runs.multihost.initialize` first, which on a real cluster is
``jax.distributed.initialize()``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

from gradkit.runs.multihost import ENV_COUNT, ENV_ID


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_device_count(xla_flags: str, count: int) -> str:
    """``xla_flags`` (an ``XLA_FLAGS`` string) with ``--xla_force_host_platform_device_count=count``,
    replacing any device count already there and keeping every other flag."""
    kept = [flag for flag in xla_flags.split() if not flag.startswith("--xla_force_host_platform_device_count")]
    return " ".join([*kept, f"--xla_force_host_platform_device_count={count}"])


def launch_local(argv: Sequence[str], processes: int = 2, local_devices: int = 2, timeout: float = 600.0,
                 env: Mapping[str, str] | None = None) -> list[subprocess.CompletedProcess]:
    """Rehearse a multi-host job on one machine: ``processes`` copies of ``python argv...``, each
    with ``local_devices`` CPU devices, joined through a coordinator on a free loopback port.

    The processes inherit ``os.environ`` updated with ``env``; their ``XLA_FLAGS`` keeps every flag
    there and sets ``--xla_force_host_platform_device_count=local_devices`` (:func:`with_device_count`).
    The script calls :func:`initialize` first.  Returns every process's completed process
    (stdout and stderr captured as text).  All are killed when one fails or ``timeout`` seconds
    pass (a process waiting on a dead peer would otherwise hang): then ``RuntimeError`` carries
    each process's last output lines.
    """
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be a positive int, got {processes!r}")
    if isinstance(local_devices, bool) or not isinstance(local_devices, int) or local_devices < 1:
        raise ValueError(f"local_devices must be a positive int, got {local_devices!r}")
    base = {**os.environ, **(env or {}), "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": with_device_count({**os.environ, **(env or {})}.get("XLA_FLAGS", ""), local_devices),
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{_free_port()}", ENV_COUNT: str(processes)}
    logs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in range(processes)]
    procs = [subprocess.Popen([sys.executable, *argv], env={**base, ENV_ID: str(i)}, stdout=out, stderr=err,
                              text=True) for i, (out, err) in enumerate(logs)]
    deadline = time.monotonic() + timeout
    try:  # files, not pipes: a chatty process never blocks on a full pipe
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in procs]
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break
            time.sleep(0.05)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    outputs = []
    for out, err in logs:
        out.seek(0), err.seek(0)
        outputs.append((out.read(), err.read()))
        out.close(), err.close()
    done = [subprocess.CompletedProcess(proc.args, proc.returncode, *outputs[i]) for i, proc in enumerate(procs)]
    if any(p.returncode != 0 for p in done):
        why = "timed out" if time.monotonic() >= deadline else "failed"
        tails = "\n".join(f"--- process {i} (exit {p.returncode}):\n" + "\n".join(p.stderr.splitlines()[-15:])
                          for i, p in enumerate(done))
        raise RuntimeError(f"launch_local: the {processes}-process job {why}\n{tails}")
    return done


def main(args: Sequence[str] | None = None) -> int:
    """``python -m gradkit.runs.launch [-n PROCESSES] [-d DEVICES] script.py [args...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gradkit.runs.launch",
                                     description="Run a script as a local multi-process JAX job (CPU devices).")
    parser.add_argument("-n", "--processes", type=int, default=2)
    parser.add_argument("-d", "--devices", type=int, default=2, help="CPU devices per process")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="the script and its arguments")
    ns = parser.parse_args(args)
    if not ns.argv:
        print("error: give the script to run, e.g. python -m gradkit.runs.launch -n 2 -d 2 sweep.py", file=sys.stderr)
        return 2
    try:
        done = launch_local(ns.argv, ns.processes, ns.devices, ns.timeout)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # the job's own tracebacks follow the one-line verdict
        print(f"error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(done[0].stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

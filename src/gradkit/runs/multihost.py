"""The runner on JAX's multi-controller runtime (``jax.distributed``): checks, placement, gathering.

After ``jax.distributed.initialize()`` every process runs the same Python program and
``jax.devices()`` lists the devices of every process.  :func:`gradkit.runs.run_batch` then

1. checks that every process passes the same arguments (:func:`check_same_on_every_process`:
   one all-gather of a 16-byte digest per argument, so a mismatch is an error, never a hang);
2. splits the run axis over every device of every process (``shard_map``: each device runs the
   one-device program on its block of runs, so results are bit-identical to one process);
3. gathers the per-run results (:func:`gather`, an all-gather) to every process, or keeps them
   on the one chosen with ``gather_to``; the others then get ``None``.

Arguments may be host values (NumPy / JAX arrays on a local device, the same on every process:
built from the same seed or grid) or global ``jax.Array`` s spanning the processes (e.g. from
``jax.make_array_from_process_local_data``); the latter are consistent by construction.
"""

from __future__ import annotations

import functools
import hashlib
import types
import os
from typing import Any
from collections.abc import Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding

PyTree = Any

_DIGEST_WORDS = 4  # 16 bytes of blake2b per argument


def is_multiprocess() -> bool:
    """``jax.process_count() > 1``: running under ``jax.distributed`` with more than one process."""
    return jax.process_count() > 1


def is_main_process() -> bool:
    """``jax.process_index() == 0``: the process that prints, shows progress bars and writes files."""
    return jax.process_index() == 0


def main_process_only(echo: Any) -> Any:
    """``echo`` on process 0, a function printing nothing on the others (one copy of every line)."""
    return echo if is_main_process() else (lambda *args, **kwargs: None)


def is_global(leaf: Any) -> bool:
    """A ``jax.Array`` with shards on another process's devices (not fully addressable here)."""
    return isinstance(leaf, jax.Array) and not leaf.is_fully_addressable


def global_arrays_in_closure(fn: Any) -> list[str]:
    """Names of the global (multi-process) arrays ``fn`` closes over: closure cells, default
    arguments, ``functools.partial`` arguments, the module-level names it reads (followed into the
    functions they name, four levels deep).  JAX cannot embed such an array as a constant of
    a compiled function; it must be passed as an argument."""
    found: list[str] = []
    seen: set[int] = set()

    def visit(obj: Any, label: str, depth: int) -> None:
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        if isinstance(obj, functools.partial):
            for i, arg in enumerate(obj.args):
                visit(arg, f"{label} partial argument {i}", depth + 1)
            for key, arg in obj.keywords.items():
                visit(arg, f"{label} partial argument {key!r}", depth + 1)
            visit(obj.func, label, depth + 1)
            return
        if callable(obj) and hasattr(obj, "__code__"):
            names = obj.__code__.co_freevars
            for name, cell in zip(names, obj.__closure__ or ()):
                try:
                    visit(cell.cell_contents, name, depth + 1)
                except ValueError:  # an empty cell
                    continue
            for i, default in enumerate(obj.__defaults__ or ()):
                visit(default, f"default argument {i}", depth + 1)
            module_globals = getattr(obj, "__globals__", {})
            for name in obj.__code__.co_names:  # the module-level names it reads
                if name in module_globals and not isinstance(module_globals[name], types.ModuleType):
                    visit(module_globals[name], f"the global {name!r}", depth + 1)
            return
        if not isinstance(obj, type) and any(is_global(leaf) for leaf in jax.tree.leaves(obj)):
            found.append(label)

    visit(fn, getattr(fn, "__name__", "fn"), 0)
    return found


def check_no_global_closure(fn: Any, where: str, arg: str, fix: str) -> None:
    """``ValueError`` when ``fn`` closes over a global array (see :func:`global_arrays_in_closure`)."""
    if not is_multiprocess():
        return
    names = global_arrays_in_closure(fn)
    if names:
        raise ValueError(f"{where}: {arg} closes over {', '.join(names)}, a jax.Array spanning other processes' "
                         f"devices; JAX cannot embed it in a compiled function. Pass it as an argument: {fix}")


def _digest(tree: PyTree) -> np.ndarray:
    """16 bytes (as 4 int32) fingerprinting a host pytree: its structure, dtypes, weak types,
    shapes and every value; global leaves contribute only their shape and dtype."""
    h = hashlib.blake2b(digest_size=4 * _DIGEST_WORDS)
    leaves, treedef = jax.tree.flatten(tree)
    h.update(str(treedef).encode())
    for leaf in leaves:
        if leaf is None or isinstance(leaf, (bool, int, float, complex, str)):
            h.update(repr((type(leaf).__name__, leaf)).encode())
            continue
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        h.update(repr((np.shape(leaf), str(dtype), bool(getattr(leaf, "weak_type", False)))).encode())
        if not is_global(leaf):
            h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return np.frombuffer(h.digest(), dtype=np.int32).copy()


def check_same_on_every_process(arguments: Mapping[str, PyTree], where: str) -> None:
    """Raise ``ValueError`` naming every argument whose value differs between processes.

    One ``process_allgather`` of a fixed-size digest per argument (the same collective on every
    process whatever the arguments' shapes, so a mismatch cannot deadlock).  A no-op on one process.
    """
    if not is_multiprocess():
        return
    names = list(arguments)
    mine = np.stack([_digest(arguments[name]) for name in names])
    every = np.asarray(multihost_utils.process_allgather(mine))  # (processes, arguments, words)
    differing = [name for i, name in enumerate(names) if not np.all(every[:, i] == every[0, i])]
    if differing:
        which = ", ".join(differing)
        raise ValueError(
            f"{where}: {which} differ between the {jax.process_count()} processes (process "
            f"{int(np.argmax(np.any(every != every[0], axis=(1, 2))))} passes other values than process 0). "
            f"Under jax.distributed every process must "
            f"pass the same {which}: build them identically on every process (same seed, same grid), or pass a "
            f"global jax.Array (jax.make_array_from_process_local_data)")


def to_host(tree: PyTree) -> PyTree:
    """Every global leaf fetched whole onto this process (``process_allgather``); others unchanged."""
    return jax.tree.map(lambda leaf: np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
                        if is_global(leaf) else leaf, tree)


def to_mesh(tree: PyTree, sharding: NamedSharding) -> PyTree:
    """Leaves committed to a local device moved onto ``sharding`` (a replicated global sharding):
    ``jit`` refuses a multi-process mesh mixed with one local device.  NumPy leaves, Python
    numbers and global arrays pass unchanged; ``device_put`` keeps the weak type."""

    def place(leaf: Any) -> Any:
        if isinstance(leaf, jax.Array) and not is_global(leaf) and leaf.committed:
            return jax.device_put(leaf, sharding)
        return leaf

    return jax.tree.map(place, tree)


def gather(tree: PyTree, to: int | None = None) -> PyTree | None:
    """The global arrays of ``tree`` as NumPy arrays on every process (``to=None``), or kept on
    process ``to`` only (the others return ``None`` and free their copy at once).  Either way one
    all-gather moves the data: every process receives the ``(P - 1) / P`` of it held elsewhere
    (JAX's multi-controller collectives span every process; a one-process gather would need
    point-to-point transfers outside ``jit``)."""
    gathered = jax.tree.map(lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)), tree)
    local = sum(shard.data.nbytes for a in jax.tree.leaves(tree) for shard in a.addressable_shards)
    _GATHERED[0] += sum(a.nbytes for a in jax.tree.leaves(gathered)) - local
    return gathered if to is None or jax.process_index() == to else None


_GATHERED = [0]


def gathered_bytes(reset: bool = False) -> int:
    """Bytes this process has received from the others through :func:`gather` (the results of
    runs computed elsewhere); ``reset`` sets the count back to zero."""
    count = _GATHERED[0]
    if reset:
        _GATHERED[0] = 0
    return count


def check_gather_to(gather_to: Any) -> int | None:
    """``None`` (every process) or a valid process index."""
    if gather_to is None:
        return None
    if isinstance(gather_to, bool) or not isinstance(gather_to, (int, np.integer)) or not (
            0 <= gather_to < jax.process_count()):
        raise ValueError(f"gather_to must be None (every process) or a process index in "
                         f"[0, {jax.process_count()}), got {gather_to!r}")
    return int(gather_to)


ENV_ID, ENV_COUNT = "GRADKIT_PROCESS_ID", "GRADKIT_NUM_PROCESSES"  # set by gradkit.runs.launch


def initialize() -> None:
    """``jax.distributed.initialize`` for a script that runs both on a cluster and in a local rehearsal.

    Under :func:`gradkit.runs.launch.launch_local` (``python -m gradkit.runs.launch``) it joins the local job from
    the environment the launcher set (coordinator on the loopback address, CPU collectives by
    gloo); elsewhere it is ``jax.distributed.initialize()``, which detects SLURM, Open MPI,
    Kubernetes and Cloud TPU by itself.  Call it first, before any other JAX call.
    """
    if ENV_ID in os.environ:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(os.environ["JAX_COORDINATOR_ADDRESS"], num_processes=int(os.environ[ENV_COUNT]),
                                   process_id=int(os.environ[ENV_ID]))
    else:
        jax.distributed.initialize()

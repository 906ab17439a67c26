"""pytest plugin for tests/test_optax_conformance.py: runs optax's own test files with optax's
optimizers swapped for gradkit's.

Loaded in a subprocess with ``-p gradkit_swap_plugin``.  It replaces ``optax._src.alias.<name>``
(what optax's test files call), ``optax.<name>``, ``optax.contrib._sam.sam`` and
``optax.contrib.sam`` by recording wrappers around gradkit's optimizers, deselects the tests
of optimizers gradkit does not have (listed with the reason in the report), and writes a JSON
report (``GRADKIT_CONFORMANCE_REPORT``): every test's outcome, the gradkit optimizers each test
called, and the deselected tests.  ``GRADKIT_CONFORMANCE_BREAK=<name>`` swaps in a deliberately
wrong gradkit ``<name>`` (its update sign flipped), to prove the swap is real.
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any

import jax
import optax
import optax.contrib
import pytest
from optax._src import alias
from optax.contrib import _sam

from gradkit import optim

SWAPPED = ("sgd", "adagrad", "rmsprop", "adam", "adamax", "nadam", "adabelief", "amsgrad", "lion", "adamw")
"""optax aliases gradkit provides under the same name and signature; plus contrib ``sam``."""

# names optax's test parameters use for gradkit optimizers ('sgd_mom': sgd with momentum)
_COVERED_PARAM_NAMES = set(SWAPPED) | {"sgd_mom", "sam"}
_OPT_NAME = re.compile(r"\b(?:opt_name|base_opt_name|adv_opt_name)='(\w+)'")

_current: list[str] = [""]
_calls: dict[str, set[str]] = {}
_outcomes: dict[str, str] = {}
_deselected: dict[str, str] = {}


def _recording(name: str, factory: Any) -> Any:
    """``factory`` whose optimizers record, under the running test, every call of their ``init``
    or ``update`` (and their construction inside a test): what "the test called gradkit's
    optimizer" means in the report.  Module-level optimizers (built at import) are recorded by
    the tests that use them."""

    def record() -> None:
        if _current[0]:
            _calls.setdefault(_current[0], set()).add(name)

    @functools.wraps(factory)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        record()
        opt = factory(*args, **kwargs)

        def init(params: Any) -> Any:
            record()
            return opt.init(params)

        def update(*a: Any, **kw: Any) -> Any:
            record()
            return opt.update(*a, **kw)

        return type(opt)(init, update)

    return wrapped


def _broken(factory: Any) -> Any:
    """The same optimizer with the sign of its update flipped (ascends instead of descending)."""

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Any:
        inner = factory(*args, **kwargs)

        def update(updates: Any, state: Any, params: Any = None, **extra: Any) -> Any:
            u, s = inner.update(updates, state, params, **extra)
            return jax.tree.map(lambda x: -x, u), s

        return optax.GradientTransformationExtraArgs(inner.init, update)

    return make


def _install() -> None:
    broken = os.environ.get("GRADKIT_CONFORMANCE_BREAK", "")
    for name in (*SWAPPED, "sam"):
        factory = getattr(optim, name)
        if name == broken:
            factory = _broken(factory)
        wrapped = _recording(name, factory)
        if name == "sam":
            _sam.sam = wrapped
            optax.contrib.sam = wrapped
        else:
            setattr(alias, name, wrapped)
            setattr(optax, name, wrapped)


_install()


def _exclusion(item: pytest.Item) -> str | None:
    """Why ``item`` is not run, or None: only tests of optimizers gradkit does not have."""
    names = set(_OPT_NAME.findall(getattr(getattr(item, "obj", None), "__x_params_repr__", "") or ""))
    if item.cls is not None and item.cls.__name__ == "LBFGSTest":
        return "optax.lbfgs: gradkit has no lbfgs alias"
    if item.name.endswith("_lbfgs") and "sharding" in item.nodeid:
        return "optax.lbfgs (not swapped: gradkit has no lbfgs alias) fails optax's own sharding-in-types test under jax 0.10"
    if names and not names <= _COVERED_PARAM_NAMES:
        return f"optimizer(s) gradkit does not have: {sorted(names - _COVERED_PARAM_NAMES)}"
    broken = os.environ.get("GRADKIT_CONFORMANCE_BREAK", "")
    if broken and broken not in names:
        return f"the job runs only the tests of the deliberately broken {broken!r}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        reason = _exclusion(item)
        if reason is None:
            keep.append(item)
        else:
            _deselected[item.nodeid] = reason
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_runtest_setup(item: pytest.Item) -> None:
    _current[0] = item.nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    nodeid = report.nodeid
    if report.failed:
        _outcomes[nodeid] = "failed"
    elif report.skipped and _outcomes.get(nodeid) != "failed":
        _outcomes[nodeid] = "skipped"
    elif report.when == "call" and nodeid not in _outcomes:
        _outcomes[nodeid] = "passed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("GRADKIT_CONFORMANCE_REPORT")
    if not path:
        return
    params = {}
    for item in session.items:
        params[item.nodeid] = getattr(getattr(item, "obj", None), "__x_params_repr__", "") or ""
    with open(path, "w") as f:
        json.dump({"outcomes": _outcomes, "calls": {k: sorted(v) for k, v in _calls.items()},
                   "deselected": _deselected, "params": params, "exitstatus": int(exitstatus)}, f)

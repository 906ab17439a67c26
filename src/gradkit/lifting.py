"""Cache compiled programs by what an object computes, not by which object it is.

``gk.runs.run(f, gk.optim.adam(lr), ...)`` in a loop over learning rates builds a new
optimizer every call: a ``GradientTransformation`` is a pair of closures, new objects each
time, so a cache keyed by identity compiles again for every call.  :func:`lift` splits an
object into

- a :class:`Spec`, hashable, equal for two objects that compute the same thing once their
  numeric values are supplied: the code objects of every function it reaches, the structure
  of its closures, containers, pytrees and dataclasses, and every non-numeric value in them
  (strings, ints, bools, dtypes, ``None``, ...);
- its *leaves*: the numbers and arrays lifted out of it, to be passed to ``jax.jit`` as
  arguments, so a new learning rate is new data for the same executable.

``spec.rebuild(leaves)`` (inside the traced function) builds an equivalent object from the
traced leaves: new functions with the same code over new closure cells, the same containers.
What is lifted:

- arrays (NumPy, JAX, tracers) always, keyed by shape, dtype and weak type;
- float scalars (Python ``float``, NumPy floating scalars) when ``floats=True`` -- the policy for
  optimizers, whose closures hold the hyperparameters a user sweeps.  A Python float goes in as
  a weakly typed scalar, so ``lr * g`` keeps ``g``'s dtype exactly as the constant did; in
  float32 arithmetic done on the hyperparameters themselves (``1 - b1``) now rounds in float32
  rather than in Python's float64, a last-bit difference (as with ``optax.inject_hyperparams``);
  in float64 the two agree.  With ``floats=False`` (the policy for objectives) floats are keyed
  by value, so a fresh ``lambda x: a * x @ x`` with the same ``a`` still hits the cache.

Ints, bools, strings and other hashable values are keyed by value (an int may be a shape or a
loop count).  The module globals a function reads are part of its key as they are at the call
(numbers and strings by value, anything else by identity), since the traced program reads them:
a rebound global compiles again instead of reusing a program traced with the old value.
Function defaults are keyed by value too (they are declaration-time constants).
An object that cannot be compared by value (a plain class instance without ``__eq__``, an
unhashable object that is not a container, array, function, dataclass or pytree) is keyed by
identity and kept alive by the cache, so its ``id`` cannot be reused: never a wrong reuse, only a
cache miss.  :func:`note_compile` warns once when a compile happened *only* because of such an
object (the same structure was compiled before with another instance), naming its type.

If tracing with lifted floats fails because the code branches on a hyperparameter in Python
(``if b1 > 0: ...``, a JAX concretization error), :func:`lift_with_fallback` callers retry with
``floats=False`` and remember it for that structure: identical hyperparameters then share the
program, different ones compile.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import warnings
from typing import Any
from collections.abc import Callable, Hashable, Sequence

import jax
import numpy as np

__all__ = ["Spec", "Uncompared", "lift", "note_compile", "TRACER_ERRORS", "lift_optimizer", "mark_static_only",
           "call_with_fallback"]

TRACER_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                 jax.errors.TracerIntegerConversionError, jax.errors.TracerArrayConversionError)
"""The errors raised when Python code needs the concrete value of a lifted (traced) number."""


class _Identity:
    """A key part equal only to itself; holds the object, so its ``id`` stays taken."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj

    def __repr__(self) -> str:
        return f"<identity of {type(self.obj).__name__} at {id(self.obj):#x}>"


class Uncompared:
    """A key part that never affects the key (always equal): what a rebuild copies as is, or the
    object a cache entry's key was made from."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Uncompared)


# objects that are stable singletons (modules, classes, builtins): keyed by identity, never warned about
_STABLE = (types.ModuleType, type, types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType,
           types.MethodDescriptorType, np.ufunc)
_VALUE_TYPES = (type(None), bool, int, str, bytes, complex, type(Ellipsis), np.dtype)


def _default_hash(obj: Any) -> bool:
    """Whether ``obj`` is hashed by identity (``object.__hash__``), or not hashable at all."""
    h = type(obj).__hash__
    return h is None or h is object.__hash__


def _is_registered_node(obj: Any) -> bool:
    """``obj`` is a pytree node with children (not a leaf) for ``jax.tree``."""
    leaves = jax.tree.leaves(obj, is_leaf=lambda x: x is not obj)
    return not (len(leaves) == 1 and leaves[0] is obj)


class _Cycle(Exception):
    """A container that contains itself: lifted whole, by identity."""


class _Lifter:
    """One walk over an object: the plan (a hashable nested tuple), the leaves, the
    identity-keyed objects."""

    def __init__(self, floats: bool) -> None:
        self.floats = floats
        self.leaves: list[Any] = []
        self.memo: dict[int, int] = {}  # id(object) -> its node number (shared cells/functions)
        self.keep: list[Any] = []  # keeps memoized objects alive during the walk (ids stay unique)
        self.identities: list[Any] = []
        self.cells: list[int] = []  # node numbers of closure cells (created first on rebuild)
        self.open: set[int] = set()  # containers being walked (a reference back to one is a cycle)
        self.count = 0

    def leaf(self, value: Any, kind: Hashable) -> tuple:
        self.leaves.append(value)
        return ("leaf", kind)

    def identity(self, obj: Any, warn: bool = True) -> tuple:
        if warn:
            self.identities.append(obj)
        return ("id", _Identity(obj))

    def walk(self, obj: Any, floats: bool | None = None) -> tuple:
        floats = self.floats if floats is None else floats
        if isinstance(obj, bool) or isinstance(obj, _VALUE_TYPES):
            return ("v", type(obj), obj)
        if isinstance(obj, float):
            if floats:
                return self.leaf(obj, "float")
            return ("float", type(obj), obj.hex())
        if isinstance(obj, np.generic):
            if floats and np.issubdtype(obj.dtype, np.floating):
                return self.leaf(obj, ("np", obj.dtype.str))
            return ("np", obj.dtype.str, obj.tobytes())
        if isinstance(obj, (np.ndarray, jax.Array)):
            if isinstance(obj, np.ndarray) and obj.dtype == object:
                return self.identity(obj)
            aval = jax.typeof(obj)
            return self.leaf(obj, ("array", tuple(aval.shape), str(aval.dtype), bool(getattr(aval, "weak_type", False))))
        key = id(obj)
        if key in self.memo:
            if self.memo[key] in self.open:
                raise _Cycle
            return ("ref", self.memo[key])
        if isinstance(obj, types.FunctionType):
            return self.function(obj)
        if isinstance(obj, types.CellType):
            return self.cell(obj, floats)
        number = self.remember(obj)
        self.open.add(number)
        try:
            return self.container(obj, number, floats)
        finally:
            self.open.discard(number)

    def container(self, obj: Any, number: int, floats: bool) -> tuple:
        """Containers, pytrees, dataclasses, partials, methods; else keyed by value or identity."""
        if type(obj) is tuple:
            return ("tuple", number, tuple(self.walk(x, floats) for x in obj))
        if type(obj) is list:
            return ("list", number, tuple(self.walk(x, floats) for x in obj))
        if type(obj) is dict:
            return ("dict", number, tuple((self.walk(k, False), self.walk(v, floats)) for k, v in obj.items()))
        if isinstance(obj, tuple) and hasattr(type(obj), "_fields") and hasattr(type(obj), "_make"):
            return ("namedtuple", number, type(obj), tuple(self.walk(x, floats) for x in obj))
        if isinstance(obj, functools.partial):
            return ("partial", number, type(obj), self.walk(obj.func, floats), self.walk(obj.args, floats),
                    self.walk(obj.keywords, floats))
        if isinstance(obj, types.MethodType):
            return ("method", number, self.walk(obj.__func__, floats), self.walk(obj.__self__, floats))
        if isinstance(obj, _STABLE):
            return self.identity(obj, warn=False)
        if _is_registered_node(obj):
            children, treedef = jax.tree.flatten(obj, is_leaf=lambda x: x is not obj)
            return ("pytree", number, treedef, tuple(self.walk(c, floats) for c in children))
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and self.plain_dataclass(obj):
            fields = tuple(f.name for f in dataclasses.fields(obj))
            return ("dataclass", number, type(obj), fields, tuple(self.walk(getattr(obj, f), floats) for f in fields))
        if not _default_hash(obj):
            try:
                hash(obj)
                return ("h", type(obj), obj)
            except TypeError:
                pass
        return self.identity(obj, warn=not callable(obj) or not hasattr(obj, "__module__")
                             or not _is_module_level(obj))

    @staticmethod
    def plain_dataclass(obj: Any) -> bool:
        """Every attribute of ``obj`` is a dataclass field (so a rebuild from the fields is whole)."""
        names = {f.name for f in dataclasses.fields(obj)}
        return set(getattr(obj, "__dict__", {})) <= names

    def remember(self, obj: Any) -> int:
        number = self.count
        self.count += 1
        self.memo[id(obj)] = number
        self.keep.append(obj)
        return number

    def function(self, fn: types.FunctionType) -> tuple:
        number = self.remember(fn)
        defaults = self.walk(fn.__defaults__, False) if fn.__defaults__ else None
        kwdefaults = self.walk(fn.__kwdefaults__, False) if fn.__kwdefaults__ else None
        closure = tuple(self.walk(c) for c in fn.__closure__ or ())
        return ("fn", number, fn.__code__, _Identity(fn.__globals__), _globals_key(fn), defaults, kwdefaults, closure,
                Uncompared(fn))

    def cell(self, cell: types.CellType, floats: bool) -> tuple:
        number = self.remember(cell)
        self.cells.append(number)
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell (a variable not yet assigned)
            return ("cell", number, None)
        return ("cell", number, self.walk(contents, floats))


@functools.lru_cache(maxsize=4096)
def _global_names(code: types.CodeType) -> tuple[str, ...]:
    """Every name ``code`` (and the functions defined inside it) may read as a global."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(_global_names(const))
    return tuple(sorted(names))


def _globals_key(fn: types.FunctionType) -> tuple:
    """The module globals ``fn`` reads, as they are now: numbers, strings and other hashable
    values by value, everything else (functions, modules, arrays) by identity.  A program is
    traced reading the live globals, so a global rebound between two calls (a notebook's
    ``LR = 0.01``, a redefined ``loss``) must give another key -- never a wrong reuse."""
    namespace = fn.__globals__
    key = []
    for name in _global_names(fn.__code__):
        if name not in namespace:
            continue  # a builtin, or an attribute name
        value = namespace[name]
        if isinstance(value, (bool, int, float, complex, str, bytes, type(None))):
            key.append((name, type(value), value if not isinstance(value, float) else value.hex()))
        else:
            key.append((name, _Identity(value)))
    return tuple(key)


def _is_module_level(obj: Any) -> bool:
    """A callable reachable as ``module.qualname`` (a stable, importable object)."""
    import sys

    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    target: Any = module
    for part in (getattr(obj, "__qualname__", None) or "<none>").split("."):
        target = getattr(target, part, None)
    return target is obj


class _Rebuilder:
    """Interprets a plan with new leaves."""

    def __init__(self, leaves: Sequence[Any], cells: Sequence[int]) -> None:
        self.leaves = iter(leaves)
        self.built: dict[int, Any] = {number: types.CellType() for number in cells}

    def build(self, node: tuple) -> Any:
        kind = node[0]
        if kind == "v" or kind == "h":
            return node[2]
        if kind == "float":
            return node[1].fromhex(node[2]) if node[1] is float else node[1](float.fromhex(node[2]))
        if kind == "np":
            return np.frombuffer(node[2], dtype=np.dtype(node[1]))[0]
        if kind == "leaf":
            return next(self.leaves)
        if kind == "id":
            return node[1].obj
        if kind == "ref":
            return self.built[node[1]]
        number = node[1]
        if kind == "cell":  # created up front (a closure may refer to it first); filled here
            cell = self.built[number]
            if node[2] is not None:
                cell.cell_contents = self.build(node[2])
            return cell
        if kind == "fn":
            # the function exists before its closure cells are filled: a cell may refer back to it
            _, _, code, globals_, _, defaults, kwdefaults, closure, original = node
            fn = original.obj
            new_defaults = self.build(defaults) if defaults is not None else None
            new_kwdefaults = self.build(kwdefaults) if kwdefaults is not None else None
            cells = tuple(self.built[c[1]] for c in closure) if closure else None
            new = types.FunctionType(code, globals_.obj, fn.__name__, new_defaults, cells)
            new.__kwdefaults__ = new_kwdefaults
            new.__dict__.update(fn.__dict__)
            new.__qualname__, new.__module__, new.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
            self.built[number] = new
            for c in closure:
                if c[0] == "cell":
                    self.build(c)
            return new
        if kind in ("tuple", "list"):
            out = tuple(self.build(c) for c in node[2])
            out = out if kind == "tuple" else list(out)
        elif kind == "dict":
            out = {self.build(k): self.build(v) for k, v in node[2]}
        elif kind == "namedtuple":
            out = node[2]._make(self.build(c) for c in node[3])
        elif kind == "partial":
            out = node[2](self.build(node[3]), *self.build(node[4]), **self.build(node[5]))
        elif kind == "method":
            out = types.MethodType(self.build(node[2]), self.build(node[3]))
        elif kind == "pytree":
            out = jax.tree.unflatten(node[2], [self.build(c) for c in node[3]])
        elif kind == "dataclass":
            cls, names, children = node[2], node[3], node[4]
            out = object.__new__(cls)
            for name, child in zip(names, children):
                object.__setattr__(out, name, self.build(child))
        else:  # pragma: no cover - every plan kind is handled above
            raise AssertionError(f"unknown plan node {kind!r}")
        self.built[number] = out
        return out


def _erase_identities(node: Any) -> Any:
    """The plan with every identity-keyed object replaced by its type name (the warning's key)."""
    if isinstance(node, _Identity):
        return ("identity", type(node.obj).__qualname__)
    if isinstance(node, tuple):
        return tuple(_erase_identities(x) for x in node)
    return node


@dataclasses.dataclass(frozen=True, eq=False)
class Spec:
    """What an object computes with its lifted leaves removed (see the module doc).  Equal
    specs, given the same leaves, rebuild objects that compute the same thing."""

    plan: tuple
    identities: tuple[str, ...]
    num_leaves: int
    floats: bool
    cells: tuple[int, ...]
    _hash: int = dataclasses.field(repr=False)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Spec) and self._hash == other._hash and self.floats == other.floats
                                 and self.plan == other.plan)

    def rebuild(self, leaves: Sequence[Any]) -> Any:
        """An object equivalent to the lifted one, with ``leaves`` in place of its numbers/arrays."""
        leaves = tuple(leaves)
        if len(leaves) != self.num_leaves:
            raise ValueError(f"Spec.rebuild: expected {self.num_leaves} leaves, got {len(leaves)}")
        return _Rebuilder(leaves, self.cells).build(self.plan)

    @functools.cached_property
    def shape(self) -> tuple:
        """The plan with identity-keyed objects erased to their type names."""
        return _erase_identities(self.plan)


def lift(obj: Any, *, floats: bool = True) -> tuple[Spec, tuple[Any, ...]]:
    """Split ``obj`` into a hashable :class:`Spec` and the tuple of numbers/arrays lifted out of
    it (see the module doc): ``spec.rebuild(leaves)`` is equivalent to ``obj``.  ``floats``:
    lift float scalars too (optimizers) or key them by value (objectives)."""
    lifter = _Lifter(floats)
    try:
        plan = lifter.walk(obj)
    except _Cycle:
        lifter = _Lifter(floats)
        plan = lifter.identity(obj)
    names = tuple(dict.fromkeys(type(o).__qualname__ for o in lifter.identities))
    spec = Spec(plan, names, len(lifter.leaves), floats, tuple(lifter.cells), hash(plan))
    # one object per distinct spec: caches keyed by it then compare by identity (no deep ==)
    canonical = _INTERNED.setdefault(spec, spec)
    if len(_INTERNED) > _MAX_INTERNED:
        _INTERNED.clear()
    return canonical, tuple(lifter.leaves)


_INTERNED: dict[Spec, Spec] = {}
_MAX_INTERNED = 4096


_STATIC_ONLY: set[Spec] = set()


def lift_optimizer(obj: Any) -> tuple[Spec, tuple[Any, ...]]:
    """:func:`lift` with floats lifted, unless this structure was seen to branch on one in
    Python (:func:`mark_static_only`): then floats are keyed by value."""
    spec, leaves = lift(obj, floats=True)
    if spec in _STATIC_ONLY:
        return lift(obj, floats=False)
    return spec, leaves


def mark_static_only(spec: Spec, obj: Any) -> tuple[Spec, tuple[Any, ...]] | None:
    """After a tracer error with ``spec`` (floats lifted): remember that this structure needs its
    floats static, and return the static lift of ``obj`` -- or ``None`` when nothing was lifted
    as a float (the error is the user's, not the lifting's)."""
    static_spec, static_leaves = lift(obj, floats=False)
    if not spec.floats or static_spec.num_leaves == spec.num_leaves:
        return None
    _STATIC_ONLY.add(spec)
    return static_spec, static_leaves


_SEEN_SHAPES: dict[tuple[str, tuple], None] = {}
_WARNED: set[tuple[str, tuple[str, ...]]] = set()


def note_compile(where: str, *specs: Spec) -> None:
    """Call when ``where`` builds a new program for ``specs``: warns once (per place and types)
    when the same structure was built before and only identity-keyed objects differ."""
    shape = tuple(s.shape for s in specs)
    key = (where, shape)
    names = tuple(dict.fromkeys(n for s in specs for n in s.identities))
    if key in _SEEN_SHAPES and names and (where, names) not in _WARNED:
        _WARNED.add((where, names))
        warnings.warn(
            f"{where}: compiling again because the optimizer/objective closes over "
            f"{', '.join(repr(n) for n in names)} object(s) that can only be compared by identity, and a new "
            "one was passed; build such objects once outside the loop (or make them hashable by value) "
            "to reuse the compiled program", RuntimeWarning, stacklevel=3)
    if len(_SEEN_SHAPES) > 4096:
        _SEEN_SHAPES.clear()
    _SEEN_SHAPES[key] = None


def call_with_fallback(obj: Any, call: Callable[[Spec, tuple[Any, ...]], Any]) -> Any:
    """``call(spec, leaves)`` with ``obj`` lifted as an optimizer; on a tracer error caused by a
    lifted float, once more with floats static (remembered for this structure)."""
    spec, leaves = lift_optimizer(obj)
    try:
        return call(spec, leaves)
    except TRACER_ERRORS:
        static = mark_static_only(spec, obj)
        if static is None:
            raise
        return call(*static)

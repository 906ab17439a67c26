"""Argument checks shared across gradkit's layers (no dependency on any other gradkit module)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def check_prng_key(where: str, arg: str, key: Any) -> None:
    """``key`` must be a JAX random key: a typed key (``jax.random.key(0)``, shape ``()``) or a
    raw ``uint32`` key (``jax.random.PRNGKey(0)``, shape ``(2,)``; ``(4,)`` for the rbg
    implementations).  Traced keys are checked by their abstract shape and dtype."""
    dtype = getattr(key, "dtype", None)
    shape = tuple(getattr(key, "shape", ()))
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
    elif dtype is not None and np.dtype(dtype) == np.uint32 and shape in ((2,), (4,)):
        return
    got = f"{type(key).__name__}" + (f" of dtype {dtype} and shape {shape}" if dtype is not None else f" {key!r}")
    raise TypeError(f"{where}: {arg} must be a JAX random key (jax.random.key(0) or jax.random.PRNGKey(0)), "
                    f"got {got}")

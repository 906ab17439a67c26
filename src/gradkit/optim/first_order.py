"""First-order optimizers, each an ``optax.GradientTransformation`` written in gradkit, one module
per algorithm (:mod:`~gradkit.optim.sgd`, :mod:`~gradkit.optim.rmsprop`, :mod:`~gradkit.optim.adam`,
:mod:`~gradkit.optim.lion`, :mod:`~gradkit.optim.adasmooth`); this module gathers them.

Notation: ``g`` gradient, ``η_t`` learning rate (constant, traced array or optax schedule
evaluated at its step count ``t-1``), ``u`` the returned update (``params ← params + u`` via
``optax.apply_updates``), ``t`` the 1-based step.  Each optimizer is a direction transform of
gradkit's followed by optax's learning-rate scaling, so its state is exactly optax's for the
alias of the same name (state types, field names, leaf dtypes: optax code that indexes the state
and optax checkpoints work unchanged); every hyperparameter may be a traced array, so
``jax.vmap`` over learning rates or betas works.  Where the seed lecture's textbook form differs
from optax's, a keyword chooses (default: optax's form).
"""

from gradkit.optim.adam import (
    adabelief,
    adam,
    adamax,
    adamw,
    amsgrad,
    nadam,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_belief,
)
from gradkit.optim.adasmooth import ADASMOOTH_DEFAULT_WINDOW, AdaSmoothState, adasmooth
from gradkit.optim.lion import lion, scale_by_lion
from gradkit.optim.rmsprop import adagrad, rmsprop, scale_by_rms, scale_by_rss
from gradkit.optim.sgd import momentum, nesterov, scale_by_trace, sgd

__all__ = [
    "ADASMOOTH_DEFAULT_WINDOW", "AdaSmoothState", "adabelief", "adagrad", "adam", "adamax", "adamw", "adasmooth",
    "amsgrad", "lion", "momentum", "nadam", "nesterov", "rmsprop", "scale_by_adam", "scale_by_adamax",
    "scale_by_amsgrad", "scale_by_belief", "scale_by_lion", "scale_by_rms", "scale_by_rss", "scale_by_trace", "sgd",
]

"""gradkit: a JAX toolkit for people who study and invent optimizers."""

from gradkit import curvature, data, derivatives, diff, landscapes, linalg, losses, models, optim, profiles, runs, train
from gradkit.derivatives import (
    batched_hvp,
    directional_derivative,
    ggn_vp,
    hessian,
    hvp,
    hvp_operator,
    jacobian,
)
from gradkit.diff import check
from gradkit.landscapes import Landscape

__version__ = "0.1.0"

__all__ = [
    "Landscape",
    "data",
    "losses",
    "models",
    "train",
    "batched_hvp",
    "check",
    "curvature",
    "derivatives",
    "diff",
    "directional_derivative",
    "ggn_vp",
    "hessian",
    "hvp",
    "hvp_operator",
    "jacobian",
    "landscapes",
    "linalg",
    "optim",
    "profiles",
    "runs",
]

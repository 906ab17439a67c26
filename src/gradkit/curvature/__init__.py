"""Curvature of a loss as pytree linear operators (Hessian, GGN, true and empirical Fisher),
and a tracker that records sharpness, trace, preconditioned sharpness and spectral density
during training (in :func:`gradkit.train.fit` or in a user's own optax loop)."""

from gradkit.curvature.operator import (
    LIKELIHOODS,
    CurvatureOperator,
    EmpiricalFisherOperator,
    FisherOperator,
    GGNOperator,
    HessianOperator,
    empirical_fisher,
    fisher,
    ggn,
    hessian,
    output_fisher,
)
from gradkit.curvature.tracker import (
    AdamPreconditioner,
    CurvatureRecords,
    CurvatureTracker,
    TrackerState,
    adam_preconditioner,
    adam_threshold,
    find_adam_state,
)

__all__ = [
    "AdamPreconditioner",
    "CurvatureRecords",
    "CurvatureTracker",
    "TrackerState",
    "adam_preconditioner",
    "adam_threshold",
    "find_adam_state",
    "LIKELIHOODS",
    "CurvatureOperator",
    "EmpiricalFisherOperator",
    "FisherOperator",
    "GGNOperator",
    "HessianOperator",
    "empirical_fisher",
    "fisher",
    "ggn",
    "hessian",
    "output_fisher",
]

"""Matrix-free linear algebra on pytrees: conjugate gradient (+ Steihaug) and the
spectrum of an operator known only through its products (HVPs, GGN products)."""

from gradkit.linalg.cg import cg, steihaug_cg
from gradkit.results import Code, Result, SolverError
from gradkit.linalg.spectrum import (
    Eigenpairs,
    LanczosResult,
    SpectralDensity,
    TraceEstimate,
    hutch_plus_plus,
    hutchinson_trace,
    lanczos,
    lanczos_eigenvalues,
    power_iteration,
    slq_density,
)

__all__ = [
    "Code",
    "Result",
    "SolverError",
    "Eigenpairs",
    "LanczosResult",
    "SpectralDensity",
    "TraceEstimate",
    "cg",
    "hutch_plus_plus",
    "hutchinson_trace",
    "lanczos",
    "lanczos_eigenvalues",
    "power_iteration",
    "slq_density",
    "steihaug_cg",
]

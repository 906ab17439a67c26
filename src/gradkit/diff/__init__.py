"""How a derivative is computed: dual numbers, finite differences, route comparison."""

from gradkit.diff import dual, numeric
from gradkit.diff.check import CheckReport, RouteError, check
from gradkit.diff.dual import Dual

__all__ = ["CheckReport", "Dual", "RouteError", "check", "dual", "numeric"]

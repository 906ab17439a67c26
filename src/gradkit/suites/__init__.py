"""Benchmark suites: COCO's noiseless BBOB functions (:mod:`gradkit.suites.bbob`)."""

from gradkit.suites.bbob import BBOBProblem, bbob, evaluate, instance_data, FUNCTION_GROUPS, NONSMOOTH

__all__ = ["BBOBProblem", "bbob", "evaluate", "instance_data", "FUNCTION_GROUPS", "NONSMOOTH"]

"""Performance and data profiles: an alias of :mod:`gradkit.race.profiles`, kept so that
``from gradkit import profiles`` and ``import gradkit.profiles`` go on working."""

from gradkit.race.profiles import (Cost, DataProfile, PerformanceProfile, cost_matrix, data_profile,
                                   performance_profile, performance_ratios, profile_area)

__all__ = ["Cost", "DataProfile", "PerformanceProfile", "cost_matrix", "data_profile", "performance_profile",
           "performance_ratios", "profile_area"]

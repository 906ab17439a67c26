"""Test configuration: float64 on, so comparisons to 1e-10 and below are meaningful.

float32 behaviour is tested with explicitly float32 inputs.
"""

import jax

jax.config.update("jax_enable_x64", True)

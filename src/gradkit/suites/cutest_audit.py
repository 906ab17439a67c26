"""The audit of sif2jax's optimal values for CUTEst's unconstrained problems.

:mod:`gradkit.suites.cutest` takes each problem's optimal value from here: :func:`_stated_optimum`
reads sif2jax's number and :func:`_applied` turns it into the problem's ``f_opt``,
``f_opt_source`` and ``f_opt_note`` through :data:`F_OPT_AUDIT`.

sif2jax's ``expected_objective_value`` (a property: a 0-d array or ``None``) is transcribed by
hand from SIF comments, NIST and papers, and sif2jax tests only its objectives against
pycutest, not these numbers.  Many are wrong: SIF lower bounds taken for optima (``0`` for
least-squares problems whose residuals cannot all vanish), values copied from a neighbouring
problem (PALMER5C-8C carry PALMER4C's), sign or scale slips (ENGVAL1's ``-14997`` for a sum of
non-negative terms, MGH10LS's squared standard deviation), truncated digits (EDENSCH
``12003.2`` for ``12003.2846``).  So every stated value of sif2jax 0.0.8
(:data:`AUDITED_SIF2JAX_VERSION`) was audited with L-BFGS from ``x0`` and, where the value was
in doubt, Newton (trust-region, exact Hessian or Hessian-vector products) from ``x0``, from
sif2jax's ``expected_result`` and from random starts (:data:`F_OPT_AUDIT`):

- corrected (``f_opt_source == "sif2jax (audited)"``, 35 problems): the minimum is established
  analytically (convexity, a constant plus squares, a closed form) or by an independent
  certified value (NIST), or the stated value agrees to its stated digits with a converged
  run; ``f_opt`` is the converged value to double precision;
- disputed (``f_opt is None``, 11 problems): the stated value is demonstrably not the minimum
  but nothing independent confirms what is; tables then use the best value found
  (:func:`gradkit.suites.cutest.reference_values`).

``f_opt_sif2jax`` always keeps sif2jax's number and ``f_opt_note`` the evidence.  An audit
entry applies only while sif2jax still states the audited value, so a fixed sif2jax wins.  The
five problems above 20 000 variables (CYCLIC3LS, CYCLOOCFLS, INDEFM, YATP1CLS, YATP1LS) were
not audited.

This module imports neither sif2jax, JAX nor the rest of gradkit; :mod:`gradkit.suites.cutest`
calls :func:`_stated_optimum` under float64 and re-exports the public names.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["AUDITED_SIF2JAX_VERSION", "F_OPT_AUDIT", "SOURCE_AUDITED", "SOURCE_SIF2JAX"]

AUDITED_SIF2JAX_VERSION = "0.0.8"

SOURCE_SIF2JAX = "sif2jax"
SOURCE_AUDITED = "sif2jax (audited)"

_LINEAR_LS = "linear least squares, so convex: Newton from x0 and 6 random starts converges to this value"
_PALMER_COPY = f"the stated value is PALMER4C's; {_LINEAR_LS}"
_DIXMAAN = (
    "f = 1 + non-negative quartic terms + a positive-definite quadratic form, so f >= f(0) = 1; "
    "sif2jax's expected_result and L-BFGS from x0 give 1.0"
)
_LUKSAN = "0 is sif2jax's guess for a least-squares problem; Newton from x0 and 4 random starts converge to {}, none near 0"

F_OPT_AUDIT: dict[str, tuple[float, float | None, str]] = {
    # name: (value sif2jax 0.0.8 states, audited f_opt or None when disputed, evidence)
    "BOX": (-9999.0, -1864.5379265602494, "-(n-1) is the SIF's lower bound; BOX is convex, L-BFGS + Newton-CG converge here (|g| < 1e-12)"),
    "CHAINWOO": (0.0, 1.0, "f = 1 + a sum of squares that all vanish at x = 1 (sif2jax's expected_result)"),
    "CHWIRUT1LS": (2.3894212, 2384.47713930935, "1000x off: NIST certifies a residual sum of squares of 2.38448e3; Newton converges here"),
    "CHWIRUT2LS": (513.05, 513.0480294068653, "NIST certifies 5.1304802941e2; Newton from x0 converges here"),
    "CRAGGLVY": (1688.2, 1688.2153097144298, "stated to 5 digits; L-BFGS + Newton-CG from x0 converge here (|g| < 1e-7)"),
    "DANIWOODLS": (0.0040132, 0.004317308408291051, "NIST certifies 4.3173084083e-3; Newton from x0 and 6 random starts converge here"),
    "EDENSCH": (12003.2, 12003.284592020766, "stated to 6 digits, truncated; L-BFGS + Newton-CG from x0 converge here (|g| < 1e-6)"),
    "ELATVIDU": (0.0, 1.7127803548622047, "0 is the SIF's lower bound; El-Attar-Vidyasagar-Dutta's minimum is 1.712780354 (Newton)"),
    "ENGVAL1": (-14997.0, 5548.668419415775, "the stated value is -f(1); ENGVAL1 is convex, L-BFGS + Newton-CG converge here (|g| < 1e-6)"),
    "FREUROTH": (608160.0, 608159.1890463287, "stated to 6 digits; L-BFGS + Newton-CG from x0 converge 0.81 below it"),
    "JENSMP": (124.362, 124.36218235561485, "stated to 6 digits; Newton from x0 and 6 random starts converge here"),
    "MEXHAT": (-0.0898793, -0.04001, "closed form: the minimum is -0.04 - invp (invp = 1e-5) at x2 = x1^2, (x1-1)^2 = 0.02 + invp"),
    "MGH10LS": (100548.02858932, 87.94585517093304, "a squared NIST standard deviation; NIST certifies 87.945855171 (at expected_result)"),
    "PALMER1C": (0.097605048, 0.09759799126307325, _LINEAR_LS),
    "PALMER1D": (0.652673985, 0.6526825943736618, f"the stated value is below the minimum; {_LINEAR_LS}"),
    "PALMER5C": (0.050310687, 2.12808666605508, _PALMER_COPY),
    "PALMER5D": (0.050310687, 87.33939952784803, _PALMER_COPY),
    "PALMER6C": (0.050310687, 0.016387421618642647, _PALMER_COPY),
    "PALMER7C": (0.050310687, 0.6019856723141999, _PALMER_COPY),
    "PALMER8C": (0.050310687, 0.1597680634702326, _PALMER_COPY),
    **{name: (0.0, 1.0, _DIXMAAN) for name in (
        "DIXMAANB", "DIXMAANC", "DIXMAAND", "DIXMAANE1", "DIXMAANF", "DIXMAANG", "DIXMAANH", "DIXMAANI1",
        "DIXMAANJ", "DIXMAANK", "DIXMAANL", "DIXMAANM1", "DIXMAANN", "DIXMAANO", "DIXMAANP",
    )},
    # disputed: the stated value is not the minimum, and nothing independent says what is
    "EXPFIT": (8.7945855171, None, "the stated value is MGH10's optimum / 10; Newton from x0 and 6 random starts converge to 0.240510594"),
    "JUDGE": (0.0, None, "0 is the SIF's lower bound; Newton from x0 and 6 random starts converge to 16.081730133"),
    "KOWOSB": (0.00102734, None, "MGH's non-global local value (at infinity); Newton from x0 converges to 3.07800947e-4"),
    "PENALTY3": (0.001, None, "L-BFGS and Newton reach -1.0004e-3 (f >= -1e-3 exactly; the double sums round to ~4e-7 there)"),
    "LUKSAN12LS": (0.0, None, _LUKSAN.format("local minima 3447.53 to 3724.71")),
    "LUKSAN13LS": (0.0, None, _LUKSAN.format("25188.8596")),
    "LUKSAN14LS": (0.0, None, _LUKSAN.format("123.9235 to 123.9568")),
    "LUKSAN15LS": (0.0, None, _LUKSAN.format("3.56969705")),
    "LUKSAN16LS": (0.0, None, _LUKSAN.format("3.56969705")),
    "LUKSAN17LS": (0.0, None, _LUKSAN.format("0.493161290")),
    "10FOLDTRLS": (0.0, None, "unbounded below (see broken_problems)"),
}
"""Audit of sif2jax 0.0.8's optimal values: name -> (stated, audited ``f_opt`` or None if disputed, evidence)."""


def _stated_optimum(source: Any) -> float | None:
    """sif2jax's ``expected_objective_value`` as a float (None when absent, non-scalar or not finite)."""
    value = getattr(source, "expected_objective_value", None)
    if callable(value):  # a property in sif2jax 0.0.8; tolerate a method
        value = value()
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    if array.size != 1 or not np.isfinite(array).all():
        return None
    return float(array.reshape(()))


def _applied(key: str, stated: float | None) -> tuple[float | None, str | None, str | None]:
    """``(f_opt, f_opt_source, f_opt_note)`` of problem ``key`` (upper case) whose sif2jax value is ``stated``.

    sif2jax's value unless :data:`F_OPT_AUDIT` has an entry for ``key`` whose stated value is
    still ``stated``: then the audited value (``None`` when disputed) with the evidence.
    """
    f_opt, label, note = stated, (None if stated is None else SOURCE_SIF2JAX), None
    audit = F_OPT_AUDIT.get(key)
    if audit is not None and stated is not None and math.isclose(audit[0], stated, rel_tol=1e-12, abs_tol=1e-300):
        audited, why = audit[1], audit[2]
        if audited is None:
            f_opt, label, note = None, None, f"sif2jax's {stated!r} disputed: {why}"
        else:
            f_opt, label, note = audited, SOURCE_AUDITED, f"sif2jax states {stated!r}; audited {audited!r}: {why}"
    return f_opt, label, note

"""One rounding rule for every number the report prints with a CI.

A CI half-width is shown with two significant digits, and its mean to the same decimal place:
more digits than that are noise the CI does not support. A value without a usable CI (unknown,
zero or non-finite half-width) falls back to the metric's fixed decimals.

Example:
    >>> round_ci(0.6, 0.248), round_ci(-0.14, 0.0903), round_ci(95.0, 5.66)
    (('0.60', '0.25'), ('-0.140', '0.090'), ('95.0', '5.7'))
    >>> ci_decimals(0.0996), ci_decimals(12.3), ci_decimals(0.0, fallback=3)
    (2, 0, 3)
"""

from __future__ import annotations

import math

#: Significant digits of a CI half-width.
CI_DIGITS = 2


def ci_decimals(half: float | None, fallback: int = 3, digits: int = CI_DIGITS) -> int:
    """Decimal places that show ``half`` with ``digits`` significant digits (at least 0).

    Arguments:
        half: the CI half-width (None, 0 or non-finite: ``fallback``).
        fallback: decimals when the CI gives no precision.
        digits: significant digits kept of ``half``.

    Returns:
        The number of decimals; 0.0996 gives 2 (it rounds to 0.10, not 0.100).

    Example:
        >>> ci_decimals(0.248), ci_decimals(0.0174), ci_decimals(133.0)
        (2, 3, 0)
    """
    if half is None or not math.isfinite(half) or half <= 0:
        return fallback
    d = digits - 1 - math.floor(math.log10(abs(half)))
    if d > 0 and abs(round(abs(half), d)) >= 10 ** (digits - d):  # 0.0996 -> 0.100: one digit too many
        d -= 1
    return max(0, d)


#: From this magnitude on a number is printed in scientific notation (``1.0e+300``), not with
#: every digit (a metric near 1e300 filled a table cell with 300 digits).
SCIENTIFIC_FROM = 1e15


def fmt(x: float | None, decimals: int, sign: bool = False) -> str:
    """``x`` with ``decimals`` places (``+`` sign if ``sign``), ``n/a`` when unknown or non-finite;
    from :data:`SCIENTIFIC_FROM` on, two significant digits in scientific notation.

    >>> fmt(0.1234, 2), fmt(-0.05, 3, sign=True), fmt(float("nan"), 2)
    ('0.12', '-0.050', 'n/a')
    >>> fmt(1e300, 3), fmt(-3.42e150, 0, sign=True)
    ('1.0e+300', '-3.4e+150')
    """
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "n/a"
    if abs(x) >= SCIENTIFIC_FROM:
        return f"{x:+.1e}" if sign else f"{x:.1e}"
    return f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"


def round_ci(mean: float | None, half: float | None, fallback: int = 3,
             sign: bool = False) -> tuple[str, str]:
    """``(mean, half)`` as strings rounded to the precision the CI supports.

    Arguments:
        mean: the estimate.
        half: its 95 % CI half-width.
        fallback: decimals when ``half`` is unknown or zero (the metric's usual decimals).
        sign: print the mean with its sign (effects).

    Returns:
        Two strings; ``n/a`` for an unknown value.

    Example:
        >>> round_ci(0.30, 0.0693), round_ci(-0.0206, 0.0174, sign=True), round_ci(1.0, None)
        (('0.300', '0.069'), ('-0.021', '0.017'), ('1.000', 'n/a'))
    """
    d = ci_decimals(half, fallback)
    return fmt(mean, d, sign), fmt(half, d)


def format_ci(mean: float | None, half: float | None, fallback: int = 3, sign: bool = False) -> str:
    """``"mean ± half"`` rounded by :func:`round_ci` (just the mean when ``half`` is unknown).

    >>> format_ci(0.46, 0.1634), format_ci(0.8, float("nan"))
    ('0.46 ± 0.16', '0.800')
    """
    m, h = round_ci(mean, half, fallback, sign)
    return m if h == "n/a" else f"{m} ± {h}"

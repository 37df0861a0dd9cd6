"""Exact arithmetic of reported (rounded) numbers: rounding intervals, GRIM sums, achievable sums of squares.

All comparisons use :class:`fractions.Fraction`, so no floating-point accident decides a check. A number
reported with ``d`` decimals stands for the closed interval ``value ± ½·10⁻ᵈ``: both ends are accepted, so
either tie-breaking convention (half-up or half-even) passes.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

__all__ = [
    "BORDERLINE_UNITS",
    "interval",
    "gap_units",
    "grim_sums",
    "achievable_sumsq",
    "double_rounds_to",
]

#: A miss of at most this many units of the last reported digit is "borderline": it is what one
#: intermediate rounding to one more decimal (double rounding) can produce.
BORDERLINE_UNITS = Fraction(1, 20)


def interval(value_text: str, decimals: int | None = None) -> tuple[Fraction, Fraction]:
    """The closed interval of true values that round to ``value_text``."""
    v = Fraction(value_text)
    d = decimals if decimals is not None else (len(value_text.split(".")[1]) if "." in value_text else 0)
    half = Fraction(1, 2 * 10**d)
    return v - half, v + half


def gap_units(x: Fraction | float, value_text: str, decimals: int) -> float:
    """Distance from ``x`` to the rounding interval of ``value_text``, in units of its last digit (0 inside)."""
    lo, hi = interval(value_text, decimals)
    x = Fraction(x) if not isinstance(x, Fraction) else x
    gap = lo - x if x < lo else (x - hi if x > hi else Fraction(0))
    return float(gap * 10**decimals)


def grim_sums(value_text: str, decimals: int, n: int, scale: Fraction = Fraction(1), lo: int | None = None, hi: int | None = None) -> list[int]:
    """Integer sums ``S`` (of ``n`` whole-number items) whose mean ``scale·S/n`` rounds to the reported value.

    Parameters
    ----------
    value_text, decimals : the reported mean and its decimals.
    n : number of items.
    scale : factor from the item unit to the reported unit (100/range for a score's points to percent of its range).
    lo, hi : bounds of each item, so ``S`` lies in ``[n·lo, n·hi]``.
    """
    a, b = interval(value_text, decimals)
    s_lo = math.ceil(a * n / scale)
    s_hi = math.floor(b * n / scale)
    if lo is not None:
        s_lo = max(s_lo, n * lo)
    if hi is not None:
        s_hi = min(s_hi, n * hi)
    return list(range(s_lo, s_hi + 1))


@lru_cache(maxsize=64)
def achievable_sumsq(n: int, lo: int, hi: int) -> dict[int, int]:
    """For ``n`` integers in ``[lo, hi]``: sum ``S`` -> bitmask of achievable sums of squares ``Q``.

    Bit ``q`` of ``result[S]`` is set when some ``x_1..x_n`` in ``[lo, hi]`` have ``Σx = S`` and ``Σx² = q``.
    Exact dynamic programme over the items (Python ints as bit sets); this is what a GRIMMER-style SD
    test needs at small n, where not every sum of squares of the right parity is reachable.
    """
    if n > 60:
        raise ValueError("exact enumeration is for small samples (n <= 60)")
    states: dict[int, int] = {0: 1}
    for _ in range(n):
        nxt: dict[int, int] = {}
        for s, mask in states.items():
            for x in range(lo, hi + 1):
                key = s + x
                nxt[key] = nxt.get(key, 0) | (mask << (x * x))
        states = nxt
    return states


def double_rounds_to(x: Fraction, value_text: str, decimals: int) -> bool:
    """Whether ``x`` rounded first to ``decimals + 1`` places, then to ``decimals``, gives ``value_text``."""
    step = Fraction(1, 10 ** (decimals + 1))
    once = Fraction(math.floor(x / step + Fraction(1, 2))) * step
    lo, hi = interval(value_text, decimals)
    return lo <= once <= hi

"""Numbers printed to the precision their Monte Carlo standard error supports.

A posterior summary from MCMC is an estimate with a Monte Carlo standard error (MCSE). Printing it with more digits than
the MCSE supports invites readers (and diffs between machines) to take noise for signal. The rule here: the last printed
digit is the leading digit of 2 × MCSE, i.e. a number is rounded to the step 10^floor(log10(2 · MCSE)) (an MCSE of 0.15
prints to 0.1, of 0.006 to 0.01, of 0.0004 to 0.0001). Probabilities print with at most two decimals, "> 0.99" / "< 0.01"
at the ends. Exact numbers (closed forms, MCSE 0) print with ``max_decimals`` decimals.

Across machines the draws differ (floating point differs between CPUs, which changes MCMC trajectories), so a rounded
number moves by about 1.4 x its MCSE (the difference of two independent estimates). As the step lies between 0.2 and 2
times the MCSE, that can be a few steps of the last digit. The ends of a highest-density interval vary more than those
of the equal-tailed one (they converge at the cube-root rate), so a row is rounded by the largest of the MCSEs of its
median, its equal-tailed ends and its HDI ends (:func:`row_step`; ``mcse_hdi`` from
:func:`bayes_sacral.summarize.hdi_end_mcse`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["step_for", "round_to_mcse", "format_mcse", "format_probability", "probability_mcse", "display_summary_row", "format_step",
           "row_step"]


def step_for(mcse: float, max_decimals: int = 4) -> float:
    """The rounding step of a number with Monte Carlo standard error ``mcse``: the power of ten of the leading digit of
    2 × MCSE (never finer than ``max_decimals`` decimals)."""
    if mcse is None or not np.isfinite(mcse) or mcse <= 0:
        return 10.0 ** -max_decimals
    return max(10.0 ** math.floor(math.log10(2 * mcse)), 10.0 ** -max_decimals)


def _decimals(step: float) -> int:
    return max(0, -int(round(math.log10(step))))


def round_to_mcse(x: float, mcse: float, max_decimals: int = 4) -> float:
    """``x`` rounded to the step its MCSE supports."""
    if x is None or not np.isfinite(x):
        return x
    step = step_for(mcse, max_decimals)
    return round(round(x / step) * step, _decimals(step))


def format_mcse(x: float, mcse: float, max_decimals: int = 4) -> str:
    """``x`` as text to the precision its MCSE supports ("" for missing, "not estimable" never here: callers say so)."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return ""
    step = step_for(mcse, max_decimals)
    d = _decimals(step)
    text = f"{round(x / step) * step:.{d}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def probability_mcse(p: float, ess: float) -> float:
    """Monte Carlo standard error of an estimated probability from ``ess`` effective draws (at least half a draw's worth)."""
    if p is None or not np.isfinite(p):
        return float("nan")
    ess = ess if ess and np.isfinite(ess) and ess > 0 else 400.0
    q = min(max(p, 0.5 / ess), 1 - 0.5 / ess)
    return math.sqrt(q * (1 - q) / ess)


def format_probability(p: float, mcse: float | None = None) -> str:
    """A posterior probability without false certainty: "> 0.99", "< 0.01", else at most two decimals (fewer when its
    Monte Carlo error is larger)."""
    if p is None or (isinstance(p, float) and not np.isfinite(p)):
        return ""
    if p >= 0.995:
        return "> 0.99"
    if p <= 0.005:
        return "< 0.01"
    step = max(step_for(mcse if mcse is not None else 0.0, 2), 0.01)
    return f"{round(p / step) * step:.{_decimals(step)}f}"


_ESTIMATES = ("mean", "sd", "median", "hdi_low", "hdi_high", "eti_low", "eti_high")


def display_summary_row(row: dict) -> dict:
    """A summary row (see :func:`bayes_sacral.summarize.summarize_posterior`) for people: estimates and interval ends rounded
    to the step of the row's Monte Carlo error (:func:`row_step`), probabilities by their own MCSE, R-hat to two decimals,
    ESS to two significant figures. Raw summaries (JSON, CSV) keep full precision and the ``mcse_mean`` /
    ``mcse_interval`` / ``mcse_hdi`` columns this rounding rests on."""
    step = row_step(row)
    step = 10.0 ** -3 if not np.isfinite(step) else step
    ess = row.get("ess_bulk")
    out = {}
    for k, v in row.items():
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            out[k] = "" if k != "name" else v
        elif k in _ESTIMATES:
            out[k] = format_step(v, step)
        elif k.startswith("prob_") or k == "between_share":
            out[k] = format_probability(float(v), probability_mcse(float(v), ess if k != "between_share" else np.nan))
        elif k == "r_hat":
            out[k] = f"{v:.2f}"
        elif k.startswith("ess_"):
            out[k] = f"{float(f'{v:.2g}'):.0f}"
        elif k.startswith("mcse_"):
            out[k] = f"{v:.2g}"
        else:
            out[k] = v
    return out


def row_step(row: dict) -> float:
    """The rounding step of a summary row's estimates and interval ends: that of the largest of 1.25 x the MCSE of the
    mean (the median's MCSE for a normal posterior), the MCSE of the equal-tailed ends (``mcse_interval``) and that of
    the HDI's ends (``mcse_hdi``). NaN when the row has none of them."""
    point = row.get("mcse_mean")
    point = 1.25 * point if point is not None and np.isfinite(point) else np.nan
    cands = [v for v in (point, row.get("mcse_interval"), row.get("mcse_hdi")) if v is not None and np.isfinite(v)]
    return step_for(max(cands)) if cands else float("nan")


def format_step(x: float, step: float) -> str:
    """``x`` rounded to ``step`` (a power of ten) as text, without a negative zero."""
    d = _decimals(step)
    text = f"{round(x / step) * step:.{d}f}"
    return text.lstrip("-") if float(text) == 0 else text

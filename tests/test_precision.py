"""Rounding to the Monte Carlo error: the last printed digit is the leading digit of 2 x MCSE."""

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bayes_sacral.precision import (
    display_summary_row,
    format_probability,
    format_step,
    probability_mcse,
    step_for,
)


@given(st.floats(1e-5, 1e3))
def test_step_is_the_leading_digit_of_two_mcse(mcse):
    step = step_for(mcse)
    assert step <= 2 * mcse * (1 + 1e-12) or step == 1e-4
    assert 2 * mcse < 10 * step
    assert math.isclose(math.log10(step), round(math.log10(step)))  # a power of ten


@given(st.floats(-1e4, 1e4, allow_nan=False), st.floats(1e-4, 10))
def test_rounded_number_is_within_half_a_step(x, mcse):
    step = step_for(mcse)
    text = format_step(x, step)
    assert abs(float(text) - x) <= step / 2 + 1e-9 * max(1, abs(x))
    assert not (float(text) == 0 and text.startswith("-"))  # no negative zero


def test_probabilities_never_claim_certainty():
    assert format_probability(0.9996) == "> 0.99" and format_probability(0.001) == "< 0.01"
    assert format_probability(0.934, probability_mcse(0.934, 4000)) == "0.93"
    # 40 effective draws: the MCSE of 0.7 is 0.07, so only one decimal is supported
    assert format_probability(0.72, probability_mcse(0.72, 40)) == "0.7"


def test_display_row_uses_the_row_mcse():
    draws = np.random.default_rng(1).normal(4.6, 3.1, 4000)
    mcse = draws.std() / math.sqrt(1000)  # as if the ESS were 1000
    row = {"name": "effect", "mean": float(draws.mean()), "median": float(np.median(draws)), "hdi_low": -1.6834, "hdi_high": 10.4417,
           "mcse_mean": mcse, "mcse_interval": 0.15, "ess_bulk": 1000.0, "r_hat": 1.0031, "prob_benefit": 0.9337}
    out = display_summary_row(row)
    assert out["hdi_low"] == "-1.7" and out["hdi_high"] == "10.4"  # 2 x 0.15 = 0.3: tenths
    assert out["r_hat"] == "1.00" and out["ess_bulk"] == "1000" and out["prob_benefit"] == "0.93"

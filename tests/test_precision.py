"""Rounding to the Monte Carlo error: the last printed digit is the leading digit of 2 x MCSE."""

import math

import numpy as np
import pytest
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


def _spread_across_seeds(n_seeds: int = 30):
    """The lead MSTS run (summary route) refitted with ``n_seeds`` seeds: per estimand, the standard deviation across
    seeds of the median and of each interval end, and the mean MCSE each run reported for them."""
    import tomllib
    from pathlib import Path

    import bayes_sacral as bs

    cfg = tomllib.loads((Path(__file__).resolve().parents[1] / "configs" / "msts_summary.toml").read_text())
    cfg.pop("sweep", None)
    rows = []
    for seed in range(1, n_seeds + 1):
        cfg["run"]["seed"] = seed
        rows.append({r["name"]: r for r in bs.fit(cfg).summary().to_dict(orient="records")})
    out = {}
    for name in ("treatment_effect[pathological]", "treatment_effect[impending]", "treatment_effect_average"):
        col = {c: np.array([float(r[name][c]) for r in rows]) for c in ("median", "hdi_low", "hdi_high", "eti_low", "eti_high",
                                                                       "mcse_mean", "mcse_interval")}
        out[name] = {"median": col["median"].std(ddof=1) / (1.25 * col["mcse_mean"].mean()),  # the median's MCSE, as displayed
                     "hdi": max(col["hdi_low"].std(ddof=1), col["hdi_high"].std(ddof=1)) / col["mcse_interval"].mean(),
                     "eti": max(col["eti_low"].std(ddof=1), col["eti_high"].std(ddof=1)) / col["mcse_interval"].mean()}
    return out


@pytest.fixture(scope="module")
def seed_spread():
    return _spread_across_seeds()


@pytest.mark.slow
def test_medians_spread_across_seeds_as_their_mcse_says(seed_spread):
    """30 independent refits of the lead MSTS run: the medians' standard deviation across seeds is their reported MCSE
    (within the noise of an SD from 30 values, about +-13%; bounds at +-40%)."""
    for name, ratio in seed_spread.items():
        assert 0.6 <= ratio["median"] <= 1.4, (name, ratio)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known limitation (README, 'Reproducibility and precision'): mcse_interval, the MCSE "
                                       "of the equal-tailed ends, understates how much the HDI ends vary (1.4-1.7 times)")
def test_hdi_ends_spread_across_seeds_as_mcse_interval_says(seed_spread):
    for name, ratio in seed_spread.items():
        assert ratio["hdi"] <= 1.25, (name, ratio)

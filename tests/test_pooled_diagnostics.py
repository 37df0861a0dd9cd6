"""Draws pooled over reconstructed data sets: convergence is judged within each data set, never across them."""

import arviz as az
import numpy as np
import xarray as xr

from bayes_sacral.summarize import summarize_posterior


def _pooled(shift: float, chains_per: int = 4, draws: int = 1000, blocks: int = 5, seed: int = 0) -> xr.Dataset:
    """Each data set's chains are iid draws around its own mean (converged); the means differ by ``shift`` between sets."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(k * shift, 1.0, (chains_per, draws)) for k in range(blocks)])
    recon = np.repeat(np.arange(blocks), chains_per)
    return xr.Dataset({"effect": (("chain", "draw"), x)},
                      coords={"chain": np.arange(blocks * chains_per), "draw": np.arange(draws), "reconstruction": ("chain", recon)})


def test_rhat_within_data_sets_and_between_share():
    post = _pooled(shift=1.0)
    naive = float(az.rhat(post["effect"]))
    assert naive > 1.1  # R-hat over chains of different data sets measures their spread
    row = summarize_posterior(post, ["effect"])[0]
    assert row["r_hat"] < 1.01
    # the between-data-set share of the variance, computed here from the definition
    means = post["effect"].groupby("reconstruction").mean(...).values
    within = post["effect"].groupby("reconstruction").var(...).values.mean()
    between = means.var(ddof=1)
    assert abs(row["between_share"] - between / (between + within)) < 1e-6
    # ESS is the worst over data sets (each has 4 chains x 1000 iid draws)
    assert 2500 < row["ess_bulk"] < 6000


def test_a_data_set_that_did_not_converge_is_still_flagged():
    post = _pooled(shift=0.0)
    x = post["effect"].values.copy()
    x[0] += 3.0  # one chain of the first data set is stuck elsewhere
    post["effect"].values[:] = x
    assert summarize_posterior(post, ["effect"])[0]["r_hat"] > 1.1

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


def _per_block_expected(da: xr.DataArray, blocks: np.ndarray) -> dict:
    """The pooled diagnostics written out here, one data set at a time with ArviZ."""
    subs = [da.isel(chain=np.flatnonzero(blocks == k)).drop_vars("reconstruction") for k in np.unique(blocks)]
    q = lambda s, p: az.mcse(s, method="quantile", prob=p).values  # noqa: E731
    return {"r_hat": np.max([az.rhat(s).values for s in subs], 0),
            "ess_bulk": np.min([az.ess(s, method="bulk").values for s in subs], 0),
            "ess_tail": np.min([az.ess(s, method="tail").values for s in subs], 0),
            "mcse_mean": np.sqrt(np.sum([az.mcse(s, method="mean").values ** 2 for s in subs], 0)) / len(subs),
            "mcse_interval": np.sqrt(np.sum([np.maximum(q(s, 0.025), q(s, 0.975)) ** 2 for s in subs], 0)) / len(subs)}


def test_pooled_diagnostics_match_a_per_data_set_computation():
    """Chains of a data set need not be adjacent; blocks of unequal size take the one-by-one path: same numbers."""
    rng = np.random.default_rng(11)
    for recon in (np.tile(np.arange(4), 3), np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])):
        n = len(recon)
        x = rng.normal(recon[:, None, None] * 0.5, 1.0, (n, 400, 3)).cumsum(axis=1) * 0.05 + rng.normal(size=(n, 400, 3))
        post = xr.Dataset({"effect": (("chain", "draw", "stratum"), x)},
                          coords={"chain": np.arange(n), "draw": np.arange(400), "stratum": ["a", "b", "c"],
                                  "reconstruction": ("chain", recon)})
        rows = summarize_posterior(post, ["effect"])
        expected = _per_block_expected(post["effect"], recon)
        for key, want in expected.items():
            np.testing.assert_allclose([r[key] for r in rows], want, rtol=1e-10, err_msg=key)


def test_replicate_spread_equals_xarray_group_by():
    """Per-data-set posterior mean and sd (the run folder's ``reconstruction_spread``), computed on the arrays, equal
    xarray's group-by over the reconstruction coordinate: values, dims, coordinates, with and without extra dims."""
    from bayes_sacral.fitting import replicate_spread

    rng = np.random.default_rng(3)
    post = _pooled(shift=0.7, blocks=4, draws=50)
    recon = post["reconstruction"].values[::-1].copy()  # data sets not in chain order
    post = post.assign_coords(reconstruction=("chain", recon + 1))
    post["cell"] = (("chain", "draw", "item", "fracture"), rng.normal(size=(16, 50, 3, 2)))
    post = post.assign_coords(item=["a", "b", "c"], fracture=["x", "y"])
    post["cell"][0, 0, 1, 1] = np.nan  # a NaN draw is skipped, as xarray's skipna does
    ours = replicate_spread(post, ["effect", "cell"], "reconstruction")
    by = post[["effect", "cell"]].groupby("reconstruction")
    ref = xr.Dataset({f"{v}__mean": by.mean(["chain", "draw"])[v] for v in ("effect", "cell")}
                     | {f"{v}__sd": by.std(["chain", "draw"])[v] for v in ("effect", "cell")})
    assert list(ours.data_vars) == list(ref.data_vars) and list(ours.coords) == list(ref.coords)
    for v in ref.data_vars:
        assert ours[v].dims == ref[v].dims
        np.testing.assert_allclose(ours[v].values, ref[v].values, rtol=1e-12)
    for c in ref.coords:
        np.testing.assert_array_equal(ours[c].values, ref[c].values)

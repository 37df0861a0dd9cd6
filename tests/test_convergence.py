"""The vectorised convergence diagnostics equal arviz_stats's one-element functions, element by element, exactly."""

import numpy as np
import pytest
import xarray as xr
from arviz_stats.base.array import array_stats as A
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bayes_sacral import convergence as C


def _ar1(rng, shape, phi):
    e = rng.normal(size=shape)
    x = np.empty(shape)
    x[..., 0] = e[..., 0]
    for t in range(1, shape[-1]):
        x[..., t] = phi * x[..., t - 1] + e[..., t]
    return x


def _cases():
    rng = np.random.default_rng(20261129)
    with_const_nan = rng.normal(size=(4, 4, 200))
    with_const_nan[0] = 1.5  # a constant element
    with_const_nan[1, 2, 7] = np.nan  # a missing draw: arviz_stats's own rule (NaN)
    return {
        "independent": rng.normal(size=(5, 4, 400)),
        "autocorrelated": _ar1(rng, (4, 4, 400), 0.9),
        "slow": _ar1(rng, (3, 4, 300), 0.99),  # long Geyer sequences, the monotone step active
        "antithetic": _ar1(rng, (3, 4, 300), -0.7),
        "ties": rng.integers(0, 3, size=(4, 4, 200)).astype(float),  # mean ranks of tied draws
        "rare": (rng.random((3, 4, 300)) < 0.02).astype(float),
        "odd_draws": _ar1(rng, (3, 3, 101), 0.5),  # the split leaves the middle draw out
        "one_chain": rng.normal(size=(3, 1, 100)),
        "few_draws": rng.normal(size=(2, 2, 9)),
        "too_few": rng.normal(size=(2, 2, 3)),  # fewer than 4 draws: arviz_stats's own rule
        "const_nan": with_const_nan,
    }


def _expected(block):
    lo, hi = C.tail_probs()
    return {"rhat": A.rhat(block) if block.shape[0] > 1 else np.nan, "ess_bulk": A.ess(block),
            "ess_tail": A.ess(block, method="tail", prob=(lo, hi)), "ess_mean": A.ess(block, method="mean"),
            "mcse_mean": A.mcse(block),
            "mcse_interval": max(A.mcse(block, method="quantile", prob=0.025), A.mcse(block, method="quantile", prob=0.975))}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", list(_cases()))
def test_equal_to_arviz_stats_element_by_element(name):
    x = _cases()[name]
    exp = {k: np.array([_expected(b)[k] for b in x], dtype=float) for k in _expected(x[0])}
    got = C.diagnostics(x, 0.95)
    for k in ("rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_interval"):
        np.testing.assert_array_equal(got[k], exp[k], err_msg=f"{name}: {k}")
    if x.shape[1] > 1:
        np.testing.assert_array_equal(C.rhat_rank(x), exp["rhat"])
    np.testing.assert_array_equal(C.ess_bulk(x), exp["ess_bulk"])
    np.testing.assert_array_equal(C.ess_tail(x), exp["ess_tail"])
    np.testing.assert_array_equal(C.ess_mean(x), exp["ess_mean"])
    np.testing.assert_array_equal(C.mcse_mean(x), exp["mcse_mean"])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), chains=st.integers(1, 5), draws=st.integers(4, 120),
       phi=st.floats(-0.95, 0.99), levels=st.sampled_from([0, 2, 5]))
@example(seed=27, chains=1, draws=61, phi=0.0, levels=0)  # (1 - 0.9) / 2 != 0.05 moved the quantile MCSE a draw
def test_equal_to_arviz_stats_on_random_draws(seed, chains, draws, phi, levels):
    rng = np.random.default_rng(seed)
    x = _ar1(rng, (2, chains, draws), phi)
    if levels:  # discrete draws: many ties
        x = np.floor(x * levels / 3)
    got = C.diagnostics(x, 0.9)
    for i, block in enumerate(x):
        lo, hi = C.tail_probs()
        assert np.array_equal(got["ess_bulk"][i], A.ess(block), equal_nan=True)
        assert np.array_equal(got["ess_tail"][i], A.ess(block, method="tail", prob=(lo, hi)), equal_nan=True)
        assert np.array_equal(got["mcse_mean"][i], A.mcse(block), equal_nan=True)
        q = max(A.mcse(block, method="quantile", prob=0.05), A.mcse(block, method="quantile", prob=0.95))
        assert np.array_equal(got["mcse_interval"][i], q, equal_nan=True)
        if chains > 1:
            assert np.array_equal(got["rhat"][i], A.rhat(block), equal_nan=True)


def test_xarray_front_ends_keep_dims_and_coords():
    import arviz_stats as azs

    rng = np.random.default_rng(3)
    da = xr.DataArray(_ar1(rng, (4, 300, 3), 0.0).reshape(4, 300, 3), dims=("chain", "draw", "item"),
                      coords={"item": ["a", "b", "c"]}, name="effect")
    ds = xr.Dataset({"effect": da, "other": da * 2})
    for ours, theirs in ((C.rhat(ds), azs.rhat(ds)), (C.ess(ds, "bulk"), azs.ess(ds, method="bulk")),
                         (C.ess(ds, "tail"), azs.ess(ds, method="tail")), (C.mcse(da), azs.mcse(da, method="mean")),
                         (C.mcse(da, "quantile", 0.1), azs.mcse(da, method="quantile", prob=0.1))):
        xr.testing.assert_equal(ours, theirs.drop_attrs() if hasattr(theirs, "drop_attrs") else theirs)
    d = C.diagnostics_of(da.transpose("item", "draw", "chain"), 0.95)
    assert d["ess_bulk"].dims == ("item",) and list(d["ess_bulk"]["item"].values) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="ess method"):
        C.ess(da, "median")


def test_diagnose_finds_the_worst_element_of_all_variables_as_arviz_stats_does():
    """inference.diagnose, which diagnoses every element of every variable in one call, reports the largest R-hat and the
    smallest bulk and tail ESS over all variables with the variable holding them, as arviz_stats's one-element functions
    give them; a constant variable is left out."""
    from bayes_sacral.inference import diagnose

    rng = np.random.default_rng(7)
    post = xr.Dataset({
        "a": (("chain", "draw"), _ar1(rng, (4, 300), 0.5)),
        "b": (("chain", "draw", "k"), np.moveaxis(_ar1(rng, (3, 4, 300), 0.95), 0, -1)),
        "c": (("chain", "draw", "i", "j"), np.moveaxis(_ar1(rng, (2, 2, 4, 300), 0.8), (0, 1), (-2, -1))),
        "fixed": (("chain", "draw"), np.zeros((4, 300))),
    })
    post["b"][1, :, 2] += 1.0  # one chain off: a large R-hat in b
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 300), bool)),
                        "energy": (("chain", "draw"), rng.normal(size=(4, 300)))})
    d = diagnose(xr.DataTree.from_dict({"posterior": post, "sample_stats": stats}))

    def per_variable(fn):
        out = {}
        for v in ("a", "b", "c"):
            da = post[v]
            rows = da.transpose(*(x for x in da.dims if x not in ("chain", "draw")), "chain", "draw").values.reshape(-1, 4, 300)
            out[v] = [fn(r) for r in rows]
        return out

    rhat = per_variable(A.rhat)
    bulk = per_variable(A.ess)
    tail = per_variable(lambda r: A.ess(r, method="tail", prob=C.tail_probs()))  # ArviZ's default interval
    worst = max(rhat, key=lambda v: max(rhat[v]))
    assert (d.max_r_hat, d.worst_r_hat_variable) == (max(rhat[worst]), worst) and worst == "b"
    fewest = min(bulk, key=lambda v: min(bulk[v]))
    assert (d.min_ess_bulk, d.worst_ess_variable) == (min(bulk[fewest]), fewest)
    assert d.min_ess_tail == min(min(t) for t in tail.values())


def test_diagnostics_by_variable_equals_diagnostics_of_each_variable():
    """One call over every variable gives each variable's elements the values diagnostics_of gives it alone, flat in
    the order of its other dims."""
    rng = np.random.default_rng(11)
    ds = xr.Dataset({
        "a": (("chain", "draw"), _ar1(rng, (4, 200), 0.7)),
        "b": (("k", "chain", "draw"), _ar1(rng, (3, 4, 200), 0.9)),  # chain and draw not last
        "c": (("chain", "draw", "i", "j"), rng.normal(size=(4, 200, 2, 3))),
    })
    got = C.diagnostics_by_variable(ds, 0.95)
    assert list(got) == ["a", "b", "c"]
    for v in ds.data_vars:
        want = C.diagnostics_of(ds[v], 0.95)
        for k, arr in want.items():
            np.testing.assert_array_equal(got[v][k], np.ravel(arr.values), err_msg=f"{v}: {k}")
    assert C.diagnostics_by_variable(ds[[]]) == {}

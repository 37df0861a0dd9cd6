"""Event models agree with their closed forms within Monte Carlo error; zero cells are handled."""

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy import stats

from bayes_sacral.config import resolve
from bayes_sacral.fitting import build_run_model, prepare_run
from bayes_sacral.inference import SamplerSettings, diagnose, sample
from bayes_sacral.models.conjugate import BetaPosterior, difference_quantile, prob_less

# The paper: secondary procedures 0/9 vs 5/12 (pathological), 0/2 vs 1/7 (impending); narcotic change counts.
EVENTS = {"pathological": ((0, 9), (5, 12)), "impending": ((0, 2), (1, 7))}
NARCOTIC = {("psfs", "pathological"): (6, 3, 0), ("sacroplasty", "pathological"): (4, 5, 3),
            ("psfs", "impending"): (1, 0, 1), ("sacroplasty", "impending"): (5, 2, 0)}
TOL = 4.0  # Monte Carlo standard errors


def fit(doc):
    run = resolve({"run": {"name": "t", "seed": 11}, **doc})
    inp, _ = prepare_run(run)
    idata, _ = sample(build_run_model(run, inp), SamplerSettings(draws=2000, tune=1000, chains=4, prior_draws=0), 11)
    return idata


def close(draws: xr.DataArray, exact: float, method="mean", prob=None):
    err = float(az.mcse(draws, method=method, prob=prob))
    got = float(draws.mean()) if method == "mean" else float(np.quantile(draws.values.ravel(), prob))
    assert abs(got - exact) < TOL * err + 1e-9, (got, exact, err)


@pytest.fixture(scope="module", params=["uniform", "jeffreys"])
def secondary(request):
    return request.param, fit({"model": {"kind": "secondary_procedures"}, "priors": {"set": request.param}})


def test_secondary_procedures_match_beta_posteriors(secondary):
    prior, idata = secondary
    a0 = {"uniform": 1.0, "jeffreys": 0.5}[prior]
    post = idata["posterior"]
    assert int(idata["sample_stats"]["diverging"].sum()) == 0
    for frac, ((y1, n1), (y2, n2)) in EVENTS.items():
        x = BetaPosterior(a0 + y1, a0 + n1 - y1)  # PSFS
        y = BetaPosterior(a0 + y2, a0 + n2 - y2)  # sacroplasty
        p_psfs = post["p_event"].sel(arm="psfs", fracture=frac)
        close(p_psfs, stats.beta(x.a, x.b).mean())
        for q in (0.025, 0.5, 0.975):
            close(p_psfs, stats.beta(x.a, x.b).ppf(q), "quantile", q)
        rd = post["risk_difference"].sel(fracture=frac)  # treatment − control = X − Y
        close(rd, x.dist.mean() - y.dist.mean())
        for q in (0.025, 0.5, 0.975):
            close(rd, -difference_quantile(1 - q, x, y), "quantile", q)  # quantiles of X − Y from those of Y − X
        # P(p_psfs < p_sacroplasty) (a benefit: fewer events) exactly vs the MCMC fraction, within its binomial Monte Carlo error
        ind = (rd < 0).astype(float)
        p_exact = prob_less(x, y)
        ess = float(az.ess(ind))
        assert abs(float(ind.mean()) - p_exact) < TOL * np.sqrt(p_exact * (1 - p_exact) / ess) + 1e-3


def test_closed_form_by_brute_force_integration():
    # independent check of the quantile-space integrals with a dense 2-D grid (uniform prior, pathological)
    x, y = BetaPosterior(1, 10), BetaPosterior(6, 8)
    g = (np.arange(4000) + 0.5) / 4000
    fx, fy = stats.beta(1, 10).pdf(g), stats.beta(6, 8).pdf(g)
    joint = np.outer(fx, fy) / 4000**2
    assert prob_less(x, y) == pytest.approx(joint[g[:, None] < g[None, :]].sum(), abs=2e-4)
    cdf0 = joint[(g[None, :] - g[:, None]) <= 0.2].sum()
    assert difference_quantile(cdf0, x, y) == pytest.approx(0.2, abs=2e-3)


@pytest.mark.parametrize("ab", [(0.5, 9.5, 5.5, 7.5), (0.5, 2.5, 1.5, 6.5), (1, 3, 2, 7), (20, 5, 3, 30)])
def test_fixed_quadrature_matches_adaptive_quadrature(ab):
    """The Gauss-Legendre rule in quantile space against scipy's adaptive quad, including zero-event cells under
    Jeffreys priors (Beta(0.5, ·): an unbounded density at 0)."""
    from scipy import integrate

    x, y = BetaPosterior(ab[0], ab[1]), BetaPosterior(ab[2], ab[3])
    ref = integrate.quad(lambda u: x.dist.cdf(y.dist.ppf(u)), 0, 1, limit=500, epsabs=1e-12)[0]
    assert prob_less(x, y) == pytest.approx(ref, abs=1e-7)
    for q in (0.025, 0.5, 0.975):
        t = difference_quantile(q, x, y)
        cdf = integrate.quad(lambda u, t=t: y.dist.cdf(np.clip(x.dist.ppf(u) + t, 0, 1)), 0, 1, limit=500, epsabs=1e-12)[0]
        assert cdf == pytest.approx(q, abs=1e-7)


def test_derived_quantities_are_consistent(secondary):
    _, idata = secondary
    post = idata["posterior"]
    p = post["p_event"]
    xr.testing.assert_allclose(post["risk_difference"], p.sel(arm="psfs") - p.sel(arm="sacroplasty"))
    xr.testing.assert_allclose(post["risk_ratio"], p.sel(arm="psfs") / p.sel(arm="sacroplasty"))
    xr.testing.assert_allclose(post["nnt"], -1 / post["risk_difference"])  # adverse events: patients treated per event avoided
    w = np.array([21, 9]) / 30
    pooled = (p * xr.DataArray(w, dims="fracture", coords={"fracture": p["fracture"]})).sum("fracture")
    xr.testing.assert_allclose(post["p_event_pooled"], pooled)


def test_dirichlet_multinomial_matches_marginal_betas():
    idata = fit({"model": {"kind": "narcotic_change"}, "priors": {"set": "uniform"}})
    post = idata["posterior"]
    for (arm, frac), counts in NARCOTIC.items():
        n = sum(counts)
        for k, level in enumerate(("decrease", "stable", "increase")):
            a, b = 1 + counts[k], 3 + n - 1 - counts[k]  # Dirichlet(1,1,1) marginal: Beta(1 + c_k, 2 + n - c_k)
            d = post["p_category"].sel(arm=arm, fracture=frac, narcotic_change=level)
            close(d, a / (a + b))
            close(d, stats.beta(a, b).ppf(0.5), "quantile", 0.5)
    # "decrease" is the better end in the card: p_best is P(decrease)
    xr.testing.assert_allclose(post["p_best"], post["p_category"].sel(narcotic_change="decrease", drop=True))
    xr.testing.assert_allclose(post["p_worst"], post["p_category"].sel(narcotic_change="increase", drop=True))


def test_complication_rate_matches_beta():
    idata = fit({"model": {"kind": "complications"}, "priors": {"set": "jeffreys"}})
    d = idata["posterior"]["p_event"].sel(arm="psfs")
    a, b = 0.5 + 1, 0.5 + 10  # 1 screw back-out among 11 PSFS patients
    close(d, a / (a + b))
    close(d, stats.beta(a, b).ppf(0.975), "quantile", 0.975)


def test_hierarchical_and_ordinal_variants_converge():
    for doc in ({"model": {"kind": "secondary_procedures", "variant": "hierarchical"}, "priors": {"set": "weakly_informative"},
                 "sampler": {"target_accept": 0.95}},
                {"model": {"kind": "narcotic_change", "variant": "ordered_logit"}, "priors": {"set": "weakly_informative"}}):
        run = resolve({"run": {"name": "t", "seed": 5}, **doc})
        inp, _ = prepare_run(run)
        idata, _ = sample(build_run_model(run, inp), SamplerSettings(draws=1000, tune=1000, chains=2, prior_draws=100, target_accept=0.95), 5)
        d = diagnose(idata, run.kind.estimands(run.spec))
        assert d.status in ("ok", "warning") and d.max_r_hat < 1.02, d
        assert set(run.kind.estimands(run.spec)) <= set(idata["posterior"].data_vars)
        for group in ("prior", "prior_predictive", "posterior_predictive", "log_likelihood", "observed_data"):
            assert group in idata.children


def test_ordinal_probabilities_sum_to_one():
    run = resolve({"run": {"name": "t", "seed": 5}, "model": {"kind": "narcotic_change", "variant": "ordered_logit", "pooling": "none"},
                   "priors": {"set": "weakly_informative"}})
    inp, _ = prepare_run(run)
    idata, _ = sample(build_run_model(run, inp), SamplerSettings(draws=200, tune=300, chains=2, prior_draws=0), 5)
    total = idata["posterior"]["p_category"].sum("narcotic_change")
    np.testing.assert_allclose(total.values, 1.0, rtol=1e-9)
    # on the outcome's own scale, beta > 0 moves PSFS toward later categories: it lowers P(decrease), the better end
    beta = idata["posterior"]["ordinal_log_odds_ratio"]
    diff = idata["posterior"]["difference_p_best"]
    assert float(((beta > 0) == (diff < 0)).mean()) == 1.0
    # and its benefit direction is therefore negative
    assert run.kind.effects(run.spec)["ordinal_log_odds_ratio"] == -1


def test_ordinal_prior_draws_are_valid():
    """Prior (predictive) draws must respect the ordering: SBC found that PyMC's `ordered` transform does not."""
    import pymc as pm

    run = resolve({"run": {"name": "t", "seed": 5}, "model": {"kind": "narcotic_change", "variant": "ordered_logit"},
                   "priors": {"set": "weakly_informative"}})
    inp, _ = prepare_run(run)
    with build_run_model(run, inp):
        prior = pm.sample_prior_predictive(draws=500, random_seed=1)
    c = prior["prior"]["cutpoints"]
    assert bool((c.sel(cutpoint="decrease|stable") < c.sel(cutpoint="stable|increase")).all())
    assert float(prior["prior"]["p_category"].min()) >= 0

"""The fast tier's approximate posteriors (nested Laplace + PSIS) against posteriors computed independently in the test:
a conjugate normal model (the posterior is Gaussian) and a hierarchical normal model (eight-schools form, non-centred)
whose posterior is integrated by quadrature over the group SD."""

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from bayes_sacral.laplace import LaplaceIS, psis


def _weighted(fit, name):
    x = np.asarray(fit.draws[name], float)
    w = fit.weights
    mean = float(np.sum(w * x))
    sd = float(np.sqrt(np.sum(w * (x - mean) ** 2)))
    return mean, sd / np.sqrt(fit.ess)


def test_conjugate_normal_mean_is_reproduced():
    y = np.array([1.3, 0.4, 2.2, 1.9, 0.8, 1.1])
    s, m0, s0 = 0.9, 0.0, 2.0
    with pm.Model() as model:
        obs = pm.Data("y", y)
        mu = pm.Normal("mu", m0, s0)
        pm.Normal("y_obs", mu, s, observed=obs)
    fit = LaplaceIS(model, ["mu"]).fit({"y": y}, seed=1, draws=2000)
    prec = 1 / s0**2 + len(y) / s**2
    post_mean = (m0 / s0**2 + y.sum() / s**2) / prec
    mean, mcse = _weighted(fit, "mu")
    assert fit.ok() and fit.grid_points == 1
    assert fit.khat < 0.5 and fit.ess > 1000  # a t proposal for a Gaussian target: weights vary, but little
    assert abs(mean - post_mean) < 4 * mcse
    p = fit.prob(np.asarray(fit.draws["mu"]) > 1.5)
    assert p == pytest.approx(1 - stats.norm.cdf(1.5, post_mean, prec**-0.5), abs=0.03)


def test_models_of_one_structure_share_the_compiled_functions_but_not_their_data():
    """Two models of the same structure (same graph, other data) compile once; each fit uses its own model's data."""
    s, s0 = 0.9, 2.0

    def model_of(y):
        with pm.Model() as m:
            obs = pm.Data("y", y)
            mu = pm.Normal("mu", 0.0, s0)
            pm.Normal("y_obs", mu, s, observed=obs)
        return m

    ya, yb = np.array([1.0, 1.5, 0.5]), np.array([-3.0, -2.0, -2.5])
    la, lb = LaplaceIS(model_of(ya), ["mu"]), LaplaceIS(model_of(yb), ["mu"])
    assert la.c is lb.c
    for obj, y in ((la, ya), (lb, yb), (la, ya)):
        fit = obj.fit({"y": y}, seed=2, draws=2000)
        post_mean = (y.sum() / s**2) / (1 / s0**2 + len(y) / s**2)
        mean, mcse = _weighted(fit, "mu")
        assert abs(mean - post_mean) < 4 * mcse + 1e-3, (mean, post_mean)


def _schools():
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    s = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    return y, s


def _quadrature(y, s, s0, h):
    """E[mu | y], E[tau | y] and P(theta_1 > 0 | y) by quadrature over tau: given tau, y ~ MVN(0, diag(s² + tau²) + s0²)
    and mu, theta are Gaussian (Gelman et al., BDA3 §5.4, with a normal prior on mu)."""
    taus = np.linspace(1e-4, 8 * h, 8000)
    logpost, e_mu, p_theta1 = [], [], []
    for tau in taus:
        v = s**2 + tau**2
        cov = np.diag(v) + s0**2
        logpost.append(stats.halfnorm.logpdf(tau, scale=h) + stats.multivariate_normal.logpdf(y, np.zeros_like(y), cov))
        prec = 1 / s0**2 + np.sum(1 / v)
        m_mu, v_mu = np.sum(y / v) / prec, 1 / prec
        a = tau**2 / v[0]
        mean1 = a * y[0] + (1 - a) * m_mu
        var1 = a * s[0] ** 2 + (1 - a) ** 2 * v_mu
        e_mu.append(m_mu)
        p_theta1.append(stats.norm.sf(0, mean1, np.sqrt(var1)))
    w = np.exp(np.array(logpost) - max(logpost))
    w /= w.sum()
    return float(w @ np.array(e_mu)), float(w @ taus), float(w @ np.array(p_theta1))


def test_hierarchical_model_matches_quadrature_over_the_group_sd():
    y, s = _schools()
    s0, h = 20.0, 10.0
    with pm.Model() as model:
        obs = pm.Data("y", y)
        mu = pm.Normal("mu", 0, s0)
        sd = pm.HalfNormal("theta_sd", h)
        z = pm.Normal("theta_z", 0, 1, shape=len(y))
        theta = pm.Deterministic("theta", mu + sd * z)
        pm.Normal("y_obs", theta, s, observed=obs)
    la = LaplaceIS(model, ["mu", "theta_sd", "theta"])
    assert la.grid_name == "theta_sd_log__"  # the funnel's scale is integrated over a grid
    fit = la.fit({"y": y}, seed=3, draws=4000)
    assert fit.ok() and fit.grid_points > 5, (fit.khat, fit.ess, fit.grid_points)
    e_mu, e_tau, p1 = _quadrature(y, s, s0, h)
    mean_mu, se_mu = _weighted(fit, "mu")
    mean_tau, se_tau = _weighted(fit, "theta_sd")
    assert abs(mean_mu - e_mu) < 4 * se_mu + 0.05, (mean_mu, e_mu)
    assert abs(mean_tau - e_tau) < 4 * se_tau + 0.05, (mean_tau, e_tau)
    theta1 = np.asarray(fit.draws["theta"])[:, 0]
    assert fit.prob(theta1 > 0) == pytest.approx(p1, abs=4 * np.sqrt(p1 * (1 - p1) / fit.ess) + 0.005)


def test_a_posterior_with_heavier_tails_than_the_approximation_is_flagged():
    """Negative control: one Cauchy observation under a vague prior has a posterior with Cauchy tails, which no Laplace
    proposal covers; Pareto k̂ must flag the fit (and the design engine then refits it by NUTS)."""
    with pm.Model() as model:
        obs = pm.Data("y", np.array([0.0]))
        mu = pm.Normal("mu", 0, 1000)
        pm.Cauchy("y_obs", mu, 1, observed=obs)
    la = LaplaceIS(model, ["mu"])
    for df in (np.inf, 8.0):
        fit = la.fit({"y": np.array([0.0])}, seed=1, draws=4000, df=df)
        assert fit.converged and not fit.ok() and fit.khat > 0.7, (df, fit.khat, fit.ess)


def test_psis_handles_draws_outside_the_support():
    rng = np.random.default_rng(0)
    lr = rng.normal(size=1000)
    lr[:5] = -np.inf
    lr[5] = np.nan
    w, k = psis(lr)
    assert np.all(w[:6] == 0) and w.sum() == pytest.approx(1) and np.isfinite(k) and k < 0.5
    w, k = psis(np.full(20, -np.inf))
    assert k == np.inf

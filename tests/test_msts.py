"""MSTS models: the summary route reproduces the classical answer; routes, likelihoods and estimands; checks."""

import numpy as np
import pytest
from scipy import stats

from bayes_sacral.config import resolve
from bayes_sacral.errors import InputError
from bayes_sacral.fitting import build_run_model, fit_run, prepare_run
from bayes_sacral.inference import SamplerSettings, sample

MCID_POINTS = 12 / 100 * 30  # Gazendam et al.: 12 points of the 0-100 MSTS scale

IPD = {"source": "ipd", "path": "tests/data/ipd_valid.csv"}


def run_of(doc, seed=3):
    return resolve({"run": {"name": "t", "seed": seed}, **doc})


def test_summary_route_reproduces_behrens_fisher_and_welch():
    """Reference priors, no pooling, per-cell SD and the slope held at 1 (the change-score model): the posterior of the
    difference in mean change is the Behrens-Fisher distribution (flat means, Jeffreys SDs), which Welch's interval
    approximates."""
    run = run_of({"model": {"kind": "msts", "pooling": "none", "sigma": "by_cell"},
                  "priors": {"set": "reference", "preop_slope": {"dist": "Normal", "mu": 1.0, "sigma": 0.001}}})
    inp, _ = prepare_run(run)
    idata, _ = sample(build_run_model(run, inp), SamplerSettings(draws=4000, tune=2000, chains=4, prior_draws=0, target_accept=0.95), 3)
    d = idata["posterior"]["change_difference"].sel(fracture="pathological").values.ravel()
    # the paper: 7.3 -> 22.6 (n 9, SD of change 19% of 30) vs 10.7 -> 18.1 (n 12, 13%)
    m1, s1, n1, m2, s2, n2 = 22.6 - 7.3, 5.7, 9, 18.1 - 10.7, 3.9, 12
    rng = np.random.default_rng(0)
    bf = (m1 + s1 / np.sqrt(n1) * rng.standard_t(n1 - 1, 400_000)) - (m2 + s2 / np.sqrt(n2) * rng.standard_t(n2 - 1, 400_000))
    q = [0.025, 0.25, 0.5, 0.75, 0.975]
    np.testing.assert_allclose(np.quantile(d, q), np.quantile(bf, q), atol=0.25)
    w = stats.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=False)
    v1, v2 = s1**2 / n1, s2**2 / n2
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    half = stats.t.ppf(0.975, df) * np.sqrt(v1 + v2)
    assert w.pvalue < 0.01
    np.testing.assert_allclose(np.quantile(d, [0.025, 0.975]), [m1 - m2 - half, m1 - m2 + half], atol=0.4)  # stated tolerance
    assert "prior" not in idata.children or True


def test_route_and_likelihood_validation():
    with pytest.raises(InputError) as exc:
        run_of({"model": {"kind": "msts", "likelihood": "student_t"}})
    assert exc.value.problems[0].location == "model.likelihood"
    with pytest.raises(InputError) as exc:
        run_of({"model": {"kind": "msts", "route": "ipd"}})
    assert exc.value.problems[0].location == "model.route"
    with pytest.raises(InputError):
        run_of({"data": IPD, "model": {"kind": "msts", "route": "summary"}})


def test_default_mcid_thresholds_are_labelled():
    run = run_of({"model": {"kind": "msts"}})
    th = run.thresholds()
    assert th["mcid"][0] == pytest.approx(3.6) == pytest.approx(MCID_POINTS)
    assert th["mcid_8pct"][0] == pytest.approx(2.4) and th["mcid_17pct"][0] == pytest.approx(5.1)
    assert "Gazendam" in th["mcid"][2] and "treatment_effect" in th["mcid"][1]
    assert run.kind.effects(run.spec)["treatment_effect"] == 1  # higher MSTS is better


@pytest.fixture(scope="module")
def bb_ipd():
    run = run_of({"data": IPD, "model": {"kind": "msts", "likelihood": "beta_binomial"}})
    inp, _ = prepare_run(run)
    idata, _ = sample(build_run_model(run, inp), SamplerSettings(draws=300, tune=500, chains=2, prior_draws=50), 3)
    return inp, idata


def test_beta_binomial_effect_is_the_average_marginal_effect(bb_ipd):
    """A second implementation in numpy of the points-scale effect of the logit model."""
    inp, idata = bb_ipd
    post = idata["posterior"]
    d = inp.data
    pre, f = d["pre"].values.astype(float), d["stratum_idx"].values
    a = post["intercept"].values  # (chain, draw, fracture)
    b = post["treatment_effect_logit"].values
    s = post["preop_slope"].values[..., None]
    eta0 = a[..., f] + s * (pre - 15)
    diff = 30 * (1 / (1 + np.exp(-(eta0 + b[..., f]))) - 1 / (1 + np.exp(-eta0)))
    for j, frac in enumerate(["pathological", "impending"]):
        np.testing.assert_allclose(post["treatment_effect"].sel(fracture=frac).values, diff[..., f == j].mean(-1), rtol=1e-9)
    # the interaction contrasts each stratum with the first (reference) one
    np.testing.assert_allclose(post["interaction"].sel(contrast="impending vs pathological").values,
                               post["treatment_effect"].values[..., 1] - post["treatment_effect"].values[..., 0])
    pp = idata["posterior_predictive"]["post"].values
    assert pp.min() >= 0 and pp.max() <= 30 and np.allclose(pp, np.round(pp))


@pytest.mark.parametrize("lik", ["normal", "student_t"])
def test_ipd_likelihoods_share_estimands(lik):
    run = run_of({"data": IPD, "model": {"kind": "msts", "likelihood": lik, "pooling": "none"}})
    inp, _ = prepare_run(run)
    idata, _ = sample(build_run_model(run, inp), SamplerSettings(draws=300, tune=400, chains=2, prior_draws=50), 3)
    post = idata["posterior"]
    for v in ("treatment_effect", "treatment_effect_pct", "interaction", "treatment_effect_average", "change_difference"):
        assert v in post
    np.testing.assert_allclose(post["treatment_effect_pct"].values, post["treatment_effect"].values / 30 * 100)
    assert post["treatment_effect"].dims[-1] == "fracture"


def test_reconstructed_route_pools_blocks(tmp_path):
    run = run_of({"model": {"kind": "msts", "route": "reconstructed", "likelihood": "normal", "reconstructions": 3},
                  "sampler": {"draws": 200, "tune": 300, "chains": 2, "prior_draws": 50}})
    res = fit_run(run, tmp_path)
    dt = res.idata
    post = dt["posterior"]
    assert post.sizes["chain"] == 6 and list(np.unique(post["reconstruction"].values)) == [1, 2, 3]
    assert dt["reconstruction_data"].to_dataset().sizes["reconstruction"] == 3
    # each block was fitted to its own data: the blocks' posterior means differ
    means = post["treatment_effect"].sel(fracture="pathological").groupby("reconstruction").mean(...).values
    assert np.ptp(means) > 0
    assert any("reconstructed" in a for a in res.manifest["data"]["assumptions"])
    assert any("18.14" in a for a in res.manifest["data"]["assumptions"])
    assert res.manifest["replicates"]["count"] == 3


def test_domain_model_on_items():
    run = run_of({"data": IPD, "model": {"kind": "msts_domains"}})
    inp, _ = prepare_run(run)
    idata, _ = sample(build_run_model(run, inp), SamplerSettings(draws=200, tune=300, chains=2, prior_draws=30), 3)
    post = idata["posterior"]
    assert post["domain_effect"].dims[-2:] == ("fracture", "item")
    eff, pts = post["domain_effect"].values, post["domain_effect_points"].values
    assert ((eff > 0) == (pts > 0)).mean() == 1.0  # a positive log odds ratio raises the expected item score
    c = post["cutpoints"].values
    assert (np.diff(c, axis=-1) > 0).all()
    with pytest.raises(InputError):
        prepare_run(run_of({"data": {"source": "ipd", "path": "tests/data/ipd_minimal.csv"}, "model": {"kind": "msts_domains"}}))


def test_cli_loo_ppc_compare(cli, tmp_path):
    base = ["--out", tmp_path, "--quiet", "--set", "sampler.draws=300", "--set", "sampler.tune=400", "--set", "sampler.chains=2",
            "--set", "data.source='ipd'", "--set", "data.path='tests/data/ipd_valid.csv'", "--set", "model.route='ipd'"]
    cfg = "configs/msts_ipd_example.toml"
    assert cli("fit", cfg, "--set", "run.name=bb", *base).code == 0
    assert cli("fit", cfg, "--set", "run.name=nm", "--set", "model.likelihood=normal", *base).code == 0
    loo = cli("summarize", "bb", "--store", tmp_path, "--loo", "--format", "json").json()[0]
    assert loo["n_points"] == 30 and loo["elpd_loo"] < 0
    ppc = cli("summarize", "bb", "--store", tmp_path, "--ppc", "--format", "json").json()
    assert {r["statistic"] for r in ppc} == {"mean", "sd", "at_ceiling"} and len(ppc) == 12
    cmp = cli("compare", "bb", "nm", "--store", tmp_path, "--format", "json").json()
    assert {r["run"] for r in cmp} == {"bb", "nm"} and cmp[0]["elpd_diff"] == 0
    assert cli("summarize", "bb", "--store", tmp_path, "--spread").code == 2  # not a reconstructed run


def test_summary_route_agrees_with_the_patient_level_fit(study):
    """Simulate patients from the patient-level model (slope 0.5, not the change-score model's 1), then fit the same data
    twice: by the patient-level route and from its summaries (cell means, SDs of change and pre-treatment SDs). With the
    variance of change modelled as sigma² + (1 − slope)²·pre_sd², the two posteriors of the treatment effect agree within
    a quarter of a posterior SD."""
    import pandas as pd

    import bayes_sacral as bs

    rng = np.random.default_rng(11)
    rows, k = [], 0
    for frac, pre_mean, a, te in (("pathological", 10.0, 17.0, 4.0), ("impending", 16.0, 22.0, 1.0)):
        for arm in ("psfs", "sacroplasty"):
            for _ in range(30):
                k += 1
                pre = int(np.clip(np.round(rng.normal(pre_mean, 4.0)), 0, 30))
                post = int(np.clip(np.round(a + te * (arm == "psfs") + 0.5 * (pre - 15) + rng.normal(0, 3.5)), 0, 30))
                rows.append({"patient_id": f"S{k}", "arm": arm, "fracture": frac, "msts_pre": pre, "msts_post": post})
    df = pd.DataFrame(rows)
    lines = ["# format: bayes-sacral-summary/1", "id,quantity,arm,fracture,time,statistic,value,unit,n,source,label"]
    for (arm, frac), g in df.groupby(["arm", "fracture"]):
        n, tag = len(g), f"{arm}.{frac}"
        ch = g["msts_post"] - g["msts_pre"]
        lines += [f"n.{tag},patients,{arm},{frac},,count,{n},patients,,T,x",
                  f"pre.{tag},msts_total,{arm},{frac},pre,mean,{g['msts_pre'].mean():.3f},points,{n},T,x",
                  f"presd.{tag},msts_total,{arm},{frac},pre,sd,{g['msts_pre'].std(ddof=1):.3f},points,{n},T,x",
                  f"post.{tag},msts_total,{arm},{frac},post,mean,{g['msts_post'].mean():.3f},points,{n},T,x",
                  f"chg.{tag},msts_total,{arm},{frac},change,mean,{ch.mean():.3f},points,{n},T,x",
                  f"chgsd.{tag},msts_total,{arm},{frac},change,sd,{ch.std(ddof=1):.3f},points,{n},T,x"]
    from bayes_sacral.data.source import StudyData
    from bayes_sacral.data.summary import parse_summary

    sd = parse_summary("\n".join(lines) + "\n", study.card, "simulated.csv")
    model = {"kind": "score", "pooling": "none", "likelihood": "normal"}
    sampler = {"draws": 1500, "tune": 1000, "chains": 2, "prior_draws": 0}
    ipd = bs.fit({"run": {"name": "i", "seed": 1}, "model": {**model, "route": "ipd"}, "sampler": sampler}, data=study.read_ipd(df))
    summ = bs.fit({"run": {"name": "s", "seed": 1}, "model": {**model, "route": "summary"}, "sampler": sampler},
                  data=StudyData.from_summary(study, sd))
    for frac in ("pathological", "impending"):
        a = ipd.idata["posterior"]["treatment_effect"].sel(fracture=frac).values.ravel()
        b = summ.idata["posterior"]["treatment_effect"].sel(fracture=frac).values.ravel()
        assert abs(a.mean() - b.mean()) < 0.25 * a.std(), (frac, a.mean(), b.mean(), a.std())
    # what the SDs of change identify is sigma² + (1 − slope)²·pre_sd², not sigma alone
    expected = float(summ.idata["posterior"]["change_sd_expected"].mean())
    observed = np.sqrt(np.mean([(g["msts_post"] - g["msts_pre"]).var(ddof=1) for _, g in df.groupby(["arm", "fracture"])]))
    assert abs(expected - observed) < 0.1 * observed, (expected, observed)

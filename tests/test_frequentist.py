"""Frequentist reproduction agrees with scipy and statsmodels computed here from the paper's numbers."""

import numpy as np
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from bayes_sacral.data.ipd import read_ipd
from bayes_sacral.stats.frequentist import reproduce_from_ipd, reproduce_from_summary
from bayes_sacral.study import load_study

CARD = load_study().card


def row(results, outcome, stratum, test):
    return next(r for r in results if r.outcome == outcome and r.stratum == stratum and r.test == test)


@pytest.mark.parametrize("stratum,a,b", [
    ("pathological", (51, 19, 9), (25, 13, 12)),
    ("impending", (38, 17, 2), (32, 12, 7)),
])
def test_t_tests_from_reported_change(published, stratum, a, b):
    res = reproduce_from_summary(published)
    pts = lambda m: m * 30 / 100  # noqa: E731
    welch = stats.ttest_ind_from_stats(pts(a[0]), pts(a[1]), a[2], pts(b[0]), pts(b[1]), b[2], equal_var=False)
    pooled = stats.ttest_ind_from_stats(pts(a[0]), pts(a[1]), a[2], pts(b[0]), pts(b[1]), b[2], equal_var=True)
    w, p = row(res, "msts_change", stratum, "welch_t"), row(res, "msts_change", stratum, "pooled_t")
    assert w.statistic == pytest.approx(welch.statistic, rel=1e-10) and w.p_value == pytest.approx(welch.pvalue, rel=1e-10)
    assert p.statistic == pytest.approx(pooled.statistic, rel=1e-10) and p.p_value == pytest.approx(pooled.pvalue, rel=1e-10)
    assert w.published_p_value == {"pathological": "0.005", "impending": "0.72"}[stratum]
    assert "ANCOVA" in w.note


@pytest.mark.parametrize("stratum,table", [("pathological", [[0, 9], [5, 7]]), ("impending", [[0, 2], [1, 6]])])
def test_exact_tests_of_secondary_procedures(published, stratum, table):
    res = reproduce_from_summary(published)
    assert row(res, "secondary_procedure", stratum, "fisher_exact").p_value == pytest.approx(stats.fisher_exact(table).pvalue)
    assert row(res, "secondary_procedure", stratum, "boschloo_exact").p_value == pytest.approx(stats.boschloo_exact(table).pvalue)
    (a, b), (c, d) = table  # risk difference treatment − control
    assert row(res, "secondary_procedure", stratum, "fisher_exact").estimate == pytest.approx(a / (a + b) - c / (c + d))


def test_fisher_pathological_by_hypergeometric_enumeration(published):
    # 5 events among 21 patients, 9 in PSFS; two-sided p = sum of tables no more likely than the observed (0 in PSFS).
    probs = [stats.hypergeom.pmf(k, 21, 5, 9) for k in range(0, 6)]
    p_obs = probs[0]
    p = sum(q for q in probs if q <= p_obs * (1 + 1e-7))
    res = reproduce_from_summary(published)
    assert row(res, "secondary_procedure", "pathological", "fisher_exact").p_value == pytest.approx(p)


def test_ancova_matches_statsmodels(data_dir, published):
    ipd = read_ipd(data_dir / "ipd_valid.csv", CARD)
    df = ipd.frame.assign(arm=ipd.frame["arm"].astype(str), fracture=ipd.frame["fracture"].astype(str),
                          msts_pre=ipd.frame["msts_pre"].astype(float), msts_post=ipd.frame["msts_post"].astype(float))
    fit = smf.ols("msts_post ~ msts_pre + C(arm, Treatment('sacroplasty')) * C(fracture, Treatment('pathological'))", df).fit()
    arm = "C(arm, Treatment('sacroplasty'))[T.psfs]"
    inter = arm + ":C(fracture, Treatment('pathological'))[T.impending]"
    res = reproduce_from_ipd(ipd, published)
    path = row(res, "msts_post", "pathological", "ancova")
    assert path.estimate == pytest.approx(fit.params[arm]) and path.p_value == pytest.approx(fit.pvalues[arm])
    c = np.zeros(len(fit.params))
    c[list(fit.params.index).index(arm)] = 1
    c[list(fit.params.index).index(inter)] = 1
    t = fit.t_test(c)
    imp = row(res, "msts_post", "impending", "ancova")
    assert imp.estimate == pytest.approx(float(t.effect[0])) and imp.p_value == pytest.approx(float(t.pvalue))
    lo, hi = fit.conf_int().loc[arm]
    assert (path.ci_low, path.ci_high) == pytest.approx((lo, hi))
    assert row(res, "msts_post", "interaction: impending vs pathological", "ancova").p_value == pytest.approx(fit.pvalues[inter])
    assert path.published_p_value == "0.005"  # declared the same patients
    assert row(reproduce_from_ipd(ipd), "msts_post", "pathological", "ancova").published_p_value is None


def test_ipd_change_t_tests(data_dir):
    ipd = read_ipd(data_dir / "ipd_valid.csv", CARD)
    f = ipd.frame
    ch = (f["msts_post"] - f["msts_pre"]).astype(float)
    sel = (f["fracture"] == "pathological")
    a, b = ch[sel & (f["arm"] == "psfs")], ch[sel & (f["arm"] == "sacroplasty")]
    want = stats.ttest_ind(a, b, equal_var=False)
    got = row(reproduce_from_ipd(ipd), "msts_change", "pathological", "welch_t")
    assert got.p_value == pytest.approx(want.pvalue) and got.source == "ipd"

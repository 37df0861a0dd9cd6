"""Frequentist reproduction of the published analysis: t tests on change scores, exact tests, ANCOVA from IPD."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..data.ipd import IPDData
from ..data.summary import SummaryData
from ..vocabulary import ARMS, FRACTURES, MSTS_MAX_POINTS

__all__ = ["TestResult", "reproduce_from_summary", "reproduce_from_ipd", "ancova", "results_frame"]

ANCOVA_NOTE = (
    "The paper's p-value is from an ANCOVA of postoperative MSTS on treatment with the preoperative MSTS as "
    "covariate. That needs each patient's pre/post pair (the covariate's within-cell spread and its correlation with "
    "the outcome); the summaries give only cell means and the SD of change, so the ANCOVA cannot be reproduced "
    "exactly. The t tests on change scores are the closest analyses the summaries support (ANCOVA with slope 1)."
)


@dataclass
class TestResult:
    """One reproduced test (a JSON row of ``bayes-sacral reproduce``)."""

    outcome: str
    stratum: str
    test: str
    statistic: float
    p_value: float
    published_p_value: str | None
    estimate: float | None = None
    estimate_label: str = ""
    ci_low: float | None = None
    ci_high: float | None = None
    df: float | None = None
    source: str = "summary"
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _published_p(sd: SummaryData | None, fracture: str) -> str | None:
    if sd is None:
        return None
    row = sd.canonical(quantity="msts_total", arm="all", fracture=fracture, time="change", statistic="p_value")
    if row is None:
        return None
    return ("" if row["relation"] == "=" else row["relation"]) + row["value_text"]


def two_sample_t(m1, s1, n1, m2, s2, n2, equal_var: bool, conf: float = 0.95) -> tuple[float, float, float, float, float, float]:
    """t statistic, two-sided p, df, difference m1 − m2 and its confidence interval, from summary statistics."""
    diff = m1 - m2
    if equal_var:
        df = n1 + n2 - 2
        sp2 = ((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / df
        se = np.sqrt(sp2 * (1 / n1 + 1 / n2))
    else:
        v1, v2 = s1**2 / n1, s2**2 / n2
        se = np.sqrt(v1 + v2)
        df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    t = diff / se
    p = 2 * stats.t.sf(abs(t), df)
    q = stats.t.ppf(0.5 + conf / 2, df)
    return float(t), float(p), float(df), float(diff), float(diff - q * se), float(diff + q * se)


def exact_tests(events_psfs: int, n_psfs: int, events_sacro: int, n_sacro: int) -> list[tuple[str, float, float, str]]:
    """Fisher's and Boschloo's exact tests (two-sided) of a 2x2 table; (test, statistic, p, statistic meaning)."""
    table = np.array([[events_psfs, n_psfs - events_psfs], [events_sacro, n_sacro - events_sacro]])
    fis = stats.fisher_exact(table, alternative="two-sided")
    bos = stats.boschloo_exact(table, alternative="two-sided")
    return [
        ("fisher_exact", float(fis.statistic), float(fis.pvalue), "sample odds ratio (PSFS vs sacroplasty)"),
        ("boschloo_exact", float(bos.statistic), float(bos.pvalue), "Fisher one-sided p used as Boschloo's statistic"),
    ]


def reproduce_from_summary(sd: SummaryData) -> list[TestResult]:
    """Tests the published summaries support, per fracture stratum, beside the published p-values."""
    ds = sd.to_dataset()
    out: list[TestResult] = []
    for frac in FRACTURES:
        rows = {arm: sd.canonical(quantity="msts_total", arm=arm, fracture=frac, time="change", statistic="mean") for arm in ARMS}
        sds = {arm: sd.canonical(quantity="msts_total", arm=arm, fracture=frac, time="change", statistic="sd") for arm in ARMS}
        if all(r is not None for r in (*rows.values(), *sds.values())):
            factor = {arm: (MSTS_MAX_POINTS / 100 if rows[arm]["unit"] == "percent_of_max" else 1.0) for arm in ARMS}
            m = {arm: rows[arm]["value"] * factor[arm] for arm in ARMS}
            s = {arm: sds[arm]["value"] * factor[arm] for arm in ARMS}
            n = {arm: int(rows[arm]["n"]) for arm in ARMS}
            for test, eq in (("welch_t", False), ("pooled_t", True)):
                t, p, df, diff, lo, hi = two_sample_t(m["psfs"], s["psfs"], n["psfs"], m["sacroplasty"], s["sacroplasty"], n["sacroplasty"], eq)
                note = ANCOVA_NOTE if test == "welch_t" else "Student's t with pooled variance; the paper reports an ANCOVA (see the Welch row)."
                if min(n.values()) < 3:
                    note += f" With n = {min(n.values())} in one arm the test has almost no information."
                out.append(TestResult("msts_change", frac, test, t, p, _published_p(sd, frac), diff,
                                      "mean change PSFS − sacroplasty (MSTS points; from the reported % ± SD of change)", lo, hi, df, "summary", note))
        ev = ds["secondary_procedures"].sel(fracture=frac)
        nn = ds["n"].sel(fracture=frac)
        if not (np.isnan(ev).any() or np.isnan(nn).any()):
            e = {a: int(ev.sel(arm=a)) for a in ARMS}
            k = {a: int(nn.sel(arm=a)) for a in ARMS}
            rd = e["sacroplasty"] / k["sacroplasty"] - e["psfs"] / k["psfs"]
            for test, stat, p, meaning in exact_tests(e["psfs"], k["psfs"], e["sacroplasty"], k["sacroplasty"]):
                out.append(TestResult("secondary_procedure", frac, test, stat, p, None, rd,
                                      f"risk difference sacroplasty − PSFS ({e['sacroplasty']}/{k['sacroplasty']} vs {e['psfs']}/{k['psfs']}); statistic: {meaning}",
                                      source="summary", note="The paper reports no test of secondary procedures."))
    ev = ds["secondary_procedures"]
    if not np.isnan(ev).any():
        e = ev.sum("fracture").astype(int)
        k = ds["n"].sum("fracture").astype(int)
        rd = float(e.sel(arm="sacroplasty") / k.sel(arm="sacroplasty") - e.sel(arm="psfs") / k.sel(arm="psfs"))
        for test, stat, p, meaning in exact_tests(int(e.sel(arm="psfs")), int(k.sel(arm="psfs")), int(e.sel(arm="sacroplasty")), int(k.sel(arm="sacroplasty"))):
            out.append(TestResult("secondary_procedure", "all (strata pooled)", test, stat, p, None, rd,
                                  f"risk difference sacroplasty − PSFS, strata pooled; statistic: {meaning}",
                                  source="summary", note="Pooling ignores the fracture strata (confounded with arm); shown for orientation only."))
    return out


@dataclass
class AncovaResult:
    coef: pd.Series
    se: pd.Series
    t: pd.Series
    p: pd.Series
    df_resid: int
    sigma: float
    cov: np.ndarray


def ancova(frame: pd.DataFrame) -> AncovaResult:
    """OLS of ``msts_post ~ msts_pre + arm * fracture`` (treatment coding: sacroplasty, pathological as reference).

    The preoperative score is centred at 15 points, so the intercept is the expected postoperative score of a
    sacroplasty patient with a pathological fracture and a preoperative MSTS of 15.
    """
    psfs = (frame["arm"].astype(str) == "psfs").to_numpy(float)
    imp = (frame["fracture"].astype(str) == "impending").to_numpy(float)
    pre = frame["msts_pre"].to_numpy(float) - 15.0
    y = frame["msts_post"].to_numpy(float)
    names = ["intercept", "msts_pre_c15", "fracture[impending]", "arm[psfs]", "arm[psfs]:fracture[impending]"]
    X = np.column_stack([np.ones_like(y), pre, imp, psfs, psfs * imp])
    keep = [True] * 5
    if imp.sum() == 0 or (psfs * imp).sum() == 0 or ((1 - psfs) * imp).sum() == 0:
        keep[2] = keep[4] = imp.sum() > 0 and (psfs * imp).sum() > 0 and ((1 - psfs) * imp).sum() > 0
    X = X[:, keep]
    names = [nm for nm, k in zip(names, keep, strict=True) if k]
    n, k = X.shape
    if n <= k:
        raise ValueError(f"ANCOVA needs more patients ({n}) than coefficients ({k})")
    XtX_inv = np.linalg.inv(X.T @ X)
    beta = XtX_inv @ X.T @ y
    resid = y - X @ beta
    df = n - k
    sigma2 = float(resid @ resid / df)
    cov = sigma2 * XtX_inv
    se = np.sqrt(np.diag(cov))
    t = beta / se
    p = 2 * stats.t.sf(np.abs(t), df)
    idx = pd.Index(names)
    return AncovaResult(pd.Series(beta, idx), pd.Series(se, idx), pd.Series(t, idx), pd.Series(p, idx), df, float(np.sqrt(sigma2)), cov)


def reproduce_from_ipd(ipd: IPDData, sd: SummaryData | None = None) -> list[TestResult]:
    """The paper's ANCOVA and the summary-level tests, computed from patient-level data."""
    f = ipd.frame
    out: list[TestResult] = []
    res = ancova(f)
    names = list(res.coef.index)
    q = lambda df: stats.t.ppf(0.975, df)  # noqa: E731
    for frac in FRACTURES:
        if frac == "pathological":
            c = np.array([1.0 if nm == "arm[psfs]" else 0.0 for nm in names])
        else:
            if "arm[psfs]:fracture[impending]" not in names:
                continue
            c = np.array([1.0 if nm in ("arm[psfs]", "arm[psfs]:fracture[impending]") else 0.0 for nm in names])
        est = float(c @ res.coef.to_numpy())
        se = float(np.sqrt(c @ res.cov @ c))
        t = est / se
        p = float(2 * stats.t.sf(abs(t), res.df_resid))
        out.append(TestResult("msts_post", frac, "ancova", t, p, _published_p(sd, frac), est,
                              "adjusted difference in postoperative MSTS, PSFS − sacroplasty (points), preop MSTS as covariate",
                              est - q(res.df_resid) * se, est + q(res.df_resid) * se, float(res.df_resid), "ipd",
                              "OLS msts_post ~ msts_pre + arm * fracture; the paper's analysis."))
    if "arm[psfs]:fracture[impending]" in names:
        nm = "arm[psfs]:fracture[impending]"
        out.append(TestResult("msts_post", "interaction", "ancova", float(res.t[nm]), float(res.p[nm]), None, float(res.coef[nm]),
                              "treatment effect, impending − pathological (points)",
                              float(res.coef[nm] - q(res.df_resid) * res.se[nm]), float(res.coef[nm] + q(res.df_resid) * res.se[nm]),
                              float(res.df_resid), "ipd", "Test of treatment × fracture interaction."))
    change = f["msts_post"].astype(float) - f["msts_pre"].astype(float)
    for frac in FRACTURES:
        sel = f["fracture"].astype(str) == frac
        a = change[sel & (f["arm"].astype(str) == "psfs")].to_numpy()
        b = change[sel & (f["arm"].astype(str) == "sacroplasty")].to_numpy()
        if len(a) >= 2 and len(b) >= 2:
            for test, eq in (("welch_t", False), ("pooled_t", True)):
                t, p, df, diff, lo, hi = two_sample_t(a.mean(), a.std(ddof=1), len(a), b.mean(), b.std(ddof=1), len(b), eq)
                out.append(TestResult("msts_change", frac, test, t, p, _published_p(sd, frac), diff,
                                      "mean change PSFS − sacroplasty (MSTS points)", lo, hi, df, "ipd", ""))
        if "secondary_procedure" in f.columns:
            ev = f.loc[sel, ["arm", "secondary_procedure"]].dropna()
            if not ev.empty:
                e = {arm: int(ev.loc[ev["arm"].astype(str) == arm, "secondary_procedure"].sum()) for arm in ARMS}
                k = {arm: int((ev["arm"].astype(str) == arm).sum()) for arm in ARMS}
                if min(k.values()) > 0:
                    rd = e["sacroplasty"] / k["sacroplasty"] - e["psfs"] / k["psfs"]
                    for test, stat, p, meaning in exact_tests(e["psfs"], k["psfs"], e["sacroplasty"], k["sacroplasty"]):
                        out.append(TestResult("secondary_procedure", frac, test, stat, p, None, rd,
                                              f"risk difference sacroplasty − PSFS ({e['sacroplasty']}/{k['sacroplasty']} vs {e['psfs']}/{k['psfs']}); statistic: {meaning}",
                                              source="ipd"))
    return out


def results_frame(results: list[TestResult]) -> pd.DataFrame:
    """Results as a DataFrame with the JSON row keys first."""
    cols = ["outcome", "stratum", "test", "statistic", "p_value", "published_p_value", "estimate", "ci_low", "ci_high", "df", "source", "estimate_label", "note"]
    return pd.DataFrame([r.to_dict() for r in results], columns=cols)

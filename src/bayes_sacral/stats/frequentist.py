"""Frequentist reproduction of a published analysis: t tests on change scores, exact tests, ANCOVA from patient data.

Every comparison is treatment − control (the card's arms), per stratum; outcomes, bounds and strata come from the card.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ..data.ipd import IPDData
from ..data.summary import SummaryData, event_counts

__all__ = ["TestResult", "reproduce_from_summary", "reproduce_from_ipd", "ancova", "results_frame", "ANCOVA_NOTE"]

ANCOVA_NOTE = (
    "A published ANCOVA of the post-treatment score on treatment with the pre-treatment score as covariate needs each "
    "patient's pre/post pair (the covariate's within-cell spread and its correlation with the outcome); summaries give only "
    "cell means and the SD of change, so such an ANCOVA cannot be reproduced exactly. The t tests on change scores are the "
    "closest analyses the summaries support (ANCOVA with slope 1)."
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


def _published_p(sd: SummaryData | None, outcome: str, level: str) -> str | None:
    if sd is None:
        return None
    row = sd.canonical(quantity=f"{outcome}_total", arm="all", stratum=level, time="change", statistic="p_value")
    if row is None:
        return None
    return ("" if row["relation"] == "=" else row["relation"]) + row["value_text"]


def two_sample_t(m1, s1, n1, m2, s2, n2, equal_var: bool, conf: float = 0.95) -> tuple[float, float, float, float, float, float]:
    """t statistic, two-sided p, df, difference m1 − m2 and its confidence interval, from summary statistics."""
    diff = m1 - m2
    if n1 < 2 or n2 < 2:
        raise ValueError("each group needs at least 2 patients for a t test")
    if equal_var:
        df = n1 + n2 - 2
        sp2 = ((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / df
        se = np.sqrt(sp2 * (1 / n1 + 1 / n2))
    else:
        v1, v2 = s1**2 / n1, s2**2 / n2
        se = np.sqrt(v1 + v2)
        df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1)) if (v1 + v2) > 0 else float(n1 + n2 - 2)
    if se == 0:
        raise ValueError("both groups have zero spread: the t statistic is undefined")
    t = diff / se
    p = 2 * stats.t.sf(abs(t), df)
    q = stats.t.ppf(0.5 + conf / 2, df)
    return float(t), float(p), float(df), float(diff), float(diff - q * se), float(diff + q * se)


def exact_tests(events_t: int, n_t: int, events_c: int, n_c: int) -> list[tuple[str, float, float, str]]:
    """Fisher's and Boschloo's exact tests (two-sided) of a 2x2 table; (test, statistic, p, statistic meaning)."""
    table = np.array([[events_t, n_t - events_t], [events_c, n_c - events_c]])
    fis = stats.fisher_exact(table, alternative="two-sided")
    bos = stats.boschloo_exact(table, alternative="two-sided")
    return [
        ("fisher_exact", float(fis.statistic), float(fis.pvalue), "sample odds ratio (treatment vs control)"),
        ("boschloo_exact", float(bos.statistic), float(bos.pvalue), "Fisher one-sided p used as Boschloo's statistic"),
    ]


def _level_label(card, level: str) -> str:
    return level if card.stratified else "all"


def reproduce_from_summary(sd: SummaryData) -> list[TestResult]:
    """Tests the published summaries support, per stratum, beside the published p-values (where printed)."""
    card = sd.card
    t_arm, c_arm = card.arm_levels
    out: list[TestResult] = []
    for name, o in card.outcomes.items():
        if o.kind != "score":
            continue
        for lev in card.stratum_levels:
            rows = {arm: sd.canonical(quantity=f"{name}_total", arm=arm, stratum=lev, time="change", statistic="mean") for arm in (t_arm, c_arm)}
            sds = {arm: sd.canonical(quantity=f"{name}_total", arm=arm, stratum=lev, time="change", statistic="sd") for arm in (t_arm, c_arm)}
            if not all(r is not None for r in (*rows.values(), *sds.values())):
                continue
            factor = {arm: (o.range / 100 if rows[arm]["unit"] == "percent_of_max" else 1.0) for arm in rows}
            m = {arm: rows[arm]["value"] * factor[arm] for arm in rows}
            s = {arm: sds[arm]["value"] * (o.range / 100 if sds[arm]["unit"] == "percent_of_max" else 1.0) for arm in rows}
            n = {arm: int(rows[arm]["n"]) for arm in rows}
            if min(n.values()) < 2:
                continue
            for test, eq in (("welch_t", False), ("pooled_t", True)):
                try:
                    t, p, df, diff, lo, hi = two_sample_t(m[t_arm], s[t_arm], n[t_arm], m[c_arm], s[c_arm], n[c_arm], eq)
                except ValueError:
                    continue
                note = ANCOVA_NOTE if test == "welch_t" else "Student's t with pooled variance (see the Welch row)."
                if min(n.values()) < 3:
                    note += f" With n = {min(n.values())} in one arm the test has almost no information."
                out.append(TestResult(f"{name}_change", _level_label(card, lev), test, t, p, _published_p(sd, name, lev), diff,
                                      f"mean change {card.arm_label(t_arm)} − {card.arm_label(c_arm)} ({o.unit}; from the reported "
                                      "change ± SD)", lo, hi, df, "summary", note))
    n_cells = sd.cell_sizes()
    for name, o in card.outcomes.items():
        if o.kind != "event":
            continue
        ev = event_counts(sd, name)
        for lev in card.stratum_levels:
            e_ = ev.sel({card.stratum_dim: lev})
            k_ = n_cells.sel({card.stratum_dim: lev})
            if np.isnan(e_.values).any() or np.isnan(k_.values).any() or (k_.values == 0).any():
                continue
            out += _event_rows(card, name, _level_label(card, lev), e_, k_, "summary", "The source may report no test of this outcome.")
        if card.stratified and not (np.isnan(ev.values).any() or np.isnan(n_cells.values).any()) and (n_cells.sum(card.stratum_dim) > 0).all():
            out += _event_rows(card, name, "all (strata pooled)", ev.sum(card.stratum_dim), n_cells.sum(card.stratum_dim), "summary",
                               "Pooling ignores the strata (which may be confounded with arm); shown for orientation only.")
    return out


def _event_rows(card, name: str, stratum: str, ev, n, source: str, note: str) -> list[TestResult]:
    t_arm, c_arm = card.arm_levels
    e = {a: int(ev.sel(arm=a)) for a in (t_arm, c_arm)}
    k = {a: int(n.sel(arm=a)) for a in (t_arm, c_arm)}
    rd = e[t_arm] / k[t_arm] - e[c_arm] / k[c_arm]
    rows = []
    if e[t_arm] + e[c_arm] == 0:  # no events at all: the exact tests are undefined
        return rows
    for test, stat, p, meaning in exact_tests(e[t_arm], k[t_arm], e[c_arm], k[c_arm]):
        rows.append(TestResult(name, stratum, test, stat, p, None, rd,
                               f"risk difference {card.arm_label(t_arm)} − {card.arm_label(c_arm)} ({e[t_arm]}/{k[t_arm]} vs "
                               f"{e[c_arm]}/{k[c_arm]}); statistic: {meaning}", source=source, note=note))
    return rows


@dataclass
class AncovaResult:
    coef: pd.Series
    se: pd.Series
    t: pd.Series
    p: pd.Series
    df_resid: int
    sigma: float
    cov: np.ndarray


def ancova(frame: pd.DataFrame, card, outcome: str) -> AncovaResult:
    """OLS of ``<outcome>_post ~ <outcome>_pre + arm * stratum`` (treatment coding: control and the first stratum as
    reference); the pre-treatment score is centred at the scale's midpoint, so the intercept is the expected post-treatment
    score of a control patient in the reference stratum at the midpoint. Strata without patients in both arms get no
    interaction term."""
    o = card.outcomes[outcome]
    f = frame.dropna(subset=[f"{outcome}_pre", f"{outcome}_post"])
    treat = (f["arm"].astype(str) == card.arm_levels[0]).to_numpy(float)
    lev = f[card.stratum_dim].astype(str).to_numpy()
    pre = f[f"{outcome}_pre"].to_numpy(float) - o.midpoint
    y = f[f"{outcome}_post"].to_numpy(float)
    cols = [np.ones_like(y), pre]
    names = ["intercept", f"{outcome}_pre_centred"]
    for level in card.stratum_levels[1:]:
        d = (lev == level).astype(float)
        if d.sum() == 0:
            continue
        cols.append(d)
        names.append(f"{card.stratum_dim}[{level}]")
    cols.append(treat)
    names.append(f"arm[{card.arm_levels[0]}]")
    for level in card.stratum_levels[1:]:
        d = (lev == level).astype(float)
        if (treat * d).sum() > 0 and ((1 - treat) * d).sum() > 0:
            cols.append(treat * d)
            names.append(f"arm[{card.arm_levels[0]}]:{card.stratum_dim}[{level}]")
    X = np.column_stack(cols)
    n, k = X.shape
    if n <= k:
        raise ValueError(f"ANCOVA needs more patients ({n}) than coefficients ({k})")
    XtX_inv = np.linalg.pinv(X.T @ X)
    beta = XtX_inv @ X.T @ y
    resid = y - X @ beta
    df = n - k
    sigma2 = float(resid @ resid / df)
    cov = sigma2 * XtX_inv
    se = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = beta / se
    p = 2 * stats.t.sf(np.abs(t), df)
    idx = pd.Index(names)
    return AncovaResult(pd.Series(beta, idx), pd.Series(se, idx), pd.Series(t, idx), pd.Series(p, idx), df, float(np.sqrt(sigma2)), cov)


def reproduce_from_ipd(ipd: IPDData, published: SummaryData | None = None) -> list[TestResult]:
    """The ANCOVA and the summary-level tests, computed from patient-level data.

    ``published``: the published summaries of the *same* patients; only then are their p-values printed beside these.
    """
    card = ipd.card
    f = ipd.frame
    t_arm, c_arm = card.arm_levels
    out: list[TestResult] = []
    q = lambda df: stats.t.ppf(0.975, df)  # noqa: E731
    for name, o in card.outcomes.items():
        if o.kind != "score" or not ipd.has_score(name):
            continue
        res = ancova(f, card, name)
        names = list(res.coef.index)
        tcoef = f"arm[{t_arm}]"
        for lev in card.stratum_levels:
            inter = f"{tcoef}:{card.stratum_dim}[{lev}]"
            if lev != card.stratum_levels[0] and inter not in names:
                continue
            c = np.array([1.0 if nm in (tcoef, inter) else 0.0 for nm in names])
            est = float(c @ res.coef.to_numpy())
            se = float(np.sqrt(c @ res.cov @ c))
            t = est / se
            p = float(2 * stats.t.sf(abs(t), res.df_resid))
            out.append(TestResult(f"{name}_post", _level_label(card, lev), "ancova", t, p, _published_p(published, name, lev), est,
                                  f"adjusted difference in post-treatment {card.outcome_label(name)}, {card.arm_label(t_arm)} − "
                                  f"{card.arm_label(c_arm)} ({o.unit}), pre-treatment score as covariate",
                                  est - q(res.df_resid) * se, est + q(res.df_resid) * se, float(res.df_resid), "ipd",
                                  f"OLS {name}_post ~ {name}_pre + arm * {card.stratum_dim}."))
        for nm in names:
            if nm.startswith(f"{tcoef}:"):
                lev = nm.split("[")[-1].rstrip("]")
                out.append(TestResult(f"{name}_post", f"interaction: {lev} vs {card.stratum_levels[0]}", "ancova", float(res.t[nm]),
                                      float(res.p[nm]), None, float(res.coef[nm]), "treatment effect difference between the strata "
                                      f"({o.unit})", float(res.coef[nm] - q(res.df_resid) * res.se[nm]),
                                      float(res.coef[nm] + q(res.df_resid) * res.se[nm]), float(res.df_resid), "ipd",
                                      "Test of treatment × stratum interaction."))
        change = f[f"{name}_post"].astype(float) - f[f"{name}_pre"].astype(float)
        for lev in card.stratum_levels:
            sel = (f[card.stratum_dim].astype(str) == lev).to_numpy()
            a = change[sel & (f["arm"].astype(str) == t_arm).to_numpy()].dropna().to_numpy()
            b = change[sel & (f["arm"].astype(str) == c_arm).to_numpy()].dropna().to_numpy()
            if len(a) >= 2 and len(b) >= 2:
                for test, eq in (("welch_t", False), ("pooled_t", True)):
                    try:
                        t, p, df, diff, lo, hi = two_sample_t(a.mean(), a.std(ddof=1), len(a), b.mean(), b.std(ddof=1), len(b), eq)
                    except ValueError:
                        continue
                    out.append(TestResult(f"{name}_change", _level_label(card, lev), test, t, p, _published_p(published, name, lev), diff,
                                          f"mean change {card.arm_label(t_arm)} − {card.arm_label(c_arm)} ({o.unit})", lo, hi, df, "ipd", ""))
    for name, o in card.outcomes.items():
        if o.kind != "event" or name not in f.columns:
            continue
        ev = f[["arm", card.stratum_dim, name]].dropna()
        for lev in card.stratum_levels:
            sub = ev[ev[card.stratum_dim].astype(str) == lev]
            k = {a: int((sub["arm"].astype(str) == a).sum()) for a in (t_arm, c_arm)}
            if min(k.values()) == 0:
                continue
            e = {a: int(sub.loc[sub["arm"].astype(str) == a, name].sum()) for a in (t_arm, c_arm)}
            out += _event_rows(card, name, _level_label(card, lev), xr.DataArray([e[t_arm], e[c_arm]], coords={"arm": [t_arm, c_arm]}, dims="arm"),
                               xr.DataArray([k[t_arm], k[c_arm]], coords={"arm": [t_arm, c_arm]}, dims="arm"), "ipd", "")
    return out


def results_frame(results: list[TestResult]) -> pd.DataFrame:
    """Results as a DataFrame with the JSON row keys first."""
    cols = ["outcome", "stratum", "test", "statistic", "p_value", "published_p_value", "estimate", "ci_low", "ci_high", "df", "source",
            "estimate_label", "note"]
    return pd.DataFrame([r.to_dict() for r in results], columns=cols)

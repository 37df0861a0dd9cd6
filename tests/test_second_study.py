"""A second study, unlike the bundled one, end to end through the CLI and the Python API.

Different arm names (screws / cement), three strata (histology), a 0-50 score where LOWER is better with ten 0-5 items
(an Oswestry-like disability index), an event outcome, and a CSV with its own column names mapped by the card's
[columns]. Posteriors are checked against closed forms computed here: with flat priors on the regression coefficients
and Jeffreys' prior on sigma, the patient-level model's coefficients are Student-t around the OLS estimates (exact
marginalisation of the Gaussian-linear part); the summary route with reference priors gives Behrens-Fisher; the events
model gives Beta posteriors.
"""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayes_sacral as bs
from bayes_sacral.errors import InputError

ITEMS = ["pain_intensity", "personal_care", "lifting", "walking", "sitting", "standing", "sleeping", "sex_life", "social_life",
         "travelling"]
LEVELS = ["myeloma", "breast", "lung"]
CARD = f"""
[study]
name = "odi-trial"
title = "Screws versus cement for spinal metastases"
summary = "summary.csv"

[arms]
treatment = "screws"
control = "cement"
labels = {{ screws = "Screw fixation", cement = "Cement augmentation" }}

[strata]
name = "histology"
levels = {json.dumps(LEVELS)}

[outcomes.odi]
kind = "score"
label = "ODI"
min = 0
max = 50
higher_is_better = false
items = {json.dumps(ITEMS)}
item_min = 0
item_max = 5
mcid = {{ value = 5.0, source = "a made-up MCID for this test" }}

[outcomes.revision]
kind = "event"
label = "revision"

[columns]
patient_id = "Patient"
arm = "Group"
histology = "Histology"
odi_pre = "ODI_baseline"
odi_post = "ODI_6m"
revision = "Revised"
"""
SIZES = {("screws", "myeloma"): 9, ("cement", "myeloma"): 10, ("screws", "breast"): 8, ("cement", "breast"): 9,
         ("screws", "lung"): 7, ("cement", "lung"): 8}


def _patients(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    k = 0
    for (arm, hist), n in SIZES.items():
        for _ in range(n):
            k += 1
            pre = rng.binomial(5, rng.uniform(0.4, 0.8), size=10)
            p_post = np.clip(0.55 - (0.15 if arm == "screws" else 0.05) - 0.05 * LEVELS.index(hist) + 0.25 * (pre.mean() / 5 - 0.6), 0.02, 0.98)
            post = rng.binomial(5, p_post, size=10)
            row = {"Patient": f"P{k:03d}", "Group": arm, "Histology": hist, "ODI_baseline": int(pre.sum()), "ODI_6m": int(post.sum())}
            row.update({f"{it}_pre": int(v) for it, v in zip(ITEMS, pre, strict=True)})
            row.update({f"{it}_post": int(v) for it, v in zip(ITEMS, post, strict=True)})
            row["Revised"] = int(rng.random() < (0.1 if arm == "screws" else 0.35))
            rows.append(row)
    return pd.DataFrame(rows)


def _summary_csv(df: pd.DataFrame) -> str:
    """The study's 'published' summaries, computed from its patients and rounded as a paper would print them."""
    lines = ["# format: bayes-sacral-summary/1", "# study: odi-trial",
             "id,quantity,arm,histology,time,category,statistic,value,unit,n,source,label"]
    for (arm, hist), g in df.groupby(["Group", "Histology"]):
        n = len(g)
        tag = f"{arm}.{hist}"
        lines.append(f"n.{tag},patients,{arm},{hist},,,count,{n},patients,,Table 1,n")
        for t, col in (("pre", "ODI_baseline"), ("post", "ODI_6m")):
            lines.append(f"odi.{tag}.{t},odi_total,{arm},{hist},{t},,mean,{g[col].mean():.1f},points,{n},Table 2,mean")
            for it in ITEMS:
                lines.append(f"{it}.{tag}.{t},odi_{it},{arm},{hist},{t},,mean,{g[f'{it}_{t}'].mean():.1f},points,{n},Table 2,mean")
        ch = g["ODI_6m"] - g["ODI_baseline"]
        lines.append(f"chg.{tag}.mean,odi_total,{arm},{hist},change,,mean,{ch.mean():.1f},points,{n},Table 3,change")
        lines.append(f"chg.{tag}.sd,odi_total,{arm},{hist},change,,sd,{ch.std(ddof=1):.1f},points,{n},Table 3,change")
        lines.append(f"rev.{tag},revision,{arm},{hist},,,count,{int(g['Revised'].sum())},patients,{n},Results,revisions")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def second(tmp_path_factory):
    root = tmp_path_factory.mktemp("second")
    (root / "card.toml").write_text(CARD)
    df = _patients()
    df.to_csv(root / "patients.csv", index=False)
    (root / "summary.csv").write_text(_summary_csv(df))
    return root, df


def test_validate_and_check_through_the_cli(cli, second):
    root, df = second
    r = cli("data", "validate", root / "patients.csv", "--study", root / "card.toml", "--format", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["patients"] == len(df) and doc["cells"]["screws × lung"] == 7
    check = cli("data", "check", "--study", root / "card.toml", "--format", "json")
    assert check.code == 0
    findings = check.json()
    assert {f["check"] for f in findings} >= {"grim", "grimmer", "item_sum", "change_vs_means", "cell_sizes"}
    assert all(f["status"] == "pass" for f in findings)  # summaries of real integer data are always consistent
    cols = cli("data", "columns", "--study", root / "card.toml", "--format", "json").json()
    assert {"column": "Group", "role": "arm", "required": True, "rule": "screws | cement"} in cols


def test_bad_data_get_card_specific_messages(second, tmp_path):
    root, df = second
    study = bs.load_study(root / "card.toml")
    bad = df.copy()
    bad["Group"] = bad["Group"].replace({"screws": "Screws"})
    bad.loc[:4, "ODI_6m"] = bad.loc[:4, "ODI_6m"] * 2 + 40  # values up to 100: a 0-100 scale
    with pytest.raises(InputError) as exc:
        study.read_ipd(bad)
    text = str(exc.value)
    arm = [p for p in exc.value.problems if "'Group'" in p.location]
    assert len(arm) == 1 and f"{SIZES[('screws', 'myeloma')] + SIZES[('screws', 'breast')] + SIZES[('screws', 'lung')]} rows" in arm[0].location
    assert "did you mean 'screws'" in arm[0].rule and "screws | cement" in arm[0].rule
    assert "look like a 0-100 scale" in text and "0-50" in text


def test_ipd_route_equals_the_student_t_of_ols(second):
    """Flat priors on intercepts, effects and slope; Jeffreys on sigma: the posterior of each stratum's effect is the OLS
    estimate's Student-t with n - p degrees of freedom, computed here with numpy."""
    root, df = second
    study = bs.load_study(root / "card.toml")
    data = study.read_ipd(root / "patients.csv")
    flat = {"dist": "Flat"}
    run = bs.fit({"run": {"name": "odi-ipd", "seed": 3},
                  "model": {"kind": "score", "outcome": "odi", "pooling": "none"},
                  "priors": {"set": "reference", "preop_slope": flat},
                  "sampler": {"draws": 1500, "tune": 1000, "chains": 2, "prior_draws": 0}}, data=data)
    # the regression written out: one intercept and one effect per stratum, a common slope on pre - 25
    y = df["ODI_6m"].to_numpy(float)
    T = (df["Group"] == "screws").to_numpy(float)
    X = np.column_stack([*(df["Histology"] == h for h in LEVELS), *((df["Histology"] == h) * T for h in LEVELS),
                         df["ODI_baseline"] - 25.0]).astype(float)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    n, p = X.shape
    s2 = np.sum((y - X @ beta) ** 2) / (n - p)
    cov = s2 * np.linalg.inv(X.T @ X)
    post = run.idata["posterior"]["treatment_effect"]
    for j, h in enumerate(LEVELS):
        draws = post.sel(histology=h)
        mcse = float(az.mcse(draws, method="mean"))
        assert abs(float(draws.mean()) - beta[3 + j]) < 4 * mcse + 1e-6, h
        t_sd = np.sqrt(cov[3 + j, 3 + j] * (n - p) / (n - p - 2))
        assert float(draws.std()) == pytest.approx(t_sd, rel=0.08)
        q = stats.t.ppf(0.9, n - p) * np.sqrt(cov[3 + j, 3 + j]) + beta[3 + j]
        assert float((draws < q).mean()) == pytest.approx(0.9, abs=0.03)
    # lower is better: P(benefit) is P(effect < 0), and the MCID applies on that side
    summ = run.summary().set_index("name")
    x = post.sel(histology="lung").values.ravel()
    assert summ.loc["treatment_effect[lung]", "prob_benefit"] == pytest.approx(np.mean(x < 0))
    assert summ.loc["treatment_effect[lung]", "prob_beyond_mcid"] == pytest.approx(np.mean(x < -5.0))
    assert "interaction[lung vs myeloma]" in summ.index
    assert run.manifest["effect_directions"]["treatment_effect"] == -1
    saved = run.save(root / "models" / "odi-ipd")
    assert (saved / "study.toml").read_text() == (root / "card.toml").read_text()


def test_summary_route_is_behrens_fisher_per_stratum(cli, second):
    """Reference priors, no pooling, one SD per cell, slope held at 1 (the change-score model): the difference in mean
    change of each stratum is Behrens-Fisher (flat means, Jeffreys SDs) of the rounded published change means and SDs."""
    root, df = second
    cfg = root / "summary.toml"
    cfg.write_text('[run]\nname = "odi-summary"\nseed = 4\n[data]\nstudy = "card.toml"\nsource = "published"\n'
                   '[model]\nkind = "score"\npooling = "none"\nsigma = "by_cell"\n[priors]\nset = "reference"\n'
                   'preop_slope = { dist = "Normal", mu = 1.0, sigma = 0.001 }\n'
                   "[sampler]\ndraws = 3000\ntune = 1500\nchains = 2\nprior_draws = 0\ntarget_accept = 0.95\n")
    r = cli("fit", cfg, "--out", root / "models", "--quiet")
    assert r.code == 0, r.err
    run = bs.Run.load(root / "models" / "odi-summary")
    rng = np.random.default_rng(0)
    for h in LEVELS:
        cell = {}
        for arm in ("screws", "cement"):
            g = df[(df["Group"] == arm) & (df["Histology"] == h)]
            ch = g["ODI_6m"] - g["ODI_baseline"]
            cell[arm] = (float(f"{g['ODI_6m'].mean():.1f}") - float(f"{g['ODI_baseline'].mean():.1f}"), float(f"{ch.std(ddof=1):.1f}"), len(g))
        (m1, s1, n1), (m2, s2, n2) = cell["screws"], cell["cement"]
        bf = (m1 + s1 / np.sqrt(n1) * rng.standard_t(n1 - 1, 200_000)) - (m2 + s2 / np.sqrt(n2) * rng.standard_t(n2 - 1, 200_000))
        d = run.idata["posterior"]["change_difference"].sel(histology=h).values.ravel()
        np.testing.assert_allclose(np.quantile(d, [0.1, 0.5, 0.9]), np.quantile(bf, [0.1, 0.5, 0.9]), atol=0.35 * np.std(bf))


def test_events_are_beta_binomial(second):
    root, df = second
    study = bs.load_study(root / "card.toml")
    run = bs.fit({"run": {"name": "revision", "seed": 2}, "model": {"kind": "events"}, "priors": {"set": "uniform"},
                  "sampler": {"draws": 1500, "tune": 500, "chains": 2, "prior_draws": 0}}, data=study)
    post = run.idata["posterior"]
    for h in LEVELS:
        g = df[df["Histology"] == h]
        for arm in ("screws", "cement"):
            e, n = int(g.loc[g["Group"] == arm, "Revised"].sum()), int((g["Group"] == arm).sum())
            x = post["p_event"].sel(arm=arm, histology=h)
            assert abs(float(x.mean()) - (1 + e) / (2 + n)) < 4 * float(az.mcse(x, method="mean"))
    rd = post["risk_difference"].sel(histology="breast").values.ravel()
    assert run.summary().set_index("name").loc["risk_difference[breast]", "prob_benefit"] == pytest.approx(np.mean(rd < 0))
    run.save(root / "models" / "revision")


def test_reproduce_ancova_with_three_strata_matches_statsmodels(cli, second):
    import statsmodels.formula.api as smf

    root, df = second
    r = cli("reproduce", "--study", root / "card.toml", "--ipd", root / "patients.csv", "--format", "json")
    assert r.code == 0, r.err
    rows = {(x["outcome"], x["stratum"], x["test"]): x for x in r.json()}
    fit = smf.ols("ODI_6m ~ ODI_baseline + C(Group, Treatment('cement')) * C(Histology, Treatment('myeloma'))", df).fit()
    arm = "C(Group, Treatment('cement'))[T.screws]"
    for h in LEVELS:
        c = np.zeros(len(fit.params))
        c[list(fit.params.index).index(arm)] = 1
        if h != "myeloma":
            c[list(fit.params.index).index(f"{arm}:C(Histology, Treatment('myeloma'))[T.{h}]")] = 1
        t = fit.t_test(c)
        got = rows["odi_post", h, "ancova"]
        assert got["estimate"] == pytest.approx(float(t.effect[0])) and got["p_value"] == pytest.approx(float(t.pvalue))
        assert got["published_p_value"] is None
    assert ("revision", "lung", "fisher_exact") in rows


def test_report_uses_the_cards_labels(cli, second):
    root, _ = second
    r = cli("report", root / "models" / "odi-ipd", root / "models" / "revision", "--out", root / "report")
    assert r.code == 0, r.err
    html = (root / "report" / "report.html").read_text()
    assert "Screw fixation" in html and "ODI" in html and "histology" in html
    for other in ("PSFS", "MSTS", "sacroplasty", "pathological", "impending"):
        assert other not in html, other


def test_unstratified_study_and_empty_cells(tmp_path):
    card = CARD.replace(f'[strata]\nname = "histology"\nlevels = {json.dumps(LEVELS)}\n', "").replace('histology = "Histology"\n', "")
    card = card.replace('summary = "summary.csv"\n', "")
    (tmp_path / "flat.toml").write_text(card)
    study = bs.load_study(tmp_path / "flat.toml")
    assert not study.card.stratified and study.card.stratum_levels == ["all"]
    df = _patients().drop(columns=["Histology"])
    data = study.read_ipd(df)
    run = bs.fit({"run": {"name": "flat", "seed": 1}, "model": {"kind": "events", "outcome": "revision"},
                  "sampler": {"draws": 300, "tune": 300, "chains": 2, "prior_draws": 0}}, data=data)
    names = set(run.summary()["name"])
    assert "risk_difference[all]" in names and not any(n.startswith("interaction") for n in names)
    # an empty arm × stratum cell: an error by default, "not estimable" (never a number) when allowed
    full = bs.load_study(_write(tmp_path, "card.toml", CARD.replace('summary = "summary.csv"\n', "")))
    few = _patients()
    few = few[~((few["Group"] == "screws") & (few["Histology"] == "lung"))]
    with pytest.raises(InputError) as exc:
        bs.fit({"run": {"name": "e", "seed": 1}, "model": {"kind": "events"}}, data=full.read_ipd(few))
    assert "screws × lung" in str(exc.value) and "allow_empty_cells" in str(exc.value)
    run = bs.fit({"run": {"name": "e", "seed": 1}, "model": {"kind": "events", "allow_empty_cells": True},
                  "sampler": {"draws": 300, "tune": 300, "chains": 2, "prior_draws": 0}}, data=full.read_ipd(few))
    s = run.summary().set_index("name")
    assert np.isnan(s.loc["risk_difference[lung]", "mean"]) and "not estimable" in s.loc["risk_difference[lung]", "note"]
    assert np.isnan(s.loc["risk_difference_pooled", "median"])
    assert np.isfinite(s.loc["risk_difference[breast]", "mean"])


def _write(folder, name, text):
    (folder / name).write_text(text)
    return folder / name


def test_design_with_three_strata_through_the_cli_and_the_api(cli, second):
    """Power of a follow-up trial of the second study: the exact engine (sum over the 3-stratum multinomial split) equals
    a direct computation here with the reference (t-test) rule, through the API and the CLI alike."""
    from itertools import product

    root, _ = second
    doc = {"design": {"name": "odi-followup", "seed": 1, "study": str(root / "card.toml"), "endpoint": "odi", "engine": "exact",
                      "sample_sizes": [30, 60]},
           "strata": {"myeloma": 0.5, "breast": 0.3, "lung": 0.2},
           "truth": {"odi": {"treatment_effect": {"myeloma": -4.0, "breast": -4.0, "lung": -4.0}, "sigma": 8.0}},
           "analysis": {"prior": "reference"}}
    ds = bs.design(doc)
    prev = np.array([0.5, 0.3, 0.2])
    for N in (30, 60):
        want = 0.0
        for k1, k2 in product(range(N + 1), repeat=2):
            k3 = N - k1 - k2
            if k3 < 0:
                continue
            n = np.array([k1, k2, k3])
            n1 = np.floor(n / 2 + 0.5)  # the allocation sequence within each stratum
            n0 = n - n1
            if (n1 == 0).any() or (n0 == 0).any():
                continue
            v = np.sum(prev**2 * (1 / n1 + 1 / n0))
            nu = N - 6
            # lower is better: success when the (benefit-signed) weighted effect estimate passes the one-sided t test
            want += stats.multinomial.pmf(n, N, prev) * stats.nct.sf(stats.t.ppf(0.975, nu), nu, 4.0 / (8.0 * np.sqrt(v)))
        got = float(ds["success_probability"].sel(scenario="design", sample_size=N))
        assert got == pytest.approx(want, rel=1e-8), N
    cfg = root / "design.toml"
    import tomli_w

    cfg.write_text(tomli_w.dumps(doc))
    r = cli("design", cfg, "--out", root / "odi-design", "--quiet", "--format", "json")
    assert r.code == 0, r.err
    protocol = (root / "odi-design" / "protocol.md").read_text()
    assert "Screw fixation" in protocol and "Cement augmentation" in protocol and "histology" in protocol

"""Trial design: exact engines against independent closed-form or brute-force answers computed here, engines against each
other, any study card (three strata, lower-is-better scores, unstratified studies), scale-out, resume, outputs."""

import os
import signal
import subprocess
import sys
import time
from functools import cache

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from bayes_sacral.design.config import design_from_doc, load_design
from bayes_sacral.design.context import build_context
from bayes_sacral.design.exact import exact_success
from bayes_sacral.design.runner import run_design, smallest_n
from bayes_sacral.design.simulate import vectorized_batch
from bayes_sacral.errors import InputError
from bayes_sacral.study import load_study

BASE = '[design]\nname = "t"\nseed = 11\nsample_sizes = [40, 80]\n'
# the bundled study's truths, stated explicitly (the code has no study-specific defaults)
TRUTH = ("[strata]\npathological = 0.7\nimpending = 0.3\n"
         "[truth.msts]\ntreatment_effect = { pathological = 4.0, impending = 1.0 }\nsigma = 5.0\n"
         "[truth.secondary_procedure]\np_treatment = { pathological = 0.05, impending = 0.05 }\n"
         "p_control = { pathological = 0.42, impending = 0.14 }\n")

# a second study, written here: other arm names, three strata, a 0-50 score where LOWER is better, events
CARD3 = """
[study]
name = "knee3"
[arms]
treatment = "brace"
control = "usual"
labels = { brace = "Knee brace", usual = "Usual care" }
[strata]
name = "grade"
label = "injury grade"
levels = ["g1", "g2", "g3"]
labels = { g1 = "grade I", g2 = "grade II", g3 = "grade III" }
[outcomes.pain]
kind = "score"
label = "Pain index"
min = 0
max = 50
higher_is_better = false
items = ["i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9", "i10"]
item_min = 0
item_max = 5
mcid = { value = 5.0, source = "Doe et al. 2020 (anchor-based, knee injuries)" }
[outcomes.reinjury]
kind = "event"
label = "re-injury"
"""
PREV3 = {"g1": 0.5, "g2": 0.3, "g3": 0.2}
DELTA3 = {"g1": -6.0, "g2": -4.0, "g3": -2.0}  # brace − usual care: the brace LOWERS pain (a benefit)
DESIGN3 = ('[design]\nname = "k"\nseed = 3\nendpoint = "pain"\nsample_sizes = [30, 60]\n{extra}'
           "[strata]\ng1 = 0.5\ng2 = 0.3\ng3 = 0.2\n"
           "[truth.pain]\ntreatment_effect = {{ g1 = -6.0, g2 = -4.0, g3 = -2.0 }}\nsigma = 8.0\n"
           "[truth.reinjury]\np_control = {{ g1 = 0.40, g2 = 0.25, g3 = 0.10 }}\np_treatment = 0.05\n{rest}")

# an unstratified study with a desirable event
CARD1 = """
[study]
name = "solo"
[arms]
treatment = "new"
control = "old"
[outcomes.qol]
kind = "score"
min = 0
max = 100
[outcomes.healed]
kind = "event"
label = "healing"
higher_is_better = true
"""
DESIGN1 = ('[design]\nname = "u"\nseed = 5\nendpoint = "{endpoint}"\nsample_sizes = [30, 60]\n{extra}'
           "[truth.qol]\ntreatment_effect = 8.0\nsigma = 15.0\n"
           "[truth.healed]\np_control = 0.4\np_treatment = 0.7\n{rest}")


def cfg_of(tmp_path, text=BASE + TRUTH, sets=(), study=None):
    p = tmp_path / "d.toml"
    p.write_text(text)
    return load_design(p, list(sets), study=study)


@pytest.fixture
def card3(tmp_path):
    p = tmp_path / "knee3.toml"
    p.write_text(CARD3)
    return p


@pytest.fixture
def card1(tmp_path):
    p = tmp_path / "solo.toml"
    p.write_text(CARD1)
    return p


def agree(ctx, scenarios, sizes, T=20_000, fractions=()):
    """Vectorized within 4 MCSE of exact, for every scenario and size."""
    for sc in scenarios:
        for N in sizes:
            ex = exact_success(ctx, sc, N).mean()
            p = vectorized_batch(ctx, sc, N, list(fractions), [], T, np.random.SeedSequence([N, len(sc), 17]), 0)["success"].mean()
            se = np.sqrt(max(ex * (1 - ex), 1e-4) / T)
            assert abs(p - ex) < 4 * se, (sc, N, p, ex)


@cache
def fisher_p(y1: int, n1: int, y2: int, n2: int, alternative: str = "greater") -> float:
    """One-sided Fisher p-value that the control arm (y2 of n2) has more events than the treatment arm (y1 of n1)."""
    return stats.fisher_exact([[y2, n2 - y2], [y1, n1 - y1]], alternative=alternative).pvalue


# ---------------------------------------------------------------------- exact engines vs independent answers
def test_event_altham_rule_is_fishers_exact_test_simple_allocation(tmp_path):
    """Altham priors make P(benefit) >= 1 - alpha Fisher's one-sided test at alpha. With simple allocation each arm's
    pooled count is Binomial(N_arm, prevalence-weighted rate): power by enumerating every 2x2 table with scipy."""
    cfg = cfg_of(tmp_path, BASE + 'endpoint = "secondary_procedure"\nallocation_scheme = "simple"\n' + TRUTH + '[analysis]\nprior = "altham"\n')
    ctx = build_context(cfg)
    p1 = 0.7 * 0.05 + 0.3 * 0.05
    p2 = 0.7 * 0.42 + 0.3 * 0.14
    for N in (40, 80):
        n1 = n2 = N // 2
        power = sum(stats.binom.pmf(y1, n1, p1) * stats.binom.pmf(y2, n2, p2)
                    for y1 in range(n1 + 1) for y2 in range(n2 + 1) if fisher_p(y1, n1, y2, n2) <= 0.025)
        assert exact_success(ctx, "design", N)[0] == pytest.approx(power, abs=1e-9)
    assert exact_success(ctx, "no_effect", 80)[0] <= 0.025 + 1e-12  # Fisher's test keeps its level


def test_event_stratified_allocation_exact_equals_brute_force(tmp_path):
    """Two strata with different control rates, allocation blocked within stratum: the exact engine equals a brute-force
    sum over the stratum split (binomial), each arm's pooled count being the convolution of its per-stratum binomials,
    with Fisher's test (Altham priors) as the rule; the vectorized engine agrees within 4 MCSE."""
    cfg = cfg_of(tmp_path, BASE + 'endpoint = "secondary_procedure"\n' + TRUTH + '[analysis]\nprior = "altham"\n')
    ctx = build_context(cfg)
    pt, pc = (0.05, 0.05), (0.42, 0.14)
    N = 40
    for sc, rates in (("design", (pt, pc)), ("no_effect", (pc, pc))):
        want = 0.0
        for k in range(N + 1):  # patients in stratum 1
            sizes = np.array([k, N - k])
            nt = np.floor(sizes / 2 + 0.5).astype(int)  # 1:1 sequence within each stratum
            nc = sizes - nt
            pm_t, pm_c = np.ones(1), np.ones(1)
            for s in range(2):
                pm_t = np.convolve(pm_t, stats.binom.pmf(np.arange(nt[s] + 1), nt[s], rates[0][s]))
                pm_c = np.convolve(pm_c, stats.binom.pmf(np.arange(nc[s] + 1), nc[s], rates[1][s]))
            n1, n2 = int(nt.sum()), int(nc.sum())
            win = sum(pm_t[y1] * pm_c[y2] for y1 in range(n1 + 1) for y2 in range(n2 + 1) if fisher_p(y1, n1, y2, n2) <= 0.025)
            want += stats.binom.pmf(k, N, 0.7) * win
        assert exact_success(ctx, sc, N)[0] == pytest.approx(want, abs=1e-10), sc
    agree(ctx, ["design", "no_effect"], [40])


def test_score_reference_rule_is_the_t_test(tmp_path):
    """Flat means + Jeffreys' 1/sigma: P(benefit > 0) >= 0.975 is the one-sided t test; power is a non-central t tail
    (single stratum) or its binomial mixture over the random stratum split (two strata)."""
    one = build_context(cfg_of(tmp_path, BASE + TRUTH + '[analysis]\nprior = "reference"\n', ["strata.pathological=1.0", "strata.impending=0.0"]))
    for N in (40, 80):
        ncp = 4.0 / (5.0 * np.sqrt(1 / (N / 2) + 1 / (N / 2)))
        assert exact_success(one, "design", N)[0] == pytest.approx(stats.nct.sf(stats.t.ppf(0.975, N - 2), N - 2, ncp), rel=1e-10)
        assert exact_success(one, "no_effect", N)[0] == pytest.approx(0.025, rel=1e-10)
    two = build_context(cfg_of(tmp_path, BASE + TRUTH + '[analysis]\nprior = "reference"\n'))
    N, want = 40, 0.0
    for k in range(N + 1):  # pathological count ~ Binomial(40, 0.7); cells split 1:1 by the allocation sequence
        n = np.array([k, N - k])
        n1 = np.floor(n / 2 + 0.5)
        n0 = n - n1
        if (n1 == 0).any() or (n0 == 0).any():
            continue
        w = np.array([0.7, 0.3])
        v = np.sum(w**2 * (1 / n1 + 1 / n0))
        nu = N - 4
        want += stats.binom.pmf(k, N, 0.7) * stats.nct.sf(stats.t.ppf(0.975, nu), nu, (0.7 * 4 + 0.3 * 1) / (5 * np.sqrt(v)))
    assert exact_success(two, "design", N)[0] == pytest.approx(want, rel=1e-9)


def test_score_known_sigma_normal_prior_closed_form(tmp_path):
    ctx = build_context(cfg_of(tmp_path, sets=["strata.pathological=1.0", "strata.impending=0.0"]))
    N = 80
    se = 5 * np.sqrt(2 / 40)
    # prior N(0, (30/6)^2): success iff d >= k with k solving Phi(post mean / post sd) = 0.975
    prec = 1 / 25 + 1 / se**2
    k = stats.norm.ppf(0.975) * np.sqrt(prec) / (1 / se**2)
    assert exact_success(ctx, "design", N)[0] == pytest.approx(stats.norm.sf((k - 4.0) / se), rel=1e-8)


@pytest.mark.parametrize("sets", [[], ["analysis.prior=reference"], ["decision.rule=dual"], ["design.allocation_scheme=simple"],
                                  ["design.endpoint=secondary_procedure"],
                                  ["design.endpoint=secondary_procedure", "design.allocation_scheme=simple"],
                                  ["design.endpoint=secondary_procedure", "analysis.prior=jeffreys", "decision.rule=dual", "decision.mcid=0.1"]])
def test_vectorized_agrees_with_exact(tmp_path, sets):
    agree(build_context(cfg_of(tmp_path, sets=sets)), ["design", "no_effect"], [40, 80])


# ---------------------------------------------------------------------- any study card
def test_three_strata_lower_is_better_exact_is_multinomial_t_test(tmp_path, card3):
    """A card written here: three strata, a 0-50 score where lower is better. With the reference prior the exact engine is
    the t test summed over the multinomial stratum split, computed here by looping over every composition of N."""
    study = load_study(card3)
    cfg = cfg_of(tmp_path, DESIGN3.format(extra="", rest='[analysis]\nprior = "reference"\n'), study=study)
    ctx = build_context(cfg)
    w = np.array([PREV3[g] for g in ("g1", "g2", "g3")])
    benefit = -np.dot(w, [DELTA3[g] for g in ("g1", "g2", "g3")])  # lower is better: a negative effect is a benefit
    for N in (30, 45):
        want = {"design": 0.0, "no_effect": 0.0}
        for a in range(N + 1):
            for b in range(N + 1 - a):
                n = np.array([a, b, N - a - b])
                pmf = stats.multinomial.pmf(n, N, w)
                n1 = np.floor(n / 2 + 0.5)
                n0 = n - n1
                if (n1 == 0).any() or (n0 == 0).any():
                    continue
                v = np.sum(w**2 * (1 / n1 + 1 / n0))
                nu = N - 6
                tc = stats.t.ppf(0.975, nu)
                want["design"] += pmf * stats.nct.sf(tc, nu, benefit / (8.0 * np.sqrt(v)))
                want["no_effect"] += pmf * stats.t.sf(tc, nu)
        for sc in want:
            assert exact_success(ctx, sc, N)[0] == pytest.approx(want[sc], abs=1e-8), (sc, N)
    assert exact_success(ctx, "design", 60)[0] > 0.5  # the brace lowers pain: a benefit, so power is high
    # the same effects with the opposite sign (the brace raises pain) almost never succeed
    harm = build_context(cfg_of(tmp_path, DESIGN3.format(extra="", rest='[analysis]\nprior = "reference"\n'),
                                ["truth.pain.treatment_effect={ g1 = 6.0, g2 = 4.0, g3 = 2.0 }"], study=study))
    assert exact_success(harm, "design", 60)[0] < 0.001
    agree(ctx, ["design", "no_effect"], [30, 60])


@pytest.mark.parametrize("sets", [[], ["design.allocation_scheme=simple"], ["decision.rule=dual"], ["design.endpoint=reinjury"],
                                  ["design.endpoint=reinjury", "design.allocation_scheme=simple"]])
def test_three_strata_vectorized_agrees_with_exact(tmp_path, card3, sets):
    ctx = build_context(cfg_of(tmp_path, DESIGN3.format(extra="", rest=""), sets, study=load_study(card3)))
    assert exact_success(ctx, "design", 45)[0] > 5 * exact_success(ctx, "no_effect", 45)[0]  # a beneficial truth
    agree(ctx, ["design", "no_effect"], [30, 45])


def test_unstratified_card(tmp_path, card1):
    """No [strata] in the card: one stratum, exact and vectorized agree; a [strata] table is an error; a desirable event
    (higher is better) succeeds when the treatment raises the rate, and Altham's rule is Fisher's test for it."""
    study = load_study(card1)
    for endpoint in ("qol", "healed"):
        ctx = build_context(cfg_of(tmp_path, DESIGN1.format(endpoint=endpoint, extra="", rest=""), study=study))
        assert ctx.K == 1
        agree(ctx, ["design", "no_effect"], [30, 60])
    ctx = build_context(cfg_of(tmp_path, DESIGN1.format(endpoint="healed", extra="", rest='[analysis]\nprior = "altham"\n'), study=study))
    N, n1 = 60, 30
    power = sum(stats.binom.pmf(y1, n1, 0.7) * stats.binom.pmf(y2, n1, 0.4) for y1 in range(n1 + 1) for y2 in range(n1 + 1)
                if fisher_p(y1, n1, y2, n1, "less") <= 0.025)  # the treatment arm has MORE healing
    assert exact_success(ctx, "design", N)[0] == pytest.approx(power, abs=1e-9)
    with pytest.raises(InputError) as exc:
        cfg_of(tmp_path, DESIGN1.format(endpoint="qol", extra="", rest="[strata]\nall = 1.0\n"), study=study)
    assert any(p.location == "strata" for p in exc.value.problems), exc.value
    ds = run_design(cfg_of(tmp_path, DESIGN1.format(endpoint="qol", extra="", rest=""), study=study))  # in memory
    assert ds.attrs["engine"] == "exact" and float(ds["success_probability"].sel(scenario="design", sample_size=60)) > 0.5


def test_exact_falls_back_to_vectorized_with_a_note(tmp_path):
    card = tmp_path / "five.toml"
    card.write_text(CARD1.replace("[outcomes.qol]", '[strata]\nname = "site"\nlevels = ["a", "b", "c", "d", "e"]\n[outcomes.qol]'))
    text = DESIGN1.format(endpoint="qol", extra="n_trials = 200\nbatch_size = 200\n",
                          rest="[strata]\na = 0.2\nb = 0.2\nc = 0.2\nd = 0.2\ne = 0.2\n").replace("[30, 60]", "[80]")
    logs = []
    ds = run_design(cfg_of(tmp_path, text, study=load_study(card)), log=logs.append, workers=1)
    assert ds.attrs["engine"] == "vectorized" and "1,929,501 stratum splits" in ds.attrs["engine_note"]
    assert any("vectorized engine was used" in m for m in logs)
    assert int(ds["n_trials"].sel(scenario="design").item()) == 200


def test_protocol_uses_card_labels(tmp_path, card3, card1):
    from bayes_sacral.design.output import protocol_paragraph

    def paragraph(cfg):
        ds = run_design(cfg)
        ctx = build_context(cfg)
        return protocol_paragraph(cfg, ctx, ds, {"smallest_n": smallest_n(ds, cfg.design.target), "engine": ds.attrs["engine"]})

    txt = paragraph(cfg_of(tmp_path))
    assert ("randomised 1:1 to PSFS or Sacroplasty alone, stratified by fracture status (expected 70% pathological, 30% impending)"
            in txt), txt
    txt = paragraph(cfg_of(tmp_path, DESIGN3.format(extra='allocation_scheme = "simple"\n', rest='[decision]\nrule = "dual"\n'),
                           ["design.sample_sizes=[30]"], study=load_study(card3)))
    assert "Knee brace or Usual care" in txt and "simple randomisation" in txt and "50% grade I, 30% grade II, 20% grade III" in txt
    assert "Doe et al. 2020" in txt and "lower is better" in txt and "stratified by" not in txt
    txt = paragraph(cfg_of(tmp_path, DESIGN1.format(endpoint="qol", extra="", rest=""), study=load_study(card1)))
    assert "randomised 1:1 to new or old." in txt and "stratified" not in txt


# ---------------------------------------------------------------------- runner, outputs, scale-out
def test_interims_and_outputs(tmp_path, cli):
    cfg_path = tmp_path / "i.toml"
    cfg_path.write_text(BASE.replace("[40, 80]", "[60, 120]") + 'engine = "vectorized"\nn_trials = 2000\nbatch_size = 1000\n' + TRUTH
                        + "[[interim]]\nfraction = 0.5\nefficacy = 0.99\nfutility = 0.2\n[[interim]]\nfraction = 0.75\nefficacy = 0.99\n"
                        'futility = 0.1\nfutility_rule = "predictive"\n')
    r = cli("design", cfg_path, "--out", tmp_path / "out", "--quiet", "--format", "json")
    assert r.code == 0, r.err
    assert r.out.strip().splitlines()[-1] == str(tmp_path / "out")
    out = tmp_path / "out"
    for f in ("design.nc", "design.csv", "manifest.json", "protocol.md", "config.toml", "study.toml", "figures/success.png",
              "figures/success.pdf"):
        assert (out / f).exists(), f
    ds = xr.open_dataset(out / "design.nc", engine="h5netcdf").load()
    assert list(ds["look"].values) == ["interim 1 (50%)", "interim 2 (75%)", "final"]
    e_n = ds["expected_sample_size"].sel(scenario="design").values
    assert (e_n < np.array([60, 120])).all() and (e_n >= np.array([30, 60])).all()
    stops = ds["prob_stop_efficacy"] + ds["prob_stop_futility"]
    assert float(stops.sum("look").max()) <= 1.0
    assert float(ds["prob_stop_futility"].sel(scenario="no_effect").sum("look").min()) > 0.2  # futility stops happen under no effect
    csv = pd.read_csv(out / "design.csv")
    assert not csv["scenario"].isna().any() and set(csv["scenario"]) == {"design", "no_effect"}
    text = (out / "protocol.md").read_text()
    assert "Interim analyses" in text and "type I error" in text and "3.6 points (Gazendam" in text
    assert cli("design", cfg_path, "--out", out, "--quiet").code == 2  # never overwritten without --resume


def test_event_interims_vectorized(tmp_path):
    """Looks on the first n_k patients for an event endpoint, stratified allocation (random arm sizes at each look)."""
    cfg = cfg_of(tmp_path, BASE.replace("[40, 80]", "[80]") + 'endpoint = "secondary_procedure"\nengine = "vectorized"\nn_trials = 1000\n'
                 + TRUTH + "[decision]\nmcid = 0.1\n[[interim]]\nfraction = 0.5\nefficacy = 0.999\nfutility = 0.2\n"
                 '[[interim]]\nfraction = 0.75\nfutility = 0.05\nfutility_rule = "predictive"\n')
    ds = run_design(cfg, workers=1)
    assert float(ds["prob_stop_futility"].sel(scenario="no_effect").sum("look").item()) > 0.3
    assert float(ds["success_probability"].sel(scenario="design").item()) > 0.7
    assert float(ds["expected_sample_size"].sel(scenario="no_effect").item()) < 70


def test_in_memory_run_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = cfg_of(tmp_path, BASE + 'engine = "vectorized"\nn_trials = 200\nbatch_size = 100\n' + TRUTH)
    ds = run_design(cfg, None, workers=1)
    assert int(ds["n_trials"].sel(scenario="design", sample_size=40)) == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.toml"]


def test_dask_local_cluster_gives_identical_results(tmp_path):
    cfg = cfg_of(tmp_path, BASE + 'engine = "vectorized"\nn_trials = 2000\nbatch_size = 500\n' + TRUTH)
    a = run_design(cfg, tmp_path / "local", workers=2)
    b = run_design(cfg, tmp_path / "dask", scheduler="local", workers=2)
    c = run_design(cfg, tmp_path / "one", workers=1)
    xr.testing.assert_identical(a["success_probability"], b["success_probability"])
    xr.testing.assert_identical(a["success_probability"], c["success_probability"])


def test_resume_after_kill_recomputes_nothing_and_matches(tmp_path):
    cfg_path = tmp_path / "r.toml"
    cfg_path.write_text('[design]\nname = "r"\nseed = 5\nengine = "vectorized"\nsample_sizes = [200, 240]\nn_trials = 12000\n'
                        "batch_size = 100\n" + TRUTH)  # 480 small batches: the run lasts long enough to be killed part-way
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = [sys.executable, "-m", "bayes_sacral", "design", str(cfg_path), "--quiet", "--workers", "1"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*base, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    batches = killed / "batches"
    deadline = time.time() + 300
    while time.time() < deadline and (not batches.exists() or len(list(batches.glob("*.npz"))) < 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in batches.glob("*.npz")}
    assert 3 <= len(done_before) < 480, "the run was killed part-way"
    assert not (killed / "design.csv").exists()
    subprocess.run([*base, "--out", str(killed), "--resume"], env=env, check=True, capture_output=True)
    for name, mtime in done_before.items():  # finished batches were not recomputed
        assert (batches / name).stat().st_mtime_ns == mtime
    full = tmp_path / "full"
    run_design(load_design(cfg_path), full, workers=1)  # uninterrupted, in this process
    a, b = pd.read_csv(killed / "design.csv"), pd.read_csv(full / "design.csv")
    pd.testing.assert_frame_equal(a, b)
    assert not a["scenario"].isna().any()


def test_smallest_n_with_uncertainty():
    ds = xr.Dataset({"success_probability": (("scenario", "sample_size"), [[0.70, 0.79, 0.81, 0.90]]),
                     "mcse": (("scenario", "sample_size"), [[0.01, 0.01, 0.01, 0.01]])},
                    coords={"scenario": ["design"], "sample_size": [40, 60, 80, 100]})
    assert smallest_n(ds, 0.8) == {"target": 0.8, "smallest_n": 80, "smallest_n_optimistic": 60, "smallest_n_conservative": 100}


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("text,key", [
    (BASE + "n_trial = 5\n" + TRUTH, "design.n_trial"),
    (BASE + 'engine = "exact"\n' + TRUTH + "[[interim]]\nfraction = 0.5\n", "design.engine"),
    (BASE + TRUTH.replace("impending = 0.3", "impending = 0.4"), "strata"),
    (BASE + TRUTH.replace("pathological = 0.7", "pathologic = 0.7"), "strata.pathologic"),
    (BASE + TRUTH + '[analysis]\nprior = "altham"\n', "analysis.prior"),
    (BASE + TRUTH + '[truth]\nsource = "posterior"\n', "truth.run"),
    (BASE + 'endpoint = "mst"\n' + TRUTH, "design.endpoint"),
    (BASE + 'endpoint = "narcotic_change"\n' + TRUTH, "design.endpoint"),
    (BASE + 'estimand = "pathologic"\n' + TRUTH, "design.estimand"),
    (BASE + TRUTH.replace("{ pathological = 4.0, impending = 1.0 }", "{ pathological = 4.0 }"), "truth.msts.treatment_effect"),
    (BASE + TRUTH.replace("{ pathological = 4.0, impending = 1.0 }", "{ pathological = 4.0, impending = 1.0, other = 2.0 }"),
     "truth.msts.treatment_effect.other"),
    (BASE + TRUTH.replace("[truth.msts]\n", "[truth.msts]\nsigmaa = 3.0\n"), "truth.msts.sigmaa"),
    (BASE + TRUTH.replace("sigma = 5.0", 'sigma = "5"'), "truth.msts.sigma"),
    (BASE + TRUTH.replace("[truth.msts]", "[truth.mst]"), "truth.mst"),
    (BASE + '[strata]\npathological = 0.7\nimpending = 0.3\n', "truth.msts.treatment_effect"),
    (BASE + 'endpoint = "secondary_procedure"\n' + TRUTH.replace("impending = 0.14", "impending = 1.4"),
     "truth.secondary_procedure.p_control.impending"),
    # the card's MCID for secondary procedures (a risk difference of 0.10) serves a dual rule; one of 1 or more cannot
    (BASE + 'endpoint = "secondary_procedure"\n' + TRUTH + '[decision]\nrule = "dual"\nmcid = 1.5\n', "decision.mcid"),
    (BASE + 'allocation_scheme = "blocked"\n' + TRUTH, "design.allocation_scheme"),
    (BASE + TRUTH + "[truth]\nnull = true\n", "truth.null"),
])
def test_bad_design_configs(tmp_path, text, key):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        load_design(p)
    assert any(pr.location == key or pr.location.startswith(key + ".") for pr in exc.value.problems), exc.value


def test_bad_design_study_and_overrides(tmp_path, card3):
    with pytest.raises(InputError) as exc:
        cfg_of(tmp_path, BASE.replace('seed = 11\n', 'seed = 11\nstudy = "nowhere.toml"\n') + TRUTH)
    assert exc.value.problems[0].location == "design.study"
    # a card named by path, relative to the config's folder
    cfg = cfg_of(tmp_path, DESIGN3.format(extra=f'study = "{card3.name}"\n', rest=""))
    assert cfg.card.name == "knee3" and cfg.levels == ["g1", "g2", "g3"] and cfg.mcid == 5.0
    with pytest.raises(InputError) as exc:  # --set problems name the option
        cfg_of(tmp_path, sets=["design.endpoint=foo"])
    assert exc.value.problems[0].file.startswith("--set") and exc.value.problems[0].location == "design.endpoint"
    with pytest.raises(InputError) as exc:  # the truth must name the card's levels
        cfg_of(tmp_path, DESIGN3.format(extra="", rest="").replace("g3 = -2.0", "g4 = -2.0"), study=load_study(card3))
    assert {p.location for p in exc.value.problems} >= {"truth.pain.treatment_effect.g4", "truth.pain.treatment_effect"}


def test_config_from_dict_and_resolved_toml_round_trip(tmp_path):
    import tomllib

    from bayes_sacral.design.config import design_to_toml

    cfg = design_from_doc({"design": {"name": "d", "seed": 1}, "truth": {"msts": {"treatment_effect": 3.0}}})
    assert cfg.prevalence == {"pathological": 0.5, "impending": 0.5}  # generic default: equal shares
    t = cfg.truth_of()
    assert t.treatment_effect == {"pathological": 3.0, "impending": 3.0} and t.intercept == {"pathological": 15.0, "impending": 15.0}
    assert t.sigma == pytest.approx(5.0) and t.preop_sd == pytest.approx(4.0)
    again = design_from_doc(tomllib.loads(design_to_toml(cfg)))
    assert design_to_toml(again) == design_to_toml(cfg)


# ---------------------------------------------------------------------- full model
FULL = ('[design]\nname = "f"\nseed = 2\nengine = "full_model"\nsample_sizes = [40]\nn_trials = 20\nbatch_size = 10\n'
        + TRUTH.replace("sigma = 5.0\n", "sigma = 5.0\nintercept = { pathological = 19.0, impending = 26.0 }\n"
                        "preop_mean = { pathological = 9.3, impending = 16.9 }\npreop_sd = 4.0\n")
        + "[full_model]\ndraws = 100\ntune = 200\n")


def test_full_model_engine_runs_and_reports(tmp_path):
    """The full-model engine refits the reanalysis' PyMC model per simulated trial (compiled once per worker) with the
    fast tier by default; every fit's diagnostics are counted and a validation subsample is refitted by NUTS."""
    import json

    cfg = cfg_of(tmp_path, FULL + "validate_trials = 4\nvalidation_draws = 200\n", ["truth.no_effect=false"])
    ds = run_design(cfg, tmp_path / "f", workers=1)  # one process: the model is compiled once
    assert int(ds["n_trials"].sel(scenario="design", sample_size=40)) == 20
    m = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert m["engine"] == "full_model" and list(ds["scenario"].values) == ["design"]
    cell = ds.sel(scenario="design", sample_size=40)
    assert 0 <= float(cell["share_escalated"]) <= 1 and 0 <= float(cell["khat_max"]) <= 1
    assert int(cell["validation_trials"]) == 4 and 0 <= float(cell["validation_agreement"]) <= 1
    assert m["fits"]["method"] == "laplace" and m["fits"]["validation"]["trials"] == 4
    assert "validation subsample of 4 trials" in m["protocol"] and "Pareto-smoothed importance sampling" in m["protocol"]
    csv = pd.read_csv(tmp_path / "f" / "design.csv")
    assert {"share_escalated", "share_flagged", "success_probability_unflagged", "validation_agreement"} <= set(csv.columns)
    with np.load(tmp_path / "f" / "batches" / "design__n40__b00000.npz") as z:
        assert np.all(z["ref_success"][:4] >= 0) and np.all(z["ref_success"][4:] == -1)


def test_fast_tier_escalates_to_the_nuts_fit_of_the_nuts_method(tmp_path):
    """A fast-tier fit failing its diagnostics is refitted by NUTS with the seed the nuts method uses: forcing every fit
    to fail (an ESS no 2000 draws reach) reproduces the nuts method trial by trial, and every trial counts as escalated."""
    nuts = run_design(cfg_of(tmp_path, FULL + 'method = "nuts"\n', ["truth.no_effect=false"]), tmp_path / "a", workers=1)
    forced = run_design(cfg_of(tmp_path, FULL + "min_ess = 100000\n", ["truth.no_effect=false"]), tmp_path / "b", workers=1)
    for b in (tmp_path / "a" / "batches").glob("*.npz"):
        with np.load(b) as za, np.load(tmp_path / "b" / "batches" / b.name) as zb:
            np.testing.assert_array_equal(za["prob_benefit"], zb["prob_benefit"])
            np.testing.assert_array_equal(za["success"], zb["success"])
            assert not za["escalated"].any() and zb["escalated"].all() and np.isnan(za["khat"]).all()
    assert float(forced["share_escalated"].max()) == 1.0 and float(nuts["share_escalated"].max()) == 0.0


def test_target_mcse_chooses_the_number_of_trials(tmp_path):
    """With target_mcse, cells grow in whole batches until their MCSE reaches the target (or n_trials); the result does
    not depend on the number of workers."""
    text = BASE + 'engine = "vectorized"\nn_trials = 3000\ntarget_mcse = 0.02\nbatch_size = 100\n' + TRUTH
    cfg = cfg_of(tmp_path, text)
    assert cfg.design.target_mcse == 0.02
    one = run_design(cfg, tmp_path / "one", workers=1)
    two = run_design(cfg, tmp_path / "two", workers=2)
    xr.testing.assert_identical(one.drop_attrs(), two.drop_attrs())
    n = one["n_trials"].values
    se = one["mcse"].values
    assert np.all((se <= 0.02) | (n == 3000)) and np.all(n % 100 == 0) and n.min() == 200 and n.max() > 200


def test_full_model_simulates_patients_on_the_cards_scale(tmp_path, card3):
    from bayes_sacral.design.full_model import simulate_patients
    from bayes_sacral.design.runner import _preop

    cfg = cfg_of(tmp_path, DESIGN3.format(extra="", rest=""), study=load_study(card3))
    ctx = build_context(cfg)
    f = simulate_patients(ctx, "design", np.random.default_rng(1), 200, 0, _preop(cfg))
    assert list(f.columns) == ["patient_id", "arm", "grade", "pain_pre", "pain_post"]
    assert set(f["arm"]) == {"brace", "usual"} and set(f["grade"]) <= {"g1", "g2", "g3"}
    assert f["pain_post"].between(0, 50).all() and f["pain_pre"].between(0, 50).all()
    # the brace lowers pain after treatment (same distribution before)
    assert f.loc[f.arm == "brace", "pain_post"].mean() < f.loc[f.arm == "usual", "pain_post"].mean()


@pytest.mark.slow
def test_full_model_agrees_with_vectorized_where_models_coincide(tmp_path):
    """Normal likelihood, complete pooling, equal effects, little clipping: the full model's decisions match the
    conjugate reference analysis within Monte Carlo error (both are essentially the t test at N = 60)."""
    text = ('[design]\nname = "c"\nseed = 3\nsample_sizes = [60]\nn_trials = 400\nbatch_size = 50\n'
            "[strata]\npathological = 0.7\nimpending = 0.3\n"
            "[truth.msts]\ntreatment_effect = { pathological = 3.0, impending = 3.0 }\nsigma = 5.0\n"
            "intercept = { pathological = 15.0, impending = 15.0 }\npreop_mean = { pathological = 12.0, impending = 12.0 }\n"
            '[full_model]\nlikelihood = "normal"\npooling = "complete"\nprior_set = "reference"\n')
    full = run_design(cfg_of(tmp_path, text, ["design.engine=full_model"]), tmp_path / "full", workers=2)
    ex = build_context(cfg_of(tmp_path, text, ["analysis.prior=reference"]))
    for sc in ("design", "no_effect"):
        p_exact = exact_success(ex, sc, 60).mean()
        p_full = float(full["success_probability"].sel(scenario=sc, sample_size=60).item())
        se = np.sqrt(max(p_exact * (1 - p_exact), 0.01) / 400)
        assert abs(p_full - p_exact) < 3 * se, (sc, p_full, p_exact)


@pytest.mark.slow
def test_design_prior_from_fitted_runs(tmp_path):
    """Probability of success under a design prior: the posterior draws of fitted runs (a normal score model, an event
    model); trials cycle through the draws, so the vectorized engine estimates the exact engine's average."""
    from bayes_sacral.api import fit

    store = tmp_path / "store"
    sampler = {"draws": 200, "tune": 300, "chains": 2, "prior_draws": 0}
    fit({"run": {"name": "sn", "seed": 1}, "model": {"kind": "score", "outcome": "msts", "likelihood": "normal"}, "sampler": sampler},
        out=store)
    fit({"run": {"name": "ev", "seed": 1}, "model": {"kind": "events", "outcome": "secondary_procedure"}, "sampler": sampler}, out=store)
    for endpoint, run in (("msts", "sn"), ("secondary_procedure", "ev")):
        cfg = design_from_doc({"design": {"name": "a", "seed": 1, "endpoint": endpoint, "sample_sizes": [40]},
                               "strata": {"pathological": 0.7, "impending": 0.3},
                               "truth": {"source": "posterior", "run": str(store / run), "draws": 200}})
        ctx = build_context(cfg)
        assert ctx.labels["design"] == "assurance (probability of success)" and len(exact_success(ctx, "design", 40)) == 200
        agree(ctx, ["design", "no_effect"], [40])


@pytest.mark.parametrize("scheme", ["stratified", "simple"])
def test_sufficient_statistics_match_a_patient_level_simulation(tmp_path, scheme):
    """The vectorised engine draws each look's cell counts, means and pooled within-cell SS from their sampling
    distributions; here the same trials are simulated patient by patient (written in the test) and every statistic's
    distribution is compared at every look (two-sample KS tests, and exact agreement of the count distributions)."""
    from bayes_sacral.design.context import treatment_count
    from bayes_sacral.design.simulate import score_looks

    ctx = build_context(cfg_of(tmp_path, sets=[f"design.allocation_scheme={scheme}"]))
    T, looks, sigma = 4000, [10, 25, 40], 5.0
    benefit = np.tile([4.0, 1.0], (T, 1))
    ours = score_looks(ctx, np.random.default_rng(1), T, looks, benefit, np.full(T, sigma))
    rng = np.random.default_rng(2)
    N = looks[-1]
    strata = (rng.random((T, N)) >= 0.7).astype(int)
    if scheme == "stratified":  # within each stratum, the k-th patient is treated iff round(q k) steps up
        rank = np.stack([np.cumsum(strata == f, axis=1) for f in (0, 1)])[strata, np.arange(T)[:, None], np.arange(N)]
    else:
        rank = np.broadcast_to(np.arange(1, N + 1), (T, N))
    treated = (treatment_count(rank, 0.5) - treatment_count(rank - 1, 0.5)).astype(bool)
    y = np.where(treated, np.array([4.0, 1.0])[strata], 0.0) + sigma * rng.standard_normal((T, N))
    for k, n in enumerate(looks):
        cnt, mean, ss, scount = ours[k]
        ss_ref = np.zeros(T)
        for a, arm in enumerate((treated, ~treated)):
            for f in (0, 1):
                m = arm[:, :n] & (strata[:, :n] == f)
                c = m.sum(axis=1)
                mu = np.where(m, y[:, :n], 0).sum(axis=1) / np.maximum(c, 1)
                ss_ref += np.where(m, (y[:, :n] - mu[:, None]) ** 2, 0).sum(axis=1)
                # counts: same distribution (chi-square on the table of values), means: KS where the cell is filled
                vals = np.union1d(c, cnt[:, a, f])
                tab = np.array([[np.sum(c == v) for v in vals], [np.sum(cnt[:, a, f] == v) for v in vals]])
                tab = tab[:, tab.sum(axis=0) > 0]
                if tab.shape[1] > 1:
                    assert stats.chi2_contingency(tab)[1] > 1e-4, (scheme, n, a, f)
                keep, keep_ref = cnt[:, a, f] > 0, c > 0
                assert stats.ks_2samp(mean[keep, a, f], mu[keep_ref]).pvalue > 1e-4, (scheme, n, a, f)
        assert stats.ks_2samp(ss, ss_ref).pvalue > 1e-4, (scheme, n)
        np.testing.assert_array_equal(scount.sum(axis=1), n)
        np.testing.assert_array_equal(cnt.sum(axis=(1, 2)), n)


def test_split_treated_is_multivariate_hypergeometric():
    from bayes_sacral.design.simulate import split_treated

    counts = np.tile([5, 3, 2], (20000, 1))
    x = split_treated(np.random.default_rng(0), counts, 4)
    np.testing.assert_array_equal(x.sum(axis=1), 4)
    assert (x <= counts).all()
    ref = np.random.default_rng(1).multivariate_hypergeometric([5, 3, 2], 4, size=20000)
    for f in range(3):
        tab = np.array([np.bincount(x[:, f], minlength=5), np.bincount(ref[:, f], minlength=5)])
        assert stats.chi2_contingency(tab[:, tab.sum(axis=0) > 0])[1] > 1e-4, f


@pytest.mark.parametrize("scheme,prior", [("stratified", "reference"), ("simple", "reference"), ("stratified", "normal")])
def test_predictive_probability_matches_a_patient_level_continuation(tmp_path, scheme, prior):
    """The predictive probability of final success at an interim (score endpoint) continues each trial by sufficient
    statistics; here the same continuation is simulated patient by patient (written in the test) from the same interim
    states, and the mean predictive probabilities agree within Monte Carlo error."""
    from bayes_sacral.design import simulate as S
    from bayes_sacral.design.context import treatment_count

    sets = [f"design.allocation_scheme={scheme}"] + (["analysis.prior=reference"] if prior == "reference" else [])
    ctx = build_context(cfg_of(tmp_path, sets=sets))
    n_now, N, T = 30, 60, 3000
    states = S.score_looks(ctx, np.random.default_rng(5), 4, [n_now], np.tile([4.0, 1.0], (4, 1)), np.full(4, 5.0))[0]
    rep = np.repeat(np.arange(4), T // 4)  # each of 4 interim states, T/4 times
    cnt, mean, ss, scount = (a[rep] for a in states)
    plug = np.full(T, 5.0)
    ours = S._score_ppos(ctx, np.random.default_rng(6), cnt, mean, ss, n_now, N, scount, plug)

    rng = np.random.default_rng(7)
    M, R, K = S.PPOS_SIMS, N - n_now, ctx.K
    mu = mean[:, None] + 5.0 / np.sqrt(np.maximum(cnt[:, None], 1)) * rng.standard_normal((T, M, 2, K))
    fr = S.draw_strata(ctx, rng, (T, M, R))
    arm = 1 - S.allocate(ctx, fr, start_counts=np.broadcast_to(scount[:, None, :], (T, M, K)), start_pos=n_now)
    yf = mu[np.arange(T)[:, None, None], np.arange(M)[None, :, None], arm, fr] + 5.0 * rng.standard_normal((T, M, R))
    tot, mean_fin, ss_fin = np.zeros((T, M, 2, K)), np.zeros((T, M, 2, K)), np.repeat(ss[:, None], M, axis=1)
    for a in (0, 1):
        for f in range(K):
            m = (arm == a) & (fr == f)
            c_new = m.sum(axis=2)
            s_new = np.where(m, yf, 0).sum(axis=2)
            c0, m0 = cnt[:, None, a, f], mean[:, None, a, f]
            tot[..., a, f] = c0 + c_new
            mean_fin[..., a, f] = np.where(tot[..., a, f] > 0, (c0 * m0 + s_new) / np.maximum(tot[..., a, f], 1), 0)
            mf = mean_fin[..., a, f][..., None]
            ss_fin += c0 * (m0 - mean_fin[..., a, f]) ** 2 + np.where(m, (yf - mf) ** 2, 0).sum(axis=2)
    p0, pm_, valid = S._score_probs(ctx, tot.reshape(-1, 2, K), mean_fin.reshape(-1, 2, K), ss_fin.ravel(), np.full(T * M, N))
    ref = S._final_rule(ctx, p0, pm_, valid).reshape(T, M).mean(axis=1)
    assert treatment_count(N, ctx.q) == N // 2
    for k in range(4):
        a, b = ours[rep == k], ref[rep == k]
        se = np.sqrt(a.var() / len(a) + b.var() / len(b)) + 1e-3
        assert abs(a.mean() - b.mean()) < 4 * se, (scheme, k, a.mean(), b.mean())

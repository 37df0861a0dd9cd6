"""Trial design: exact engines against closed-form frequentist answers, engines against each other, scale-out, resume."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from bayes_sacral.design.config import load_design
from bayes_sacral.design.context import build_context
from bayes_sacral.design.exact import exact_success
from bayes_sacral.design.runner import run_design, smallest_n
from bayes_sacral.design.simulate import vectorized_batch
from bayes_sacral.errors import InputError

BASE = '[design]\nname = "t"\nseed = 11\nsample_sizes = [40, 80]\n'


def cfg_of(tmp_path, text=BASE, sets=()):
    p = tmp_path / "d.toml"
    p.write_text(text)
    return load_design(p, list(sets))


def test_binary_altham_rule_is_fishers_exact_test(tmp_path):
    """With Altham priors the Bayesian rule P(benefit) >= 1 - alpha is Fisher's one-sided test at alpha: its power,
    computed here by enumerating every 2x2 table with scipy, must equal the exact engine's."""
    cfg = cfg_of(tmp_path, BASE + 'endpoint = "secondary_procedure"\n[analysis]\nprior = "altham"\n')
    ctx = build_context(cfg)
    for N in (40, 80):
        n1 = n2 = N // 2
        p1, p2 = float(ctx.truth["design"]["p_psfs"][0]), float(ctx.truth["design"]["p_sacro"][0])
        power = 0.0
        for y1 in range(n1 + 1):
            for y2 in range(n2 + 1):
                pv = stats.fisher_exact([[y2, n2 - y2], [y1, n1 - y1]], alternative="greater").pvalue
                if pv <= 1 - 0.975:
                    power += stats.binom.pmf(y1, n1, p1) * stats.binom.pmf(y2, n2, p2)
        assert exact_success(ctx, "design", N)[0] == pytest.approx(power, abs=1e-9)
    assert exact_success(ctx, "null", 80)[0] <= 0.025 + 1e-12  # Fisher's test keeps its level


def test_msts_reference_rule_is_the_t_test(tmp_path):
    """Flat means + Jeffreys' 1/sigma: P(effect > 0) >= 0.975 is the one-sided t test; power is a non-central t tail
    (single stratum) or its binomial mixture over the random stratum split (two strata)."""
    one = cfg_of(tmp_path, BASE + '[analysis]\nprior = "reference"\n[strata]\npathological = 1.0\nimpending = 0.0\n')
    ctx = build_context(one)
    for N in (40, 80):
        ncp = 4.0 / (5.0 * np.sqrt(2 / (N / 2) * 2 / 2))  # delta / (sigma sqrt(1/n1 + 1/n0)), n1 = n0 = N/2
        ncp = 4.0 / (5.0 * np.sqrt(1 / (N / 2) + 1 / (N / 2)))
        assert exact_success(ctx, "design", N)[0] == pytest.approx(stats.nct.sf(stats.t.ppf(0.975, N - 2), N - 2, ncp), rel=1e-10)
        assert exact_success(ctx, "null", N)[0] == pytest.approx(0.025, rel=1e-10)
    two = build_context(cfg_of(tmp_path, BASE + '[analysis]\nprior = "reference"\n'))
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


def test_msts_known_sigma_normal_prior_closed_form(tmp_path):
    ctx = build_context(cfg_of(tmp_path, BASE + "[strata]\npathological = 1.0\nimpending = 0.0\n"))
    N = 80
    se = 5 * np.sqrt(2 / 40)
    # posterior N(m, s2) with prior N(0, 25): success iff d >= k with k solving Phi(post mean / post sd) = 0.975
    prec = 1 / 25 + 1 / se**2
    k = stats.norm.ppf(0.975) * np.sqrt(prec) / (1 / se**2)
    assert exact_success(ctx, "design", N)[0] == pytest.approx(stats.norm.sf((k - 4.0) / se), rel=1e-8)


@pytest.mark.parametrize("sets", [[], ["analysis.prior=reference"], ["decision.rule=dual"], ["design.endpoint=secondary_procedure"],
                                  ["design.endpoint=secondary_procedure", "analysis.prior=jeffreys", "decision.rule=dual"]])
def test_vectorized_agrees_with_exact(tmp_path, sets):
    ctx = build_context(cfg_of(tmp_path, sets=sets))
    T = 20_000
    for sc in ("design", "null"):
        for N in (40, 80):
            ex = exact_success(ctx, sc, N).mean()
            p = vectorized_batch(ctx, sc, N, [], [], T, np.random.SeedSequence([N, len(sc)]), 0)["success"].mean()
            se = np.sqrt(max(ex * (1 - ex), 1e-4) / T)
            assert abs(p - ex) < 4 * se, (sets, sc, N, p, ex)


def test_interims_and_outputs(tmp_path, cli):
    cfg_path = tmp_path / "i.toml"
    cfg_path.write_text(BASE.replace("[40, 80]", "[60, 120]") + 'engine = "vectorized"\nn_trials = 3000\nbatch_size = 1000\n'
                        "[[interim]]\nfraction = 0.5\nefficacy = 0.99\nfutility = 0.2\n[[interim]]\nfraction = 0.75\nefficacy = 0.99\n"
                        'futility = 0.1\nfutility_rule = "predictive"\n')
    r = cli("design", cfg_path, "--out", tmp_path / "out", "--quiet", "--format", "json")
    assert r.code == 0 and r.out.strip().splitlines()[-1] == str(tmp_path / "out")
    out = tmp_path / "out"
    for f in ("design.nc", "design.csv", "manifest.json", "protocol.md", "config.toml", "figures/success.png", "figures/success.pdf"):
        assert (out / f).exists(), f
    ds = xr.open_dataset(out / "design.nc", engine="h5netcdf").load()
    assert list(ds["look"].values) == ["interim 1 (50%)", "interim 2 (75%)", "final"]
    e_n = ds["expected_sample_size"].sel(scenario="design").values
    assert (e_n < np.array([60, 120])).all() and (e_n >= np.array([30, 60])).all()
    stops = ds["prob_stop_efficacy"] + ds["prob_stop_futility"]
    assert float(stops.sum("look").max()) <= 1.0
    assert float(ds["prob_stop_futility"].sel(scenario="null").sum("look").min()) > 0.2  # futility stops happen under no effect
    text = (out / "protocol.md").read_text()
    assert "Interim analyses" in text and "type I error" in text
    assert cli("design", cfg_path, "--out", out, "--quiet").code == 1  # never overwritten without --resume


def test_dask_local_cluster_gives_identical_results(tmp_path):
    cfg = cfg_of(tmp_path, BASE + 'engine = "vectorized"\nn_trials = 2000\nbatch_size = 500\n')
    a = run_design(cfg, tmp_path / "local", workers=2)
    b = run_design(cfg, tmp_path / "dask", scheduler="local", workers=2)
    c = run_design(cfg, tmp_path / "one", workers=1)
    xr.testing.assert_identical(a["success_probability"], b["success_probability"])
    xr.testing.assert_identical(a["success_probability"], c["success_probability"])


def test_resume_after_kill_recomputes_nothing_and_matches(tmp_path):
    cfg_path = tmp_path / "r.toml"
    cfg_path.write_text('[design]\nname = "r"\nseed = 5\nengine = "vectorized"\nsample_sizes = [200, 240]\nn_trials = 60000\n'
                        "batch_size = 2000\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = [sys.executable, "-m", "bayes_sacral", "design", str(cfg_path), "--quiet", "--workers", "1"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*base, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    batches = killed / "batches"
    deadline = time.time() + 300
    while time.time() < deadline and (not batches.exists() or len(list(batches.glob("*.npz"))) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in batches.glob("*.npz")}
    assert 3 <= len(done_before) < 60, "the run was killed part-way"
    assert not (killed / "design.csv").exists()
    subprocess.run([*base, "--out", str(killed), "--resume"], env=env, check=True, capture_output=True)
    for name, mtime in done_before.items():  # finished batches were not recomputed
        assert (batches / name).stat().st_mtime_ns == mtime
    full = tmp_path / "full"
    subprocess.run([*base, "--out", str(full)], env=env, check=True, capture_output=True)
    pd.testing.assert_frame_equal(pd.read_csv(killed / "design.csv"), pd.read_csv(full / "design.csv"))


def test_smallest_n_with_uncertainty():
    ds = xr.Dataset({"success_probability": (("scenario", "sample_size"), [[0.70, 0.79, 0.81, 0.90]]),
                     "mcse": (("scenario", "sample_size"), [[0.01, 0.01, 0.01, 0.01]])},
                    coords={"scenario": ["design"], "sample_size": [40, 60, 80, 100]})
    assert smallest_n(ds, 0.8) == {"target": 0.8, "smallest_n": 80, "smallest_n_optimistic": 60, "smallest_n_conservative": 100}


@pytest.mark.parametrize("text,key", [
    (BASE + "n_trial = 5\n", "design.n_trial"),
    (BASE + 'engine = "exact"\n[[interim]]\nfraction = 0.5\n', "design.engine"),
    (BASE + "[strata]\npathological = 0.8\nimpending = 0.3\n", "strata"),
    (BASE + '[analysis]\nprior = "altham"\n', "analysis.prior"),
    (BASE + '[truth]\nsource = "posterior"\n', "truth.run"),
])
def test_bad_design_configs(tmp_path, text, key):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        load_design(p)
    assert any(pr.location.startswith(key) for pr in exc.value.problems), exc.value


def test_full_model_engine_runs_and_reports(tmp_path):
    """The full-model engine refits the reanalysis' PyMC model per simulated trial (compiled once per worker)."""
    cfg = cfg_of(tmp_path, '[design]\nname = "f"\nseed = 2\nengine = "full_model"\nsample_sizes = [40]\nn_trials = 20\nbatch_size = 10\n'
                           '[full_model]\ndraws = 200\ntune = 300\n')
    ds = run_design(cfg, tmp_path / "f", workers=2)
    assert int(ds["n_trials"].sel(scenario="design", sample_size=40)) == 20
    m = (tmp_path / "f" / "manifest.json").read_text()
    assert '"engine": "full_model"' in m


@pytest.mark.slow
def test_full_model_agrees_with_vectorized_where_models_coincide(tmp_path):
    """Normal likelihood, complete pooling, equal effects, little clipping: the full model's decisions match the
    conjugate reference analysis within Monte Carlo error (both are essentially the t test at N = 60)."""
    text = ('[design]\nname = "c"\nseed = 3\nsample_sizes = [60]\nn_trials = 400\nbatch_size = 50\n'
            '[truth.msts]\ntreatment_effect = { pathological = 3.0, impending = 3.0 }\nintercept = { pathological = 15.0, impending = 15.0 }\n'
            "preop_mean = { pathological = 12.0, impending = 12.0 }\n[full_model]\nlikelihood = \"normal\"\npooling = \"complete\"\nprior_set = \"reference\"\n")
    full = run_design(cfg_of(tmp_path, text, ["design.engine=full_model"]), tmp_path / "full", workers=2)
    ex = build_context(cfg_of(tmp_path, text, ["analysis.prior=reference"]))
    for sc in ("design", "null"):
        p_exact = exact_success(ex, sc, 60).mean()
        p_full = float(full["success_probability"].sel(scenario=sc, sample_size=60).item())
        se = np.sqrt(max(p_exact * (1 - p_exact), 0.01) / 400)
        assert abs(p_full - p_exact) < 3 * se, (sc, p_full, p_exact)

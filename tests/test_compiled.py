"""Compile once, sample only when needed: the compile cache and the exact backend.

The cache is checked for what matters to a user: a model loaded from disk in a fresh process gives the same draws as a
fresh compile; a model of the same structure with other data is reused and fits *its* data (checked against the
closed-form posterior); a corrupt entry is rejected and rebuilt. Exact draws are checked against the Beta closed form.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pymc as pm
import pytest
from scipy import stats

import bayes_sacral as bs
from bayes_sacral import compiled
from bayes_sacral.errors import InputError

PRIOR_SD = 10.0


def normal_model(y):
    """mu ~ N(0, 10²), y_i ~ N(mu, 1): the posterior of mu is normal with closed-form mean and SD."""
    with pm.Model() as m:
        yd = pm.Data("y", np.asarray(y, float))
        mu = pm.Normal("mu", 0.0, PRIOR_SD)
        # a deterministic of a random variable brings a NoneConst (its size) into the graph: a key that hashed its
        # bytes (a pointer) differed in every process, and nothing was ever loaded from disk
        pm.Deterministic("mu_doubled", 2 * mu)
        pm.Normal("obs", mu, 1.0, observed=yd)
    return m


def closed_form(y):
    prec = 1 / PRIOR_SD**2 + len(y)
    return float(np.sum(y) / prec), float(prec**-0.5)


SCRIPT = """
import json, sys, numpy as np, nutpie
sys.path.insert(0, {tests!r})
from test_compiled import normal_model
from bayes_sacral import compiled
cm = compiled.compiled_model(normal_model([0.5, 1.5, 2.0]))
idata = nutpie.sample(cm, draws=300, tune=300, chains=2, cores=1, seed=5, progress_bar=False)
s = compiled.STATS
print(json.dumps({{"compiled": s.compiled, "loaded": s.loaded, "rejected": s.rejected,
                  "mu": idata.posterior["mu"].values.ravel().tolist()}}))
"""


def run_fresh(cache):
    env = {**os.environ, "BAYES_SACRAL_CACHE": str(cache)}
    code = SCRIPT.format(tests=os.path.dirname(__file__))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fresh_process_loads_the_compiled_model_and_draws_identically(tmp_path):
    first = run_fresh(tmp_path)
    assert (first["compiled"], first["loaded"]) == (1, 0)
    assert len(list((tmp_path / "models").glob("*.bscm"))) == 1
    second = run_fresh(tmp_path)
    assert (second["compiled"], second["loaded"], second["rejected"]) == (0, 1, 0)
    assert second["mu"] == first["mu"]  # bit for bit: same machine, same lock, same seed
    # a corrupt entry is detected, removed and rebuilt; the draws do not change
    entry = next((tmp_path / "models").glob("*.bscm"))
    raw = bytearray(entry.read_bytes())
    raw[-20] ^= 0xFF
    entry.write_bytes(bytes(raw))
    third = run_fresh(tmp_path)
    assert (third["compiled"], third["loaded"], third["rejected"]) == (1, 0, 1)
    assert third["mu"] == first["mu"]
    assert run_fresh(tmp_path)["loaded"] == 1  # the rebuilt entry is good


def test_same_structure_other_data_is_reused_and_fits_its_own_data(tmp_path, monkeypatch):
    import nutpie

    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path))
    before = compiled.STATS.compiled + compiled.STATS.loaded + compiled.STATS.reused
    ys = [np.array([0.2, -0.4, 1.1]), np.array([5.0, 6.5, 4.0, 7.0, 5.5])]  # another length: same structure
    reused0 = compiled.STATS.reused
    for y in ys:
        cm = compiled.compiled_model(normal_model(y))
        post = nutpie.sample(cm, draws=1000, tune=500, chains=2, cores=1, seed=3, progress_bar=False).posterior["mu"]
        mean, sd = closed_form(y)
        d = post.values.ravel()
        assert abs(d.mean() - mean) < 5 * sd / np.sqrt(500), (d.mean(), mean)
        assert abs(d.std() - sd) < 0.15 * sd
    assert compiled.STATS.reused - reused0 >= 1
    assert compiled.STATS.compiled + compiled.STATS.loaded + compiled.STATS.reused - before == 2


def test_structure_key_separates_structures_not_data():
    k1 = compiled.structure_key(normal_model([1.0, 2.0]))
    assert k1 == compiled.structure_key(normal_model([3.0, 4.0, 5.0]))
    with pm.Model() as other:
        mu = pm.Normal("mu", 0.0, PRIOR_SD)
        pm.StudentT("obs", nu=4, mu=mu, sigma=1.0, observed=pm.Data("y", np.array([1.0, 2.0])))
    assert compiled.structure_key(other) != k1


EVENTS_DOC = {"run": {"name": "t", "seed": 3}, "model": {"kind": "secondary_procedures"}, "priors": {"set": "jeffreys"},
              "sampler": {"draws": 2000, "chains": 2, "prior_draws": 100, "predictive_draws": 200}}


def test_conjugate_model_gets_exact_independent_draws_matching_the_beta_posterior():
    run = bs.fit(EVENTS_DOC)
    assert run.resolved.config.sampler.backend == "exact"  # auto resolves to exact for a conjugate model
    assert "closed-form" in run.manifest["diagnostics"]["method"]
    post = run.idata["posterior"]
    assert "sample_stats" not in run.idata.children
    for (arm, lev), (y, n) in {("psfs", "pathological"): (0, 9), ("sacroplasty", "pathological"): (5, 12),
                               ("sacroplasty", "impending"): (1, 7)}.items():
        d = post["p_event"].sel(arm=arm, fracture=lev).values.ravel()
        ks = stats.kstest(d, stats.beta(0.5 + y, 0.5 + n - y).cdf)
        assert ks.pvalue > 1e-4, (arm, lev, ks)
    # independent draws: lag-1 autocorrelation near 0 (|r| < 4/sqrt(n))
    d = post["p_event"].sel(arm="sacroplasty", fracture="pathological").values[0]
    r = np.corrcoef(d[:-1], d[1:])[0, 1]
    assert abs(r) < 4 / np.sqrt(len(d))
    # same seed, same draws
    again = bs.fit(EVENTS_DOC).idata["posterior"]["p_event"].values
    assert np.array_equal(again, post["p_event"].values)


def test_exact_backend_on_a_non_conjugate_model_is_an_input_error():
    doc = {**EVENTS_DOC, "model": {"kind": "secondary_procedures", "variant": "hierarchical"}, "priors": {},
           "sampler": {"backend": "exact"}}
    with pytest.raises(InputError) as exc:
        bs.fit(doc)
    assert "sampler.backend" in str(exc.value) and "conjugate" in str(exc.value)


def test_exact_prior_and_prior_predictive_follow_the_closed_form_prior():
    """The prior group of an exact run is drawn in closed form: p_event ~ Beta(α, β) per cell and the prior predictive
    events ~ BetaBinomial(n, α, β), checked against scipy; its deterministics match the prior draws."""
    doc = {**EVENTS_DOC, "sampler": {**EVENTS_DOC["sampler"], "prior_draws": 4000}}
    run = bs.fit(doc)
    prior, pp = run.idata["prior"], run.idata["prior_predictive"]
    assert prior.sizes["draw"] == 4000 and prior.sizes["chain"] == 1
    for arm, lev, n in (("psfs", "pathological", 9), ("sacroplasty", "impending", 7)):
        p = prior["p_event"].sel(arm=arm, fracture=lev).values.ravel()
        assert stats.kstest(p, stats.beta(0.5, 0.5).cdf).pvalue > 1e-4
        y = pp["events"].sel(arm=arm, fracture=lev).values.ravel()
        expected = stats.betabinom(n, 0.5, 0.5).pmf(np.arange(n + 1)) * len(y)
        observed = np.bincount(y.astype(int), minlength=n + 1)
        assert stats.chisquare(observed, expected).pvalue > 1e-4
    rd = prior["risk_difference"].sel(fracture="pathological").values
    p = prior["p_event"].sel(fracture="pathological")
    np.testing.assert_allclose(rd, (p.sel(arm="psfs") - p.sel(arm="sacroplasty")).values)
    # the predictive uses its own stream: not a function of the prior draws' uniforms
    assert abs(np.corrcoef(prior["p_event"].values.ravel(), pp["events"].values.ravel())[0, 1]) < 0.9


def test_vectorised_deterministics_run_without_python_loops_and_match_pymc():
    """Deterministic wrappers are stripped before vectorising (a Blockwise over them loops in Python per draw); the
    values equal PyMC's own per-draw computation."""
    from pytensor.tensor.blockwise import Blockwise

    from bayes_sacral import batched
    from bayes_sacral.config import resolve
    from bayes_sacral.fitting import build_run_model, prepare_run

    run = resolve({"run": {"name": "b", "seed": 1}, "model": {"kind": "secondary_procedures"}})
    inp, _ = prepare_run(run)
    model = build_run_model(run, inp)
    rng = np.random.default_rng(0)
    import xarray as xr

    post = xr.Dataset({"p_event": (("chain", "draw", "arm", "fracture"), rng.uniform(0.05, 0.95, (2, 50, 2, 2)))},
                      coords={"arm": list(model.coords["arm"]), "fracture": list(model.coords["fracture"])})
    ours = batched.deterministics(model, post)
    fn = batched.compiled_for(model, "deterministics", lambda: None)
    assert not [n for n in fn.maker.fgraph.apply_nodes if isinstance(n.op, Blockwise)]
    with model:
        ref = pm.compute_deterministics(post, progressbar=False)
    for v in ("risk_difference", "odds_ratio", "p_event_pooled", "risk_difference_pooled", "nnt_pooled"):
        np.testing.assert_allclose(ours[v].transpose(*ref[v].dims).values, ref[v].values, rtol=1e-12)


@pytest.mark.parametrize("model_doc", [
    {"kind": "secondary_procedures", "variant": "hierarchical"},
    {"kind": "narcotic_change", "variant": "ordered_logit", "pooling": "partial"},
    {"kind": "msts", "route": "summary", "likelihood": "normal", "pooling": "partial"},
    {"kind": "msts_domains", "route": "reconstructed", "pooling": "partial", "reconstructions": 2},
])
def test_vectorised_log_likelihood_and_deterministics_equal_pymcs_per_draw_loops(model_doc):
    """The vectorised pointwise log-likelihood and deterministics (what LOO and every summary read) equal PyMC's own
    per-draw computation, on models whose likelihood runs through deterministics and ordered logits."""
    import xarray as xr

    from bayes_sacral import batched
    from bayes_sacral.config import resolve
    from bayes_sacral.fitting import build_run_model, prepare_run

    run = resolve({"run": {"name": "ll", "seed": 1}, "model": model_doc})
    inp, _ = prepare_run(run)
    model = build_run_model(run, inp)
    with model:
        prior = pm.sample_prior_predictive(draws=12, random_seed=3, var_names=[rv.name for rv in model.free_RVs])["prior"]
    post = prior.to_dataset().squeeze("chain", drop=True).expand_dims(chain=[0]).transpose("chain", "draw", ...)
    post = xr.concat([post, post.isel(draw=slice(None, None, -1)).assign_coords(draw=post.draw)], "chain").assign_coords(chain=[0, 1])
    ours = batched.log_likelihood(model, post)
    with model:
        ref = pm.compute_log_likelihood(xr.DataTree.from_dict({"posterior": post}), progressbar=False,
                                        extend_inferencedata=False)
    ref = ref.to_dataset() if hasattr(ref, "to_dataset") else ref
    for v in ours.data_vars:
        np.testing.assert_allclose(ours[v].values, ref[v].transpose(*ours[v].dims).values, rtol=1e-9, atol=1e-9)
    det = batched.deterministics(model, post)
    with model:
        ref_det = pm.compute_deterministics(post, progressbar=False)
    for v in ref_det.data_vars:
        np.testing.assert_allclose(det[v].transpose(*ref_det[v].dims).values, ref_det[v].values, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model_doc", [
    {"kind": "secondary_procedures", "variant": "hierarchical"},
    {"kind": "narcotic_change", "variant": "ordered_logit", "pooling": "partial"},
    {"kind": "msts", "route": "summary", "likelihood": "normal", "pooling": "partial"},
])
def test_vectorised_prior_predictive_has_pymcs_distribution(model_doc):
    """The prior and prior predictive drawn in one vectorised call have the distribution of PyMC's per-draw sampler:
    same variables, dims and sizes, and every element passes a two-sample KS test against PyMC's draws."""
    from bayes_sacral import batched
    from bayes_sacral.config import resolve
    from bayes_sacral.fitting import build_run_model, prepare_run

    run = resolve({"run": {"name": "pp", "seed": 1}, "model": model_doc})
    inp, _ = prepare_run(run)
    model = build_run_model(run, inp)
    n = 2000
    prior, pp = batched.prior_predictive(model, n, 1)
    with model:
        ref = pm.sample_prior_predictive(draws=n, random_seed=2)
    for group, ds in (("prior", prior), ("prior_predictive", pp)):
        want = ref[group].to_dataset()
        assert set(ds.data_vars) == set(want.data_vars), group
        for v in ds.data_vars:
            assert ds[v].dims == want[v].dims and ds[v].shape == want[v].shape, v
            a, b = ds[v].values.reshape(n, -1), want[v].values.reshape(n, -1)
            for j in range(a.shape[1]):
                x, y = a[:, j][np.isfinite(a[:, j])], b[:, j][np.isfinite(b[:, j])]
                if np.ptp(np.concatenate([x, y])) > 0:
                    assert stats.ks_2samp(x, y).pvalue > 1e-5, (group, v, j)
    again, _ = batched.prior_predictive(model, n, 1)  # same seed, same draws
    for v in prior.data_vars:
        np.testing.assert_array_equal(again[v].values, prior[v].values)


FN_SCRIPT = """
import json, numpy as np
import bayes_sacral as bs
from bayes_sacral import compiled
run = bs.fit({"run": {"name": "f", "seed": 4}, "model": {"kind": "secondary_procedures"},  # exact draws: no sampler compile
              "sampler": {"draws": 100, "chains": 2, "prior_draws": 50, "predictive_draws": 100}})
dt = run.idata
out = {g: dt[g].to_dataset()[v].values.ravel().tolist() for g, v in
       (("prior", "p_event"), ("prior_predictive", "events"), ("posterior_predictive", "events"), ("log_likelihood", "events"),
        ("posterior", "risk_difference"))}
print(json.dumps({"built": compiled.STATS.functions_built, "loaded": compiled.STATS.functions_loaded,
                  "rejected": compiled.STATS.rejected, **out}))
"""


def test_vectorised_functions_are_loaded_by_later_processes_and_compute_the_same(tmp_path):
    """Deterministics, log-likelihood and predictive functions are pickled into the compile cache: a later process
    loads them (no rebuild) and every group of its run is identical; a corrupt entry is rejected and rebuilt."""
    env = {**os.environ, "BAYES_SACRAL_CACHE": str(tmp_path)}

    def fresh():
        out = subprocess.run([sys.executable, "-c", FN_SCRIPT], env=env, capture_output=True, text=True, timeout=600, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = fresh(), fresh()
    assert first["built"] >= 3 and first["loaded"] == 0
    assert second["built"] == 0 and second["loaded"] == first["built"]
    groups = ("prior", "prior_predictive", "posterior_predictive", "log_likelihood", "posterior")
    assert all(first[g] == second[g] for g in groups)
    entries = sorted((tmp_path / "functions").glob("*.bsfn"))
    assert len(entries) == first["built"]
    raw = entries[0].read_bytes()
    entries[0].write_bytes(raw[:-20] + bytes(20))  # damaged body: the checksum no longer matches
    third = fresh()
    assert third["rejected"] >= 1 and third["built"] == 1
    assert all(first[g] == third[g] for g in groups)

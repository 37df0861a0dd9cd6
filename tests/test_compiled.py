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


def beta_binomial_model(y, n):
    """A model whose gradient calls scipy's digamma through PyTensor's cached Cython function pointer."""
    with pm.Model() as m:
        a = pm.Gamma("a", 2.0, 0.5)
        b = pm.Gamma("b", 2.0, 0.5)
        pm.BetaBinomial("obs", n=pm.Data("n", np.asarray(n)), alpha=a, beta=b, observed=pm.Data("y", np.asarray(y)))
    return m


SCRIPT = """
import json, sys, numpy as np
import numba.core.dispatcher as dispatcher
sys.path.insert(0, {tests!r})
from test_compiled import normal_model, beta_binomial_model
from bayes_sacral import compiled, nuts
objmode = []  # numba compiling an object-mode block (what a pointer slot left empty costs on first use)
_compile = dispatcher.ObjModeLiftedWith.compile
dispatcher.ObjModeLiftedWith.compile = lambda self, sig: objmode.append(1) or _compile(self, sig)
cm = compiled.compiled_model({model})
idata = nuts.start(cm, draws=300, tune=300, chains=2, cores=1, seed=5, progress_bar=False, target_accept=0.8).wait()
s = compiled.STATS
var = list(idata["posterior"].data_vars)[0]
print(json.dumps({{"compiled": s.compiled, "loaded": s.loaded, "rejected": s.rejected, "prebuilt": s.prebuilt, "objmode": len(objmode),
                  "slots": sum(len(x.payload["slots"]) for x in compiled._LOADED.values()),
                  "mu": idata["posterior"][var].values.ravel().tolist()}}))
"""


def run_fresh(cache, model="normal_model([0.5, 1.5, 2.0])", env=None):
    env = {**os.environ, "BAYES_SACRAL_CACHE": str(cache), **(env or {})}
    code = SCRIPT.format(tests=os.path.dirname(__file__), model=model)
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


def test_scipy_function_pointers_are_filled_at_load_not_looked_up_through_numba(tmp_path):
    """The digamma in the beta-binomial's gradient is reached through a pointer slot the loader fills: a fresh process
    that loads the entry compiles no object-mode block, and draws exactly what the compiling process drew."""
    model = "beta_binomial_model([3, 7, 5, 9, 2], [10, 10, 10, 12, 10])"
    first = run_fresh(tmp_path, model)
    assert (first["compiled"], first["loaded"]) == (1, 0) and first["slots"] >= 1
    second = run_fresh(tmp_path, model)
    assert (second["compiled"], second["loaded"], second["rejected"]) == (0, 1, 0)
    assert second["objmode"] == 0
    assert second["mu"] == first["mu"]


def test_arviz_base_is_imported_before_pymc_scipy_stats_and_numba():
    """ArviZ's base package probes for the optional JAX/NumPyro with inspect.stack(), whose cost grows with every module
    already loaded; the model package imports it before PyMC, SciPy's stats and numba, which a fit imports after it (the
    model kinds import PyMC when they build a model; a fresh process, import order read from sys.modules, which keeps
    insertion order)."""
    code = ("import sys, bayes_sacral.fitting, nutpie, pymc; m = list(sys.modules); "
            "print(all(m.index('arviz_base') < m.index(x) for x in ('pymc', 'scipy.stats', 'numba')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_same_structure_other_data_is_reused_and_fits_its_own_data(tmp_path, monkeypatch):
    from bayes_sacral import nuts

    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path))
    before = compiled.STATS.compiled + compiled.STATS.loaded + compiled.STATS.reused
    ys = [np.array([0.2, -0.4, 1.1]), np.array([5.0, 6.5, 4.0, 7.0, 5.5])]  # another length: same structure
    reused0 = compiled.STATS.reused
    for y in ys:
        cm = compiled.compiled_model(normal_model(y))
        post = nuts.start(cm, draws=1000, tune=500, chains=2, cores=1, seed=3, progress_bar=False, target_accept=0.8).wait()["posterior"]["mu"]
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


def test_machine_code_is_keyed_by_the_cpus_instruction_set(monkeypatch):
    """Entries hold machine code: a CPU of the same name with other features (a VM masking AVX-512, say) gets its own."""
    import llvmlite.binding as ll

    k1 = compiled.structure_key(normal_model([1.0, 2.0]))
    features = ll.get_host_cpu_features()
    features["avx512f"] = not features.get("avx512f", False)
    monkeypatch.setattr(ll, "get_host_cpu_features", lambda: features)
    assert compiled.structure_key(normal_model([1.0, 2.0])) != k1


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


def test_the_cache_stays_bounded_least_recently_used_first(tmp_path, monkeypatch):
    """After a write the oldest-used entries go until the rest fit; loading an entry marks it used, so a structure in
    daily use outlives entries nobody has loaded since (old package versions, retired models)."""
    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path))
    monkeypatch.setattr(compiled, "_LOADED", {})  # nothing already in memory from an earlier test
    y = [0.5, 1.5, 2.0]
    compiled.compiled_model(normal_model(y))  # a real entry
    real = next((tmp_path / "models").glob("*.bscm"))
    stale = []
    for i in range(3):  # entries of another version: same size, never loaded again
        p = tmp_path / "models" / f"{i:064x}.bscm"
        p.write_bytes(real.read_bytes())
        stale.append(p)
    t0 = real.stat().st_mtime
    for k, p in enumerate([real, *stale]):
        os.utime(p, (t0 - 1000 + k, t0 - 1000 + k))  # the real entry is the oldest written
    compiled._LOADED.clear()
    compiled.compiled_model(normal_model(y))  # loaded from disk: marked as used
    assert real.stat().st_mtime > t0 - 10
    size = real.stat().st_size
    assert compiled.prune(max_bytes=2 * size + size // 2) == 2
    assert real.exists() and sum(p.exists() for p in stale) == 1 and stale[2].exists()
    assert compiled.prune(max_bytes=10 * size) == 0


FLAGS_SCRIPT = """
import json, pytensor
from pytensor.link.c.cmodule import GCC_compiler
probed = {probe}
if probed:  # PyTensor's own probe, in a process where bayes_sacral sets nothing: the expected flags
    GCC_compiler.compile_args()
    print(json.dumps({{"flags": GCC_compiler.march_flags}}))
else:
    from bayes_sacral import compiled
    used = compiled.pin_compiler_flags()
    args = GCC_compiler.compile_args()  # what PyTensor then compiles and keys its kernels with
    print(json.dumps({{"used": used, "flags": GCC_compiler.march_flags, "in_args": all(f in args for f in GCC_compiler.march_flags)}}))
"""


def flags_fresh(cache, probe=False):
    env = {**os.environ, "BAYES_SACRAL_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", FLAGS_SCRIPT.format(probe=probe)], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not __import__("pytensor").config.cxx, reason="no C compiler: PyTensor probes no flags")
def test_compiler_flags_are_probed_once_and_then_equal_pytensors_own(tmp_path, monkeypatch):
    """The ``-march=native`` flags PyTensor probes (g++ runs and a test program) are stored once; a later process
    uses the stored list, which equals what PyTensor's own probe finds in a process where we set nothing. A damaged
    entry is deleted and the probe runs again."""
    expected = flags_fresh(tmp_path, probe=True)["flags"]
    first = flags_fresh(tmp_path)
    assert first["used"] is False and first["flags"] == expected
    (entry,) = (tmp_path / "compiler").glob("*.bsgf")
    second = flags_fresh(tmp_path)
    assert second["used"] is True and second["flags"] == expected and second["in_args"]
    raw = bytearray(entry.read_bytes())
    raw[-3] ^= 0xFF
    entry.write_bytes(bytes(raw))
    third = flags_fresh(tmp_path)
    assert third["used"] is False and third["flags"] == expected
    assert flags_fresh(tmp_path)["used"] is True  # rewritten intact
    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path))
    assert compiled.clear_cache() == 1 and not entry.exists()  # `cache clear` removes it with the compiled models


def test_code_that_computes_another_density_is_rejected_and_rebuilt(tmp_path, monkeypatch):
    """An entry found under a model's key is checked against that model's own log density before use: here the key of
    a model with prior SD 3 leads to the code of the prior-SD-10 model (same shapes, other density)."""
    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path))
    monkeypatch.setattr(compiled, "_LOADED", {})
    y = np.array([0.5, 1.5, 2.0])
    wide = normal_model(y)
    wide_key = compiled.structure_key(wide)
    compiled.compiled_model(wide)
    with pm.Model() as narrow:
        mu = pm.Normal("mu", 0.0, 3.0)
        pm.Deterministic("mu_doubled", 2 * mu)
        pm.Normal("obs", mu, 1.0, observed=pm.Data("y", y))
    monkeypatch.setattr(compiled, "structure_key", lambda model, cpu=None: wide_key)
    for where, copies in (("memory", 2), ("disk", 1)):  # first the wrong code is in memory and on disk, then on disk
        if where == "disk":
            compiled._LOADED.clear()
            compiled.compiled_model(wide)  # written again under the key
            compiled._LOADED.clear()
        rejected = compiled.STATS.rejected
        cm = compiled.compiled_model(narrow)
        assert compiled.STATS.rejected == rejected + copies, where
        x = np.array([0.7])  # the rebuilt code computes the narrow model's density: N(0, 3²) prior + likelihood
        expected = stats.norm(0, 3).logpdf(0.7) + stats.norm(0.7, 1).logpdf(y).sum()
        rc, lp, grad = compiled.logp_and_grad(cm, x)
        assert rc == 0 and np.isclose(lp, expected, rtol=1e-7), (where, lp, expected)  # PyMC rounds log(2π)
        assert np.isclose(grad[0], -0.7 / 9 + np.sum(y - 0.7), rtol=1e-8)


def test_the_reference_density_is_built_once_per_graph_and_follows_each_models_data(monkeypatch):
    """The Python log density that every load is checked against is reused for a later model of the same graph, then
    reads that model's data (and never writes into the earlier model's); a model of another graph under the same key
    gets its own (the check does not trust the key)."""
    monkeypatch.setattr(compiled, "_REFERENCE", {})
    y1, y2 = np.array([0.5, 1.5, 2.0]), np.array([4.0, 3.0])
    a, b = normal_model(y1), normal_model(y2)
    key = compiled.structure_key(a)
    fa = compiled._reference_logp(a, key)
    assert float(fa(np.array(0.7))) == pytest.approx(stats.norm(0, PRIOR_SD).logpdf(0.7) + stats.norm(0.7, 1).logpdf(y1).sum())
    fb = compiled._reference_logp(b, key)
    assert fb is fa and len(compiled._REFERENCE[key]) == 1
    assert float(fb(np.array(0.7))) == pytest.approx(stats.norm(0, PRIOR_SD).logpdf(0.7) + stats.norm(0.7, 1).logpdf(y2).sum())
    np.testing.assert_array_equal(a["y"].get_value(), y1)
    with pm.Model() as narrow:  # other prior SD: another density, looked up under the same key
        mu = pm.Normal("mu", 0.0, 3.0)
        pm.Deterministic("mu_doubled", 2 * mu)
        pm.Normal("obs", mu, 1.0, observed=pm.Data("y", y1))
    fn = compiled._reference_logp(narrow, key)
    assert fn is not fa and len(compiled._REFERENCE[key]) == 2
    assert float(fn(np.array(0.7))) == pytest.approx(stats.norm(0, 3).logpdf(0.7) + stats.norm(0.7, 1).logpdf(y1).sum())


def test_a_model_the_cache_cannot_hold_still_samples_with_its_own_machine_code(tmp_path, monkeypatch):
    """When an entry cannot be made (here: serialising fails), the fresh compile is used uncached; its callbacks, built
    without machine code for the cache to make, get theirs first."""
    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path))
    monkeypatch.setattr(compiled, "_LOADED", {})

    def broken(cm, key):
        raise ValueError("cannot serialise")

    monkeypatch.setattr(compiled, "_dump", broken)
    y = np.array([0.4, -1.0, 2.2, 0.9])
    messages = []
    cm = compiled.compiled_model(normal_model(y), log=messages.append)
    assert any("cannot be cached" in m for m in messages)
    rc, lp, grad = compiled.logp_and_grad(cm, np.array([0.3]))
    assert rc == 0 and np.isclose(lp, stats.norm(0, PRIOR_SD).logpdf(0.3) + stats.norm(0.3, 1).logpdf(y).sum(), rtol=1e-7)
    assert np.isclose(grad[0], -0.3 / PRIOR_SD**2 + np.sum(y - 0.3), rtol=1e-8)

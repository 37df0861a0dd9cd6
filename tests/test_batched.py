"""The vectorised functions of batched.py (deterministics, log-likelihood, prior and posterior predictive), checked
against PyMC's own per-draw loops, and their cache across processes."""

import json
import os
import subprocess
import sys

import numpy as np
import pymc as pm
import pytest
from scipy import stats


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
    {"kind": "msts", "route": "reconstructed", "reconstructions": 2, "likelihood": "beta_binomial", "pooling": "partial"},
])
def test_vectorised_prior_predictive_has_pymcs_distribution(model_doc):
    """The prior and prior predictive drawn in one vectorised call have the distribution of PyMC's per-draw sampler:
    same variables, dims and sizes, and every element passes a two-sample KS test against PyMC's draws."""
    from bayes_sacral import batched
    from bayes_sacral.compiled import structure_key
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
    # drawn by numpy on the Python backend, with nothing compiled by numba (a binomial's count is data held as floats)
    assert structure_key(model) not in batched._NUMBA_ONLY
    again, _ = batched.prior_predictive(model, n, 1)  # same seed, same draws
    for v in prior.data_vars:
        np.testing.assert_array_equal(again[v].values, prior[v].values)


def test_beta_binomial_posterior_predictive_is_drawn_the_same_on_every_call(tmp_path, monkeypatch):
    """The posterior predictive of a beta-binomial model, drawn again after another function of the model was built (as
    a fit does between reconstructed data sets): the same seed gives the same draws on every call, drawn by numpy with
    nothing falling back to numba, whether or not the function came from the compile cache; and the draws have the
    beta-binomial's mean and variance. (Building the log-likelihood made the graph's constant 30 read-only; scipy's
    beta-binomial refused views of it, so from the second data set on the draws were compiled with numba, but only in
    a process that had built the function rather than loaded it.)"""
    import pytensor.tensor as pt
    import xarray as xr
    from pytensor.graph.replace import graph_replace

    from bayes_sacral import batched
    from bayes_sacral.config import resolve
    from bayes_sacral.fitting import build_run_model, prepare_run

    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path))  # functions built here, not loaded
    monkeypatch.setattr(batched, "_FNS", {})
    monkeypatch.setattr(batched, "_NUMBA_ONLY", set())
    run = resolve({"run": {"name": "bb", "seed": 1},
                   "model": {"kind": "msts", "route": "reconstructed", "reconstructions": 2, "likelihood": "beta_binomial"}})
    inp, _ = prepare_run(run)
    model = build_run_model(run, inp)
    prior, _ = batched.prior_predictive(model, 400, 3)
    post = prior[[rv.name for rv in model.free_RVs]]
    first = batched.posterior_predictive(model, post, 5)
    batched.log_likelihood(model, post)
    for _ in range(2):
        xr.testing.assert_identical(batched.posterior_predictive(model, post, 5), first)
    assert not batched._NUMBA_ONLY
    # one parameter draw repeated: the replicates of each patient have the beta-binomial's moments
    one = post.isel(draw=[0]).isel(draw=np.zeros(20000, dtype=int)).assign_coords(draw=np.arange(20000))
    (name,) = [rv.name for rv in model.observed_RVs]
    rep = batched.posterior_predictive(model, one, 7)[name].values.reshape(20000, -1)
    at = {rv: pt.as_tensor(post[rv.name].values[0, 0]) for rv in model.free_RVs}
    n, a, b = (np.broadcast_to(x.eval(), rep.shape[1:]) for x in graph_replace(model[name].owner.inputs[2:], at))
    mean = n * a / (a + b)
    var = n * a * b * (a + b + n) / ((a + b) ** 2 * (a + b + 1))
    np.testing.assert_allclose(rep.mean(axis=0), mean, atol=5 * np.sqrt(var / 20000).max())
    np.testing.assert_allclose(rep.var(axis=0), var, rtol=0.1)


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
    loads them (no rebuild) and every group of its run is identical."""
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


def test_a_corrupt_function_entry_is_rejected_and_rebuilt(tmp_path, monkeypatch):
    from bayes_sacral import compiled

    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path))
    built = []
    assert compiled.cached_function("k", "what", lambda: built.append(1) or {"answer": 42}) == {"answer": 42}
    assert compiled.cached_function("k", "what", lambda: built.append(1) or {"answer": 0}) == {"answer": 42}  # loaded
    (entry,) = (tmp_path / "functions").glob("*.bsfn")
    raw = entry.read_bytes()
    entry.write_bytes(raw[:-8] + bytes(8))  # damaged body: the checksum no longer matches
    rejected = compiled.STATS.rejected
    assert compiled.cached_function("k", "what", lambda: built.append(1) or {"answer": 7}) == {"answer": 7}  # rebuilt
    assert compiled.STATS.rejected == rejected + 1 and len(built) == 2
    assert compiled.cached_function("k", "other", lambda: "x") == "x"  # another function of the structure: its own entry


def test_functions_with_blockwise_nodes_are_stored_and_load_identically(tmp_path, monkeypatch):
    """The per-item model's log-likelihood has Blockwise nodes, which keep an unpicklable closure in their tag once
    linked; the entry is still written (it was not, and every process rebuilt the function) and, loaded back, computes
    the same values."""
    import xarray as xr
    from pytensor.tensor.blockwise import Blockwise

    from bayes_sacral import batched, compiled
    from bayes_sacral.config import resolve
    from bayes_sacral.fitting import build_run_model, prepare_run

    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path))
    monkeypatch.setattr(batched, "_FNS", {})
    run = resolve({"run": {"name": "bw", "seed": 1},
                   "model": {"kind": "msts_domains", "route": "reconstructed", "pooling": "partial", "reconstructions": 2}})
    inp, _ = prepare_run(run)
    model = build_run_model(run, inp)
    with model:
        post = pm.sample_prior_predictive(draws=8, random_seed=3, var_names=[rv.name for rv in model.free_RVs])["prior"]
    post = xr.Dataset({v: post[v] for v in post.data_vars})
    built = compiled.STATS.functions_built
    first = batched.log_likelihood(model, post)
    fn = batched.compiled_for(model, "log_likelihood", lambda: None)
    assert any(isinstance(n.op, Blockwise) for n in fn.maker.fgraph.apply_nodes)
    assert compiled.STATS.functions_built == built + 1
    assert len(list((tmp_path / "functions").glob("*.bsfn"))) == 1  # stored
    batched._FNS.clear()
    loaded = compiled.STATS.functions_loaded
    again = batched.log_likelihood(model, post)
    assert compiled.STATS.functions_loaded == loaded + 1
    for v in first.data_vars:
        np.testing.assert_array_equal(again[v].values, first[v].values)
    np.testing.assert_array_equal(batched.log_likelihood(model, post)[v].values, first[v].values)  # the live one still runs


def test_clip_and_mixed_joins_are_rewritten_to_whole_array_operations_with_the_same_values():
    """An elementwise clip (numpy runs its scalar op per element) and a join of a batched with an unbatched input
    (vectorize_graph leaves it to a Blockwise that loops over the draws) become whole-array operations; the values are
    those of the graph before, bit for bit, NaN and the bounds themselves included."""
    import pytensor
    import pytensor.scalar as ps
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode
    from pytensor.graph.replace import vectorize_graph
    from pytensor.tensor.blockwise import Blockwise
    from pytensor.tensor.elemwise import Elemwise

    from bayes_sacral.batched import python_mode, without_python_loops

    x = pt.matrix("x", shape=(2, 3))
    core = pt.concatenate([pt.zeros((1, 3)), pt.clip(x, -0.5, 0.5)], axis=0)  # (3, 3): an unbatched row, then x
    xb = pt.tensor("xb", shape=(None, 2, 3))
    before = vectorize_graph(core, replace={x: xb})
    assert isinstance(before.owner.op, Blockwise)  # what PyTensor gives: a loop over the draws
    after = without_python_loops([before])
    f_before = pytensor.function([xb], before, mode=Mode(linker="py", optimizer=None))
    f_after = pytensor.function([xb], after, mode=python_mode())
    nodes = f_after.maker.fgraph.apply_nodes
    assert not [n for n in nodes if isinstance(n.op, Blockwise)]
    assert not [n for n in nodes if isinstance(n.op, Elemwise) and isinstance(n.op.scalar_op, ps.Clip)]
    vals = np.random.default_rng(1).normal(size=(50, 2, 3))
    vals[0, 0, :3] = [np.nan, -0.5, 0.5]
    a, b = f_before(vals), f_after(vals)[0]
    assert a.shape == b.shape == (50, 3, 3)
    assert np.array_equal(a, b, equal_nan=True)
    expected = np.concatenate([np.zeros((50, 1, 3)), np.where(vals < -0.5, -0.5, np.where(vals > 0.5, 0.5, vals))], axis=1)
    assert np.array_equal(b, expected, equal_nan=True)

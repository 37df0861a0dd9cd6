"""Fitting through the CLI: run folders, manifests, bit-identical reproducibility, atomicity, summaries."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

import bayes_sacral as bs
from bayes_sacral.run import Run

CONFIG = """
[run]
name = "{name}"
seed = {seed}
[model]
kind = "secondary_procedures"
[priors]
set = "uniform"
[sampler]
draws = 300
tune = 300
chains = 2
prior_draws = 50
[decision]
prob = 0.9
[decision.thresholds]
ten_points = {{ value = 0.10, variables = ["risk_difference"] }}
"""


def write_config(tmp_path, name="sec", seed=3):
    p = tmp_path / f"{name}.toml"
    p.write_text(CONFIG.format(name=name, seed=seed))
    return p


def draws_hash(path) -> str:
    with xr.open_datatree(path / "idata.nc", engine="h5netcdf") as dt:
        post = dt["posterior"].to_dataset()
        return hashlib.sha256(b"".join(post[v].values.tobytes() for v in sorted(post.data_vars))).hexdigest()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from bayes_sacral.cli import main

    tmp = tmp_path_factory.mktemp("store")
    cfg = write_config(tmp)
    assert main(["fit", str(cfg), "--out", str(tmp / "models"), "--quiet"]) == 0
    return tmp, cfg, tmp / "models" / "sec"


def test_run_folder_contents(fitted):
    _, _, path = fitted
    assert sorted(p.name for p in path.iterdir()) == ["config.toml", "idata.nc", "manifest.json", "study.toml"]
    dt = Run.load(path).idata
    for group in ("posterior", "prior", "prior_predictive", "posterior_predictive", "log_likelihood", "observed_data"):
        assert group in dt.children, group
    m = Run.load(path).manifest
    # a conjugate model gets exact independent draws (backend auto): nothing for a sampler diagnostic group to hold
    assert "closed-form" in m["diagnostics"]["method"] and "sample_stats" not in dt.children
    assert "backend = \"exact\"" in (path / "config.toml").read_text()
    for key in ("versions", "seed", "data", "wall_time_s", "diagnostics", "config_sha256", "priors", "study", "outcome"):
        assert key in m
    assert m["versions"]["pymc"] and m["versions"]["arviz"] and m["data"]["sha256"]
    d = m["diagnostics"]
    assert {"max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences", "min_bfmi", "status"} <= set(d)
    assert d["status"] in ("ok", "warning", "failed")
    assert "[priors]" in (path / "config.toml").read_text()
    assert m["study"]["name"] == "cox2025" and m["outcome"] == "secondary_procedure"
    assert (path / "study.toml").read_text().startswith("# Study card")


def test_same_config_and_seed_give_identical_draws(fitted, tmp_path):
    from bayes_sacral.cli import main

    _, cfg, path = fitted
    out = tmp_path / "again"
    assert main(["fit", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert draws_hash(out / "sec") == draws_hash(path)
    # a fresh process too
    out2 = tmp_path / "proc"
    subprocess.run([sys.executable, "-m", "bayes_sacral", "fit", str(cfg), "--out", str(out2), "--quiet"], check=True, capture_output=True)
    assert draws_hash(out2 / "sec") == draws_hash(path)
    # and a different seed differs
    assert main(["fit", str(cfg), "--out", str(tmp_path / "seed"), "--quiet", "--set", "run.seed=4"]) == 0
    assert draws_hash(tmp_path / "seed" / "sec") != draws_hash(path)


def test_last_line_is_the_run_folder(cli, tmp_path):
    cfg = write_config(tmp_path, "lastline")
    r = cli("fit", cfg, "--out", tmp_path / "m")
    assert r.code == 0
    assert r.out.strip().splitlines()[-1] == str(tmp_path / "m" / "lastline")


def test_existing_run_is_not_overwritten(fitted, cli):
    tmp, cfg, path = fitted
    before = draws_hash(path)
    r = cli("fit", cfg, "--out", tmp / "models", "--quiet", "--set", "run.seed=99")
    assert r.code == 2 and "already exists" in r.err and "seed 3" in r.err
    assert draws_hash(path) == before


def test_interrupted_fit_leaves_no_run(tmp_path, monkeypatch, cli):
    cfg = write_config(tmp_path, "crash")

    def boom(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", boom)
    r = cli("fit", cfg, "--out", tmp_path / "m", "--quiet")
    assert r.code == 1 and "RuntimeError: disk full" in r.err and "--debug" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "m" / "crash").exists()
    assert list((tmp_path / "m").iterdir()) == []  # no temporary folder left either


def test_strict_fails_on_failed_diagnostics(cli, tmp_path):
    cfg = write_config(tmp_path, "tiny")
    r = cli("fit", cfg, "--out", tmp_path / "m", "--quiet", "--strict", "--set", "sampler.draws=10", "--set", "sampler.tune=10")
    manifest = json.loads((tmp_path / "m" / "tiny" / "manifest.json").read_text())
    assert manifest["diagnostics"]["status"] == "failed"
    assert r.code == 1


def test_runs_list_and_summarize(fitted, cli):
    tmp, _, path = fitted
    rows = cli("runs", "list", "--store", tmp / "models", "--format", "json").json()
    assert [r["name"] for r in rows] == ["sec"]
    out = cli("summarize", str(path), "--format", "json").json()
    keys = {"name", "mean", "sd", "median", "hdi_low", "hdi_high", "eti_low", "eti_high", "prob_gt_0", "prob_benefit", "r_hat",
            "ess_bulk", "ess_tail", "mcse_mean", "prob_beyond_ten_points"}
    assert all(keys <= set(r) for r in out)
    names = [r["name"] for r in out]
    assert "risk_difference[pathological]" in names and "p_event[psfs, pathological]" in names
    rd = next(r for r in out if r["name"] == "risk_difference[pathological]")
    post = Run.load(path).idata["posterior"]["risk_difference"].sel(fracture="pathological").values.ravel()
    # secondary procedures are adverse: benefit is a negative risk difference (PSFS − sacroplasty)
    assert rd["prob_benefit"] == pytest.approx(np.mean(post < 0)) and rd["prob_gt_0"] == pytest.approx(np.mean(post > 0))
    assert rd["prob_beyond_ten_points"] == pytest.approx(np.mean(post < -0.10))
    assert rd["eti_low"] == pytest.approx(np.quantile(post, 0.05))  # the run's decision.prob = 0.9
    assert next(r for r in out if r["name"] == "p_event[psfs, pathological]")["prob_beyond_ten_points"] is None
    nnt = next(r for r in out if r["name"] == "nnt[impending]")
    assert nnt["mean"] is None and nnt["median"] is not None
    wide = cli("summarize", str(path), "--format", "json", "--prob", "0.5").json()
    rd50 = next(r for r in wide if r["name"] == "risk_difference[pathological]")
    assert rd50["eti_low"] == pytest.approx(np.quantile(post, 0.25))
    csv_out = cli("summarize", "sec", "--store", tmp / "models", "--format", "csv").out
    assert csv_out.splitlines()[0].startswith("name,mean,sd,median,hdi_low")


def test_summarize_unknown_run(cli, tmp_path):
    r = cli("summarize", "nope", "--store", tmp_path)
    assert r.code == 2 and "no finished run" in r.err


def test_summarize_exact_agrees(fitted, cli):
    from scipy import stats

    _, _, path = fitted
    rows = {r["name"]: r for r in cli("summarize", str(path), "--exact", "--format", "json").json()}
    assert all(abs(r["z"]) < 4 for r in rows.values()), rows
    # the exact column itself, checked against scipy here: uniform prior, 5/12 -> Beta(6, 8)
    assert rows["p_event[sacroplasty, pathological]"]["exact_mean"] == pytest.approx(stats.beta(6, 8).mean())
    assert rows["p_event[sacroplasty, pathological]"]["exact_eti_low"] == pytest.approx(stats.beta(6, 8).ppf(0.05))


def test_summarize_exact_refuses_non_conjugate(cli, tmp_path):
    cfg = write_config(tmp_path, "hier")
    assert cli("fit", cfg, "--out", tmp_path / "m", "--quiet", "--set", "model.variant=hierarchical",
               "--set", "priors.set=weakly_informative").code == 0
    r = cli("summarize", str(tmp_path / "m" / "hier"), "--exact")
    assert r.code == 2 and "no closed form" in r.err


def test_reuse_only_what_a_refit_would_reproduce(fitted, tmp_path):
    """A stored run is reused only with the same resolved config (seed included), data and code; else refitted."""
    import shutil

    from bayes_sacral.config import load_configs
    from bayes_sacral.fitting import fit_run, reusable_run
    from bayes_sacral.store import versions

    _, cfg, path = fitted
    store = tmp_path / "models"
    shutil.copytree(path, store / "sec")
    (run,) = load_configs(cfg)
    reused = reusable_run(run, store)
    assert reused is not None and reused.path == store / "sec"
    assert draws_hash(reused.path) == draws_hash(path)
    assert Run.load(path).manifest["versions"]["bayes-sacral-fit-source"] == versions()["bayes-sacral-fit-source"]
    (other_seed,) = load_configs(cfg, ["run.seed=4"])
    assert reusable_run(other_seed, store) is None
    (other_prior,) = load_configs(cfg, ["priors.set=jeffreys"])
    assert reusable_run(other_prior, store) is None
    m = json.loads((store / "sec" / "manifest.json").read_text())
    m["versions"]["bayes-sacral-fit-source"] = "0" * 16  # written by other code
    (store / "sec" / "manifest.json").write_text(json.dumps(m))
    assert reusable_run(run, store) is None
    assert reusable_run(run, tmp_path / "empty") is None
    # and what is refitted in its place is the same run again
    assert draws_hash(fit_run(run, store, overwrite=True).path) == draws_hash(path)


def test_summary_diagnostics_are_memoised_by_content_never_served_stale():
    """A report summarises each run many times: R-hat/ESS/MCSE are remembered by a digest of the draws, so the same
    draws give the same rows and changed draws (even in place) give their own diagnostics."""
    import xarray as xr

    from bayes_sacral.summarize import summarize_posterior

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 500))
    post = xr.Dataset({"a": (("chain", "draw"), x)})
    first = summarize_posterior(post, ["a"])
    assert summarize_posterior(post, ["a"]) == first
    post["a"].values[:] = np.cumsum(x, axis=1)  # strongly autocorrelated, in place
    second = summarize_posterior(post, ["a"])[0]
    assert second["ess_bulk"] < first[0]["ess_bulk"] / 10
    assert second["mcse_mean"] != first[0]["mcse_mean"]


def test_summary_rows_are_remembered_per_variable_and_everything_that_sets_them():
    """Rows come back equal from the memo, as copies; a threshold, direction, label or name change gives its own rows,
    each equal to what a direct computation from the draws says."""
    import xarray as xr

    from bayes_sacral.summarize import summarize_posterior

    rng = np.random.default_rng(5)
    x = rng.normal(0.3, 1.0, (4, 400, 2))
    post = xr.Dataset({"eff": (("chain", "draw", "s"), x), "other": (("chain", "draw"), x[..., 0] * 2)}, coords={"s": ["p", "q"]})
    rows = summarize_posterior(post, ["eff"], thresholds={"mcid": (0.5, ["eff"])}, directions={"eff": -1})
    rows[0]["mean"] = 99.0  # a caller's change does not reach the memo
    again = summarize_posterior(post, ["eff"], thresholds={"mcid": (0.5, ["eff"])}, directions={"eff": -1})
    assert again[0]["mean"] == float(np.mean(x[..., 0]))
    flat = x.reshape(-1, 2)
    assert again[1]["prob_beyond_mcid"] == float(np.mean(-flat[:, 1] > 0.5))
    assert again[1]["prob_benefit"] == float(np.mean(-flat[:, 1] > 0))
    other = summarize_posterior(post, ["eff"], thresholds={"mcid": (0.2, ["eff"])}, directions={"eff": 1})
    assert other[1]["prob_beyond_mcid"] == float(np.mean(flat[:, 1] > 0.2))
    assert other[1]["prob_benefit"] == float(np.mean(flat[:, 1] > 0))
    assert summarize_posterior(post, ["eff"], thresholds={"mcid": (0.5, ["other"])})[0]["prob_beyond_mcid"] is None
    relabelled = summarize_posterior(post.assign_coords(s=["a", "b"]), ["eff"])
    assert [r["name"] for r in relabelled] == ["eff[a]", "eff[b]"]
    renamed = summarize_posterior(post.rename({"eff": "effect"}), ["effect"])
    assert [r["name"] for r in renamed] == ["effect[p]", "effect[q]"]


def test_closed_form_marginals_are_not_rebuilt_for_a_model_without_them(monkeypatch):
    """Run.exact() of a non-conjugate run is None without preparing (or reconstructing) its data again."""
    import bayes_sacral.fitting as fitting

    run = bs.fit({"run": {"name": "h", "seed": 1}, "model": {"kind": "secondary_procedures", "variant": "hierarchical"},
                  "sampler": {"draws": 100, "tune": 100, "chains": 2, "prior_draws": 0, "predictive_draws": 100}})

    def boom(*a, **k):
        raise AssertionError("prepare_run was called")

    monkeypatch.setattr(fitting, "prepare_run", boom)
    assert run.exact() is None and run.exact(prior=True) is None


def test_memo_digest_is_content_addressed():
    from bayes_sacral.memo import Memo, digest

    a = np.arange(6.0).reshape(2, 3)
    assert digest(a) == digest(a.copy()) == digest(np.asfortranarray(a))
    assert digest(a) != digest(a.reshape(3, 2)) and digest(a) != digest(a.astype(np.float32)) and digest(a) != digest(a + 1e-12)
    ds = xr.Dataset({"x": (("chain", "draw"), a)})
    assert digest(ds) == digest(ds.copy(deep=True)) and digest(ds) != digest(ds.rename_dims(draw="obs"))
    calls = []
    memo = Memo(2)
    for k in ("a", "b", "a", "c", "b"):
        memo.get_or_compute(k, lambda k=k: calls.append(k) or k)
    assert calls == ["a", "b", "c", "b"]  # "a" served once from memory; "b" dropped when "c" came in (size 2)


def test_memo_entries_recorded_in_one_process_fill_another():
    """What a block reads or computes in named memos is recorded, and absorbed only into memos of the same name."""
    from bayes_sacral.memo import Memo, absorb, recording

    src, dst = Memo(8, "test.src"), Memo(8, "test.dst")
    with pytest.raises(ValueError):
        Memo(8, "test.src")
    src.get_or_compute("k0", lambda: 0)
    with recording() as rec:
        src.get_or_compute("k0", lambda: -1)  # a hit is recorded too
        src.get_or_compute("k1", lambda: 1)
    assert rec == [("test.src", "k0", 0), ("test.src", "k1", 1)]
    assert absorb([("test.dst", k, v) for _, k, v in rec] + [("test.nowhere", "k", 9), ("no_such_module:m", "k", 9)]) == 2
    calls = []
    assert [dst.get_or_compute(k, lambda k=k: calls.append(k)) for k in ("k0", "k1")] == [0, 1] and calls == []


def test_absorbing_imports_the_module_that_owns_a_memo():
    """A process that has not imported the module owning a memo yet still takes the entries (it imports the module)."""
    code = ("import sys; from bayes_sacral.memo import absorb; assert 'bayes_sacral.checks' not in sys.modules; "
            "assert absorb([('bayes_sacral.checks:loo', 'k', 1)]) == 1; from bayes_sacral import checks; "
            "assert checks._LOO.get_or_compute('k', lambda: 2) == 1")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_run_reader_gives_the_tree_the_writer_wrote(fitted, tmp_path):
    """Runs are written and read with netCDF-C (faster than h5netcdf) and stored runs were written with h5netcdf: every
    combination gives back the tree that was written, values, dtypes, coordinates and attributes, for every kind of
    variable a run holds."""
    import numpy as np

    rng = np.random.default_rng(0)
    chain, draw = np.arange(2), np.arange(5)
    post = xr.Dataset({"mu": (("chain", "draw", "stratum"), rng.normal(size=(2, 5, 2))),
                       "sigma": (("chain", "draw"), np.where(rng.random((2, 5)) < 0.2, np.nan, rng.gamma(2, size=(2, 5))))},
                      coords={"chain": chain, "draw": draw, "stratum": ["pathological", "impending"]},
                      attrs={"created_at": "2026-11-26T00:00:00", "sampler": "nutpie", "seed": 3, "list_attr": [1.5, 2.5]})
    stats = xr.Dataset({"diverging": (("chain", "draw"), rng.random((2, 5)) < 0.1),
                        "tree_depth": (("chain", "draw"), rng.integers(1, 8, (2, 5)).astype("int64")),
                        "energy": (("chain", "draw"), rng.normal(size=(2, 5)).astype("float32"))}, coords={"chain": chain, "draw": draw})
    recon = xr.Dataset({"patient_id": (("replicate", "patient"), np.array([["R001-01", "R001-02"], ["R002-01", "R002-02"]], dtype=object)),
                        "score": (("replicate", "patient"), np.array([[1, 2], [3, 4]], dtype="int32"))},
                       coords={"replicate": [0, 1], "arm": ("patient", ["psfs", "sacroplasty"])})
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats, "reconstruction_data": recon})
    # runs stored by earlier versions were written with h5netcdf, runs now with netCDF-C: either file, either reader
    read = []
    for writer in ("h5netcdf", "netcdf4"):
        path = tmp_path / f"idata-{writer}.nc"
        tree.to_netcdf(path, engine=writer)
        for reader in ("h5netcdf", "netcdf4"):
            with xr.open_datatree(path, engine=reader) as dt:
                read.append(dt.load())
    for other in read:
        xr.testing.assert_identical(other, tree)
        for group in ("posterior", "sample_stats", "reconstruction_data"):
            for name, var in read[0][group].variables.items():
                assert var.dtype == other[group][name].dtype, (group, name)
    # and Run reads a stored run to the same tree
    _, _, stored = fitted
    with xr.open_datatree(stored / "idata.nc", engine="h5netcdf") as a:
        xr.testing.assert_identical(a.load(), Run.load(stored).idata)


def test_writing_a_run_does_not_import_dask_distributed_unless_it_may_be_in_use(fresh_python, tmp_path):
    """xarray's netCDF writer asks dask for its scheduler, and dask imports ``distributed`` to look for a Client
    (0.1-0.2 s of a fresh fit). A process that has not imported it writes without it, and can import it afterwards;
    with another thread alive, or a scheduler named in dask's config, the write goes on as it always did (and
    imports it)."""
    code = textwrap.dedent(f"""
        import json, sys, threading
        import numpy as np, xarray as xr
        import dask.config
        from bayes_sacral.store import write_run
        tree = xr.DataTree.from_dict({{"posterior": xr.Dataset({{"mu": (("chain", "draw"), np.arange(6.0).reshape(2, 3))}})}})
        out = {{}}
        def write(name):
            write_run({str(tmp_path)!r} + "/" + name, tree, "", {{"seed": 1}}, "")
            with xr.open_datatree({str(tmp_path)!r} + "/" + name + "/idata.nc") as back:
                xr.testing.assert_identical(back.load(), tree)
            return "distributed" in sys.modules
        out["alone"] = write("alone")
        out["left_blocked"] = [n for n in ("distributed", "dask.distributed") if n in sys.modules]
        from dask.distributed import Client
        out["importable_after"] = Client.__module__
        for n in [m for m in sys.modules if m == "distributed" or m.startswith(("distributed.", "dask.distributed"))]:
            del sys.modules[n]
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        out["other_thread"] = write("other_thread")
        stop.set(); t.join()
        for n in [m for m in sys.modules if m == "distributed" or m.startswith(("distributed.", "dask.distributed"))]:
            del sys.modules[n]
        with dask.config.set(scheduler="threads"):
            out["scheduler_named"] = write("scheduler_named")
        print(json.dumps(out))
        """)
    out = json.loads(fresh_python(code).stdout.strip().splitlines()[-1])
    assert out == {"alone": False, "left_blocked": [], "importable_after": "distributed.client",
                   "other_thread": True, "scheduler_named": True}


@pytest.fixture
def result_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BAYES_SACRAL_RESULT_CACHE", "1")
    return tmp_path / "cache" / "results"


def test_persisted_memo_serves_a_later_process_and_only_the_same_code(result_cache, monkeypatch):
    """Diagnostics remembered on disk are served to a fresh memo (a later process) for the same draws and code; other
    code (versions, fingerprint), a damaged entry or the switch off means computing again."""
    import bayes_sacral.memo as memo
    import bayes_sacral.store as store

    m = memo.Memo(8, "tests.persisted:m", persist=True)
    calls = []

    def value(x):
        calls.append(x)
        return {"x": np.full(3, x)}

    key = memo.digest(np.arange(4.0))
    assert m.get_or_compute(key, lambda: value(1))["x"][0] == 1
    files = list(result_cache.rglob("*.bsmr"))
    assert len(files) == 1
    m.clear()  # what a later process starts with
    assert m.get_or_compute(key, lambda: value(2))["x"][0] == 1 and calls == [1]
    # another key is computed
    m.get_or_compute(memo.digest(np.arange(5.0)), lambda: value(3))
    assert calls == [1, 3]
    # damaged: deleted and computed again
    raw = bytearray(files[0].read_bytes())
    raw[-5] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    m.clear()
    assert m.get_or_compute(key, lambda: value(4))["x"][0] == 4 and calls == [1, 3, 4]
    # other code: the versions and fingerprint are part of the key on disk
    m.clear()
    real = store.versions()
    monkeypatch.setattr(store, "versions", lambda: {**real, "bayes-sacral-fit-source": "0" * 16})
    memo._code_identity.cache_clear()
    try:
        assert m.get_or_compute(key, lambda: value(5))["x"][0] == 5
    finally:
        memo._code_identity.cache_clear()
    # switched off: nothing read or written
    monkeypatch.setenv("BAYES_SACRAL_RESULT_CACHE", "0")
    m.clear()
    before = sorted(result_cache.rglob("*.bsmr"))
    assert m.get_or_compute(memo.digest(np.arange(6.0)), lambda: value(6))["x"][0] == 6
    assert sorted(result_cache.rglob("*.bsmr")) == before
    with pytest.raises(ValueError, match="module:memo"):
        memo.Memo(8, "no-module", persist=True)


def test_diagnostics_remembered_by_one_process_are_read_by_the_next(result_cache, tmp_path):
    """The reanalysis' path: a process computes a run's R-hat/ESS/MCSE; a later one (ArviZ's diagnostics patched to fail)
    reads the same numbers from disk."""
    rng = np.random.default_rng(3)
    post = xr.Dataset({"a": (("chain", "draw"), rng.standard_normal((4, 300))),
                       "b": (("chain", "draw", "k"), rng.standard_normal((4, 300, 2)))})
    post.to_netcdf(tmp_path / "post.nc")
    code = textwrap.dedent(f"""
        import json, sys, xarray as xr
        if sys.argv[1] == "later":
            import arviz as az
            def boom(*a, **k):
                raise AssertionError("diagnostics computed again")
            az.ess = az.rhat = az.mcse = boom
        from bayes_sacral.summarize import summarize_posterior
        post = xr.load_dataset({str(tmp_path / "post.nc")!r})
        print(json.dumps(summarize_posterior(post, ["a", "b"]), default=float, sort_keys=True))
    """)
    env = {**os.environ}
    first = subprocess.run([sys.executable, "-c", code, "first"], capture_output=True, text=True, env=env, check=True).stdout
    later = subprocess.run([sys.executable, "-c", code, "later"], capture_output=True, text=True, env=env)
    assert later.returncode == 0, later.stderr[-2000:]
    assert later.stdout == first and '"ess_bulk"' in first


def test_loading_what_is_not_a_run_folder_is_an_input_error(tmp_path):
    """`bs.Run.load` of a path that is not a finished run folder names it and what a run folder holds (it raised a bare
    FileNotFoundError for manifest.json)."""
    half = tmp_path / "half"
    half.mkdir()
    (half / "manifest.json").write_text("{}")
    (tmp_path / "file.txt").write_text("x")
    for path, what in ((tmp_path / "nosuch", "no such folder"), (tmp_path / "file.txt", "not a folder"),
                       (half, "has no idata.nc, config.toml")):
        with pytest.raises(bs.InputError) as exc:
            Run.load(path)
        (p,) = exc.value.problems
        assert p.file == str(path) and p.location == "run folder" and p.rule.startswith(what) and "manifest.json" in p.rule


def test_library_save_and_summary_refusals_speak_the_library(fitted, tmp_path):
    """`Run.save` onto an existing run says to pass overwrite=True (it said the folder had been written by another
    process during the fit, and named the CLI option); a non-numeric interval probability is refused in words, not
    by a TypeError from a comparison."""
    _, _, path = fitted
    run = Run.load(path)
    with pytest.raises(bs.BayesSacralError, match=r"already exists \(seed \d+\); pass overwrite=True"):
        run.save(path)
    assert run.save(tmp_path / "copy") == tmp_path / "copy"
    for bad in ("0.9", True, 1.0, 0):
        with pytest.raises(bs.BayesSacralError, match="a number strictly between 0 and 1"):
            run.summary(prob=bad)
    assert len(run.summary(prob=0.9)) > 0

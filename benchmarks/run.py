"""Design-engine benchmarks (`make bench`): ratios measured in one run, on this machine.

1. Exact engine: a power curve of 8 sample sizes (MSTS reference and weakly informative analyses; binary endpoint with
   stratified and simple allocation), in memory.
2. Vectorised engine: trial analyses per second on all cores (goal >= 1e5/s on 2 cores).
3. Full-model engine against a naive loop that builds and samples a fresh PyMC model per trial (`pm.sample`, nutpie
   recompiling each time): throughput ratio on the same simulated trials, and agreement of their posterior
   probabilities and decisions.

4. A fit in a fresh process (what `bayes-sacral fit` costs): the 30-patient beta-binomial MSTS model (patient-level
   route, configs/msts_ipd_example.toml) through `bs.fit` with a warm compile cache, against the same model sampled by
   a plain script (`pm.sample(nuts_sampler="nutpie")`, compiling every time, then prior predictive, posterior
   predictive and log-likelihood as a run has them), same draws; both timed from process start, imports included.
   Also the command itself (`bayes-sacral fit ... --out`), which writes the run folder as well.
5. Conjugate models: a secondary-procedure run by exact independent draws (backend auto) against the same run by NUTS
   with the compiled model reused, and against a plain PyMC script (the run as it was before), in one process.
6. The whole reanalysis (`bayes-sacral reanalyze`, what `make reanalysis` runs) as a new user meets it: first ever
   (empty run store, compile cache, figure cache, numba cache, and PyTensor's compiledir and numba cache:
   its base_compiledir), then a later run (everything stored), then
   a refit of every run with the caches warm. Goals: the later run <= 90 s, the first <= 4 min (absolute, not ratios).
7. A new user (`new_user`): `make reanalysis` in a fresh clone of the committed HEAD, set-up of `.venv` included, with
   HOME and every cache empty (pip's and uv's caches too, so the lock is downloaded again: needs PyPI); its wall time
   (goal <= 4 min) and whether `git status` is clean afterwards (the report reproduced byte for byte).

Results are printed and written to benchmarks/results/latest.json (not in git).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = [40, 60, 80, 100, 120, 160, 200, 240]
# the bundled study's design truths, stated in the config (the design code has no study-specific defaults)
TRUTH = ("[strata]\npathological = 0.7\nimpending = 0.3\n"
         "[truth.msts]\ntreatment_effect = { pathological = 4.0, impending = 1.0 }\nsigma = 5.0\n"
         "intercept = { pathological = 19.0, impending = 26.0 }\npreop_slope = 0.5\n"
         "preop_mean = { pathological = 9.3, impending = 16.9 }\npreop_sd = 4.0\n"
         "[truth.secondary_procedure]\np_treatment = { pathological = 0.05, impending = 0.05 }\n"
         "p_control = { pathological = 0.42, impending = 0.14 }\n")


def _cfg(tmp: Path, text: str):
    from bayes_sacral.design.config import load_design

    p = tmp / "d.toml"
    p.write_text(text)
    return load_design(p)


def bench_exact(tmp: Path) -> dict:
    from bayes_sacral.design.runner import run_design

    out = {}
    for name, head, tail in (("msts_reference", 'endpoint = "msts"\n', '[analysis]\nprior = "reference"\n'),
                             ("msts_weakly_informative", 'endpoint = "msts"\n', ""),
                             ("secondary_procedure_uniform_stratified", 'endpoint = "secondary_procedure"\n', ""),
                             ("secondary_procedure_uniform_simple", 'endpoint = "secondary_procedure"\nallocation_scheme = "simple"\n', "")):
        cfg = _cfg(tmp, f'[design]\nname = "b"\nseed = 1\nengine = "exact"\nsample_sizes = {SIZES}\n{head}' + TRUTH + tail)
        t = time.perf_counter()
        run_design(cfg, None)
        out[name] = round(time.perf_counter() - t, 3)
    return out


def bench_vectorized(tmp: Path, n_trials: int = 100_000) -> dict:
    from bayes_sacral.design.runner import run_design

    cfg = _cfg(tmp, f'[design]\nname = "v"\nseed = 1\nendpoint = "msts"\nengine = "vectorized"\nsample_sizes = {SIZES}\n'
                    f"n_trials = {n_trials}\nbatch_size = 10000\n" + TRUTH + "[truth]\nno_effect = false\n")
    res = {}
    for workers in (1, os.cpu_count() or 2):
        t = time.perf_counter()
        run_design(cfg, tmp / f"vec-{workers}", workers=workers)
        wall = time.perf_counter() - t
        res[f"workers_{workers}"] = {"trials": n_trials * len(SIZES), "seconds": round(wall, 2),
                                     "trial_analyses_per_second": round(n_trials * len(SIZES) / wall)}
    return res


def bench_full_model(tmp: Path, likelihood: str, n_naive: int = 5, n_nuts_engine: int = 100, n_fast_engine: int = 1000,
                     n_validate: int = 200, N: int = 60) -> dict:
    """The full-model engine against a naive loop (a fresh model and pm.sample per trial), on the same machine in the same
    run: per trial on one core (NUTS refit of the compiled model; fast tier) and end to end on every core (design runs
    with the NUTS method and with the fast tier), plus the fast tier's validation against NUTS refits (``n_validate``
    trials per scenario, with and without an effect)."""
    import pymc as pm

    from bayes_sacral.design.context import build_context
    from bayes_sacral.design.full_model import Analyser, analysis_run, simulate_patients
    from bayes_sacral.design.runner import _preop, run_design
    from bayes_sacral.inference import quiet_pymc
    from bayes_sacral.models.base import ModelInput
    from bayes_sacral.models.score import score_dataset

    head = (f'[design]\nname = "f"\nseed = 1\nendpoint = "msts"\nengine = "full_model"\nsample_sizes = [{N}]\nbatch_size = 25\n'
            + TRUTH)

    def cfg_of(n_trials, extra="", no_effect=False):
        return _cfg(tmp, head.replace("batch_size", f"n_trials = {n_trials}\nbatch_size")
                    + f"[truth]\nno_effect = {str(no_effect).lower()}\n[full_model]\nlikelihood = \"{likelihood}\"\n{extra}")

    cfg = cfg_of(n_fast_engine)
    ctx = build_context(cfg)
    fm = cfg.full_model.model_dump()
    rng = np.random.default_rng(7)
    trials = [simulate_patients(ctx, "design", rng, N, i, _preop(cfg)) for i in range(n_naive)]
    run = analysis_run(fm, cfg.study, cfg.endpoint)
    sdim = cfg.card.stratum_dim

    def data_of(tr):
        d, _ = score_dataset(tr, run.spec)
        d.attrs["route"] = "ipd"
        return d

    # naive: a fresh model and pm.sample per trial (what a loop over brms update() or pm.sample does)
    naive_p = []
    t = time.perf_counter()
    for i, tr in enumerate(trials):
        model = run.kind.build(ModelInput(data_of(tr), []), run.priors, run.spec)
        with model, quiet_pymc():
            idata = pm.sample(draws=fm["draws"], tune=fm["tune"], chains=fm["chains"], random_seed=100 + i, progressbar=False,
                              target_accept=fm["target_accept"])
        te = idata["posterior"]["treatment_effect"].transpose("chain", "draw", sdim).values.reshape(-1, ctx.K) @ ctx.weights
        naive_p.append(float(np.mean(ctx.benefit(te) > 0)))
    naive_per = (time.perf_counter() - t) / n_naive
    # one core, same trials: NUTS refits of the model compiled once, and the fast tier
    an = Analyser(ctx, fm, trials[0])
    obs = [{c: data_of(tr)[v].values for c, v in an.dmap.items()} for tr in trials]
    t = time.perf_counter()
    _ = an.refit
    nuts_compile = time.perf_counter() - t
    t = time.perf_counter()
    _ = an.fast
    fast_compile = time.perf_counter() - t
    an.nuts(obs[0], 1, fm["draws"]), an.fast.fit(obs[0], 1, draws=fm["approx_draws"])  # warm-up
    t = time.perf_counter()
    nuts_p = [an.nuts(o, 200 + i, fm["draws"])[0] for i, o in enumerate(obs)]
    nuts_per = (time.perf_counter() - t) / n_naive
    reps = 5
    t = time.perf_counter()
    for r in range(reps):
        fast_res = [an.analyse(o, 300 + i + 10 * r) for i, o in enumerate(obs)]
    fast_per = (time.perf_counter() - t) / (n_naive * reps)
    # end to end on every core
    t = time.perf_counter()
    run_design(cfg_of(n_nuts_engine, 'method = "nuts"\n'), tmp / f"nuts-{likelihood}")
    nuts_engine = (time.perf_counter() - t) / n_nuts_engine
    t = time.perf_counter()
    ds = run_design(cfg, tmp / f"fast-{likelihood}")
    fast_engine = (time.perf_counter() - t) / n_fast_engine
    # validation: every trial of both scenarios also refitted by NUTS
    vcfg = cfg_of(n_validate, f"validate_trials = {n_validate}\nvalidation_draws = 1000\n", no_effect=True)
    t = time.perf_counter()
    vds = run_design(vcfg, tmp / f"validate-{likelihood}")
    validate_wall = time.perf_counter() - t
    c = cfg.decision.threshold
    val = {}
    for sc in vds["scenario"].values:
        sel = vds.sel(scenario=sc, sample_size=N)
        f, r, se = (float(sel[k]) for k in ("validation_success_fast", "validation_success_nuts", "validation_mcse"))
        val[str(sc)] = {"trials": int(sel["validation_trials"]), "success_fast_tier": f, "success_nuts": r, "mcse": round(se, 4),
                        "difference_in_mcse": round(abs(f - r) / se, 2), "within_2_mcse": abs(f - r) <= 2 * se,
                        "decision_agreement": float(sel["validation_agreement"]), "share_escalated": float(sel["share_escalated"])}
    return {
        "likelihood": likelihood, "sample_size": N, "nuts": f"{fm['chains']} chains x {fm['draws']} draws ({fm['tune']} tune)",
        "fast_tier": f"nested Laplace + PSIS, {fm['approx_draws']} draws, NUTS escalation at k > {fm['khat_max']}",
        "naive_seconds_per_trial": round(naive_per, 3),
        "compile_seconds": {"nuts": round(nuts_compile, 2), "fast_tier": round(fast_compile, 2)},
        "one_core": {"nuts_refit_seconds_per_trial": round(nuts_per, 4), "fast_tier_seconds_per_trial": round(fast_per, 4),
                     "ratio_nuts_refit_vs_naive": round(naive_per / nuts_per, 1), "ratio_fast_tier_vs_naive": round(naive_per / fast_per, 1)},
        "end_to_end_all_cores": {"nuts_engine_seconds_per_trial": round(nuts_engine, 4), "fast_engine_seconds_per_trial": round(fast_engine, 4),
                                 "fast_engine_trials": n_fast_engine, "fast_engine_share_escalated": float(ds["share_escalated"].mean()),
                                 "ratio_nuts_engine_vs_naive": round(naive_per / nuts_engine, 1),
                                 "ratio_fast_engine_vs_naive": round(naive_per / fast_engine, 1)},
        "same_trials_prob_benefit": {"naive": [round(p, 4) for p in naive_p], "nuts_refit": [round(p, 4) for p in nuts_p],
                                     "fast_tier": [round(r["p0"], 4) for r in fast_res],
                                     "decisions_agree_fast_vs_naive": int(sum((a >= c) == (r["p0"] >= c) for a, r in zip(naive_p, fast_res, strict=True)))},
        "validation": {"seconds": round(validate_wall, 1), "reference": "NUTS, 2 chains x 1000 draws", **val},
    }


def bench_validate_200k(tmp: Path, n: int = 200_000) -> dict:
    """Validation of a 200,000-row patient-level CSV in a fresh process: wall time of the validation alone and the peak
    resident memory of the process (goal: <= 5 s and <= 300 MB)."""
    import subprocess

    rng = np.random.default_rng(0)
    arm = rng.choice(["psfs", "sacroplasty"], n)
    fr = rng.choice(["pathological", "impending"], n)
    pre, post = rng.integers(0, 31, n), rng.integers(0, 31, n)
    path = tmp / "big.csv"
    with open(path, "w") as fh:
        fh.write("patient_id,arm,fracture,msts_pre,msts_post,secondary_procedure,narcotic_change,age\n")
        fh.writelines(f"P{i},{arm[i]},{fr[i]},{pre[i]},{post[i]},{i % 2},stable,{50 + i % 30}\n" for i in range(n))
    code = ("import resource, time\nfrom bayes_sacral.study import load_study\nst = load_study()\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\nt = time.perf_counter()\n"
            f"st.read_ipd({str(path)!r})\n"
            "print(time.perf_counter() - t, base / 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"rows": n, "validate_seconds": round(float(out[0]), 2), "peak_rss_mb_after_imports": round(float(out[1])),
            "peak_rss_mb": round(float(out[2]))}


ROOT = Path(__file__).resolve().parents[1]
FIT_CONFIG = str(ROOT / "configs" / "msts_ipd_example.toml")  # the 30-patient beta-binomial MSTS model, patient-level route


def _wall(code: str, env: dict | None = None) -> float:
    import subprocess

    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - t


def bench_fresh_process_fit(tmp: Path, repeats: int = 7) -> dict:
    """Median wall time of a whole fresh process: bs.fit (warm cache) vs a plain PyMC script on the same model. The
    variants are run in turn, ``repeats`` rounds, so that the machine's drift over the minutes it takes reaches all of
    them alike."""
    env = {"BAYES_SACRAL_CACHE": str(tmp / "cache")}
    ours = f"import bayes_sacral as bs\nbs.fit({FIT_CONFIG!r})\n"
    plain = ("import pymc as pm\nfrom bayes_sacral.config import load_configs\n"
             "from bayes_sacral.fitting import build_run_model, prepare_run\n"
             f"run = load_configs({FIT_CONFIG!r})[0]\ninp, _ = prepare_run(run)\nm = build_run_model(run, inp)\n"
             "s = run.config.sampler\n"
             "with m:\n    idata = pm.sample(draws=s.draws, tune=s.tune, chains=s.chains, nuts_sampler='nutpie', "
             "target_accept=s.target_accept, random_seed=1, progressbar=False)\n"
             "    pm.sample_prior_predictive(s.prior_draws)\n    pm.sample_posterior_predictive(idata)\n"
             "    pm.compute_log_likelihood(idata)\n")
    # the command, which also writes the run folder (netCDF, manifest, summary) and exits without the collector's walk
    cli = ("import sys\nfrom bayes_sacral.cli import entry\n"
           f"sys.argv = ['bayes-sacral', 'fit', {FIT_CONFIG!r}, '--out', {str(tmp / 'cli-runs')!r}, '--overwrite', '--quiet']\n"
           "sys.exit(entry())\n")
    _wall(ours, env)  # fills the cache
    times: dict[str, list[float]] = {"ours": [], "plain": [], "import": [], "cli": []}
    for _ in range(repeats):
        times["ours"].append(_wall(ours, env))
        times["plain"].append(_wall(plain))
        times["import"].append(_wall("import bayes_sacral, pymc, nutpie"))
        times["cli"].append(_wall(cli, env))
    t_ours, t_plain, t_import, t_cli = (float(np.median(times[k])) for k in ("ours", "plain", "import", "cli"))
    return {"bs_fit_warm_cache_s": round(t_ours, 2), "plain_pymc_nutpie_s": round(t_plain, 2), "speedup": round(t_plain / t_ours, 2),
            "cli_fit_warm_cache_s": round(t_cli, 2), "speedup_cli": round(t_plain / t_cli, 2),
            "import_floor_s": round(t_import, 2), "speedup_excluding_imports": round((t_plain - t_import) / (t_ours - t_import), 2),
            "all_s": {k: [round(x, 2) for x in v] for k, v in times.items()}}


def bench_conjugate(tmp: Path, repeats: int = 5) -> dict:
    """One conjugate run (secondary procedures, 4 x 2000 draws, prior and posterior predictive, log-likelihood) in one
    process after a warm-up: exact draws (backend auto) against NUTS with the compiled model reused, and against the
    run as it was before this work, which a plain PyMC script still is: pm.sample(nuts_sampler="nutpie") compiling the
    model, then PyMC's per-draw predictive and log-likelihood loops."""
    import warnings

    import pymc as pm

    import bayes_sacral as bs
    from bayes_sacral.config import resolve
    from bayes_sacral.fitting import build_run_model, prepare_run

    warnings.filterwarnings("ignore")
    os.environ["BAYES_SACRAL_CACHE"] = str(tmp / "cache")
    doc = {"run": {"name": "b", "seed": 1}, "model": {"kind": "secondary_procedures"}}

    def ours(backend):
        t = time.perf_counter()
        bs.fit({**doc, "sampler": {"backend": backend}})
        return time.perf_counter() - t

    def plain():
        run = resolve({**doc, "sampler": {"backend": "nutpie"}})
        inp, _ = prepare_run(run)
        t = time.perf_counter()
        with build_run_model(run, inp):
            idata = pm.sample(draws=2000, tune=1000, chains=4, nuts_sampler="nutpie", random_seed=1, progressbar=False)
            pm.sample_prior_predictive(1000, random_seed=2)
            pm.sample_posterior_predictive(idata, random_seed=3, progressbar=False)
            pm.compute_log_likelihood(idata, progressbar=False)
        return time.perf_counter() - t

    ours("auto"), ours("nutpie"), plain()  # warm-up: imports, caches
    t_exact = float(np.median([ours("auto") for _ in range(repeats)]))
    t_nuts = float(np.median([ours("nutpie") for _ in range(repeats)]))
    t_plain = float(np.median([plain() for _ in range(3)]))
    return {"exact_s": round(t_exact, 3), "nutpie_compiled_once_s": round(t_nuts, 3), "plain_pymc_nutpie_s": round(t_plain, 3),
            "speedup_vs_plain_mcmc_run": round(t_plain / t_exact, 1), "speedup_vs_compiled_nuts": round(t_nuts / t_exact, 1)}


def bench_reanalysis(tmp: Path) -> dict:
    """Wall time of `bayes-sacral reanalyze` in fresh processes: first ever, later (all runs reused), every run refitted."""
    import subprocess

    cli = str(Path(sys.executable).with_name("bayes-sacral"))
    env = {**os.environ, "BAYES_SACRAL_CACHE": str(tmp / "reanalysis-cache"), "NUMBA_CACHE_DIR": str(tmp / "numba"),
           "PYTENSOR_FLAGS": f"base_compiledir={tmp / 'pytensor'}"}
    cmd = [cli, "reanalyze", "--out", str(tmp / "report"), "--store", str(tmp / "store"), "--configs", str(ROOT / "configs")]

    def wall(*extra):
        t = time.perf_counter()
        subprocess.run(cmd + list(extra), capture_output=True, text=True, check=True, env=env)
        return time.perf_counter() - t

    first, later, refit = wall(), wall(), wall("--refit")
    return {"first_ever_s": round(first, 1), "later_s": round(later, 1), "every_run_refitted_warm_caches_s": round(refit, 1),
            "goal_first_ever_s": 240, "goal_later_s": 90}


def bench_new_user(tmp: Path) -> dict:
    """Wall time of `make reanalysis` in a fresh clone of HEAD with HOME and every cache empty (set-up included)."""
    import subprocess

    clone, home = tmp / "new-user", tmp / "new-user-home"
    home.mkdir()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("BAYES_SACRAL_CACHE", "PYTENSOR_FLAGS", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "VIRTUAL_ENV")
           and not k.startswith(("UV_", "PIP_CACHE"))}
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT)))
    t = time.perf_counter()
    done = subprocess.run(["make", "reanalysis"], cwd=clone, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode:
        raise RuntimeError(f"make reanalysis failed in the fresh clone (exit {done.returncode}):\n{done.stderr[-2000:]}")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True).stdout
    return {"make_reanalysis_with_setup_s": round(wall, 1), "git_status_clean": status.strip() == "",
            "goal_s": 240}


BENCHES = {
    "validate": ("validating a 200,000-row patient-level CSV", bench_validate_200k),
    "exact": ("exact engine: 8-point power curves", bench_exact),
    "vectorized": ("vectorized engine", bench_vectorized),
    "fit": ("a fit in a fresh process: bs.fit (warm compile cache) vs a plain PyMC script", bench_fresh_process_fit),
    "conjugate": ("a conjugate run: exact draws vs NUTS vs a plain PyMC script", bench_conjugate),
    "reanalysis": ("the whole reanalysis: first ever, later, every run refitted", bench_reanalysis),
    "full_model_beta_binomial": ("full-model engine (beta-binomial) vs naive pm.sample loop", lambda tmp: bench_full_model(tmp, "beta_binomial")),
    "full_model_normal": ("full-model engine (normal) vs naive pm.sample loop", lambda tmp: bench_full_model(tmp, "normal")),
    "new_user": ("a new user: make reanalysis in a fresh clone of HEAD, set-up included, every cache empty", bench_new_user),
}


def main() -> int:
    """Run every benchmark, or those named on the command line (benchmarks/run.py fit conjugate)."""
    only = sys.argv[1:] or list(BENCHES)
    unknown = [n for n in only if n not in BENCHES]
    if unknown:
        print(f"error: unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    results = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in only:
            what, fn = BENCHES[name]
            print(f"{what} ...", flush=True)
            results[name] = fn(tmp)
            print(json.dumps(results[name], indent=2), flush=True)
    from bayes_sacral.store import versions

    results["machine"] = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0], **{k: v for k, v in versions().items() if k in ("pymc", "nutpie", "numpy")}}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    # a partial run (benchmarks named on the command line) updates those entries and keeps the others
    old = json.loads((out / "latest.json").read_text()) if (out / "latest.json").exists() else {}
    (out / "latest.json").write_text(json.dumps({**old, **results}, indent=2) + "\n")
    print(f"wrote {out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The reanalysis of a published study, end to end: what `make reanalysis` runs for the bundled study."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from .memo import prune_results
from .serialize import to_jsonable
from .store import DEFAULT_STORE

__all__ = ["DEFAULT_REPORT_DIR", "DEFAULT_CONFIG_DIR", "run_reanalysis", "fit_runs", "fit_or_reuse", "prepare_run", "next_run",
           "structure_group"]

DEFAULT_REPORT_DIR = Path("reports/published-reanalysis")
DEFAULT_CONFIG_DIR = Path("configs")
#: every reanalysis folder holds it; --out replaces only a folder that does (or an empty one)
REPORT_MARKER = "integrity.json"


def _write_table(folder: Path, stem: str, records: list[dict]) -> None:
    (folder / f"{stem}.json").write_text(json.dumps(to_jsonable(records), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    df = pd.DataFrame(records)
    for c in df.columns:
        if df[c].map(lambda v: isinstance(v, (list, dict))).any():
            df[c] = df[c].map(lambda v: json.dumps(to_jsonable(v), ensure_ascii=False) if isinstance(v, (list, dict)) else v)
    df.to_csv(folder / f"{stem}.csv", index=False, lineterminator="\n")


def fit_or_reuse(run, store: Path, reuse: bool, command: str | None = None, prepare: bool = False) -> tuple[list[str], object, list]:
    """Fit one run into ``store`` (or take the stored run, with ``reuse``, when refitting would reproduce it exactly);
    returns (its log lines, the :class:`~bayes_sacral.run.Run`, memo entries). Module-level: what a worker process
    runs; ``command`` is the command line to record (the caller's, not the worker's).

    ``prepare``: also read the run's draws and compute its diagnostics, PSIS-LOO and predictive checks here (see
    :func:`prepare_run`), returned as :func:`bayes_sacral.memo.recording` entries for the caller to
    :func:`~bayes_sacral.memo.absorb`: worker processes then do this per-run work in parallel.
    """
    from .fitting import diagnostics_line, fit_run, reusable_run
    from .memo import recording

    lines: list[str] = []
    res = reusable_run(run, store) if reuse else None
    if res is not None:
        lines.append(f"reused {res.path} (same config, seed, data and code)")
    else:
        res = fit_run(run, store, overwrite=True, log=lines.append, command=command)
    lines.append(diagnostics_line(res.manifest))
    entries: list = []
    if prepare:
        with recording() as rec:
            prepare_run(res)
        entries = list({(name, key): (name, key, value) for name, key, value in rec}.values())
    return lines, res, entries


def prepare_run(res) -> None:
    """Compute what the model checks and the report read of one run (posterior summaries with their diagnostics, the
    diagnostics table, PSIS-LOO, predictive checks); the results stay in this process's memos."""
    from .checks import has_loo, loo_table, ppc_table
    from .report.tables import diagnostics_table, posterior_table
    from .summarize import summarize_run

    summarize_run(res)
    diagnostics_table(res)
    posterior_table(res)
    ppc_table(res)
    if has_loo(res):
        loo_table(res.idata)


def expected_cost(run) -> float:
    """A rough relative cost of fitting a run, for scheduling the longest first: sampler iterations × data sets ×
    likelihood terms per patient (the per-item model's six ordered-logit terms per patient made each of its iterations
    about 4x as costly as the total-score model's, so it was started late and finished last), with closed-form (exact)
    runs nearly free."""
    s = run.config.sampler
    if s.backend == "exact":
        return 0.01 * s.chains * s.draws
    reps = getattr(run.options, "reconstructions", None) if getattr(run.options, "route", None) == "reconstructed" else None
    return float(s.chains * (s.draws + s.tune) * (reps or 1) * run.kind.likelihood_terms_per_unit(run.spec))


def fit_runs(runs: list, store: Path, reuse: bool = False, jobs: int | None = None, log=print) -> list:
    """Fit (or reuse) every run, ``jobs`` at a time in worker processes (default: one per core; 1 = in this process),
    longest first, but never two runs of one :func:`structure_group` side by side until one has finished (see
    :func:`next_run`); returns the runs in the order given. A failed run stops the others and raises its error.

    Each run is seeded by its config, so the draws do not depend on ``jobs`` or on the order the runs finish in.
    """
    from .fitting import current_command
    from .memo import absorb
    from .workers import WorkerPool, available_cores

    jobs = min(len(runs), available_cores() if jobs is None else jobs)
    if jobs <= 1:
        out = []
        for run in runs:
            lines, res, _ = fit_or_reuse(run, store, reuse)
            for line in lines:
                log(line)
            out.append(res)
        return out
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = sorted(range(len(runs)), key=lambda i: -expected_cost(runs[i]))
    group = [structure_group(r) for r in runs]
    started: set = set()
    finished: set = set()
    log(f"fitting {len(runs)} runs, {jobs} at a time in worker processes (longest first)")
    results: list = [None] * len(runs)
    in_flight: dict = {}
    with WorkerPool(jobs) as pool:
        while pending or in_flight:
            while pending and len(in_flight) < jobs:
                i = next_run(pending, group, started, finished)
                pending.remove(i)
                started.add(group[i])
                in_flight[pool.submit(fit_or_reuse, runs[i], Path(store), reuse, current_command(), True,
                                      what=f"run {runs[i].config.run.name}")] = i
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in done:
                i = in_flight.pop(fut)
                lines, res, entries = fut.result()
                absorb(entries)
                for line in lines:
                    log(line)
                results[i] = res
                finished.add(group[i])
    return results


def next_run(pending: list[int], group: list, started: set, finished: set) -> int:
    """The next run to start: the first of ``pending`` (longest first) whose group has not started or has a run
    finished, so that a second run of a structure does not compile it again at the same time as the first (in the
    first-ever reanalysis two sweep members compiled one model side by side, 40 s each); the longest when every run
    left waits on a group."""
    for i in pending:
        if group[i] not in started or group[i] in finished:
            return i
    return pending[0]


def structure_group(run) -> tuple:
    """Runs that most likely share one compiled model: those of one config file and model kind (its sweep members and
    prior sets differ in data and priors, which are shared variables of one structure)."""
    return (run.source_file, run.config.model.kind)


def run_reanalysis(out_dir: Path = DEFAULT_REPORT_DIR, configs_dir: Path = DEFAULT_CONFIG_DIR, store: Path = DEFAULT_STORE,
                   fit: bool = True, log=print, reuse: bool = False, study=None, jobs: int | None = None) -> Path:
    """Data check, frequentist reproduction and every config in ``configs_dir`` fitted, written atomically to ``out_dir``.

    ``study``: the study whose published summaries are checked and reproduced (default: the bundled study); each config
    is fitted with the study its ``[data] study`` names.

    Run folders go to ``store`` (a refitted run replaces its folder: runs are regenerated from configs and seeds); the
    report folder holds only deterministic numbers (no timings), so re-running it reproduces the committed copy. With
    ``reuse`` (the CLI's default), a stored run that this code would reproduce exactly (same resolved config, seed, data hash and
    versions, see :func:`~bayes_sacral.fitting.reusable_run`) is taken as it is instead of being refitted. ``jobs``: runs
    fitted at once in worker processes (default one per core; see :func:`fit_runs`).
    """
    from .atomic import atomic_directory, check_output_folder
    from .config import load_configs
    from .data.integrity import findings_frame, run_checks
    from .errors import InputError, Problem
    from .stats.frequentist import reproduce_from_summary, results_frame
    from .store import check_store
    from .study import load_study

    # a mistyped --out or --store fails now, not after the fits; --out replaces only an earlier reanalysis folder
    check_output_folder(out_dir, "--out", "report folder", marker=REPORT_MARKER)
    if fit:
        check_store(Path(store), "--store")
    study = study or load_study()
    sd = study.require_summary("the reanalysis")
    findings = run_checks(sd)
    repro = reproduce_from_summary(sd)
    runs = []
    if fit:
        cfgs = sorted(Path(configs_dir).glob("*.toml"))
        if not cfgs:
            rule = "no run configs (*.toml) in this folder" if Path(configs_dir).is_dir() else "no such folder"
            raise InputError([Problem(str(configs_dir), "--configs", str(configs_dir), rule + " (pass --no-fit to skip fitting)")])
        for cfg in cfgs:
            runs.extend(load_configs(cfg))
    t0 = time.perf_counter()
    fitted = fit_runs(runs, store, reuse, jobs, log) if runs else []
    if fitted:
        log(f"runs: {len(fitted)} in {time.perf_counter() - t0:.0f} s")
    with atomic_directory(out_dir, overwrite=True, marker=REPORT_MARKER) as tmp:
        ff = findings_frame(findings)
        _write_table(tmp, "integrity", ff.to_dict(orient="records"))
        _write_table(tmp, "reproduction", results_frame(repro).to_dict(orient="records"))
        if fitted:
            from .report.build import write_report

            card = study.card
            title = (f"Bayesian reanalysis of {card.study.title or card.name}: {card.arm_label(card.arms.treatment)} vs "
                     f"{card.arm_label(card.arms.control)}")
            t0 = time.perf_counter()
            # the runs' summaries and model checks are written while worker processes render the report's figures
            write_report(fitted, tmp, title, log=log, meanwhile=lambda: _write_run_tables(tmp, fitted, log))
            log(f"report: written in {time.perf_counter() - t0:.0f} s")
    prune_results()  # keep the remembered diagnostics, LOO and predictive checks bounded
    counts = {s: sum(f.status == s for f in findings) for s in ("pass", "borderline", "fail")}
    log(f"integrity: {len(findings)} findings ({counts['pass']} pass, {counts['borderline']} borderline, {counts['fail']} fail)")
    log(f"reproduction: {len(repro)} tests; runs fitted: {len(fitted)}")
    log(f"wrote {out_dir}")
    return out_dir


def _write_run_tables(tmp: Path, fitted, log) -> None:
    """Each run's posterior summary (``summaries/``), the index of runs (``runs``) and the model checks."""
    from .summarize import summarize_run

    sums = tmp / "summaries"
    sums.mkdir()
    index = []
    for res in fitted:
        m = res.manifest
        rows = summarize_run(res)
        _write_table(sums, m["run"], rows)
        d = m["diagnostics"]
        index.append({"run": m["run"], "study": m["study"]["name"], "outcome": m["outcome"], "kind": m["model"]["kind"],
                      "options": m["model"], "prior_set": m["prior_set"],
                      "data": m["data"]["source"], "data_sha256": m["data"]["sha256"], "seed": m["seed"],
                      "draws": m["sampler"]["draws"], "chains": m["sampler"]["chains"], "status": d["status"],
                      "max_r_hat": d["max_r_hat"], "min_ess_bulk": d["min_ess_bulk"], "min_ess_tail": d["min_ess_tail"],
                      "divergences": d["divergences"], "assumptions": m["data"]["assumptions"]})
    _write_table(tmp, "runs", index)
    _write_model_checks(tmp / "model_checks", fitted, log)


def _write_model_checks(folder: Path, fitted, log) -> None:
    """PSIS-LOO and posterior predictive checks per patient-level run, reconstruction spread, likelihood comparisons."""
    from .checks import compare_runs, has_loo, loo_table, ppc_table, spread_table

    folder.mkdir()
    loo_rows = []
    groups: dict[tuple, dict] = {}
    for res in fitted:
        m = res.manifest
        name = m["run"]
        dt = res.idata
        _write_table(folder, f"ppc--{name}", ppc_table(res).to_dict(orient="records"))
        if m.get("replicates"):
            _write_table(folder, f"spread--{name}", spread_table(dt).to_dict(orient="records"))
        if has_loo(res):
            loo_rows.append({"run": name, **loo_table(dt)})
            key = (m["model"]["kind"], m["data"]["sha256"], m["model"].get("route"), m["model"].get("reconstructions"),
                   m["model"].get("pre_post_correlation"), m["model"].get("reconstruction_seed"))
            groups.setdefault(key, {})[name] = dt
    if loo_rows:
        _write_table(folder, "loo", loo_rows)
    comps = []
    for runs in groups.values():
        if len(runs) > 1:
            table = compare_runs(runs)
            table.insert(0, "comparison", " vs ".join(runs))
            comps.extend(table.to_dict(orient="records"))
    if comps:
        _write_table(folder, "loo_compare", comps)
        log(f"LOO comparisons: {len(comps)} rows")

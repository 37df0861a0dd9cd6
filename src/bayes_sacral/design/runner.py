"""Running a design: batches of simulated trials in local processes or on Dask, persisted as they finish, resumable.

Every batch (scenario s, sample size index i, batch b) draws its random numbers from
``SeedSequence(seed, spawn_key=(s, i, b))``: results do not depend on the number of workers, their order, or on
whether the run was interrupted and resumed. Finished batches are written to ``<out>/batches/`` atomically; ``--resume``
recomputes only the missing ones. The exact engine has no batches. Without an output folder the design runs in memory
(Monte Carlo batches go to a temporary folder that is removed afterwards).
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr

from ..atomic import atomic_write_bytes, atomic_write_text, check_output_folder
from ..errors import BayesSacralError, InputError, Problem
from ..store import versions
from .config import DesignConfig, InterimSection, design_to_toml
from .context import Context, build_context
from .exact import exact_success, exact_unavailable
from .simulate import BATCH_FIELDS, FIT_FIELDS, fit_defaults, vectorized_batch

__all__ = ["Task", "Job", "run_design", "check_output", "make_tasks", "run_task", "choose_engine", "smallest_n"]


@dataclass(frozen=True)
class Task:
    scenario: str
    s_index: int
    n_index: int
    n: int
    batch: int
    size: int
    offset: int

    @property
    def file(self) -> str:
        return f"{self.scenario}__n{self.n}__b{self.batch:05d}.npz"


@dataclass
class Job:
    """What a worker needs to run any batch of a design (picklable)."""

    ctx: Context
    engine: str
    seed: int
    interims: list[InterimSection]
    full_model: dict
    preop: dict


def make_tasks(cfg: DesignConfig, ctx: Context, counts: dict[tuple[int, int], int] | None = None) -> list[Task]:
    """The batches of every (scenario, sample size) cell: ``counts[(s_index, n_index)]`` trials each (default n_trials).

    A batch is identified by its cell and index, whatever the count: a cell grown by ``target_mcse`` keeps its earlier
    batches and adds new ones."""
    d = cfg.design
    tasks = []
    for s_i, sc in enumerate(ctx.truth):
        for n_i, n in enumerate(d.sample_sizes):
            n_trials = d.n_trials if counts is None else counts[(s_i, n_i)]
            for b, start in enumerate(range(0, n_trials, d.batch_size)):
                tasks.append(Task(sc, s_i, n_i, n, b, min(d.batch_size, n_trials - start), start))
    return tasks


def _floored(p: float, T: int) -> float:
    """A proportion of T trials kept half a trial away from 0 and 1, so that 0/T is not reported as certain."""
    return min(max(p, 0.5 / T), 1 - 0.5 / T)


def proportion_mcse(p: float, T: int) -> float:
    """Monte Carlo standard error of a success proportion ``p`` over T simulated trials (with :func:`_floored`)."""
    p = _floored(p, T)
    return float(np.sqrt(p * (1 - p) / T))


#: Trials per cell in the first round of a design with ``target_mcse`` (whole batches, at most n_trials).
PILOT_TRIALS = 200


def next_counts(cfg: DesignConfig, ds: xr.Dataset, counts: dict[tuple[int, int], int]) -> dict[tuple[int, int], int]:
    """Trials per cell for the next round of a ``target_mcse`` design: enough, by the success probability estimated so
    far, for its Monte Carlo standard error to reach the target, in whole batches and at most n_trials."""
    d = cfg.design
    out = dict(counts)
    for (s_i, n_i), T in counts.items():
        se = float(ds["mcse"].values[s_i, n_i])
        if se <= d.target_mcse or T >= d.n_trials:
            continue
        p = float(ds["success_probability"].values[s_i, n_i])
        p = _floored(p, T)
        need = int(np.ceil(p * (1 - p) / d.target_mcse**2))
        need = max(need, T + d.batch_size)
        out[(s_i, n_i)] = int(min(d.n_trials, -(-need // d.batch_size) * d.batch_size))
    return out


def _preop(cfg: DesignConfig) -> dict:
    """Distribution of the score before treatment per stratum (the full-model engine's patients)."""
    if cfg.outcome_kind != "score":
        return {}
    m = cfg.truth_of()
    return {"mean": [m.preop_mean[lev] for lev in cfg.levels], "sd": m.preop_sd}


def make_job(cfg: DesignConfig, ctx: Context, engine: str) -> Job:
    return Job(ctx, engine, cfg.design.seed, list(cfg.interim), cfg.full_model.model_dump(), _preop(cfg))


def run_task(job: Job, task: Task) -> dict:
    """One batch (a pure function of its inputs: safe in any process or Dask worker)."""
    seed = np.random.SeedSequence(job.seed, spawn_key=(task.s_index, task.n_index, task.batch))
    fractions = [i.fraction for i in job.interims]
    if job.engine == "full_model":
        from .full_model import full_model_batch

        return full_model_batch(job.ctx, task.scenario, task.n, fractions, job.interims, task.size, seed, task.offset,
                                job.full_model, job.preop)
    return vectorized_batch(job.ctx, task.scenario, task.n, fractions, job.interims, task.size, seed, task.offset)


def _save_batch(folder: Path, task: Task, res: dict) -> None:
    import io

    buf = io.BytesIO()
    res = {**fit_defaults(len(res["success"])), **res}
    np.savez(buf, **{k: np.asarray(res[k]) for k in (*BATCH_FIELDS, *FIT_FIELDS)})
    atomic_write_bytes(folder / task.file, buf.getvalue())


def _load_batch(folder: Path, task: Task) -> dict:
    with np.load(folder / task.file) as z:
        out = {k: z[k] for k in BATCH_FIELDS}
        fit = fit_defaults(len(out["success"]))
        return {**out, **{k: z[k] if k in z.files else fit[k] for k in FIT_FIELDS}}


#: Seconds to wait for a Dask scheduler before giving up.
SCHEDULER_TIMEOUT_S = 3


def connect_scheduler(scheduler: str):
    """A Dask client for ``scheduler`` (an address), or an input error naming the option within a few seconds."""
    from dask.distributed import Client

    try:
        return Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError([Problem("<command line>", "--scheduler", repr(scheduler),
                                  f"no Dask scheduler answered within {SCHEDULER_TIMEOUT_S} s ({reason}); nothing was written")]) from None


def _watch_parent(parent_pid: int) -> None:
    """Worker initializer: exit as soon as the process that started the design is gone (no orphans after a SIGKILL)."""
    import threading

    def watch():
        while True:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pragma: no cover - a pid reused by another user's process
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="bayes-sacral-parent-watch").start()


def _execute(tasks: list[Task], job: Job, folder: Path, scheduler: str | None, workers: int, on_done, client=None) -> None:
    if scheduler is not None:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed

        cluster = None
        own = client is None  # a client passed in belongs to the caller (it may run several rounds)
        if client is not None:
            pass
        elif scheduler == "local":
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            client = connect_scheduler(scheduler)
        try:
            job_f = client.scatter(job, broadcast=True)
            futs = {client.submit(run_task, job_f, t, pure=False): t for t in tasks}
            for fut in dask_completed(futs):
                t = futs[fut]
                _save_batch(folder, t, fut.result())
                on_done(t)
        finally:
            if own:
                client.close()
            if cluster is not None:
                cluster.close()
        return
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            _save_batch(folder, t, run_task(job, t))
            on_done(t)
        return
    import multiprocessing as mp

    # forkserver: forking a process that already runs threads (BLAS, Dask, nutpie) can deadlock the child
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("forkserver"), initializer=_watch_parent,
                             initargs=(os.getpid(),)) as pool:
        futs = {pool.submit(run_task, job, t): t for t in tasks}
        for fut in as_completed(futs):
            t = futs[fut]
            _save_batch(folder, t, fut.result())
            on_done(t)


def _aggregate(cfg: DesignConfig, ctx: Context, tasks: list[Task], folder: Path, engine: str, note: str) -> xr.Dataset:
    d = cfg.design
    scen = list(ctx.truth)
    sizes = d.sample_sizes
    n_looks = len(cfg.interim) + 1
    shape = (len(scen), len(sizes))
    succ = np.zeros(shape)
    mcse = np.zeros(shape)
    exp_n = np.zeros(shape)
    n_tr = np.zeros(shape, dtype=int)
    stop_eff = np.zeros((*shape, n_looks))
    stop_fut = np.zeros((*shape, n_looks))
    by: dict = {}
    fits = {k: np.full(shape, np.nan) for k in FIT_SUMMARY}
    for t in tasks:
        by.setdefault((t.scenario, t.n), []).append(_load_batch(folder, t))
    for i, sc in enumerate(scen):
        for j, n in enumerate(sizes):
            parts = by[(sc, n)]
            s = np.concatenate([p["success"] for p in parts])
            look = np.concatenate([p["stop_look"] for p in parts])
            reason = np.concatenate([p["stop_reason"] for p in parts])
            used = np.concatenate([p["n_used"] for p in parts])
            for k, v in _fit_summary({f: np.concatenate([p[f] for p in parts]) for f in FIT_FIELDS}, s).items():
                fits[k][i, j] = v
            T = len(s)
            succ[i, j] = s.mean()
            mcse[i, j] = proportion_mcse(s.mean(), T)
            exp_n[i, j] = used.mean()
            n_tr[i, j] = T
            for k in range(n_looks):
                stop_eff[i, j, k] = np.mean((look == k) & (reason == 1))
                stop_fut[i, j, k] = np.mean((look == k) & (reason == 2))
    ds = _dataset(cfg, ctx, succ, mcse, exp_n, n_tr, stop_eff, stop_fut, engine, note)
    if engine == "full_model":
        for k, (long_name, _) in FIT_SUMMARY.items():
            ds[k] = (("scenario", "sample_size"), fits[k], {"long_name": long_name})
    return ds


#: Per-cell summaries of the full-model engine's fits: name -> (long name, CSV/summary column).
FIT_SUMMARY = {
    "share_escalated": ("share of trials with a fast-tier fit refitted by NUTS", "escalated"),
    "share_flagged": ("share of trials with a fit failing its diagnostics", "flagged"),
    "success_probability_unflagged": ("P(success) over the trials without a flagged fit", "P(success) unflagged"),
    "khat_max": ("largest Pareto k̂ of the fast-tier fits", "max k̂"),
    "validation_trials": ("trials refitted by NUTS for validation", "validation trials"),
    "validation_success_fast": ("P(success) of the validation trials, as analysed by the engine", "validation P(success)"),
    "validation_success_nuts": ("P(success) of the validation trials, NUTS reference", "NUTS reference"),
    "validation_mcse": ("Monte Carlo standard error of the NUTS reference P(success)", "reference MCSE"),
    "validation_agreement": ("share of validation trials with the same decision", "decision agreement"),
}


def _fit_summary(f: dict, success: np.ndarray) -> dict:
    flagged = f["flagged"].astype(bool)
    k = f["khat"][np.isfinite(f["khat"])]
    out = {"share_escalated": float(np.mean(f["escalated"])), "share_flagged": float(np.mean(flagged)),
           "success_probability_unflagged": float(np.mean(success[~flagged])) if (~flagged).any() else np.nan,
           "khat_max": float(k.max()) if k.size else np.nan}
    ref = f["ref_success"] >= 0
    V = int(ref.sum())
    out["validation_trials"] = V
    if V:
        pn = float(np.mean(f["ref_success"][ref]))
        out.update(validation_success_fast=float(np.mean(success[ref])), validation_success_nuts=pn,
                   validation_mcse=proportion_mcse(pn, V),
                   validation_agreement=float(np.mean(success[ref].astype(int) == f["ref_success"][ref])))
    return out


def fit_manifest(cfg: DesignConfig, ds: xr.Dataset) -> dict:
    """The full-model engine's fits over the whole design: method, escalated and flagged shares, and the validation."""
    fm = cfg.full_model
    n = ds["n_trials"].values
    out = {"method": fm.method, "khat_max_allowed": fm.khat_max if fm.method == "laplace" else None,
           "min_ess": fm.min_ess if fm.method == "laplace" else None,
           "share_escalated": float((ds["share_escalated"].values * n).sum() / n.sum()),
           "share_flagged": float((ds["share_flagged"].values * n).sum() / n.sum())}
    V = ds["validation_trials"].values
    if V.sum() > 0:
        ok = V > 0
        fast, ref, se = (ds[k].values[ok] for k in ("validation_success_fast", "validation_success_nuts", "validation_mcse"))
        agree = float((ds["validation_agreement"].values[ok] * V[ok]).sum() / V[ok].sum())
        out["validation"] = {"trials": int(V.sum()), "reference": f"{fm.chains} chains × {fm.validation_draws} draws",
                             "max_abs_difference_in_mcse": float(np.max(np.abs(fast - ref) / se)),
                             "within_2_mcse": bool(np.all(np.abs(fast - ref) <= 2 * se)), "decision_agreement": agree}
    return out


def _dataset(cfg, ctx, succ, mcse, exp_n, n_tr, stop_eff, stop_fut, engine: str, note: str) -> xr.Dataset:
    scen = list(ctx.truth)
    looks = [f"interim {k + 1} ({i.fraction:.0%})" for k, i in enumerate(cfg.interim)] + ["final"]
    if stop_eff.shape[-1] != len(looks):  # the exact engine has only the final look
        looks = ["final"]
    card = cfg.card
    return xr.Dataset(
        {"success_probability": (("scenario", "sample_size"), succ, {"long_name": "P(success)"}),
         "mcse": (("scenario", "sample_size"), mcse, {"long_name": "Monte Carlo standard error of P(success)"}),
         "expected_sample_size": (("scenario", "sample_size"), exp_n),
         "n_trials": (("scenario", "sample_size"), n_tr),
         "prob_stop_efficacy": (("scenario", "sample_size", "look"), stop_eff),
         "prob_stop_futility": (("scenario", "sample_size", "look"), stop_fut)},
        coords={"scenario": scen, "sample_size": cfg.design.sample_sizes, "look": looks,
                "scenario_label": ("scenario", [ctx.labels[s] for s in scen])},
        attrs={"study": card.name, "endpoint": cfg.endpoint, "truth": ctx.truth_note, "analysis_prior": ctx.prior_note,
               "rule": rule_text(cfg, ctx), "estimand": cfg.design.estimand, "allocation_scheme": cfg.design.allocation_scheme,
               "engine": engine, "engine_note": note},
    )


def benefit_text(cfg: DesignConfig) -> str:
    """What 'benefit' means for the endpoint, in words (treatment and control by their display labels)."""
    card = cfg.card
    o = cfg.outcome
    T, C = card.arm_label(card.arms.treatment), card.arm_label(card.arms.control)
    label = card.outcome_label(cfg.endpoint)
    if cfg.outcome_kind == "event":
        if o.higher_is_better:
            return f"the increase in {label} (risk difference, {T} − {C})"
        return f"the reduction in {label} (risk difference, {C} − {T})"
    est = cfg.design.estimand
    what = f"effect on {label} ({T} − {C})" if o.higher_is_better else f"reduction in {label} ({C} − {T})"
    if est != "average":
        return f"the {what} in the {card.stratum_label(est)} stratum"
    return f"the prevalence-weighted average {what}" if card.stratified else f"the {what}"


def rule_text(cfg: DesignConfig, ctx: Context) -> str:
    eff = benefit_text(cfg)
    txt = f"success if P({eff} > 0 | data) ≥ {ctx.threshold:g}"
    if ctx.rule == "dual":
        unit = f" {cfg.outcome.unit}" if cfg.outcome_kind == "score" else ""
        txt += f" and its posterior median ≥ {ctx.mcid:g}{unit}"
    return txt


def smallest_n(ds: xr.Dataset, target: float, scenario: str = "design") -> dict:
    """Smallest sample size reaching the target, with the range allowed by ±1.96 Monte Carlo standard errors."""
    p = ds["success_probability"].sel(scenario=scenario).values
    se = ds["mcse"].sel(scenario=scenario).values
    sizes = ds["sample_size"].values

    def first(mask):
        idx = np.where(mask)[0]
        return int(sizes[idx[0]]) if idx.size else None

    return {"target": target, "smallest_n": first(p >= target), "smallest_n_optimistic": first(p + 1.96 * se >= target),
            "smallest_n_conservative": first(p - 1.96 * se >= target)}


def choose_engine(cfg: DesignConfig, ctx: Context) -> tuple[str, str]:
    """The engine that runs and why, when it is not the one asked for (exact -> vectorized for too many stratum splits)."""
    engine = cfg.engine()
    if engine == "exact":
        why = exact_unavailable(ctx, cfg.design.sample_sizes)
        if why is not None:
            return "vectorized", why
    return engine, ""


def check_output(cfg: DesignConfig, out: Path, resume: bool = False) -> None:
    """Refuse, before any simulation, an output folder that exists (without ``resume``), was started with another
    config or study card (with ``resume``), or cannot be created or written."""
    out = Path(out)
    if out.exists() and not resume:
        raise BayesSacralError(f"{out} already exists; pass --resume to continue it or choose another --out")
    if out.exists() and resume:
        for fname, text in (("config.toml", design_to_toml(cfg)), ("study.toml", cfg.card.text)):
            old = (out / fname).read_text(encoding="utf-8") if (out / fname).exists() else None
            if old is not None and old != text:
                raise BayesSacralError(f"{out} was started with a different {'config' if fname == 'config.toml' else 'study card'}; "
                                       "--resume needs the same one")
    check_output_folder(out, "--out", "design folder", into=True)


def run_design(cfg: DesignConfig, out: Path | None = None, scheduler: str | None = None, resume: bool = False,
               workers: int | None = None, progress=None, log=None) -> xr.Dataset:
    """Run a design; with ``out``, also write its outputs there (resumable). Returns the results Dataset."""
    from .output import write_outputs

    log = log or (lambda m: None)
    config_text = design_to_toml(cfg)
    card_text = cfg.card.text
    # reach a remote scheduler before anything is written, so a bad address leaves nothing behind
    client = connect_scheduler(scheduler) if scheduler not in (None, "local") else None
    if out is not None:
        out = Path(out)
        check_output(cfg, out, resume)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.toml", config_text)
        atomic_write_text(out / "study.toml", card_text)
    workers = workers or min(2, os.cpu_count() or 1)
    t0 = time.perf_counter()
    ctx = build_context(cfg)
    engine, note = choose_engine(cfg, ctx)
    if note:
        log(note)
    done_trials = 0
    n_trials_total = 0
    if engine == "exact":
        if cfg.design.target_mcse is not None:
            log("target_mcse is not used: the exact engine has no Monte Carlo error")
        scen = list(ctx.truth)
        sizes = cfg.design.sample_sizes
        succ = np.zeros((len(scen), len(sizes)))
        mcse = np.zeros_like(succ)
        for i, sc in enumerate(scen):
            for j, n in enumerate(sizes):
                vals = exact_success(ctx, sc, n)
                succ[i, j] = vals.mean()
                mcse[i, j] = vals.std(ddof=1) / np.sqrt(len(vals)) if len(vals) > 1 else 0.0
                if progress:
                    progress(i * len(sizes) + j + 1, len(scen) * len(sizes), f"exact {sc} n = {n}")
        ds = _dataset(cfg, ctx, succ, mcse, np.tile(np.array(sizes, float), (len(scen), 1)), np.zeros_like(succ, dtype=int),
                      np.zeros((*succ.shape, 1)), np.zeros((*succ.shape, 1)), engine, note)
        ds["mcse"].attrs["note"] = "exact: zero, or the Monte Carlo error over design-prior draws (assurance)"
    else:
        d = cfg.design
        job = make_job(cfg, ctx, engine)

        def compute(folder: Path) -> xr.Dataset:
            nonlocal done_trials, tasks, rounds
            counts = None
            if d.target_mcse is not None:
                pilot = min(d.n_trials, -(-PILOT_TRIALS // d.batch_size) * d.batch_size)
                counts = {(s_i, n_i): pilot for s_i in range(len(ctx.truth)) for n_i in range(len(d.sample_sizes))}
            first = True
            while True:
                tasks = make_tasks(cfg, ctx, counts)
                todo = [t for t in tasks if not (folder / t.file).exists()]
                if first and resume:
                    log(f"resuming: {len(tasks) - len(todo)} of {len(tasks)} batches already done")
                first = False
                total = done_trials + sum(t.size for t in todo)

                def on_done(t, total=total):
                    nonlocal done_trials
                    done_trials += t.size
                    if progress:
                        progress(done_trials, total, f"{engine}: {t.scenario} n = {t.n}")

                _execute(todo, job, folder, scheduler, workers, on_done, client)
                rounds += 1
                ds = _aggregate(cfg, ctx, tasks, folder, engine, note)
                if counts is None:
                    return ds
                new = next_counts(cfg, ds, counts)
                if new == counts:
                    return ds
                counts = new

        rounds = 0
        tasks = []
        try:
            if out is not None:
                folder = out / "batches"
                folder.mkdir(exist_ok=True)
                ds = compute(folder)
            else:
                with tempfile.TemporaryDirectory(prefix="bayes-sacral-design-") as tmp:
                    ds = compute(Path(tmp))
        finally:
            if client is not None:
                client.close()
        n_trials_total = int(ds["n_trials"].sum())
    wall = time.perf_counter() - t0
    n_looks = len(cfg.interim) + 1 if engine != "exact" else 1
    analyses = n_trials_total * n_looks
    card = cfg.card
    manifest = {"format": "bayes-sacral-design/2", "name": cfg.design.name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "study": {"name": card.name, "card_sha256": card.sha256, "path": str(card.path) if card.path else None},
                "endpoint": cfg.endpoint, "engine": engine, "engine_requested": cfg.design.engine, "engine_note": note,
                "scheduler": (scheduler or f"local processes ({workers})") if engine != "exact" else None, "seed": cfg.design.seed,
                "wall_time_s": round(wall, 3), "trials_computed_this_session": done_trials,
                "trial_analyses_per_second": round(done_trials * n_looks / wall, 1) if done_trials else None,
                "total_trial_analyses": analyses, "versions": versions(), "smallest_n": smallest_n(ds, cfg.design.target),
                "labels": ctx.labels, "truth": ctx.truth_note, "analysis_prior": ctx.prior_note}
    if engine != "exact":
        manifest["n_trials"] = {"target_mcse": cfg.design.target_mcse, "max_per_cell": cfg.design.n_trials, "rounds": rounds,
                                "min_per_cell": int(ds["n_trials"].min()), "max_used": int(ds["n_trials"].max())}
    if engine == "full_model":
        manifest["fits"] = fit_manifest(cfg, ds)
    ds.attrs["smallest_n"] = str(manifest["smallest_n"]["smallest_n"])
    if out is not None:
        write_outputs(cfg, ctx, ds, out, manifest)
    log(f"{engine} engine: {wall:.1f} s")
    return ds

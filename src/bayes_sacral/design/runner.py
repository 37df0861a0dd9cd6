"""Running a design: batches of simulated trials in local processes or on Dask, persisted as they finish, resumable.

Every batch (scenario s, sample size index i, batch b) draws its random numbers from
``SeedSequence(seed, spawn_key=(s, i, b))``: results do not depend on the number of workers, their order, or on
whether the run was interrupted and resumed. Finished batches are written to ``<out>/batches/`` atomically; ``--resume``
recomputes only the missing ones. The exact engine has no batches.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr

from ..atomic import atomic_write_bytes, atomic_write_text
from ..errors import BayesSacralError
from ..store import versions
from .config import DesignConfig, design_to_toml
from .context import Context, build_context
from .exact import exact_success
from .simulate import BATCH_FIELDS, vectorized_batch

__all__ = ["Task", "run_design", "make_tasks", "run_task"]


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


def make_tasks(cfg: DesignConfig, ctx: Context) -> list[Task]:
    d = cfg.design
    n_trials = d.n_trials
    tasks = []
    for s_i, sc in enumerate(ctx.truth):
        for n_i, n in enumerate(d.sample_sizes):
            for b, start in enumerate(range(0, n_trials, d.batch_size)):
                tasks.append(Task(sc, s_i, n_i, n, b, min(d.batch_size, n_trials - start), start))
    return tasks


def _preop(cfg: DesignConfig) -> dict:
    m = cfg.truth.msts
    return {"mean": [m.preop_mean["pathological"], m.preop_mean["impending"]], "sd": m.preop_sd}


def run_task(cfg_json: str, ctx: Context, engine: str, task: Task) -> dict:
    """One batch (a pure function of its inputs: safe in any process or Dask worker)."""
    cfg = DesignConfig.model_validate_json(cfg_json)
    seed = np.random.SeedSequence(cfg.design.seed, spawn_key=(task.s_index, task.n_index, task.batch))
    fractions = [i.fraction for i in cfg.interim]
    if engine == "full_model":
        from .full_model import full_model_batch

        return full_model_batch(ctx, task.scenario, task.n, fractions, cfg.interim, task.size, seed, task.offset,
                                cfg.full_model.model_dump(), _preop(cfg))
    return vectorized_batch(ctx, task.scenario, task.n, fractions, cfg.interim, task.size, seed, task.offset)


def _save_batch(folder: Path, task: Task, res: dict) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(res[k]) for k in BATCH_FIELDS})
    atomic_write_bytes(folder / task.file, buf.getvalue())


def _load_batch(folder: Path, task: Task) -> dict:
    with np.load(folder / task.file) as z:
        return {k: z[k] for k in BATCH_FIELDS}


def _execute(tasks: list[Task], cfg: DesignConfig, ctx: Context, engine: str, folder: Path, scheduler: str | None, workers: int,
             on_done) -> None:
    cfg_json = cfg.model_dump_json()
    if scheduler is not None:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed

        cluster = None
        if scheduler == "local":
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler)
        try:
            ctx_f = client.scatter(ctx, broadcast=True)
            futs = {client.submit(run_task, cfg_json, ctx_f, engine, t, pure=False): t for t in tasks}
            for fut in dask_completed(futs):
                t = futs[fut]
                _save_batch(folder, t, fut.result())
                on_done(t)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            _save_batch(folder, t, run_task(cfg_json, ctx, engine, t))
            on_done(t)
        return
    import multiprocessing as mp

    # forkserver: forking a process that already runs threads (BLAS, Dask, nutpie) can deadlock the child
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("forkserver")) as pool:
        futs = {pool.submit(run_task, cfg_json, ctx, engine, t): t for t in tasks}
        for fut in as_completed(futs):
            t = futs[fut]
            _save_batch(folder, t, fut.result())
            on_done(t)


def _aggregate(cfg: DesignConfig, ctx: Context, tasks: list[Task], folder: Path) -> xr.Dataset:
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
    by = {}
    for t in tasks:
        by.setdefault((t.scenario, t.n), []).append(_load_batch(folder, t))
    for i, sc in enumerate(scen):
        for j, n in enumerate(sizes):
            parts = by[(sc, n)]
            s = np.concatenate([p["success"] for p in parts])
            look = np.concatenate([p["stop_look"] for p in parts])
            reason = np.concatenate([p["stop_reason"] for p in parts])
            used = np.concatenate([p["n_used"] for p in parts])
            T = len(s)
            succ[i, j] = s.mean()
            p_eff = min(max(s.mean(), 0.5 / T), 1 - 0.5 / T)  # a floor of half a trial, so 0/T is not reported as certain
            mcse[i, j] = np.sqrt(p_eff * (1 - p_eff) / T)
            exp_n[i, j] = used.mean()
            n_tr[i, j] = T
            for k in range(n_looks):
                stop_eff[i, j, k] = np.mean((look == k) & (reason == 1))
                stop_fut[i, j, k] = np.mean((look == k) & (reason == 2))
    return _dataset(cfg, ctx, succ, mcse, exp_n, n_tr, stop_eff, stop_fut)


def _dataset(cfg, ctx, succ, mcse, exp_n, n_tr, stop_eff, stop_fut) -> xr.Dataset:
    scen = list(ctx.truth)
    looks = [f"interim {k + 1} ({i.fraction:.0%})" for k, i in enumerate(cfg.interim)] + ["final"]
    return xr.Dataset(
        {"success_probability": (("scenario", "sample_size"), succ, {"long_name": "P(success)"}),
         "mcse": (("scenario", "sample_size"), mcse, {"long_name": "Monte Carlo standard error of P(success)"}),
         "expected_sample_size": (("scenario", "sample_size"), exp_n),
         "n_trials": (("scenario", "sample_size"), n_tr),
         "prob_stop_efficacy": (("scenario", "sample_size", "look"), stop_eff),
         "prob_stop_futility": (("scenario", "sample_size", "look"), stop_fut)},
        coords={"scenario": scen, "sample_size": cfg.design.sample_sizes, "look": looks,
                "scenario_label": ("scenario", [ctx.labels[s] for s in scen])},
        attrs={"endpoint": cfg.design.endpoint, "truth": ctx.truth_note, "analysis_prior": ctx.prior_note,
               "rule": _rule_text(cfg, ctx), "estimand": cfg.design.estimand},
    )


def _rule_text(cfg: DesignConfig, ctx: Context) -> str:
    eff = "the prevalence-weighted average effect" if cfg.design.estimand == "average" else f"the effect in {cfg.design.estimand} fractures"
    if cfg.design.endpoint == "secondary_procedure":
        eff = "the reduction in secondary procedures (risk difference, sacroplasty − PSFS)"
    txt = f"success if P({eff} > 0 | data) ≥ {ctx.threshold:g}"
    if ctx.rule == "dual":
        txt += f" and its posterior median ≥ {ctx.mcid:g}"
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


def run_design(cfg: DesignConfig, out: Path, scheduler: str | None = None, resume: bool = False, workers: int | None = None,
               progress=None, log=None) -> xr.Dataset:
    """Run a design and write its outputs to ``out``; returns the results Dataset."""
    from .output import write_outputs

    log = log or (lambda m: None)
    out = Path(out)
    config_text = design_to_toml(cfg)
    if out.exists() and not resume:
        raise BayesSacralError(f"{out} already exists; pass --resume to continue it or choose another --out")
    if out.exists() and resume:
        old = (out / "config.toml").read_text() if (out / "config.toml").exists() else None
        if old is not None and old != config_text:
            raise BayesSacralError(f"{out} was started with a different config; --resume needs the same one")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.toml", config_text)
    workers = workers or min(2, os.cpu_count() or 1)
    t0 = time.perf_counter()
    ctx = build_context(cfg)
    engine = cfg.engine()
    done_trials = 0
    if engine == "exact":
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
                    progress(1, 1, f"exact {sc} n = {n}")
        ds = _dataset(cfg, ctx, succ, mcse, np.tile(np.array(sizes, float), (len(scen), 1)), np.zeros_like(succ, dtype=int),
                      np.zeros((*succ.shape, 1)), np.zeros((*succ.shape, 1)))
        ds["mcse"].attrs["note"] = "exact: zero, or the Monte Carlo error over design-prior draws (assurance)"
    else:
        folder = out / "batches"
        folder.mkdir(exist_ok=True)
        tasks = make_tasks(cfg, ctx)
        todo = [t for t in tasks if not (folder / t.file).exists()] if resume else tasks
        if resume:
            log(f"resuming: {len(tasks) - len(todo)} of {len(tasks)} batches already done")
        total = sum(t.size for t in todo)

        def on_done(t):
            nonlocal done_trials
            done_trials += t.size
            if progress:
                progress(done_trials, total, f"{engine}: {t.scenario} n = {t.n}")

        _execute(todo, cfg, ctx, engine, folder, scheduler, workers, on_done)
        ds = _aggregate(cfg, ctx, tasks, folder)
    wall = time.perf_counter() - t0
    analyses = int(ds["n_trials"].sum()) * (len(cfg.interim) + 1) if engine != "exact" else 0
    manifest = {"format": "bayes-sacral-design/1", "name": cfg.design.name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "engine": engine, "scheduler": scheduler or f"local processes ({workers})", "seed": cfg.design.seed,
                "wall_time_s": round(wall, 3), "trials_computed_this_session": done_trials,
                "trial_analyses_per_second": round(done_trials * (len(cfg.interim) + 1) / wall, 1) if done_trials else None,
                "total_trial_analyses": analyses, "versions": versions(), "smallest_n": smallest_n(ds, cfg.design.target),
                "labels": ctx.labels, "truth": ctx.truth_note, "analysis_prior": ctx.prior_note}
    write_outputs(cfg, ctx, ds, out, manifest)
    log(f"{engine} engine: {wall:.1f} s")
    return ds


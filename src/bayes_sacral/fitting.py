"""Fit a resolved run config: data -> model -> draws -> diagnostics -> run folder."""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import xarray as xr

from .config import ResolvedRun, config_to_toml
from .data.source import load_study
from .inference import (
    THRESHOLDS,
    Diagnostics,
    SamplerSettings,
    child_seeds,
    combine_diagnostics,
    diagnose,
    sample,
    sample_replicates,
)
from .models import ModelInput
from .priors import IMPROPER, prior_text
from .store import DEFAULT_STORE, RUN_FORMAT, versions, write_run

__all__ = ["FitResult", "fit_run", "prepare_run", "build_run_model", "reusable_run"]


@dataclass
class FitResult:
    path: Path
    manifest: dict
    idata: xr.DataTree
    diagnostics: Diagnostics


def prepare_run(run: ResolvedRun) -> tuple[ModelInput, object]:
    """Load and validate the run's data and shape it for its model kind."""
    study = load_study(run.config.data.source, run.config.data.path, run.base_dir)
    return run.kind.prepare(study, run.options), study


def build_run_model(run: ResolvedRun, inp: ModelInput):
    return run.kind.build(inp, run.priors, run.options)


def fit_run(run: ResolvedRun, out_root: Path = DEFAULT_STORE, overwrite: bool = False, log=None, progressbar: bool = False) -> FitResult:
    """Fit one run and write its folder under ``out_root``.

    Parameters
    ----------
    run : ResolvedRun
        From :func:`bayes_sacral.config.load_configs`.
    out_root : Path
        The run store (default ``models/``).
    overwrite : bool
        Replace an existing run folder of the same name.
    log : callable, optional
        Called with short progress messages.
    """
    log = log or (lambda msg: None)
    cfg = run.config
    t0 = time.perf_counter()
    target = Path(out_root) / cfg.run.name
    if target.exists() and not overwrite:
        from .errors import BayesSacralError

        raise BayesSacralError(f"run folder {target} already exists; pass --overwrite to replace it or choose another run.name")
    inp, study = prepare_run(run)
    model = build_run_model(run, inp)
    t_build = time.perf_counter() - t0
    settings = SamplerSettings(**cfg.sampler.model_dump())
    improper = sorted(p for p, spec in run.priors.items() if spec.dist in IMPROPER)
    if improper and settings.prior_draws:
        # an improper prior has no draws: the prior groups are left out, and the manifest says why
        settings = SamplerSettings(**{**settings.__dict__, "prior_draws": 0})
    log(f"sampling {cfg.run.name}: {settings.chains} chains × ({settings.tune} tune + {settings.draws} draws), {settings.backend}")
    check_vars = run.kind.estimands(run.options) + list(run.kind.params(run.options))
    replicate_info = {}
    if inp.replicates:
        names = _data_names(model, inp)
        datasets = [{n: rep[v].values for n, v in names.items()} for rep in inp.replicates]
        log(f"  {len(datasets)} {inp.replicate_dim}s, one compiled model")
        idata, t_sample, diags = sample_replicates(model, datasets, settings, cfg.run.seed, inp.replicate_dim)
        diag = combine_diagnostics(diags, idata["posterior"].sizes["chain"])
        observed = {rv.name: _IPD_DATA[data] for rv, data in _observed_data_names(model).items()}
        idata = _with_replicate_groups(idata, inp, check_vars, observed)
        replicate_info = {"dim": inp.replicate_dim, "count": len(datasets),
                          "statuses": [d.status for d in diags]}
    else:
        idata, t_sample = sample(model, settings, cfg.run.seed, progressbar=progressbar)
        diag = diagnose(idata, check_vars)
    config_toml = config_to_toml(run)
    options = run.options.model_dump(mode="json")
    manifest = {
        "format": RUN_FORMAT,
        "run": cfg.run.name,
        "description": cfg.run.description,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bayes-sacral", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("bayes-sacral") else "",
        "model": options,
        "model_description": run.kind.describe(run.options),
        "estimands": run.kind.estimands(run.options),
        "effect_variables": run.kind.effect_variables(run.options),
        "no_moment_variables": run.kind.no_moment_variables(run.options),
        "prior_set": run.prior_set,
        "priors": {p: {"dist": s.dist, "params": s.params, "text": prior_text(s), "justification": s.justification,
                       "overridden": p in run.overridden} for p, s in run.priors.items()},
        "prior_set_description": run.kind.prior_sets(run.options)[run.prior_set].description,
        "prior_set_source": run.kind.prior_sets(run.options)[run.prior_set].source,
        "seed": cfg.run.seed,
        "child_seeds": dict(zip(["posterior", "prior", "posterior_predictive", "spare"], child_seeds(cfg.run.seed), strict=True)),
        "data": {"source": study.source, "path": study.path, "sha256": study.sha256, "label": study.label(),
                 "assumptions": inp.assumptions},
        "config_sha256": hashlib.sha256(config_toml.encode()).hexdigest(),
        "sampler": settings.__dict__,
        "decision": {"prob": cfg.decision.prob,
                     "thresholds": {k: {"value": v, "variables": vs, "note": note} for k, (v, vs, note) in run.thresholds().items()}},
        "versions": versions(),
        "wall_time_s": {"build": round(t_build, 3), "sampling": round(t_sample, 3), "total": round(time.perf_counter() - t0, 3)},
        "diagnostics": diag.to_dict(),
        "replicates": replicate_info,
        "prior_predictive": (f"skipped: improper prior on {', '.join(improper)}" if improper else "sampled"),
        "diagnostic_thresholds": THRESHOLDS,
    }
    idata.attrs.update({"bayes_sacral_run": cfg.run.name, "bayes_sacral_seed": cfg.run.seed, "data_sha256": study.sha256})
    path = write_run(Path(out_root), cfg.run.name, idata, config_toml, manifest, overwrite=overwrite)
    return FitResult(path, manifest, idata, diag)


def reusable_run(run: ResolvedRun, out_root: Path = DEFAULT_STORE) -> FitResult | None:
    """The stored run of this config if refitting it would reproduce it exactly, else None.

    Reused only when the stored run was written by this very code and stack (``versions()``, which includes a
    fingerprint of the package's own files), from the same resolved config (with its seed) and the same data
    (SHA-256), and is complete. Same config + seed + code give identical draws, so reusing it is not an approximation.
    """
    from .store import Run

    target = Path(out_root) / run.config.run.name
    if not (target / "manifest.json").is_file() or not (target / "idata.nc").is_file():
        return None
    try:
        stored = Run(target)
        m = stored.manifest
        study = load_study(run.config.data.source, run.config.data.path, run.base_dir)
    except Exception:  # an unreadable folder or data is refitted (and its errors surface there)
        return None
    if (m.get("format") != RUN_FORMAT or m.get("versions") != versions()
            or m.get("config_sha256") != hashlib.sha256(config_to_toml(run).encode()).hexdigest()
            or m.get("data", {}).get("sha256") != study.sha256):
        return None
    return FitResult(target, m, stored.idata(), Diagnostics(**m["diagnostics"]))


# Model data containers that take a replicate's values: pm.Data name -> replicate Dataset variable.
_IPD_DATA = {"msts_pre": "msts_pre", "msts_post_obs": "msts_post", "psfs": "psfs", "fracture_idx": "fracture_idx", "arm_idx": "arm_idx",
             "item_pre": "item_pre", "item_post_obs": "item_post"}


def _data_names(model, inp: ModelInput) -> dict[str, str]:
    names = {n: v for n, v in _IPD_DATA.items() if n in model.named_vars and v in inp.data}
    if not names:
        raise ValueError("this model has no replicate data containers")
    return names


def _observed_data_names(model) -> dict:
    from pytensor.graph.traversal import ancestors

    data_names = {d.name for d in model.data_vars}
    return {rv: next(a.name for a in ancestors([model.rvs_to_values[rv]]) if a.name in data_names) for rv in model.observed_RVs}


def _with_replicate_groups(idata: xr.DataTree, inp: ModelInput, check_vars: list[str], observed: dict[str, str]) -> xr.DataTree:
    """Add observed data of the first replicate, every replicate's data, and the between-replicate spread."""
    import numpy as np

    dim = inp.replicate_dim
    first = inp.replicates[0]
    obs = xr.Dataset({rv: first[var] for rv, var in observed.items()})
    # patient labels differ between replicates (R001-..., R002-...): align by position, keep the labels as data
    allreps = xr.concat([r.drop_vars(["arm", "fracture", "domain"], errors="ignore")
                         .assign(patient_id=("patient", r["patient"].values.astype(str))).drop_vars("patient")
                         for r in inp.replicates], dim=dim, join="exact")
    allreps = allreps.assign_coords({dim: np.arange(1, len(inp.replicates) + 1)})
    post = idata["posterior"].to_dataset()
    keep = [v for v in check_vars if v in post]
    by = post[keep].groupby(dim)
    spread = xr.Dataset({f"{v}__mean": by.mean(["chain", "draw"])[v] for v in keep}
                        | {f"{v}__sd": by.std(["chain", "draw"])[v] for v in keep})
    out = idata.copy()
    out["observed_data"] = xr.DataTree(obs)
    out[f"{dim}_data"] = xr.DataTree(allreps)
    out[f"{dim}_spread"] = xr.DataTree(spread)
    return out

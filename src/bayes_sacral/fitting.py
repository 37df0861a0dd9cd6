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
from .inference import THRESHOLDS, Diagnostics, SamplerSettings, child_seeds, diagnose, sample
from .models import ModelInput
from .priors import prior_text
from .store import DEFAULT_STORE, RUN_FORMAT, versions, write_run

__all__ = ["FitResult", "fit_run", "prepare_run", "build_run_model"]


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
    log(f"sampling {cfg.run.name}: {settings.chains} chains × ({settings.tune} tune + {settings.draws} draws), {settings.backend}")
    idata, t_sample = sample(model, settings, cfg.run.seed, progressbar=progressbar)
    diag = diagnose(idata, run.kind.estimands(run.options) + list(run.kind.params(run.options)))
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
        "diagnostic_thresholds": THRESHOLDS,
    }
    idata.attrs.update({"bayes_sacral_run": cfg.run.name, "bayes_sacral_seed": cfg.run.seed, "data_sha256": study.sha256})
    path = write_run(Path(out_root), cfg.run.name, idata, config_toml, manifest, overwrite=overwrite)
    return FitResult(path, manifest, idata, diag)

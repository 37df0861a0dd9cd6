"""Full-model engine: the reanalysis' own PyMC model (beta-binomial MSTS with the preoperative covariate and partial
pooling, by default) refitted to every simulated trial, compiled once per worker process.

Patient data are simulated at the patient level: the preoperative score from a rounded normal per stratum (0-30), the
postoperative score from the truth: fixed effects through a bounded, rounded normal model, or the design-prior draws
of a fitted run through that run's own likelihood (beta-binomial or normal).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..config import resolve
from ..inference import Refitter
from ..models.msts import ipd_dataset
from ..vocabulary import ARMS, FRACTURES, MSTS_MAX_POINTS
from .context import Context, psfs_count
from .simulate import _apply_looks, _draw_index, looks_for

__all__ = ["full_model_batch", "simulate_patients", "analysis_run"]

_COMPILED: dict = {}


def analysis_run(fm: dict):
    """A resolved run config for the analysis model (IPD route) with the design's full-model options."""
    return resolve({"run": {"name": "design-analysis", "seed": 1},
                    "data": {"source": "ipd", "path": "unused.csv"},
                    "model": {"kind": "msts", "route": "ipd", "likelihood": fm["likelihood"], "pooling": fm["pooling"]},
                    "priors": {"set": fm["prior_set"]}})


def simulate_patients(ctx: Context, scenario: str, rng: np.random.Generator, N: int, draw: int, preop: dict):
    """One trial's patients as a frame-like dict (patient_id, arm, fracture, msts_pre, msts_post)."""
    tr = ctx.truth[scenario]
    frac = (rng.random(N) >= ctx.prevalence[0]).astype(int)
    m = np.zeros(N, dtype=int)
    for f in (0, 1):
        is_f = frac == f
        m[is_f] = np.cumsum(is_f)[is_f]
    psfs = (psfs_count(m, ctx.q) - psfs_count(m - 1, ctx.q)).astype(int)
    pre = np.clip(np.round(rng.normal(np.asarray(preop["mean"])[frac], preop["sd"])), 0, MSTS_MAX_POINTS).astype(int)
    d = draw % len(tr["delta"])
    kind = str(tr["kind"][0])
    slope = float(np.atleast_1d(tr["preop_slope"])[d % len(np.atleast_1d(tr["preop_slope"]))])
    intercept = np.atleast_2d(tr["intercept"])[d % len(np.atleast_2d(tr["intercept"]))]
    if kind == "beta_binomial":
        te = tr["treatment_effect_logit"][d]
        phi = float(tr["phi"][d])
        p = special.expit(intercept[frac] + te[frac] * psfs + slope * (pre - 15))
        post = rng.binomial(MSTS_MAX_POINTS, rng.beta(p * phi, (1 - p) * phi))
    else:
        te = tr["delta"][d]
        sig = float(np.atleast_1d(tr["sigma"])[d % len(np.atleast_1d(tr["sigma"]))])
        mu = intercept[frac] + te[frac] * psfs + slope * (pre - 15)
        post = np.clip(np.round(mu + sig * rng.standard_normal(N)), 0, MSTS_MAX_POINTS).astype(int)
    return {"patient_id": np.array([f"T{i:04d}" for i in range(N)]), "arm": np.array(ARMS)[1 - psfs],
            "fracture": np.array(FRACTURES)[frac], "msts_pre": pre, "msts_post": post}


def _refitter(fm: dict, template: dict):
    key = tuple(sorted(fm.items()))
    if key not in _COMPILED:
        import pandas as pd

        run = analysis_run(fm)
        data = ipd_dataset(pd.DataFrame(template))
        data.attrs["route"] = "ipd"
        from ..models.base import ModelInput

        model = run.kind.build(ModelInput(data, []), run.priors, run.options)
        _COMPILED[key] = Refitter(model)
    return _COMPILED[key]


def full_model_batch(ctx: Context, scenario: str, N: int, fractions: list[float], interims: list, T: int, seed, offset: int,
                     fm: dict, preop: dict) -> dict:
    """Simulate T trials and refit the full model at every look of each; per-trial arrays as the vectorised engine."""
    rng = np.random.default_rng(seed)
    looks = looks_for(fractions, N)
    D = len(ctx.truth[scenario]["delta"])
    draws = _draw_index(offset, T, D)
    trials = [simulate_patients(ctx, scenario, rng, N, int(draws[t]), preop) for t in range(T)]
    refit = _refitter(fm, trials[0])
    fit_seeds = rng.integers(0, 2**31 - 1, size=(T, len(looks)))
    p0 = np.zeros((len(looks), T))
    pm = np.zeros((len(looks), T))
    valid = np.zeros((len(looks), T), dtype=bool)
    w = ctx.weights
    for t, trial in enumerate(trials):
        for k, n in enumerate(looks):
            sub = {key: val[:n] for key, val in trial.items()}
            fr = np.array([FRACTURES.index(f) for f in sub["fracture"]])
            arm = np.array([ARMS.index(a) for a in sub["arm"]])
            need = np.where(w > 0)[0]
            if any(((arm == a) & (fr == f)).sum() == 0 for a in (0, 1) for f in need):
                continue
            data = {"msts_pre": sub["msts_pre"].astype(float), "msts_post_obs": sub["msts_post"], "psfs": (arm == 0).astype(float),
                    "fracture_idx": fr, "arm_idx": arm}
            post, _div = refit.fit(data, int(fit_seeds[t, k]), draws=fm["draws"], tune=fm["tune"], chains=fm["chains"],
                                   target_accept=fm["target_accept"])
            te = np.asarray(post["treatment_effect"].transpose("chain", "draw", "fracture").values).reshape(-1, 2)
            est = te @ w
            p0[k, t] = np.mean(est > 0)
            pm[k, t] = np.mean(est > ctx.mcid)
            valid[k, t] = True

    def probs_at(k):
        return p0[k], pm[k], valid[k]

    def ppos_at(k, mask):
        raise ValueError("predictive futility is not available with the full-model engine (it would need nested refits)")

    return _apply_looks(ctx, looks, interims, probs_at, ppos_at, T)

"""Full-model engine: the reanalysis' own PyMC score model (beta-binomial with the score before treatment as covariate
and partial pooling over strata, by default; IPD route) refitted to every simulated trial, compiled once per worker
process.

Patients are simulated at the patient level with the study card's labels: the stratum from the prevalences, the arm from
the allocation sequence, the score before treatment from a rounded normal per stratum (clipped to the card's bounds),
the score after from the truth: fixed effects through a bounded, rounded normal model, or the design-prior draws of a
fitted run through that run's own likelihood (beta-binomial or normal). The model is the one :func:`bayes_sacral.config.resolve`
builds for the design's card and endpoint; the data go through :func:`bayes_sacral.models.score.score_dataset` and the
model's ``data_map``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from ..config import resolve
from ..inference import Refitter
from ..models.base import ModelInput
from ..models.score import score_dataset
from .context import Context
from .simulate import _apply_looks, _draw_index, allocate, draw_strata, looks_for

__all__ = ["full_model_batch", "simulate_patients", "analysis_run"]

_COMPILED: dict = {}


def analysis_run(fm: dict, study, outcome: str):
    """A resolved run config for the analysis model (score model, IPD route) with the design's full-model options."""
    doc = {"run": {"name": "design-analysis", "seed": 1},
           "data": {"source": "ipd"},
           "model": {"kind": "score", "outcome": outcome, "route": "ipd", "likelihood": fm["likelihood"], "pooling": fm["pooling"]},
           "priors": {"set": fm["prior_set"]}}
    return resolve(doc, "<design full_model>", study=study, data_in_memory=True)


def simulate_patients(ctx: Context, scenario: str, rng: np.random.Generator, N: int, draw: int, preop: dict) -> pd.DataFrame:
    """One trial's patients as a frame with the card's columns (patient_id, arm, <strata>, <outcome>_pre, <outcome>_post)."""
    card = ctx.card
    lo, hi, mid = ctx.bounds
    tr = ctx.truth[scenario]
    frac = draw_strata(ctx, rng, N).astype(int)
    treat = allocate(ctx, frac).astype(int)
    pre = np.clip(np.round(rng.normal(np.asarray(preop["mean"], float)[frac], preop["sd"])), lo, hi).astype(int)
    d = draw % len(tr["delta"])
    kind = str(tr["kind"][0])
    slope = float(np.atleast_1d(tr["preop_slope"])[d % len(np.atleast_1d(tr["preop_slope"]))])
    intercept = np.atleast_2d(tr["intercept"])[d % len(np.atleast_2d(tr["intercept"]))]
    if kind == "beta_binomial":
        te = tr["treatment_effect_logit"][d]
        phi = float(tr["phi"][d])
        p = special.expit(intercept[frac] + te[frac] * treat + slope * (pre - mid))
        post = lo + rng.binomial(int(hi - lo), rng.beta(p * phi, (1 - p) * phi))
    else:
        te = tr["delta"][d]
        sig = float(np.atleast_1d(tr["sigma"])[d % len(np.atleast_1d(tr["sigma"]))])
        mu = intercept[frac] + te[frac] * treat + slope * (pre - mid)
        post = np.clip(np.round(mu + sig * rng.standard_normal(N)), lo, hi).astype(int)
    arms = np.array(card.arm_levels)
    return pd.DataFrame({"patient_id": [f"T{i:04d}" for i in range(N)], "arm": arms[1 - treat],
                         card.stratum_dim: np.array(ctx.levels)[frac], f"{ctx.outcome}_pre": pre, f"{ctx.outcome}_post": post})


def _refitter(ctx: Context, fm: dict, template: pd.DataFrame):
    key = (ctx.card.sha256, ctx.outcome, tuple(sorted(fm.items())))
    if key not in _COMPILED:
        from ..study import Study

        run = analysis_run(fm, Study(ctx.card), ctx.outcome)
        data, _ = score_dataset(template, run.spec)
        data.attrs["route"] = "ipd"
        model = run.kind.build(ModelInput(data, []), run.priors, run.spec)
        _COMPILED[key] = (Refitter(model), run.spec, run.kind.data_map(run.spec))
    return _COMPILED[key]


def full_model_batch(ctx: Context, scenario: str, N: int, fractions: list[float], interims: list, T: int, seed, offset: int,
                     fm: dict, preop: dict) -> dict:
    """Simulate T trials and refit the full model at every look of each; per-trial arrays as the vectorised engine."""
    rng = np.random.default_rng(seed)
    looks = looks_for(fractions, N)
    D = len(ctx.truth[scenario]["delta"])
    draws = _draw_index(offset, T, D)
    trials = [simulate_patients(ctx, scenario, rng, N, int(draws[t]), preop) for t in range(T)]
    refit, spec, dmap = _refitter(ctx, fm, trials[0])
    fit_seeds = rng.integers(0, 2**31 - 1, size=(T, len(looks)))
    p0 = np.zeros((len(looks), T))
    pm = np.zeros((len(looks), T))
    valid = np.zeros((len(looks), T), dtype=bool)
    w = ctx.weights
    need = np.where(w > 0)[0]
    sdim = ctx.card.stratum_dim
    for t, trial in enumerate(trials):
        for k, n in enumerate(looks):
            data, _ = score_dataset(trial.iloc[:n], spec)
            arm, st = data["arm_idx"].values, data["stratum_idx"].values
            if any(((arm == a) & (st == s)).sum() == 0 for a in (0, 1) for s in need):
                continue
            post, _div = refit.fit({c: data[v].values for c, v in dmap.items()}, int(fit_seeds[t, k]), draws=fm["draws"],
                                   tune=fm["tune"], chains=fm["chains"], target_accept=fm["target_accept"])
            te = np.asarray(post["treatment_effect"].transpose("chain", "draw", sdim).values).reshape(-1, ctx.K)
            benefit = ctx.benefit(te @ w)
            p0[k, t] = np.mean(benefit > 0)
            pm[k, t] = np.mean(benefit > ctx.mcid)
            valid[k, t] = True

    def probs_at(k):
        return p0[k], pm[k], valid[k]

    def ppos_at(k, mask):
        raise ValueError("predictive futility is not available with the full-model engine (it would need nested refits)")

    return _apply_looks(ctx, looks, interims, probs_at, ppos_at, T)

"""Full-model engine: the reanalysis' own PyMC score model (beta-binomial with the score before treatment as covariate
and partial pooling over strata, by default; IPD route) refitted to every simulated trial, compiled once per worker
process.

Each analysis uses the fast tier by default (``method = "laplace"``: nested Laplace + PSIS, :mod:`bayes_sacral.laplace`)
and is refitted by NUTS when Pareto k̂ or the importance ESS fails; ``method = "nuts"`` refits every trial by NUTS. Every
fit's diagnostics are kept per trial (escalated, flagged, k̂), a validation subsample can be refitted by NUTS as a
reference, and a probability close to a decision threshold is estimated again with more draws.

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
from .simulate import allocate, apply_looks, draw_index, draw_strata, looks_for

__all__ = ["full_model_batch", "simulate_patients", "analysis_run", "Analyser", "analyser", "decision_cuts"]

_COMPILED: dict = {}
#: A posterior probability within REFINE_SE Monte Carlo standard errors of a threshold it is compared with is estimated
#: again with REFINE times the draws, up to REFINE_STEPS times (NUTS or fast tier): decisions near a threshold are the
#: ones Monte Carlo error flips.
REFINE_SE = 3.0
REFINE = 4
REFINE_STEPS = 2


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


class Analyser:
    """The analysis model of one (card, endpoint, full-model options), built once per process: its NUTS refitter and its
    fast tier (:class:`bayes_sacral.laplace.LaplaceIS`), each compiled on first use."""

    def __init__(self, ctx: Context, fm: dict, template: pd.DataFrame, cuts: tuple = ((), ())):
        from ..study import Study

        run = analysis_run(fm, Study(ctx.card), ctx.outcome)
        data, _ = score_dataset(template, run.spec)
        data.attrs["route"] = "ipd"
        self.model = run.kind.build(ModelInput(data, []), run.priors, run.spec)
        self.spec = run.spec
        self.dmap = run.kind.data_map(run.spec)
        self.fm = fm
        self.ctx = ctx
        self.cuts = cuts
        self._refit = None
        self._fast = None

    @property
    def refit(self) -> Refitter:
        if self._refit is None:
            self._refit = Refitter(self.model)
        return self._refit

    @property
    def fast(self):
        if self._fast is None:
            from ..laplace import LaplaceIS

            self._fast = LaplaceIS(self.model, ["treatment_effect"])
        return self._fast

    def borderline(self, p0: float, se0: float, pm: float, sem: float) -> bool:
        """Whether a probability is within ``REFINE_SE`` Monte Carlo standard errors of a threshold it is compared with."""
        return (any(abs(p0 - c) < REFINE_SE * se0 for c in self.cuts[0])
                or any(abs(pm - c) < REFINE_SE * sem for c in self.cuts[1]))

    def _nuts_once(self, data: dict, seed: int, draws: int):
        from arviz_stats.base.array import array_stats

        fm, ctx = self.fm, self.ctx
        post, div = self.refit.fit(data, seed, draws=draws, tune=fm["tune"], chains=fm["chains"], target_accept=fm["target_accept"])
        te = np.asarray(post["treatment_effect"].transpose("chain", "draw", ctx.card.stratum_dim).values)
        b = ctx.benefit(te @ ctx.weights)  # (chain, draw)
        flagged = div > 0
        if b.shape[0] > 1 and np.ptp(b) > 0:
            flagged = flagged or float(array_stats.rhat(b)) > 1.01 or float(array_stats.ess(b)) < 100
        out = []
        for cut in (0.0, ctx.mcid):
            e = (b > cut).astype(float)
            p = float(e.mean())
            ess = float(array_stats.ess(e)) if 0 < p < 1 and e.shape[0] > 1 else float(e.size)
            out += [p, float(np.sqrt(p * (1 - p) / max(ess, 1.0)))]
        return (*out, bool(flagged))

    def nuts(self, data: dict, seed: int, draws: int) -> tuple[float, float, bool]:
        """NUTS refit: P(benefit > 0), P(benefit > MCID) and whether its diagnostics fail (a divergence, R-hat > 1.01 or
        bulk ESS < 100 of the decision quantity). A probability within ``REFINE_SE`` MCSE of a decision threshold is
        estimated again with ``REFINE`` times the draws."""
        p0, se0, pm, sem, flagged = self._nuts_once(data, seed, draws)
        for step in range(1, REFINE_STEPS + 1):
            if not self.borderline(p0, se0, pm, sem):
                break
            p0, se0, pm, sem, flagged = self._nuts_once(data, seed + step, REFINE**step * draws)
        return p0, pm, flagged

    def analyse(self, data: dict, seed: int) -> dict:
        """One analysis by the configured method; the fast tier escalates to NUTS when its diagnostics fail."""
        fm, ctx = self.fm, self.ctx
        if fm["method"] == "nuts":
            p0, pm, flagged = self.nuts(data, seed, fm["draws"])
            return {"p0": p0, "pm": pm, "escalated": False, "flagged": flagged, "khat": np.nan}
        for step in range(REFINE_STEPS + 1):
            f = self.fast.fit(data, seed + step, draws=REFINE**step * fm["approx_draws"])
            if not f.ok(fm["khat_max"], fm["min_ess"]):
                break
            b = ctx.benefit(f.draws["treatment_effect"] @ ctx.weights)
            (p0, se0), (pm, sem) = f.prob_se(b > 0), f.prob_se(b > ctx.mcid)
            if step == REFINE_STEPS or not self.borderline(p0, se0, pm, sem):
                return {"p0": p0, "pm": pm, "escalated": False, "flagged": False, "khat": f.khat}
        p0, pm, flagged = self.nuts(data, seed, fm["draws"])
        return {"p0": p0, "pm": pm, "escalated": True, "flagged": flagged, "khat": f.khat}


def decision_cuts(ctx: Context, interims: list) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The thresholds P(benefit > 0) and P(benefit > MCID) are compared with by the decision rule and the interim looks."""
    c0 = [ctx.threshold] + [i.efficacy for i in interims if i.efficacy is not None]
    cm = ([0.5] if ctx.rule == "dual" else []) + [i.futility for i in interims
                                                 if i.futility is not None and i.futility_rule == "posterior"]
    return tuple(sorted(set(c0))), tuple(sorted(set(cm)))


def analyser(ctx: Context, fm: dict, template: pd.DataFrame, cuts: tuple = ((), ())) -> Analyser:
    """The process-wide :class:`Analyser` for these options (compiled models are reused by every batch)."""
    key = (ctx.card.sha256, ctx.outcome, tuple(sorted(fm.items())), cuts)
    if key not in _COMPILED:
        _COMPILED[key] = Analyser(ctx, fm, template, cuts)
    return _COMPILED[key]


def full_model_batch(ctx: Context, scenario: str, N: int, fractions: list[float], interims: list, T: int, seed, offset: int,
                     fm: dict, preop: dict) -> dict:
    """Simulate T trials and refit the full model at every look of each; per-trial arrays as the vectorised engine plus
    the fit diagnostics of :data:`bayes_sacral.design.simulate.FIT_FIELDS`.

    Trials whose index in their (scenario, sample size) cell is below ``validate_trials`` are also refitted by NUTS with
    ``validation_draws`` per chain at every look; their reference decision goes to ``ref_success``."""
    rng = np.random.default_rng(seed)
    looks = looks_for(fractions, N)
    D = len(ctx.truth[scenario]["delta"])
    draws = draw_index(offset, T, D)
    trials = [simulate_patients(ctx, scenario, rng, N, int(draws[t]), preop) for t in range(T)]
    an = analyser(ctx, fm, trials[0], decision_cuts(ctx, interims))
    fit_seeds = rng.integers(0, 2**31 - 1, size=(T, len(looks)))
    ref_seeds = rng.integers(0, 2**31 - 1, size=(T, len(looks)))
    n_ref = int(np.clip(fm.get("validate_trials", 0) - offset, 0, T))
    L = len(looks)
    p0, pm = np.zeros((L, T)), np.zeros((L, T))
    r0, rm = np.zeros((L, T)), np.zeros((L, T))
    valid = np.zeros((L, T), dtype=bool)
    escalated = np.zeros(T, dtype=bool)
    flagged = np.zeros(T, dtype=bool)
    khat = np.full(T, np.nan)
    need = np.where(ctx.weights > 0)[0]
    for t, trial in enumerate(trials):
        for k, n in enumerate(looks):
            data, _ = score_dataset(trial.iloc[:n], an.spec)
            arm, st = data["arm_idx"].values, data["stratum_idx"].values
            if any(((arm == a) & (st == s)).sum() == 0 for a in (0, 1) for s in need):
                continue
            obs = {c: data[v].values for c, v in an.dmap.items()}
            res = an.analyse(obs, int(fit_seeds[t, k]))
            p0[k, t], pm[k, t] = res["p0"], res["pm"]
            escalated[t] |= res["escalated"]
            flagged[t] |= res["flagged"]
            khat[t] = np.fmax(khat[t], res["khat"])  # the largest k̂ over the trial's looks (nan: none)
            valid[k, t] = True
            if t < n_ref:
                r0[k, t], rm[k, t], _ = an.nuts(obs, int(ref_seeds[t, k]), fm["validation_draws"])

    def ppos_at(k, mask):
        raise ValueError("predictive futility is not available with the full-model engine (it would need nested refits)")

    out = apply_looks(ctx, looks, interims, lambda k: (p0[k], pm[k], valid[k]), ppos_at, T)
    ref = apply_looks(ctx, looks, interims, lambda k: (r0[k], rm[k], valid[k]), ppos_at, T)
    in_ref = np.arange(T) < n_ref
    out.update(escalated=escalated, flagged=flagged, khat=khat,
               ref_success=np.where(in_ref, ref["success"].astype(np.int8), -1).astype(np.int8),
               ref_prob=np.where(in_ref, ref["prob_benefit"], np.nan))
    return out

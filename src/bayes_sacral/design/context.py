"""Everything a design's engines share, prepared once: truth (fixed or design-prior draws), analysis prior, allocation.

Orientation. The engines work with *benefits*: for a score, ``benefit = direction × (treatment − control)`` (direction =
+1 when higher is better, −1 otherwise), which is what the decision rule is about; for an event, the probabilities are
stored as probabilities of the *unfavourable* result (``u = p`` for an adverse event, ``u = 1 − p`` for a desirable
one), so that benefit = u_control − u_treatment in every case and one set of tables serves both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import BayesSacralError
from ..store import DEFAULT_STORE, find_run
from .analysis import BINARY_PRIORS, BetaMixture, NormalPrior
from .config import DesignConfig

__all__ = ["Context", "build_context", "treatment_count", "scenarios", "NO_EFFECT"]

#: Name of the type-I-error scenario (a string that survives CSV round trips: not "null", "NA" or "nan").
NO_EFFECT = "no_effect"


def treatment_count(m: np.ndarray | int, q: float) -> np.ndarray:
    """Treatment patients among the first m of a sequence under the deterministic allocation (round half up of q·m)."""
    return np.floor(np.asarray(m) * q + 0.5).astype(np.int32)


@dataclass
class Context:
    """Shared inputs of the engines (picklable: sent to worker processes and Dask workers)."""

    kind: str  # "score" | "event"
    levels: list[str]
    q: float  # share allocated to treatment
    scheme: str  # "stratified" | "simple"
    prevalence: np.ndarray  # (K,)
    weights: np.ndarray  # estimand weights over strata (K,)
    direction: int  # +1 higher is better, −1 lower is better
    threshold: float
    mcid: float  # benefit threshold of the dual rule and posterior futility (0 when not needed)
    rule: str
    prior_name: str
    normal_prior: NormalPrior | None = None
    sigma_analysis: float = 1.0  # residual SD the known-sigma analyses plug in
    binary_prior: tuple[BetaMixture, BetaMixture] | None = None  # (treatment, control), oriented (see module doc)
    # truth per scenario: name -> dict of arrays (one row per design-prior draw; fixed truth has one row)
    #   score: delta (D, K) treatment − control on the score's scale, sigma (D,), intercept (D, K), preop_slope (D,), kind
    #   event: u_t, u_c (D, K): probabilities of the unfavourable result
    truth: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    truth_note: str = ""
    prior_note: str = ""
    # for the full-model engine: the card, the endpoint and its bounds
    card: object = None
    outcome: str = ""
    bounds: tuple[float, float, float] = (0.0, 1.0, 0.5)  # min, max, midpoint

    @property
    def K(self) -> int:
        return len(self.levels)

    def benefit(self, delta: np.ndarray) -> np.ndarray:
        """Treatment − control on the score's scale -> benefit (positive = better)."""
        return self.direction * np.asarray(delta, float)


def scenarios(ctx: Context) -> list[str]:
    return list(ctx.truth)


def _run_draws(ref: str, n: int, seed: int, cfg: DesignConfig, what: str):
    """Posterior draws of a fitted run, checked against the design's study (same outcome, same strata)."""
    r = find_run(ref, DEFAULT_STORE)
    rc = r.card
    card = cfg.card
    outcome = r.manifest.get("outcome")
    if outcome is not None and outcome != cfg.endpoint:
        raise BayesSacralError(f"{what}: run {r.name} analysed {outcome}, not the design's endpoint {cfg.endpoint}")
    if rc.stratum_levels != card.stratum_levels or rc.stratum_dim != card.stratum_dim:
        raise BayesSacralError(f"{what}: run {r.name} has strata {rc.stratum_dim} = {rc.stratum_levels}; the design's study has "
                               f"{card.stratum_dim} = {card.stratum_levels}")
    post = r.idata["posterior"].to_dataset().stack(sample=("chain", "draw"))
    total = post.sizes["sample"]
    idx = np.random.default_rng(seed).choice(total, size=min(n, total), replace=False) if n < total else np.arange(total)
    return r, post.isel(sample=np.sort(idx))


def _by_level(da, dim: str, levels: list[str]) -> np.ndarray:
    """(draws, K) from a posterior variable with the strata dim."""
    return np.stack([da.sel({dim: lev}).values for lev in levels], axis=1)


def _levels_text(card, values: dict[str, float], unit: str = "") -> str:
    unit = f" {unit}" if unit else ""
    if not card.stratified:
        return f"{values[card.stratum_levels[0]]:g}{unit}"
    return " and ".join(f"{values[lev]:g} ({card.stratum_label(lev)})" for lev in card.stratum_levels) + unit


def build_context(cfg: DesignConfig) -> Context:
    d = cfg.design
    card = cfg.card
    levels = card.stratum_levels
    K = len(levels)
    o = cfg.outcome
    prev = np.array([cfg.prevalence[lev] for lev in levels])
    weights = prev.copy() if d.estimand == "average" else np.array([1.0 if lev == d.estimand else 0.0 for lev in levels])
    ctx = Context(kind=cfg.outcome_kind, levels=list(levels), q=d.allocation / (1 + d.allocation), scheme=d.allocation_scheme,
                  prevalence=prev, weights=weights, direction=o.direction, threshold=cfg.decision.threshold,
                  mcid=float(cfg.mcid) if cfg.mcid is not None else 0.0, rule=cfg.decision.rule, prior_name=cfg.analysis_prior,
                  card=card, outcome=cfg.endpoint)
    t = cfg.truth
    T, C = card.arm_label(card.arms.treatment), card.arm_label(card.arms.control)
    label = card.outcome_label(cfg.endpoint)
    sdim = card.stratum_dim
    if ctx.kind == "score":
        ctx.bounds = (float(o.min), float(o.max), float(o.midpoint))
        mt = cfg.truth_of()
        ctx.sigma_analysis = float(mt.sigma)
        if t.source == "fixed":
            delta = np.array([[mt.treatment_effect[lev] for lev in levels]])
            sig = np.array([float(mt.sigma)])
            extra = {"intercept": np.array([[mt.intercept[lev] for lev in levels]]), "preop_slope": np.array([mt.preop_slope]),
                     "kind": np.array(["fixed"])}
            eff = _levels_text(card, mt.treatment_effect, f"{label} {o.unit}".strip())
            ctx.truth_note = (f"fixed effect{'s' if K > 1 else ''} {eff} ({T} − {C}; {'higher' if o.higher_is_better else 'lower'} is better), "
                              f"residual SD {mt.sigma:g}")
            ctx.labels["design"] = "conditional power"
        else:
            r, post = _run_draws(t.run, t.draws, d.seed, cfg, "truth.run")
            if "sigma" not in post or post["sigma"].ndim > 1:
                if cfg.engine() != "full_model":
                    raise BayesSacralError(f"design prior from run {r.name}: the exact and vectorized engines need a normal or student_t run "
                                           "with a common sigma; use engine = full_model for beta-binomial runs")
            delta = _by_level(post["treatment_effect"], sdim, levels)
            sig = post["sigma"].values if "sigma" in post and post["sigma"].ndim == 1 else np.full(len(delta), float(mt.sigma))
            ctx.sigma_analysis = float(np.mean(sig))
            lik = r.manifest.get("model", {}).get("likelihood", "normal")
            extra = {"intercept": _by_level(post["intercept"], sdim, levels), "preop_slope": post["preop_slope"].values,
                     "kind": np.array([lik])}
            if lik == "beta_binomial":
                extra["treatment_effect_logit"] = _by_level(post["treatment_effect_logit"], sdim, levels)
                extra["phi"] = post["phi"].values
            ctx.truth_note = f"design prior: {len(delta)} posterior draws of run {r.name}"
            ctx.labels["design"] = "assurance (probability of success)"
        ctx.truth["design"] = {"delta": delta, "sigma": sig, **extra}
        if t.no_effect:
            ne = {**ctx.truth["design"], "delta": np.zeros_like(delta)}
            if "treatment_effect_logit" in ne:
                ne["treatment_effect_logit"] = np.zeros_like(ne["treatment_effect_logit"])
            ctx.truth[NO_EFFECT] = ne
            ctx.labels[NO_EFFECT] = "type I error (no effect)"
        for e in d.oc_effects:
            # oc effects are benefits: the raw effect is direction × benefit
            ctx.truth[f"oc_{e:g}"] = {**ctx.truth["design"], "delta": np.full((1, K), o.direction * float(e)),
                                      "sigma": np.array([float(np.mean(sig))])}
            ctx.labels[f"oc_{e:g}"] = f"operating characteristic at a true benefit of {e:g} {o.unit}"
        a = cfg.analysis
        R = o.range
        if ctx.prior_name == "weakly_informative":
            ctx.normal_prior = NormalPrior((1.0,), (0.0,), (R / 6,))
            ctx.prior_note = f"effect ~ Normal(0, {R / 6:g}); residual SD treated as known at {ctx.sigma_analysis:.2f}"
        elif ctx.prior_name == "informative":
            r, post = _run_draws(a.informative_run, 4000, d.seed + 1, cfg, "analysis.informative_run")
            te = ctx.benefit(_by_level(post["treatment_effect"], sdim, levels) @ weights)
            m, s = float(np.mean(te)), float(np.std(te))
            w = a.robust_weight
            ctx.normal_prior = NormalPrior((1 - w, w), (m, 0.0), (s, cfg.vague_sd))
            ctx.prior_note = (f"robust mixture on the benefit: {1 - w:.2f} × Normal({m:.2f}, {s:.2f}) from run {r.name} + {w:.2f} × "
                              f"Normal(0, {cfg.vague_sd:g}); residual SD treated as known at {ctx.sigma_analysis:.2f}")
        else:
            ctx.prior_note = "reference: flat cell means and Jeffreys' 1/σ (the rule is a one-sided t test)"
        return ctx
    # ------------------------------------------------------------------ event endpoint
    def orient(p):
        p = np.asarray(p, float)
        return p if o.direction < 0 else 1.0 - p

    if t.source == "fixed":
        bt = cfg.truth_of()
        pt_ = np.array([[bt.p_treatment[lev] for lev in levels]])
        pc_ = np.array([[bt.p_control[lev] for lev in levels]])
        strata_txt = f" ({'/'.join(card.stratum_label(lev) for lev in levels)})" if K > 1 else ""
        ctx.truth_note = (f"fixed probabilities of {label} {'/'.join(f'{bt.p_treatment[lev]:g}' for lev in levels)} with {T} and "
                          f"{'/'.join(f'{bt.p_control[lev]:g}' for lev in levels)} with {C}{strata_txt}")
        ctx.labels["design"] = "conditional power"
    else:
        r, post = _run_draws(t.run, t.draws, d.seed, cfg, "truth.run")
        p = post["p_event"]
        pt_ = _by_level(p.sel(arm=r.card.arms.treatment), sdim, levels)
        pc_ = _by_level(p.sel(arm=r.card.arms.control), sdim, levels)
        ctx.truth_note = f"design prior: {len(pt_)} posterior draws of run {r.name}"
        ctx.labels["design"] = "assurance (probability of success)"
    ctx.truth["design"] = {"u_t": orient(pt_), "u_c": orient(pc_)}
    if t.no_effect:
        ctx.truth[NO_EFFECT] = {"u_t": orient(pc_), "u_c": orient(pc_)}
        ctx.labels[NO_EFFECT] = "type I error (equal rates)"
    # OC curves: the same rates in every stratum, the control arm at the design's prevalence-weighted control rate, so the
    # risk difference is e in every stratum and overall
    base = float(np.mean(orient(pc_) @ prev))
    for e in d.oc_effects:
        ctx.truth[f"oc_{e:g}"] = {"u_t": np.full((1, K), min(max(base - e, 0.0), 1.0)), "u_c": np.full((1, K), base)}
        ctx.labels[f"oc_{e:g}"] = f"operating characteristic at a true risk difference of {e:g} (benefit)"
    if ctx.prior_name == "informative":
        r, post = _run_draws(cfg.analysis.informative_run, 4000, d.seed + 1, cfg, "analysis.informative_run")
        w = cfg.analysis.robust_weight
        mixes = []
        for arm in (r.card.arms.treatment, r.card.arms.control):
            x = orient(_by_level(post["p_event"].sel(arm=arm), sdim, levels) @ prev)
            m, v = float(np.mean(x)), float(np.var(x))
            k = m * (1 - m) / v - 1  # Beta matched by moments
            mixes.append(BetaMixture((1 - w, w), (m * k, 1.0), ((1 - m) * k, 1.0)))
        ctx.binary_prior = (mixes[0], mixes[1])
        ctx.prior_note = f"robust Beta mixtures from run {r.name} (moment-matched) with weight {w:.2f} on Beta(1, 1)"
    else:
        ctx.binary_prior = BINARY_PRIORS[ctx.prior_name]
        ctx.prior_note = {"uniform": "Beta(1, 1) per arm", "jeffreys": "Beta(1/2, 1/2) per arm",
                          "altham": "Altham priors Beta(1, 0) / Beta(0, 1): the rule is Fisher's one-sided exact test"}[ctx.prior_name]
    return ctx

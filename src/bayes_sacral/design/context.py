"""Everything a design's engines share, prepared once: truth (fixed or design-prior draws), analysis prior, allocation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import BayesSacralError
from ..store import DEFAULT_STORE, find_run
from ..vocabulary import FRACTURES
from .analysis import BINARY_PRIORS, BetaMixture, NormalPrior
from .config import DesignConfig

__all__ = ["Context", "build_context", "psfs_count", "scenarios"]


def psfs_count(m: np.ndarray | int, q: float) -> np.ndarray:
    """PSFS patients among the first m of a stratum under the deterministic allocation sequence (round half up of q·m)."""
    return np.floor(np.asarray(m) * q + 0.5).astype(int)


@dataclass
class Context:
    """Shared inputs of the engines (picklable: sent to worker processes and Dask workers)."""

    endpoint: str
    q: float  # share allocated to PSFS
    prevalence: np.ndarray  # (pathological, impending)
    weights: np.ndarray  # estimand weights over strata
    threshold: float
    mcid: float
    rule: str
    prior_name: str
    normal_prior: NormalPrior | None = None
    sigma_analysis: float = 5.0  # residual SD the known-sigma analyses plug in
    binary_prior: tuple[BetaMixture, BetaMixture] | None = None
    # truth per scenario: name -> dict of arrays (one row per design-prior draw; fixed truth has one row)
    truth: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    truth_note: str = ""
    prior_note: str = ""


def scenarios(ctx: Context) -> list[str]:
    return list(ctx.truth)


def _run_draws(ref: str, n: int, seed: int):
    r = find_run(ref, DEFAULT_STORE)
    post = r.idata()["posterior"].to_dataset().stack(sample=("chain", "draw"))
    total = post.sizes["sample"]
    idx = np.random.default_rng(seed).choice(total, size=min(n, total), replace=False) if n < total else np.arange(total)
    return r, post.isel(sample=np.sort(idx))


def build_context(cfg: DesignConfig) -> Context:
    d = cfg.design
    prev = np.array([cfg.strata.pathological, cfg.strata.impending])
    weights = prev.copy() if d.estimand == "average" else np.array([1.0, 0.0] if d.estimand == "pathological" else [0.0, 1.0])
    ctx = Context(endpoint=d.endpoint, q=d.allocation / (1 + d.allocation), prevalence=prev, weights=weights,
                  threshold=cfg.decision.threshold, mcid=cfg.mcid, rule=cfg.decision.rule, prior_name=cfg.analysis_prior)
    t = cfg.truth
    if d.endpoint == "msts":
        mt = t.msts
        ctx.sigma_analysis = mt.sigma
        if t.source == "fixed":
            delta = np.array([[mt.treatment_effect[f] for f in FRACTURES]])
            sig = np.array([mt.sigma])
            extra = {"intercept": np.array([[mt.intercept[f] for f in FRACTURES]]), "preop_slope": np.array([mt.preop_slope]),
                     "kind": np.array(["fixed"])}
            ctx.truth_note = (f"fixed effects {mt.treatment_effect['pathological']:g} (pathological) and {mt.treatment_effect['impending']:g} "
                              f"(impending) MSTS points, residual SD {mt.sigma:g}")
            ctx.labels["design"] = "conditional power"
        else:
            r, post = _run_draws(t.run, t.draws, d.seed)
            if "sigma" not in post or post["sigma"].ndim > 1:
                if cfg.engine() != "full_model":
                    raise BayesSacralError(f"design prior from run {r.name}: the exact and vectorized engines need a normal or student_t run "
                                           "with a common sigma; use engine = full_model for beta-binomial runs")
            delta = np.stack([post["treatment_effect"].sel(fracture=f).values for f in FRACTURES], axis=1)
            sig = post["sigma"].values if "sigma" in post and post["sigma"].ndim == 1 else np.full(len(delta), mt.sigma)
            ctx.sigma_analysis = float(np.mean(sig))
            lik = r.manifest["model"].get("likelihood", "normal")
            extra = {"intercept": np.stack([post["intercept"].sel(fracture=f).values for f in FRACTURES], axis=1),
                     "preop_slope": post["preop_slope"].values, "kind": np.array([lik])}
            if lik == "beta_binomial":
                extra["treatment_effect_logit"] = np.stack([post["treatment_effect_logit"].sel(fracture=f).values for f in FRACTURES], axis=1)
                extra["phi"] = post["phi"].values
            ctx.truth_note = f"design prior: {len(delta)} posterior draws of run {r.name}"
            ctx.labels["design"] = "assurance (probability of success)"
        ctx.truth["design"] = {"delta": delta, "sigma": sig, **extra}
        if t.null:
            null = {**ctx.truth["design"], "delta": np.zeros_like(delta)}
            if "treatment_effect_logit" in null:
                null["treatment_effect_logit"] = np.zeros_like(null["treatment_effect_logit"])
            ctx.truth["null"] = null
            ctx.labels["null"] = "type I error (no effect)"
        for e in d.oc_effects:
            ctx.truth[f"oc_{e:g}"] = {**ctx.truth["design"], "delta": np.full((1, 2), float(e)), "sigma": np.array([float(np.mean(sig))])}
            ctx.labels[f"oc_{e:g}"] = f"operating characteristic at a true effect of {e:g} points"
        # analysis prior
        a = cfg.analysis
        if ctx.prior_name == "weakly_informative":
            ctx.normal_prior = NormalPrior((1.0,), (0.0,), (5.0,))
            ctx.prior_note = f"effect ~ Normal(0, 5); residual SD treated as known at {ctx.sigma_analysis:.2f}"
        elif ctx.prior_name == "informative":
            r, post = _run_draws(a.informative_run, 4000, d.seed + 1)
            te = np.stack([post["treatment_effect"].sel(fracture=f).values for f in FRACTURES], axis=1) @ weights
            m, s = float(np.mean(te)), float(np.std(te))
            w = a.robust_weight
            ctx.normal_prior = NormalPrior((1 - w, w), (m, 0.0), (s, a.vague_sd))
            ctx.prior_note = (f"robust mixture: {1 - w:.2f} × Normal({m:.2f}, {s:.2f}) from run {r.name} + {w:.2f} × Normal(0, {a.vague_sd:g}); "
                              f"residual SD treated as known at {ctx.sigma_analysis:.2f}")
        else:
            ctx.prior_note = "reference: flat cell means and Jeffreys' 1/σ (the rule is a one-sided t test)"
    else:
        bt = t.secondary_procedure
        if t.source == "fixed":
            p1 = np.array([[bt.p_psfs[f] for f in FRACTURES]])
            p2 = np.array([[bt.p_sacroplasty[f] for f in FRACTURES]])
            ctx.truth_note = (f"fixed rates PSFS {bt.p_psfs['pathological']:g}/{bt.p_psfs['impending']:g}, sacroplasty "
                              f"{bt.p_sacroplasty['pathological']:g}/{bt.p_sacroplasty['impending']:g} (pathological/impending)")
            ctx.labels["design"] = "conditional power"
        else:
            r, post = _run_draws(t.run, t.draws, d.seed)
            p = post["p_secondary"]
            p1 = np.stack([p.sel(arm="psfs", fracture=f).values for f in FRACTURES], axis=1)
            p2 = np.stack([p.sel(arm="sacroplasty", fracture=f).values for f in FRACTURES], axis=1)
            ctx.truth_note = f"design prior: {len(p1)} posterior draws of run {r.name}"
            ctx.labels["design"] = "assurance (probability of success)"
        ctx.truth["design"] = {"p_psfs": p1 @ prev, "p_sacro": p2 @ prev}
        if t.null:
            ctx.truth["null"] = {"p_psfs": p2 @ prev, "p_sacro": p2 @ prev}
            ctx.labels["null"] = "type I error (equal rates)"
        base = float(np.mean(p2 @ prev))
        for e in d.oc_effects:
            ctx.truth[f"oc_{e:g}"] = {"p_psfs": np.array([max(base - e, 0.0)]), "p_sacro": np.array([base])}
            ctx.labels[f"oc_{e:g}"] = f"operating characteristic at a true risk difference of {e:g}"
        if ctx.prior_name == "informative":
            r, post = _run_draws(cfg.analysis.informative_run, 4000, d.seed + 1)
            w = cfg.analysis.robust_weight
            mixes = []
            for arm in ("psfs", "sacroplasty"):
                x = (np.stack([post["p_secondary"].sel(arm=arm, fracture=f).values for f in FRACTURES], axis=1) @ prev)
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

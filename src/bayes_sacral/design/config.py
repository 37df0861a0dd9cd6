"""Design configs (TOML), validated like run configs: every problem with its key path, value and rule.

::

    [design]    name, seed, endpoint (msts | secondary_procedure), engine (auto | exact | vectorized | full_model),
                sample_sizes, n_trials, batch_size, allocation (PSFS : sacroplasty), target, estimand, oc_effects
    [strata]    pathological, impending (prevalence, summing to 1)
    [truth]     source = fixed | posterior (run = a fitted run: its posterior draws are the design prior); null = true
    [analysis]  prior (see ANALYSIS_PRIORS), informative_run, robust_weight, vague_sd
    [decision]  rule = posterior | dual, threshold c, mcid
    [[interim]] fraction, efficacy, futility, futility_rule = posterior | predictive
    [full_model] likelihood, pooling, prior_set, draws, tune, chains, target_accept
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Literal

import tomli_w
from pydantic import Field, ValidationError, field_validator, model_validator

from ..config import _pydantic_problems, _Strict, read_with_overrides
from ..errors import InputError, Problem

__all__ = ["DesignConfig", "load_design", "design_to_toml", "ANALYSIS_PRIORS", "default_mcid"]

#: Analysis priors of the conjugate engines, by endpoint.
ANALYSIS_PRIORS = {
    "msts": ("weakly_informative", "reference", "informative"),
    "secondary_procedure": ("uniform", "jeffreys", "altham", "informative"),
}


def default_mcid(endpoint: str) -> float:
    """Minimum effect of the dual criterion: 3.6 MSTS points (borrowed MCID), or a 10-point risk difference."""
    return 3.6 if endpoint == "msts" else 0.10


class DesignSection(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Design name (the default output folder is reports/designs/<name>)."""
    seed: int = Field(ge=0, le=2**32 - 1)
    """Seed: every batch of simulated trials has its own child seed, so results do not depend on workers or order."""
    endpoint: Literal["msts", "secondary_procedure"] = "msts"
    """msts: postoperative MSTS adjusted for the preoperative score; secondary_procedure: binary."""
    engine: Literal["auto", "exact", "vectorized", "full_model"] = "auto"
    """auto picks exact where it applies (no interim looks), else vectorized; full_model refits the PyMC model."""
    sample_sizes: list[int] = Field(default_factory=lambda: [40, 60, 80, 100, 120, 160, 200, 240])
    """Total sample sizes (both arms and strata)."""
    n_trials: int = Field(4000, ge=20, le=10_000_000)
    """Simulated trials per sample size and scenario (Monte Carlo engines)."""
    batch_size: int = Field(1000, ge=1, le=1_000_000)
    """Trials per persisted batch (the unit of resuming and of distribution)."""
    allocation: float = Field(1.0, gt=0.05, lt=20)
    """Allocation ratio PSFS : sacroplasty (1 = 1:1), applied within each stratum."""
    target: float = Field(0.8, gt=0, lt=1)
    """Target success probability for the smallest sample size."""
    estimand: Literal["average", "pathological", "impending"] = "average"
    """The effect the decision is about: the prevalence-weighted average over strata, or one stratum."""
    oc_effects: list[float] = Field(default_factory=list)
    """True effects (MSTS points, or risk differences) for operating-characteristic curves (exact and vectorized engines)."""

    @field_validator("sample_sizes")
    @classmethod
    def _sizes(cls, v):
        if not v:
            raise ValueError("give at least one sample size")
        if any(n < 8 for n in v):
            raise ValueError("every sample size must be at least 8 (two patients per arm and stratum)")
        if sorted(set(v)) != v:
            raise ValueError("sample sizes must be increasing and distinct")
        return v


class StrataSection(_Strict):
    pathological: float = Field(0.7, ge=0, le=1)
    """Prevalence of pathological fractures among trial patients."""
    impending: float = Field(0.3, ge=0, le=1)
    """Prevalence of impending fractures."""

    @model_validator(mode="after")
    def _sum(self):
        if abs(self.pathological + self.impending - 1) > 1e-9:
            raise ValueError(f"prevalences must sum to 1 (got {self.pathological} + {self.impending})")
        return self


class MstsTruth(_Strict):
    treatment_effect: dict[Literal["pathological", "impending"], float] = Field(default_factory=lambda: {"pathological": 4.0, "impending": 1.0})
    """True treatment effect per stratum (MSTS points, PSFS − sacroplasty, adjusted for the preoperative score)."""
    sigma: float = Field(5.0, gt=0, le=30)
    """Residual SD of postoperative MSTS given the preoperative score (points)."""
    intercept: dict[Literal["pathological", "impending"], float] = Field(default_factory=lambda: {"pathological": 19.0, "impending": 26.0})
    """Expected postoperative MSTS of sacroplasty at a preoperative 15 (full-model engine's data)."""
    preop_slope: float = 0.5
    """Postoperative points per preoperative point (full-model engine's data)."""
    preop_mean: dict[Literal["pathological", "impending"], float] = Field(default_factory=lambda: {"pathological": 9.3, "impending": 16.9})
    """Mean preoperative MSTS per stratum (default: the published cells, weighted by arm size)."""
    preop_sd: float = Field(4.0, gt=0, le=15)
    """SD of the preoperative MSTS within a stratum (an assumption: not reported)."""


class BinaryTruth(_Strict):
    p_psfs: dict[Literal["pathological", "impending"], float] = Field(default_factory=lambda: {"pathological": 0.05, "impending": 0.05})
    """True probability of a secondary procedure with PSFS, per stratum."""
    p_sacroplasty: dict[Literal["pathological", "impending"], float] = Field(default_factory=lambda: {"pathological": 0.42, "impending": 0.14})
    """True probability with sacroplasty alone, per stratum (default: the published 5/12 and 1/7)."""

    @field_validator("p_psfs", "p_sacroplasty")
    @classmethod
    def _prob(cls, v):
        for k, x in v.items():
            if not 0 <= x <= 1:
                raise ValueError(f"{k}: a probability lies in 0-1 (got {x})")
        return v


class TruthSection(_Strict):
    source: Literal["fixed", "posterior"] = "fixed"
    """fixed: the values below (operating characteristics, 'conditional power'); posterior: draws of a fitted run
    (probability of success, 'assurance')."""
    run: str | None = None
    """For source = posterior: a run folder (or name under models/) whose posterior is the design prior."""
    draws: int = Field(2000, ge=10, le=1_000_000)
    """Design-prior draws used (trials cycle through them)."""
    null: bool = True
    """Also simulate under no effect (type I error)."""
    msts: MstsTruth = Field(default_factory=MstsTruth)
    secondary_procedure: BinaryTruth = Field(default_factory=BinaryTruth)


class AnalysisSection(_Strict):
    prior: str | None = None
    """Analysis prior: msts weakly_informative (effect ~ N(0, 5), residual SD at its design value) | reference (flat,
    Jeffreys 1/sigma: the rule is a t test) | informative; secondary_procedure uniform | jeffreys | altham (the rule is
    Fisher's one-sided exact test) | informative. Default: weakly_informative / uniform."""
    informative_run: str | None = None
    """For prior = informative: a run whose posterior (of the estimand) becomes the informative component."""
    robust_weight: float = Field(0.5, ge=0, le=1)
    """Weight of the vague component of the robust mixture prior (Schmidli et al. 2014)."""
    vague_sd: float = Field(10.0, gt=0)
    """SD of the vague component (MSTS points); binary: the vague component is Beta(1, 1)."""


class DecisionSection(_Strict):
    rule: Literal["posterior", "dual"] = "posterior"
    """posterior: P(effect > 0 | data) >= threshold; dual: also posterior median >= mcid."""
    threshold: float = Field(0.975, ge=0.5, lt=1)
    """Posterior probability c required for success."""
    mcid: float | None = None
    """dual rule and futility: minimum relevant effect (default 3.6 MSTS points, borrowed from Gazendam et al. 2022;
    0.10 risk difference for secondary procedures)."""


class InterimSection(_Strict):
    fraction: float = Field(gt=0, lt=1)
    """Information fraction (share of the total sample size) at the look."""
    efficacy: float | None = Field(0.995, ge=0.5, lt=1)
    """Stop for success if P(effect > 0 | data) >= efficacy (none: no efficacy stop)."""
    futility: float | None = Field(0.10, gt=0, lt=1)
    """Stop for futility if the futility quantity < futility (none: no futility stop)."""
    futility_rule: Literal["posterior", "predictive"] = "posterior"
    """posterior: P(effect > mcid | data); predictive: predictive probability that the final analysis succeeds."""


class FullModelSection(_Strict):
    likelihood: Literal["normal", "student_t", "beta_binomial"] = "beta_binomial"
    """Likelihood of the analysis model (the reanalysis model, IPD route)."""
    pooling: Literal["partial", "none", "complete"] = "partial"
    prior_set: str = "weakly_informative"
    draws: int = Field(500, ge=50, le=20_000)
    tune: int = Field(500, ge=50, le=20_000)
    chains: int = Field(2, ge=1, le=8)
    target_accept: float = Field(0.9, gt=0.5, lt=1)


class DesignConfig(_Strict):
    design: DesignSection
    strata: StrataSection = Field(default_factory=StrataSection)
    truth: TruthSection = Field(default_factory=TruthSection)
    analysis: AnalysisSection = Field(default_factory=AnalysisSection)
    decision: DecisionSection = Field(default_factory=DecisionSection)
    interim: list[InterimSection] = Field(default_factory=list)
    full_model: FullModelSection = Field(default_factory=FullModelSection)

    @property
    def mcid(self) -> float:
        return self.decision.mcid if self.decision.mcid is not None else default_mcid(self.design.endpoint)

    @property
    def analysis_prior(self) -> str:
        return self.analysis.prior or ("weakly_informative" if self.design.endpoint == "msts" else "uniform")

    def engine(self) -> str:
        """The engine that will run: auto resolves to exact (no interims) or vectorized."""
        if self.design.engine != "auto":
            return self.design.engine
        return "vectorized" if self.interim else "exact"


def _check(cfg: DesignConfig, fname: str) -> list[Problem]:
    out = []
    ep = cfg.design.endpoint
    prior = cfg.analysis_prior
    if prior not in ANALYSIS_PRIORS[ep]:
        out.append(Problem(fname, "analysis.prior", repr(prior), f"for endpoint {ep} one of {', '.join(ANALYSIS_PRIORS[ep])}"))
    if prior == "informative" and not cfg.analysis.informative_run:
        out.append(Problem(fname, "analysis.informative_run", "", "prior = informative needs the run it is taken from"))
    if cfg.truth.source == "posterior" and not cfg.truth.run:
        out.append(Problem(fname, "truth.run", "", "source = posterior needs a fitted run (its posterior is the design prior)"))
    eng = cfg.design.engine
    if eng == "exact" and cfg.interim:
        out.append(Problem(fname, "design.engine", "'exact'", "the exact engine has no interim looks; use vectorized (or auto)"))
    if eng == "full_model" and ep != "msts":
        out.append(Problem(fname, "design.engine", "'full_model'", "the full-model engine refits the MSTS model; the binary endpoint is exact"))
    if eng == "full_model" and cfg.design.oc_effects:
        out.append(Problem(fname, "design.oc_effects", repr(cfg.design.oc_effects), "OC curves are computed by the exact and vectorized engines"))
    if cfg.engine() == "full_model" and any(i.futility_rule == "predictive" for i in cfg.interim):
        out.append(Problem(fname, "interim.futility_rule", "'predictive'", "the full-model engine supports posterior futility only "
                           "(a predictive probability would need nested refits)"))
    fr = [i.fraction for i in cfg.interim]
    if sorted(fr) != fr or len(set(fr)) != len(fr):
        out.append(Problem(fname, "interim", repr(fr), "interim fractions must increase"))
    if ep == "secondary_procedure" and cfg.design.estimand != "average":
        out.append(Problem(fname, "design.estimand", repr(cfg.design.estimand), "the binary endpoint is analysed pooled over strata: estimand = average"))
    if cfg.strata.impending == 0 and cfg.design.estimand == "impending":
        out.append(Problem(fname, "design.estimand", "'impending'", "no impending fractures in the trial (strata.impending = 0)"))
    return out


def load_design(path: str | Path, overrides: list[str] | None = None) -> DesignConfig:
    """Read, override (``--set``) and validate a design config."""
    path = Path(path)
    raw, over_paths = read_with_overrides(path, overrides)
    try:
        cfg = DesignConfig.model_validate(copy.deepcopy(raw))
    except ValidationError as exc:
        raise InputError(_pydantic_problems(exc, raw, str(path), over_paths, DesignConfig)) from None
    problems = _check(cfg, str(path))
    if problems:
        raise InputError(problems)
    return cfg


def design_to_toml(cfg: DesignConfig) -> str:
    doc = cfg.model_dump(mode="json", exclude_none=True)
    return "# Resolved design config (bayes-sacral)\n" + tomli_w.dumps(doc)

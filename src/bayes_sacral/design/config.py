"""Design configs (TOML), validated against the study card: every problem with its key path, value and rule.

A design config never names a study's arms, strata or scale in code: they come from the card (``[design] study``, the
bundled study by default). ::

    [design]    name, seed, study (a card file; default: the bundled study), endpoint (a score or event outcome of the
                card), engine (auto | exact | vectorized | full_model), sample_sizes, n_trials, target_mcse, batch_size,
                allocation (treatment : control), allocation_scheme (stratified | simple), target,
                estimand (average | a stratum level), oc_effects
    [strata]    <level> = prevalence, one per level of the card, summing to 1 (absent for an unstratified card;
                default for a stratified card: equal shares)
    [truth]     source = fixed | posterior (run = a fitted run: its posterior draws are the design prior), draws,
                no_effect = true (also simulate under no effect: the type I error)
    [truth.<score outcome>]  treatment_effect, sigma, intercept, preop_slope, preop_mean, preop_sd
    [truth.<event outcome>]  p_control, p_treatment
    [analysis]  prior (see ANALYSIS_PRIORS), informative_run, robust_weight, vague_sd
    [decision]  rule = posterior | dual, threshold c, mcid
    [[interim]] fraction, efficacy, futility, futility_rule = posterior | predictive
    [full_model] likelihood, pooling, prior_set, method (laplace | nuts), khat_max, min_ess, approx_draws,
                validate_trials, validation_draws, draws, tune, chains, target_accept

Tables keyed by stratum level (``treatment_effect = { low_risk = 4.0, high_risk = 1.0 }``) must name every level of
the card and nothing else; a bare number means the same value in every level. For an unstratified card the one level is
``all``.

Signs. Truth values are on the outcome's own scale: ``treatment_effect`` is treatment − control (so for a score where
lower is better a beneficial effect is negative), and ``p_control`` / ``p_treatment`` are the probabilities of the
event. Everything the decision is about is a *benefit*, positive in the outcome's direction of benefit:
``oc_effects``, ``decision.mcid`` and the rule P(benefit > 0 | data) ≥ c (for an adverse event, benefit is
p_control − p_treatment; for a desirable one p_treatment − p_control).

Generic defaults (no study's numbers are built in): prevalences equal; ``sigma`` = range / 6; ``intercept`` and
``preop_mean`` = the scale's midpoint in every level; ``preop_sd`` = range / 7.5; ``preop_slope`` = 0.5; the weakly
informative analysis prior on the effect Normal(0, range / 6) and the vague component of the robust mixture
Normal(0, range / 3); ``decision.mcid`` = the card's MCID of the endpoint (a config error when the card has none and the
rule or a futility look needs one). ``treatment_effect`` (score) and ``p_control`` / ``p_treatment`` (event) have no
default: a fixed truth must state them.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Literal

import tomli_w
from pydantic import ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from ..config import read_with_overrides
from ..errors import InputError, Problem
from ..study import Study, load_study
from ..suggest import did_you_mean
from ..validation import Strict, problems_from_validation

__all__ = ["DesignConfig", "ScoreTruth", "EventTruth", "load_design", "design_from_doc", "design_to_toml", "ANALYSIS_PRIORS",
           "TRUTH_FIELDS"]

#: Analysis priors of the conjugate engines, by the endpoint's outcome kind.
ANALYSIS_PRIORS = {
    "score": ("weakly_informative", "reference", "informative"),
    "event": ("uniform", "jeffreys", "altham", "informative"),
}

LevelTable = float | dict[str, float]


class DesignSection(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Design name (the default output folder is reports/designs/<name>)."""
    seed: int = Field(ge=0, le=2**32 - 1)
    """Seed: every batch of simulated trials has its own child seed, so results do not depend on workers or order."""
    study: str | None = None
    """The study card (TOML) whose arms, strata and outcomes the design uses; default: the bundled study. Relative to the
    working directory, else to the config's folder."""
    endpoint: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    """A score outcome (the score after treatment, adjusted for the score before) or an event outcome (analysed pooled over
    strata) of the card; default: the card's only score outcome."""
    engine: Literal["auto", "exact", "vectorized", "full_model"] = "auto"
    """auto picks exact where it applies (no interim looks), else vectorized; full_model refits the PyMC model. The exact
    engine falls back to vectorized (saying why) when the stratum splits to sum over are too many."""
    sample_sizes: list[int] = Field(default_factory=lambda: [40, 60, 80, 100, 120, 160, 200, 240])
    """Total sample sizes (both arms and all strata)."""
    n_trials: int = Field(4000, ge=20, le=10_000_000)
    """Simulated trials per sample size and scenario (Monte Carlo engines); with ``target_mcse``, the most that are run."""
    target_mcse: float | None = Field(None, gt=0, lt=0.5)
    """Run trials in whole batches until the Monte Carlo standard error of every success probability is at most this
    (or ``n_trials`` is reached): the number of trials follows from the precision wanted."""
    batch_size: int = Field(1000, ge=1, le=1_000_000)
    """Trials per persisted batch (the unit of resuming and of distribution)."""
    allocation: float = Field(1.0, gt=0.05, lt=20)
    """Allocation ratio treatment : control (1 = 1:1)."""
    allocation_scheme: Literal["stratified", "simple"] = "stratified"
    """stratified: a deterministic allocation sequence within each stratum (permuted blocks); simple: one sequence over
    all patients regardless of stratum."""
    target: float = Field(0.8, gt=0, lt=1)
    """Target success probability for the smallest sample size."""
    estimand: str = "average"
    """The effect the decision is about: the prevalence-weighted average over strata, or one stratum level."""
    oc_effects: list[float] = Field(default_factory=list)
    """True benefits (the score's units, or risk differences; positive = benefit) for operating-characteristic curves."""

    @field_validator("sample_sizes")
    @classmethod
    def _sizes(cls, v):
        if not v:
            raise ValueError("give at least one sample size")
        if any(n < 8 for n in v):
            raise ValueError("every sample size must be at least 8")
        if sorted(set(v)) != v:
            raise ValueError("sample sizes must be increasing and distinct")
        return v


class ScoreTruth(Strict):
    """Truth for a score endpoint (on the score's own scale; tables keyed by stratum level, or one number for all)."""

    treatment_effect: LevelTable | None = None
    """True treatment effect per stratum, treatment − control adjusted for the score before treatment (required for
    source = fixed; negative values are benefits when lower is better)."""
    sigma: float | None = Field(None, gt=0)
    """Residual SD of the score after treatment given the score before (default: range / 6)."""
    intercept: LevelTable | None = None
    """Expected score after treatment of a control patient whose score before is the midpoint (full-model engine's data;
    default: the midpoint)."""
    preop_slope: float = Field(0.5, ge=-5, le=5)
    """Points after per point before (full-model engine's data)."""
    preop_mean: LevelTable | None = None
    """Mean score before treatment per stratum (full-model engine's data; default: the midpoint)."""
    preop_sd: float | None = Field(None, gt=0)
    """SD of the score before treatment within a stratum (full-model engine's data; default: range / 7.5)."""


class EventTruth(Strict):
    """Truth for an event endpoint: probabilities of the event per stratum (tables keyed by level, or one number for all)."""

    p_control: LevelTable | None = None
    """True probability of the event in the control arm (required for source = fixed)."""
    p_treatment: LevelTable | None = None
    """True probability of the event in the treatment arm (required for source = fixed)."""


_LEVEL_FIELDS = ("treatment_effect", "intercept", "preop_mean", "p_control", "p_treatment")

#: The fixed keys of [truth]; every other key names an outcome of the card.
TRUTH_FIELDS = ("source", "run", "draws", "no_effect")


class TruthSection(Strict):
    model_config = ConfigDict(extra="allow")
    source: Literal["fixed", "posterior"] = "fixed"
    """fixed: the values of [truth.<endpoint>] (operating characteristics at a fixed truth, 'conditional power');
    posterior: draws of a fitted run (probability of success under a design prior, 'assurance')."""
    run: str | None = None
    """For source = posterior: a run folder (or name under models/) whose posterior is the design prior."""
    draws: int = Field(2000, ge=10, le=1_000_000)
    """Design-prior draws used (trials cycle through them)."""
    no_effect: bool = True
    """Also simulate under no effect (scenario no_effect: the type I error)."""


class AnalysisSection(Strict):
    prior: str | None = None
    """Analysis prior. Score: weakly_informative (effect ~ Normal(0, range/6), residual SD at its design value) |
    reference (flat cell means, Jeffreys 1/sigma: the rule is a t test) | informative. Event: uniform | jeffreys |
    altham (the rule is Fisher's one-sided exact test) | informative. Default: weakly_informative / uniform."""
    informative_run: str | None = None
    """For prior = informative: a run whose posterior (of the estimand) becomes the informative component."""
    robust_weight: float = Field(0.5, ge=0, le=1)
    """Weight of the vague component of the robust mixture prior (Schmidli et al. 2014)."""
    vague_sd: float | None = Field(None, gt=0)
    """SD of the vague component (the score's units; default range / 3); event: the vague component is Beta(1, 1)."""


class DecisionSection(Strict):
    rule: Literal["posterior", "dual"] = "posterior"
    """posterior: P(benefit > 0 | data) >= threshold; dual: also posterior median of the benefit >= mcid."""
    threshold: float = Field(0.975, ge=0.5, lt=1)
    """Posterior probability c required for success."""
    mcid: float | None = Field(None, gt=0)
    """dual rule and posterior futility: minimal relevant benefit (default: the card's MCID of the endpoint)."""


class InterimSection(Strict):
    fraction: float = Field(gt=0, lt=1)
    """Information fraction (share of the total sample size) at the look."""
    efficacy: float | None = Field(0.995, ge=0.5, lt=1)
    """Stop for success if P(benefit > 0 | data) >= efficacy (none: no efficacy stop)."""
    futility: float | None = Field(0.10, gt=0, lt=1)
    """Stop for futility if the futility quantity < futility (none: no futility stop)."""
    futility_rule: Literal["posterior", "predictive"] = "posterior"
    """posterior: P(benefit > mcid | data); predictive: predictive probability that the final analysis succeeds."""


class FullModelSection(Strict):
    likelihood: Literal["normal", "student_t", "beta_binomial"] = "beta_binomial"
    """Likelihood of the analysis model (the reanalysis' score model, IPD route)."""
    pooling: Literal["partial", "none", "complete"] = "partial"
    prior_set: str = "weakly_informative"
    method: Literal["laplace", "nuts"] = "laplace"
    """laplace: the fast tier (nested Laplace approximation corrected by Pareto-smoothed importance sampling), with a NUTS
    refit for every fit whose Pareto k̂ or importance ESS fails; nuts: a NUTS refit for every simulated trial."""
    khat_max: float = Field(0.7, gt=0, le=1)
    """Largest Pareto k̂ the fast tier accepts (above it the fit is escalated to NUTS)."""
    min_ess: float = Field(100, ge=10, le=100_000)
    """Smallest importance-sampling effective sample size the fast tier accepts."""
    approx_draws: int = Field(2000, ge=200, le=100_000)
    """Proposal draws per fast-tier fit."""
    validate_trials: int = Field(0, ge=0, le=100_000)
    """Validation subsample: in every scenario and sample size, the first this many trials are also refitted by NUTS
    (``validation_draws`` per chain) and the two success probabilities and decisions are compared."""
    validation_draws: int = Field(2000, ge=100, le=20_000)
    draws: int = Field(500, ge=50, le=20_000)
    """NUTS draws per chain (the nuts method and escalated fits)."""
    tune: int = Field(500, ge=50, le=20_000)
    chains: int = Field(2, ge=1, le=8)
    target_accept: float = Field(0.9, gt=0.5, lt=1)


class DesignConfig(Strict):
    design: DesignSection
    strata: dict[str, float] | None = None
    truth: TruthSection = Field(default_factory=TruthSection)
    analysis: AnalysisSection = Field(default_factory=AnalysisSection)
    decision: DecisionSection = Field(default_factory=DecisionSection)
    interim: list[InterimSection] = Field(default_factory=list)
    full_model: FullModelSection = Field(default_factory=FullModelSection)

    _study: Study | None = PrivateAttr(None)
    _truths: dict = PrivateAttr(default_factory=dict)
    _endpoint: str | None = PrivateAttr(None)

    # ------------------------------------------------------------------ the study
    @property
    def study(self) -> Study:
        if self._study is None:
            self._study = load_study()
        return self._study

    @property
    def card(self):
        return self.study.card

    @property
    def endpoint(self) -> str:
        """The endpoint's outcome name (the card's only score outcome when the config names none)."""
        return self._endpoint or self.design.endpoint or _default_endpoint(self.card) or ""

    @property
    def outcome(self):
        return self.card.outcomes[self.endpoint]

    @property
    def outcome_kind(self) -> str:
        """score | event."""
        return self.outcome.kind

    @property
    def levels(self) -> list[str]:
        return self.card.stratum_levels

    @property
    def prevalence(self) -> dict[str, float]:
        """Prevalence per stratum level ([strata], or equal shares)."""
        if self.strata is not None:
            return {lev: float(self.strata[lev]) for lev in self.levels}
        return {lev: 1.0 / len(self.levels) for lev in self.levels}

    # ------------------------------------------------------------------ resolved values
    def truth_of(self, outcome: str | None = None):
        """The validated truth table of an outcome, every default filled in (level tables as dicts over all levels)."""
        name = outcome or self.endpoint
        o = self.card.outcomes[name]
        t = self._truths.get(name)
        if o.kind == "score":
            t = t or ScoreTruth()
            R = o.range
            return ScoreTruth(treatment_effect=_expand(t.treatment_effect, self.levels), sigma=t.sigma if t.sigma is not None else R / 6,
                              intercept=_expand(t.intercept, self.levels, o.midpoint), preop_slope=t.preop_slope,
                              preop_mean=_expand(t.preop_mean, self.levels, o.midpoint),
                              preop_sd=t.preop_sd if t.preop_sd is not None else R / 7.5)
        t = t or EventTruth()
        return EventTruth(p_control=_expand(t.p_control, self.levels), p_treatment=_expand(t.p_treatment, self.levels))

    @property
    def mcid(self) -> float | None:
        """decision.mcid, else the card's MCID of the endpoint (None when neither exists)."""
        if self.decision.mcid is not None:
            return self.decision.mcid
        m = getattr(self.outcome, "mcid", None)
        return float(m.value) if m is not None else None

    @property
    def mcid_source(self) -> str:
        if self.decision.mcid is not None:
            return "set in the design config"
        m = getattr(self.outcome, "mcid", None)
        return m.source if m is not None else ""

    @property
    def needs_mcid(self) -> bool:
        return self.decision.rule == "dual" or any(i.futility is not None and i.futility_rule == "posterior" for i in self.interim)

    @property
    def analysis_prior(self) -> str:
        return self.analysis.prior or ("weakly_informative" if self.outcome_kind == "score" else "uniform")

    @property
    def vague_sd(self) -> float:
        return self.analysis.vague_sd if self.analysis.vague_sd is not None else self.outcome.range / 3

    def engine(self) -> str:
        """The engine asked for: auto resolves to exact (no interims) or vectorized. (The exact engine may still fall back
        to vectorized when the stratum splits are too many; the runner says so.)"""
        if self.design.engine != "auto":
            return self.design.engine
        return "vectorized" if self.interim else "exact"


def _expand(v, levels: list[str], default: float | None = None) -> dict[str, float] | None:
    if v is None:
        return None if default is None else {lev: float(default) for lev in levels}
    if isinstance(v, dict):
        return {lev: float(v[lev]) for lev in levels}
    return {lev: float(v) for lev in levels}


def _default_endpoint(card) -> str | None:
    scores = card.outcomes_of("score")
    return scores[0] if len(scores) == 1 else None


# ---------------------------------------------------------------------- cross-checks against the card
def _origin_fn(fname: str, over_paths: dict[str, str]):
    def origin(key: str) -> str:
        for p, o in over_paths.items():
            if key == p or key.startswith(p + ".") or p.startswith(key + "."):
                return o
        return fname
    return origin


def _level_table(problems, origin, key: str, v, levels: list[str], lo: float | None, hi: float | None, what: str) -> None:
    """A value per level (or one number for all): keys exactly the levels, values within [lo, hi]."""
    if v is None:
        return
    items = v.items() if isinstance(v, dict) else [(None, v)]
    if isinstance(v, dict):
        for k in v:
            if k not in levels:
                problems.append(Problem(origin(f"{key}.{k}"), f"{key}.{k}", "", f"unknown stratum level{did_you_mean(k, levels)}; "
                                        f"levels of the card: {', '.join(levels)}"))
        missing = [lev for lev in levels if lev not in v]
        if missing:
            problems.append(Problem(origin(key), key, "", f"give a value for every stratum level of the card (missing: {', '.join(missing)})"))
    for k, x in items:
        if k is not None and k not in levels:
            continue
        if (lo is not None and x < lo) or (hi is not None and x > hi) or not math.isfinite(x):
            where = key if k is None else f"{key}.{k}"
            problems.append(Problem(origin(where), where, repr(x), f"{what} lies in {lo:g} to {hi:g}"))


def _check_truth_tables(cfg: DesignConfig, origin) -> list[Problem]:
    card = cfg.card
    levels = card.stratum_levels
    problems: list[Problem] = []
    usable = [n for n, o in card.outcomes.items() if o.kind in ("score", "event")]
    for name, table in (cfg.truth.model_extra or {}).items():
        key = f"truth.{name}"
        if name not in card.outcomes:
            problems.append(Problem(origin(key), key, "", f"unknown key{did_you_mean(name, [*TRUTH_FIELDS, *usable])}; allowed: "
                                    f"{', '.join(TRUTH_FIELDS)} and a table per score or event outcome of study {card.name} "
                                    f"({', '.join(usable) or 'none'})"))
            continue
        o = card.outcomes[name]
        if o.kind not in ("score", "event"):
            problems.append(Problem(origin(key), key, "", f"{name} is an {o.kind} outcome; the design engines handle score and event outcomes"))
            continue
        cls = ScoreTruth if o.kind == "score" else EventTruth
        try:
            t = cls.model_validate(table)
        except ValidationError as exc:
            seen = set()
            for p in problems_from_validation(exc, "", cls):
                loc = key if p.location == "(top level)" else f"{key}.{p.location}"
                field = p.location.split(".")[0]
                rule = p.rule
                if field in _LEVEL_FIELDS and (rule.startswith("must be a number") or rule.startswith("must be a table")):
                    # the two branches of "a number or a table by level" give one message
                    loc = f"{key}.{field}" if p.location.count(".") == 0 or rule.startswith("must be a table") else loc
                    rule = ("must be a number (the same in every level) or a table by level: { "
                            + ", ".join(f"{lev} = ..." for lev in levels) + " }")
                if (loc, rule) in seen:
                    continue
                seen.add((loc, rule))
                problems.append(Problem(origin(loc), loc, p.value, rule))
            continue
        if o.kind == "score":
            R = o.range
            _level_table(problems, origin, f"{key}.treatment_effect", t.treatment_effect, levels, -R, R, "an effect on this score")
            _level_table(problems, origin, f"{key}.intercept", t.intercept, levels, o.min, o.max, "a score")
            _level_table(problems, origin, f"{key}.preop_mean", t.preop_mean, levels, o.min, o.max, "a score")
            for f in ("sigma", "preop_sd"):
                x = getattr(t, f)
                if x is not None and x > R:
                    problems.append(Problem(origin(f"{key}.{f}"), f"{key}.{f}", repr(x), f"an SD on this score lies in 0 to {R} (its range)"))
        else:
            _level_table(problems, origin, f"{key}.p_control", t.p_control, levels, 0.0, 1.0, "a probability")
            _level_table(problems, origin, f"{key}.p_treatment", t.p_treatment, levels, 0.0, 1.0, "a probability")
        cfg._truths[name] = t
    return problems


def _check(cfg: DesignConfig, fname: str, over_paths: dict[str, str]) -> list[Problem]:
    origin = _origin_fn(fname, over_paths)
    card = cfg.card
    levels = card.stratum_levels
    out: list[Problem] = []
    d = cfg.design
    # endpoint
    usable = [n for n, o in card.outcomes.items() if o.kind in ("score", "event")]
    if d.endpoint is None:
        if _default_endpoint(card) is None:
            out.append(Problem(origin("design.endpoint"), "design.endpoint", "", f"name the endpoint: a score or event outcome of study "
                                                                                    f"{card.name} ({', '.join(usable) or 'none'})"))
            return out
    elif d.endpoint not in card.outcomes:
        out.append(Problem(origin("design.endpoint"), "design.endpoint", repr(d.endpoint),
                           f"no such outcome in study {card.name}{did_you_mean(d.endpoint, card.outcomes)}; outcomes: {', '.join(card.outcomes)}"))
        return out
    elif card.outcomes[d.endpoint].kind not in ("score", "event"):
        out.append(Problem(origin("design.endpoint"), "design.endpoint", repr(d.endpoint),
                           f"{d.endpoint} is an {card.outcomes[d.endpoint].kind} outcome; the design engines handle score and event "
                           f"outcomes ({', '.join(usable) or 'none in this study'})"))
        return out
    cfg._endpoint = d.endpoint or _default_endpoint(card)
    kind = cfg.outcome_kind
    # strata
    if cfg.strata is not None:
        if not card.stratified:
            out.append(Problem(origin("strata"), "strata", "", f"study {card.name} is not stratified: leave out [strata]"))
        else:
            for k, x in cfg.strata.items():
                if k not in levels:
                    out.append(Problem(origin(f"strata.{k}"), f"strata.{k}", "", f"unknown stratum level{did_you_mean(k, levels)}; "
                                       f"levels of {card.strata_label}: {', '.join(levels)}"))
                elif not 0 <= x <= 1:
                    out.append(Problem(origin(f"strata.{k}"), f"strata.{k}", repr(x), "a prevalence lies in 0-1"))
            missing = [lev for lev in levels if lev not in cfg.strata]
            if missing:
                out.append(Problem(origin("strata"), "strata", "", f"give the prevalence of every level (missing: {', '.join(missing)})"))
            elif abs(sum(cfg.strata.values()) - 1) > 1e-9:
                out.append(Problem(origin("strata"), "strata", " + ".join(f"{cfg.strata[lev]:g}" for lev in levels),
                                   "prevalences must sum to 1"))
    # truth tables
    out += _check_truth_tables(cfg, origin)
    t = cfg.truth
    if t.source == "fixed" and not any(p.location.startswith(f"truth.{cfg.endpoint}") for p in out):
        tt = cfg._truths.get(cfg.endpoint)
        need = ("treatment_effect",) if kind == "score" else ("p_control", "p_treatment")
        for f in need:
            if tt is None or getattr(tt, f) is None:
                key = f"truth.{cfg.endpoint}.{f}"
                example = "{ " + ", ".join(f"{lev} = ..." for lev in levels) + " }"
                out.append(Problem(origin(key), key, "", f"is required for source = fixed ({f} = {example}, or one number for all levels)"))
    if t.source == "posterior" and not t.run:
        out.append(Problem(origin("truth.run"), "truth.run", "", "source = posterior needs a fitted run (its posterior is the design prior)"))
    # estimand
    if d.estimand != "average":
        if d.estimand not in levels:
            out.append(Problem(origin("design.estimand"), "design.estimand", repr(d.estimand),
                               f"average or a stratum level{did_you_mean(d.estimand, levels)}; levels: {', '.join(levels)}"))
        elif kind == "event" and len(levels) > 1:
            out.append(Problem(origin("design.estimand"), "design.estimand", repr(d.estimand),
                               "an event endpoint is analysed pooled over strata: estimand = average"))
        elif cfg.strata is not None and cfg.strata.get(d.estimand, 1) == 0:
            out.append(Problem(origin("design.estimand"), "design.estimand", repr(d.estimand),
                               f"no {card.stratum_label(d.estimand)} patients in the trial (strata.{d.estimand} = 0)"))
    # analysis prior
    prior = cfg.analysis_prior
    if prior not in ANALYSIS_PRIORS[kind]:
        out.append(Problem(origin("analysis.prior"), "analysis.prior", repr(prior),
                           f"for a {kind} endpoint one of {', '.join(ANALYSIS_PRIORS[kind])}{did_you_mean(prior, ANALYSIS_PRIORS[kind])}"))
    if prior == "informative" and not cfg.analysis.informative_run:
        out.append(Problem(origin("analysis.informative_run"), "analysis.informative_run", "", "prior = informative needs the run it is taken from"))
    # decision
    if cfg.needs_mcid and cfg.mcid is None:
        why = "the dual rule" if cfg.decision.rule == "dual" else "posterior futility"
        out.append(Problem(origin("decision.mcid"), "decision.mcid", "", f"{why} needs a minimal clinically important difference, and the "
                           f"card gives none for {cfg.endpoint}: set decision.mcid (a benefit on the outcome's scale)"))
    if kind == "event" and cfg.decision.mcid is not None and cfg.decision.mcid >= 1:
        out.append(Problem(origin("decision.mcid"), "decision.mcid", repr(cfg.decision.mcid), "for an event endpoint a risk difference below 1"))
    if kind == "score" and cfg.decision.mcid is not None and cfg.decision.mcid >= cfg.outcome.range:
        out.append(Problem(origin("decision.mcid"), "decision.mcid", repr(cfg.decision.mcid), f"below the score's range ({cfg.outcome.range})"))
    # engines
    eng = d.engine
    if eng == "exact" and cfg.interim:
        out.append(Problem(origin("design.engine"), "design.engine", "'exact'", "the exact engine has no interim looks; use vectorized (or auto)"))
    if eng == "full_model" and kind != "score":
        out.append(Problem(origin("design.engine"), "design.engine", "'full_model'",
                           "the full-model engine refits the score model; an event endpoint is exact (or vectorized)"))
    if eng == "full_model" and d.oc_effects:
        out.append(Problem(origin("design.oc_effects"), "design.oc_effects", repr(d.oc_effects), "OC curves are computed by the exact and vectorized engines"))
    if cfg.engine() == "full_model" and any(i.futility_rule == "predictive" and i.futility is not None for i in cfg.interim):
        out.append(Problem(origin("interim.futility_rule"), "interim.futility_rule", "'predictive'",
                           "the full-model engine supports posterior futility only (a predictive probability would need nested refits)"))
    if kind == "event":
        for i, e in enumerate(d.oc_effects):
            if not -1 < e < 1:
                out.append(Problem(origin("design.oc_effects"), f"design.oc_effects.{i}", repr(e), "a risk difference lies in -1 to 1"))
    fr = [i.fraction for i in cfg.interim]
    if sorted(fr) != fr or len(set(fr)) != len(fr):
        out.append(Problem(origin("interim"), "interim", repr(fr), "interim fractions must increase"))
    if cfg.engine() == "full_model" and not out:
        out += _check_full_model(cfg, origin)
    return out


def _check_full_model(cfg: DesignConfig, origin) -> list[Problem]:
    """The analysis model resolves (prior set and options valid for the endpoint), with [full_model] key paths."""
    from .full_model import analysis_run

    try:
        analysis_run(cfg.full_model.model_dump(), cfg.study, cfg.endpoint)
    except InputError as exc:
        remap = {"priors.set": "full_model.prior_set", "model.likelihood": "full_model.likelihood", "model.pooling": "full_model.pooling"}
        return [Problem(origin(remap.get(p.location, "full_model")), remap.get(p.location, "full_model"), p.value, p.rule) for p in exc.problems]
    return []


# ---------------------------------------------------------------------- reading
def _study_for(raw: dict, fname: str, over_paths: dict[str, str], base_dir: Path | None) -> Study:
    from ..data.source import resolve_path

    d = raw.get("design") if isinstance(raw.get("design"), dict) else {}
    ref = d.get("study")
    if ref is None:
        return load_study()
    origin = _origin_fn(fname, over_paths)("design.study")
    if not isinstance(ref, str) or not ref:
        raise InputError([Problem(origin, "design.study", repr(ref), "a path to a study card (TOML)")])
    p = resolve_path(ref, base_dir)
    if not p.is_file():
        raise InputError([Problem(origin, "design.study", repr(ref), "no such study card file")])
    return load_study(p)


def design_from_doc(doc: dict, fname: str = "<design config>", study: Study | None = None, over_paths: dict[str, str] | None = None,
                    base_dir: Path | None = None) -> DesignConfig:
    """Validate a design config given as a dict (the study card: ``study``, else the one ``[design] study`` names, else the
    bundled one).

    Raises
    ------
    InputError
        Every problem at once, each with its key path.
    """
    over_paths = over_paths or {}
    if not isinstance(doc, dict):
        raise InputError([Problem(fname, "(top level)", "", "a design config is a table")])
    raw = copy.deepcopy(doc)
    try:
        cfg = DesignConfig.model_validate(copy.deepcopy(raw))
    except ValidationError as exc:
        raise InputError(problems_from_validation(exc, _origin_fn(fname, over_paths), DesignConfig)) from None
    if study is not None and not isinstance(study, Study):
        study = load_study(study)
    cfg._study = study or _study_for(raw, fname, over_paths, base_dir)
    problems = _check(cfg, fname, over_paths)
    if problems:
        raise InputError(problems)
    return cfg


def load_design(path: str | Path, overrides: list[str] | None = None, study: Study | None = None) -> DesignConfig:
    """Read, override (``--set``) and validate a design config against its study card."""
    path = Path(path)
    raw, over_paths = read_with_overrides(path, overrides, expected="design config")
    return design_from_doc(raw, str(path), study=study, over_paths=over_paths, base_dir=path.parent)


def design_to_toml(cfg: DesignConfig) -> str:
    """The resolved config: the endpoint, prevalences and the endpoint's truth with every default written out."""
    doc = cfg.model_dump(mode="json", exclude_none=True)
    doc["design"] = cfg.design.model_copy(update={"endpoint": cfg.endpoint}).model_dump(mode="json", exclude_none=True)
    if cfg.card.stratified:
        doc["strata"] = cfg.prevalence
    truth = {k: v for k, v in doc.get("truth", {}).items() if k in TRUTH_FIELDS}
    for name, t in cfg._truths.items():
        truth[name] = t.model_dump(mode="json", exclude_none=True)
    truth[cfg.endpoint] = cfg.truth_of().model_dump(mode="json", exclude_none=True)
    doc["truth"] = truth
    order = ["design", "strata", "truth", "analysis", "decision", "interim", "full_model"]
    doc = {k: doc[k] for k in order if k in doc and doc[k] != []}
    card = cfg.card
    head = (f"# Resolved design config (bayes-sacral): study {card.name} (card sha256 {card.sha256[:12]}), endpoint {cfg.endpoint}\n")
    return head + tomli_w.dumps(doc)

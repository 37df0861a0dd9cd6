"""Binary events by arm × stratum: beta-binomial per cell (conjugate), a logit model with the log odds ratio pooled across
strata, and the event rate of selected arms (``complications``: e.g. a device failure that only one arm can have).

Every comparison is treatment vs control on the outcome's own scale: ``risk_difference`` = p(treatment) − p(control),
``risk_ratio`` and ``odds_ratio`` = treatment / control, ``log_odds_ratio`` = log odds(treatment) − log odds(control). Their
direction of benefit follows the card (events are adverse unless ``higher_is_better = true``): for an adverse event a
negative risk difference favours the treatment. ``nnt`` = 1 / (risk difference in the benefit direction): patients
treated per event avoided (or gained, for a desirable event); meaningful only where the benefit is clearly positive.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from ..data.summary import event_counts
from ..errors import InputError, Problem
from ..priors import PriorParam, PriorSpec, make_prior
from .base import (
    KindOptions,
    ModelInput,
    ModelKind,
    ModelSpec,
    PriorSet,
    check_cells,
    declared_prior_sets,
    grid_prior_sets,
)
from .blocks import pooled_effect, pooled_effect_params, pooling_of
from .conjugate import BetaPosterior, ExactPosterior

__all__ = ["EventsModel", "ComplicationsModel", "EventsOptions", "ComplicationsOptions", "event_cells"]


def _inferred_notes(study, outcome: str) -> list[str]:
    if study.summary is None:
        return []
    return [f"count recovered by arithmetic: {ln}" for ln in study.summary.inferred() if ln.startswith(outcome + "[")]


def event_cells(study, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(events, patients) per arm × stratum of the outcome, and notes; missing values are input errors."""
    card = spec.card
    name = spec.outcome
    where = study.path or study.label()
    if study.ipd is not None:
        f = study.ipd.frame
        if name not in f.columns:
            raise InputError([Problem(where, f"column '{card.columns.get(name, name)}'", "", f"the event model of "
                                      f"{card.outcome_label(name)} needs this column (0/1 per patient)")])
        f = f[f[name].notna().to_numpy(dtype=bool)]
        events = np.zeros((2, spec.K))
        trials = np.zeros((2, spec.K))
        for i, a in enumerate(spec.arms):
            for j, lev in enumerate(spec.levels):
                sel = ((f["arm"].astype(str) == a) & (f[spec.sdim].astype(str) == lev)).to_numpy(dtype=bool)
                events[i, j] = float(f.loc[sel, name].sum())
                trials[i, j] = float(sel.sum())
        dropped = int(study.ipd.frame[name].isna().sum())
        notes = [f"{dropped} patient(s) with no value of {name} were left out"] if dropped else []
        return events, trials, notes
    sd = study.require_summary(f"the {name} counts")
    ev = event_counts(sd, name).values
    n = sd.cell_sizes().values
    missing = [card.cell_label(a, lev) for i, a in enumerate(spec.arms) for j, lev in enumerate(spec.levels)
               if (np.isnan(ev[i, j]) and n[i, j] != 0) or np.isnan(n[i, j])]
    if missing:
        raise InputError([Problem(where, ", ".join(missing), "", f"the {card.outcome_label(name)} count or the cell size is not "
                                  "reported, so this model cannot be fitted")])
    return np.nan_to_num(ev), n, _inferred_notes(study, name)


# ============================================================================ comparison of arms
class EventsOptions(KindOptions):
    kind: Literal["events"] = "events"
    variant: Literal["independent", "hierarchical"] = "independent"
    """independent: conjugate Beta prior per arm × stratum cell; hierarchical: logit model whose log odds ratio is shared
    across strata by ``pooling``."""
    pooling: Literal["partial", "none", "complete"] = "partial"
    """hierarchical only: how the log odds ratio is shared across strata (ignored with one stratum)."""


def _independent_sets(spec: ModelSpec) -> dict[str, PriorSet]:
    out = {
        "uniform": PriorSet("uniform", "Beta(1, 1) in every cell: every rate equally likely.", {
            "p_event": PriorSpec("Beta", {"alpha": 1.0, "beta": 1.0}, "Bayes–Laplace uniform prior; one pseudo-event and one pseudo-non-event."),
        }),
        "jeffreys": PriorSet("jeffreys", "Beta(½, ½) in every cell: Jeffreys' invariant prior.", {
            "p_event": PriorSpec("Beta", {"alpha": 0.5, "beta": 0.5}, "Jeffreys prior for a binomial proportion; weight of one patient, "
                                 "invariant to reparametrisation."),
        }),
    }
    out.update(declared_prior_sets(spec, "events", "independent"))
    return out


def _hierarchical_sets(spec: ModelSpec) -> dict[str, PriorSet]:
    adverse = spec.o.direction < 0
    centre = -1.5 if adverse else 0.0
    icpt = PriorSpec("Normal", {"mu": centre, "sigma": 1.5},
                     "logit of the control rate: " + ("centred near 18% (95% prior interval about 1%–80%; adverse events are usually "
                                                      "uncommon)" if adverse else "centred on 50% with a wide spread"))
    sets = {}
    for name, (loc, scale), desc in (
            ("weakly_informative", (PriorSpec("Normal", {"mu": 0.0, "sigma": 1.5}, "no effect a priori; odds ratios 0.05–19 within 95%."),
                                    PriorSpec("HalfNormal", {"sigma": 1.0}, "between-stratum spread of the log odds ratio; half-normal(1) "
                                              "allows strata to differ by a factor of e (2.7) in odds ratio.")),
             "Logit-scale priors: control rate with a wide spread; log odds ratio centred on no effect; modest heterogeneity between strata."),
            ("skeptical", (PriorSpec("Normal", {"mu": 0.0, "sigma": 0.5}, "skeptical of large effects (odds ratios 0.38–2.7 within 95%)."),
                           PriorSpec("HalfNormal", {"sigma": 0.5}, "little heterogeneity between strata.")),
             "As weakly_informative, but the log odds ratio is held near 0 (odds ratios 0.38–2.7 within 95%).")):
        pri = {"intercept": icpt}
        for pname, _sup, _dims, role in pooled_effect_params("log_odds_ratio", spec):
            pri[pname] = loc if role == "location" else scale
        sets[name] = PriorSet(name, desc, pri)
    # the standard grid on the log odds ratio: one patient's information about a log odds is about p(1 - p) (p = 0.2
    # for adverse events, 0.5 otherwise); the MCID (a risk difference) becomes a log odds ratio at that control rate
    p0 = 0.2 if adverse else 0.5
    mcid = spec.o.mcid.value if spec.o.mcid is not None else None
    lor = None
    if mcid is not None:
        p1 = min(max(p0 + spec.o.direction * mcid, 0.01), 0.99)
        lor = abs(np.log(p1 / (1 - p1)) - np.log(p0 / (1 - p0)))
    locations = [p for p, _s, _d, role in pooled_effect_params("log_odds_ratio", spec) if role == "location"]
    sets.update(grid_prior_sets(spec, sets["weakly_informative"], locations, (1 / (p0 * (1 - p0))) ** 0.5, lor, "logits"))
    sets.update(declared_prior_sets(spec, "events", "hierarchical"))
    return sets


class EventsModel(ModelKind):
    name = "events"
    title = "Binary events by arm × stratum (beta-binomial)"
    options_class = EventsOptions
    outcome_kind = "event"

    def params(self, spec):
        if spec.options.variant == "independent":
            return {"p_event": PriorParam("p_event", "unit", ("arm", spec.sdim), f"probability of {spec.card.outcome_label(spec.outcome)}")}
        out = {"intercept": PriorParam("intercept", "real", (spec.sdim,), "logit P(event | control)")}
        desc = {"location": "log odds ratio, treatment vs control", "scale": "between-stratum SD of the log odds ratio"}
        for n, sup, dims, role in pooled_effect_params("log_odds_ratio", spec):
            out[n] = PriorParam(n, sup, dims, desc[role])
        return out

    def prior_sets(self, spec):
        return _independent_sets(spec) if spec.options.variant == "independent" else _hierarchical_sets(spec)

    def observed_names(self):
        return ["events_obs"]

    def data_map(self, spec):
        return {"events_obs": "events"}

    def prepare(self, study, spec):
        events, trials, notes = event_cells(study, spec)
        bad = check_cells(spec, trials, study.path or study.label())
        ds = xr.Dataset({"events": (("arm", spec.sdim), events.astype(float)), "trials": (("arm", spec.sdim), trials.astype(float))},
                        coords={"arm": list(spec.arms), spec.sdim: list(spec.levels)})
        return ModelInput(ds, notes, not_estimable=bad)

    def build(self, inp, priors, spec):
        import pymc as pm
        import pytensor.tensor as pt

        coords = spec.coords()
        d = inp.data
        sdim = spec.sdim
        trials = d["trials"].values
        weights = trials.sum(axis=0) / trials.sum()
        with pm.Model(coords=coords) as m:
            events = pm.Data("events_obs", d["events"].values, dims=("arm", sdim))
            n = pm.Data("trials", trials, dims=("arm", sdim))
            w = pm.Data("stratum_weight", weights, dims=sdim)
            if spec.options.variant == "independent":
                p = make_prior("p_event", priors["p_event"], ("arm", sdim), coords)
            else:
                a = make_prior("intercept", priors["intercept"], (sdim,), coords)
                lor = pooled_effect("log_odds_ratio", priors, spec, coords)
                p = pm.Deterministic("p_event", pm.math.invlogit(pt.stack([a + lor, a])), dims=("arm", sdim))  # arm order: treatment, control
            pm.Binomial("events", n=n, p=p, observed=events, dims=("arm", sdim))
            direction = spec.o.direction
            p_t, p_c = p[0], p[1]
            rd = pm.Deterministic("risk_difference", p_t - p_c, dims=sdim)
            pm.Deterministic("risk_ratio", p_t / p_c, dims=sdim)
            pm.Deterministic("odds_ratio", (p_t / (1 - p_t)) / (p_c / (1 - p_c)), dims=sdim)
            pm.Deterministic("nnt", 1.0 / (direction * rd), dims=sdim)
            pooled = pm.Deterministic("p_event_pooled", (p * w[None, :]).sum(axis=1), dims="arm")
            rdp = pm.Deterministic("risk_difference_pooled", pooled[0] - pooled[1])
            pm.Deterministic("risk_ratio_pooled", pooled[0] / pooled[1])
            pm.Deterministic("odds_ratio_pooled", (pooled[0] / (1 - pooled[0])) / (pooled[1] / (1 - pooled[1])))
            pm.Deterministic("nnt_pooled", 1.0 / (direction * rdp))
        return m

    def estimands(self, spec):
        base = ["p_event", "risk_difference", "risk_ratio", "odds_ratio", "nnt",
                "p_event_pooled", "risk_difference_pooled", "risk_ratio_pooled", "odds_ratio_pooled", "nnt_pooled"]
        if spec.options.variant == "hierarchical":
            base += ["log_odds_ratio"] + (["log_odds_ratio_mean", "log_odds_ratio_sd"] if pooling_of(spec) == "partial" else [])
        return base

    def effects(self, spec):
        d = spec.o.direction
        out = {"risk_difference": d, "risk_difference_pooled": d}
        if spec.options.variant == "hierarchical":
            out["log_odds_ratio"] = d
        return out

    def headline(self, spec):
        return ["risk_difference", "risk_difference_pooled"] if spec.K > 1 else ["risk_difference"]

    def threshold_variables(self, spec):
        """The card's MCID of an event outcome is an absolute risk difference."""
        return ["risk_difference", "risk_difference_pooled"]

    def stratum_aggregates(self, spec):
        return ["p_event_pooled", "risk_difference_pooled", "risk_ratio_pooled", "odds_ratio_pooled", "nnt_pooled"]

    def outcome_phrase(self, spec):
        label = spec.card.outcome_label(spec.outcome)
        ctrl = spec.card.arm_label(spec.card.arms.control)
        return f"led to fewer {label}s than {ctrl}" if spec.o.direction < 0 else f"led to more {label}s than {ctrl}"

    def axis_label(self, spec, var):
        c = self.contrast_phrase(spec)
        label = spec.card.outcome_label(spec.outcome)
        return {"risk_difference": f"Risk difference of {label}, {c}", "risk_difference_pooled": f"Risk difference of {label}, {c}, strata pooled",
                "p_event": f"P({label})", "log_odds_ratio": f"Log odds ratio of {label}, {c}",
                "risk_ratio": f"Risk ratio of {label}, {c}"}.get(var, var.replace("_", " "))

    def diagnostic_params(self, spec):
        return ["p_event", "log_odds_ratio_sd"]

    def prior_posterior_vars(self, spec):
        return ["risk_difference"]

    def exact_available(self, priors, spec):
        return spec.options.variant == "independent" and "p_event" in priors and priors["p_event"].dist == "Beta"

    def exact_draws(self, inp, priors, spec, rng, size, prior=False):
        """p_event[a, s] ~ Beta(alpha + events, beta + n − events), independently per cell (Beta(alpha, beta) for the prior)."""
        if not self.exact_available(priors, spec):
            return None
        a = _table(priors["p_event"].params["alpha"], spec.arms)
        b = _table(priors["p_event"].params["beta"], spec.arms)
        ev, tr = inp.data["events"], inp.data["trials"]
        out = np.empty((*size, len(spec.arms), len(spec.levels)))
        for i, arm in enumerate(spec.arms):
            for j, lev in enumerate(spec.levels):
                y = 0.0 if prior else np.nan_to_num(float(ev.sel({"arm": arm, spec.sdim: lev})))
                n = 0.0 if prior else np.nan_to_num(float(tr.sel({"arm": arm, spec.sdim: lev})))
                out[..., i, j] = rng.beta(a[arm] + y, b[arm] + n - y, size=size)
        return {"p_event": out}

    def exact_marginals(self, inp, priors, spec, prior=False):
        if spec.options.variant != "independent" or priors["p_event"].dist != "Beta":
            return None
        a = _table(priors["p_event"].params["alpha"], spec.arms)
        b = _table(priors["p_event"].params["beta"], spec.arms)
        ev, tr = inp.data["events"], inp.data["trials"]
        betas, post = {}, {}
        for arm in spec.arms:
            for lev in spec.levels:
                y = 0.0 if prior else float(ev.sel({"arm": arm, spec.sdim: lev}))
                n = 0.0 if prior else float(tr.sel({"arm": arm, spec.sdim: lev}))
                post[arm, lev] = BetaPosterior(a[arm] + y, b[arm] + n - y)
                betas[f"p_event[{arm}, {lev}]"] = post[arm, lev]
        t, c = spec.arms
        diffs = {f"risk_difference[{lev}]": (post[c, lev], post[t, lev]) for lev in spec.levels}
        return ExactPosterior(betas, diffs)

    def no_moment_variables(self, spec):
        why = ("1 / risk difference has no finite mean or variance when the risk difference has posterior density near 0; "
               "read its median and equal-tailed interval, and only where the probability of benefit is high")
        return {"nnt": why, "nnt_pooled": why}

    def describe(self, spec):
        card = spec.card
        t, c = card.arm_label(spec.arms[0]), card.arm_label(spec.arms[1])
        label = card.outcome_label(spec.outcome)
        common = (f" risk_difference = p[{t}] − p[{c}]; {'fewer' if spec.o.direction < 0 else 'more'} events favour {t}. Pooled-over-strata "
                  "quantities weight the strata by their share of the study's patients.")
        if spec.options.variant == "independent":
            return (f"{label}: events[a,s] ~ Binomial(n[a,s], p_event[a,s]); p_event[a,s] ~ Beta(α, β) independently per arm a and "
                    "stratum s (conjugate: the posterior is Beta(α + events, β + n − events))." + common)
        pool = {"partial": "log_odds_ratio[s] = log_odds_ratio_mean + log_odds_ratio_sd · z[s], z[s] ~ Normal(0, 1) (partial pooling "
                           "across strata, non-centred)", "none": "log_odds_ratio[s] independent per stratum",
                "complete": "one log odds ratio shared by every stratum", "single": "one log odds ratio (one stratum)"}[pooling_of(spec)]
        return (f"{label}: events[a,s] ~ Binomial(n[a,s], p[a,s]); logit p[{c},s] = intercept[s]; logit p[{t},s] = intercept[s] + "
                f"log_odds_ratio[s]; {pool}." + common)


def _table(value, keys: list[str]) -> dict[str, float]:
    """A prior parameter as label -> value (scalars broadcast; tables keyed by labels)."""
    if isinstance(value, dict):
        return {k: float(v) for k, v in value.items()}
    return {k: float(value) for k in keys}


# ============================================================================ rate in selected arms
class ComplicationsOptions(KindOptions):
    kind: Literal["complications"] = "complications"
    arms: list[str] | None = None
    """Arms whose event rate is modelled (default: the treatment arm, e.g. a complication only it can have); strata pooled."""


_RATE_SETS = {
    "uniform": PriorSet("uniform", "Beta(1, 1).", {"p_event": PriorSpec("Beta", {"alpha": 1.0, "beta": 1.0}, "uniform on 0–1.")}),
    "jeffreys": PriorSet("jeffreys", "Beta(½, ½).", {"p_event": PriorSpec("Beta", {"alpha": 0.5, "beta": 0.5}, "Jeffreys prior.")}),
}


class ComplicationsModel(ModelKind):
    name = "complications"
    title = "An event rate in selected arms (strata pooled)"
    options_class = ComplicationsOptions
    outcome_kind = "event"

    def arms(self, spec) -> list[str]:
        return list(spec.options.arms or [spec.arms[0]])

    def params(self, spec):
        return {"p_event": PriorParam("p_event", "unit", ("arm",), f"probability of {spec.card.outcome_label(spec.outcome)}")}

    def prior_sets(self, spec):
        return {**_RATE_SETS, **declared_prior_sets(spec, "complications")}

    def check_options(self, spec, data_source):
        bad = [a for a in (spec.options.arms or []) if a not in spec.arms]
        if bad:
            return [("model.arms", repr(bad), f"arms of this study: {', '.join(spec.arms)}")]
        if spec.options.arms is not None and len(set(spec.options.arms)) != len(spec.options.arms or []):
            return [("model.arms", repr(spec.options.arms), "each arm is named once")]
        if spec.options.arms == []:
            return [("model.arms", "[]", "name at least one arm")]
        return []

    def observed_names(self):
        return ["events_obs"]

    def data_map(self, spec):
        return {"events_obs": "events"}

    def prepare(self, study, spec):
        events, trials, notes = event_cells(study, spec)
        arms = self.arms(spec)
        idx = [spec.arms.index(a) for a in arms]
        ev, n = events[idx].sum(axis=1), trials[idx].sum(axis=1)
        if (n == 0).any():
            empty = [a for a, k in zip(arms, n, strict=True) if k == 0]
            raise InputError([Problem(study.path or study.label(), f"arm {', '.join(empty)}", "0 patients", "no patients in this arm")])
        ds = xr.Dataset({"events": (("arm",), ev), "trials": (("arm",), n)}, coords={"arm": arms})
        return ModelInput(ds, notes)

    def build(self, inp, priors, spec):
        import pymc as pm

        coords = {"arm": self.arms(spec)}
        d = inp.data
        with pm.Model(coords=coords) as m:
            events = pm.Data("events_obs", d["events"].values, dims="arm")
            n = pm.Data("trials", d["trials"].values, dims="arm")
            p = make_prior("p_event", priors["p_event"], ("arm",), coords)
            pm.Binomial("events", n=n, p=p, observed=events, dims="arm")
        return m

    def exact_available(self, priors, spec):
        return "p_event" in priors and priors["p_event"].dist == "Beta"

    def exact_draws(self, inp, priors, spec, rng, size, prior=False):
        """p_event[a] ~ Beta(alpha + events, beta + n − events) per arm (Beta(alpha, beta) for the prior)."""
        if not self.exact_available(priors, spec):
            return None
        arms = self.arms(spec)
        a, b = _table(priors["p_event"].params["alpha"], arms), _table(priors["p_event"].params["beta"], arms)
        out = np.empty((*size, len(arms)))
        for i, arm in enumerate(arms):
            y, n = (0.0, 0.0) if prior else (float(inp.data["events"].sel(arm=arm)), float(inp.data["trials"].sel(arm=arm)))
            out[..., i] = rng.beta(a[arm] + y, b[arm] + n - y, size=size)
        return {"p_event": out}

    def exact_marginals(self, inp, priors, spec, prior=False):
        pr = priors["p_event"]
        if pr.dist != "Beta":
            return None
        arms = self.arms(spec)
        a, b = _table(pr.params["alpha"], arms), _table(pr.params["beta"], arms)
        betas = {}
        for arm in arms:
            y, n = (0.0, 0.0) if prior else (float(inp.data["events"].sel(arm=arm)), float(inp.data["trials"].sel(arm=arm)))
            betas[f"p_event[{arm}]"] = BetaPosterior(a[arm] + y, b[arm] + n - y)
        return ExactPosterior(betas, {})

    def estimands(self, spec):
        return ["p_event"]

    def axis_label(self, spec, var):
        return f"P({spec.card.outcome_label(spec.outcome)})" if var == "p_event" else var.replace("_", " ")

    def diagnostic_params(self, spec):
        return ["p_event"]

    def prior_posterior_vars(self, spec):
        return ["p_event"]

    def effects(self, spec):
        return {}

    def headline(self, spec):
        return ["p_event"]

    def describe(self, spec):
        label = spec.card.outcome_label(spec.outcome)
        arms = ", ".join(spec.card.arm_label(a) for a in self.arms(spec))
        return f"{label} in {arms}: events[a] ~ Binomial(n[a], p_event[a]) over all strata; p_event[a] ~ Beta(α, β) (conjugate)."

"""Event models: secondary procedures (beta-binomial), narcotic-use change (Dirichlet-multinomial, ordered logit),
procedural complications (beta-binomial rate).

Orientation (so that "> 0" favours PSFS for every comparative effect a decision threshold may use):
``risk_difference`` = P(secondary | sacroplasty) − P(secondary | PSFS) (absolute risk reduction with PSFS);
``risk_ratio`` and ``odds_ratio`` are PSFS relative to sacroplasty (< 1 favours PSFS);
``nnt`` = 1 / risk_difference (PSFS patients treated per secondary procedure avoided; meaningful only where
the risk difference is clearly positive); ``ordinal_log_odds_ratio`` > 0 means PSFS patients are more likely to
be in a better (less narcotic) category.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from ..data.source import StudyData
from ..errors import InputError, Problem
from ..priors import PriorParam, PriorSpec, make_prior
from ..vocabulary import ARMS, FRACTURES, NARCOTIC_LEVELS
from .base import KindOptions, ModelInput, ModelKind, PriorSet
from .conjugate import BetaPosterior, beta_row, difference_row, dirichlet_marginals

__all__ = ["SecondaryProcedures", "NarcoticChange", "Complications"]

Pooling = Literal["partial", "none", "complete"]


def _missing(what: str, study: StudyData, where: str) -> InputError:
    return InputError([Problem(study.path or "published study", where, "", f"{what} is not reported, so this model cannot be fitted")])


def _cell_counts_from_summary(study: StudyData, var: str, label: str) -> xr.DataArray:
    ds = study.require_summary(label).to_dataset()
    arr = ds[var]
    if np.isnan(arr.values).any():
        cells = [f"{a} × {f}" for a in arr["arm"].values for f in arr["fracture"].values if np.isnan(arr.sel(arm=a, fracture=f).values).any()]
        raise _missing(label, study, ", ".join(cells))
    return arr


def _table(value, coords) -> dict[str, float]:
    """A prior parameter as arm -> value (scalars broadcast; tables keyed by arm labels)."""
    if isinstance(value, dict):
        return {k: float(v) for k, v in value.items()}
    return {arm: float(value) for arm in coords["arm"]}


def _inferred_notes(study: StudyData, key: str) -> list[str]:
    if study.summary is None:
        return []
    lines = study.summary.to_dataset().attrs.get("inferred", "").splitlines()
    return [f"count recovered by arithmetic: {ln}" for ln in lines if ln.startswith(key)]


# ============================================================================ secondary procedures
class SecondaryOptions(KindOptions):
    kind: Literal["secondary_procedures"] = "secondary_procedures"
    variant: Literal["independent", "hierarchical"] = "independent"
    """independent: conjugate Beta prior per arm × fracture cell; hierarchical: logit model whose log odds
    ratio is partially pooled across fracture strata."""


_SEC_INDEPENDENT_SETS = {
    "uniform": PriorSet("uniform", "Beta(1, 1) in every cell: every rate equally likely.", {
        "p_secondary": PriorSpec("Beta", {"alpha": 1.0, "beta": 1.0}, "Bayes–Laplace uniform prior; one pseudo-event and one pseudo-non-event."),
    }),
    "jeffreys": PriorSet("jeffreys", "Beta(½, ½) in every cell: Jeffreys' invariant prior.", {
        "p_secondary": PriorSpec("Beta", {"alpha": 0.5, "beta": 0.5}, "Jeffreys prior for a binomial proportion; weight of one patient, invariant to reparametrisation."),
    }),
    "skeptical": PriorSet("skeptical", "The same Beta(2, 8) in both arms: no difference a priori, held with the weight of 10 patients per cell.", {
        "p_secondary": PriorSpec("Beta", {"alpha": 2.0, "beta": 8.0},
                                 "Identical in both arms, so any difference must come from the data; prior mean 20% (an assumption, not "
                                 "data) and weight 10 patients, comparable to the cell sizes, which pulls the observed 0/9 vs 5/12 toward equality."),
    }),
    "literature": PriorSet("literature", "PSFS cells informed by Papanastassiou et al. (ref. 8 of the paper): 1 revision among 6 oncologic patients "
                           "after percutaneous SI screw fixation, discounted by half; sacroplasty cells uniform (the paper cites no rate).", {
        "p_secondary": PriorSpec("Beta", {"alpha": {"psfs": 1.5, "sacroplasty": 1.0}, "beta": {"psfs": 3.5, "sacroplasty": 1.0}},
                                 "PSFS: Beta(1 + ½·1, 1 + ½·5) = Beta(1.5, 3.5) from 1/6 revisions in Papanastassiou et al. as summarised in the "
                                 "paper's Discussion (a different population and end point, hence the 50% discount); sacroplasty: Beta(1, 1)."),
    }, source="Papanastassiou et al., cited as reference 8 in Cox et al. 2025 (1 revision in 6 patients)"),
}

_SEC_HIER_SETS = {
    "weakly_informative": PriorSet("weakly_informative", "Logit-scale priors: sacroplasty rate centred near 18% with a wide spread; "
                                   "log odds ratio centred on no effect; modest heterogeneity between fracture strata.", {
        "intercept": PriorSpec("Normal", {"mu": -1.5, "sigma": 1.5}, "logit of the sacroplasty rate: 95% prior interval about 1%–80%."),
        "log_odds_ratio_mean": PriorSpec("Normal", {"mu": 0.0, "sigma": 1.5}, "no effect a priori; odds ratios 0.05–19 within 95%."),
        "log_odds_ratio_sd": PriorSpec("HalfNormal", {"sigma": 1.0}, "between-stratum spread of the log odds ratio; half-normal(1) "
                                        "allows strata to differ by a factor of e (2.7) in odds ratio."),
    }),
    "skeptical": PriorSet("skeptical", "As weakly_informative, but the pooled log odds ratio is held near 0 (odds ratios 0.38–2.7 within 95%).", {
        "intercept": PriorSpec("Normal", {"mu": -1.5, "sigma": 1.5}, "as weakly_informative."),
        "log_odds_ratio_mean": PriorSpec("Normal", {"mu": 0.0, "sigma": 0.5}, "skeptical of large effects."),
        "log_odds_ratio_sd": PriorSpec("HalfNormal", {"sigma": 0.5}, "little heterogeneity between strata."),
    }),
}


class SecondaryProcedures(ModelKind):
    name = "secondary_procedures"
    title = "Secondary procedures by arm × fracture (beta-binomial)"
    options_class = SecondaryOptions

    def params(self, options):
        if options.variant == "independent":
            return {"p_secondary": PriorParam("p_secondary", "unit", ("arm", "fracture"), "probability of a secondary procedure")}
        return {
            "intercept": PriorParam("intercept", "real", ("fracture",), "logit P(secondary | sacroplasty)"),
            "log_odds_ratio_mean": PriorParam("log_odds_ratio_mean", "real", (), "pooled log odds ratio, PSFS vs sacroplasty"),
            "log_odds_ratio_sd": PriorParam("log_odds_ratio_sd", "positive", (), "between-stratum SD of the log odds ratio"),
        }

    def prior_sets(self, options):
        return _SEC_INDEPENDENT_SETS if options.variant == "independent" else _SEC_HIER_SETS

    def observed_names(self):
        return ["events_obs"]

    def prepare(self, study, options):
        if study.ipd is not None:
            f = study.ipd.frame
            if "secondary_procedure" not in f.columns:
                raise InputError([Problem(study.path, "column 'secondary_procedure'", "", "the secondary-procedure model needs this column")])
            f = f.dropna(subset=["secondary_procedure"])
            events = np.zeros((2, 2))
            trials = np.zeros((2, 2))
            for i, a in enumerate(ARMS):
                for j, fr in enumerate(FRACTURES):
                    sel = (f["arm"].astype(str) == a) & (f["fracture"].astype(str) == fr)
                    events[i, j] = f.loc[sel, "secondary_procedure"].sum()
                    trials[i, j] = sel.sum()
            assumptions = []
        else:
            events = _cell_counts_from_summary(study, "secondary_procedures", "secondary procedure count").values
            trials = _cell_counts_from_summary(study, "n", "cell size").values
            assumptions = _inferred_notes(study, "secondary_procedure")
        if (trials == 0).any():
            raise InputError([Problem(study.path or "published study", "cells", "", "every arm × fracture cell needs at least one patient")])
        ds = xr.Dataset(
            {"events": (("arm", "fracture"), events.astype(float)), "trials": (("arm", "fracture"), trials.astype(float))},
            coords={"arm": list(ARMS), "fracture": list(FRACTURES)},
        )
        return ModelInput(ds, assumptions)

    def build(self, inp, priors, options):
        coords = inp.coords
        d = inp.data
        weights = d["trials"].sum("arm") / d["trials"].sum()
        with pm.Model(coords=coords) as m:
            events = pm.Data("events_obs", d["events"].values, dims=("arm", "fracture"))
            trials = pm.Data("trials", d["trials"].values, dims=("arm", "fracture"))
            w = pm.Data("stratum_weight", weights.values, dims="fracture")
            if options.variant == "independent":
                p = make_prior("p_secondary", priors["p_secondary"], ("arm", "fracture"), coords)
            else:
                a = make_prior("intercept", priors["intercept"], ("fracture",), coords)
                mu = make_prior("log_odds_ratio_mean", priors["log_odds_ratio_mean"], (), coords)
                tau = make_prior("log_odds_ratio_sd", priors["log_odds_ratio_sd"], (), coords)
                z = pm.Normal("log_odds_ratio_z", 0.0, 1.0, dims="fracture")
                lor = pm.Deterministic("log_odds_ratio", mu + tau * z, dims="fracture")
                logits = pt.stack([a + lor, a])  # arm order: psfs, sacroplasty
                p = pm.Deterministic("p_secondary", pm.math.invlogit(logits), dims=("arm", "fracture"))
            pm.Binomial("secondary_procedures", n=trials, p=p, observed=events, dims=("arm", "fracture"))
            p_psfs, p_sac = p[0], p[1]
            rd = pm.Deterministic("risk_difference", p_sac - p_psfs, dims="fracture")
            pm.Deterministic("risk_ratio", p_psfs / p_sac, dims="fracture")
            pm.Deterministic("odds_ratio", (p_psfs / (1 - p_psfs)) / (p_sac / (1 - p_sac)), dims="fracture")
            pm.Deterministic("nnt", 1.0 / rd, dims="fracture")
            pooled = pm.Deterministic("p_secondary_pooled", (p * w[None, :]).sum(axis=1), dims="arm")
            rdp = pm.Deterministic("risk_difference_pooled", pooled[1] - pooled[0])
            pm.Deterministic("risk_ratio_pooled", pooled[0] / pooled[1])
            pm.Deterministic("odds_ratio_pooled", (pooled[0] / (1 - pooled[0])) / (pooled[1] / (1 - pooled[1])))
            pm.Deterministic("nnt_pooled", 1.0 / rdp)
        return m

    def estimands(self, options):
        base = ["p_secondary", "risk_difference", "risk_ratio", "odds_ratio", "nnt",
                "p_secondary_pooled", "risk_difference_pooled", "risk_ratio_pooled", "odds_ratio_pooled", "nnt_pooled"]
        return base + (["log_odds_ratio", "log_odds_ratio_mean", "log_odds_ratio_sd"] if options.variant == "hierarchical" else [])

    def effect_variables(self, options):
        return ["risk_difference", "risk_difference_pooled"]

    def exact_summary(self, inp, priors, options, prob):
        if options.variant != "independent":
            return None
        spec = priors["p_secondary"]
        if spec.dist != "Beta":
            return None
        coords = inp.coords
        a = _table(spec.params["alpha"], coords)
        b = _table(spec.params["beta"], coords)
        ev, tr = inp.data["events"], inp.data["trials"]
        rows, post = [], {}
        for arm in coords["arm"]:
            for frac in coords["fracture"]:
                y, n = float(ev.sel(arm=arm, fracture=frac)), float(tr.sel(arm=arm, fracture=frac))
                post[arm, frac] = BetaPosterior(a[arm] + y, b[arm] + n - y)
                rows.append(beta_row(f"p_secondary[{arm}, {frac}]", post[arm, frac], prob))
        for frac in coords["fracture"]:
            rows.append(difference_row(f"risk_difference[{frac}]", post["psfs", frac], post["sacroplasty", frac], prob))
        return rows

    def no_moment_variables(self, options):
        why = ("1 / risk difference has no finite mean or variance when the risk difference has posterior density near 0; "
               "read its median and equal-tailed interval, and only where P(risk difference > 0) is high")
        return {"nnt": why, "nnt_pooled": why}

    def describe(self, options):
        if options.variant == "independent":
            return ("events[a,f] ~ Binomial(n[a,f], p_secondary[a,f]); p_secondary[a,f] ~ Beta(α, β) independently per arm a and "
                    "fracture f (conjugate: the posterior is Beta(α + events, β + n − events)). Pooled-over-strata quantities weight "
                    "the strata by their share of the study's patients.")
        return ("events[a,f] ~ Binomial(n[a,f], p[a,f]); logit p[sacroplasty,f] = intercept[f]; logit p[psfs,f] = intercept[f] + "
                "log_odds_ratio[f]; log_odds_ratio[f] = log_odds_ratio_mean + log_odds_ratio_sd · z[f], z[f] ~ Normal(0, 1) "
                "(partial pooling across fracture strata, non-centred).")


# ============================================================================ narcotic change
class NarcoticOptions(KindOptions):
    kind: Literal["narcotic_change"] = "narcotic_change"
    variant: Literal["dirichlet_multinomial", "ordered_logit"] = "dirichlet_multinomial"
    """dirichlet_multinomial: a Dirichlet prior on the three category probabilities of each arm × fracture cell;
    ordered_logit: cutpoints per fracture stratum and a treatment log odds ratio."""
    pooling: Pooling = "partial"
    """ordered_logit only: how the treatment log odds ratio is shared across fracture strata."""


CUTPOINTS = ("decrease|stable", "stable|increase")

_NARC_DM_SETS = {
    "uniform": PriorSet("uniform", "Dirichlet(1, 1, 1) per cell: uniform over the probability simplex.", {
        "p_narcotic": PriorSpec("Dirichlet", {"a": 1.0}, "uniform on the simplex; weight of three patients."),
    }),
    "jeffreys": PriorSet("jeffreys", "Dirichlet(½, ½, ½) per cell (Jeffreys).", {
        "p_narcotic": PriorSpec("Dirichlet", {"a": 0.5}, "Jeffreys prior for multinomial probabilities; weight of 1.5 patients."),
    }),
}


def _narc_ol_sets(pooling: str) -> dict[str, PriorSet]:
    base = PriorSpec("Dirichlet", {"a": 1.0}, "induced-Dirichlet cutpoint prior (Betancourt 2019): uniform over the three category "
                     "probabilities under sacroplasty alone; the cutpoints are their cumulative logits, ordered by construction.")
    if pooling == "partial":
        wi = {"baseline_probabilities": base,
              "ordinal_log_odds_ratio_mean": PriorSpec("Normal", {"mu": 0.0, "sigma": 1.5}, "no effect a priori; odds ratios 0.05–19 within 95%."),
              "ordinal_log_odds_ratio_sd": PriorSpec("HalfNormal", {"sigma": 1.0}, "between-stratum spread of the treatment effect.")}
        sk = {"baseline_probabilities": base,
              "ordinal_log_odds_ratio_mean": PriorSpec("Normal", {"mu": 0.0, "sigma": 0.5}, "skeptical of large effects (odds ratios 0.38–2.7)."),
              "ordinal_log_odds_ratio_sd": PriorSpec("HalfNormal", {"sigma": 0.5}, "little heterogeneity between strata.")}
    else:
        wi = {"baseline_probabilities": base, "ordinal_log_odds_ratio": PriorSpec("Normal", {"mu": 0.0, "sigma": 1.5}, "no effect a priori; odds ratios 0.05–19 within 95%.")}
        sk = {"baseline_probabilities": base, "ordinal_log_odds_ratio": PriorSpec("Normal", {"mu": 0.0, "sigma": 0.5}, "skeptical of large effects.")}
    return {
        "weakly_informative": PriorSet("weakly_informative", "Uniform baseline category probabilities, treatment effect centred on no effect.", wi),
        "skeptical": PriorSet("skeptical", "Treatment effect held near no effect.", sk),
    }


class NarcoticChange(ModelKind):
    name = "narcotic_change"
    title = "Change in narcotic use (decrease / stable / increase)"
    options_class = NarcoticOptions

    def params(self, options):
        if options.variant == "dirichlet_multinomial":
            return {"p_narcotic": PriorParam("p_narcotic", "simplex", ("arm", "fracture", "narcotic_change"), "category probabilities per cell")}
        out = {"baseline_probabilities": PriorParam("baseline_probabilities", "simplex", ("fracture", "narcotic_change"),
                                                    "category probabilities under sacroplasty alone (they define the cutpoints)")}
        if options.pooling == "partial":
            out["ordinal_log_odds_ratio_mean"] = PriorParam("ordinal_log_odds_ratio_mean", "real", (), "pooled treatment log odds ratio")
            out["ordinal_log_odds_ratio_sd"] = PriorParam("ordinal_log_odds_ratio_sd", "positive", (), "between-stratum SD")
        else:
            dims = ("fracture",) if options.pooling == "none" else ()
            out["ordinal_log_odds_ratio"] = PriorParam("ordinal_log_odds_ratio", "real", dims, "treatment log odds ratio")
        return out

    def prior_sets(self, options):
        return _NARC_DM_SETS if options.variant == "dirichlet_multinomial" else _narc_ol_sets(options.pooling)

    def observed_names(self):
        return ["counts_obs"]

    def prepare(self, study, options):
        if study.ipd is not None:
            f = study.ipd.frame
            if "narcotic_change" not in f.columns:
                raise InputError([Problem(study.path, "column 'narcotic_change'", "", "the narcotic-change model needs this column")])
            f = f.dropna(subset=["narcotic_change"])
            counts = np.zeros((2, 2, 3))
            for i, a in enumerate(ARMS):
                for j, fr in enumerate(FRACTURES):
                    sel = (f["arm"].astype(str) == a) & (f["fracture"].astype(str) == fr)
                    for k, lev in enumerate(NARCOTIC_LEVELS):
                        counts[i, j, k] = (f.loc[sel, "narcotic_change"].astype(str) == lev).sum()
            assumptions = []
        else:
            counts = _cell_counts_from_summary(study, "narcotic_counts", "narcotic-change count").values
            assumptions = _inferred_notes(study, "narcotic_change")
        ds = xr.Dataset(
            {"counts": (("arm", "fracture", "narcotic_change"), counts.astype(float)),
             "trials": (("arm", "fracture"), counts.sum(-1).astype(float))},
            coords={"arm": list(ARMS), "fracture": list(FRACTURES), "narcotic_change": list(NARCOTIC_LEVELS), "cutpoint": list(CUTPOINTS)},
        )
        return ModelInput(ds, assumptions)

    def build(self, inp, priors, options):
        coords = inp.coords
        d = inp.data
        with pm.Model(coords=coords) as m:
            counts = pm.Data("counts_obs", d["counts"].values, dims=("arm", "fracture", "narcotic_change"))
            trials = pm.Data("trials", d["trials"].values, dims=("arm", "fracture"))
            if options.variant == "dirichlet_multinomial":
                p = make_prior("p_narcotic", priors["p_narcotic"], ("arm", "fracture", "narcotic_change"), coords)
            else:
                # Induced-Dirichlet cutpoints: ordered in the sampler and in forward (prior predictive) draws alike.
                # (PyMC's `ordered` transform orders only the sampler's values, which breaks prior predictive draws.)
                base = make_prior("baseline_probabilities", priors["baseline_probabilities"], ("fracture", "narcotic_change"), coords)
                cum_base = pt.clip(pt.cumsum(base, axis=-1)[:, :-1], 1e-12, 1 - 1e-12)
                c = pm.Deterministic("cutpoints", pt.log(cum_base) - pt.log1p(-cum_base), dims=("fracture", "cutpoint"))
                if options.pooling == "partial":
                    mu = make_prior("ordinal_log_odds_ratio_mean", priors["ordinal_log_odds_ratio_mean"], (), coords)
                    tau = make_prior("ordinal_log_odds_ratio_sd", priors["ordinal_log_odds_ratio_sd"], (), coords)
                    z = pm.Normal("ordinal_log_odds_ratio_z", 0.0, 1.0, dims="fracture")
                    beta = pm.Deterministic("ordinal_log_odds_ratio", mu + tau * z, dims="fracture")
                elif options.pooling == "none":
                    beta = make_prior("ordinal_log_odds_ratio", priors["ordinal_log_odds_ratio"], ("fracture",), coords)
                else:
                    b0 = make_prior("ordinal_log_odds_ratio", priors["ordinal_log_odds_ratio"], (), coords)
                    beta = pt.stack([b0] * len(coords["fracture"]))
                # P(category <= k) = logistic(c_k + beta * psfs): beta > 0 moves PSFS patients toward "decrease".
                shift = pt.stack([beta, pt.zeros_like(beta)])[:, :, None]  # (arm, fracture, 1)
                cum = pm.math.invlogit(c[None, :, :] + shift)  # (arm, fracture, cutpoint)
                p = pm.Deterministic("p_narcotic", pt.concatenate([cum[..., :1], cum[..., 1:] - cum[..., :1], 1 - cum[..., 1:]], axis=-1),
                                     dims=("arm", "fracture", "narcotic_change"))
            pm.Multinomial("narcotic_counts", n=trials, p=p, observed=counts, dims=("arm", "fracture", "narcotic_change"))
            pdec = pm.Deterministic("p_decrease", p[..., 0], dims=("arm", "fracture"))
            pinc = pm.Deterministic("p_increase", p[..., 2], dims=("arm", "fracture"))
            pm.Deterministic("difference_p_decrease", pdec[0] - pdec[1], dims="fracture")
            pm.Deterministic("difference_p_increase", pinc[0] - pinc[1], dims="fracture")
        return m

    def exact_summary(self, inp, priors, options, prob):
        if options.variant != "dirichlet_multinomial":
            return None
        a = priors["p_narcotic"].params["a"]
        if isinstance(a, dict):
            return None
        counts = inp.data["counts"]
        rows, marg = [], {}
        for arm in inp.coords["arm"]:
            for frac in inp.coords["fracture"]:
                c = counts.sel(arm=arm, fracture=frac).values
                marg[arm, frac] = dirichlet_marginals(np.full(len(c), float(a)), c)
        for label, k in (("p_decrease", 0), ("p_increase", 2)):
            for arm in inp.coords["arm"]:
                for frac in inp.coords["fracture"]:
                    rows.append(beta_row(f"{label}[{arm}, {frac}]", marg[arm, frac][k], prob))
        for label, k in (("difference_p_decrease", 0), ("difference_p_increase", 2)):
            for frac in inp.coords["fracture"]:
                # psfs − sacroplasty = Y − X with Y = psfs (cells are independent a posteriori)
                rows.append(difference_row(f"{label}[{frac}]", marg["sacroplasty", frac][k], marg["psfs", frac][k], prob))
        return rows

    def estimands(self, options):
        out = ["p_decrease", "p_increase", "difference_p_decrease", "difference_p_increase"]
        if options.variant == "ordered_logit":
            out = ["ordinal_log_odds_ratio"] + (["ordinal_log_odds_ratio_mean", "ordinal_log_odds_ratio_sd"] if options.pooling == "partial" else []) + out
        return out

    def effect_variables(self, options):
        return ["ordinal_log_odds_ratio"] if options.variant == "ordered_logit" else ["difference_p_decrease"]

    def describe(self, options):
        if options.variant == "dirichlet_multinomial":
            return ("counts[a,f,·] ~ Multinomial(n[a,f], p_narcotic[a,f,·]); p_narcotic[a,f,·] ~ Dirichlet(a) per arm × fracture cell "
                    "(conjugate: the posterior is Dirichlet(a + counts)).")
        pool = {"partial": "ordinal_log_odds_ratio[f] = mean + sd · z[f] (partial pooling, non-centred)",
                "none": "ordinal_log_odds_ratio[f] independent per stratum",
                "complete": "one ordinal_log_odds_ratio shared by both strata"}[options.pooling]
        return ("Ordered logit: P(change ≤ k | a, f) = logistic(cutpoints[f,k] + ordinal_log_odds_ratio[f] · PSFS) with the categories "
                f"decrease < stable < increase, so a positive log odds ratio favours PSFS; {pool}. The cutpoints are the cumulative "
                "logits of baseline_probabilities[f] (the sacroplasty category probabilities) with a Dirichlet prior (induced-Dirichlet "
                "prior), which keeps them ordered in prior and posterior draws alike.")


# ============================================================================ complications
class ComplicationOptions(KindOptions):
    kind: Literal["complications"] = "complications"
    arms: list[Literal["psfs", "sacroplasty"]] = ["psfs"]
    """Arms whose complication rate is modelled. The screw back-out can only occur with screws, so the default is PSFS."""


_COMPL_SETS = {
    "uniform": PriorSet("uniform", "Beta(1, 1).", {"p_complication": PriorSpec("Beta", {"alpha": 1.0, "beta": 1.0}, "uniform on 0–1.")}),
    "jeffreys": PriorSet("jeffreys", "Beta(½, ½).", {"p_complication": PriorSpec("Beta", {"alpha": 0.5, "beta": 0.5}, "Jeffreys prior.")}),
}


class Complications(ModelKind):
    name = "complications"
    title = "Procedural complications (screw back-out) as a rate"
    options_class = ComplicationOptions

    def params(self, options):
        return {"p_complication": PriorParam("p_complication", "unit", ("arm",), "probability of a procedural complication")}

    def prior_sets(self, options):
        return _COMPL_SETS

    def observed_names(self):
        return ["events_obs"]

    def prepare(self, study, options):
        if study.ipd is not None:
            raise InputError([Problem(study.path, "data.source", "'ipd'", "the patient-level format has no complication column; "
                                      "use source = published or summary")])
        comp = _cell_counts_from_summary(study, "complications", "complication count").sum("fracture")
        n = _cell_counts_from_summary(study, "n", "cell size").sum("fracture")
        arms = list(options.arms)
        ds = xr.Dataset({"events": (("arm",), comp.sel(arm=arms).values.astype(float)),
                         "trials": (("arm",), n.sel(arm=arms).values.astype(float))}, coords={"arm": arms})
        return ModelInput(ds, _inferred_notes(study, "complications"))

    def build(self, inp, priors, options):
        coords = inp.coords
        d = inp.data
        with pm.Model(coords=coords) as m:
            events = pm.Data("events_obs", d["events"].values, dims="arm")
            trials = pm.Data("trials", d["trials"].values, dims="arm")
            p = make_prior("p_complication", priors["p_complication"], ("arm",), coords)
            pm.Binomial("complications", n=trials, p=p, observed=events, dims="arm")
        return m

    def exact_summary(self, inp, priors, options, prob):
        spec = priors["p_complication"]
        if spec.dist != "Beta":
            return None
        coords = inp.coords
        a, b = _table(spec.params["alpha"], coords), _table(spec.params["beta"], coords)
        rows = []
        for arm in coords["arm"]:
            y, n = float(inp.data["events"].sel(arm=arm)), float(inp.data["trials"].sel(arm=arm))
            rows.append(beta_row(f"p_complication[{arm}]", BetaPosterior(a[arm] + y, b[arm] + n - y), prob))
        return rows

    def estimands(self, options):
        return ["p_complication"]

    def effect_variables(self, options):
        return ["p_complication"]

    def describe(self, options):
        return "complications[a] ~ Binomial(n[a], p_complication[a]); p_complication[a] ~ Beta(α, β) (conjugate)."

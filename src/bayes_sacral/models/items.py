"""The items of a score as ordinal outcomes, with a treatment effect per item and stratum.

For patient i in stratum s and item d (item scores from item_min to item_max; T_i = 1 for the treatment arm)::

    P(item_post[i,d] <= k) = logistic(cutpoint[d,k] − eta[i,d])
    eta[i,d] = domain_effect[s, d] · T_i + stratum_shift[s vs reference, d] + item_slope[d] · (item_pre[i,d] − midpoint)
    domain_effect[s, d] = domain_effect_mean[s] + domain_effect_sd · z[s, d]      (partial pooling across items)

The cutpoints of each item are the cumulative logits of ``baseline_probabilities[d, ·]`` (the category probabilities of a
control patient in the reference stratum at the item midpoint), which have a Dirichlet prior: ordered in prior and
posterior draws alike. A positive ``domain_effect`` (a log odds ratio of a higher item score) means higher item scores
with treatment; its benefit direction follows the score's ``higher_is_better``. ``domain_effect_points`` is its average
marginal effect on the expected item score over each stratum's patients.

Routes: ``ipd`` (patient-level data with every item before and after) or ``reconstructed`` (items rebuilt from the
published item means, see :mod:`bayes_sacral.data.reconstruct`). The published summaries alone have no likelihood for items.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr
from pydantic import Field

from ..errors import InputError, Problem
from ..priors import PriorParam, PriorSpec, make_prior
from .base import (
    CONTRAST_DIM,
    KindOptions,
    ModelInput,
    ModelKind,
    PriorSet,
    check_cells,
    declared_prior_sets,
    reconstructed_input,
)
from .blocks import cumulative_probs, induced_dirichlet_cutpoints

__all__ = ["ItemsModel", "ItemsOptions", "items_dataset"]


class ItemsOptions(KindOptions):
    kind: Literal["items"] = "items"
    route: Literal["auto", "ipd", "reconstructed"] = "auto"
    """auto: ipd for patient-level data, reconstructed for summary data."""
    pooling: Literal["partial", "none"] = "partial"
    """How the item effects within a stratum are related."""
    reconstructions: int = Field(10, ge=1, le=500)
    """reconstructed route: number of data sets."""
    pre_post_correlation: float = Field(0.5, ge=-0.95, le=0.95)
    """reconstructed route: assumed within-cell correlation of pre- and post-treatment totals."""
    reconstruction_seed: int = Field(1, ge=0)
    """reconstructed route: seed of the reconstruction search."""


def items_dataset(frame, spec) -> xr.Dataset:
    """Item scores of a patient-level frame as model data, dims (patient, item); patients without every item are left out."""
    name, items = spec.outcome, list(spec.o.items)
    need = [f"{name}_{i}_{t}" for t in ("pre", "post") for i in items]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise InputError([Problem("<ipd>", f"columns {', '.join(missing)}", "",
                                  f"the item model needs every item of {spec.card.outcome_label(name)} before and after")])
    sub = frame.dropna(subset=need)
    pre = np.column_stack([sub[f"{name}_{i}_pre"].astype(int).to_numpy() for i in items])
    post = np.column_stack([sub[f"{name}_{i}_post"].astype(int).to_numpy() for i in items])
    arm = sub["arm"].astype(str).to_numpy()
    lev = sub[spec.sdim].astype(str).to_numpy()
    return xr.Dataset(
        {"item_pre": (("patient", "item"), pre), "item_post": (("patient", "item"), post),
         "item_post_from_min": (("patient", "item"), post - spec.o.item_min),
         "treatment": ("patient", (arm == spec.arms[0]).astype(int)),
         "arm_idx": ("patient", np.array([spec.arms.index(a) for a in arm], dtype=int)),
         "stratum_idx": ("patient", np.array([spec.levels.index(x) for x in lev], dtype=int))},
        coords={"patient": sub["patient_id"].astype(str).to_numpy(), "item": items, spec.sdim: list(spec.levels)},
    )


class ItemsModel(ModelKind):
    name = "items"
    title = "The items of a score as ordinal outcomes, treatment effect per item"
    options_class = ItemsOptions
    outcome_kind = "score"

    def _levels(self, spec) -> list[str]:
        return [str(k) for k in range(spec.o.item_min, spec.o.item_max + 1)]

    def params(self, spec):
        out = {"baseline_probabilities": PriorParam("baseline_probabilities", "simplex", ("item", "item_level"),
                                                    "item category probabilities of the reference patient (define the cutpoints)"),
               "item_slope": PriorParam("item_slope", "real", ("item",), "log odds per pre-treatment item point")}
        if spec.K > 1:
            out["stratum_shift"] = PriorParam("stratum_shift", "real", (CONTRAST_DIM, "item"), "log odds, each stratum vs the reference")
        if spec.options.pooling == "partial":
            out["domain_effect_mean"] = PriorParam("domain_effect_mean", "real", (spec.sdim,), "mean log odds ratio over items")
            out["domain_effect_sd"] = PriorParam("domain_effect_sd", "positive", (), "spread of the effect across items")
        else:
            out["domain_effect"] = PriorParam("domain_effect", "real", (spec.sdim, "item"), "log odds ratio per item")
        return out

    def prior_sets(self, spec):
        k = len(self._levels(spec))
        base = {"baseline_probabilities": PriorSpec("Dirichlet", {"a": 1.0}, f"uniform over the {k} category probabilities of the "
                                                    "reference patient"),
                "item_slope": PriorSpec("Normal", {"mu": 0.0, "sigma": 1.0}, "log odds per pre-treatment item point")}
        if spec.K > 1:
            base["stratum_shift"] = PriorSpec("Normal", {"mu": 0.0, "sigma": 1.5}, "strata may start anywhere from much worse to much better")
        sets = {}
        for name, loc, spread, desc in (("weakly_informative", 1.5, 0.5, "Effects centred on none; odds ratios 0.05-19 within 95%."),
                                        ("skeptical", 0.5, 0.25, "Effects held near none (odds ratios 0.38-2.7).")):
            pri = dict(base)
            if spec.options.pooling == "partial":
                pri["domain_effect_mean"] = PriorSpec("Normal", {"mu": 0.0, "sigma": loc}, "no effect a priori")
                pri["domain_effect_sd"] = PriorSpec("HalfNormal", {"sigma": spread}, "items may differ moderately")
            else:
                pri["domain_effect"] = PriorSpec("Normal", {"mu": 0.0, "sigma": loc}, "no effect a priori")
            sets[name] = PriorSet(name, desc, pri)
        sets.update(declared_prior_sets(spec, "items"))
        return sets

    def check_options(self, spec, data_source):
        if not spec.o.items:
            return [("model.outcome", repr(spec.outcome), f"{spec.outcome} has no items in the study card")]
        if spec.options.route == "ipd" and data_source != "ipd":
            return [("model.route", "'ipd'", "route = ipd needs data.source = ipd")]
        if spec.options.route == "reconstructed" and data_source == "ipd":
            return [("model.route", "'reconstructed'", "route = reconstructed needs summary data (published | summary)")]
        return []

    def observed_names(self):
        return ["item_post_obs"]

    def data_map(self, spec):
        return {"item_pre": "item_pre", "item_post_obs": "item_post_from_min", "treatment": "treatment", "stratum_idx": "stratum_idx"}

    def estimands(self, spec):
        out = ["domain_effect", "domain_effect_points"]
        if spec.options.pooling == "partial":
            out += ["domain_effect_mean", "domain_effect_sd"]
        return out + (["stratum_shift"] if spec.K > 1 else []) + ["item_slope"]

    def effects(self, spec):
        d = spec.o.direction
        out = {"domain_effect": d, "domain_effect_points": d}
        if spec.options.pooling == "partial":
            out["domain_effect_mean"] = d
        return out

    def likelihood_terms_per_unit(self, spec):
        """One ordered-logit term per item and patient."""
        return len(spec.o.items)

    def default_thresholds(self, spec):
        """None: the card's MCID is on the total score, not on one item."""
        return {}

    def headline(self, spec):
        return ["domain_effect_points", "domain_effect_mean"] if spec.options.pooling == "partial" else ["domain_effect_points"]

    def axis_label(self, spec, var):
        c = self.contrast_phrase(spec)
        o = spec.o
        return {"domain_effect_points": f"Effect on the item score, {c} ({o.item_min}-{o.item_max})",
                "domain_effect": f"Log odds ratio of a higher item score, {c}",
                "domain_effect_mean": f"Mean log odds ratio over items, {c}"}.get(var, var.replace("_", " "))

    def diagnostic_params(self, spec):
        return ["domain_effect_mean", "domain_effect_sd"]

    def prior_posterior_vars(self, spec):
        return ["domain_effect_mean"]

    def outcome_phrase(self, spec):
        ctrl = spec.card.arm_label(spec.card.arms.control)
        return f"improved the item score more than {ctrl}" if spec.o.higher_is_better else f"lowered the item score more than {ctrl}"

    def describe(self, spec):
        o = spec.o
        mid = (o.item_min + o.item_max) / 2
        pool = ("domain_effect[s, d] = domain_effect_mean[s] + domain_effect_sd · z[s, d] (partial pooling across items)"
                if spec.options.pooling == "partial" else "domain_effect[s, d] independent per stratum and item")
        shift = " + stratum_shift[s vs reference, d]" if spec.K > 1 else ""
        return (f"Ordered logit per item of {spec.card.outcome_label(spec.outcome)} ({o.item_min}-{o.item_max}): P(item_post ≤ k) = "
                f"logistic(cutpoint[d, k] − eta); eta = domain_effect[s, d] · T{shift} + item_slope[d] · (item_pre − {mid:g}); {pool}. "
                "Cutpoints from an induced-Dirichlet prior on baseline_probabilities[d]; domain_effect_points is the average marginal "
                f"effect on the expected item score ({o.item_min}-{o.item_max}).")

    def prepare(self, study, spec):
        route = spec.options.route if spec.options.route != "auto" else ("ipd" if study.source == "ipd" else "reconstructed")
        if route == "ipd":
            if study.ipd is None:
                raise InputError([Problem(study.path or study.label(), "model.route", "'ipd'", "needs patient-level data")])
            ds = items_dataset(study.ipd.frame, spec)
            counts = np.zeros((2, spec.K))
            np.add.at(counts, (ds["arm_idx"].values, ds["stratum_idx"].values), 1)
            bad = check_cells(spec, counts, study.path or study.label())
            return ModelInput(ds, [], not_estimable=bad)
        return reconstructed_input(study, spec, lambda f: items_dataset(f, spec),
                                   f"reconstructed patient-level item scores: {spec.options.reconstructions} data sets consistent with "
                                   f"the published item means and totals (assumed pre-post correlation of totals "
                                   f"{spec.options.pre_post_correlation}); item scores within a patient are otherwise arranged at random, "
                                   "so between-item correlations are not informed by the data")

    def build(self, inp, priors, spec):
        import pymc as pm
        import pytensor.tensor as pt

        from .cumulative_logit import CumulativeLogit

        d = inp.data
        o = spec.o
        K = spec.K
        sdim = spec.sdim
        levels = self._levels(spec)
        coords = {**spec.coords(), "patient": [str(p) for p in d["patient"].values], "item": list(o.items), "item_level": levels,
                  "cutpoint": [f"{a}|{b}" for a, b in zip(levels[:-1], levels[1:], strict=True)]}
        mid = (o.item_min + o.item_max) / 2
        with pm.Model(coords=coords) as m:
            pre = pm.Data("item_pre", d["item_pre"].values.astype(float), dims=("patient", "item"))
            post = pm.Data("item_post_obs", d["item_post_from_min"].values.astype("int64"), dims=("patient", "item"))
            treat = pm.Data("treatment", d["treatment"].values.astype(float), dims="patient")
            sidx = pm.Data("stratum_idx", d["stratum_idx"].values.astype("int64"), dims="patient")
            base = make_prior("baseline_probabilities", priors["baseline_probabilities"], ("item", "item_level"), coords)
            cut = induced_dirichlet_cutpoints("cutpoints", base, ("item", "cutpoint"))
            slope = make_prior("item_slope", priors["item_slope"], ("item",), coords)
            if spec.options.pooling == "partial":
                mu = make_prior("domain_effect_mean", priors["domain_effect_mean"], (sdim,), coords)
                tau = make_prior("domain_effect_sd", priors["domain_effect_sd"], (), coords)
                z = pm.Normal("domain_effect_z", 0.0, 1.0, dims=(sdim, "item"))
                beta = pm.Deterministic("domain_effect", mu[:, None] + tau * z, dims=(sdim, "item"))
            else:
                beta = make_prior("domain_effect", priors["domain_effect"], (sdim, "item"), coords)
            eta0 = slope[None, :] * (pre - mid)
            if K > 1:
                shift = make_prior("stratum_shift", priors["stratum_shift"], (CONTRAST_DIM, "item"), coords)
                full = pt.concatenate([pt.zeros((1, len(o.items))), shift], axis=0)  # the reference stratum has no shift
                eta0 = eta0 + full[sidx]
            eta = eta0 + beta[sidx] * treat[:, None]
            CumulativeLogit("item_post", cut[None, :, :], eta, observed=post, dims=("patient", "item"))
            values = pt.arange(o.item_min, o.item_max + 1, dtype="float64")
            gain = ((cumulative_probs(cut[None, :, :], eta0 + beta[sidx]) - cumulative_probs(cut[None, :, :], eta0)) * values).sum(axis=-1)
            onehot = pt.eq(sidx[:, None], pt.arange(K)[None, :])
            ame = (gain[:, None, :] * onehot[:, :, None]).sum(axis=0) / pt.maximum(onehot.sum(axis=0), 1)[:, None]
            pm.Deterministic("domain_effect_points", ame, dims=(sdim, "item"))
        return m

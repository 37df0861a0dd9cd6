"""The six MSTS items (0-5 each) as ordinal outcomes, with a treatment effect per domain and fracture stratum.

For patient i, domain d (pain, emotional acceptance, use of supports, walking ability, gait, function)::

    P(item_post[i,d] >= k) = logistic(eta[i,d] − cutpoint[d,k]),   k = 1..5
    eta[i,d] = domain_effect[f_i, d] · PSFS_i + impending_shift[d] · IMPENDING_i + item_slope[d] · (item_pre[i,d] − 2.5)
    domain_effect[f, d] = domain_effect_mean[f] + domain_effect_sd · z[f, d]      (partial pooling across domains)

The cutpoints of each domain are the cumulative logits of ``baseline_probabilities[d, ·]`` (the category
probabilities of a sacroplasty patient with a pathological fracture and a preoperative item score of 2.5), which
have a Dirichlet prior: ordered in prior and posterior draws alike. Higher item scores are better, so a positive
``domain_effect`` (a log odds ratio) favours PSFS; ``domain_effect_points`` is its average marginal effect on the
expected item score (0-5) over each stratum's patients.

Routes: ``ipd`` (a patient-level CSV with the six items before and after) or ``reconstructed`` (items rebuilt from
the published item means, see :mod:`bayes_sacral.data.reconstruct`). The published summaries alone have no
likelihood for items.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pydantic import Field

from ..errors import InputError, Problem
from ..priors import PriorParam, PriorSpec, make_prior
from ..vocabulary import FRACTURES, MSTS_ITEM_MAX, MSTS_ITEMS
from .base import KindOptions, ModelInput, ModelKind, PriorSet, reconstructed_input

__all__ = ["MstsDomains", "DomainOptions", "items_dataset"]

LEVELS = [str(k) for k in range(MSTS_ITEM_MAX + 1)]


class DomainOptions(KindOptions):
    kind: Literal["msts_domains"] = "msts_domains"
    route: Literal["auto", "ipd", "reconstructed"] = "auto"
    """auto: ipd for patient-level data, reconstructed for summary data."""
    pooling: Literal["partial", "none"] = "partial"
    """How the six domain effects within a stratum are related."""
    reconstructions: int = Field(10, ge=1, le=500)
    """reconstructed route: number of data sets."""
    pre_post_correlation: float = Field(0.5, ge=-0.95, le=0.95)
    """reconstructed route: assumed within-cell correlation of pre- and postoperative totals."""
    reconstruction_seed: int = Field(1, ge=0)
    """reconstructed route: seed of the reconstruction search."""


def items_dataset(frame) -> xr.Dataset:
    """Item scores of a patient-level frame as model data, dims (patient, domain)."""
    need = [f"{i}_{t}" for t in ("pre", "post") for i in MSTS_ITEMS]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise InputError([Problem("<ipd>", f"columns {', '.join(missing)}", "", "the domain model needs the six MSTS items before and after")])
    sub = frame.dropna(subset=need)
    pre = np.column_stack([sub[f"{i}_pre"].astype(int).to_numpy() for i in MSTS_ITEMS])
    post = np.column_stack([sub[f"{i}_post"].astype(int).to_numpy() for i in MSTS_ITEMS])
    arm = sub["arm"].astype(str).to_numpy()
    frac = sub["fracture"].astype(str).to_numpy()
    return xr.Dataset(
        {"item_pre": (("patient", "domain"), pre), "item_post": (("patient", "domain"), post),
         "psfs": ("patient", (arm == "psfs").astype(int)),
         "fracture_idx": ("patient", np.array([FRACTURES.index(f) for f in frac]))},
        coords={"patient": sub["patient_id"].astype(str).to_numpy(), "domain": list(MSTS_ITEMS), "fracture": list(FRACTURES)},
    )


class MstsDomains(ModelKind):
    name = "msts_domains"
    title = "The six MSTS items as ordinal outcomes, treatment effect per domain"
    options_class = DomainOptions

    def params(self, options):
        out = {"baseline_probabilities": PriorParam("baseline_probabilities", "simplex", ("domain", "level"),
                                                    "item category probabilities of the reference patient (define the cutpoints)"),
               "impending_shift": PriorParam("impending_shift", "real", ("domain",), "log odds, impending vs pathological"),
               "item_slope": PriorParam("item_slope", "real", ("domain",), "log odds per preoperative item point")}
        if options.pooling == "partial":
            out["domain_effect_mean"] = PriorParam("domain_effect_mean", "real", ("fracture",), "mean log odds ratio over domains")
            out["domain_effect_sd"] = PriorParam("domain_effect_sd", "positive", (), "spread of the effect across domains")
        else:
            out["domain_effect"] = PriorParam("domain_effect", "real", ("fracture", "domain"), "log odds ratio per domain")
        return out

    def prior_sets(self, options):
        base = {"baseline_probabilities": PriorSpec("Dirichlet", {"a": 1.0}, "uniform over the six category probabilities of the reference patient"),
                "impending_shift": PriorSpec("Normal", {"mu": 0.0, "sigma": 1.5}, "impending fractures may start anywhere from much worse to much better"),
                "item_slope": PriorSpec("Normal", {"mu": 0.0, "sigma": 1.0}, "log odds per preoperative item point")}
        sets = {}
        for name, loc, spread, desc in (("weakly_informative", 1.5, 0.5, "Effects centred on none; odds ratios 0.05-19 within 95%."),
                                        ("skeptical", 0.5, 0.25, "Effects held near none (odds ratios 0.38-2.7).")):
            pri = dict(base)
            if options.pooling == "partial":
                pri["domain_effect_mean"] = PriorSpec("Normal", {"mu": 0.0, "sigma": loc}, "no effect a priori")
                pri["domain_effect_sd"] = PriorSpec("HalfNormal", {"sigma": spread}, "domains may differ moderately")
            else:
                pri["domain_effect"] = PriorSpec("Normal", {"mu": 0.0, "sigma": loc}, "no effect a priori")
            sets[name] = PriorSet(name, desc, pri)
        return sets

    def check_options(self, options, data_source):
        if options.route == "ipd" and data_source != "ipd":
            return [("model.route", "'ipd'", "route = ipd needs data.source = ipd")]
        if options.route == "reconstructed" and data_source == "ipd":
            return [("model.route", "'reconstructed'", "route = reconstructed needs summary data (published | summary)")]
        return []

    def observed_names(self):
        return ["item_post_obs"]

    def estimands(self, options):
        out = ["domain_effect", "domain_effect_points"]
        if options.pooling == "partial":
            out += ["domain_effect_mean", "domain_effect_sd"]
        return out + ["impending_shift", "item_slope"]

    def effect_variables(self, options):
        return ["domain_effect", "domain_effect_points"] + (["domain_effect_mean"] if options.pooling == "partial" else [])

    def describe(self, options):
        pool = ("domain_effect[f, d] = domain_effect_mean[f] + domain_effect_sd · z[f, d] (partial pooling across domains)"
                if options.pooling == "partial" else "domain_effect[f, d] independent per stratum and domain")
        return ("Ordered logit per MSTS item: P(item_post ≥ k) = logistic(eta − cutpoint[d, k]); eta = domain_effect[f, d] · PSFS + "
                f"impending_shift[d] · IMPENDING + item_slope[d] · (item_pre − 2.5); {pool}. Cutpoints from an induced-Dirichlet "
                "prior on baseline_probabilities[d]; domain_effect_points is the average marginal effect on the expected item score (0-5).")

    def prepare(self, study, options):
        route = options.route if options.route != "auto" else ("ipd" if study.source == "ipd" else "reconstructed")
        if route == "ipd":
            if study.ipd is None:
                raise InputError([Problem(study.path or "<data>", "model.route", "'ipd'", "needs patient-level data")])
            return ModelInput(items_dataset(study.ipd.frame), [])
        return reconstructed_input(study, options, items_dataset,
                                   f"reconstructed patient-level item scores: {options.reconstructions} data sets consistent with "
                                   f"the published item means and totals (assumed pre-post correlation of totals "
                                   f"{options.pre_post_correlation}); item scores within a patient are otherwise arranged at random, "
                                   "so between-item correlations are not informed by the data")

    def build(self, inp, priors, options):
        d = inp.data
        coords = {"patient": [str(p) for p in d["patient"].values], "domain": list(MSTS_ITEMS), "fracture": list(FRACTURES),
                  "level": LEVELS, "cutpoint": [f"{k - 1}|{k}" for k in range(1, MSTS_ITEM_MAX + 1)]}
        f_idx = d["fracture_idx"].values
        with pm.Model(coords=coords) as m:
            pre = pm.Data("item_pre", d["item_pre"].values.astype(float), dims=("patient", "domain"))
            post = pm.Data("item_post_obs", d["item_post"].values.astype("int64"), dims=("patient", "domain"))
            psfs = pm.Data("psfs", d["psfs"].values.astype(float), dims="patient")
            fidx = pm.Data("fracture_idx", f_idx.astype("int64"), dims="patient")
            base = make_prior("baseline_probabilities", priors["baseline_probabilities"], ("domain", "level"), coords)
            cum = pt.clip(pt.cumsum(base, axis=-1)[:, :-1], 1e-12, 1 - 1e-12)
            cut = pm.Deterministic("cutpoints", pt.log(cum) - pt.log1p(-cum), dims=("domain", "cutpoint"))
            shift = make_prior("impending_shift", priors["impending_shift"], ("domain",), coords)
            slope = make_prior("item_slope", priors["item_slope"], ("domain",), coords)
            if options.pooling == "partial":
                mu = make_prior("domain_effect_mean", priors["domain_effect_mean"], ("fracture",), coords)
                tau = make_prior("domain_effect_sd", priors["domain_effect_sd"], (), coords)
                z = pm.Normal("domain_effect_z", 0.0, 1.0, dims=("fracture", "domain"))
                beta = pm.Deterministic("domain_effect", mu[:, None] + tau * z, dims=("fracture", "domain"))
            else:
                beta = make_prior("domain_effect", priors["domain_effect"], ("fracture", "domain"), coords)
            imp = pt.cast(pt.eq(fidx, 1), "float64")
            eta0 = shift[None, :] * imp[:, None] + slope[None, :] * (pre - 2.5)
            eta = eta0 + beta[fidx] * psfs[:, None]

            def probs(e):
                # P(y <= k) = 1 - logistic(e - c_k): cumulative, then differences
                le = pm.math.invlogit(cut[None, :, :] - e[:, :, None])  # (patient, domain, cutpoint)
                return pt.concatenate([le[..., :1], le[..., 1:] - le[..., :-1], 1 - le[..., -1:]], axis=-1)

            p = probs(eta)
            pm.Categorical("msts_item_post", p=p, observed=post, dims=("patient", "domain"))
            levels = pt.arange(MSTS_ITEM_MAX + 1, dtype="float64")
            gain = ((probs(eta0 + beta[fidx]) - probs(eta0)) * levels).sum(axis=-1)  # (patient, domain): expected item points
            onehot = pt.eq(fidx[:, None], pt.arange(2)[None, :])
            ame = (gain[:, None, :] * onehot[:, :, None]).sum(axis=0) / pt.maximum(onehot.sum(axis=0), 1)[:, None]
            pm.Deterministic("domain_effect_points", ame, dims=("fracture", "domain"))
        return m

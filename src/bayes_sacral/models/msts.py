"""Postoperative MSTS: hierarchical regression on the preoperative score with a treatment × fracture interaction.

Patient-level form (patient i, fracture f, arm a)::

    msts_post_i ~ likelihood(mu_i, ...)
    mu_i = intercept[f] + treatment_effect[f] · PSFS_i + preop_slope · (msts_pre_i − 15)
    treatment_effect[f] = treatment_effect_mean + treatment_effect_sd · z[f],  z[f] ~ Normal(0, 1)   (partial pooling)

Likelihoods: ``normal`` and ``student_t`` on the points scale; ``beta_binomial`` on the integer 0-30 total with a
logit link for the mean (``mu`` above is then on the logit scale, with ``*_logit`` parameter names, and
``treatment_effect`` is the average marginal effect in points over the stratum's patients: the ceiling at 28-30 in
the impending sacroplasty cell is real). Pooling of the treatment effect across fracture strata: ``partial``
(non-centred), ``none`` (independent per stratum) or ``complete`` (one effect).

Routes into the same estimands:

- ``ipd``: a validated patient-level CSV;
- ``summary``: the exact likelihood of each cell's sufficient statistics under normality, cell mean change ~
  Normal(theta_c, sigma/√n_c) and (n_c − 1)s_c²/sigma² ~ χ²(n_c − 1), where theta_c = intercept[f] − 15 +
  treatment_effect[f]·PSFS + (preop_slope − 1)(mean preop_c − 15). The preoperative covariate enters only through
  the four cell means, so ``preop_slope`` is weakly identified (its posterior stays near its prior);
- ``reconstructed``: K patient-level data sets reconstructed from the summaries, the IPD model fitted to each
  (compiled once) and the draws pooled, with the between-reconstruction spread reported.

Default MCID: 12 points on the 0-100 MSTS scale (3.6 of 30), borrowed from Gazendam et al., JBJS 2022 (the PARITY
trial, primary bone tumours), with sensitivity values 8 and 17 (2.4 and 5.1 points); not validated for sacral
metastases.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pydantic import Field

from ..data.source import StudyData
from ..errors import InputError, Problem
from ..priors import PriorParam, PriorSpec, make_prior
from ..vocabulary import ARMS, FRACTURES, MSTS_MAX_POINTS
from .base import KindOptions, ModelInput, ModelKind, PriorSet, reconstructed_input

__all__ = ["Msts", "MstsOptions", "MCID_POINTS", "MCID_NOTE", "ipd_dataset"]

#: 12 percentage points of the 0-100 MSTS scale, in points of 30.
MCID_POINTS = 12 * MSTS_MAX_POINTS / 100
MCID_NOTE = ("MCID borrowed from Gazendam et al., JBJS 2022 (PARITY trial, primary bone tumours): 12 points on the 0-100 MSTS "
             "scale = 3.6 of 30; sensitivity values 8 and 17 (2.4 and 5.1 points). Not validated for sacral metastases.")
_Z95 = 1.6449  # one-sided 95% normal quantile: skeptical/enthusiastic priors put 5% beyond 0 or the MCID


class MstsOptions(KindOptions):
    kind: Literal["msts"] = "msts"
    likelihood: Literal["normal", "student_t", "beta_binomial"] = "normal"
    """normal | student_t (points scale) | beta_binomial (integer 0-30 total, logit link)."""
    pooling: Literal["partial", "none", "complete"] = "partial"
    """How the treatment effect is shared across fracture strata."""
    route: Literal["auto", "ipd", "summary", "reconstructed"] = "auto"
    """auto: ipd for patient-level data, summary otherwise; reconstructed: fit to patient data rebuilt from the summaries."""
    sigma: Literal["common", "by_cell"] = "common"
    """Residual SD shared by all cells, or one per arm × fracture cell (normal / student_t)."""
    reconstructions: int = Field(20, ge=1, le=500)
    """reconstructed route: number of reconstructed data sets (K)."""
    pre_post_correlation: float = Field(0.5, ge=-0.95, le=0.95)
    """reconstructed route: assumed within-cell correlation of pre- and postoperative totals (a sensitivity parameter)."""
    reconstruction_seed: int = Field(1, ge=0)
    """reconstructed route: seed of the reconstruction search (fixed so runs with different sampler seeds share data sets)."""


def _N(mu, sigma, why):
    return PriorSpec("Normal", {"mu": float(mu), "sigma": float(sigma)}, why)


def _HN(sigma, why):
    return PriorSpec("HalfNormal", {"sigma": float(sigma)}, why)


def _prior_sets(options: MstsOptions) -> dict[str, PriorSet]:
    bb = options.likelihood == "beta_binomial"
    skept_sd = MCID_POINTS / _Z95
    if not bb:
        te_loc = {
            "weakly_informative": (_N(0, 5, "no effect a priori; ±10 points (a third of the scale) within 95%"),
                                   _HN(3, "strata may differ by a few points")),
            "skeptical": (_N(0, skept_sd, f"centred on no effect with sd = MCID/1.645 = {skept_sd:.2f}: P(effect > MCID) = 5% a priori"),
                          _HN(1.5, "little heterogeneity between strata")),
            "enthusiastic": (_N(MCID_POINTS, skept_sd, f"centred on the MCID (3.6 points) with sd {skept_sd:.2f}: P(effect < 0) = 5% a priori"),
                             _HN(1.5, "little heterogeneity between strata")),
            "reference": (PriorSpec("Flat", {}, "improper flat prior (classical reference)"), _HN(10, "vague but proper: a flat "
                          "prior on a between-stratum SD with two strata gives an improper posterior")),
        }
        common = {
            "weakly_informative": {"intercept": _N(15, 10, "postoperative MSTS of a sacroplasty patient with preop 15: anywhere in 0-30"),
                                   "preop_slope": _N(0, 1, "points of postoperative MSTS per preoperative point; 1 = change-score model"),
                                   "sigma": _HN(10, "residual SD up to about 20 points"),
                                   "nu": PriorSpec("Gamma", {"alpha": 2.0, "beta": 0.1}, "Juárez & Steel (2010) prior for t degrees of freedom")},
            "reference": {"intercept": PriorSpec("Flat", {}, "improper flat prior (classical reference)"),
                          "preop_slope": _N(0, 10, "vague but proper: the summary route cannot identify it from the data"),
                          "sigma": PriorSpec("Jeffreys", {}, "Jeffreys' p(sigma) ∝ 1/sigma: with flat location priors the posterior "
                                             "of a cell mean is Student's t, the classical answer"),
                          "nu": PriorSpec("Gamma", {"alpha": 2.0, "beta": 0.1}, "Juárez & Steel (2010)")},
        }
        common["skeptical"] = common["enthusiastic"] = common["weakly_informative"]
    else:
        lor = 0.5  # logit units ≈ the MCID near a 60% mean (3.6 points / (30 · 0.6 · 0.4))
        te_loc = {
            "weakly_informative": (_N(0, 1, "logit scale: no effect a priori; ±2 logits within 95%"), _HN(0.5, "between-stratum spread (logits)")),
            "skeptical": (_N(0, lor / _Z95, "≈ MCID/1.645 on the logit scale near a 60% mean"), _HN(0.25, "little heterogeneity")),
            "enthusiastic": (_N(lor, lor / _Z95, "centred on ≈ the MCID on the logit scale"), _HN(0.25, "little heterogeneity")),
            "reference": (_N(0, 10, "vague"), _HN(5, "vague")),
        }
        common = {
            "weakly_informative": {"intercept": _N(0, 1.5, "logit of the expected postoperative score / 30 (sacroplasty, preop 15)"),
                                   "preop_slope": _N(0, 0.2, "logits per preoperative point (±0.4: ±6 logits over the scale)"),
                                   "phi": PriorSpec("Gamma", {"alpha": 2.0, "beta": 0.1}, "beta-binomial precision α + β; mean 20")},
            "reference": {"intercept": _N(0, 10, "vague"), "preop_slope": _N(0, 2, "vague"), "phi": PriorSpec("Gamma", {"alpha": 1.0, "beta": 0.01}, "vague")},
        }
        common["skeptical"] = common["enthusiastic"] = common["weakly_informative"]
    descriptions = {
        "weakly_informative": "Weakly informative: effects centred on 0, scales matched to the 0-30 range (the default).",
        "skeptical": "Skeptical: the treatment effect is centred on 0 with 5% prior probability above the MCID (Spiegelhalter et al.).",
        "enthusiastic": "Enthusiastic: the treatment effect is centred on the MCID (3.6 points) with 5% prior probability below 0.",
        "reference": "Reference: flat location priors and Jeffreys' 1/sigma (improper; no prior predictive), to reproduce classical analyses.",
    }
    prefix = "treatment_effect_logit" if bb else "treatment_effect"
    out = {}
    for name, (loc, scale) in te_loc.items():
        pri = {k: v for k, v in common[name].items() if k in _param_names(options)}
        if options.pooling == "partial":
            pri[f"{prefix}_mean"] = loc
            pri[f"{prefix}_sd"] = scale
        elif options.pooling == "none":
            pri[prefix] = loc
        else:
            pri[f"{prefix}_mean"] = loc
        out[name] = PriorSet(name, descriptions[name], pri, source="MCID: Gazendam et al., JBJS 2022" if name in ("skeptical", "enthusiastic") else "")
    return out


def _param_names(options: MstsOptions) -> set[str]:
    names = {"intercept", "preop_slope"}
    if options.likelihood == "beta_binomial":
        names.add("phi")
    else:
        names.add("sigma")
        if options.likelihood == "student_t":
            names.add("nu")
    return names


def ipd_dataset(frame, label: str = "patient") -> xr.Dataset:
    """Patient-level MSTS columns as model data (dims ``patient``)."""
    arm = frame["arm"].astype(str).to_numpy()
    frac = frame["fracture"].astype(str).to_numpy()
    return xr.Dataset(
        {"msts_pre": ("patient", frame["msts_pre"].astype(int).to_numpy()),
         "msts_post": ("patient", frame["msts_post"].astype(int).to_numpy()),
         "psfs": ("patient", (arm == "psfs").astype(int)),
         "arm_idx": ("patient", np.array([ARMS.index(a) for a in arm])),
         "fracture_idx": ("patient", np.array([FRACTURES.index(f) for f in frac]))},
        coords={"patient": frame["patient_id"].astype(str).to_numpy(), "arm": list(ARMS), "fracture": list(FRACTURES)},
    )


def _summary_dataset(study: StudyData) -> tuple[xr.Dataset, list[str]]:
    ds = study.require_summary("the summary route").to_dataset()
    n = ds["n"]
    pre = ds["msts_mean"].sel(domain="total", time="pre")
    post = ds["msts_mean"].sel(domain="total", time="post")
    sd = ds["msts_change_sd"]
    missing = [f"{a} × {f}" for a in ARMS for f in FRACTURES
               if any(np.isnan(x.sel(arm=a, fracture=f).item()) for x in (n, pre, post, sd))]
    if missing:
        raise InputError([Problem(study.path or "published study", ", ".join(missing), "",
                                  "the summary route needs n, the pre and post mean MSTS totals and the SD of change in every cell")])
    if (n < 2).any():
        raise InputError([Problem(study.path or "published study", "n", "", "every cell needs n >= 2 for an SD of change")])
    out = xr.Dataset({"n": n, "pre_mean": pre.drop_vars(["domain", "time"]), "post_mean": post.drop_vars(["domain", "time"]),
                      "change_mean": (post - pre).drop_vars(["domain", "time"], errors="ignore"), "change_sd": sd})
    notes = ["summary route: each cell's mean change is the reported post − pre mean (to the reported 0.1 point) and its SD "
             "of change the reported value (percent of 30 converted to points); both are treated as exact",
             "summary route: the preoperative covariate enters only through the four cell means, so preop_slope is weakly "
             "identified (its posterior stays close to its prior), and the SD of change stands in for the residual SD "
             "(exact when preop_slope = 1)"]
    return out, notes


class Msts(ModelKind):
    name = "msts"
    title = "Postoperative MSTS: hierarchical regression on the preoperative score"
    options_class = MstsOptions

    # ---------------------------------------------------------------- declaration
    def params(self, options):
        bb = options.likelihood == "beta_binomial"
        prefix = "treatment_effect_logit" if bb else "treatment_effect"
        unit = "logits" if bb else "MSTS points"
        out = {"intercept": PriorParam("intercept", "real", ("fracture",), f"expected postoperative MSTS of sacroplasty at preop 15 ({unit})"),
               "preop_slope": PriorParam("preop_slope", "real", (), f"per preoperative point ({unit})")}
        if options.pooling == "partial":
            out[f"{prefix}_mean"] = PriorParam(f"{prefix}_mean", "real", (), f"pooled treatment effect ({unit})")
            out[f"{prefix}_sd"] = PriorParam(f"{prefix}_sd", "positive", (), f"between-stratum SD of the effect ({unit})")
        elif options.pooling == "none":
            out[prefix] = PriorParam(prefix, "real", ("fracture",), f"treatment effect per stratum ({unit})")
        else:
            out[f"{prefix}_mean"] = PriorParam(f"{prefix}_mean", "real", (), f"one treatment effect for both strata ({unit})")
        if bb:
            out["phi"] = PriorParam("phi", "positive", (), "beta-binomial precision")
        else:
            dims = ("arm", "fracture") if options.sigma == "by_cell" else ()
            out["sigma"] = PriorParam("sigma", "positive", dims, "residual SD (points)")
            if options.likelihood == "student_t":
                out["nu"] = PriorParam("nu", "positive", (), "Student-t degrees of freedom")
        return out

    def prior_sets(self, options):
        return _prior_sets(options)

    def default_prior_set(self, options):
        return "weakly_informative"

    def check_options(self, options, data_source: str) -> list[tuple[str, str, str]]:
        out = []
        route = self.route(options, data_source)
        if options.route == "ipd" and data_source != "ipd":
            out.append(("model.route", "'ipd'", "route = ipd needs data.source = ipd (a patient-level CSV)"))
        if options.route in ("summary", "reconstructed") and data_source == "ipd":
            out.append(("model.route", repr(options.route), f"route = {options.route} needs summary data (data.source = published | summary)"))
        if route == "summary" and options.likelihood != "normal":
            out.append(("model.likelihood", repr(options.likelihood),
                        "the summary route has the exact likelihood of the sufficient statistics under normality only; use likelihood = "
                        "normal, or route = reconstructed for student_t / beta_binomial"))
        if options.sigma == "by_cell" and options.likelihood == "beta_binomial":
            out.append(("model.sigma", "'by_cell'", "sigma applies to the normal and student_t likelihoods"))
        return out

    @staticmethod
    def route(options, data_source: str) -> str:
        if options.route != "auto":
            return options.route
        return "ipd" if data_source == "ipd" else "summary"

    def observed_names(self):
        return ["msts_post_obs", "cell_change_mean_obs", "cell_change_var_obs"]

    def default_thresholds(self, options):
        return {"mcid": (MCID_POINTS, MCID_NOTE), "mcid_8pct": (8 * 0.3, MCID_NOTE), "mcid_17pct": (17 * 0.3, MCID_NOTE)}

    def estimands(self, options):
        out = ["treatment_effect", "treatment_effect_pct", "interaction", "treatment_effect_average"]
        bb = options.likelihood == "beta_binomial"
        if bb:
            out += ["treatment_effect_logit"]
            if options.pooling == "partial":
                out += ["treatment_effect_logit_mean", "treatment_effect_logit_sd"]
        else:
            out += ["change_difference"]
            if options.pooling == "partial":
                out += ["treatment_effect_mean", "treatment_effect_sd"]
        out += ["intercept", "preop_slope"] + (["phi"] if bb else ["sigma"]) + (["nu"] if options.likelihood == "student_t" else [])
        return out

    def effect_variables(self, options):
        out = ["treatment_effect", "treatment_effect_average"]
        if options.likelihood != "beta_binomial":
            out.append("change_difference")
            if options.pooling != "none":
                out.append("treatment_effect_mean")
        return out

    def describe(self, options):
        lik = {"normal": "Normal(mu_i, sigma)", "student_t": "StudentT(nu, mu_i, sigma)",
               "beta_binomial": "BetaBinomial(30, p_i·phi, (1 − p_i)·phi), logit p_i = mu_i"}[options.likelihood]
        pool = {"partial": "treatment_effect[f] = treatment_effect_mean + treatment_effect_sd · z[f], z[f] ~ Normal(0, 1) (partial pooling, non-centred)",
                "none": "treatment_effect[f] has its own prior in each stratum (no pooling)",
                "complete": "treatment_effect[f] = treatment_effect_mean in both strata (complete pooling)"}[options.pooling]
        if options.likelihood == "beta_binomial":
            pool = pool.replace("treatment_effect", "treatment_effect_logit")
        text = (f"msts_post_i ~ {lik}; mu_i = intercept[f_i] + treatment_effect[f_i] · PSFS_i + preop_slope · (msts_pre_i − 15); {pool}. "
                "interaction = treatment_effect[pathological] − treatment_effect[impending]; treatment_effect_average weights the strata "
                "by their share of patients; effects in percent of 30 as treatment_effect_pct.")
        if options.likelihood == "beta_binomial":
            text += (" With the logit link, treatment_effect is the average marginal effect in points over each stratum's patients "
                     "(30 × mean of p_i(PSFS) − p_i(sacroplasty)).")
        return text

    # ---------------------------------------------------------------- data
    def prepare(self, study, options):
        route = self.route(options, study.source)
        if route == "summary":
            data, notes = _summary_dataset(study)
            data.attrs["route"] = "summary"
            return ModelInput(data, notes)
        if route == "ipd":
            if study.ipd is None:
                raise InputError([Problem(study.path or "published study", "model.route", "'ipd'", "needs a patient-level CSV")])
            data = ipd_dataset(study.ipd.frame)
            data.attrs["route"] = "ipd"
            return ModelInput(data, [])
        inp = reconstructed_input(study, options, ipd_dataset,
                                  f"reconstructed patient-level data: {options.reconstructions} data sets consistent with the "
                                  f"published summaries (SPRITE-style search), assumed within-cell pre-post correlation "
                                  f"{options.pre_post_correlation}; the draws of the fits to each are pooled")
        for r in inp.replicates:
            r.attrs["route"] = "reconstructed"
        return inp

    # ---------------------------------------------------------------- model
    def _treatment(self, priors, options, coords, prefix):
        if options.pooling == "partial":
            mu = make_prior(f"{prefix}_mean", priors[f"{prefix}_mean"], (), coords)
            tau = make_prior(f"{prefix}_sd", priors[f"{prefix}_sd"], (), coords)
            z = pm.Normal(f"{prefix}_z", 0.0, 1.0, dims="fracture")
            return pm.Deterministic(prefix, mu + tau * z, dims="fracture")
        if options.pooling == "none":
            return make_prior(prefix, priors[prefix], ("fracture",), coords)
        mu = make_prior(f"{prefix}_mean", priors[f"{prefix}_mean"], (), coords)
        return pm.Deterministic(prefix, pt.stack([mu] * len(coords["fracture"])), dims="fracture")

    def _derived(self, te_points, weights, cell_pre, slope, options):
        pm.Deterministic("treatment_effect_pct", te_points / MSTS_MAX_POINTS * 100, dims="fracture")
        pm.Deterministic("interaction", te_points[0] - te_points[1])
        pm.Deterministic("treatment_effect_average", (te_points * weights).sum())
        if options.likelihood != "beta_binomial":
            # difference in expected mean change between the arms at their own preop means: what a t test on change estimates
            pm.Deterministic("change_difference", te_points + (slope - 1) * (cell_pre[0] - cell_pre[1]), dims="fracture")

    def build(self, inp, priors, options):
        if inp.data.attrs.get("route") == "summary":
            return self._build_summary(inp, priors, options)
        return self._build_ipd(inp, priors, options)

    def _build_ipd(self, inp, priors, options):
        d = inp.data
        coords = {"fracture": list(FRACTURES), "arm": list(ARMS), "patient": [str(p) for p in d["patient"].values]}
        f_idx = d["fracture_idx"].values
        a_idx = d["arm_idx"].values
        counts = np.bincount(f_idx, minlength=2).astype(float)
        cell_pre = np.array([[d["msts_pre"].values[(a_idx == a) & (f_idx == f)].mean() if ((a_idx == a) & (f_idx == f)).any() else 15.0
                              for f in range(2)] for a in range(2)])
        bb = options.likelihood == "beta_binomial"
        with pm.Model(coords=coords) as m:
            pre = pm.Data("msts_pre", d["msts_pre"].values.astype(float), dims="patient")
            post = pm.Data("msts_post_obs", d["msts_post"].values.astype("int64" if bb else float), dims="patient")
            psfs = pm.Data("psfs", d["psfs"].values.astype(float), dims="patient")
            fidx = pm.Data("fracture_idx", f_idx.astype("int64"), dims="patient")
            aidx = pm.Data("arm_idx", a_idx.astype("int64"), dims="patient")
            w = pm.Data("stratum_weight", counts / counts.sum(), dims="fracture")
            cpre = pm.Data("cell_pre_mean", cell_pre, dims=("arm", "fracture"))
            intercept = make_prior("intercept", priors["intercept"], ("fracture",), coords)
            slope = make_prior("preop_slope", priors["preop_slope"], (), coords)
            prefix = "treatment_effect_logit" if bb else "treatment_effect"
            te = self._treatment(priors, options, coords, prefix)
            eta0 = intercept[fidx] + slope * (pre - 15.0)
            eta = eta0 + te[fidx] * psfs
            if not bb:
                sigma = make_prior("sigma", priors["sigma"], ("arm", "fracture") if options.sigma == "by_cell" else (), coords)
                s_i = sigma[aidx, fidx] if options.sigma == "by_cell" else sigma
                if options.likelihood == "normal":
                    pm.Normal("msts_post", mu=eta, sigma=s_i, observed=post, dims="patient")
                else:
                    nu = make_prior("nu", priors["nu"], (), coords)
                    pm.StudentT("msts_post", nu=nu, mu=eta, sigma=s_i, observed=post, dims="patient")
                te_points = te
            else:
                phi = make_prior("phi", priors["phi"], (), coords)
                p = pm.math.invlogit(eta)
                pm.BetaBinomial("msts_post", n=MSTS_MAX_POINTS, alpha=p * phi, beta=(1 - p) * phi, observed=post, dims="patient")
                diff = MSTS_MAX_POINTS * (pm.math.invlogit(eta0 + te[fidx]) - pm.math.invlogit(eta0))
                onehot = pt.eq(fidx[:, None], pt.arange(2)[None, :])
                ame = (diff[:, None] * onehot).sum(axis=0) / pt.maximum(onehot.sum(axis=0), 1)
                te_points = pm.Deterministic("treatment_effect", ame, dims="fracture")
            self._derived(te_points, w, cpre, slope, options)
        return m

    def _build_summary(self, inp, priors, options):
        d = inp.data
        coords = {"arm": list(ARMS), "fracture": list(FRACTURES)}
        n = d["n"].values.astype(float)
        with pm.Model(coords=coords) as m:
            cn = pm.Data("cell_n", n, dims=("arm", "fracture"))
            cpre = pm.Data("cell_pre_mean", d["pre_mean"].values, dims=("arm", "fracture"))
            chg = pm.Data("cell_change_mean_obs", d["change_mean"].values, dims=("arm", "fracture"))
            var = pm.Data("cell_change_var_obs", d["change_sd"].values ** 2, dims=("arm", "fracture"))
            w = pm.Data("stratum_weight", n.sum(axis=0) / n.sum(), dims="fracture")
            intercept = make_prior("intercept", priors["intercept"], ("fracture",), coords)
            slope = make_prior("preop_slope", priors["preop_slope"], (), coords)
            te = self._treatment(priors, options, coords, "treatment_effect")
            sigma = make_prior("sigma", priors["sigma"], ("arm", "fracture") if options.sigma == "by_cell" else (), coords)
            psfs = pt.as_tensor_variable(np.array([1.0, 0.0]))[:, None]
            theta = pm.Deterministic("expected_change", (intercept[None, :] - 15.0) + te[None, :] * psfs + (slope - 1.0) * (cpre - 15.0),
                                     dims=("arm", "fracture"))
            pm.Normal("cell_change_mean", mu=theta, sigma=sigma / pt.sqrt(cn), observed=chg, dims=("arm", "fracture"))
            # (n - 1) s^2 / sigma^2 ~ chi^2(n - 1), i.e. s^2 ~ Gamma(shape (n - 1)/2, rate (n - 1)/(2 sigma^2))
            pm.Gamma("cell_change_var", alpha=(cn - 1) / 2, beta=(cn - 1) / (2 * sigma**2), observed=var, dims=("arm", "fracture"))
            self._derived(te, w, cpre, slope, options)
        return m

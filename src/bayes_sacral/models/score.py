"""A bounded score after treatment: hierarchical regression on the score before treatment, treatment × stratum interaction.

Patient-level form (patient i in stratum s; T_i = 1 for the treatment arm; m = the scale's midpoint (min + max) / 2)::

    post_i ~ likelihood(mu_i, ...)
    mu_i = intercept[s] + treatment_effect[s] · T_i + preop_slope · (pre_i − m)
    treatment_effect[s] = treatment_effect_mean + treatment_effect_sd · z[s],  z[s] ~ Normal(0, 1)   (partial pooling)

``treatment_effect`` is always treatment − control on the score's own scale; its benefit direction follows the card's
``higher_is_better``. Likelihoods: ``normal`` and ``student_t`` on the points scale; ``beta_binomial`` on the whole-number
score (post − min out of max − min) with a logit link for the mean (``mu`` above is then on the logit scale, with
``*_logit`` parameter names, and ``treatment_effect`` is the average marginal effect in points over the stratum's
patients: ceilings and floors are real). Pooling across strata: ``partial`` (non-centred), ``none`` or ``complete``;
with one stratum there is one effect and no interaction.

Routes into the same estimands:

- ``ipd``: validated patient-level data (patients without both scores are left out, and the run says how many);
- ``summary``: the exact likelihood of each cell's sufficient statistics under the patient-level model with a normal
  pre-treatment score: cell mean change ~ Normal(theta_c, sigma/√n_c) given the cell's pre-treatment mean, with
  theta_c = intercept[s] − m + treatment_effect[s]·T + (preop_slope − 1)(mean pre_c − m), and (n_c − 1)s_c²/v_c ~
  χ²(n_c − 1) for the SD of change, v_c = sigma² + (1 − preop_slope)²·pre_sd_c² (``pre_sd``: the within-cell SD of the
  pre-treatment score, from reported pre SDs where the source gives them, else its prior). ``preop_slope`` is weakly
  identified from summaries;
- ``reconstructed``: K patient-level data sets reconstructed from the summaries, the IPD model fitted to each
  (compiled once) and the draws pooled, with the between-reconstruction spread reported.

Default priors scale with the score's range R = max − min (for R = 30: intercept ~ N(m, 10), effect ~ N(0, 5),
between-stratum SD ~ HalfNormal(3), residual SD ~ HalfNormal(10)). Decision thresholds default to the card's MCID.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr
from pydantic import Field

from ..data.summary import score_cells
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
    reconstructed_input,
)
from .blocks import pooled_effect, pooled_effect_params, pooling_of, stratum_contrasts

__all__ = ["ScoreModel", "ScoreOptions", "score_dataset"]

_Z95 = 1.6449  # one-sided 95% normal quantile: skeptical/enthusiastic priors put 5% beyond 0 or the MCID


class ScoreOptions(KindOptions):
    kind: Literal["score"] = "score"
    likelihood: Literal["normal", "student_t", "beta_binomial"] = "normal"
    """normal | student_t (points scale) | beta_binomial (whole-number score, logit link)."""
    pooling: Literal["partial", "none", "complete"] = "partial"
    """How the treatment effect is shared across strata (ignored with one stratum)."""
    route: Literal["auto", "ipd", "summary", "reconstructed"] = "auto"
    """auto: ipd for patient-level data, summary otherwise; reconstructed: fit to patient data rebuilt from the summaries."""
    sigma: Literal["common", "by_cell"] = "common"
    """Residual SD shared by all cells, or one per arm × stratum cell (normal / student_t)."""
    reconstructions: int = Field(20, ge=1, le=500)
    """reconstructed route: number of reconstructed data sets (K)."""
    pre_post_correlation: float = Field(0.5, ge=-0.95, le=0.95)
    """reconstructed route: assumed within-cell correlation of pre- and post-treatment totals (a sensitivity parameter)."""
    reconstruction_seed: int = Field(1, ge=0)
    """reconstructed route: seed of the reconstruction search (fixed so runs with different sampler seeds share data sets)."""


def _N(mu, sigma, why):
    return PriorSpec("Normal", {"mu": float(mu), "sigma": float(sigma)}, why)


def _HN(sigma, why):
    return PriorSpec("HalfNormal", {"sigma": float(sigma)}, why)


def _g(x: float) -> str:
    return f"{x:.3g}"


def _prior_sets(spec: ModelSpec) -> dict[str, PriorSet]:
    o = spec.o
    R, mid = o.range, o.midpoint
    bb = spec.options.likelihood == "beta_binomial"
    mcid = o.mcid.value if o.mcid is not None else None
    d = o.direction
    unit = o.unit
    sets_te: dict[str, tuple[PriorSpec, PriorSpec]] = {}
    if not bb:
        sets_te["weakly_informative"] = (_N(0, R / 6, f"no effect a priori; ±{_g(R / 3)} {unit} (a third of the range) within 95%"),
                                         _HN(R / 10, f"strata may differ by a few {unit} (a tenth of the range)"))
        if mcid is not None:
            s = mcid / _Z95
            sets_te["skeptical"] = (_N(0, s, f"centred on no effect with sd = MCID/1.645 = {_g(s)}: P(benefit > MCID) = 5% a priori"),
                                    _HN(R / 20, "little heterogeneity between strata"))
            sets_te["enthusiastic"] = (_N(d * mcid, s, f"centred on a benefit of one MCID ({_g(mcid)} {unit}) with sd {_g(s)}: "
                                          "P(no benefit) = 5% a priori"), _HN(R / 20, "little heterogeneity between strata"))
        sets_te["reference"] = (PriorSpec("Flat", {}, "improper flat prior (classical reference)"),
                                _HN(R / 3, "vague but proper: a flat prior on a between-stratum SD with few strata gives an improper posterior"))
        common = {
            "weakly_informative": {"intercept": _N(mid, R / 3, f"post-treatment score of a control patient with pre-treatment {_g(mid)}: "
                                                   f"anywhere in {o.min}-{o.max}"),
                                   "preop_slope": _N(0, 1, "post-treatment points per pre-treatment point; 1 = change-score model"),
                                   "sigma": _HN(R / 3, f"residual SD up to about {_g(2 * R / 3)} {unit}"),
                                   "pre_sd": _HN(R / 6, f"within-cell SD of the pre-treatment score (a prior where the source reports none): "
                                                 f"mostly below {_g(R / 3)} {unit}"),
                                   "nu": PriorSpec("Gamma", {"alpha": 2.0, "beta": 0.1}, "Juárez & Steel (2010) prior for t degrees of freedom")},
            "reference": {"intercept": PriorSpec("Flat", {}, "improper flat prior (classical reference)"),
                          "preop_slope": _N(0, 10, "vague but proper: the summary route cannot identify it from the data"),
                          "sigma": PriorSpec("Jeffreys", {}, "Jeffreys' p(sigma) ∝ 1/sigma: with flat location priors the posterior "
                                             "of a cell mean is Student's t, the classical answer"),
                          "pre_sd": _HN(R / 6, "within-cell SD of the pre-treatment score; proper, since the summaries may not report it"),
                          "nu": PriorSpec("Gamma", {"alpha": 2.0, "beta": 0.1}, "Juárez & Steel (2010)")},
        }
    else:
        # an effect of one MCID near a 60% mean is about MCID / (R · 0.6 · 0.4) logits
        lor = (mcid / (R * 0.24)) if mcid is not None else None
        sets_te["weakly_informative"] = (_N(0, 1, "logit scale: no effect a priori; ±2 logits within 95%"),
                                         _HN(0.5, "between-stratum spread (logits)"))
        if lor is not None:
            sets_te["skeptical"] = (_N(0, lor / _Z95, f"≈ MCID/1.645 on the logit scale near a 60% mean ({_g(lor)} logits = one MCID)"),
                                    _HN(0.25, "little heterogeneity"))
            sets_te["enthusiastic"] = (_N(d * lor, lor / _Z95, "centred on a benefit of ≈ one MCID on the logit scale"),
                                       _HN(0.25, "little heterogeneity"))
        sets_te["reference"] = (_N(0, 10, "vague"), _HN(5, "vague"))
        slope = 6.0 / R  # 0.2 logits per point on a 0-30 scale: ±6 logits over the range within 2 sd
        common = {
            "weakly_informative": {"intercept": _N(0, 1.5, f"logit of the expected post-treatment score's share of the range "
                                                   f"(control, pre-treatment {_g(mid)})"),
                                   "preop_slope": _N(0, slope, f"logits per pre-treatment point (±{_g(2 * slope * R)} logits over the range)"),
                                   "phi": PriorSpec("Gamma", {"alpha": 2.0, "beta": 0.1}, "beta-binomial precision α + β; mean 20")},
            "reference": {"intercept": _N(0, 10, "vague"), "preop_slope": _N(0, 10 * slope, "vague"),
                          "phi": PriorSpec("Gamma", {"alpha": 1.0, "beta": 0.01}, "vague")},
        }
    common["skeptical"] = common["enthusiastic"] = common["weakly_informative"]
    descriptions = {
        "weakly_informative": f"Weakly informative: effects centred on 0, scales matched to the {o.min}-{o.max} range (the default).",
        "skeptical": "Skeptical: the treatment effect is centred on 0 with 5% prior probability of a benefit beyond the MCID "
                     "(Spiegelhalter et al.).",
        "enthusiastic": f"Enthusiastic: the treatment effect is centred on a benefit of one MCID ({_g(mcid or 0)} {unit}) with 5% prior "
                        "probability of no benefit.",
        "reference": "Reference: flat location priors and Jeffreys' 1/sigma (improper; no prior predictive), to reproduce classical analyses.",
    }
    prefix = "treatment_effect_logit" if bb else "treatment_effect"
    names = {p for p, *_ in _params_list(spec)}
    out = {}
    for name, (loc, scale) in sets_te.items():
        pri = {k: v for k, v in common[name].items() if k in names}
        for pname, _support, _dims, role in pooled_effect_params(prefix, spec):
            pri[pname] = loc if role == "location" else scale
        src = o.mcid.source if (name in ("skeptical", "enthusiastic") and o.mcid is not None) else ""
        out[name] = PriorSet(name, descriptions[name], pri, source=src)
    # the standard grid around the weakly informative set: points (normal, student_t) or logits (beta-binomial)
    locations = [p for p, _s, _d, role in pooled_effect_params(prefix, spec) if role == "location"]
    if bb:
        out.update(grid_prior_sets(spec, out["weakly_informative"], locations, 2.0, (mcid / (R * 0.24)) if mcid else None, "logits"))
    else:
        out.update(grid_prior_sets(spec, out["weakly_informative"], locations, R / 6, mcid, unit))
    out.update(declared_prior_sets(spec, "score", spec.options.likelihood))
    return out


def _params_list(spec: ModelSpec) -> list[tuple[str, str, tuple[str, ...], str]]:
    bb = spec.options.likelihood == "beta_binomial"
    out = [("intercept", "real", (spec.sdim,), ""), ("preop_slope", "real", (), "")]
    if spec.options.route == "summary":
        out.append(("pre_sd", "positive", ("arm", spec.sdim), ""))
    if bb:
        out.append(("phi", "positive", (), ""))
    else:
        out.append(("sigma", "positive", ("arm", spec.sdim) if spec.options.sigma == "by_cell" else (), ""))
        if spec.options.likelihood == "student_t":
            out.append(("nu", "positive", (), ""))
    return out


def score_dataset(frame, spec: ModelSpec) -> tuple[xr.Dataset, int]:
    """Patient-level scores as model data (dims ``patient``); patients without both scores are left out (their count)."""
    name = spec.outcome
    pre_c, post_c = f"{name}_pre", f"{name}_post"
    if pre_c not in frame.columns or post_c not in frame.columns:
        raise InputError([Problem("<ipd>", f"columns {pre_c}, {post_c}", "", f"the score model of {spec.card.outcome_label(name)} needs "
                                  "the scores before and after treatment")])
    keep = frame[pre_c].notna() & frame[post_c].notna()
    sub = frame[keep.to_numpy(dtype=bool)]
    arm = sub["arm"].astype(str).to_numpy()
    lev = sub[spec.sdim].astype(str).to_numpy()
    post = sub[post_c].astype(int).to_numpy()
    ds = xr.Dataset(
        {"pre": ("patient", sub[pre_c].astype(int).to_numpy()),
         "post": ("patient", post),
         "post_from_min": ("patient", post - spec.o.min),
         "treatment": ("patient", (arm == spec.arms[0]).astype(int)),
         "arm_idx": ("patient", np.array([spec.arms.index(a) for a in arm], dtype=int)),
         "stratum_idx": ("patient", np.array([spec.levels.index(x) for x in lev], dtype=int))},
        coords={"patient": sub["patient_id"].astype(str).to_numpy(), "arm": list(spec.arms), spec.sdim: list(spec.levels)},
    )
    return ds, int((~keep).sum())


def _cell_counts(ds: xr.Dataset, spec: ModelSpec) -> np.ndarray:
    counts = np.zeros((2, spec.K))
    np.add.at(counts, (ds["arm_idx"].values, ds["stratum_idx"].values), 1)
    return counts


class ScoreModel(ModelKind):
    name = "score"
    title = "A bounded score after treatment: hierarchical regression on the score before treatment"
    options_class = ScoreOptions
    outcome_kind = "score"

    # ---------------------------------------------------------------- declaration
    def params(self, spec):
        bb = spec.options.likelihood == "beta_binomial"
        prefix = "treatment_effect_logit" if bb else "treatment_effect"
        unit = "logits" if bb else spec.o.unit
        o = spec.o
        desc = {"intercept": f"expected post-treatment score of a control patient at pre-treatment {_g(o.midpoint)} ({unit})",
                "pre_sd": f"within-cell SD of the pre-treatment score ({o.unit})",
                "preop_slope": f"per pre-treatment point ({unit})", "phi": "beta-binomial precision",
                "sigma": f"residual SD ({o.unit})", "nu": "Student-t degrees of freedom"}
        out = {n: PriorParam(n, sup, dims, desc[n]) for n, sup, dims, _ in _params_list(spec)}
        roles = {"location": f"treatment effect ({unit})", "scale": f"between-stratum SD of the effect ({unit})"}
        for n, sup, dims, role in pooled_effect_params(prefix, spec):
            out[n] = PriorParam(n, sup, dims, roles[role])
        return out

    def prior_sets(self, spec):
        return _prior_sets(spec)

    def default_prior_set(self, spec):
        return "weakly_informative"

    def check_options(self, spec, data_source: str) -> list[tuple[str, str, str]]:
        out = []
        options = spec.options
        route = self.route(spec, data_source)
        if options.route == "ipd" and data_source != "ipd":
            out.append(("model.route", "'ipd'", "route = ipd needs data.source = ipd (patient-level data)"))
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
    def route(spec, data_source: str) -> str:
        if spec.options.route != "auto":
            return spec.options.route
        return "ipd" if data_source == "ipd" else "summary"

    def observed_names(self):
        return ["post_obs", "cell_change_mean_obs", "cell_change_var_obs", "cell_pre_var_obs"]

    def data_map(self, spec) -> dict[str, str]:
        """pm.Data container -> patient-level Dataset variable (what a refit to another data set replaces)."""
        post = "post_from_min" if spec.options.likelihood == "beta_binomial" else "post"
        return {"pre": "pre", "post_obs": post, "treatment": "treatment", "stratum_idx": "stratum_idx", "arm_idx": "arm_idx"}

    def estimands(self, spec):
        bb = spec.options.likelihood == "beta_binomial"
        partial = pooling_of(spec) == "partial"
        out = ["treatment_effect", "treatment_effect_pct"] + (["interaction"] if spec.K > 1 else []) + ["treatment_effect_average"]
        if bb:
            out += ["treatment_effect_logit"] + (["treatment_effect_logit_mean", "treatment_effect_logit_sd"] if partial else [])
        else:
            out += ["change_difference"] + (["treatment_effect_mean", "treatment_effect_sd"] if partial else [])
        out += ["intercept", "preop_slope"] + (["phi"] if bb else ["sigma"]) + (["nu"] if spec.options.likelihood == "student_t" else [])
        return out

    def effects(self, spec):
        d = spec.o.direction
        out = {"treatment_effect": d, "treatment_effect_average": d}
        if spec.options.likelihood != "beta_binomial":
            out["change_difference"] = d
            if pooling_of(spec) in ("partial", "complete"):
                out["treatment_effect_mean"] = d
        else:
            out["treatment_effect_logit"] = d
        return out

    def stratum_aggregates(self, spec):
        return ["treatment_effect_average"]

    def headline(self, spec):
        if spec.options.route == "summary":
            return ["treatment_effect", "change_difference", "treatment_effect_average", "interaction"]
        return ["treatment_effect", "treatment_effect_average", "interaction"]

    def outcome_phrase(self, spec):
        label = spec.card.outcome_label(spec.outcome)
        ctrl = spec.card.arm_label(spec.card.arms.control)
        return f"improved {label} more than {ctrl}" if spec.o.higher_is_better else f"lowered {label} more than {ctrl}"

    def axis_label(self, spec, var):
        o = spec.o
        label = spec.card.outcome_label(spec.outcome)
        c = self.contrast_phrase(spec)
        return {"treatment_effect": f"{c} ({label}, {o.unit})", "treatment_effect_average": f"{c}, average over strata ({o.unit})",
                "change_difference": f"Difference in mean change, {c} ({o.unit})", "interaction": f"Difference in effect between strata ({o.unit})",
                "treatment_effect_mean": f"Pooled effect, {c} ({o.unit})", "treatment_effect_pct": f"{c} (% of the {o.min}-{o.max} range)",
                "preop_slope": f"Post-treatment {o.unit} per pre-treatment point" + (" (logits)" if spec.options.likelihood == "beta_binomial" else ""),
                "sigma": f"Residual SD ({o.unit})"}.get(var, var.replace("_", " "))

    def unit(self, spec, var):
        return spec.o.unit if var in self.points_vars(spec) else ""

    def threshold_variables(self, spec):
        return [v for v in self.effect_variables(spec) if v in self.points_vars(spec)]

    def points_vars(self, spec):
        return {"treatment_effect", "change_difference", "treatment_effect_mean", "treatment_effect_average", "interaction"}

    def diagnostic_params(self, spec):
        return ["treatment_effect", "preop_slope", "sigma", "phi", "treatment_effect_sd", "treatment_effect_logit_sd"]

    def prior_posterior_vars(self, spec):
        return ["treatment_effect", "preop_slope"]

    def describe(self, spec):
        o, card = spec.o, spec.card
        t, c = card.arm_label(spec.arms[0]), card.arm_label(spec.arms[1])
        lik = {"normal": "Normal(mu_i, sigma)", "student_t": "StudentT(nu, mu_i, sigma)",
               "beta_binomial": f"post_i − {o.min} ~ BetaBinomial({o.range}, p_i·phi, (1 − p_i)·phi), logit p_i = mu_i"}[spec.options.likelihood]
        pooling = pooling_of(spec)
        pool = {"partial": f"treatment_effect[s] = treatment_effect_mean + treatment_effect_sd · z[s], z[s] ~ Normal(0, 1) "
                           f"(partial pooling across the {spec.K} strata, non-centred)",
                "none": "treatment_effect[s] has its own prior in each stratum (no pooling)",
                "complete": "treatment_effect[s] = treatment_effect_mean in every stratum (complete pooling)",
                "single": "one treatment_effect (the study has one stratum)"}[pooling]
        if spec.options.likelihood == "beta_binomial":
            pool = pool.replace("treatment_effect", "treatment_effect_logit")
        strata = f"stratum s ({card.strata_label}: {', '.join(spec.levels)})" if card.stratified else "the single stratum s"
        text = (f"{card.outcome_label(spec.outcome)} after treatment (post_i, {o.min}-{o.max} {o.unit}) ~ {lik}; mu_i = intercept[s] + "
                f"treatment_effect[s] · T_i + preop_slope · (pre_i − {_g(o.midpoint)}), with T_i = 1 for {t} and 0 for {c}, for {strata}; {pool}. "
                f"treatment_effect is {t} − {c} on the score's own scale ({'higher' if o.higher_is_better else 'lower'} is better); ")
        if spec.K > 1:
            text += f"interaction[level vs {spec.levels[0]}] = treatment_effect[level] − treatment_effect[{spec.levels[0]}]; "
        text += ("treatment_effect_average weights the strata by their share of patients; treatment_effect_pct is the effect in "
                 "percent of the score's range.")
        if spec.options.likelihood == "beta_binomial":
            text += (f" With the logit link, treatment_effect is the average marginal effect in {o.unit} over each stratum's patients "
                     f"({o.range} × mean of p_i(treatment) − p_i(control)).")
        return text

    # ---------------------------------------------------------------- data
    def prepare(self, study, spec):
        route = self.route(spec, study.source)
        if route == "summary":
            data, notes, bad = self._summary_dataset(study, spec)
            data.attrs["route"] = "summary"
            return ModelInput(data, notes, not_estimable=bad)
        if route == "ipd":
            if study.ipd is None:
                raise InputError([Problem(study.path or study.label(), "model.route", "'ipd'", "needs patient-level data")])
            data, dropped = score_dataset(study.ipd.frame, spec)
            data.attrs["route"] = "ipd"
            notes = []
            if dropped:
                notes.append(f"{dropped} patient(s) without both {spec.outcome}_pre and {spec.outcome}_post were left out (complete-case analysis)")
            if data.sizes["patient"] == 0:
                raise InputError([Problem(study.path or study.label(), f"columns {spec.outcome}_pre, {spec.outcome}_post", "",
                                          "no patient has both scores")])
            bad = check_cells(spec, _cell_counts(data, spec), study.path or study.label())
            return ModelInput(data, notes, not_estimable=bad)
        inp = reconstructed_input(study, spec, lambda f: score_dataset(f, spec)[0],
                                  f"reconstructed patient-level data: {spec.options.reconstructions} data sets consistent with the "
                                  f"published summaries (SPRITE-style search), assumed within-cell pre-post correlation "
                                  f"{spec.options.pre_post_correlation}; the draws of the fits to each are pooled")
        for r in inp.replicates:
            r.attrs["route"] = "reconstructed"
        return inp

    def _summary_dataset(self, study, spec) -> tuple[xr.Dataset, list[str], dict[str, str]]:
        sc = score_cells(study.require_summary("the summary route"), spec.outcome)
        card = spec.card
        where = study.path or study.label()
        n = sc["n"]
        pre = sc["mean"].sel(item="total", time="pre", drop=True)
        post = sc["mean"].sel(item="total", time="post", drop=True)
        sd = sc["change_sd"]
        missing = [card.cell_label(a, lev) for a in spec.arms for lev in spec.levels
                   if any(np.isnan(x.sel({"arm": a, spec.sdim: lev}).item()) for x in (n, pre, post, sd))
                   and n.sel({"arm": a, spec.sdim: lev}).item() != 0]
        if missing:
            raise InputError([Problem(where, ", ".join(missing), "", f"the summary route needs n, the pre and post mean "
                                      f"{card.outcome_label(spec.outcome)} totals and the SD of change in every cell")])
        bad = check_cells(spec, np.nan_to_num(n.values), where)
        small = [card.cell_label(a, lev) for a in spec.arms for lev in spec.levels if n.sel({"arm": a, spec.sdim: lev}).item() == 1]
        if small:
            raise InputError([Problem(where, ", ".join(small), "n = 1", "every cell needs n >= 2 for an SD of change")])
        # an empty cell contributes nothing (n = 0 drops out of the likelihood below)
        fill = {"pre": spec.o.midpoint, "post": spec.o.midpoint, "sd": 1.0}
        pre_sd = sc["pre_sd"]
        out = xr.Dataset({"n": n.fillna(0), "pre_mean": pre.fillna(fill["pre"]), "post_mean": post.fillna(fill["post"]),
                          "change_mean": (post - pre).fillna(0.0), "change_sd": sd.fillna(fill["sd"]),
                          "pre_sd": pre_sd.fillna(0.0), "pre_sd_reported": pre_sd.notnull() & (n > 1)})
        n_pre = int(out["pre_sd_reported"].sum())
        notes = [f"summary route: each cell's mean change is the reported post − pre mean (to the reported decimals) and its SD of "
                 f"change the reported value (percent of the range converted to {spec.o.unit}); both are treated as exact",
                 "summary route: under the patient-level model with a normal pre-treatment score, the variance of change in a cell is "
                 "sigma² + (1 − preop_slope)²·pre_sd², so the reported SDs of change inform sigma and the slope together; the "
                 "pre-treatment covariate's mean enters through the cell means, so preop_slope remains weakly identified",
                 (f"summary route: the within-cell SD of the pre-treatment score is reported in {n_pre} cell(s) and has the prior "
                  "stated with the run elsewhere" if n_pre else "summary route: the within-cell SD of the pre-treatment score is not "
                  "reported; it has the prior stated with the run (pre_sd)")]
        return out, notes, bad

    # ---------------------------------------------------------------- model
    def _derived(self, te_points, weights, cell_pre, slope, spec):
        import pymc as pm

        sdim = spec.sdim
        pm.Deterministic("treatment_effect_pct", te_points / spec.o.range * 100, dims=sdim)
        stratum_contrasts("interaction", te_points, spec)
        pm.Deterministic("treatment_effect_average", (te_points * weights).sum())
        if spec.options.likelihood != "beta_binomial":
            # difference in expected mean change between the arms at their own pre-treatment means: what a t test on change estimates
            pm.Deterministic("change_difference", te_points + (slope - 1) * (cell_pre[0] - cell_pre[1]), dims=sdim)

    def build(self, inp, priors, spec):
        if inp.data.attrs.get("route") == "summary":
            return self._build_summary(inp, priors, spec)
        return self._build_ipd(inp, priors, spec)

    def _build_ipd(self, inp, priors, spec):
        import pymc as pm
        import pytensor.tensor as pt

        d = inp.data
        o = spec.o
        K = spec.K
        coords = {**spec.coords(), "patient": [str(p) for p in d["patient"].values]}
        s_idx = d["stratum_idx"].values
        a_idx = d["arm_idx"].values
        counts = np.bincount(s_idx, minlength=K).astype(float)
        pre_v = d["pre"].values.astype(float)
        cell_pre = np.array([[pre_v[(a_idx == a) & (s_idx == s)].mean() if ((a_idx == a) & (s_idx == s)).any() else o.midpoint
                              for s in range(K)] for a in range(2)])
        bb = spec.options.likelihood == "beta_binomial"
        sdim = spec.sdim
        with pm.Model(coords=coords) as m:
            pre = pm.Data("pre", pre_v, dims="patient")
            post = pm.Data("post_obs", (d["post_from_min"] if bb else d["post"]).values.astype("int64" if bb else float), dims="patient")
            treat = pm.Data("treatment", d["treatment"].values.astype(float), dims="patient")
            sidx = pm.Data("stratum_idx", s_idx.astype("int64"), dims="patient")
            aidx = pm.Data("arm_idx", a_idx.astype("int64"), dims="patient")
            w = pm.Data("stratum_weight", counts / counts.sum(), dims=sdim)
            cpre = pm.Data("cell_pre_mean", cell_pre, dims=("arm", sdim))
            intercept = make_prior("intercept", priors["intercept"], (sdim,), coords)
            slope = make_prior("preop_slope", priors["preop_slope"], (), coords)
            prefix = "treatment_effect_logit" if bb else "treatment_effect"
            te = pooled_effect(prefix, priors, spec, coords)
            eta0 = intercept[sidx] + slope * (pre - o.midpoint)
            eta = eta0 + te[sidx] * treat
            if not bb:
                sigma = make_prior("sigma", priors["sigma"], ("arm", sdim) if spec.options.sigma == "by_cell" else (), coords)
                s_i = sigma[aidx, sidx] if spec.options.sigma == "by_cell" else sigma
                if spec.options.likelihood == "normal":
                    pm.Normal("post", mu=eta, sigma=s_i, observed=post, dims="patient")
                else:
                    nu = make_prior("nu", priors["nu"], (), coords)
                    pm.StudentT("post", nu=nu, mu=eta, sigma=s_i, observed=post, dims="patient")
                te_points = te
            else:
                phi = make_prior("phi", priors["phi"], (), coords)
                p = pm.math.invlogit(eta)
                pm.BetaBinomial("post", n=o.range, alpha=p * phi, beta=(1 - p) * phi, observed=post, dims="patient")
                diff = o.range * (pm.math.invlogit(eta0 + te[sidx]) - pm.math.invlogit(eta0))
                onehot = pt.eq(sidx[:, None], pt.arange(K)[None, :])
                ame = (diff[:, None] * onehot).sum(axis=0) / pt.maximum(onehot.sum(axis=0), 1)
                te_points = pm.Deterministic("treatment_effect", ame, dims=sdim)
            self._derived(te_points, w, cpre, slope, spec)
        return m

    def _build_summary(self, inp, priors, spec):
        import pymc as pm
        import pytensor.tensor as pt

        d = inp.data
        o = spec.o
        sdim = spec.sdim
        coords = spec.coords()
        n = d["n"].values.astype(float)
        has = (n > 0).astype(float)
        with pm.Model(coords=coords) as m:
            cn = pm.Data("cell_n", np.maximum(n, 2.0), dims=("arm", sdim))
            present = pm.Data("cell_present", has, dims=("arm", sdim))
            cpre = pm.Data("cell_pre_mean", d["pre_mean"].values, dims=("arm", sdim))
            chg = pm.Data("cell_change_mean_obs", d["change_mean"].values, dims=("arm", sdim))
            var = pm.Data("cell_change_var_obs", d["change_sd"].values ** 2, dims=("arm", sdim))
            w = pm.Data("stratum_weight", n.sum(axis=0) / n.sum(), dims=sdim)
            intercept = make_prior("intercept", priors["intercept"], (sdim,), coords)
            slope = make_prior("preop_slope", priors["preop_slope"], (), coords)
            te = pooled_effect("treatment_effect", priors, spec, coords)
            sigma = make_prior("sigma", priors["sigma"], ("arm", sdim) if spec.options.sigma == "by_cell" else (), coords)
            pre_sd = make_prior("pre_sd", priors["pre_sd"], ("arm", sdim), coords)
            treat = pt.as_tensor_variable(np.array([1.0, 0.0]))[:, None]
            theta = pm.Deterministic("expected_change", (intercept[None, :] - o.midpoint) + te[None, :] * treat
                                     + (slope - 1.0) * (cpre - o.midpoint), dims=("arm", sdim))
            sig = sigma * pt.ones((2, spec.K))
            # change_i = theta + (slope - 1)(pre_i - mean pre) + e_i: given the pre values the mean change has SD sigma/sqrt(n);
            # with a normal pre-treatment score the sample variance of change is independent of the means and
            # (n - 1) s^2 / v ~ chi^2(n - 1), v = sigma^2 + (1 - slope)^2 pre_sd^2, i.e. s^2 ~ Gamma((n - 1)/2, (n - 1)/(2 v))
            v = sig**2 + (1.0 - slope) ** 2 * pre_sd**2
            pm.Deterministic("change_sd_expected", pt.sqrt(v), dims=("arm", sdim))
            if has.all():
                pm.Normal("cell_change_mean", mu=theta, sigma=sig / pt.sqrt(cn), observed=chg, dims=("arm", sdim))
                pm.Gamma("cell_change_var", alpha=(cn - 1) / 2, beta=(cn - 1) / (2 * v), observed=var, dims=("arm", sdim))
            else:  # empty cells contribute nothing
                pm.Potential("cell_change_mean", (present * pm.logp(pm.Normal.dist(theta, sig / pt.sqrt(cn)), chg)).sum())
                pm.Potential("cell_change_var", (present * pm.logp(pm.Gamma.dist(alpha=(cn - 1) / 2, beta=(cn - 1) / (2 * v)), var)).sum())
            rep = d["pre_sd_reported"].values.astype(bool)
            if rep.any():
                ai, si = np.nonzero(rep)
                coords_rep = {"reported_pre_sd": [f"{spec.arms[a]}, {spec.levels[j]}" for a, j in zip(ai, si, strict=True)]}
                m.add_coords(coords_rep)
                pvar = pm.Data("cell_pre_var_obs", d["pre_sd"].values[rep] ** 2, dims="reported_pre_sd")
                n_rep = n[rep]
                pm.Gamma("cell_pre_var", alpha=(n_rep - 1) / 2, beta=(n_rep - 1) / (2 * pre_sd[ai, si] ** 2), observed=pvar,
                         dims="reported_pre_sd")
            self._derived(te, w, cpre, slope, spec)
        return m


"""Ordered categories by arm × stratum: Dirichlet-multinomial per cell (conjugate), or an ordered logit with a treatment log
odds ratio pooled across strata.

The categories' order is the card's; the log odds ratio is on the outcome's own scale: ``ordinal_log_odds_ratio`` > 0
means treated patients are more likely to be in a *higher* (later) category. Which end is better is the card's ``better``,
so the benefit direction of the log odds ratio is +1 when the last level is better and -1 when the first is.
``p_best`` / ``p_worst`` are the probabilities of the better and worse extreme categories.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from ..data.summary import ordinal_counts
from ..errors import InputError, Problem
from ..priors import PriorParam, PriorSpec, make_prior
from .base import (
    KindOptions,
    ModelInput,
    ModelKind,
    PriorSet,
    check_cells,
    declared_prior_sets,
    grid_prior_sets,
)
from .blocks import (
    cumulative_probs,
    induced_dirichlet_cutpoints,
    pooled_effect,
    pooled_effect_params,
    pooling_of,
)
from .conjugate import ExactPosterior, dirichlet_marginals

__all__ = ["OrdinalModel", "OrdinalOptions", "cutpoint_labels"]


def cutpoint_labels(levels: list[str]) -> list[str]:
    return [f"{a}|{b}" for a, b in zip(levels[:-1], levels[1:], strict=True)]


class OrdinalOptions(KindOptions):
    kind: Literal["ordinal"] = "ordinal"
    variant: Literal["dirichlet_multinomial", "ordered_logit"] = "dirichlet_multinomial"
    """dirichlet_multinomial: a Dirichlet prior on the category probabilities of each arm × stratum cell; ordered_logit:
    cutpoints per stratum and a treatment log odds ratio."""
    pooling: Literal["partial", "none", "complete"] = "partial"
    """ordered_logit only: how the treatment log odds ratio is shared across strata (ignored with one stratum)."""


def _inferred(study, outcome: str) -> list[str]:
    if study.summary is None:
        return []
    return [f"count recovered by arithmetic: {ln}" for ln in study.summary.inferred() if ln.startswith(outcome + "[")]


class OrdinalModel(ModelKind):
    name = "ordinal"
    title = "Ordered categories by arm × stratum"
    options_class = OrdinalOptions
    outcome_kind = "ordinal"

    def _ends(self, spec) -> tuple[int, int]:
        """(index of the best level, index of the worst level)."""
        n = len(spec.o.levels)
        return (0, n - 1) if spec.o.better == spec.o.levels[0] else (n - 1, 0)

    def params(self, spec):
        lev = spec.outcome
        if spec.options.variant == "dirichlet_multinomial":
            return {"p_category": PriorParam("p_category", "simplex", ("arm", spec.sdim, lev), "category probabilities per cell")}
        out = {"baseline_probabilities": PriorParam("baseline_probabilities", "simplex", (spec.sdim, lev),
                                                    "category probabilities under control (define the cutpoints)")}
        desc = {"location": "log odds ratio of a higher category, treatment vs control", "scale": "between-stratum SD"}
        for n, sup, dims, role in pooled_effect_params("ordinal_log_odds_ratio", spec):
            out[n] = PriorParam(n, sup, dims, desc[role])
        return out

    def prior_sets(self, spec):
        if spec.options.variant == "dirichlet_multinomial":
            sets = {
                "uniform": PriorSet("uniform", "Dirichlet(1, ..., 1) per cell: uniform over the probability simplex.", {
                    "p_category": PriorSpec("Dirichlet", {"a": 1.0}, f"uniform on the simplex; weight of {len(spec.o.levels)} patients."),
                }),
                "jeffreys": PriorSet("jeffreys", "Dirichlet(½, ..., ½) per cell (Jeffreys).", {
                    "p_category": PriorSpec("Dirichlet", {"a": 0.5}, "Jeffreys prior for multinomial probabilities."),
                }),
            }
            sets.update(declared_prior_sets(spec, "ordinal", "dirichlet_multinomial"))
            return sets
        base = PriorSpec("Dirichlet", {"a": 1.0}, "induced-Dirichlet cutpoint prior (Betancourt 2019): uniform over the category "
                         "probabilities under control; the cutpoints are their cumulative logits, ordered by construction.")
        sets = {}
        for name, (loc, scale), desc in (
                ("weakly_informative", (PriorSpec("Normal", {"mu": 0.0, "sigma": 1.5}, "no effect a priori; odds ratios 0.05–19 within 95%."),
                                        PriorSpec("HalfNormal", {"sigma": 1.0}, "between-stratum spread of the treatment effect.")),
                 "Induced-Dirichlet cutpoints; log odds ratio centred on no effect."),
                ("skeptical", (PriorSpec("Normal", {"mu": 0.0, "sigma": 0.5}, "skeptical of large effects (odds ratios 0.38–2.7)."),
                               PriorSpec("HalfNormal", {"sigma": 0.5}, "little heterogeneity.")),
                 "As weakly_informative with the log odds ratio held near 0.")):
            pri = {"baseline_probabilities": base}
            for pname, _s, _d, role in pooled_effect_params("ordinal_log_odds_ratio", spec):
                pri[pname] = loc if role == "location" else scale
            sets[name] = PriorSet(name, desc, pri)
        # the standard grid (neutral row only: an ordinal outcome has no MCID); a patient carries about a quarter unit of
        # information about a log odds ratio at the centre of the scale
        locations = [p for p, _s, _d, role in pooled_effect_params("ordinal_log_odds_ratio", spec) if role == "location"]
        sets.update(grid_prior_sets(spec, sets["weakly_informative"], locations, 2.0, None, "logits"))
        sets.update(declared_prior_sets(spec, "ordinal", "ordered_logit"))
        return sets

    def observed_names(self):
        return ["counts_obs"]

    def data_map(self, spec):
        return {"counts_obs": "counts"}

    def prepare(self, study, spec):
        name = spec.outcome
        levels = list(spec.o.levels)
        where = study.path or study.label()
        if study.ipd is not None:
            f = study.ipd.frame
            if name not in f.columns:
                raise InputError([Problem(where, f"column '{spec.card.columns.get(name, name)}'", "",
                                          f"the ordinal model of {spec.card.outcome_label(name)} needs this column")])
            counts = np.zeros((2, spec.K, len(levels)))
            for i, a in enumerate(spec.arms):
                for j, lev in enumerate(spec.levels):
                    sel = ((f["arm"].astype(str) == a) & (f[spec.sdim].astype(str) == lev)).to_numpy(dtype=bool)
                    vals = f.loc[sel, name].astype(str)
                    for k, cat in enumerate(levels):
                        counts[i, j, k] = (vals == cat).sum()
            dropped = int(f[name].isna().sum())
            notes = [f"{dropped} patient(s) with no value of {name} were left out"] if dropped else []
        else:
            sd = study.require_summary(f"the {name} counts")
            counts = ordinal_counts(sd, name).values
            n = sd.cell_sizes().values
            missing = [spec.card.cell_label(a, lev) for i, a in enumerate(spec.arms) for j, lev in enumerate(spec.levels)
                       if np.isnan(counts[i, j]).any() and n[i, j] != 0]
            if missing:
                raise InputError([Problem(where, ", ".join(missing), "", f"the {spec.card.outcome_label(name)} counts are not all "
                                          "reported, so this model cannot be fitted")])
            counts = np.nan_to_num(counts)
            notes = _inferred(study, name)
        trials = counts.sum(-1)
        bad = check_cells(spec, trials, where)
        ds = xr.Dataset({"counts": (("arm", spec.sdim, name), counts.astype(float)), "trials": (("arm", spec.sdim), trials.astype(float))},
                        coords={"arm": list(spec.arms), spec.sdim: list(spec.levels), name: levels, "cutpoint": cutpoint_labels(levels)})
        return ModelInput(ds, notes, not_estimable=bad)

    def build(self, inp, priors, spec):
        import pymc as pm
        import pytensor.tensor as pt

        name, sdim = spec.outcome, spec.sdim
        coords = {**spec.coords(), name: list(spec.o.levels), "cutpoint": cutpoint_labels(list(spec.o.levels))}
        d = inp.data
        best, worst = self._ends(spec)
        with pm.Model(coords=coords) as m:
            counts = pm.Data("counts_obs", d["counts"].values, dims=("arm", sdim, name))
            trials = pm.Data("trials", d["trials"].values, dims=("arm", sdim))
            if spec.options.variant == "dirichlet_multinomial":
                p = make_prior("p_category", priors["p_category"], ("arm", sdim, name), coords)
            else:
                base = make_prior("baseline_probabilities", priors["baseline_probabilities"], (sdim, name), coords)
                c = induced_dirichlet_cutpoints("cutpoints", base, (sdim, "cutpoint"))
                beta = pooled_effect("ordinal_log_odds_ratio", priors, spec, coords)
                eta = pt.stack([beta, pt.zeros_like(beta)])  # (arm, stratum): treatment, control
                p = pm.Deterministic("p_category", cumulative_probs(c[None, :, :], eta), dims=("arm", sdim, name))
            pm.Multinomial("counts", n=trials, p=p, observed=counts, dims=("arm", sdim, name))
            pm.Deterministic("category_difference", p[0] - p[1], dims=(sdim, name))
            pb = pm.Deterministic("p_best", p[..., best], dims=("arm", sdim))
            pw = pm.Deterministic("p_worst", p[..., worst], dims=("arm", sdim))
            pm.Deterministic("difference_p_best", pb[0] - pb[1], dims=sdim)
            pm.Deterministic("difference_p_worst", pw[0] - pw[1], dims=sdim)
        return m

    def exact_available(self, priors, spec):
        p = priors.get("p_category")
        return (spec.options.variant == "dirichlet_multinomial" and p is not None and p.dist == "Dirichlet"
                and not isinstance(p.params.get("a"), dict))

    def exact_draws(self, inp, priors, spec, rng, size, prior=False):
        """p_category[a, s, ·] ~ Dirichlet(a + counts[a, s, ·]), independently per cell (Dirichlet(a) for the prior)."""
        if not self.exact_available(priors, spec):
            return None
        counts = np.nan_to_num(inp.data["counts"].values)
        if prior:
            counts = np.zeros_like(counts)
        K = counts.shape[-1]
        a = np.broadcast_to(np.asarray(priors["p_category"].params["a"], dtype=float), counts.shape)
        out = np.empty((*size, *counts.shape))
        n = int(np.prod(size))
        for idx in np.ndindex(*counts.shape[:-1]):
            out[(..., *idx, slice(None))] = rng.dirichlet(a[idx] + counts[idx], size=n).reshape(*size, K)
        return {"p_category": out}

    def exact_marginals(self, inp, priors, spec, prior=False):
        if spec.options.variant != "dirichlet_multinomial":
            return None
        a = priors["p_category"].params["a"]
        if isinstance(a, dict) or np.ndim(a):
            return None
        counts = inp.data["counts"]
        best, worst = self._ends(spec)
        marg = {}
        for arm in spec.arms:
            for lev in spec.levels:
                c = counts.sel({"arm": arm, spec.sdim: lev}).values
                marg[arm, lev] = dirichlet_marginals(np.full(len(c), float(a)), np.zeros_like(c) if prior else c)
        betas = {f"{label}[{arm}, {lev}]": marg[arm, lev][k] for label, k in (("p_best", best), ("p_worst", worst))
                 for arm in spec.arms for lev in spec.levels}
        t, c = spec.arms
        diffs = {f"{label}[{lev}]": (marg[c, lev][k], marg[t, lev][k])
                 for label, k in (("difference_p_best", best), ("difference_p_worst", worst)) for lev in spec.levels}
        return ExactPosterior(betas, diffs)

    def estimands(self, spec):
        out = ["p_best", "p_worst", "difference_p_best", "difference_p_worst", "category_difference"]
        if spec.options.variant == "ordered_logit":
            extra = ["ordinal_log_odds_ratio_mean", "ordinal_log_odds_ratio_sd"] if pooling_of(spec) == "partial" else []
            out = ["ordinal_log_odds_ratio", *extra, *out]
        return out

    def effects(self, spec):
        out = {"difference_p_best": 1, "difference_p_worst": -1}
        if spec.options.variant == "ordered_logit":
            out = {"ordinal_log_odds_ratio": spec.o.direction, **out}
        return out

    def headline(self, spec):
        return (["ordinal_log_odds_ratio", "difference_p_best", "difference_p_worst"] if spec.options.variant == "ordered_logit"
                else ["difference_p_best", "difference_p_worst"])

    def axis_label(self, spec, var):
        c = self.contrast_phrase(spec)
        best, worst = self._ends(spec)
        lv = spec.o.levels
        lab = spec.card.level_label
        return {"ordinal_log_odds_ratio": f"Log odds ratio of a later category ({' < '.join(lv)}), {c}",
                "difference_p_best": f"Difference in P({lab(spec.outcome, lv[best])}), {c}",
                "difference_p_worst": f"Difference in P({lab(spec.outcome, lv[worst])}), {c}"}.get(var, var.replace("_", " "))

    def diagnostic_params(self, spec):
        return ["p_best", "ordinal_log_odds_ratio"]

    def prior_posterior_vars(self, spec):
        return ["difference_p_best"] if spec.options.variant == "dirichlet_multinomial" else ["ordinal_log_odds_ratio"]

    def outcome_phrase(self, spec):
        label = spec.card.outcome_label(spec.outcome)
        ctrl = spec.card.arm_label(spec.card.arms.control)
        return f"led to a better {label} than {ctrl} (toward '{spec.o.better}')"

    def describe(self, spec):
        name = spec.outcome
        levels = " < ".join(spec.o.levels)
        t = spec.card.arm_label(spec.arms[0])
        if spec.options.variant == "dirichlet_multinomial":
            return (f"{spec.card.outcome_label(name)} ({levels}): counts[a,s,·] ~ Multinomial(n[a,s], p_category[a,s,·]); p_category[a,s,·] ~ "
                    "Dirichlet(a) per arm × stratum cell (conjugate: the posterior is Dirichlet(a + counts)). p_best and p_worst are the "
                    f"probabilities of '{spec.o.better}' and of the other extreme.")
        pool = {"partial": "ordinal_log_odds_ratio[s] = mean + sd · z[s] (partial pooling, non-centred)",
                "none": "ordinal_log_odds_ratio[s] independent per stratum", "complete": "one ordinal_log_odds_ratio shared by every stratum",
                "single": "one ordinal_log_odds_ratio (one stratum)"}[pooling_of(spec)]
        return (f"Ordered logit for {spec.card.outcome_label(name)} ({levels}): P(category ≤ k | a, s) = logistic(cutpoints[s,k] − "
                f"ordinal_log_odds_ratio[s] · T) with T = 1 for {t}, so a positive log odds ratio moves {t} patients toward later "
                f"categories ('{spec.o.better}' is better); {pool}. The cutpoints are the cumulative logits of baseline_probabilities[s] "
                "(the control category probabilities) with a Dirichlet prior (induced-Dirichlet prior), ordered in prior and posterior "
                "draws alike.")

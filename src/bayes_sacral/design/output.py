"""Design outputs: results as netCDF and CSV, a summary, figures (success curves with MCSE bands, OC curves) and a
protocol-ready paragraph, all worded with the study card's labels. Each file is written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..atomic import atomic_write_text
from ..serialize import to_jsonable
from .config import DesignConfig
from .context import NO_EFFECT, Context
from .runner import FIT_SUMMARY

__all__ = ["write_outputs", "protocol_paragraph", "tidy"]


def _atomic_netcdf(ds: xr.Dataset, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".bs-tmp-", suffix=".nc", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def tidy(ds: xr.Dataset) -> pd.DataFrame:
    """One row per scenario and sample size (scenario names survive a CSV round trip: the no-effect one is ``no_effect``)."""
    rows = []
    for sc in ds["scenario"].values:
        for n in ds["sample_size"].values:
            sel = ds.sel(scenario=sc, sample_size=n)
            rows.append({"scenario": str(sc), "label": str(sel["scenario_label"].values), "sample_size": int(n),
                         "success_probability": float(sel["success_probability"]), "mcse": float(sel["mcse"]),
                         "expected_sample_size": float(sel["expected_sample_size"]), "n_trials": int(sel["n_trials"]),
                         **{f"stop_efficacy[{lk}]": float(sel["prob_stop_efficacy"].sel(look=lk)) for lk in ds["look"].values[:-1]},
                         **{f"stop_futility[{lk}]": float(sel["prob_stop_futility"].sel(look=lk)) for lk in ds["look"].values[:-1]},
                         **{k: float(sel[k]) for k in FIT_SUMMARY if k in ds}})
    return pd.DataFrame(rows)


def _fmt(p: float) -> str:
    return "> 0.99" if p >= 0.995 else ("< 0.01" if p <= 0.005 else f"{p:.2f}")


def _pct(x: float) -> str:
    return f"{x:.0%}"


def randomisation_sentence(cfg: DesignConfig) -> str:
    card = cfg.card
    d = cfg.design
    T, C = card.arm_label(card.arms.treatment), card.arm_label(card.arms.control)
    alloc = "1:1" if d.allocation == 1 else f"{d.allocation:g}:1 ({T} : {C})"
    prev = cfg.prevalence
    expected = ", ".join(f"{_pct(prev[lev])} {card.stratum_label(lev)}" for lev in card.stratum_levels)
    if not card.stratified:
        return f"Patients will be randomised {alloc} to {T} or {C}."
    if d.allocation_scheme == "stratified":
        return f"Patients will be randomised {alloc} to {T} or {C}, stratified by {card.strata_label} (expected {expected})."
    return (f"Patients will be randomised {alloc} to {T} or {C} by simple randomisation (one allocation sequence over all "
            f"patients, not stratified; expected {card.strata_label}: {expected}).")


def endpoint_sentence(cfg: DesignConfig) -> str:
    card = cfg.card
    o = cfg.outcome
    label = card.outcome_label(cfg.endpoint)
    if cfg.outcome_kind == "score":
        return (f"The primary endpoint is {label} after treatment ({o.min}-{o.max} {o.unit}, {'higher' if o.higher_is_better else 'lower'} "
                f"is better), adjusted for its value before treatment.")
    pooled = " (pooled over strata)" if card.stratified else ""
    return f"The primary endpoint is the proportion of patients with {label}{pooled}; {'more' if o.higher_is_better else 'fewer'} is better."


def protocol_paragraph(cfg: DesignConfig, ctx: Context, ds: xr.Dataset, manifest: dict) -> str:
    from .runner import rule_text

    d = cfg.design
    sn = manifest["smallest_n"]
    txt = [randomisation_sentence(cfg) + " " + endpoint_sentence(cfg)]
    if manifest["engine"] == "full_model":
        fm = cfg.full_model
        model = (f"the reanalysis' score model ({fm.likelihood.replace('_', '-')} likelihood, score before treatment as covariate, "
                 f"{fm.pooling} pooling over strata, prior set {fm.prior_set})")
    else:
        model = f"a Bayesian model ({ctx.prior_note})"
    txt.append(f"The trial will be analysed with {model}; the decision rule is: {rule_text(cfg, ctx)}.")
    unit = f" {cfg.outcome.unit}" if cfg.outcome_kind == "score" else ""
    if cfg.interim:
        looks = "; ".join(f"at {i.fraction:.0%} of patients" + (f", stop for efficacy if P(benefit > 0) ≥ {i.efficacy:g}" if i.efficacy else "")
                          + (f", stop for futility if {'the predictive probability of success' if i.futility_rule == 'predictive' else f'P(benefit > {ctx.mcid:g}{unit})'} < {i.futility:g}"
                             if i.futility else "") for i in cfg.interim)
        txt.append(f"Interim analyses: {looks}.")
    engine = manifest["engine"]
    nt = manifest.get("n_trials") or {}
    if d.target_mcse is not None and nt:
        lo, hi = nt["min_per_cell"], nt["max_used"]
        count = (f"{lo}" if lo == hi else f"{lo} to {hi}") + (f" simulated trials per scenario and sample size (enough for a Monte Carlo "
                                                               f"standard error ≤ {d.target_mcse:g}, at most {d.n_trials})")
    else:
        count = f"{d.n_trials} simulated trials per sample size"
    how = {"exact": "computed exactly (by enumeration or closed form)",
           "vectorized": f"estimated from {count}",
           "full_model": f"estimated by refitting the analysis model to {count}"}[engine]
    txt.append(f"Operating characteristics were {how} (bayes-sacral, {engine} engine, seed {d.seed}).")
    fits = manifest.get("fits")
    if fits:
        txt.append(fit_sentence(cfg, fits))
    if manifest.get("engine_note"):
        txt.append(f"({manifest['engine_note'][0].upper()}{manifest['engine_note'][1:]}.)")
    des = ds.sel(scenario="design")
    label = ctx.labels["design"]
    if sn["smallest_n"] is not None:
        j = list(ds["sample_size"].values).index(sn["smallest_n"])
        p = float(des["success_probability"].values[j])
        se = float(des["mcse"].values[j])
        s = (f"Under {ctx.truth_note}, {label} reaches the target of {d.target:g} at N = {sn['smallest_n']} "
             f"({_fmt(p)}" + (f", MCSE {se:.3f}" if se > 0 else "") + ")")
        if sn["smallest_n_conservative"] != sn["smallest_n"] or sn["smallest_n_optimistic"] != sn["smallest_n"]:
            s += f"; allowing for Monte Carlo error, between N = {sn['smallest_n_optimistic']} and N = {sn['smallest_n_conservative'] or 'more than ' + str(d.sample_sizes[-1])}"
        txt.append(s + ".")
    else:
        best = float(des["success_probability"].values[-1])
        txt.append(f"Under {ctx.truth_note}, {label} does not reach the target of {d.target:g} within the sample sizes studied "
                   f"(largest N = {d.sample_sizes[-1]}: {_fmt(best)}).")
    if NO_EFFECT in ds["scenario"].values:
        t1 = ds["success_probability"].sel(scenario=NO_EFFECT).values
        txt.append(f"Under no effect, the probability of declaring success (type I error) is at most {t1.max():.3f} over these sample sizes.")
    if cfg.needs_mcid:
        src = cfg.mcid_source
        txt.append(f"The minimal clinically important difference is {ctx.mcid:g}{unit}"
                   + (f" ({src})." if src else "."))
    if "assurance" in label:
        txt.append("Assurance averages over the uncertainty of the reanalysis; it is not the power at a fixed effect.")
    return " ".join(txt)


def fit_sentence(cfg: DesignConfig, fits: dict) -> str:
    """How the full-model engine's trials were fitted, how many fits were escalated or flagged, and the validation."""
    fm = cfg.full_model
    if fits["method"] == "laplace":
        s = (f"Each analysis used a nested Laplace approximation corrected by Pareto-smoothed importance sampling "
             f"({fm.approx_draws} draws), refitted by NUTS ({fm.chains} chains × {fm.draws} draws) when Pareto k̂ > {fm.khat_max:g} "
             f"or the importance-sampling ESS < {fm.min_ess:g} ({_share(fits['share_escalated'])} of trials had an analysis refitted)")
    else:
        s = f"Each analysis was a NUTS fit ({fm.chains} chains × {fm.draws} draws)"
    s += (f"; {_share(fits['share_flagged'])} of trials had a NUTS fit failing its diagnostics (a divergence, R-hat > 1.01 or "
          "ESS < 100 of the decision quantity). A posterior probability within 3 Monte Carlo standard errors of a decision "
          "threshold was estimated again with 4 and then 16 times the draws.")
    v = fits.get("validation")
    if v:
        diff = v["max_abs_difference_in_mcse"]
        s += (f" On a validation subsample of {v['trials']} trials refitted by NUTS ({v['reference']}), the decisions agreed on "
              f"{v['decision_agreement']:.1%} of trials and the success probabilities "
              + (f"differed by at most {diff:.1f} Monte Carlo standard errors." if diff > 0 else "were the same."))
    return s


def _share(x: float) -> str:
    return f"{x:.1%}" if x > 0 else "0%"


def _figures(cfg: DesignConfig, ctx: Context, ds: xr.Dataset, folder: Path) -> list[str]:
    from ..report.style import DOUBLE, PALETTE, SINGLE, house_style, new_figure, save_figure

    out = []
    sizes = ds["sample_size"].values
    card = cfg.card
    label = card.outcome_label(cfg.endpoint)
    with house_style():
        fig, ax = new_figure(SINGLE, 2.6)
        main = [s for s in ds["scenario"].values if not str(s).startswith("oc_")]
        for i, sc in enumerate(main):
            p = ds["success_probability"].sel(scenario=sc).values
            se = ds["mcse"].sel(scenario=sc).values
            ax.plot(sizes, p, "o-", ms=3, color=PALETTE[i], label=ctx.labels[str(sc)])
            ax.fill_between(sizes, np.clip(p - 1.96 * se, 0, 1), np.clip(p + 1.96 * se, 0, 1), color=PALETTE[i], alpha=0.2, lw=0)
        ax.axhline(cfg.design.target, color="0.4", lw=0.6, ls="--")
        ax.set_xlabel(f"Total sample size (patients, {card.arm_label(card.arms.treatment)} + {card.arm_label(card.arms.control)})")
        ax.set_ylabel("P(success)")
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=False, loc="center right", fontsize=7)
        save_figure(fig, folder / "success")
        out.append("success")
        ocs = [s for s in ds["scenario"].values if str(s).startswith("oc_")]
        if ocs:
            eff = [float(str(s)[3:]) for s in ocs]
            fig, ax = new_figure(DOUBLE if len(sizes) > 4 else SINGLE, 2.6)
            for j, n in enumerate(sizes):
                p = [float(ds["success_probability"].sel(scenario=s, sample_size=n)) for s in ocs]
                ax.plot(eff, p, "o-", ms=3, color=PALETTE[j % len(PALETTE)], label=f"N = {n}")
            if cfg.outcome_kind == "score":
                ax.set_xlabel(f"True benefit on {label} ({cfg.outcome.unit}; positive = {card.arm_label(card.arms.treatment)} better)")
            else:
                ax.set_xlabel(f"True risk difference in {label} (positive = {card.arm_label(card.arms.treatment)} better)")
            ax.set_ylabel("P(success)")
            ax.set_ylim(0, 1.02)
            ax.legend(frameon=False, ncols=2, fontsize=7)
            save_figure(fig, folder / "oc")
            out.append("oc")
    return out


def write_outputs(cfg: DesignConfig, ctx: Context, ds: xr.Dataset, out: Path, manifest: dict) -> None:
    _atomic_netcdf(ds, out / "design.nc")
    atomic_write_text(out / "design.csv", tidy(ds).to_csv(index=False, lineterminator="\n"))
    paragraph = protocol_paragraph(cfg, ctx, ds, manifest)
    figs = _figures(cfg, ctx, ds, out / "figures")
    manifest = {**manifest, "figures": figs, "protocol": paragraph}
    atomic_write_text(out / "manifest.json", json.dumps(to_jsonable(manifest), indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "protocol.md", f"# Design {cfg.design.name}\n\n{paragraph}\n\n![Success probability](figures/success.png)\n")

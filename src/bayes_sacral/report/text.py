"""Methods and Results paragraphs with the numbers filled in, worded so as not to overclaim in tiny cells."""

from __future__ import annotations

import numpy as np

from .tables import posterior_table

__all__ = ["methods_paragraph", "results_paragraph", "SMALL_CELL"]

#: Cells with at most this many patients get an explicit warning in the Results text.
SMALL_CELL = 3

_OUTCOME = {
    "msts": ("improved postoperative MSTS more than sacroplasty alone", "points"),
    "secondary_procedures": ("led to fewer secondary procedures than sacroplasty alone", ""),
    "narcotic_change": ("led to less narcotic use than sacroplasty alone", ""),
    "msts_domains": ("improved the item score more than sacroplasty alone", "points of 5"),
}


def _f(x: float, d: int = 2) -> str:
    return f"{x:.{d}f}".replace("-", "−")


def _p(p: float) -> str:
    """A posterior probability without false certainty: "> 0.99" rather than "1.00"."""
    if p >= 0.995:
        return "> 0.99"
    if p <= 0.005:
        return "< 0.01"
    return f"{p:.2f}"


def methods_paragraph(run) -> str:
    m = run.manifest
    v = m["versions"]
    s = m["sampler"]
    kind = m["model"]["kind"]
    data = m["data"]
    parts = []
    what = {"msts": "Postoperative MSTS (0-30) was", "secondary_procedures": "Secondary procedures were", "narcotic_change": "Change in narcotic use was",
            "complications": "Procedural complications were", "msts_domains": "The six MSTS items were"}[kind]
    parts.append(f"{what} analysed with a Bayesian model: {m['model_description']}")
    parts.append(f"Priors were the '{m['prior_set']}' set ({m['prior_set_description'].rstrip('.')})"
                 + (f"; source: {m['prior_set_source']}" if m.get("prior_set_source") else "") + "; every prior is listed with its justification.")
    if data["source"] == "published":
        parts.append("The data were the published summaries (Cox et al., Front. Oncol. 2025)")
    else:
        parts.append(f"The data were {data['label']}")
    for a in data.get("assumptions", []):
        if a.startswith("reconstruction relaxed"):
            continue
        parts.append(a[0].upper() + a[1:])
    relaxed = [a for a in data.get("assumptions", []) if a.startswith("reconstruction relaxed")]
    if relaxed:
        parts.append(f"Reported numbers that no integer data can reproduce were relaxed to the nearest achievable value ({len(relaxed)} "
                     "numbers; listed under Data)")
    parts.append(f"Posterior draws came from the No-U-Turn sampler ({s['backend']}; PyMC {v.get('pymc', '?')}, ArviZ {v.get('arviz', '?')}): "
                 f"{s['chains']} chains of {s['draws']} draws after {s['tune']} tuning iterations"
                 + (f", for each of {m['replicates']['count']} reconstructed data sets, with the draws pooled" if m.get("replicates") else "")
                 + ". Convergence was judged by rank-normalised R-hat (≤ 1.01), bulk and tail effective sample sizes (≥ 100 per chain), "
                   "divergent transitions and E-BFMI.")
    notes = sorted({t["note"] for t in m["decision"]["thresholds"].values() if t.get("note")})
    if notes:
        parts.append("Decision thresholds: " + "; ".join(n.rstrip(".") for n in notes))
    parts.append("Results are posterior medians with 95% highest-density intervals (HDI) and posterior probabilities; no p-values or "
                 "significance thresholds are used.")
    return ". ".join(p.rstrip(".") for p in parts) + "."


def _cell_note(kind: str, label: str, cell_n: dict | None) -> str:
    if not cell_n or kind not in ("msts", "secondary_procedures", "narcotic_change", "msts_domains"):
        return ""
    frac = label.split(",")[0].strip()
    if frac not in ("pathological", "impending"):
        return ""
    small = {arm: n for (arm, f), n in cell_n.items() if f == frac and n <= SMALL_CELL}
    if not small:
        return ""
    who = " and ".join(f"{n} {arm.upper() if arm == 'psfs' else arm} patient{'s' if n != 1 else ''}" for arm, n in small.items())
    return (f" This estimate rests on {who} with {'an' if frac == 'impending' else 'a'} {frac} fracture, so it reflects the prior and "
            f"the pooling across strata more than data; it is not evidence for or against PSFS in {frac} fractures.")


def results_paragraph(run, cell_n: dict | None = None) -> str:
    """One sentence per headline effect element, with posterior probabilities and HDIs; warnings for tiny cells."""
    m = run.manifest
    kind = m["model"]["kind"]
    if kind == "complications":
        tab = posterior_table(run, variables=["p_complication"])
        r = tab.iloc[0]
        return (f"The posterior median rate of screw back-out among PSFS patients was {_f(r['median'])} (95% HDI {_f(r['hdi_low'])} to "
                f"{_f(r['hdi_high'])}), from one event in 11 patients.")
    phrase, unit = _OUTCOME[kind]
    var = {"msts": "treatment_effect", "secondary_procedures": "risk_difference", "msts_domains": "domain_effect_points",
           "narcotic_change": "ordinal_log_odds_ratio" if "ordinal_log_odds_ratio" in m["estimands"] else "difference_p_decrease"}[kind]
    tab = posterior_table(run, variables=[var])
    th = m["decision"]["thresholds"]
    mcid = th.get("mcid")
    sentences = []
    for _, r in tab.iterrows():
        label = r["quantity"].split("[", 1)[1].rstrip("]") if "[" in r["quantity"] else "all patients"
        where = f"in {label} fractures" if label in ("pathological", "impending") else f"({label})"
        unit_txt = f" {unit}" if unit else ""
        s = (f"The posterior probability that PSFS {phrase} {where} was {_p(r['P(benefit)'])} (posterior median {_f(r['median'], 2)}{unit_txt}, "
             f"95% HDI {_f(r['hdi_low'])} to {_f(r['hdi_high'])})")
        if mcid and "P(>mcid)" in r and r["P(>mcid)"] is not None and not np.isnan(r["P(>mcid)"]):
            s += f"; the probability that the difference exceeded the borrowed MCID of {mcid['value']:.1f} points was {_p(r['P(>mcid)'])}"
        s += "."
        p = r["P(benefit)"]
        if 0.2 < p < 0.8:
            s += " The data are compatible with both benefit and harm."
        s += _cell_note(kind, label, cell_n)
        sentences.append(s)
    if kind == "msts" and "interaction" in m["estimands"]:
        it = posterior_table(run, variables=["interaction"]).iloc[0]
        x = run.idata()["posterior"]["interaction"].values.ravel()
        pp = _p(float(np.mean(x > 0)))
        rel = "" if pp[0] in "<>" else "= "
        sentences.append(f"The difference between the effects in the two strata (pathological − impending) had posterior median "
                         f"{_f(it['median'])} points (95% HDI {_f(it['hdi_low'])} to {_f(it['hdi_high'])}; P(> 0) {rel}{pp}).")
    if kind == "msts" and m["model"].get("route") == "summary" and "change_difference" in m["estimands"]:
        slope = m.get("priors", {}).get("preop_slope", {}).get("text", "its prior")
        parts = []
        for _, r in posterior_table(run, variables=["change_difference"]).iterrows():
            label = r["quantity"].split("[", 1)[1].rstrip("]") if "[" in r["quantity"] else "all patients"
            pp = _p(r["P(benefit)"])
            parts.append(f"{_f(r['median'], 2)} points in {label} fractures (95% HDI {_f(r['hdi_low'])} to {_f(r['hdi_high'])}; "
                         f"P(> 0) {'' if pp[0] in '<>' else '= '}{pp})")
        sentences.append("From published summaries the preoperative slope is weakly identified (prior " + slope + "), so the "
                         "covariate-adjusted effects above lean on that prior; the difference in mean change, which the summaries "
                         "inform directly (the comparison of a t test on change scores), had posterior median " + "; ".join(parts) + ".")
    if any(a.startswith("reconstructed") for a in m["data"].get("assumptions", [])):
        sentences.append("These results come from patient data reconstructed from published summaries under an assumed pre-post "
                         f"correlation of {m['model'].get('pre_post_correlation')}, not from the study's patients.")
    return " ".join(sentences)

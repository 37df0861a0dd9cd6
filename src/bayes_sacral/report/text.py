"""Methods and Results paragraphs with the numbers filled in, worded so as not to overclaim in tiny cells."""

from __future__ import annotations

import numpy as np

from .labels import prior_label
from .tables import fmt_num, fmt_prob, posterior_table

__all__ = ["methods_paragraph", "results_paragraph", "SMALL_CELL"]

#: Cells with at most this many patients get an explicit warning in the Results text.
SMALL_CELL = 3


def methods_paragraph(run) -> str:
    m = run.manifest
    v = m["versions"]
    s = m["sampler"]
    card = run.card
    data = m["data"]
    parts = [f"{card.outcome_label(m['outcome'])[:1].upper() + card.outcome_label(m['outcome'])[1:]} was analysed with a Bayesian "
             f"model: {m['model_description']}"]
    parts.append(f"Priors were the '{prior_label(m['prior_set'])}' set ({m['prior_set_description'].rstrip('.')})"
                 + (f"; source: {m['prior_set_source']}" if m.get("prior_set_source") else "") + "; every prior is listed with its justification.")
    if data["source"] == "published":
        parts.append(f"The data were the published summaries ({card.study.citation or card.name})")
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
    if s["backend"] == "exact":
        parts.append(f"The posterior is available in closed form (conjugate priors), so {s['chains']} × {s['draws']} independent draws were "
                     "taken from it directly (no MCMC); derived quantities and predictive checks were computed from these draws.")
    else:
        parts.append(f"Posterior draws came from the No-U-Turn sampler ({s['backend']}; PyMC {v.get('pymc', '?')}, ArviZ {v.get('arviz', '?')}): "
                     f"{s['chains']} chains of {s['draws']} draws after {s['tune']} tuning iterations"
                     + (f", for each of {m['replicates']['count']} reconstructed data sets, with the draws pooled" if m.get("replicates") else "")
                     + ". Convergence was judged by rank-normalised R-hat (≤ 1.01), bulk and tail effective sample sizes (≥ 100 per chain), "
                       "divergent transitions and E-BFMI.")
    th = m["decision"]["thresholds"]
    if th:
        unit = run.kind.unit(run.spec, next(iter(th.values()))["variables"][0]) if next(iter(th.values()))["variables"] else ""
        values = ", ".join(f"{'the MCID' if k == 'mcid' else k.replace('_', ' ')} {t['value']:.3g}{' ' + unit if unit else ''}" for k, t in th.items())
        source = th["mcid"].get("note", "") if "mcid" in th else "; ".join(sorted({t["note"] for t in th.values() if t.get("note")}))
        parts.append(f"Decision thresholds: {values}" + (f" ({source.rstrip('.')})" if source else ""))
    parts.append("Results are posterior medians with 95% highest-density intervals (HDI) and posterior probabilities; no p-values or "
                 "significance thresholds are used.")
    return ". ".join(p.rstrip(".") for p in parts) + "."


def _cell_note(run, level: str, cell_n: dict | None) -> str:
    card = run.card
    if not cell_n or level not in card.stratum_levels or not card.stratified:
        return ""
    small = {arm: n for (arm, lev), n in cell_n.items() if lev == level and n <= SMALL_CELL}
    if not small:
        return ""
    who = " and ".join(f"{n} {card.arm_label(arm)} patient{'s' if n != 1 else ''}" for arm, n in small.items())
    where = card.stratum_label(level)
    return (f" This estimate rests on {who} ({card.strata_label}: {where}), so it reflects the prior and the pooling across strata "
            f"more than data; it is not evidence for or against {card.arm_label(card.arms.treatment)} in this stratum.")


def results_paragraph(run, cell_n: dict | None = None, var: str | None = None) -> str:
    """One sentence per element of the headline effect (or ``var``), with posterior probabilities and HDIs; warnings for
    tiny cells."""
    m = run.manifest
    card = run.card
    kind, spec = run.kind, run.spec
    heads = [v for v in m.get("headline", []) if v in m["estimands"]]
    if not heads:
        return ""
    var = var or heads[0]
    effects = m.get("effect_directions", {})
    tab = posterior_table(run, variables=[var])
    if var not in effects:  # a rate, not a comparison
        out = []
        for _, r in tab.iterrows():
            label = r["quantity"].split("[", 1)[1].rstrip("]") if "[" in r["quantity"] else ""
            st = r["_step"]
            out.append(f"The posterior median of {kind.axis_label(spec, var)}{' for ' + card.arm_label(label) if label else ''} was "
                       f"{fmt_num(r['median'], st)} (95% HDI {fmt_num(r['hdi_low'], st)} to {fmt_num(r['hdi_high'], st)}).")
        return " ".join(out)
    phrase = kind.outcome_phrase(spec)
    unit = kind.unit(spec, var)
    th = m["decision"]["thresholds"]
    mcid = th.get("mcid")
    sentences = []
    for _, r in tab.iterrows():
        label = r["quantity"].split("[", 1)[1].rstrip("]") if "[" in r["quantity"] else ""
        if isinstance(r.get("note"), str) and r.get("note"):
            sentences.append(f"The effect {'in ' + card.stratum_label(label) if label else ''} is not estimable: {r['note'].split(': ', 1)[-1]}.")
            continue
        if label in card.stratum_levels and card.stratified:
            where = f"in {card.stratum_label(label)} ({card.strata_label})"
        elif label in card.stratum_levels:
            where = ""
        else:
            where = f"({label})" if label else ""
        unit_txt = f" {unit}" if unit else ""
        st, ess = r["_step"], r["_ess"]
        s = (f"The posterior probability that {card.arm_label(card.arms.treatment)} {phrase} {where} was {fmt_prob(r['P(benefit)'], ess)} "
             f"(posterior median difference {fmt_num(r['median'], st)}{unit_txt}, 95% HDI {fmt_num(r['hdi_low'], st)} to "
             f"{fmt_num(r['hdi_high'], st)})").replace("  ", " ")
        col = "P(benefit > mcid)"
        if mcid and col in r and r[col] is not None and not np.isnan(r[col]):
            s += f"; the probability that the benefit exceeded the MCID of {mcid['value']:.3g}{unit_txt} was {fmt_prob(r[col], ess)}"
        s += "."
        p = r["P(benefit)"]
        if 0.2 < p < 0.8:
            s += " The data are compatible with both benefit and harm."
        s += _cell_note(run, label, cell_n)
        sentences.append(s)
    post = run.idata["posterior"]
    if "interaction" in m["estimands"] and "interaction" in post:
        for _, it in posterior_table(run, variables=["interaction"]).iterrows():
            if isinstance(it.get("note"), str) and it.get("note"):
                continue
            label = it["quantity"].split("[", 1)[1].rstrip("]")
            x = post["interaction"].sel(contrast=label).values.ravel()
            pp = fmt_prob(float(np.mean(x > 0)), it["_ess"])
            rel = "" if pp[0] in "<>" else "= "
            a, _, b = label.partition(" vs ")
            st = it["_step"]
            sentences.append(f"The difference between the effects in {card.stratum_label(a)} and {card.stratum_label(b)} ({a} − {b}) had "
                             f"posterior median {fmt_num(it['median'], st)} {unit} (95% HDI {fmt_num(it['hdi_low'], st)} to "
                             f"{fmt_num(it['hdi_high'], st)}; P(> 0) {rel}{pp}).")
    if m["model"].get("route") == "summary" and "change_difference" in m["estimands"]:
        slope = m.get("priors", {}).get("preop_slope", {}).get("text", "its prior")
        parts = []
        for _, r in posterior_table(run, variables=["change_difference"]).iterrows():
            label = r["quantity"].split("[", 1)[1].rstrip("]") if "[" in r["quantity"] else "all patients"
            if isinstance(r.get("note"), str) and r.get("note"):
                continue
            pp = fmt_prob(r["P(benefit)"], r["_ess"])
            st = r["_step"]
            parts.append(f"{fmt_num(r['median'], st)} {unit} in {card.stratum_label(label)} (95% HDI {fmt_num(r['hdi_low'], st)} to "
                         f"{fmt_num(r['hdi_high'], st)}; P(benefit) {'' if pp[0] in '<>' else '= '}{pp})")
        sentences.append("From published summaries the pre-treatment slope is weakly identified (prior " + slope + "), so the "
                         "covariate-adjusted effects above lean on that prior; the difference in mean change, which the summaries "
                         "inform directly (the comparison of a t test on change scores), had posterior median " + "; ".join(parts) + ".")
    if any(a.startswith("reconstructed") for a in m["data"].get("assumptions", [])):
        sentences.append("These results come from patient data reconstructed from published summaries under an assumed pre-post "
                         f"correlation of {m['model'].get('pre_post_correlation')}, not from the study's patients.")
    return " ".join(sentences)

"""Report tables as DataFrames, and their CSV and LaTeX (booktabs) forms."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..precision import format_probability, probability_mcse, row_step
from ..summarize import parse_element, summarize_posterior

__all__ = ["display_table", "fmt_num", "fmt_prob", "posterior_table", "diagnostics_table", "priors_table", "sampler_table", "decision_table", "to_latex", "cell_sizes_table",
           "headline_variables", "harm_threshold"]


def headline_variables(manifest: dict) -> list[str]:
    """The effects a report leads with (chosen by the model kind at fit time)."""
    return list(manifest.get("headline") or manifest.get("effect_variables", []))


def harm_threshold(manifest: dict) -> float:
    """P(harm) = P(the effect is worse than control by more than the primary threshold (the MCID)) when the run has one,
    else P(worse than control at all)."""
    th = manifest.get("decision", {}).get("thresholds", {})
    if "mcid" in th:
        return float(th["mcid"]["value"])
    return 0.0


def _draws(post, name: str) -> np.ndarray:
    var, labels = parse_element(name)
    x = post[var]
    if labels:
        extra = [d for d in x.dims if d not in ("chain", "draw")]
        x = x.sel(dict(zip(extra, labels, strict=True)))
    return np.asarray(x.values, dtype=float).ravel()


def posterior_table(run, prob: float = 0.95, variables: list[str] | None = None) -> pd.DataFrame:
    """Mean, median, HDI, P(benefit), P(benefit beyond each threshold), P(harm) for the estimands of a run."""
    m = run.manifest
    post = run.idata["posterior"].to_dataset()
    names = variables or m["estimands"]
    th = {k: (t["value"], t["variables"]) for k, t in m["decision"]["thresholds"].items()}
    directions = m.get("effect_directions", {})
    rows = summarize_posterior(post, names, prob, th, list(m.get("no_moment_variables", {})), directions, m.get("not_estimable", {}))
    harm = harm_threshold(m)
    out = []
    for r in rows:
        var = r["name"].split("[")[0]
        d = directions.get(var)
        x = _draws(post, r["name"])
        estimable = bool(np.isfinite(x).any())
        row = {"quantity": r["name"], "mean": r["mean"], "median": r["median"], "hdi_low": r["hdi_low"], "hdi_high": r["hdi_high"],
               "P(benefit)": r.get("prob_benefit") if d else None}
        for k in th:
            row[f"P(benefit > {k})"] = r.get(f"prob_beyond_{k}") if (d and var in th[k][1]) else None
        row["P(harm)"] = float(np.mean(d * x[np.isfinite(x)] < -harm)) if (d and estimable) else None
        if not estimable:
            row["note"] = r.get("note", "not estimable")
        # the rounding step of this row's numbers (2 x MCSE; see bayes_sacral.precision) and the ESS behind its probabilities
        row["_step"] = row_step(r) if estimable else np.nan
        row["_ess"] = r.get("ess_bulk", np.nan)
        out.append(row)
    df = pd.DataFrame(out)
    if "note" in df.columns:
        df["note"] = df["note"].fillna("")
    return df


def fmt_num(x, step: float) -> str:
    """A number to a given rounding step, with a true minus sign."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return ""
    d = max(0, -int(np.floor(np.log10(step) + 1e-9))) if np.isfinite(step) and step > 0 else 3
    text = f"{round(float(x) / step) * step:.{d}f}" if np.isfinite(step) and step > 0 else f"{float(x):.3f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", "−")


def fmt_prob(p, ess: float = np.nan) -> str:
    """A posterior probability to the precision its Monte Carlo error supports ("> 0.99", "< 0.01" at the ends)."""
    if p is None or (isinstance(p, float) and not np.isfinite(p)):
        return ""
    return format_probability(float(p), probability_mcse(float(p), ess))


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """A posterior table as text, every number rounded to the step its Monte Carlo error supports: estimates and interval
    ends to their row's step, probabilities by their own MCSE. Helper columns (``_step``, ``_ess``) are dropped."""
    out = []
    for _, r in df.iterrows():
        step, ess = r.get("_step", np.nan), r.get("_ess", np.nan)
        row = {}
        for c in df.columns:
            if c.startswith("_"):
                continue
            v = r[c]
            if c in ("mean", "median", "hdi_low", "hdi_high", "sd"):
                row[c] = fmt_num(v, step)
            elif c.startswith("P("):
                row[c] = fmt_prob(v, ess)
            else:
                row[c] = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
        out.append(row)
    return pd.DataFrame(out, columns=[c for c in df.columns if not c.startswith("_")])


def diagnostics_table(run) -> pd.DataFrame:
    """R-hat and bulk/tail ESS per parameter element, with the run's thresholds applied (problems flagged)."""
    m = run.manifest
    post = run.idata["posterior"].to_dataset()
    names = [v for v in dict.fromkeys(list(m["priors"]) + m["estimands"]) if v in post]
    rows = summarize_posterior(post, names, 0.95)
    th = m.get("diagnostic_thresholds", {})
    chains = post.sizes["chain"]
    r_ok = th.get("r_hat", {}).get("ok", 1.01)
    ess_ok = th.get("ess_per_chain", {}).get("ok", 100) * chains
    if m.get("replicates"):
        chains_per = m["sampler"]["chains"]
        ess_ok = th.get("ess_per_chain", {}).get("ok", 100) * chains_per
    out = []
    for r in rows:
        flags = []
        if np.isfinite(r["r_hat"]) and r["r_hat"] > r_ok:
            flags.append(f"R-hat > {r_ok}")
        if np.isfinite(r["ess_bulk"]) and np.isfinite(r["ess_tail"]) and min(r["ess_bulk"], r["ess_tail"]) < ess_ok:
            flags.append(f"ESS < {ess_ok}")
        out.append({"quantity": r["name"], "r_hat": r["r_hat"], "ess_bulk": r["ess_bulk"], "ess_tail": r["ess_tail"],
                    "flag": "; ".join(flags)})
    return pd.DataFrame(out)


def priors_table(run) -> pd.DataFrame:
    m = run.manifest
    return pd.DataFrame([{"parameter": p, "prior": v["text"], "justification": v["justification"],
                          "source": "config override" if v.get("overridden") else f"prior set '{m['prior_set']}'"}
                         for p, v in m["priors"].items()])


def sampler_table(run) -> pd.DataFrame:
    m = run.manifest
    s = m["sampler"]
    d = m["diagnostics"]
    exact = s["backend"] == "exact"
    if exact:  # independent draws from the closed-form posterior: no tuning, no trees, no divergences
        rows = [("backend", "exact (independent draws from the closed-form posterior)"), ("chains", s["chains"]),
                ("draws per chain", s["draws"]), ("seed", m["seed"])]
    else:
        rows = [("backend", s["backend"]), ("chains", s["chains"]), ("tuning iterations per chain", s["tune"]),
                ("draws per chain", s["draws"]), ("target acceptance", s["target_accept"]), ("maximum tree depth", s["max_treedepth"]),
                ("seed", m["seed"])]
    if m.get("replicates"):
        rows.append(("reconstructed data sets (each fitted as above, draws pooled)", m["replicates"]["count"]))

    def rnd(x, nd=None):
        return "n/a" if x is None else round(x, nd) if nd is not None else round(x)

    rows += [("max R-hat", rnd(d["max_r_hat"], 4)), ("min bulk ESS", rnd(d["min_ess_bulk"])), ("min tail ESS", rnd(d["min_ess_tail"]))]
    if not exact:
        rows += [("divergent transitions", d["divergences"]), ("min E-BFMI", rnd(d["min_bfmi"], 3))]
    rows.append(("status", d["status"]))
    return pd.DataFrame(rows, columns=["setting", "value"]).astype({"value": str})


def decision_table(run) -> pd.DataFrame:
    """For each headline effect element: P(benefit), P(> threshold), P(harm) and a plain reading."""
    tab = posterior_table(run, variables=[v for v in headline_variables(run.manifest) if v in run.manifest["effect_variables"]])
    out = []
    for _, r in tab.iterrows():
        p = r["P(benefit)"]
        if p is None or (isinstance(p, float) and np.isnan(p)):
            if isinstance(r.get("note"), str) and r.get("note"):
                out.append({"quantity": r["quantity"], "median": None, "P(benefit)": None, "P(harm)": None, "reading": r["note"]})
            continue
        if p >= 0.95:
            reading = "benefit probable"
        elif p >= 0.8:
            reading = "benefit more likely than not, uncertain"
        elif p > 0.2:
            reading = "compatible with benefit and harm"
        elif p > 0.05:
            reading = "harm more likely than not, uncertain"
        else:
            reading = "harm probable"
        extra = {k: r[k] for k in tab.columns if k.startswith("P(benefit >")}
        out.append({"quantity": r["quantity"], "median": r["median"], "P(benefit)": p, **extra, "P(harm)": r["P(harm)"], "reading": reading})
    return pd.DataFrame(out)


def cell_sizes_table(n, card) -> pd.DataFrame:
    """Patients per arm x stratum (n: DataArray with dims arm and the strata, or a crosstab DataFrame with arms as rows)."""
    sdim = card.stratum_dim
    levels = card.stratum_levels
    rows = []
    for arm in card.arm_levels:
        row = {"arm": card.arm_label(arm)}
        for lev in levels:
            try:
                row[card.stratum_label(lev)] = int(n.sel({"arm": arm, sdim: lev})) if hasattr(n, "sel") else int(n.loc[arm, lev])
            except (KeyError, ValueError):
                row[card.stratum_label(lev)] = None
        if card.stratified:
            row["total"] = sum(v for k, v in row.items() if k != "arm" and v is not None)
        rows.append(row)
    df = pd.DataFrame(rows)
    total = {"arm": "total", **{c: int(df[c].sum()) for c in df.columns if c != "arm"}}
    return pd.concat([df, pd.DataFrame([total])], ignore_index=True)


def _tex_escape(s: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
           "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "×": r"$\times$", "−": "--", "≥": r"$\geq$", "≤": r"$\leq$",
           "±": r"$\pm$", "→": r"$\rightarrow$", "½": r"1/2"}
    return "".join(rep.get(ch, ch) for ch in str(s))


def fmt_cell(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        if v != 0 and abs(v) < 10 ** (-digits):
            return f"{v:.1e}"
        return f"{v:.{digits}f}"
    return str(v)


def to_latex(df: pd.DataFrame, caption: str, label: str, digits: int = 3) -> str:
    """A booktabs table (needs \\usepackage{booktabs} in the manuscript)."""
    cols = list(df.columns)
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in cols)
    lines = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(_tex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for _, row in df.iterrows():
        lines.append(" & ".join(_tex_escape(fmt_cell(row[c], digits)) for c in cols) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)

"""Build a report from fitted runs: report.html (self-contained), report.md, tables/*.csv|tex, figures/*.png|pdf.

Two layers. The main report is what a co-author reads and pastes: a one-page **Summary** (the question, the data, the
headline table of effects with P(benefit) and P(> MCID) for each outcome, the main figure, conclusions with their caveats),
**Methods** and **Results** written as manuscript text with tables and figures. The **Appendix**, collapsed by default,
is the archive: every run's model, priors, sampler settings and diagnostics, every sensitivity table, posterior predictive
checks and the resolved configs (following the Bayesian Analysis Reporting Guidelines, Kruschke 2021).

Each outcome's lead analysis is the run whose config says ``[run] primary = true`` (else the first run of the outcome);
runs that differ from it only in priors or a sensitivity parameter are its sensitivity analyses. Every number printed is
rounded to the precision its Monte Carlo standard error supports (see :mod:`bayes_sacral.precision`).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_directory
from ..checks import compare_runs, has_loo, loo_table, ppc_table, spread_table
from ..data.integrity import run_checks
from ..data.source import load_data
from ..models.base import GRID_STRENGTHS
from ..stats.frequentist import reproduce_from_summary, results_frame
from ..study.card import words
from . import figures as F
from .labels import prior_label
from .render import FigureSaver
from .style import house_style
from .tables import (
    cell_sizes_table,
    decision_table,
    diagnostics_table,
    display_table,
    fmt_cell,
    fmt_num,
    fmt_prob,
    headline_variables,
    posterior_table,
    priors_table,
    sampler_table,
    to_latex,
)
from .text import SMALL_CELL, methods_paragraph, results_paragraph

__all__ = ["build_report", "write_report", "SECTIONS", "lead_runs"]

SECTIONS = ["Summary", "Methods", "Results", "Appendix"]
#: every report folder holds it; --out replaces only a folder that does (or an empty one)
REPORT_FILE = "report.md"
_DEFAULT_SETS = ("weakly_informative", "uniform")
HDI_NOTE = ("Intervals are 95% highest-density intervals (HDI): the narrowest range holding 95% of the posterior probability; "
            "in forest plots the thick bar is the 50% HDI, the thin bar the 95% HDI and the circle the posterior median.")


@dataclass
class Block:
    kind: str  # text | table | figure | code | heading
    content: object
    caption: str = ""
    name: str = ""
    highlight: str | None = None


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    appendix: bool = False


class _Writer:
    def __init__(self, root: Path, saver: FigureSaver):
        self.root = root
        self.saver = saver
        (root / "tables").mkdir(parents=True, exist_ok=True)
        (root / "figures").mkdir(parents=True, exist_ok=True)
        self.sections: list[Section] = []
        self.n_tables = 0
        self.n_figures = 0

    def section(self, title: str, appendix: bool = False) -> Section:
        s = Section(title, appendix=appendix)
        self.sections.append(s)
        return s

    def table(self, sec: Section, name: str, df: pd.DataFrame, caption: str, highlight: str | None = None, digits: int = 3):
        df = df.reset_index(drop=True)
        df.to_csv(self.root / "tables" / f"{name}.csv", index=False, lineterminator="\n")
        (self.root / "tables" / f"{name}.tex").write_text(to_latex(df, caption, f"tab:{name}", digits), encoding="utf-8")
        sec.blocks.append(Block("table", df, caption, name, highlight))
        self.n_tables += 1

    def figure(self, sec: Section, name: str, fig, caption: str):
        # written by the saver's worker processes; the block holds the preview PNG's future until :meth:`finish`
        sec.blocks.append(Block("figure", self.saver.submit(fig, self.root / "figures" / name), caption, name))
        self.n_figures += 1

    def finish(self) -> None:
        """Wait for every figure and embed its preview PNG."""
        for sec in self.sections:
            for b in sec.blocks:
                if b.kind == "figure" and not isinstance(b.content, str):
                    b.content = base64.b64encode(b.content.result()).decode("ascii")

    def text(self, sec: Section, text: str, heading: str = ""):
        if heading:
            self.heading(sec, heading)
        sec.blocks.append(Block("text", text))

    def heading(self, sec: Section, text: str):
        sec.blocks.append(Block("heading", text))

    def code(self, sec: Section, text: str, caption: str):
        sec.blocks.append(Block("code", text, caption))


# ---------------------------------------------------------------------- grouping and labels
def _group_key(m: dict) -> str:
    model = {k: v for k, v in m["model"].items() if k != "pre_post_correlation"}
    return json.dumps([model, m["data"]["sha256"], m["data"]["source"]], sort_keys=True, default=str)


def _variant_label(m: dict, varying: set[str]) -> str:
    parts = []
    if "prior" in varying:
        parts.append(f"priors: {prior_label(m['prior_set'])}")
    if "corr" in varying:
        parts.append(f"pre-post correlation {m['model'].get('pre_post_correlation')}")
    return ", ".join(parts) or m["run"]


def _groups(runs: list) -> list[tuple[object, list, list[str]]]:
    """(representative, members, labels) per sensitivity group, in first-appearance order."""
    by: dict[str, list] = {}
    for r in runs:
        by.setdefault(_group_key(r.manifest), []).append(r)
    out = []
    for members in by.values():
        sets = {r.manifest["prior_set"] for r in members}
        corrs = {r.manifest["model"].get("pre_post_correlation") for r in members}
        varying = ({"prior"} if len(sets) > 1 else set()) | ({"corr"} if len(corrs) > 1 else set())
        rep = next((r for r in members if r.manifest.get("primary")), None) or next(
            (r for r in members if r.manifest["prior_set"] in _DEFAULT_SETS and r.manifest["model"].get("pre_post_correlation") in (None, 0.5)),
            members[0])
        out.append((rep, members, [_variant_label(r.manifest, varying) for r in members]))
    return out


def _lead_key(r) -> tuple[str, str]:
    return r.manifest["outcome"], r.manifest["model"]["kind"]


def lead_runs(runs: list) -> list:
    """The lead analysis of each (outcome, model kind): the run marked primary, else the first group representative."""
    leads: dict[tuple[str, str], object] = {}
    for r in runs:
        if r.manifest.get("primary"):
            leads.setdefault(_lead_key(r), r)
    if not leads:
        for rep, _members, _labels in _groups(runs):
            leads.setdefault(_lead_key(rep), rep)
    # in the card's order of outcomes; a score before its items
    outcomes = list(runs[0].card.outcomes) if runs else []
    kinds = {"score": 0, "items": 1}
    return sorted(leads.values(), key=lambda r: (outcomes.index(r.manifest["outcome"]) if r.manifest["outcome"] in outcomes else 99,
                                                 kinds.get(r.manifest["model"]["kind"], 2)))


def _model_label(m: dict) -> str:
    mod = m["model"]
    bits = [mod["kind"]] + [str(mod[k]) for k in ("variant", "route", "likelihood", "pooling") if k in mod and mod[k] not in (None, "auto")]
    return " / ".join(words(b) for b in bits)


def _route_label(m: dict) -> str:
    """The data route in words, naming an IPD file (which may itself be reconstructed or synthetic data) by its file name."""
    route = m["model"].get("route")
    if route == "ipd" and m["data"].get("path"):
        return f"patient-level data ({Path(m['data']['path']).stem})"
    return {"summary": "published summaries", "reconstructed": "reconstructed patient data", "ipd": "patient-level data"}.get(route, words(route or ""))


def _analysis_phrase(r) -> str:
    """What distinguishes a run, in words, for captions: model, data route, likelihood, priors."""
    m = r.manifest
    mod = m["model"]
    bits = [r.kind.title if hasattr(r.kind, "title") else mod["kind"]]
    if mod.get("route"):
        bits.append(f"from {_route_label(m)}")
    if mod.get("likelihood"):
        bits.append(f"{words(mod['likelihood'])} likelihood")
    if mod.get("variant"):
        bits.append(words(mod["variant"]))
    if mod.get("pre_post_correlation") is not None and mod.get("route") == "reconstructed":
        bits.append(f"assumed pre-post correlation {mod['pre_post_correlation']}")
    bits.append(f"{prior_label(m['prior_set'])} priors")
    return ", ".join(bits)


def _outcome_title(r) -> str:
    lab = r.card.outcome_label(r.manifest["outcome"])
    lab = lab[:1].upper() + lab[1:]
    return f"{lab}, by item" if r.manifest["model"]["kind"] == "items" else lab


def _summary_var(r) -> str | None:
    """The effect a summary row reports: the first headline variable with at most the strata as extra dims."""
    post = r.idata["posterior"]
    for v in headline_variables(r.manifest):
        if v in post and len([d for d in post[v].dims if d not in ("chain", "draw", r.card.stratum_dim)]) == 0:
            return v
    return None


def _element_words(r, name: str) -> str:
    """``treatment_effect[myeloma]`` -> 'myeloma'; aggregates by their meaning."""
    var, _, rest = name.partition("[")
    if rest:
        return ", ".join(r.card.label(r.card.stratum_dim, x.strip()) if x.strip() in r.card.stratum_levels else words(x.strip())
                         for x in rest.rstrip("]").split(","))
    for sfx, lab in (("_average", "average over strata"), ("_pooled", "pooled over strata"), ("_mean", "pooled mean")):
        if var.endswith(sfx):
            return lab
    return "all patients"


def _mcid(r) -> tuple[str, float] | None:
    th = r.manifest.get("decision", {}).get("thresholds", {})
    if "mcid" in th:
        return "mcid", float(th["mcid"]["value"])
    return (next(iter(th)), float(next(iter(th.values()))["value"])) if th else None


# ---------------------------------------------------------------------- the headline table
def _headline_rows(r) -> list[dict]:
    var = _summary_var(r)
    if var is None:
        return []
    variables = [var] + [v for v in headline_variables(r.manifest)
                         if v != var and v in r.idata["posterior"] and r.idata["posterior"][v].ndim == 2
                         and any(v.endswith(s) for s in ("_average", "_pooled"))]
    tab = posterior_table(r, variables=variables)
    kind, spec = r.kind, r.spec
    unit = kind.unit(spec, var)
    th = _mcid(r)
    rows = []
    for _, t in tab.iterrows():
        if isinstance(t.get("note"), str) and t.get("note"):
            est, pb, pm = "not estimable", "", ""
        else:
            est = f"{fmt_num(t['median'], t['_step'])} ({fmt_num(t['hdi_low'], t['_step'])} to {fmt_num(t['hdi_high'], t['_step'])})"
            pb = fmt_prob(t["P(benefit)"], t["_ess"]) if t["P(benefit)"] is not None else ""
            col = f"P(benefit > {th[0]})" if th else None
            pm = fmt_prob(t[col], t["_ess"]) if col and col in t and t[col] is not None and not pd.isna(t[col]) else ""
        rows.append({"outcome": _outcome_title(r), "comparison": kind.axis_label(spec, t["quantity"].split("[")[0]),
                     "patients": _element_words(r, t["quantity"]), "median (95% HDI)" + (f", {unit}" if unit else ""): est,
                     "P(benefit)": pb, "P(benefit > MCID)": pm})
    return rows


def _headline_table(leads: list) -> pd.DataFrame:
    rows = []
    for r in leads:
        for row in _headline_rows(r):
            unit_col = next(c for c in row if c.startswith("median"))
            row["median (95% HDI)"] = row.pop(unit_col) + (f" {unit_col.split(', ', 1)[1]}" if ", " in unit_col else "")
            rows.append(row)
    cols = ["outcome", "comparison", "patients", "median (95% HDI)", "P(benefit)", "P(benefit > MCID)"]
    return pd.DataFrame(rows, columns=cols)


def _reading(p: float) -> str:
    if p >= 0.95:
        return "benefit is probable"
    if p >= 0.8:
        return "benefit is more likely than not but uncertain"
    if p > 0.2:
        return "the data are compatible with benefit and with harm"
    if p > 0.05:
        return "harm is more likely than not but uncertain"
    return "harm is probable"


def _conclusions(leads: list, grid_ranges: dict, cell_n: dict | None) -> str:
    parts = []
    card = leads[0].card
    for r in leads:
        var = _summary_var(r)
        if var is None or var not in r.manifest.get("effect_directions", {}):
            continue
        tab = posterior_table(r, variables=[var])
        bits = []
        for _, t in tab.iterrows():
            who = _element_words(r, t["quantity"])
            if isinstance(t.get("note"), str) and t.get("note"):
                bits.append(f"not estimable for {who}")
                continue
            p = t["P(benefit)"]
            bits.append(f"{_reading(p)} for {who} (P(benefit) {_rel(fmt_prob(p, t['_ess']))})")
        sentence = f"{_outcome_title(r)}: " + "; ".join(bits) + "."
        rng = grid_ranges.get(_lead_key(r))
        if rng:
            sentence += f" Across the standard prior grid, P(benefit) ranged from {rng[0]} to {rng[1]} ({rng[2]})."
        parts.append(sentence)
    caveats = list(card.study.caveats)
    if cell_n and card.stratified:
        small = sorted({lev for (_a, lev), n in cell_n.items() if n <= SMALL_CELL})
        if small:
            caveats.append(f"Cells with {SMALL_CELL} or fewer patients ({', '.join(card.stratum_label(s) for s in small)}) inform their "
                           "estimates little: there the results reflect the priors and the pooling across strata more than data.")
    if any(r.manifest["model"].get("route") == "reconstructed" for r in leads):
        caveats.append("Results from reconstructed patient data rest on an assumed pre-post correlation, not on the study's patients.")
    caveats.append("Posterior probabilities are conditional on the model and its priors; no significance threshold is applied.")
    return " ".join(parts) + " Caveats: " + " ".join(c.rstrip(".") + "." for c in caveats)


def _rel(text: str) -> str:
    return text if text[:1] in "<>" else f"= {text}"


# ---------------------------------------------------------------------- the prior grid
def _grid_members(rep, members) -> list:
    return [r for r in members if F.grid_cells([r])]


def _grid_table(runs: list) -> pd.DataFrame:
    """P(benefit), P(> MCID) and the median of the headline effect in each stratum across the standard grid's priors."""
    rows = []
    order = {f"{p}_{s}": i for i, (p, s) in enumerate((p, s) for p in ("pessimistic", "neutral", "optimistic") for s in GRID_STRENGTHS)}
    for r in sorted(runs, key=lambda x: order.get(x.manifest["prior_set"], 99)):
        var = _summary_var(r)
        if var is None:
            continue
        tab = posterior_table(r, variables=[var])
        th = _mcid(r)
        for _, t in tab.iterrows():
            if isinstance(t.get("note"), str) and t.get("note"):
                continue
            col = f"P(benefit > {th[0]})" if th else None
            rows.append({"prior": prior_label(r.manifest["prior_set"]), "patients": _element_words(r, t["quantity"]),
                         "median (95% HDI)": f"{fmt_num(t['median'], t['_step'])} ({fmt_num(t['hdi_low'], t['_step'])} to "
                                             f"{fmt_num(t['hdi_high'], t['_step'])})",
                         "P(benefit)": fmt_prob(t["P(benefit)"], t["_ess"]),
                         "P(benefit > MCID)": fmt_prob(t[col], t["_ess"]) if col and col in t and t[col] is not None else ""})
    return pd.DataFrame(rows)


def _grid_range(runs: list) -> tuple[str, str, str] | None:
    """(lowest, highest P(benefit) over the grid, where) for the first stratum element."""
    vals = []
    for r in runs:
        var = _summary_var(r)
        if var is None:
            continue
        tab = posterior_table(r, variables=[var])
        t = tab.iloc[0]
        if isinstance(t.get("note"), str) and t.get("note"):
            continue
        vals.append((t["P(benefit)"], t["_ess"], _element_words(r, t["quantity"])))
    if len(vals) < 2:
        return None
    lo, hi = min(vals, key=lambda v: v[0]), max(vals, key=lambda v: v[0])
    return fmt_prob(lo[0], lo[1]), fmt_prob(hi[0], hi[1]), lo[2]


# ---------------------------------------------------------------------- data
def _data_info(runs: list) -> dict:
    seen, cell_n, cells = {}, None, None
    for r in runs:
        d = r.manifest["data"]
        if d["sha256"] in seen:
            continue
        try:
            study = load_data(r.resolved.study, d["source"], d["path"])
        except Exception:  # noqa: BLE001 - a moved data file should not stop the report
            seen[d["sha256"]] = None
            continue
        seen[d["sha256"]] = study
        card = r.card
        if cell_n is None:
            if study.summary is not None:
                n = study.summary.cell_sizes()
                cells = cell_sizes_table(n, card)
                cell_n = {(a, f): int(n.sel({"arm": a, card.stratum_dim: f})) for a in card.arm_levels for f in card.stratum_levels
                          if not np.isnan(n.sel({"arm": a, card.stratum_dim: f}).item())}
            elif study.ipd is not None:
                tab = study.ipd.cell_sizes()
                cells = cell_sizes_table(tab, card)
                cell_n = {(a, f): int(tab.loc[a, f]) for a in card.arm_levels for f in card.stratum_levels}
    return {"studies": seen, "cell_n": cell_n, "cells": cells}


# ---------------------------------------------------------------------- main entry
def build_report(runs: list, out: Path, title: str = "Bayesian reanalysis", log=None, figures: bool = True) -> Path:
    """Write the report of ``runs`` (store.Run objects) to ``out`` atomically (replacing an earlier report there, and
    nothing else: a folder without report.md is refused before any work); returns ``out``."""
    from ..atomic import check_output_folder

    check_output_folder(out, "--out", "report folder", marker=REPORT_FILE)
    with atomic_directory(out, overwrite=True, marker=REPORT_FILE) as tmp:
        write_report(runs, tmp, title, log, figures)
    return out


def write_report(runs: list, tmp: Path, title: str = "Bayesian reanalysis", log=None, figures: bool = True,
                 meanwhile=None) -> None:
    """Write the report files into an existing folder (callers make it atomic). ``meanwhile()``, if given, is called
    once every figure has been handed to the saver's worker processes, before waiting for them (this process would
    otherwise sit idle while they finish)."""
    log = log or (lambda m: None)
    groups = _groups(runs)
    reps = [g[0] for g in groups]
    leads = lead_runs(runs)
    info = _data_info(runs)
    grids = {}
    for rep, members, _labels in groups:
        gm = _grid_members(rep, members)
        if gm:
            grids.setdefault(_lead_key(rep), (rep, gm))
    grid_ranges = {k: _grid_range(gm) for k, (_rep, gm) in grids.items()}
    with house_style(), FigureSaver() as saver:
        w = _Writer(tmp, saver)
        _summary_section(w, runs, leads, info, grid_ranges, figures)
        _methods_section(w, runs, leads, groups, info, grids)
        log("report: summary and methods")
        _results_section(w, runs, leads, groups, info, grids, figures)
        log("report: results")
        _appendix(w, runs, reps, groups, info, figures, log, grids)
        if meanwhile is not None:
            meanwhile()
        w.finish()
        _write_html(tmp / "report.html", title, w.sections)
        _write_md(tmp / REPORT_FILE, title, w.sections)
        log(f"report: {w.n_tables} tables, {w.n_figures} figures ({saver.cached} unchanged, copied from the figure cache)")


def _summary_section(w: _Writer, runs, leads, info, grid_ranges, figures):
    card = runs[0].card
    sec = w.section("Summary")
    t, c = card.arm_label(card.arms.treatment), card.arm_label(card.arms.control)
    outcomes = list(dict.fromkeys(r.card.outcome_label(r.manifest["outcome"]) for r in leads))
    by = f", by {card.strata_label}" if card.stratified else ""
    w.text(sec, f"Did patients treated with {t} fare better than those treated with {c} on {', '.join(outcomes)}{by}? A Bayesian "
                f"reanalysis of {card.study.citation or card.name}" + (f" ({card.study.design})" if card.study.design else "") + ".",
           heading="The question")
    if info["cells"] is not None:
        n_total = int(info["cells"].iloc[-1][info["cells"].columns[-1]])
        sources = list(dict.fromkeys(_route_label(r.manifest) if r.manifest["model"].get("route") else
                                     ("the published counts" if r.manifest["data"]["source"] == "published" else "patient-level data")
                                     for r in leads))
        w.text(sec, f"{n_total} patients; the lead analyses use {', '.join(sources)}.", heading="The data")
        w.table(sec, "cell-sizes", info["cells"], f"Patients per arm{' and ' + card.strata_label if card.stratified else ''}.")
    if leads:
        w.heading(sec, "Headline results")
        th_notes = list(dict.fromkeys(f"{r.card.outcome_label(r.manifest['outcome'])}: {r.manifest['decision']['thresholds']['mcid']['note']}"
                                      for r in leads if "mcid" in r.manifest.get("decision", {}).get("thresholds", {})))
        w.table(sec, "headline", _headline_table(leads),
                f"Lead analysis of each outcome: posterior median with 95% HDI of the difference {t} − {c}; P(benefit) is the "
                f"posterior probability that {t} is better, P(benefit > MCID) that it is better by more than the minimal clinically "
                "important difference. " + " ".join(th_notes))
        if figures:
            try:
                shown = [r for r in leads if _summary_var(r) is not None]
                fig = F.summary_forest(shown, variables=[_summary_var(r) for r in shown],
                                       titles=[_outcome_title(r) for r in shown])
                w.figure(sec, "summary", fig, f"Lead analyses: the difference {t} − {c} in each outcome and "
                         f"{card.strata_label if card.stratified else 'the study'}; dashed lines mark the MCID. " + HDI_NOTE)
            except ValueError:
                pass
        w.text(sec, _conclusions(leads, grid_ranges, info["cell_n"]), heading="Conclusions")


def _methods_section(w: _Writer, runs, leads, groups, info, grids):
    card = runs[0].card
    sec = w.section("Methods")
    studies = [s for s in info["studies"].values() if s is not None]
    text = f"Data: {card.study.citation or card.name}."
    for s in studies:
        if s.summary is not None:
            findings = run_checks(s.summary)
            counts = {k: sum(f.status == k for f in findings) for k in ("pass", "borderline", "fail")}
            text += (f" The {len(findings)} reported numbers' integrity checks (GRIM, GRIMMER, sums, percentages) gave {counts['pass']} "
                     f"pass, {counts['borderline']} borderline and {counts['fail']} fail (Appendix, Data checks).")
            break
    w.text(sec, text, heading="Study and data")
    for r in leads:
        w.text(sec, methods_paragraph(r), heading=_outcome_title(r))
    sens = []
    if grids:
        sens.append("Prior sensitivity followed the standard grid (Zampieri et al., Am J Respir Crit Care Med 2021): the treatment-effect "
                    "prior was centred on no effect (neutral), on one MCID of benefit (optimistic) or of harm (pessimistic), each with "
                    "the strength of 10 (weak), 30 (moderate) or 100 (strong) patients randomised 1:1; outcomes without an MCID have "
                    "the neutral row only. The other priors were as in the lead analysis.")
    others = sorted({_model_label(rep.manifest) for rep, members, _l in groups if rep not in leads})
    if others:
        sens.append("Further analyses (Appendix): " + "; ".join(others) + ".")
    if sens:
        w.text(sec, " ".join(sens), heading="Sensitivity analyses")
    v = runs[0].manifest["versions"]
    w.text(sec, f"Computation used bayes-sacral {v.get('bayes_sacral', '?')} with PyMC {v.get('pymc', '?')}, ArviZ "
                f"{v.get('arviz', '?')} and nutpie {v.get('nutpie', '?')}. Every number in this report is rounded to the precision its "
                "Monte Carlo standard error (MCSE) supports: the last digit is no finer than twice the MCSE, and probabilities "
                "beyond 0.99 or below 0.01 are printed as such. A rerun with the same seed on the same machine and software lock "
                "reproduces every draw exactly; on another machine the draws differ within their Monte Carlo error, so a rounded "
                "number can move by one step in its last digit. " + HDI_NOTE, heading="Computation and reproducibility")


def _results_section(w: _Writer, runs, leads, groups, info, grids, figures):
    sec = w.section("Results")
    for r in leads:
        key = _lead_key(r)
        var = _summary_var(r)
        w.text(sec, results_paragraph(r, info["cell_n"], var), heading=_outcome_title(r))
        variables = [v for v in headline_variables(r.manifest) if v in r.manifest["estimands"]]
        tab = posterior_table(r, variables=variables)
        keep = [c for c in tab.columns if c not in ("mean",)]
        shown = _words_table(r, display_table(tab[keep])).rename(columns={"hdi_low": "95% HDI from", "hdi_high": "95% HDI to"})
        shown.columns = [c.replace("_", " ") for c in shown.columns]
        w.table(sec, f"{r.name}--results", shown,
                f"{_outcome_title(r)} ({_analysis_phrase(r)}): posterior median and 95% HDI; P(benefit) = P({r.card.arm_label(r.card.arms.treatment)} "
                "better); P(benefit > threshold); P(harm) = P(worse by more than the MCID, or at all where there is none).")
        if figures and var is not None:
            try:
                if r.manifest["model"]["kind"] == "events" and "rates" in F.FIGURE_KINDS:
                    fig, what = F.rates(r), "event rates in each arm and the risk difference"
                else:
                    fig, what = F.effect_density(r), "posterior density of the difference"
                w.figure(sec, f"{r.name}--main", fig, f"{_outcome_title(r)}, {what} ({_analysis_phrase(r)}); "
                         + ("closed-form densities. " if r.exact() is not None else "densities from the posterior draws (kernel density "
                            "estimate, reflected at the bounds of the quantity). ") + "0 and, where there is one, the MCID are marked.")
            except ValueError:
                pass
        if key in grids and figures:
            _rep, gm = grids[key]
            if not _grid_table(gm).empty:
                try:
                    w.figure(sec, f"{r.name}--prior-grid", F.prior_grid(gm), f"{_outcome_title(r)}: P(benefit) (colour, first number) "
                             "and P(benefit > MCID) (second number) across the prior grid, in each stratum; the medians and "
                             "intervals are tabulated in the Appendix (Prior grid).")
                except ValueError:
                    pass
    # data routes side by side for a score (proper priors only)
    score_reps = [g[0] for g in groups if g[0].manifest["model"]["kind"] == "score" and g[0].manifest["prior_set"] != "reference"]
    if len({r.manifest["outcome"] for r in score_reps}) > 1:
        score_reps = [r for r in score_reps if r.manifest["outcome"] == score_reps[0].manifest["outcome"]]
    if len(score_reps) > 1:
        rows = []
        for r in score_reps:
            for _, t in posterior_table(r, variables=["treatment_effect"]).iterrows():
                if isinstance(t.get("note"), str) and t.get("note"):
                    continue
                rows.append({"data": _route_label(r.manifest), "likelihood": words(r.manifest["model"].get("likelihood") or ""),
                             "patients": _element_words(r, t["quantity"]),
                             "median (95% HDI)": f"{fmt_num(t['median'], t['_step'])} ({fmt_num(t['hdi_low'], t['_step'])} to "
                                                 f"{fmt_num(t['hdi_high'], t['_step'])})",
                             "P(benefit)": fmt_prob(t["P(benefit)"], t["_ess"]),
                             "P(benefit > MCID)": fmt_prob(t.get("P(benefit > mcid)"), t["_ess"])})
        olab = _outcome_title(score_reps[0])
        w.text(sec, f"The {olab} effect by data route and likelihood: published summaries, reconstructed patient data and (where "
                    "given) patient-level data, with weakly informative priors.", heading=f"{olab}: data routes")
        w.table(sec, "score-routes", pd.DataFrame(rows), f"{olab} treatment effect by data route and likelihood.")
    studies = [s for s in info["studies"].values() if s is not None and s.summary is not None]
    if studies:
        rf = results_frame(reproduce_from_summary(studies[0].summary))
        cols = [c for c in rf.columns if c not in ("estimate_label", "note")]
        w.text(sec, "Classical tests recomputed from the published summaries, beside the published p-values (an ANCOVA needs "
                    "patient data; the reconstructed data's ANCOVA is in the Appendix runs).", heading="Classical analyses")
        freq = _round_numeric(rf[cols])
        for c in ("outcome", "test"):
            if c in freq.columns:
                freq[c] = [words(v) for v in freq[c]]
        if "outcome" in freq.columns:
            labels = {n: studies[0].card.outcome_label(n) for n in studies[0].card.outcomes}
            freq["outcome"] = [labels.get(v.replace(" ", "_"), v) for v in freq["outcome"]]
        freq.columns = [words(c).replace("ci ", "95% CI ").replace("p value", "p-value") for c in freq.columns]
        w.table(sec, "frequentist", freq, "Classical tests from the published summaries.")
        if len(rf):
            w.text(sec, rf["note"].iloc[0])


def _round_numeric(df: pd.DataFrame, sig: int = 3) -> pd.DataFrame:
    """Deterministic (non-Monte-Carlo) numbers to ``sig`` significant figures, as text."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = [("" if pd.isna(v) else (f"{v:.{sig}g}" if abs(v) < 1e4 else f"{v:.0f}")) for v in out[c]]
    return out


def _words_table(r, df: pd.DataFrame) -> pd.DataFrame:
    """A display table with quantities in words ('Difference in mean change, Screws − ... : myeloma')."""
    out = df.copy()
    if "quantity" in out.columns:
        out["quantity"] = [f"{r.kind.axis_label(r.spec, q.split('[')[0])}: {_element_words(r, q)}" for q in out["quantity"]]
    return out


def _appendix(w: _Writer, runs, reps, groups, info, figures, log, grids=None):
    sec = w.section("Appendix", appendix=True)
    w.heading(sec, "Runs")
    w.table(sec, "runs", pd.DataFrame([{"run": r.name, "model": _model_label(r.manifest), "priors": prior_label(r.manifest["prior_set"]),
                                         "data": r.manifest["data"]["source"], "seed": r.manifest["seed"],
                                         "status": r.manifest["diagnostics"]["status"],
                                         "role": "lead" if r.manifest.get("primary") else ("representative" if r in reps else "sensitivity")}
                                        for r in runs]),
            "Fitted runs; each group's representative gets its own subsection below.", highlight="status")
    if grids:
        w.heading(sec, "Prior grid")
        for _key, (rep, gm) in grids.items():
            grid = _grid_table(gm)
            if not grid.empty:
                w.table(sec, f"{rep.name}--prior-grid", grid, f"{_outcome_title(rep)}: the standard prior grid ({_model_label(rep.manifest)}); "
                        "each row's prior is centred as named and worth the stated number of patients.")
    w.heading(sec, "Data checks")
    for sha, study in info["studies"].items():
        if study is None:
            w.text(sec, f"Data {sha[:12]} could not be reloaded.")
            continue
        if study.summary is not None:
            findings = run_checks(study.summary)
            bad = pd.DataFrame([{"check": f.check, "subject": f.subject, "status": f.status, "explanation": f.explanation}
                                for f in findings if f.status != "pass"])
            w.table(sec, f"integrity-{sha[:8]}", bad, f"Integrity findings other than pass ({study.label()}).", highlight="status")
    relaxed = sorted({a for r in runs for a in r.manifest["data"].get("assumptions", []) if a.startswith("reconstruction relaxed")})
    if relaxed:
        w.text(sec, "Reconstructed patient-level data reproduce every reported number except these, which no integer data can "
                    "reproduce and which were relaxed to the nearest achievable value:")
        w.table(sec, "reconstruction-relaxations", pd.DataFrame({"relaxation": [a.split(": ", 1)[1] for a in relaxed]}),
                "Reported numbers relaxed in the reconstruction.")
    for r in reps:
        m = r.manifest
        w.heading(sec, f"Run {r.name}")
        w.text(sec, f"{_analysis_phrase(r)}. {m['model_description']}")
        for a in m["data"].get("assumptions", []):
            if not a.startswith("reconstruction relaxed"):
                w.text(sec, f"Assumption: {a}.")
        w.table(sec, f"{r.name}--priors", priors_table(r), f"Priors of {r.name}, with their justification.")
        w.table(sec, f"{r.name}--sampler", sampler_table(r), f"Sampler settings and overall diagnostics of {r.name}.")
        w.table(sec, f"{r.name}--diagnostics", _diag_display(diagnostics_table(r)), f"Per-parameter diagnostics of {r.name}"
                + (" (each computed within a reconstructed data set; the worst over data sets)" if m.get("replicates") else "")
                + "; flagged rows miss a threshold.", highlight="flag")
        w.table(sec, f"{r.name}--posterior", display_table(posterior_table(r)), f"Posterior of {r.name} ({_analysis_phrase(r)}): "
                "median, 95% HDI, P(benefit), P(benefit > threshold), P(harm); rounded to the Monte Carlo error.")
        dec = decision_table(r)
        if not dec.empty:
            w.table(sec, f"{r.name}--decisions", _decision_display(dec), f"{r.name}: probabilities of benefit and harm with a plain reading "
                    "(no significance threshold is applied).")
        if figures:
            var = headline_variables(m)[0] if headline_variables(m) else ""
            try:
                w.figure(sec, f"{r.name}--forest", F.forest([r]), f"{r.name}: {r.kind.axis_label(r.spec, var)} by stratum "
                         f"({_analysis_phrase(r)}). " + HDI_NOTE)
            except ValueError:
                pass
            if "prior" in r.idata.children:
                try:
                    w.figure(sec, f"{r.name}--prior-posterior", F.prior_posterior(r), f"{r.name}: prior (dashed) against posterior "
                             "(solid) of the key parameters; closed-form prior densities where they exist.")
                except ValueError:
                    pass
            w.figure(sec, f"{r.name}--ppc", F.ppc(r), f"{r.name}: posterior predictive check.")
            w.table(sec, f"{r.name}--ppc", _round_numeric(ppc_table(r)), f"{r.name}: posterior predictive checks; p = P(replicated ≥ observed).")
            if m["sampler"]["backend"] != "exact":  # independent draws: nothing for a rank plot to diagnose
                w.figure(sec, f"{r.name}--rank", F.rank(r), f"{r.name}: rank plots; chains should be indistinguishable"
                         + (" (reconstructed data set 1)." if m.get("replicates") else "."))
            log(f"report: appendix figures of {r.name}")
        if m.get("replicates"):
            w.table(sec, f"{r.name}--spread", _round_numeric(spread_table(r.idata)), f"{r.name}: between-reconstruction spread (share of "
                    "the posterior variance due to the unknown patient data).")
    w.heading(sec, "Sensitivity analyses")
    any_group = False
    for rep, members, labels in groups:
        if len(members) < 2:
            continue
        any_group = True
        rows = []
        for r, lab in zip(members, labels, strict=True):
            tab = posterior_table(r, variables=headline_variables(r.manifest)[:2])
            for _, t in tab.iterrows():
                if isinstance(t.get("note"), str) and t.get("note"):
                    continue
                th = _mcid(r)
                col = f"P(benefit > {th[0]})" if th else None
                rows.append({"variant": lab, "quantity": f"{r.kind.axis_label(r.spec, t['quantity'].split('[')[0])}: {_element_words(r, t['quantity'])}",
                             "median (95% HDI)": f"{fmt_num(t['median'], t['_step'])} ({fmt_num(t['hdi_low'], t['_step'])} to "
                                                 f"{fmt_num(t['hdi_high'], t['_step'])})",
                             "P(benefit)": fmt_prob(t["P(benefit)"], t["_ess"]) if t["P(benefit)"] is not None else "",
                             "P(benefit > MCID)": fmt_prob(t[col], t["_ess"]) if col and col in t and t[col] is not None else ""})
        w.table(sec, f"{rep.name}--sensitivity", pd.DataFrame(rows), f"Sensitivity of {_model_label(rep.manifest)} ("
                f"{_route_label(rep.manifest) if rep.manifest['model'].get('route') else rep.manifest['data']['source']}).")
        if figures:
            try:
                w.figure(sec, f"{rep.name}--sensitivity", F.sensitivity(members, labels), f"Headline effect across the variants of "
                         f"{_model_label(rep.manifest)}; the axis spans the outcome's plausible range and arrows mark intervals that run "
                         "past it. " + HDI_NOTE)
            except ValueError:
                pass
    if not any_group:
        w.text(sec, "No sensitivity variants among these runs (fit a config with a [sweep] over priors.set to add them).")
    loo_rows, cmp_groups = [], {}
    for r in reps:
        if has_loo(r):
            loo_rows.append({"run": r.name, **loo_table(r.idata)})
    for r in runs:
        m = r.manifest
        if m["model"]["kind"] == "score" and has_loo(r):
            key = (m["data"]["sha256"], m["model"].get("route"), m["model"].get("reconstructions"), m["model"].get("pre_post_correlation"),
                   m["model"].get("reconstruction_seed"))
            cmp_groups.setdefault(key, {})[r.name] = r.idata
    if loo_rows or any(len(g) > 1 for g in cmp_groups.values()):
        w.heading(sec, "Model comparison (PSIS-LOO)")
        if loo_rows:
            w.table(sec, "loo", _round_numeric(pd.DataFrame(loo_rows)), "PSIS-LOO of the patient-level runs (averaged over reconstruction blocks).")
        for i, runs_cmp in enumerate(g for g in cmp_groups.values() if len(g) > 1):
            w.table(sec, f"loo-compare-{i + 1}", _round_numeric(compare_runs(runs_cmp)), "PSIS-LOO comparison of runs fitted to the same "
                    "data (continuous densities at integer scores compared with probability masses; see the README).")
    w.heading(sec, "Reproducibility")
    for r in runs:
        m = r.manifest
        w.text(sec, f"Run {r.name}: seed {m['seed']}, data {m['data']['label']} (SHA-256 {m['data']['sha256']}), config SHA-256 "
                    f"{m['config_sha256']}, study card {m['study']['name']} (SHA-256 {m['study']['sha256']}). Regenerate with: "
                    f"bayes-sacral fit {r.path}/config.toml --out <folder>")
        w.code(sec, r.config_text, f"Resolved config of {r.name}")


def _diag_display(df: pd.DataFrame) -> pd.DataFrame:
    """R-hat to two decimals, ESS to two significant figures (both vary across machines at that level)."""
    out = df.copy()
    out["r_hat"] = [("" if pd.isna(v) else f"{v:.2f}") for v in out["r_hat"]]
    for c in ("ess_bulk", "ess_tail"):
        out[c] = [("" if pd.isna(v) else f"{float(f'{v:.2g}'):.0f}") for v in out[c]]
    return out


def _decision_display(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if c.startswith("P("):
            out[c] = [fmt_prob(v) if v is not None and not pd.isna(v) else "" for v in out[c]]
    if "median" in out.columns:
        out["median"] = [fmt_num(v, 0.1) if v is not None and not pd.isna(v) else "" for v in out["median"]]
    return out


# ---------------------------------------------------------------------- rendering
_CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0 1.2em}th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}tr.flag td{background:#fde8e4}caption{caption-side:top;text-align:left;font-style:italic;padding:.3em 0}
figure{margin:1em 0}figure img{max-width:100%}figcaption{font-size:.85em;font-style:italic}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.8em}nav ol ol{font-size:.92em}
details.appendix>summary{font-weight:bold;font-size:1.05em;margin:.8em 0;cursor:pointer}
@page{margin:1.5cm 1.6cm}
@media print{body{max-width:none;margin:0;font-size:9pt;line-height:1.32}figure{break-inside:avoid;margin:.6em 0}
figure img{max-width:100%;max-height:8cm}table{break-inside:auto;font-size:.86em;margin:.4em 0 .8em}th,td{padding:.15em .45em}
h1{font-size:1.45em;margin:.2em 0 .5em}h2{margin-top:1.1em}h3{margin-top:.9em}h2,h3{break-after:avoid}
nav ol{columns:2;column-gap:2em;margin:.2em 0}nav ol ol{columns:1;font-size:.85em}nav li{break-inside:avoid}}
"""
# Sets data-broken-images on <body> once loaded (the headless-browser test reads it) and opens the collapsed appendix
# subsection a table-of-contents link points to.
_SCRIPT = ("window.addEventListener('load',function(){var im=Array.prototype.slice.call(document.images);"
           "var bad=im.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).length;"
           "document.body.setAttribute('data-images',im.length);document.body.setAttribute('data-broken-images',bad);});"
           "function bsOpen(){var e=location.hash&&document.getElementById(location.hash.slice(1));"
           "while(e){if(e.tagName==='DETAILS'){e.open=true;}e=e.parentElement;}}"
           "window.addEventListener('hashchange',bsOpen);window.addEventListener('load',bsOpen);")


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s.lower()).strip("-")


def _toc(sections: list[Section]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(section title, anchor, [(subsection title, anchor)]) for the table of contents."""
    out = []
    for s in sections:
        subs = [(b.content, f"{_slug(s.title)}--{_slug(b.content)}") for b in s.blocks if b.kind == "heading"]
        out.append((s.title, _slug(s.title), subs))
    return out


def _table_html(b: Block) -> str:
    df: pd.DataFrame = b.content
    rows = []
    for _, r in df.iterrows():
        flagged = False
        if b.highlight and b.highlight in df.columns:
            val = r[b.highlight]
            flagged = bool(val) and str(val) not in ("ok", "pass", "nan", "None", "")
        cells = "".join(f"<td>{html.escape(fmt_cell(r[c]))}</td>" for c in df.columns)
        rows.append(f"<tr{' class=flag' if flagged else ''}>{cells}</tr>")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    return (f'<table id="table-{html.escape(b.name)}"><caption>{html.escape(b.caption)} '
            f'<a href="tables/{html.escape(b.name)}.csv">csv</a> <a href="tables/{html.escape(b.name)}.tex">tex</a></caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _block_html(b: Block) -> str:
    if b.kind == "text":
        return f"<p>{html.escape(b.content)}</p>"
    if b.kind == "table":
        return _table_html(b)
    if b.kind == "figure":
        return (f'<figure id="figure-{html.escape(b.name)}"><img alt="{html.escape(b.caption)}" '
                f'src="data:image/png;base64,{b.content}"><figcaption>{html.escape(b.caption)} '
                f'(<a href="figures/{html.escape(b.name)}.png">PNG 300 dpi</a>, <a href="figures/{html.escape(b.name)}.pdf">PDF</a>)'
                "</figcaption></figure>")
    if b.kind == "code":
        return f"<details><summary>{html.escape(b.caption)}</summary><pre>{html.escape(b.content)}</pre></details>"
    return ""


def _write_html(path: Path, title: str, sections: list[Section]) -> None:
    toc = _toc(sections)
    nav = "<nav><h2>Contents</h2><ol>" + "".join(
        f'<li><a href="#{a}">{html.escape(t)}</a>' + ("<ol>" + "".join(f'<li><a href="#{sa}">{html.escape(st)}</a></li>' for st, sa in subs)
                                                       + "</ol>" if subs else "") + "</li>" for t, a, subs in toc) + "</ol></nav>"
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", nav]
    for s in sections:
        parts.append(f'<section id="{_slug(s.title)}"><h2>{html.escape(s.title)}</h2>')
        if s.appendix:
            parts.append("<p>Each part of the appendix is collapsed; click a heading to open it (it is not printed while closed).</p>")
        open_details = False
        for b in s.blocks:
            if b.kind == "heading":
                anchor = f"{_slug(s.title)}--{_slug(b.content)}"
                if s.appendix:
                    if open_details:
                        parts.append("</details>")
                    parts.append(f'<details class="appendix" id="{anchor}"><summary>{html.escape(b.content)}</summary>')
                    open_details = True
                else:
                    parts.append(f'<h3 id="{anchor}">{html.escape(b.content)}</h3>')
            else:
                parts.append(_block_html(b))
        if open_details:
            parts.append("</details>")
        parts.append("</section>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>\n")
    path.write_text("\n".join(parts), encoding="utf-8")


def _md_table(df: pd.DataFrame) -> str:
    def cell(v):
        return fmt_cell(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(str(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in df.columns) + " |" for _, r in df.iterrows()]
    return "\n".join(lines)


def _write_md(path: Path, title: str, sections: list[Section]) -> None:
    out = [f"# {title}", "", "## Contents", ""]
    for t, a, subs in _toc(sections):
        out.append(f"- [{t}](#{a})")
        out += [f"  - {st}" for st, _sa in subs]
    out.append("")
    for s in sections:
        out += [f"## {s.title}", ""]
        open_details = False
        for b in s.blocks:
            if b.kind == "heading":
                if s.appendix:
                    if open_details:
                        out += ["</details>", ""]
                    out += [f"<details><summary>{b.content}</summary>", ""]
                    open_details = True
                else:
                    out += [f"### {b.content}", ""]
            elif b.kind == "text":
                out += [b.content, ""]
            elif b.kind == "table":
                out += [f"*{b.caption}* ([csv](tables/{b.name}.csv), [tex](tables/{b.name}.tex))", "", _md_table(b.content), ""]
            elif b.kind == "figure":
                out += [f"![{b.caption}](figures/{b.name}.png)", "", f"*{b.caption}*", ""]
            elif b.kind == "code":
                out += [f"<details><summary>{b.caption}</summary>", "", "```toml", b.content.rstrip(), "```", "", "</details>", ""]
        if open_details:
            out += ["</details>", ""]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")

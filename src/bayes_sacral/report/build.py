"""Build a report from fitted runs: report.html (self-contained), report.md, tables/*.csv|tex, figures/*.png|pdf.

Sections follow the Bayesian Analysis Reporting Guidelines (Kruschke 2021, Nat Hum Behav 5:1282): data, model,
computation, posterior, decisions, prior sensitivity, posterior predictive checks, the frequentist results side by
side, manuscript text, and reproducibility. Runs that differ only in their priors or a sensitivity parameter form a
sensitivity group: the group's representative gets the full set of figures, the others a row in its sensitivity table.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_directory
from ..checks import compare_runs, loo_table, ppc_table, spread_table
from ..data.integrity import run_checks
from ..data.source import load_data
from ..stats.frequentist import reproduce_from_summary, results_frame
from . import figures as F
from .style import house_style, save_figure
from .tables import (
    cell_sizes_table,
    decision_table,
    diagnostics_table,
    fmt_cell,
    headline_variables,
    posterior_table,
    priors_table,
    sampler_table,
    to_latex,
)
from .text import methods_paragraph, results_paragraph

__all__ = ["build_report", "write_report", "SECTIONS"]

SECTIONS = ["Runs", "Data", "Model", "Computation", "Posterior", "Decisions", "Prior sensitivity", "Posterior predictive checks",
            "Frequentist results", "Methods and Results text", "Reproducibility"]
_DEFAULT_SETS = ("weakly_informative", "uniform")
# the report takes Run objects (in memory or loaded from run folders)


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


class _Writer:
    def __init__(self, root: Path):
        self.root = root
        (root / "tables").mkdir(parents=True, exist_ok=True)
        (root / "figures").mkdir(parents=True, exist_ok=True)
        self.sections: list[Section] = []
        self.n_tables = 0
        self.n_figures = 0

    def section(self, title: str) -> Section:
        s = Section(title)
        self.sections.append(s)
        return s

    def table(self, sec: Section, name: str, df: pd.DataFrame, caption: str, highlight: str | None = None, digits: int = 3):
        df = df.reset_index(drop=True)
        df.to_csv(self.root / "tables" / f"{name}.csv", index=False, lineterminator="\n")
        (self.root / "tables" / f"{name}.tex").write_text(to_latex(df, caption, f"tab:{name}", digits), encoding="utf-8")
        sec.blocks.append(Block("table", df, caption, name, highlight))
        self.n_tables += 1

    def figure(self, sec: Section, name: str, fig, caption: str):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        save_figure(fig, self.root / "figures" / name)
        sec.blocks.append(Block("figure", base64.b64encode(buf.getvalue()).decode("ascii"), caption, name))
        self.n_figures += 1

    def text(self, sec: Section, text: str, heading: str = ""):
        if heading:
            sec.blocks.append(Block("heading", heading))
        sec.blocks.append(Block("text", text))

    def code(self, sec: Section, text: str, caption: str):
        sec.blocks.append(Block("code", text, caption))


# ---------------------------------------------------------------------- grouping
def _group_key(m: dict) -> str:
    model = {k: v for k, v in m["model"].items() if k != "pre_post_correlation"}
    return json.dumps([model, m["data"]["sha256"], m["data"]["source"]], sort_keys=True, default=str)


def _variant_label(m: dict, varying: set[str]) -> str:
    parts = []
    if "prior" in varying:
        parts.append(f"priors: {m['prior_set']}")
    if "corr" in varying:
        parts.append(f"r = {m['model'].get('pre_post_correlation')}")
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
        rep = next((r for r in members if r.manifest["prior_set"] in _DEFAULT_SETS
                    and r.manifest["model"].get("pre_post_correlation") in (None, 0.5)), members[0])
        out.append((rep, members, [_variant_label(r.manifest, varying) for r in members]))
    return out


def _model_label(m: dict) -> str:
    mod = m["model"]
    bits = [mod["kind"]] + [str(mod[k]) for k in ("variant", "route", "likelihood", "pooling") if k in mod and mod[k] not in (None, "auto")]
    return " / ".join(bits)


# ---------------------------------------------------------------------- sections
def _data_section(w: _Writer, runs: list) -> dict:
    sec = w.section("Data")
    seen = {}
    cell_n = None
    for r in runs:
        d = r.manifest["data"]
        if d["sha256"] in seen:
            continue
        card = r.card
        try:
            study = load_data(r.resolved.study, d["source"], d["path"])
        except Exception as exc:  # noqa: BLE001 - a moved data file should not stop the report
            w.text(sec, f"Data of run {r.name} ({d['label']}) could not be reloaded: {exc}.")
            continue
        if study.sha256 != d["sha256"]:
            w.text(sec, f"Warning: the data file of run {r.name} has changed since the fit (hash differs).")
        seen[d["sha256"]] = study
        tag = "published" if d["source"] == "published" else f"data-{len(seen)}"
        label = f"Patients per arm{' and ' + card.strata_label if card.stratified else ''} ({d['label']})."
        if study.summary is not None:
            n = study.summary.cell_sizes()
            w.table(sec, f"{tag}--cell-sizes", cell_sizes_table(n, card), label)
            if cell_n is None:
                cell_n = {(a, f): int(n.sel({"arm": a, card.stratum_dim: f})) for a in card.arm_levels for f in card.stratum_levels
                          if not np.isnan(n.sel({"arm": a, card.stratum_dim: f}).item())}
            findings = run_checks(study.summary)
            counts = {s_: sum(f.status == s_ for f in findings) for s_ in ("pass", "borderline", "fail")}
            w.text(sec, f"Integrity checks of the reported numbers ({len(findings)} findings: {counts['pass']} pass, "
                        f"{counts['borderline']} borderline, {counts['fail']} fail). Those that are not 'pass':")
            bad = pd.DataFrame([{"check": f.check, "subject": f.subject, "status": f.status, "explanation": f.explanation}
                                for f in findings if f.status != "pass"])
            w.table(sec, f"{tag}--integrity", bad, "Integrity findings other than pass (GRIM, GRIMMER, sums, percents).", highlight="status")
        elif study.ipd is not None:
            tab = study.ipd.cell_sizes()
            w.table(sec, f"{tag}--cell-sizes", cell_sizes_table(tab, card), label)
            if cell_n is None:
                cell_n = {(a, f): int(tab.loc[a, f]) for a in card.arm_levels for f in card.stratum_levels}
    relaxed = sorted({a for r in runs for a in r.manifest["data"].get("assumptions", []) if a.startswith("reconstruction relaxed")})
    if relaxed:
        w.text(sec, "Reconstructed patient-level data reproduce every reported number except these, which no integer data can "
                    "reproduce and which were relaxed to the nearest achievable value:")
        w.table(sec, "reconstruction-relaxations", pd.DataFrame({"relaxation": [a.split(": ", 1)[1] for a in relaxed]}),
                "Reported numbers relaxed in the reconstruction.")
    return {"cell_n": cell_n, "studies": seen}


def build_report(runs: list, out: Path, title: str = "Bayesian reanalysis", log=None, figures: bool = True) -> Path:
    """Write the report of ``runs`` (store.Run objects) to ``out`` atomically (replacing it); returns ``out``."""
    with atomic_directory(out, overwrite=True) as tmp:
        write_report(runs, tmp, title, log, figures)
    return out


def write_report(runs: list, tmp: Path, title: str = "Bayesian reanalysis", log=None, figures: bool = True) -> None:
    """Write the report files into an existing folder (callers make it atomic)."""
    log = log or (lambda m: None)
    groups = _groups(runs)
    reps = [g[0] for g in groups]
    with house_style():
        w = _Writer(tmp)
        sec = w.section("Runs")
        w.table(sec, "runs", pd.DataFrame([{"run": r.name, "model": _model_label(r.manifest), "priors": r.manifest["prior_set"],
                                             "data": r.manifest["data"]["source"], "seed": r.manifest["seed"],
                                             "status": r.manifest["diagnostics"]["status"],
                                             "role": "primary" if r in reps else "sensitivity variant"} for r in runs]),
                "Fitted runs in this report; primary runs get the full set of figures.", highlight="status")
        info = _data_section(w, runs)

        sec = w.section("Model")
        for r in reps:
            m = r.manifest
            w.text(sec, m["model_description"], heading=f"{r.name} ({_model_label(m)})")
            for a in m["data"].get("assumptions", []):
                if not a.startswith("reconstruction relaxed"):
                    w.text(sec, f"Assumption: {a}.")
            w.table(sec, f"{r.name}--priors", priors_table(r), f"Priors of {r.name}, with their justification.")

        sec = w.section("Computation")
        v = runs[0].manifest["versions"]
        w.table(sec, "software", pd.DataFrame([{"software": k, "version": val} for k, val in v.items()]), "Software versions.")
        for r in runs:
            w.table(sec, f"{r.name}--sampler", sampler_table(r), f"Sampler settings and overall diagnostics of {r.name}.")
            if r in reps:
                w.table(sec, f"{r.name}--diagnostics", diagnostics_table(r), f"Per-parameter diagnostics of {r.name} "
                        "(flagged rows miss a threshold).", highlight="flag")
        log("report: data, model and computation sections")

        sec = w.section("Posterior")
        for r in reps:
            m = r.manifest
            w.table(sec, f"{r.name}--posterior", posterior_table(r), f"Posterior of {r.name}: median, 95% HDI, P(benefit) (the treatment "
                    "better than control), P(benefit > threshold), P(harm) (worse by more than the MCID where there is one, else at all).")
            if not figures:
                continue
            w.figure(sec, f"{r.name}--forest", F.forest([r]), f"{r.name}: headline effects with 50% (thick) and 95% (thin) HDI; "
                     "0 and the decision threshold marked.")
            w.figure(sec, f"{r.name}--density", F.effect_density(r), f"{r.name}: posterior densities of the headline effects.")
            if "prior" in r.idata.children:
                w.figure(sec, f"{r.name}--prior-posterior", F.prior_posterior(r), f"{r.name}: prior (dashed) against posterior.")
            if m["model"]["kind"] == "events":
                w.figure(sec, f"{r.name}--rates", F.rates(r), f"{r.name}: {r.card.outcome_label(m['outcome'])} rates by arm and stratum.")
            w.figure(sec, f"{r.name}--rank", F.rank(r), f"{r.name}: rank plots; chains should be indistinguishable.")
            log(f"report: figures of {r.name}")

        sec = w.section("Decisions")
        for r in reps:
            dec = decision_table(r)
            if not dec.empty:
                w.table(sec, f"{r.name}--decisions", dec, f"{r.name}: probabilities of benefit and harm with a plain reading "
                        "(no significance threshold is applied).")

        sec = w.section("Prior sensitivity")
        any_group = False
        for rep, members, labels in groups:
            if len(members) < 2:
                continue
            any_group = True
            rows = []
            for r, lab in zip(members, labels, strict=True):
                tab = posterior_table(r, variables=headline_variables(r.manifest)[:2])
                for _, t in tab.iterrows():
                    rows.append({"variant": lab, "quantity": t["quantity"], "median": t["median"], "hdi_low": t["hdi_low"],
                                 "hdi_high": t["hdi_high"], "P(benefit)": t["P(benefit)"],
                                 **({"P(benefit > mcid)": t["P(benefit > mcid)"]} if "P(benefit > mcid)" in t else {})})
            w.table(sec, f"{rep.name}--sensitivity", pd.DataFrame(rows), f"Sensitivity of {_model_label(rep.manifest)} to "
                    f"{' and '.join(sorted({lab.split(':')[0].split(' =')[0] for lab in labels}))}.")
            if figures:
                w.figure(sec, f"{rep.name}--sensitivity", F.sensitivity(members, labels), f"Headline effects across the variants of "
                         f"{_model_label(rep.manifest)}.")
        # routes side by side: representative runs with proper priors (the reference-prior run is a classical check whose
        # adjusted effect is unidentified in the summary route)
        score_reps = [r for r in reps if r.manifest["model"]["kind"] == "score" and r.manifest["prior_set"] != "reference"]
        if len({r.manifest["outcome"] for r in score_reps}) > 1:
            score_reps = [r for r in score_reps if r.manifest["outcome"] == score_reps[0].manifest["outcome"]]
        if len(score_reps) > 1:
            any_group = True
            labels = [f"{_route_label(r.manifest)} / {r.manifest['model'].get('likelihood')} ({r.name})" for r in score_reps]
            rows = []
            for r, lab in zip(score_reps, labels, strict=True):
                for _, t in posterior_table(r, variables=["treatment_effect"]).iterrows():
                    rows.append({"run": lab, "quantity": t["quantity"], "median": t["median"], "hdi_low": t["hdi_low"], "hdi_high": t["hdi_high"],
                                 "P(benefit)": t["P(benefit)"], "P(benefit > mcid)": t.get("P(benefit > mcid)")})
            w.text(sec, "Data routes and likelihoods side by side (summary-level, reconstructed and patient-level):")
            olab = score_reps[0].card.outcome_label(score_reps[0].manifest["outcome"])
            w.table(sec, "score-routes", pd.DataFrame(rows), f"{olab} treatment effect by data route and likelihood.")
            if figures:
                w.figure(sec, "score-routes", F.forest(score_reps[:6], [lab.split(" (")[0] for lab in labels[:6]]),
                         f"{olab} treatment effect by data route and likelihood (representative runs).")
        if not any_group:
            w.text(sec, "No sensitivity variants among these runs (fit a config with a [sweep] over priors.set to add them).")

        sec = w.section("Posterior predictive checks")
        loo_rows, cmp_groups = [], {}
        for r in reps:
            dt = r.idata
            w.table(sec, f"{r.name}--ppc", ppc_table(r), f"{r.name}: posterior predictive checks; p = P(replicated ≥ observed).")
            if figures:
                w.figure(sec, f"{r.name}--ppc", F.ppc(r), f"{r.name}: posterior predictive check.")
            m = r.manifest
            ll = dt["log_likelihood"].to_dataset() if "log_likelihood" in dt.children else None
            if m["model"]["kind"] in ("score", "items") and ll is not None and len(ll.data_vars) == 1:
                loo_rows.append({"run": r.name, **loo_table(dt)})
            if m.get("replicates"):
                w.table(sec, f"{r.name}--spread", spread_table(dt), f"{r.name}: between-reconstruction spread (share of the posterior "
                        "variance due to the unknown patient data).")
        for r in runs:
            m = r.manifest
            dt_ll = r.idata
            if m["model"]["kind"] == "score" and "log_likelihood" in dt_ll.children and len(dt_ll["log_likelihood"].to_dataset().data_vars) == 1:
                key = (m["data"]["sha256"], m["model"].get("route"), m["model"].get("reconstructions"), m["model"].get("pre_post_correlation"),
                       m["model"].get("reconstruction_seed"))
                cmp_groups.setdefault(key, {})[r.name] = dt_ll
        if loo_rows:
            w.table(sec, "loo", pd.DataFrame(loo_rows), "PSIS-LOO of the patient-level runs (averaged over reconstruction blocks).")
        for i, runs_cmp in enumerate(g for g in cmp_groups.values() if len(g) > 1):
            w.table(sec, f"loo-compare-{i + 1}", compare_runs(runs_cmp), "PSIS-LOO comparison of runs fitted to the same data "
                    "(continuous densities at integer scores compared with probability masses; see the README).")

        sec = w.section("Frequentist results")
        summary_studies = [s for s in info["studies"].values() if s.summary is not None]
        if summary_studies:
            rf = results_frame(reproduce_from_summary(summary_studies[0].summary))
            w.table(sec, "frequentist", rf.drop(columns=["estimate_label", "note"]), "Classical tests from the published summaries, beside "
                    "the published p-values (an ANCOVA needs patient data).")
            if len(rf):
                w.text(sec, rf["note"].iloc[0])
        else:
            w.text(sec, "The runs use patient-level data: see `bayes-sacral reproduce --ipd FILE` for the ANCOVA and classical tests.")

        sec = w.section("Methods and Results text")
        for r in reps:
            w.text(sec, methods_paragraph(r), heading=f"{r.name}: Methods")
            w.text(sec, results_paragraph(r, info["cell_n"]), heading=f"{r.name}: Results")

        sec = w.section("Reproducibility")
        for r in runs:
            m = r.manifest
            w.text(sec, f"Run {r.name}: seed {m['seed']}, data {m['data']['label']} (SHA-256 {m['data']['sha256']}), config SHA-256 "
                        f"{m['config_sha256']}, study card {m['study']['name']} (SHA-256 {m['study']['sha256']}). Regenerate with: "
                        f"bayes-sacral fit {r.path}/config.toml --out <folder>", heading=r.name)
            w.code(sec, r.config_text, f"Resolved config of {r.name}")

        _write_html(tmp / "report.html", title, w.sections)
        _write_md(tmp / "report.md", title, w.sections)
        log(f"report: {w.n_tables} tables, {w.n_figures} figures")


# ---------------------------------------------------------------------- rendering
_CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0 1.2em}th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}tr.flag td{background:#fde8e4}caption{caption-side:top;text-align:left;font-style:italic;padding:.3em 0}
figure{margin:1em 0}figure img{max-width:100%}figcaption{font-size:.85em;font-style:italic}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.8em}nav ol{columns:2}
"""
# Sets data-broken-images on <body> once loaded: the headless-browser test reads it.
_SCRIPT = ("window.addEventListener('load',function(){var im=Array.prototype.slice.call(document.images);"
           "var bad=im.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).length;"
           "document.body.setAttribute('data-images',im.length);document.body.setAttribute('data-broken-images',bad);});")


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s.lower()).strip("-")


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


def _write_html(path: Path, title: str, sections: list[Section]) -> None:
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", "<nav><ol>" + "".join(f'<li><a href="#{_slug(s.title)}">{html.escape(s.title)}</a></li>'
                                                                      for s in sections) + "</ol></nav>"]
    for s in sections:
        parts.append(f'<section id="{_slug(s.title)}"><h2>{html.escape(s.title)}</h2>')
        for b in s.blocks:
            if b.kind == "heading":
                parts.append(f"<h3>{html.escape(b.content)}</h3>")
            elif b.kind == "text":
                parts.append(f"<p>{html.escape(b.content)}</p>")
            elif b.kind == "table":
                parts.append(_table_html(b))
            elif b.kind == "figure":
                parts.append(f'<figure id="figure-{html.escape(b.name)}"><img alt="{html.escape(b.caption)}" '
                             f'src="data:image/png;base64,{b.content}"><figcaption>{html.escape(b.caption)} '
                             f'(<a href="figures/{html.escape(b.name)}.png">PNG 300 dpi</a>, <a href="figures/{html.escape(b.name)}.pdf">PDF</a>)'
                             "</figcaption></figure>")
            elif b.kind == "code":
                parts.append(f"<details><summary>{html.escape(b.caption)}</summary><pre>{html.escape(b.content)}</pre></details>")
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
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if b.kind == "heading":
                out += [f"### {b.content}", ""]
            elif b.kind == "text":
                out += [b.content, ""]
            elif b.kind == "table":
                out += [f"*{b.caption}* ([csv](tables/{b.name}.csv), [tex](tables/{b.name}.tex))", "", _md_table(b.content), ""]
            elif b.kind == "figure":
                out += [f"![{b.caption}](figures/{b.name}.png)", "", f"*{b.caption}*", ""]
            elif b.kind == "code":
                out += [f"<details><summary>{b.caption}</summary>", "", "```toml", b.content.rstrip(), "```", "", "</details>", ""]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _route_label(m: dict) -> str:
    """The data route, naming an IPD file (which may itself be reconstructed or synthetic data) by its file name."""
    route = m["model"].get("route")
    if route == "ipd" and m["data"].get("path"):
        return f"ipd: {Path(m['data']['path']).stem}"
    return str(route)

"""``bayes-sacral data``: show, validate and check study data."""

from __future__ import annotations

from pathlib import Path

import typer

from ..data.integrity import run_checks
from ..data.ipd import read_ipd
from ..data.published import load_dataset
from ..data.summary import FORMAT_ID, read_summary
from ..errors import InputError
from ._app import app
from ._output import OutputFormat, console, emit, err_console, json_dumps

data_app = typer.Typer(help="Show, validate and check study data (published summaries or patient-level CSV).", no_args_is_help=True)
app.add_typer(data_app, name="data")

DATASET_OPT = typer.Option(None, "--dataset", "-d", help="A summary-data CSV (format bayes-sacral-summary/1); default: the bundled published study.", dir_okay=False)
FORMAT_OPT = typer.Option(OutputFormat.table, "--format", "-f", help="Output format.", case_sensitive=False)
OUTPUT_OPT = typer.Option(None, "--output", "-o", help="Write to this file (atomically) instead of stdout.", dir_okay=False)

SHOW_COLUMNS = ["id", "quantity", "arm", "fracture", "time", "category", "statistic", "relation", "value_text", "unit", "n", "source", "label"]


@data_app.command("show")
def show(
    dataset: Path | None = DATASET_OPT,
    fmt: OutputFormat = FORMAT_OPT,
    view: str = typer.Option("rows", "--view", help="rows: every reported number with provenance; cells: the arm × fracture design view (xarray Dataset)."),
    quantity: str | None = typer.Option(None, "--quantity", "-q", help="Only rows of this quantity (e.g. msts_total)."),
    output: Path | None = OUTPUT_OPT,
) -> None:
    """Print the dataset: every reported number with its rounding and provenance."""
    sd = load_dataset(dataset)
    if view == "cells":
        ds = sd.to_dataset()
        if fmt is OutputFormat.table:
            console.print(ds)
            if ds.attrs.get("inferred"):
                console.print("[bold]Counts recovered by arithmetic:[/]\n" + ds.attrs["inferred"])
            return
        df = ds.drop_vars([v for v in ds.data_vars if ds[v].dtype.kind in "OU"]).to_dataframe().reset_index()
        emit(df.to_dict(orient="records"), fmt, output=output)
        return
    if view != "rows":
        raise typer.BadParameter("--view is 'rows' or 'cells'")
    df = sd.frame if quantity is None else sd.frame[sd.frame["quantity"] == quantity]
    recs = df.rename(columns={"value_text": "value_text"}).to_dict(orient="records")
    cols = SHOW_COLUMNS if fmt is OutputFormat.table else None
    title = f"{sd.meta.get('study', Path(sd.path).name)}: {len(df)} reported numbers"
    if fmt is OutputFormat.table:
        recs = [{**r, "value": r["value_text"]} for r in recs]
        cols = [("value" if c == "value_text" else c) for c in SHOW_COLUMNS]
    emit(recs, fmt, columns=cols, title=title, output=output)


@data_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="A patient-level CSV (or a summary-data CSV, recognised by its '# format:' line).", dir_okay=False),
    fmt: OutputFormat = FORMAT_OPT,
) -> None:
    """Validate a patient-level CSV: every problem in one pass, each with file, row, column, value and rule.

    Exit code 0 when valid, 2 when not. The IPD columns: patient_id, arm (psfs | sacroplasty), fracture
    (pathological | impending), msts_pre, msts_post (integers 0-30); optional: the six MSTS items as
    <item>_pre / <item>_post (0-5, summing to the totals), secondary_procedure (0/1), days_to_secondary,
    followup_days, narcotic_change (decrease | stable | increase), prior_radiotherapy (0/1), ablation (none |
    radiofrequency | cryoablation | microwave | other), age, sex (male | female), cancer_type, date_preop,
    date_procedure, date_postop (YYYY-MM-DD).
    """
    try:
        head = file.read_text(encoding="utf-8-sig", errors="replace").lstrip()[:200]
    except OSError:
        head = ""
    is_summary = head.startswith("#") and "format" in head.splitlines()[0]
    try:
        if is_summary:
            sd = read_summary(file)
            summary = {"file": str(file), "kind": "summary", "valid": True, "rows": len(sd.frame), "format": FORMAT_ID}
        else:
            ipd = read_ipd(file)
            cells = ipd.cell_sizes()
            summary = {"file": str(file), "kind": "ipd", "valid": True, "patients": ipd.n_patients,
                       "cells": {f"{a}/{f}": int(cells.loc[a, f]) for a in cells.index for f in cells.columns},
                       "has_items": ipd.has_items}
    except InputError as exc:
        if fmt is OutputFormat.json:
            print(json_dumps({"file": str(file), "valid": False, "problems": [p.to_dict() for p in exc.problems]}), end="")
        elif fmt is OutputFormat.csv:
            emit([p.to_dict() for p in exc.problems], fmt)
        else:
            err_console.print(f"[bold red]invalid:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if fmt is OutputFormat.table:
        if summary["kind"] == "ipd":
            cells_txt = ", ".join(f"{k} {v}" for k, v in summary["cells"].items())
            console.print(f"[green]valid[/]: {file}: {summary['patients']} patients ({cells_txt})", highlight=False)
        else:
            console.print(f"[green]valid[/]: {file}: {summary['rows']} reported numbers ({FORMAT_ID})", highlight=False)
    elif fmt is OutputFormat.json:
        print(json_dumps(summary), end="")
    else:
        emit([{k: v for k, v in summary.items() if k != "cells"}], fmt)


@data_app.command("check")
def check(
    dataset: Path | None = DATASET_OPT,
    fmt: OutputFormat = FORMAT_OPT,
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any check fails."),
    only_problems: bool = typer.Option(False, "--problems", help="Show only findings that are not 'pass'."),
    output: Path | None = OUTPUT_OPT,
) -> None:
    """Integrity checks of the published numbers: GRIM, GRIMMER-style SDs, sums, percents, cell sizes.

    Each finding: check, the numbers involved, status pass | borderline | fail, and a one-sentence explanation.
    'borderline' means consistent only under one intermediate rounding step (double rounding).
    Exit 0 unless the input is unreadable; --strict exits 1 when anything fails.
    """
    sd = load_dataset(dataset)
    findings = run_checks(sd)
    shown = [f for f in findings if f.status != "pass"] if only_problems else findings
    recs = [f.to_dict() for f in shown]
    counts = {s: sum(f.status == s for f in findings) for s in ("pass", "borderline", "fail")}
    footer = f"{len(findings)} findings: {counts['pass']} pass, {counts['borderline']} borderline, {counts['fail']} fail"
    cols = ["check", "subject", "status", "explanation"] if fmt is OutputFormat.table else ["check", "subject", "status", "explanation", "numbers", "ids"]
    emit(recs, fmt, columns=cols, title=f"Integrity checks: {sd.meta.get('study', Path(sd.path).name)}", output=output,
         styles={"status": {"fail": "red", "borderline": "yellow"}}, footer=footer)
    if fmt is not OutputFormat.table:
        err_console.print(footer)
    if strict and counts["fail"]:
        raise typer.Exit(1)


@data_app.command("reconstruct")
def reconstruct_cmd(
    out: Path = typer.Option(..., "--out", help="Folder for the reconstructed patient-level CSVs (created atomically; must not exist)."),
    dataset: Path | None = DATASET_OPT,
    k: int = typer.Option(20, "-k", "--count", min=1, max=1000, help="Number of data sets."),
    correlation: float = typer.Option(0.5, "--correlation", min=-0.95, max=0.95, help="Assumed within-cell pre-post correlation."),
    seed: int = typer.Option(1, "--seed", min=0, help="Seed of the search."),
) -> None:
    """Reconstruct patient-level data sets consistent with every reported summary (SPRITE-style), in the IPD CSV format.

    Reported numbers that no integer data can reproduce are relaxed to the nearest achievable value, one constraint at a
    time, and listed in relaxations.json. The files are reconstructions, not the study's patients.
    """
    import json as _json

    from ..atomic import atomic_directory
    from ..data.reconstruct import reconstruct
    from ..serialize import to_jsonable

    if out.exists():
        from ..errors import BayesSacralError

        raise BayesSacralError(f"{out} already exists; choose a new --out folder (reconstructions are never overwritten)")
    sd = load_dataset(dataset)
    rec = reconstruct(sd, k=k, correlation=correlation, seed=seed)
    with atomic_directory(out) as tmp:
        for i, d in enumerate(rec.datasets, start=1):
            d.frame.to_csv(tmp / f"reconstruction-{i:03d}.csv", index=False, lineterminator="\n", date_format="%Y-%m-%d")
        (tmp / "relaxations.json").write_text(_json.dumps(to_jsonable(rec.to_records()), indent=2, ensure_ascii=False) + "\n")
        rec.achieved.to_csv(tmp / "achieved.csv", index=False, lineterminator="\n")
        (tmp / "README.md").write_text(
            f"# Reconstructed patient-level data\n\n{k} data sets reconstructed by bayes-sacral from {sd.meta.get('study', sd.path)} "
            f"(correlation {correlation}, seed {seed}). They reproduce the published summaries; they are not real patients.\n")
    for r in rec.relaxations_unique():
        err_console.print(f"relaxed: {r}", markup=False, highlight=False)
    met = int(rec.achieved["targets_met"].sum())
    console.print(f"wrote {k} data sets to {out} ({met} of {len(rec.achieved)} cell searches met every target)", highlight=False)

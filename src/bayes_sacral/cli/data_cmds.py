"""``bayes-sacral data``: show, validate, check and reconstruct a study's data."""

from __future__ import annotations

from pathlib import Path

import typer

from ..data.source import empty_cell_problems
from ..errors import BayesSacralError, InputError
from ..study import Study, load_study
from .app import app
from .output import OutputFormat, emit, json_dumps, say, warn

data_app = typer.Typer(help="Show, validate, check and reconstruct study data (published summaries or patient-level CSV).",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

STUDY_OPT = typer.Option(None, "--study", "-s", help="The study card (TOML) the data follow; default: the bundled study.")
DATASET_OPT = typer.Option(None, "--dataset", "-d", help="A summary-data CSV (format bayes-sacral-summary/1); default: the study's "
                           "published summaries.")
FORMAT_OPT = typer.Option(OutputFormat.table, "--format", "-f", help="Output format.", case_sensitive=False)
OUTPUT_OPT = typer.Option(None, "--output", "-o", help="Write to this file (atomically) instead of stdout.")


def study_option(card: Path | None) -> Study:
    """The study of a ``--study`` option (the bundled study when absent)."""
    return load_study(card)


def summary_of(study: Study, dataset: Path | None):
    """Summary data from ``--dataset``, or the study's published summaries."""
    return study.require_summary("this command") if dataset is None else study.read_summary(dataset)


@data_app.command("show")
def show(
    dataset: Path | None = DATASET_OPT,
    study: Path | None = STUDY_OPT,
    fmt: OutputFormat = FORMAT_OPT,
    view: str = typer.Option("rows", "--view", help="rows: every reported number with provenance; cells: the arm × stratum design view."),
    quantity: str | None = typer.Option(None, "--quantity", "-q", help="Only rows of this quantity (e.g. msts_total)."),
    output: Path | None = OUTPUT_OPT,
) -> None:
    """Print summary data: every reported number with its rounding and provenance."""
    st = study_option(study)
    sd = summary_of(st, dataset)
    if view == "cells":
        ds = sd.to_dataset()
        df = ds.drop_vars([v for v in ds.data_vars if ds[v].dtype.kind in "OU"]).to_dataframe().reset_index()
        emit(df.to_dict(orient="records"), fmt, output=output, title=f"{st.name}: design-level numbers")
        if fmt is OutputFormat.table and sd.inferred():
            say("Counts recovered by arithmetic:\n" + "\n".join(sd.inferred()))
        return
    if view != "rows":
        raise typer.BadParameter(f"--view is 'rows' or 'cells', not {view!r}", param_hint="'--view'")
    df = sd.frame if quantity is None else sd.frame[sd.frame["quantity"] == quantity]
    recs = df.to_dict(orient="records")
    cols = None
    if fmt is OutputFormat.table:
        recs = [{**r, "value": r["value_text"]} for r in recs]
        cols = ["id", "quantity", "arm", *([st.card.stratum_dim] if st.card.stratified else []), "time", "category", "statistic",
                "relation", "value", "unit", "n", "source"]
    emit(recs, fmt, columns=cols, title=f"{sd.meta.get('study', st.name)}: {len(df)} reported numbers", output=output)


@data_app.command("columns")
def columns(study: Path | None = STUDY_OPT, fmt: OutputFormat = FORMAT_OPT) -> None:
    """The columns a patient-level CSV of the study may have, with their rules (and the CSV names the card maps them to)."""
    from ..data.ipd import column_rules

    st = study_option(study)
    emit(column_rules(st.card), fmt, title=f"Patient-level columns of study {st.name}")


@data_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="A patient-level CSV (or a summary-data CSV, recognised by its '# format:' line)."),
    study: Path | None = STUDY_OPT,
    fmt: OutputFormat = FORMAT_OPT,
) -> None:
    """Validate a data file against the study card: every problem in one pass, each with file, row, column, value and rule.

    Exit code 0 when valid, 2 when not. `bayes-sacral data columns --study CARD` lists the patient-level columns.
    """
    st = study_option(study)
    try:
        head = file.read_text(encoding="utf-8-sig", errors="replace").lstrip()[:200] if file.is_file() else ""
    except OSError:
        head = ""
    is_summary = head.startswith("#") and "format" in head.splitlines()[0]
    try:
        if is_summary:
            from ..data.summary import FORMAT_ID

            sd = st.read_summary(file)
            empty = empty_cell_problems(st.card, sd.cell_sizes(), str(file))
            if empty:
                raise InputError(empty)
            summary = {"file": str(file), "kind": "summary", "valid": True, "rows": len(sd.frame), "format": FORMAT_ID}
        else:
            ipd = st.read_ipd(file)
            cells = ipd.cell_sizes()
            empty = empty_cell_problems(st.card, cells, str(file))
            if empty:
                raise InputError(empty)
            summary = {"file": str(file), "kind": "ipd", "valid": True, "study": st.name, "patients": ipd.n_patients,
                       "cells": {st.card.cell_label(a, f): int(cells.loc[a, f]) for a in cells.index for f in cells.columns}}
    except InputError as exc:
        if fmt is OutputFormat.json:
            say(json_dumps({"file": str(file), "valid": False, "problems": [p.to_dict() for p in exc.problems]}).rstrip())
        elif fmt is OutputFormat.csv:
            emit([p.to_dict() for p in exc.problems], fmt)
        else:
            warn(f"invalid: {exc}")
        raise typer.Exit(2) from None
    if fmt is OutputFormat.table:
        if summary["kind"] == "ipd":
            cells_txt = ", ".join(f"{k} {v}" for k, v in summary["cells"].items())
            say(f"valid: {file}: {summary['patients']} patients of study {st.name} ({cells_txt})")
        else:
            say(f"valid: {file}: {summary['rows']} reported numbers of study {st.name} ({summary['format']})")
    elif fmt is OutputFormat.json:
        say(json_dumps(summary).rstrip())
    else:
        emit([{k: v for k, v in summary.items() if k != "cells"}], fmt)


@data_app.command("check")
def check(
    dataset: Path | None = DATASET_OPT,
    study: Path | None = STUDY_OPT,
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
    from ..data.integrity import run_checks

    st = study_option(study)
    sd = summary_of(st, dataset)
    findings = run_checks(sd)
    shown = [f for f in findings if f.status != "pass"] if only_problems else findings
    recs = [f.to_dict() for f in shown]
    counts = {s: sum(f.status == s for f in findings) for s in ("pass", "borderline", "fail")}
    footer = f"{len(findings)} findings: {counts['pass']} pass, {counts['borderline']} borderline, {counts['fail']} fail"
    cols = ["check", "subject", "status", "explanation"] if fmt is OutputFormat.table else ["check", "subject", "status", "explanation", "numbers", "ids"]
    emit(recs, fmt, columns=cols, title=f"Integrity checks: {sd.meta.get('study', st.name)}", output=output, footer=footer)
    if fmt is not OutputFormat.table:
        warn(footer)
    if strict and counts["fail"]:
        raise typer.Exit(1)


@data_app.command("reconstruct")
def reconstruct_cmd(
    out: Path = typer.Option(..., "--out", help="Folder for the reconstructed patient-level CSVs (created atomically; must not exist)."),
    dataset: Path | None = DATASET_OPT,
    study: Path | None = STUDY_OPT,
    outcome: str | None = typer.Option(None, "--outcome", help="The score outcome to reconstruct (default: the card's only one)."),
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
    from ..data.ipd import write_ipd
    from ..data.reconstruct import reconstruct
    from ..serialize import to_jsonable

    if out.exists():
        raise BayesSacralError(f"{out} already exists; choose a new --out folder (reconstructions are never overwritten)")
    st = study_option(study)
    sd = summary_of(st, dataset)
    try:
        rec = reconstruct(sd, k=k, correlation=correlation, seed=seed, outcome=outcome)
    except ValueError as exc:
        raise BayesSacralError(str(exc)) from None
    with atomic_directory(out) as tmp:
        for i, d in enumerate(rec.datasets, start=1):
            frame = d.frame if st.card.stratified else d.frame.drop(columns=[st.card.stratum_dim])
            write_ipd(frame, tmp / f"reconstruction-{i:03d}.csv")
        (tmp / "relaxations.json").write_text(_json.dumps(to_jsonable(rec.to_records()), indent=2, ensure_ascii=False) + "\n")
        rec.achieved.to_csv(tmp / "achieved.csv", index=False, lineterminator="\n")
        (tmp / "README.md").write_text(
            f"# Reconstructed patient-level data\n\n{k} data sets reconstructed by bayes-sacral from {sd.meta.get('study', st.name)} "
            f"(outcome {rec.outcome}, correlation {correlation}, seed {seed}). They reproduce the published summaries; they are not "
            "real patients.\n")
    for r in rec.relaxations_unique():
        warn(f"relaxed: {r}")
    met = int(rec.achieved["targets_met"].sum())
    say(f"wrote {k} data sets to {out} ({met} of {len(rec.achieved)} cell searches met every target)")

"""``bayes-sacral reproduce``: the published frequentist analysis, reproduced from summaries or patient data."""

from __future__ import annotations

from pathlib import Path

import typer

from ..data.ipd import read_ipd
from ..data.published import load_dataset
from ..stats.frequentist import (
    ANCOVA_NOTE,
    reproduce_from_ipd,
    reproduce_from_summary,
    results_frame,
)
from ._app import app
from ._output import OutputFormat, emit
from .data_cmds import DATASET_OPT, FORMAT_OPT, OUTPUT_OPT

TABLE_COLUMNS = ["outcome", "stratum", "test", "statistic", "p_value", "published_p_value", "estimate", "ci_low", "ci_high", "df", "source"]


@app.command("reproduce")
def reproduce(
    dataset: Path | None = DATASET_OPT,
    ipd: Path | None = typer.Option(None, "--ipd", help="Patient-level CSV: adds the real ANCOVA (post ~ pre + arm × fracture) and the same tests from patient data.", dir_okay=False),
    fmt: OutputFormat = FORMAT_OPT,
    output: Path | None = OUTPUT_OPT,
) -> None:
    """Welch and pooled t tests on MSTS change, Fisher and Boschloo exact tests of secondary procedures,
    beside the published p-values; with --ipd also the ANCOVA the paper used."""
    sd = load_dataset(dataset)
    results = reproduce_from_summary(sd)
    if ipd is not None:
        results += reproduce_from_ipd(read_ipd(ipd), sd)
    df = results_frame(results)
    footer = None if ipd is not None else f"Note: {ANCOVA_NOTE}"
    emit(df.to_dict(orient="records"), fmt, columns=TABLE_COLUMNS if fmt is OutputFormat.table else None,
         title="Frequentist reproduction", output=output, footer=footer)

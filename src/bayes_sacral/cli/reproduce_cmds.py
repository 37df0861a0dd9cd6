"""``bayes-sacral reproduce``: the published frequentist analysis, reproduced from summaries or patient data."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app
from .data_cmds import DATASET_OPT, FORMAT_OPT, OUTPUT_OPT, STUDY_OPT, study_option, summary_of
from .output import OutputFormat, emit

TABLE_COLUMNS = ["outcome", "stratum", "test", "statistic", "p_value", "published_p_value", "estimate", "ci_low", "ci_high", "df", "source"]


@app.command("reproduce")
def reproduce(
    dataset: Path | None = DATASET_OPT,
    study: Path | None = STUDY_OPT,
    ipd: Path | None = typer.Option(None, "--ipd", help="Patient-level CSV: adds the ANCOVA (post ~ pre + arm × strata) and the same "
                                    "tests from patient data."),
    same_patients: bool = typer.Option(False, "--same-patients", help="The --ipd file holds the published study's own patients: print "
                                       "the published p-values beside its ANCOVA (otherwise they would be another study's)."),
    fmt: OutputFormat = FORMAT_OPT,
    output: Path | None = OUTPUT_OPT,
) -> None:
    """Welch and pooled t tests on score change, Fisher and Boschloo exact tests of events, beside the published p-values;
    with --ipd also the ANCOVA on patient data."""
    from ..data.source import empty_cell_problems
    from ..errors import InputError
    from ..stats.frequentist import (
        ANCOVA_NOTE,
        reproduce_from_ipd,
        reproduce_from_summary,
        results_frame,
    )

    st = study_option(study)
    sd = summary_of(st, dataset) if (ipd is None or st.summary_path is not None or dataset is not None) else None
    problems = empty_cell_problems(st.card, sd.cell_sizes(), str(dataset or st.summary_path)) if sd is not None else []
    data = st.read_ipd(ipd) if ipd is not None else None
    if data is not None:
        problems += empty_cell_problems(st.card, data.cell_sizes(), str(ipd))
    if problems:
        raise InputError(problems)
    results = reproduce_from_summary(sd) if sd is not None else []
    if data is not None:
        results += reproduce_from_ipd(data, sd if same_patients else None)
    df = results_frame(results)
    footer = None if ipd is not None else f"Note: {ANCOVA_NOTE}"
    emit(df.to_dict(orient="records"), fmt, columns=TABLE_COLUMNS if fmt is OutputFormat.table else None,
         title=f"Frequentist reproduction: {st.name}", output=output, footer=footer)

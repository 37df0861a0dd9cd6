"""``bayes-sacral reanalyze``: the whole reanalysis of the published study (what `make reanalysis` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..reanalysis import DEFAULT_REPORT_DIR, run_reanalysis
from ._app import app
from ._output import console


@app.command("reanalyze")
def reanalyze(
    out: Path = typer.Option(DEFAULT_REPORT_DIR, "--out", help="Report folder (replaced atomically)."),
) -> None:
    """Run the reanalysis of the published study and write its report folder."""
    run_reanalysis(out, log=lambda m: console.print(m, highlight=False))

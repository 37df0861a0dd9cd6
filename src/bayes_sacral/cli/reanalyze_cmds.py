"""``bayes-sacral reanalyze``: the whole reanalysis of the published study (what `make reanalysis` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..reanalysis import DEFAULT_CONFIG_DIR, DEFAULT_REPORT_DIR, run_reanalysis
from ..store import DEFAULT_STORE
from ._app import app
from ._output import console


@app.command("reanalyze")
def reanalyze(
    out: Path = typer.Option(DEFAULT_REPORT_DIR, "--out", help="Report folder (replaced atomically)."),
    configs: Path = typer.Option(DEFAULT_CONFIG_DIR, "--configs", help="Folder of canonical run configs (*.toml), each fitted."),
    store: Path = typer.Option(DEFAULT_STORE, "--store", help="Run store for the fitted runs (replaced: regenerated from configs and seeds)."),
    no_fit: bool = typer.Option(False, "--no-fit", help="Only the data check and the frequentist reproduction."),
    reuse: bool = typer.Option(False, "--reuse", help="Reuse stored runs that refitting would reproduce exactly (same resolved "
                               "config, seed, data hash, package versions and code fingerprint); refit the others."),
) -> None:
    """Run the reanalysis of the published study: data check, reproduction, every canonical config; write the report folder."""
    run_reanalysis(out, configs, store, fit=not no_fit, reuse=reuse, log=lambda m: console.print(m, highlight=False, markup=False))

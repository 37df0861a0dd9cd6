"""``bayes-sacral reanalyze``: the whole reanalysis of a published study (what `make reanalysis` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..reanalysis import DEFAULT_CONFIG_DIR, DEFAULT_REPORT_DIR, run_reanalysis
from ..store import DEFAULT_STORE
from .app import app
from .data_cmds import STUDY_OPT, study_option
from .output import say


@app.command("reanalyze")
def reanalyze(
    out: Path = typer.Option(DEFAULT_REPORT_DIR, "--out", help="Report folder (replaced atomically; only an earlier reanalysis folder or an empty one is replaced)."),
    configs: Path = typer.Option(DEFAULT_CONFIG_DIR, "--configs", help="Folder of run configs (*.toml), each fitted."),
    store: Path = typer.Option(DEFAULT_STORE, "--store", help="Run store for the fitted runs (a run is replaced when it is refitted)."),
    study: Path | None = STUDY_OPT,
    no_fit: bool = typer.Option(False, "--no-fit", help="Only the data check and the frequentist reproduction."),
    reuse: bool = typer.Option(True, "--reuse/--refit", help="--reuse: take a stored run as it is when refitting would reproduce "
                               "it exactly (same resolved config, seed, study card, data hash, package versions and fitting-code "
                               "fingerprint) and refit the others; --refit: refit every run."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, help="Runs fitted at once, each in a worker process "
                                    "[default: one per core]; 1 fits them one after another in this process."),
) -> None:
    """Run the reanalysis of a study's published summaries: data check, reproduction, every config; write the report folder."""
    run_reanalysis(out, configs, store, fit=not no_fit, reuse=reuse, log=say, study=study_option(study), jobs=jobs)

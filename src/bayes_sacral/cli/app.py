"""The typer application: sub-command groups are attached here."""

from __future__ import annotations

import typer

from .. import __version__

app = typer.Typer(
    name="bayes-sacral",
    help="Bayesian reanalysis of small clinical studies and design of their follow-up trials. A study card (TOML) declares "
    "a study's arms, strata and outcomes; every command that reads data takes --study CARD (default: the bundled study).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"bayes-sacral {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Bayesian reanalysis of small clinical studies and design of their follow-up trials."""


from . import (  # noqa: E402,F401  (commands register themselves on `app`)
    cache_cmds,
    data_cmds,
    design_cmds,
    fit_cmds,
    reanalyze_cmds,
    report_cmds,
    reproduce_cmds,
)

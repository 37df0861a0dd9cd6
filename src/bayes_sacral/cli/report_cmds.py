"""``bayes-sacral report`` and ``bayes-sacral plot``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import BayesSacralError
from ..store import DEFAULT_STORE, find_run
from .app import app
from .output import say

STORE_OPT = typer.Option(DEFAULT_STORE, "--store", help="The run store folder.")


@app.command("report")
def report(
    runs: list[str] = typer.Argument(..., help="One or more runs (folders or names under --store)."),
    out: Path = typer.Option(..., "--out", help="Report folder (written atomically; an existing one is replaced only if it holds an earlier report)."),
    title: str = typer.Option("Bayesian reanalysis", "--title", help="Report title."),
    store: Path = STORE_OPT,
    no_figures: bool = typer.Option(False, "--no-figures", help="Tables and text only."),
) -> None:
    """Write report.html (self-contained), report.md, tables/*.csv|tex and figures/*.png|pdf for fitted runs.

    Sections follow the Bayesian Analysis Reporting Guidelines: data, model, computation, posterior, decisions, prior
    sensitivity, posterior predictive checks, frequentist results, Methods/Results text, reproducibility.
    """
    from ..report import build_report

    found = [find_run(r, store) for r in runs]
    if len({r.name for r in found}) != len(found):
        raise BayesSacralError("the same run is named twice")
    build_report(found, out, title, log=say, figures=not no_figures)
    say(f"wrote {out / 'report.html'}")
    say(str(out))


@app.command("plot")
def plot(
    run: str = typer.Argument(..., help="A run (folder or name under --store)."),
    kind: str = typer.Argument(..., help="forest | density | prior-posterior | ppc | rates | rank | trace"),
    out: Path | None = typer.Option(None, "--out", help="Output file (.png at 300 dpi or .pdf); default <run>--<kind>.png here."),
    store: Path = STORE_OPT,
) -> None:
    """Render one figure of a run alone, in the house style (journal widths, fonts >= 7 pt, colour-blind-safe)."""
    from ..atomic import atomic_write_bytes
    from ..report.figures import FIGURE_KINDS, figure_for
    from ..report.style import figure_bytes, house_style

    if kind not in FIGURE_KINDS:
        from ..suggest import did_you_mean

        raise BayesSacralError(f"unknown figure kind {kind!r}{did_you_mean(kind, FIGURE_KINDS)}; allowed: {', '.join(FIGURE_KINDS)}")
    r = find_run(run, store)
    out = out or Path(f"{r.name}--{kind}.png")
    if out.suffix not in (".png", ".pdf"):
        raise BayesSacralError(f"--out must end in .png or .pdf, not {out.suffix!r}")
    with house_style():
        try:
            fig = figure_for(kind, r)
        except ValueError as exc:
            raise BayesSacralError(f"{r.name}: {exc}") from None
        data = figure_bytes(fig, out.suffix[1:])  # laid out as the report's files (long axis labels rewrapped)
    atomic_write_bytes(out, data)
    say(str(out))

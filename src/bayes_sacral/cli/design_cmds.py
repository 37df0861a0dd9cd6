"""``bayes-sacral design``: power, assurance and sample size for the follow-up trial."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app
from .output import OutputFormat, emit, progress_console, say


@app.command("design")
def design(
    config: Path = typer.Argument(..., help="A design config (TOML)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default reports/designs/<design.name>)."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786), or 'local' for a LocalCluster."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run: finished batches are kept, the rest computed."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Local worker processes (default: both cores)."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a config value by key path (repeatable)."),
    study: Path | None = typer.Option(None, "--study", "-s", help="The study card (default: the one [design] study names, else the bundled study)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Format of the printed results."),
) -> None:
    """Simulate the follow-up trial: P(success) with its Monte Carlo error per sample size, type I error, expected
    sample size and stopping probabilities with interims, the smallest N reaching the target, figures and a
    protocol paragraph. The last line printed is the output folder."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ..design.config import load_design
    from ..design.output import tidy
    from ..design.runner import check_output, run_design
    from ..study import load_study

    cfg = load_design(config, set_ or [], study=load_study(study) if study is not None else None)
    out = out or Path("reports/designs") / cfg.design.name
    check_output(cfg, out, resume)  # before the progress bar: a bad --out is one line
    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=progress_console(), disable=quiet)
    import time

    t0 = time.perf_counter()
    with prog:
        task = prog.add_task(f"design {cfg.design.name} ({cfg.engine()} engine)", total=None, rate="")

        def update(done, total, what):
            rate = done / max(time.perf_counter() - t0, 1e-9)
            prog.update(task, completed=done, total=total, rate=f"{rate:,.0f} trials/s" if cfg.engine() != "exact" else "", description=what)

        ds = run_design(cfg, out, scheduler=scheduler, resume=resume, workers=workers, progress=update,
                        log=lambda m: prog.console.print(m))
    cols = ["label", "sample_size", "success_probability", "mcse", "expected_sample_size"]
    if cfg.design.target_mcse is not None:
        cols.append("n_trials")
    if "share_escalated" in ds:
        cols += ["share_escalated", "share_flagged", "success_probability_unflagged"]
    if "validation_trials" in ds and float(ds["validation_trials"].sum()) > 0:
        cols += ["validation_success_fast", "validation_success_nuts", "validation_agreement"]
    emit(tidy(ds).to_dict(orient="records"), fmt, columns=cols if fmt is OutputFormat.table else None,
         title=f"Design {cfg.design.name}: {ds.attrs['rule']}", float_digits=4)
    say((out / "protocol.md").read_text().split("\n\n")[1])
    say(str(out))

"""``bayes-sacral config``, ``fit``, ``runs``, ``summarize``, ``calibrate`` and ``compare``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import BayesSacralError
from ..store import DEFAULT_STORE, find_run, list_runs
from .app import app
from .data_cmds import STUDY_OPT
from .output import OutputFormat, emit, progress_console, say, warn

config_app = typer.Typer(help="Validate run configs and print complete defaults.", no_args_is_help=True)
app.add_typer(config_app, name="config")
runs_app = typer.Typer(help="The run store (models/).", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

SET_OPT = typer.Option(None, "--set", help="Override a config value by key path, e.g. --set priors.set=jeffreys --set run.seed=7 "
                       "(repeatable; TOML values). An override of a swept key replaces that sweep axis.")
FORMAT_OPT = typer.Option(OutputFormat.table, "--format", "-f", help="Output format.", case_sensitive=False)
STORE_OPT = typer.Option(DEFAULT_STORE, "--store", help="The run store folder.")


@config_app.command("validate")
def config_validate(
    file: Path = typer.Argument(..., help="A run config (TOML)."),
    set_: list[str] | None = SET_OPT,
) -> None:
    """Validate a run config against its study card: every problem with its key path, the bad value and what is allowed (exit 2).

    The same checks as `fit` runs before sampling: the outcome exists in the card, the data file exists and is a file,
    the sampler backend is installed."""
    from ..config import load_configs
    from ..fitting import check_run_data

    runs = load_configs(file, set_ or [])
    for r in runs:
        check_run_data(r)
    for r in runs:
        extra = f", overrides: {', '.join(r.overridden)}" if r.overridden else ""
        say(f"valid: {r.config.run.name} (study {r.card.name}, model {r.kind.name} on {r.spec.outcome}, priors {r.prior_set}{extra}, "
            f"data {r.config.data.source})")


@config_app.command("defaults")
def config_defaults(
    kind: str = typer.Argument(..., help="Model kind (score, items, events, ordinal, complications) or an alias the study card declares."),
    study: Path | None = STUDY_OPT,
) -> None:
    """Print a complete, commented config for a model kind (every key with its default)."""
    from ..config import defaults_toml
    from .data_cmds import study_option

    say(defaults_toml(kind, study_option(study)).rstrip("\n"))


@app.command("fit")
def fit(
    config: Path = typer.Argument(..., help="A run config (TOML)."),
    out: Path = typer.Option(DEFAULT_STORE, "--out", help="Run store folder; the run is written to OUT/<run.name>."),
    set_: list[str] | None = SET_OPT,
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if the diagnostics fail (R-hat, ESS, divergences, E-BFMI)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output; only the run folder path(s)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder of the same name."),
) -> None:
    """Fit a config (expanding any [sweep]) and write one run folder per run. The last line printed is the run folder's path."""
    from ..gcpause import paused

    # the imports, every fit and every write allocate long-lived objects; the command ends soon after (see gcpause)
    with paused(last=True):
        results = _fit_all(config, out, set_, quiet, overwrite)
    for res in results:
        say(str(res.path))
    if strict and any(r.manifest["diagnostics"]["status"] == "failed" for r in results):
        raise typer.Exit(1)


def _fit_all(config: Path, out: Path, set_: list[str] | None, quiet: bool, overwrite: bool) -> list:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from ..config import load_configs
    from ..fitting import diagnostics_line, fit_run
    from ..store import check_targets

    runs = load_configs(config, set_ or [])
    check_targets(out, [r.config.run.name for r in runs], overwrite, "--out")
    results = []
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=progress_console(), disable=quiet, transient=False)
    with progress:
        task = progress.add_task(f"fitting {len(runs)} run{'s' if len(runs) > 1 else ''}", total=len(runs))
        for r in runs:
            progress.update(task, description=f"fitting {r.config.run.name}")
            res = fit_run(r, out, overwrite=overwrite, log=(lambda m: None) if quiet else (lambda m: progress.console.print(m, markup=False, highlight=False)))
            results.append(res)
            if not quiet:
                progress.console.print(diagnostics_line(res.manifest), markup=False, highlight=False)
            progress.advance(task)
    return results


@runs_app.command("list")
def runs_list(
    store: Path = STORE_OPT,
    fmt: OutputFormat = FORMAT_OPT,
    stale: bool = typer.Option(False, "--stale", help="List the temporary folders of fits that were killed before they finished."),
) -> None:
    """Finished runs in the store: name, study, outcome, model, priors, data, seed, status."""
    if stale:
        from ..atomic import stale_temporaries

        rows = [{"path": str(p), "bytes": sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size}
                for p in stale_temporaries(store)]
        emit(rows, fmt, columns=["path", "bytes"], title=f"Unfinished temporary folders in {store}/ (remove with `bayes-sacral runs clean`)")
        return
    rows = list_runs(store)
    cols = ["name", "study", "outcome", "kind", "variant", "prior_set", "data", "seed", "status"] if fmt is OutputFormat.table else None
    emit(rows, fmt, columns=cols, title=f"Runs in {store}/")


@runs_app.command("clean")
def runs_clean(store: Path = STORE_OPT) -> None:
    """Remove the temporary folders left in the store by fits that were killed (their process no longer runs)."""
    from ..atomic import remove_stale

    removed = remove_stale(store)
    for p in removed:
        say(f"removed {p}")
    say(f"{len(removed)} unfinished temporary folder{'s' if len(removed) != 1 else ''} removed from {store}")


@app.command("summarize")
def summarize(
    run: str = typer.Argument(..., help="A run folder, or a run name under --store."),
    fmt: OutputFormat = FORMAT_OPT,
    prob: float | None = typer.Option(None, "--prob", min=0.01, max=0.999, help="Interval probability (default: the run's decision.prob)."),
    var: list[str] | None = typer.Option(None, "--var", help="Variables to summarise (default: the model's estimands)."),
    all_vars: bool = typer.Option(False, "--all", help="Every posterior variable, including nuisance parameters."),
    store: Path = STORE_OPT,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file (atomically)."),
    exact: bool = typer.Option(False, "--exact", help="Conjugate models: the closed-form posterior beside the MCMC estimates, "
                               "with their difference in Monte Carlo standard errors."),
    loo: bool = typer.Option(False, "--loo", help="PSIS-LOO: elpd, its SE, p_loo and Pareto-k diagnostics."),
    ppc: bool = typer.Option(False, "--ppc", help="Posterior predictive checks (per cell for patient-level score runs)."),
    spread: bool = typer.Option(False, "--spread", help="Reconstructed route: between-reconstruction spread of each estimand."),
) -> None:
    """Posterior summary: one row per estimand element (mean, sd, median, HDI, ETI, P(> 0), P(benefit), P(benefit beyond
    each threshold), R-hat, ESS, MCSE)."""
    if exact:
        _summarize_exact(run, store, prob, fmt, output)
        return
    if loo or ppc or spread:
        _summarize_checks(run, store, fmt, output, loo, ppc, spread)
        return
    r = find_run(run, store)
    m = r.manifest
    rows = r.summary(prob, var or None, all_vars).to_dict(orient="records")
    p = prob if prob is not None else m.get("decision", {}).get("prob", 0.95)
    thresholds = m.get("decision", {}).get("thresholds", {})
    notes = {t.get("note") for t in thresholds.values() if t.get("note")}
    names = {row["name"].split("[")[0] for row in rows}
    footer = (f"{int(round(p * 100))}% intervals; run {r.name}, seed {m.get('seed')}, status {m.get('diagnostics', {}).get('status')}; "
              "prob_benefit = P(the treatment is better than control)"
              + ("\nthresholds (benefit magnitudes): " + ", ".join(f"{k} = {t['value']:.3g}" for k, t in thresholds.items()) if thresholds else "")
              + "".join(f"\nthreshold note: {n}" for n in sorted(notes))
              + "".join(f"\nassumption: {a}" for a in m.get("data", {}).get("assumptions", []))
              + "".join(f"\n{v}: mean and sd not reported: {why}" for v, why in m.get("no_moment_variables", {}).items() if v in names))
    if fmt == OutputFormat.table:  # for people: each number to the digit its Monte Carlo error supports (JSON/CSV keep all)
        from ..precision import display_summary_row

        rows = [display_summary_row(row) for row in rows]
        footer += "\nnumbers rounded to their Monte Carlo error (last digit = leading digit of 2 x MCSE); --format json|csv for full precision"
    emit(rows, fmt, title=f"{r.name}: {m.get('model', {}).get('kind')} on {m.get('outcome')} ({m.get('prior_set')} priors)", output=output,
         footer=footer, float_digits=3)


def _summarize_exact(run: str, store: Path, prob: float | None, fmt: OutputFormat, output: Path | None) -> None:
    """Closed form vs MCMC for a conjugate run (rebuilt from its resolved config, stored study card and data)."""
    import arviz_stats as azs
    import numpy as np

    from ..fitting import prepare_run
    from ..summarize import parse_element

    r = find_run(run, store)
    resolved = r.resolved
    p = prob if prob is not None else resolved.config.decision.prob
    inp, _ = prepare_run(resolved)
    rows = resolved.kind.exact_summary(inp, resolved.priors, resolved.spec, p)
    if rows is None:
        raise BayesSacralError(f"run {r.name} ({resolved.kind.name}) has no closed form; --exact applies to conjugate models "
                               "(events independent, ordinal dirichlet_multinomial, complications)")
    post = r.idata["posterior"].to_dataset()
    out = []
    for row in rows:
        var, labels = parse_element(row["name"])
        da = post[var]
        if labels:
            extra = [d for d in da.dims if d not in ("chain", "draw")]
            da = da.sel(dict(zip(extra, labels, strict=True)))
        mcse = float(azs.mcse(da, method="mean"))
        mc_mean = float(da.mean())
        out.append({"name": row["name"], "exact_mean": row["mean"], "mcmc_mean": mc_mean, "mcse": mcse,
                    "z": (mc_mean - row["mean"]) / mcse if mcse > 0 else np.nan,
                    "exact_median": row["median"], "exact_eti_low": row["eti_low"], "exact_eti_high": row["eti_high"],
                    "exact_prob_gt_0": row["prob_gt_0"], "mcmc_prob_gt_0": float((da > 0).mean())})
    emit(out, fmt, title=f"{r.name}: closed form vs MCMC ({int(round(p * 100))}% equal-tailed intervals)", output=output, float_digits=4,
         footer="z = (MCMC mean − exact mean) / MCSE; |z| above about 3 would point to a problem in the engine.")


@app.command("calibrate")
def calibrate(
    config: Path = typer.Argument(..., help="A run config (TOML); its model, priors and data design are calibrated."),
    sims: int = typer.Option(200, "--sims", min=20, help="Simulated data sets (>= 200 for a real check)."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Seed (default: the config's run.seed)."),
    bins: int = typer.Option(10, "--bins", min=2, help="Rank histogram bins for the chi-square test (must divide 100)."),
    set_: list[str] | None = SET_OPT,
    fmt: OutputFormat = FORMAT_OPT,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Simulation-based calibration of a config's model: rank uniformity of the true values (exit 1 if miscalibrated)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from ..calibration import run_sbc
    from ..config import load_configs
    from ..fitting import prepare_run

    if 100 % bins:
        raise typer.BadParameter(f"must divide 100 (got {bins})", param_hint="'--bins'")
    failed = []
    for run in load_configs(config, set_ or []):  # a [sweep] is calibrated run by run
        inp, _ = prepare_run(run)
        progress = Progress(TextColumn("calibrating {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=progress_console(), disable=quiet)
        with progress:
            task = progress.add_task(run.config.run.name, total=sims)
            res = run_sbc(run.kind, run.spec, inp, run.priors, n_sims=sims, seed=seed if seed is not None else run.config.run.seed,
                          bins=bins, target_accept=max(run.config.sampler.target_accept, 0.9),
                          progress=lambda i, n, task=task, progress=progress: progress.update(task, completed=i))
        table = res.table()
        footer = (f"{res.n_sims} simulations, ranks 0..{res.n_ranks - 1} in {res.bins} bins; Bonferroni level {res.threshold:.2g} over "
                  f"{len(table)} quantities; {res.divergences} divergent transitions in all; "
                  + ("calibrated" if res.calibrated else "NOT calibrated"))
        emit(table.to_dict(orient="records"), fmt, title=f"Simulation-based calibration: {run.config.run.name}", footer=footer, float_digits=4)
        if fmt is not OutputFormat.table:
            warn(footer)
        if not res.calibrated:
            failed.append(run.config.run.name)
    if failed:
        raise typer.Exit(1)


def _summarize_checks(run: str, store: Path, fmt: OutputFormat, output: Path | None, loo: bool, ppc: bool, spread: bool) -> None:
    from ..checks import LOO_NOTE, loo_table, ppc_table, spread_table

    r = find_run(run, store)
    dt = r.idata
    if loo:
        if "log_likelihood" not in dt.children:
            raise BayesSacralError(f"run {r.name} has no pointwise log-likelihood")
        res = loo_table(dt)
        emit([{"run": r.name, **res}], fmt, title=f"{r.name}: PSIS-LOO", output=output, footer=LOO_NOTE
             + (f" Averaged over {res['blocks']} reconstruction blocks." if res["blocks"] > 1 else ""))
    if ppc:
        tab = ppc_table(r)
        emit(tab.to_dict(orient="records"), fmt, title=f"{r.name}: posterior predictive checks", output=output, float_digits=3,
             footer="p_value = P(replicated statistic ≥ observed); values near 0 or 1 flag misfit. "
                    "at_ceiling = share of post-treatment scores at the top of the scale.")
    if spread:
        try:
            tab = spread_table(dt)
        except ValueError as exc:
            raise BayesSacralError(f"{r.name}: {exc}") from None
        emit(tab.to_dict(orient="records"), fmt, title=f"{r.name}: between-reconstruction spread", output=output, float_digits=3,
             footer="fraction_between = share of the posterior variance due to the unknown patient data (variance of the "
                    "reconstructions' posterior means over the total).")


@app.command("compare")
def compare(
    runs: list[str] = typer.Argument(..., help="Two or more runs fitted to the same patient-level (or reconstructed) data."),
    store: Path = STORE_OPT,
    fmt: OutputFormat = FORMAT_OPT,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file (atomically)."),
) -> None:
    """Compare likelihoods or models by PSIS-LOO (ArviZ compare, stacking weights); reconstruction blocks are compared pairwise."""
    from ..checks import LOO_NOTE, compare_runs

    if len(runs) < 2:
        raise typer.BadParameter("compare needs at least two runs", param_hint="RUNS")
    found = {}
    for x in runs:
        r = find_run(x, store)
        found[r.name] = r
    if len(found) < 2:
        raise typer.BadParameter("the same run is named twice", param_hint="RUNS")
    hashes = {n: (r.manifest["data"]["sha256"], json.dumps(r.manifest["model"].get("reconstruction_seed")),
                  r.manifest["model"].get("reconstructions"), r.manifest["model"].get("pre_post_correlation")) for n, r in found.items()}
    if len(set(hashes.values())) != 1:
        raise BayesSacralError(f"runs were fitted to different data (data hash / reconstruction settings differ): {hashes}")
    try:
        table = compare_runs({n: r.idata for n, r in found.items()})
    except ValueError as exc:
        raise BayesSacralError(str(exc)) from None
    emit(table.to_dict(orient="records"), fmt, title="PSIS-LOO comparison", output=output, float_digits=3, footer=LOO_NOTE)

"""``bayes-sacral cache info|clear``: the persistent cache of compiled models, rendered report figures and remembered
diagnostics."""

from __future__ import annotations

import typer

from .app import app
from .output import OutputFormat, emit, say

cache_app = typer.Typer(help="The cache of compiled models (reused across runs, sweeps and processes), rendered report figures and "
                             "remembered diagnostics.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info(
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format.", case_sensitive=False),
) -> None:
    """Where the compiled models, rendered figures and remembered diagnostics live, how many there are and their size.
    Set BAYES_SACRAL_CACHE to move the cache."""
    from ..compiled import cache_info as info
    from ..memo import results_info
    from ..report import figure_cache

    d = info()
    f = figure_cache.info()
    r = results_info()
    rows = [{"item": "compiled models and functions", "location": d["location"], "entries": str(d["entries"]), "MiB": f"{d['bytes'] / 2**20:.1f}"},
            {"item": "rendered report figures", "location": f["location"], "entries": str(f["entries"]), "MiB": f"{f['bytes'] / 2**20:.1f}"},
            {"item": "remembered diagnostics, LOO, predictive checks", "location": r["location"], "entries": str(r["entries"]),
             "MiB": f"{r['bytes'] / 2**20:.1f}"},
            {"item": "PyTensor compiledir", "location": d["pytensor_compiledir"], "entries": "",
             "MiB": f"{d['pytensor_bytes'] / 2**20:.1f}"},
            {"item": "PyTensor numba cache (compiled ops)", "location": d["pytensor_numba"], "entries": str(d["pytensor_numba_entries"]),
             "MiB": f"{d['pytensor_numba_bytes'] / 2**20:.1f}"},
            {"item": "prebuilt models (read only, used where made for these versions)",
             "location": d["prebuilt"], "entries": str(d["prebuilt_entries"]), "MiB": f"{d['prebuilt_bytes'] / 2**20:.1f}"}]
    emit(rows, fmt, columns=["item", "location", "entries", "MiB"], title="Cache",
         footer="A stale or corrupt entry is detected (key and checksum; for compiled models also a logp check) and rebuilt, never used; "
                "clearing is never required.")


@cache_app.command("clear")
def cache_clear(
    pytensor: bool = typer.Option(False, "--pytensor", help="Also delete PyTensor's compiledir (C code of every graph) and its numba cache (machine code of every op)."),
) -> None:
    """Delete every compiled model, rendered figure and remembered result; the next fit of each model structure compiles
    it again (5-30 s on 2 cores, longer after --pytensor, which makes it compile every op again) and the next report
    writes every figure and computes every diagnostic again."""
    from ..compiled import clear_cache
    from ..memo import clear_results
    from ..report import figure_cache

    n = clear_cache(pytensor_too=pytensor) + figure_cache.clear() + clear_results()
    say(f"removed {n} file{'s' if n != 1 else ''}")

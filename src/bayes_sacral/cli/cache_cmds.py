"""``bayes-sacral cache info|clear``: the persistent cache of compiled models."""

from __future__ import annotations

import typer

from .app import app
from .output import OutputFormat, emit, say

cache_app = typer.Typer(help="The cache of compiled models (reused across runs, sweeps and processes).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info(
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format.", case_sensitive=False),
) -> None:
    """Where the compiled models live, how many there are and their size. Set BAYES_SACRAL_CACHE to move the cache."""
    from ..compiled import cache_info as info

    d = info()
    rows = [{"item": "compiled models and functions", "location": d["location"], "entries": str(d["entries"]), "MiB": f"{d['bytes'] / 2**20:.1f}"},
            {"item": "PyTensor compiledir", "location": d["pytensor_compiledir"], "entries": "",
             "MiB": f"{d['pytensor_bytes'] / 2**20:.1f}"}]
    emit(rows, fmt, columns=["item", "location", "entries", "MiB"], title="Compile cache",
         footer="A stale or corrupt entry is detected (key, checksum and a logp check) and rebuilt; clearing is never required.")


@cache_app.command("clear")
def cache_clear(
    pytensor: bool = typer.Option(False, "--pytensor", help="Also delete PyTensor's compiledir (C code of every graph)."),
) -> None:
    """Delete every compiled model; the next fit compiles again (about 2-10 s per model structure)."""
    from ..compiled import clear_cache

    n = clear_cache(pytensor_too=pytensor)
    say(f"removed {n} file{'s' if n != 1 else ''}")

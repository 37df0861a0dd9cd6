"""Rendering of tabular command output as a rich table, JSON or CSV, to stdout or atomically to a file."""

from __future__ import annotations

import enum
import io
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..atomic import atomic_write_text
from ..serialize import json_dumps, to_jsonable

__all__ = ["OutputFormat", "emit", "to_jsonable", "json_dumps", "console", "err_console"]



class _LazyConsole:
    """A rich Console built at first use in each call, so COLUMNS and redirections in effect then apply.

    Piped output (not a terminal) with no COLUMNS gets 160 columns rather than rich's 80, so tables stay readable.
    """

    def __init__(self, stderr: bool = False):
        self._stderr = stderr

    def _make(self) -> Console:
        stream = sys.stderr if self._stderr else sys.stdout
        width = os.environ.get("COLUMNS")
        if width and width.isdigit():
            return Console(file=stream, width=int(width))
        return Console(file=stream, width=None if stream.isatty() else 160)

    def __getattr__(self, name):
        return getattr(self._make(), name)


console = _LazyConsole()
err_console = _LazyConsole(stderr=True)


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _cell_text(v, float_digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (float, np.floating)):
        if v != 0 and (abs(v) < 10 ** (-float_digits) or abs(v) >= 1e6):
            return f"{v:.{float_digits}g}"
        return f"{v:.{float_digits}f}"
    if isinstance(v, (list, dict)):
        return json.dumps(to_jsonable(v), ensure_ascii=False)
    return str(v)


def render(records: list[dict], fmt: OutputFormat, columns: list[str] | None = None, title: str | None = None,
           float_digits: int = 4, styles: dict | None = None) -> str | Table:
    """Render records (dicts) as a rich Table (``table``) or a string (``json``/``csv``)."""
    df = pd.DataFrame(records)
    if columns is not None:
        df = df.reindex(columns=columns)
    if fmt is OutputFormat.json:
        return json_dumps(df.to_dict(orient="records"))
    if fmt is OutputFormat.csv:
        out = df.copy()
        for c in out.columns:
            if out[c].map(lambda v: isinstance(v, (list, dict))).any():
                out[c] = out[c].map(lambda v: json.dumps(to_jsonable(v), ensure_ascii=False) if isinstance(v, (list, dict)) else v)
        return out.to_csv(index=False, lineterminator="\n")
    table = Table(title=title, show_lines=False, header_style="bold")
    texts = [[escape(_cell_text(rec[c], float_digits)) for c in df.columns] for rec in df.to_dict(orient="records")]
    for j, c in enumerate(df.columns):
        longest = max((len(row[j]) for row in texts), default=0)
        if longest <= 24:  # identifiers and numbers: never broken mid-word
            table.add_column(str(c), no_wrap=True, min_width=min(max(longest, 4), 24))
        else:  # prose columns take the remaining width and wrap
            table.add_column(str(c), overflow="fold", ratio=1, min_width=20)
    styles = styles or {}
    for rec, row in zip(df.to_dict(orient="records"), texts, strict=True):
        style = None
        for col, mapping in styles.items():
            style = mapping.get(rec.get(col)) or style
        table.add_row(*row, style=style)
    return table


def emit(records: list[dict], fmt: OutputFormat, columns: list[str] | None = None, title: str | None = None,
         output: Path | None = None, float_digits: int = 4, styles: dict | None = None, footer: str | None = None) -> None:
    """Print records to stdout, or write them atomically to ``output`` (a table becomes plain text)."""
    rendered = render(records, fmt, columns, title, float_digits, styles)
    if output is not None:
        if isinstance(rendered, Table):
            rec_console = Console(record=True, width=200, file=io.StringIO())
            rec_console.print(rendered)
            if footer:
                rec_console.print(footer, markup=False, highlight=False)
            text = rec_console.export_text()
        else:
            text = rendered
        atomic_write_text(output, text)
        err_console.print(f"wrote {output}")
        return
    if isinstance(rendered, Table):
        console.print(rendered)
        if footer:
            console.print(footer, markup=False, highlight=False)
    else:
        print(rendered, end="")

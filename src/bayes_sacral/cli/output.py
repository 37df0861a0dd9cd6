"""Command output: tables as aligned plain text (JSON and CSV for machines), messages printed literally.

Nothing a user wrote (file names, CSV values, config text) is ever interpreted as markup: every message goes through
:func:`say` / :func:`warn`, which print text as it is. Tables never lose their first (name) column: when the columns do
not fit the width, long text wraps, and when that is not enough each record is printed as a block of ``key: value`` lines.
"""

from __future__ import annotations

import enum
import json
import math
import os
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_write_text
from ..serialize import json_dumps, to_jsonable

__all__ = ["OutputFormat", "emit", "say", "warn", "render_table", "width", "progress_console", "json_dumps", "to_jsonable"]


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def width(stream=None) -> int:
    """Columns available: $COLUMNS, else the terminal's width, else 100 for a pipe or file."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 20:
        return int(env)
    stream = stream or sys.stdout
    try:
        if stream.isatty():
            return shutil.get_terminal_size((100, 24)).columns
    except (AttributeError, ValueError):
        pass
    return 100


def say(text: str = "", err: bool = False) -> None:
    """Print ``text`` literally (no markup, no highlighting) to stdout, or stderr with ``err``."""
    stream = sys.stderr if err else sys.stdout
    print(text, file=stream, flush=True)


def warn(text: str) -> None:
    say(text, err=True)


def progress_console():
    """A rich console on stderr for progress bars (which never print user text as markup)."""
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False, markup=False, emoji=False)


def _cell_text(v, float_digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (float, np.floating)):
        if v != 0 and (abs(v) < 10 ** (-float_digits) or abs(v) >= 1e6):
            return f"{v:.{float_digits}g}"
        return f"{v:.{float_digits}f}"
    if isinstance(v, (list, dict)):
        return json.dumps(to_jsonable(v), ensure_ascii=False)
    return str(v).replace("\n", " ")


def render_table(records: list[dict], columns: list[str], width_: int, float_digits: int = 4, title: str | None = None) -> str:
    """Plain-text table of ``records``; never drops the first column (see the module docstring)."""
    texts = [[_cell_text(rec.get(c), float_digits) for c in columns] for rec in records]
    natural = [max([len(str(c))] + [len(row[j]) for row in texts]) for j, c in enumerate(columns)]
    gap = 2
    out = [title, ""] if title else []
    total = sum(natural) + gap * (len(columns) - 1)
    widths = list(natural)
    if total > width_:
        # let prose columns (long texts) wrap, keeping identifiers and numbers whole
        fixed = [j for j, w in enumerate(natural) if w <= 24 or (j == 0 and w <= 40)]
        prose = [j for j in range(len(columns)) if j not in fixed]
        room = width_ - sum(natural[j] for j in fixed) - gap * (len(columns) - 1)
        if prose and room >= 20 * len(prose):
            for j in prose:
                widths[j] = max(20, room // len(prose))
        else:
            widths = None
    if widths is None:  # vertical layout: one block per record
        key_w = max(len(str(c)) for c in columns)
        for row in texts:
            head = row[0]
            out.append(head)
            for c, val in zip(columns[1:], row[1:], strict=True):
                if val == "":
                    continue
                wrapped = textwrap.wrap(val, max(width_ - key_w - 4, 20)) or [""]
                out.append(f"  {str(c):<{key_w}}  {wrapped[0]}")
                out += [f"  {'':<{key_w}}  {w}" for w in wrapped[1:]]
            out.append("")
        return "\n".join(out).rstrip() + "\n"
    header = (" " * gap).join(f"{str(c):<{w}}" for c, w in zip(columns, widths, strict=True)).rstrip()
    out += [header, "-" * min(len(header), width_)]
    for row in texts:
        cells = [textwrap.wrap(val, w) or [""] if len(val) > w else [val] for val, w in zip(row, widths, strict=True)]
        for k in range(max(len(c) for c in cells)):
            line = (" " * gap).join(f"{(c[k] if k < len(c) else ''):<{w}}" for c, w in zip(cells, widths, strict=True))
            out.append(line.rstrip())
    return "\n".join(out) + "\n"


def render(records: list[dict], fmt: OutputFormat, columns: list[str] | None = None, title: str | None = None,
           float_digits: int = 4, width_: int | None = None) -> str:
    """Records as text in ``fmt``: an aligned table, JSON (a list of objects) or CSV."""
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
    if df.empty and not len(df.columns):
        return (f"{title}\n\n" if title else "") + "(nothing to show)\n"
    return render_table(df.to_dict(orient="records"), list(df.columns), width_ or width(), float_digits, title)


def emit(records: list[dict], fmt: OutputFormat, columns: list[str] | None = None, title: str | None = None,
         output: Path | None = None, float_digits: int = 4, footer: str | None = None) -> None:
    """Print records to stdout, or write them atomically to ``output`` (a table becomes plain text)."""
    if output is not None and Path(output).is_dir():
        from ..errors import InputError, Problem

        raise InputError([Problem(str(output), "--output", str(output), "is a folder; give the name of a file to write")])
    text = render(records, fmt, columns, title, float_digits, width_=200 if output is not None else None)
    if fmt is OutputFormat.table and footer:
        text += "\n" + footer + "\n"
    if output is not None:
        atomic_write_text(output, text)
        warn(f"wrote {output}")
        return
    sys.stdout.write(text)
    sys.stdout.flush()

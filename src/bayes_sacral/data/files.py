"""Reading a data file's text: the checks every data reader makes before it parses (a folder, a TOML file given as
data, unreadable or non-UTF-8 bytes), each an input error naming the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import InputError, Problem

__all__ = ["read_data_text", "line_excerpt"]


def read_data_text(path: str | Path, kind: str) -> tuple[str, str]:
    """The UTF-8 text (a byte-order mark dropped) and SHA-256 of the bytes of a data file; ``kind`` names the file
    expected in messages ("patient-level CSV", "summary-data CSV")."""
    path = Path(path)
    fname = str(path)
    if path.is_dir():
        raise InputError([Problem(fname, "file", "", f"is a folder; a {kind} file is expected")])
    if path.suffix.lower() == ".toml":
        raise InputError([Problem(fname, "file", "", f"is a TOML file (a study card or a run config?); a {kind} file is expected "
                                  "(a card is passed with --study)")])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError([Problem(fname, "file", "", f"cannot be read ({exc.strerror or exc})")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(fname, f"byte {exc.start}", "", "the file must be UTF-8 text")]) from None
    return text, hashlib.sha256(raw).hexdigest()


def line_excerpt(line: str, width: int = 60) -> str:
    """A line of a data file as a problem's value: quoted, cut at ``width`` characters with an ellipsis."""
    return repr(line[:width] + ("..." if len(line) > width else ""))

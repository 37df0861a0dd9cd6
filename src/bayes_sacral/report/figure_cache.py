"""Rendered figures kept on disk, keyed by what the figure is, so that a report drawn again from the same runs (a later
``reanalyze`` that reuses every stored run) copies each unchanged figure instead of writing it again. Writing a figure
(text layout, rasterising at 300 dpi, subsetting fonts into the PDF) costs about 2 s of CPU; drawing it costs far less.

- **Key.** BLAKE2 of the figure's pickle plus the render settings (preview and print resolution, the versions of
  matplotlib and FreeType, the bytes of the house style and of the render code, and matplotlib's rcParams when the
  figure is submitted, which decide how it is saved). The pickle is the figure's whole
  state (artists, data, text, sizes), so equal keys mean equal figures. matplotlib's transforms pickle their back
  references keyed by ``id()`` of the child, which differs in every process, and a figure pickles its pyplot number;
  the key's pickle renumbers those ids in order of appearance and leaves the number out, so the same figure drawn in
  another process, or after other figures, has the same key. A figure that cannot be pickled is not cached.
- **Entry.** The preview PNG, the 300-dpi PNG and the PDF, in one :mod:`~bayes_sacral.cachefile` entry (header with the
  key and a SHA-256 of the body): a corrupt, truncated or stale entry is deleted and the figure written afresh. The
  files a hit writes are byte for byte those a fresh write gives (the writer leaves no timestamps in them).
- **Bounded.** After each report the least recently used entries beyond 256 MiB are deleted. The folder is
  ``figures/`` in the cache (``bayes-sacral cache info``), safe to delete at any time (``bayes-sacral cache clear``).
"""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
from pathlib import Path

from ..cachefile import cache_dir, lookup, write_entry
from ..cachefile import prune as cachefile_prune

__all__ = ["figure_key", "load", "store", "write_files", "prune", "info", "clear", "MAX_BYTES"]

FORMAT = 1
_MAGIC = b"BSFG"
#: Entries beyond this many bytes (least recently used first) are deleted after each report.
MAX_BYTES = 256 * 2**20


def _dir() -> Path:
    return cache_dir() / "figures"


def _path(key: str) -> Path:
    return _dir() / f"{key}.bsfg"


@functools.cache
def _render_settings() -> bytes:
    """Everything besides the figure that decides the bytes written: resolutions, library versions, house style and
    render code."""
    import matplotlib
    from matplotlib import ft2font

    from . import render, style

    here = Path(__file__).resolve().parent
    code = b"".join((here / name).read_bytes() for name in ("figure_cache.py", "render.py", "style.py"))
    return repr((FORMAT, render.PREVIEW_DPI, style.DPI, matplotlib.__version__, ft2font.__freetype_version__)).encode() + code


class _KeyPickler(pickle.Pickler):
    """Pickles a figure with what differs between processes but not on the page made canonical: matplotlib's id()-keyed
    transform back references renumbered in order of appearance, and the figure's pyplot number and registration
    dropped."""

    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._ids: dict[int, int] = {}
        from matplotlib.figure import Figure
        from matplotlib.transforms import TransformNode

        self._transform = TransformNode
        self._figure = Figure

    def reducer_override(self, obj):
        if isinstance(obj, self._transform | self._figure):
            reduced = list(obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL))
            state = dict(reduced[2])
            if isinstance(obj, self._figure):
                state.pop("_number", None)
                state.pop("_restore_to_pylab", None)
            else:
                state["_parents"] = {self._ids.setdefault(k, len(self._ids)): v for k, v in state.get("_parents", {}).items()}
            reduced[2] = state
            return tuple(reduced)
        return NotImplemented


def figure_key(fig) -> str | None:
    """The cache key of ``fig`` as it would be written now, or None when it cannot be pickled (then it is not cached)."""
    buf = io.BytesIO()
    try:
        _KeyPickler(buf).dump(fig)
    except (pickle.PicklingError, AttributeError, TypeError):
        return None
    import matplotlib

    h = hashlib.blake2b(digest_size=20)
    h.update(_render_settings())
    h.update(repr(sorted((k, v) for k, v in matplotlib.rcParams.items() if not k.startswith("backend"))).encode())
    h.update(buf.getbuffer())
    return h.hexdigest()


def load(key: str) -> dict | None:
    """The entry (``preview``, ``png`` and ``pdf`` bytes) of ``key``, or None; a damaged entry is deleted."""
    found, entry = lookup(_path(key), _MAGIC, FORMAT, key)
    return entry if found else None


def store(key: str, preview: bytes, stem: Path) -> None:
    """Keep the preview and the files just written at ``stem`` (.png and .pdf) under ``key``; a cache that cannot be
    written is skipped."""
    stem = Path(stem)
    try:
        entry = {"preview": preview, "png": stem.with_name(stem.name + ".png").read_bytes(),
                 "pdf": stem.with_name(stem.name + ".pdf").read_bytes()}
        write_entry(_path(key), _MAGIC, FORMAT, key, entry)
    except OSError:
        pass


def write_files(entry: dict, stem: Path) -> bytes:
    """Write a cached figure's ``stem``.png and ``stem``.pdf; returns its preview PNG."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_name(stem.name + ".png").write_bytes(entry["png"])
    stem.with_name(stem.name + ".pdf").write_bytes(entry["pdf"])
    return entry["preview"]


def _entries() -> list[Path]:
    d = _dir()
    return sorted(d.glob("*.bsfg")) if d.is_dir() else []


def prune(max_bytes: int = MAX_BYTES) -> int:
    """Delete the least recently used entries until the rest fit in ``max_bytes``; returns how many were deleted."""
    return cachefile_prune(_entries(), max_bytes)


def info() -> dict:
    """Location, number of entries and bytes of the figure cache."""
    entries = _entries()
    return {"location": str(_dir()), "entries": len(entries), "bytes": sum(p.stat().st_size for p in entries)}


def clear() -> int:
    """Delete every cached figure; returns how many files were removed."""
    n = 0
    for p in _entries():
        p.unlink(missing_ok=True)
        n += 1
    return n

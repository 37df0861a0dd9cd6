"""Results remembered by the content of their inputs: a report reads the same run's diagnostics, LOO and predictive
checks several times (tables, figures, model checks), and recomputing them was a third of its time.

Keys are BLAKE2 digests of the arrays' bytes, dtypes and shapes, so a changed array is a new key and a stale result
is never served; each cache is bounded (oldest dropped first).

A named memo can be filled from another process: :func:`recording` collects the entries that a block of code read or
computed, and :func:`absorb` puts them into this process's memos of the same names (the reanalysis computes each
run's diagnostics and checks in the worker process that loaded it, and the report then finds them here). The keys are
content digests, so an absorbed entry is served only for the same inputs.

A memo made with ``persist=True`` also keeps its entries on disk (``results/`` in the cache, :mod:`bayes_sacral.cachefile`),
so a later process, e.g. the next reanalysis of the same stored runs, reads the diagnostics, PSIS-LOO and predictive
checks instead of computing them again. On disk an entry's key is the content digest plus the code that computes it:
the installed versions and fitting-code fingerprint (:func:`bayes_sacral.store.versions`) and the bytes of the memo's
own module; a damaged or foreign entry is deleted and recomputed. ``BAYES_SACRAL_RESULT_CACHE=0`` keeps every memo in
memory only.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["digest", "Memo", "recording", "absorb", "results_dir", "results_info", "clear_results", "prune_results",
           "RESULTS_MAX_BYTES"]

_FORMAT = 1
_MAGIC = b"BSMR"
#: Entries on disk beyond this many bytes (least recently used first) are deleted by :func:`prune_results`.
RESULTS_MAX_BYTES = 512 * 2**20

_NAMED: dict[str, Memo] = {}
_RECORDERS: list[list] = []
_RECORDERS_LOCK = threading.Lock()


def digest(*parts) -> str:
    """Digest of arrays (bytes, dtype, shape), xarray objects (their arrays and dims) and plain values (their repr)."""
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        if hasattr(p, "data_vars"):  # xarray Dataset: every variable in name order
            for name in sorted(p.data_vars):
                h.update(str(name).encode())
                h.update(digest(p[name]).encode())
        elif hasattr(p, "dims") and hasattr(p, "values"):  # DataArray / Variable
            h.update(repr(tuple(p.dims)).encode())
            h.update(digest(np.asarray(p.values)).encode())
        elif isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.view(np.uint8).ravel() if a.dtype != object else repr(a.tolist()).encode())
        else:
            h.update(repr(p).encode())
        h.update(b"|")
    return h.hexdigest()


def results_dir() -> Path:
    """Where persisted memo entries are kept: ``results/`` in the cache folder."""
    from .cachefile import cache_dir

    return cache_dir() / "results"


@functools.cache
def _code_identity(module: str) -> str:
    """The installed versions, the fitting-code fingerprint and the bytes of ``module``'s file: what computes a memo's
    values besides its inputs."""
    import importlib.util
    import json

    from .store import versions

    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(versions(), sort_keys=True).encode())
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.origin and Path(spec.origin).is_file():
        h.update(Path(spec.origin).read_bytes())
    return h.hexdigest()


class Memo:
    """A bounded map from digests to results (thread-safe); ``name`` (unique in the process; ``module:memo`` for one
    defined at a module's top level, so that :func:`absorb` can import the module) lets :func:`absorb` fill it.
    ``persist`` (needs a ``module:memo`` name) also keeps the entries on disk (see the module docstring)."""

    def __init__(self, size: int = 256, name: str | None = None, persist: bool = False):
        if persist and (name is None or ":" not in name):
            raise ValueError("a persisted memo needs a 'module:memo' name")
        self.size = size
        self.name = name
        self.persist = persist
        self._d: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        if name is not None:
            if name in _NAMED:
                raise ValueError(f"a memo named {name!r} exists")
            _NAMED[name] = self

    def _disk(self, key: str) -> tuple[Path, str] | None:
        if not self.persist or os.environ.get("BAYES_SACRAL_RESULT_CACHE", "1").strip() == "0":
            return None
        full = f"{self.name}|{key}|{_code_identity(self.name.partition(':')[0])}"
        return results_dir() / self.name.replace(":", ".") / (hashlib.blake2b(full.encode(), digest_size=20).hexdigest() + ".bsmr"), full

    def _load(self, key: str):
        where = self._disk(key)
        if where is None:
            return False, None
        from .cachefile import lookup

        return lookup(where[0], _MAGIC, _FORMAT, where[1])  # a damaged entry is deleted and recomputed

    def _store(self, key: str, value) -> None:
        where = self._disk(key)
        if where is None:
            return
        from .cachefile import write_entry

        try:
            write_entry(where[0], _MAGIC, _FORMAT, where[1], value)
        except Exception:  # noqa: BLE001 - unpicklable value or read-only cache: kept in memory only
            pass

    def __len__(self) -> int:
        return len(self._d)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def get_or_compute(self, key: str, compute):
        with self._lock:
            hit = key in self._d
            if hit:
                self._d.move_to_end(key)
                value = self._d[key]
        if not hit:
            found, value = self._load(key)
            if not found:
                value = compute()
                self._store(key, value)
            self.put(key, value)
        if self.name is not None and _RECORDERS:
            with _RECORDERS_LOCK:
                for rec in _RECORDERS:
                    rec.append((self.name, key, value))
        return value

    def put(self, key: str, value) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)


@contextmanager
def recording():
    """Collect ``(memo name, key, value)`` for every named-memo entry read or computed inside the block (any thread)."""
    entries: list = []
    with _RECORDERS_LOCK:
        _RECORDERS.append(entries)
    try:
        yield entries
    finally:
        with _RECORDERS_LOCK:
            _RECORDERS.remove(entries)


def _named(name: str) -> Memo | None:
    """The memo of that name, importing its module first when the name is ``module:memo`` and it is not loaded yet."""
    if name not in _NAMED and ":" in name:
        import importlib

        try:
            importlib.import_module(name.partition(":")[0])
        except ImportError:
            return None
    return _NAMED.get(name)


def absorb(entries) -> int:
    """Put recorded entries into this process's memos of the same names (a ``module:memo`` name imports its module;
    unknown names are skipped); returns how many."""
    n = 0
    for name, key, value in entries:
        memo = _named(name)
        if memo is not None:
            memo.put(key, value)
            n += 1
    return n


def _result_files() -> list[Path]:
    d = results_dir()
    return sorted(d.rglob("*.bsmr")) if d.is_dir() else []


def results_info() -> dict:
    """Location, number of entries and bytes of the persisted memo entries."""
    files = _result_files()
    return {"location": str(results_dir()), "entries": len(files), "bytes": sum(p.stat().st_size for p in files)}


def clear_results() -> int:
    """Delete every persisted memo entry; returns how many files were removed."""
    files = _result_files()
    for p in files:
        p.unlink(missing_ok=True)
    return len(files)


def prune_results(max_bytes: int = RESULTS_MAX_BYTES) -> int:
    """Delete the least recently used persisted entries until the rest fit in ``max_bytes``; returns how many."""
    from .cachefile import prune

    return prune(_result_files(), max_bytes)

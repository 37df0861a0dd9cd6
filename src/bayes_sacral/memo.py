"""Results remembered by the content of their inputs: a report reads the same run's diagnostics, LOO and predictive
checks several times (tables, figures, model checks), and recomputing them was a third of its time.

Keys are BLAKE2 digests of the arrays' bytes, dtypes and shapes, so a changed array is a new key and a stale result
is never served; each cache is bounded (oldest dropped first).

A named memo can be filled from another process: :func:`recording` collects the entries that a block of code read or
computed, and :func:`absorb` puts them into this process's memos of the same names (the reanalysis computes each
run's diagnostics and checks in the worker process that loaded it, and the report then finds them here). The keys are
content digests, so an absorbed entry is served only for the same inputs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

__all__ = ["digest", "Memo", "recording", "absorb"]

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


class Memo:
    """A bounded map from digests to results (thread-safe); ``name`` (unique in the process; ``module:memo`` for one
    defined at a module's top level, so that :func:`absorb` can import the module) lets :func:`absorb` fill it."""

    def __init__(self, size: int = 256, name: str | None = None):
        self.size = size
        self.name = name
        self._d: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        if name is not None:
            if name in _NAMED:
                raise ValueError(f"a memo named {name!r} exists")
            _NAMED[name] = self

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
            value = compute()
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

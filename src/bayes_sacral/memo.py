"""Results remembered by the content of their inputs: a report reads the same run's diagnostics, LOO and predictive
checks several times (tables, figures, model checks), and recomputing them was a third of its time.

Keys are BLAKE2 digests of the arrays' bytes, dtypes and shapes, so a changed array is a new key and a stale result
is never served; each cache is bounded (oldest dropped first).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

__all__ = ["digest", "Memo"]


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
    """A bounded map from digests to results (thread-safe)."""

    def __init__(self, size: int = 256):
        self.size = size
        self._d: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: str, compute):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        value = compute()
        with self._lock:
            self._d[key] = value
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return value

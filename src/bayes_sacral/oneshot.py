"""What our own one-shot processes (the console command, a worker) settle at start, before any library asks.

xarray checks every array it wraps against dask's array type, and its first check imports ``dask.array`` to learn that
type when dask is installed (dask is, for the trial designs' distributed scheduler), with scipy.fftpack and dask's
array backends: a fresh ``bayes-sacral fit`` took 3.38 s with that import and 3.22 s without it (medians of 7
interleaved pairs). This package never makes a dask array (it reads and writes netCDF without chunks and keeps every
array in memory), so in a process that runs only this package's code, an array xarray wraps cannot be a dask array.

:func:`declare_no_dask_arrays` lets xarray make that first check while ``dask`` and ``dask.array`` cannot be imported,
so xarray remembers that dask arrays are not in use, as it does where dask is not installed; the check itself imports
nothing, so every command can make it. Both stay importable afterwards (a run's write imports dask, the trial designs
dask's distributed scheduler). Only for our own processes: in a user's process (the library API, a notebook) xarray is left
alone, since the user may hand it dask arrays.
"""

from __future__ import annotations

import sys

__all__ = ["declare_no_dask_arrays"]


def declare_no_dask_arrays() -> bool:
    """Tell xarray, in one of this package's own processes, that no dask array will occur; True if it was told.

    Does nothing when ``dask.array`` has been imported already (a dask array may exist) or when xarray has already
    checked for it."""
    if "dask.array" in sys.modules:
        return False
    try:
        from xarray.namedarray import pycompat
    except ImportError:  # another xarray layout: left as it is
        return False
    if not callable(getattr(pycompat, "array_type", None)) or "dask" in getattr(pycompat, "_cached_duck_array_modules", {}):
        return False  # another xarray layout, or xarray has looked already: left as it is
    # an import of either raises ImportError, so xarray takes dask arrays as unavailable without importing dask itself
    blocked = [n for n in ("dask", "dask.array") if n not in sys.modules]
    for n in blocked:
        sys.modules[n] = None
    try:
        pycompat.array_type("dask")
    finally:
        for n in blocked:
            del sys.modules[n]
    return True

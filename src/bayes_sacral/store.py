"""The run store: one folder per fitted run, written atomically, with everything needed to audit and redo it.

A run folder ``<root>/<name>/`` holds:

- ``idata.nc``: the ArviZ DataTree (posterior, prior, prior_predictive, posterior_predictive, log_likelihood,
  observed_data, constant_data, sample_stats) as netCDF4, written and read with netCDF-C (see :func:`netcdf_engine`);
- ``config.toml``: the resolved config (defaults and every prior written out);
- ``study.toml``: the study card the run was fitted with;
- ``manifest.json``: versions of the package and its dependencies, seeds, data hash, study card hash, wall time,
  diagnostics and status.

Folders are built under a ``.bs-tmp-*`` name and renamed when complete, so an interrupted fit leaves nothing
that looks like a finished run; an existing run is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import platform
import sys
import threading
from importlib import metadata
from pathlib import Path

import xarray as xr

from .atomic import (
    TMP_PREFIX,
    NotReplaceable,
    TargetExists,
    atomic_directory,
    check_output_folder,
    output_folder_problem,
)
from .errors import BayesSacralError
from .serialize import to_jsonable

__all__ = ["DEFAULT_STORE", "write_run", "netcdf_engine", "check_store", "check_targets", "check_free", "RunExistsError", "find_run", "list_runs", "versions", "source_fingerprint", "RUN_FORMAT"]

DEFAULT_STORE = Path("models")
RUN_FORMAT = "bayes-sacral-run/1"
RUN_MARKER = "manifest.json"  # every run folder holds one; --overwrite replaces only folders that do
_DEPENDENCIES = ("bayes-sacral", "pymc", "pytensor", "arviz", "arviz-base", "arviz-stats", "arviz-plots", "nutpie", "numba",
                 "numpy", "scipy", "pandas", "xarray", "h5netcdf", "h5py", "netCDF4", "pydantic", "jax", "numpyro", "blackjax", "dask", "distributed")


def versions() -> dict[str, str]:
    """Python, platform and installed versions of the package and its scientific dependencies."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in _DEPENDENCIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    out["bayes-sacral-fit-source"] = source_fingerprint()
    return out


_NOT_FIT_CODE = ("report", "design", "cli", "reanalysis.py", "checks.py")


@functools.cache
def source_fingerprint() -> str:
    """SHA-256 (first 16 hex digits) over the package files that can change a fit (all code and bundled data except the
    report, design and command-line layers), so a run records the exact code that produced it even between releases,
    and a stored run is reused only by code that would reproduce it."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    files = (p for p in root.rglob("*") if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in p.parts
             and p.relative_to(root).parts[0] not in _NOT_FIT_CODE)
    for f in sorted(files):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


class RunExistsError(BayesSacralError):
    """A run folder of that name exists (exit code 2: choose another run.name or pass --overwrite)."""

    exit_code = 2


def _seed_of(target: Path) -> str:
    try:
        return str(json.loads((target / "manifest.json").read_text())["seed"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def check_store(root: Path, option: str = "--out") -> None:
    """Refuse, before any fitting, a run store folder that is a file or cannot be created or written (``option``: how
    the caller names it)."""
    check_output_folder(root, option, "run store folder", into=True)


def check_targets(root: Path, names: list[str], overwrite: bool = False, option: str = "--out") -> None:
    """Before any fitting: the store ``root`` can be written (:func:`check_store`) and each run folder ``root/<name>``
    is free, or with ``overwrite`` is an earlier run (:func:`check_free`)."""
    check_store(Path(root), option)
    for name in names:
        check_free(Path(root) / name, overwrite)


def check_free(target: Path, overwrite: bool = False, flag: str = "--overwrite") -> None:
    """Refuse early when a run folder already exists (the final rename checks again, exclusively), and with
    ``overwrite`` when what is there is not a run folder (no manifest.json: never replaced). ``flag``: how the caller
    asks for a replacement (the option, or ``overwrite=True`` in the library)."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise RunExistsError(f"run folder {target} already exists (seed {_seed_of(target)}); pass {flag} to replace it "
                             "or choose another run.name")
    if overwrite:
        problem = output_folder_problem(target, RUN_MARKER)
        if problem is not None:
            raise RunExistsError(f"{target} {problem}")


def netcdf_engine() -> str:
    """The xarray engine runs are written and read with: netCDF4 (the netCDF-C library) where installed, else h5netcdf.

    h5netcdf looks up every variable's dimension scales in Python: it took about 1 s to read a run's ~50 variables
    (netCDF4: 0.15-0.35 s) and 0.35 s to write one (netCDF4: 0.09 s). The files are netCDF4/HDF5 either way; each engine
    reads what the other wrote to an identical DataTree (tested), so runs stored by earlier versions still load."""
    import importlib.util

    return "netcdf4" if importlib.util.find_spec("netCDF4") is not None else "h5netcdf"


@contextlib.contextmanager
def _no_scheduler_probe():
    """Write without importing dask's distributed scheduler just to learn that it is not in use.

    xarray's netCDF writer asks dask which scheduler would compute chunked variables, and dask answers by importing
    ``distributed`` to look for an active Client: 0.1-0.2 s, 4% of a fresh ``bayes-sacral fit``, for arrays that are
    in memory. When ``distributed`` has not been imported, no Client can exist in this process, so inside this block it
    is made to look not installed, a case both libraries handle (their answer is then the same: the threaded
    scheduler). Only when that cannot change any answer: this is the only Python thread (none can import it
    meanwhile), and no scheduler is named in dask's config (naming one makes dask remember whether distributed is
    installed)."""
    names = ("distributed", "dask.distributed")
    dask_config = sys.modules.get("dask.config")
    if (any(n in sys.modules for n in names) or threading.active_count() > 1
            or dask_config is None or dask_config.get("scheduler", None) is not None):
        yield
        return
    for n in names:
        sys.modules[n] = None  # an import of either raises ImportError
    try:
        yield
    finally:
        for n in names:
            if n in sys.modules and sys.modules[n] is None:
                del sys.modules[n]


def write_run(target: Path, idata: xr.DataTree, config_toml: str, manifest: dict, card_text: str, overwrite: bool = False) -> Path:
    """Write a run folder atomically; refuses to replace an existing run unless ``overwrite`` (also when another process
    finishes the same run name first: the later one is not saved and says so)."""
    target = Path(target)

    def lost() -> RunExistsError:
        return RunExistsError(f"run folder {target} was written by another process while this fit ran (its seed: {_seed_of(target)}); "
                              f"this fit (seed {manifest.get('seed')}) was not saved; choose another run.name or pass --overwrite")

    if target.exists() and not overwrite:
        raise lost()
    try:
        with atomic_directory(target, overwrite=overwrite, marker=RUN_MARKER) as tmp:
            with _no_scheduler_probe():
                idata.to_netcdf(tmp / "idata.nc", engine=netcdf_engine())
            (tmp / "config.toml").write_text(config_toml, encoding="utf-8")
            (tmp / "study.toml").write_text(card_text, encoding="utf-8")
            (tmp / "manifest.json").write_text(json.dumps(to_jsonable(manifest), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except NotReplaceable as exc:
        raise RunExistsError(str(exc)) from None
    except TargetExists:
        raise lost() from None
    return target


def find_run(ref: str | Path, root: Path = DEFAULT_STORE):
    """A run by folder path, or by name under ``root`` (a :class:`~bayes_sacral.run.Run`)."""
    from .run import Run

    p = Path(ref)
    for cand in (p, Path(root) / str(ref)):
        if (cand / "manifest.json").is_file() and (cand / "idata.nc").is_file():
            return Run.load(cand)
    names = [r["name"] for r in list_runs(root)]
    from .suggest import did_you_mean

    raise BayesSacralError(f"no finished run at {ref!r} (looked for a folder with manifest.json and idata.nc, and under {root}/)"
                           f"{did_you_mean(str(ref), names)}")


def list_runs(root: Path = DEFAULT_STORE) -> list[dict]:
    """One row per finished run under ``root`` (temporary folders of unfinished fits are skipped)."""
    rows = []
    root = Path(root)
    if not root.is_dir():
        return rows
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.startswith(TMP_PREFIX) or not (d / "manifest.json").exists():
            continue
        try:
            m = json.loads((d / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        rows.append({
            "name": d.name, "study": m.get("study", {}).get("name", ""), "outcome": m.get("outcome", ""), "kind": m.get("model", {}).get("kind", ""), "variant": m.get("model", {}).get("variant", m.get("model", {}).get("likelihood", "")),
            "prior_set": m.get("prior_set", ""), "data": m.get("data", {}).get("source", ""), "seed": m.get("seed"),
            "draws": m.get("sampler", {}).get("draws"), "chains": m.get("sampler", {}).get("chains"),
            "status": m.get("diagnostics", {}).get("status", ""), "created": m.get("created", ""), "path": str(d),
        })
    return rows

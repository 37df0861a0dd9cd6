"""Prebuilt compiled models: every model structure of the bundled run configs, compiled once for any x86-64 CPU and
shipped in ``prebuilt_models/`` (as rstanarm ships its Stan models compiled), so that a new machine's first
reanalysis links them in instead of compiling them (about 110 CPU-s of numba and LLVM on 2 cores).

How they are made and used:

- ``make prebuilt`` runs :func:`build` in a process whose numba makes machine code for its ``generic`` x86-64 target
  (``NUMBA_CPU_NAME=generic``: the baseline instruction set, no AVX), with empty caches. Each structure is compiled as
  any fit compiles it, keyed as any entry is (:func:`bayes_sacral.compiled.structure_key`), with that CPU in the key.
- :func:`bayes_sacral.compiled.compiled_model` tries the prebuilt entry of a structure before the user's cache, so a
  bundled structure runs the same machine code on every machine and in every process. An entry whose key does not
  match (another structure, or other versions of Python, the sampling stack or this package) is simply not found,
  and the structure is compiled as before; an entry that is found is checked like every cache entry (header,
  checksum, the log density against PyTensor's own implementation, the gradient against finite differences) and
  never used when it fails. Prebuilt entries are only read; ``BAYES_SACRAL_PREBUILT=0`` turns them off.
- ``index.json`` records the versions the entries were made with and the run each structure came from; a test
  (in ``make validate``) checks that every NUTS run of ``configs/`` finds its structure there when this environment is the
  one recorded.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from .atomic import atomic_directory
from .compiled import (
    PORTABLE_CPU,
    PREBUILT_DIR,
    compiled_model,
    entry_path,
    prebuilt_dir,
    structure_key,
    target_cpu,
    versions,
)

__all__ = ["build", "nuts_runs", "DEFAULT_OUT"]

DEFAULT_OUT = PREBUILT_DIR


def nuts_runs(configs_dir: Path) -> list:
    """Every run of the configs in ``configs_dir`` that samples with NUTS (conjugate runs draw exactly, uncompiled)."""
    from .config import load_configs

    return [run for cfg in sorted(Path(configs_dir).glob("*.toml")) for run in load_configs(cfg)
            if run.config.sampler.backend == "nutpie"]


def build(configs_dir: Path, out_dir: Path = DEFAULT_OUT, log=print) -> dict[str, str]:
    """Compile every structure of the NUTS runs in ``configs_dir`` for the portable CPU and make ``out_dir`` hold
    exactly those entries and their ``index.json``; returns {key: run name}. Must run with ``NUMBA_CPU_NAME=generic``
    and ``BAYES_SACRAL_PREBUILT=0`` (``make prebuilt`` sets both)."""
    from .fitting import build_run_model, prepare_run

    if target_cpu() != PORTABLE_CPU:
        raise RuntimeError(f"numba targets {target_cpu()[0]!r} here: run with NUMBA_CPU_NAME=generic (make prebuilt)")
    if prebuilt_dir() is not None:
        raise RuntimeError("run with BAYES_SACRAL_PREBUILT=0, so that no earlier prebuilt entry is read (make prebuilt)")
    made: dict[str, str] = {}
    for run in nuts_runs(configs_dir):
        inp, _ = prepare_run(run)
        model = build_run_model(run, inp)
        key = structure_key(model)
        if key in made:
            continue
        compiled_model(model, log)
        if not entry_path(key).is_file():
            raise RuntimeError(f"{run.config.run.name}: the compiled model could not be cached")
        made[key] = run.config.run.name
        log(f"{key[:12]}  {run.config.run.name}")
    # written under a temporary name and renamed into place; only a folder of prebuilt models (index.json) is replaced
    with atomic_directory(out_dir, overwrite=True, marker="index.json") as tmp:
        for key in made:
            shutil.copyfile(entry_path(key), tmp / f"{key}.bscm")
        index = {"versions": versions(PORTABLE_CPU), "structures": made}
        (tmp / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return made


if __name__ == "__main__":
    configs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("configs")
    if not configs.is_dir() or not any(configs.glob("*.toml")):
        print(f"error: {configs}: no run configs (*.toml) in this folder", file=sys.stderr)
        sys.exit(2)
    from .errors import BayesSacralError

    try:
        done = build(configs)
    except (RuntimeError, FileExistsError, BayesSacralError) as exc:  # a wrong environment, or an output not replaceable
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"{len(done)} structures written to {DEFAULT_OUT}")

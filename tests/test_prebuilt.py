"""The prebuilt models shipped with the package (``bayes_sacral.prebuilt``): portable machine code, tried before the
user's cache, read only, checked like every entry, and covering every NUTS run of the bundled configs."""

import json
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest

from bayes_sacral import compiled
from test_compiled import run_fresh

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.slow  # a generic-CPU compile and five fresh processes (about 30 s): make validate
@pytest.mark.skipif(platform.machine() != "x86_64", reason="prebuilt models are x86-64 machine code")
def test_prebuilt_models_are_portable_tried_first_read_only_and_checked(tmp_path):
    """``make prebuilt`` in small: a process whose numba targets the generic x86-64 CPU compiles the structure; a fresh
    process with an empty cache links that entry in from the prebuilt folder instead of compiling, and draws exactly
    what the compiling process drew, also where its own cache holds the structure compiled for this CPU; a damaged
    prebuilt entry is not used, nor deleted (the folder is the package's); ``BAYES_SACRAL_PREBUILT=0`` ignores it."""
    gen = run_fresh(tmp_path / "gen", env={"NUMBA_CPU_NAME": "generic", "BAYES_SACRAL_PREBUILT": "0"})
    assert (gen["compiled"], gen["prebuilt"]) == (1, 0)
    pre = tmp_path / "pre"
    pre.mkdir()
    (entry,) = (tmp_path / "gen" / "models").glob("*.bscm")
    shutil.copyfile(entry, pre / entry.name)
    used = run_fresh(tmp_path / "user", env={"BAYES_SACRAL_PREBUILT": str(pre)})
    assert (used["compiled"], used["loaded"], used["prebuilt"], used["rejected"]) == (0, 1, 1, 0)
    assert used["mu"] == gen["mu"]
    assert not list((tmp_path / "user").rglob("*.bscm"))  # linked in from the package's folder, not copied
    own = run_fresh(tmp_path / "own", env={"BAYES_SACRAL_PREBUILT": "0"})
    assert (own["compiled"], own["prebuilt"]) == (1, 0)  # compiled for this CPU, into its own cache
    first = run_fresh(tmp_path / "own", env={"BAYES_SACRAL_PREBUILT": str(pre)})
    assert (first["compiled"], first["loaded"], first["prebuilt"]) == (0, 1, 1) and first["mu"] == gen["mu"]
    raw = bytearray(entry.read_bytes())
    raw[-20] ^= 0xFF
    (pre / entry.name).write_bytes(bytes(raw))
    bad = run_fresh(tmp_path / "user2", env={"BAYES_SACRAL_PREBUILT": str(pre)})
    assert (bad["compiled"], bad["prebuilt"], bad["rejected"]) == (1, 0, 1)
    assert (pre / entry.name).read_bytes() == bytes(raw)
    assert bad["mu"] == own["mu"]  # compiled here, as without a prebuilt folder


@pytest.mark.slow  # builds every NUTS run's model, reconstructions included (about 30 s): make validate
def test_the_shipped_prebuilt_models_cover_every_nuts_run_of_the_bundled_configs():
    """Every NUTS run of ``configs/`` finds its structure among the package's prebuilt models (else ``make
    prebuilt`` was not run after a change to a model kind, the lock or the package version), where this environment
    is the one they were made for; elsewhere they are not used, and the test says so."""
    from bayes_sacral import prebuilt
    from bayes_sacral.fitting import build_run_model, prepare_run

    folder = compiled.prebuilt_dir()
    index = json.loads((folder / "index.json").read_text())
    if index["versions"] != compiled.versions(compiled.PORTABLE_CPU):
        pytest.skip("the prebuilt models were made for other versions of Python or the sampling stack: unused here")
    missing = []
    for run in prebuilt.nuts_runs(CONFIGS):
        inp, _ = prepare_run(run)
        key = compiled.structure_key(build_run_model(run, inp), compiled.PORTABLE_CPU)
        if key not in index["structures"] or not (folder / f"{key}.bscm").is_file():
            missing.append(run.config.run.name)
    assert not missing, f"no prebuilt model for {missing}: run make prebuilt"
    assert sorted(p.stem for p in folder.glob("*.bscm")) == sorted(index["structures"])


@pytest.mark.skipif(platform.machine() != "x86_64", reason="prebuilt models are x86-64 machine code")
def test_a_bundled_structure_is_linked_in_from_the_shipped_models_without_compiling(tmp_path, monkeypatch):
    """The MSTS example's structure, with an empty cache, comes from the package's prebuilt models (checked against
    its own log density on the way in), nothing is compiled or written to the user's cache, and the loaded code
    computes the model's log density; with ``BAYES_SACRAL_PREBUILT=0`` the shipped entry is not looked at."""
    from bayes_sacral.config import load_configs
    from bayes_sacral.fitting import build_run_model, prepare_run

    index = json.loads((compiled.prebuilt_dir() / "index.json").read_text())
    if index["versions"] != compiled.versions(compiled.PORTABLE_CPU):
        pytest.skip("the prebuilt models were made for other versions of Python or the sampling stack: unused here")
    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path))
    monkeypatch.setattr(compiled, "_LOADED", {})
    run = load_configs(CONFIGS / "msts_ipd_example.toml")[0]
    inp, _ = prepare_run(run)
    model = build_run_model(run, inp)
    assert compiled.structure_key(model, compiled.PORTABLE_CPU) in index["structures"]
    before = (compiled.STATS.compiled, compiled.STATS.prebuilt)
    cm = compiled.compiled_model(model)
    assert (compiled.STATS.compiled, compiled.STATS.prebuilt) == (before[0], before[1] + 1)
    assert not list(tmp_path.rglob("*.bscm"))
    zero = {k: np.zeros_like(v) for k, v in model.initial_point().items()}  # the unconstrained origin
    rc, lp, _ = compiled.logp_and_grad(cm, np.zeros(sum(v.size for v in zero.values())))
    expected = model.compile_logp(jacobian=True)(zero)
    assert rc == 0 and np.isclose(lp, expected, rtol=1e-9), (lp, expected)
    monkeypatch.setenv("BAYES_SACRAL_PREBUILT", "0")
    assert compiled._candidates(model, compiled.structure_key(model)) == [
        (compiled.structure_key(model), tmp_path / "models" / f"{compiled.structure_key(model)}.bscm", True)]

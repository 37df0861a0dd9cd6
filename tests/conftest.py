"""Shared fixtures: the published study, the synthetic patient-level files, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

# Tests compute every diagnostic, LOO and predictive check (the persisted-memo tests switch this back on for themselves):
# a result remembered on disk by an earlier session must not hide what a test checks. Worker processes inherit it.
os.environ.setdefault("BAYES_SACRAL_RESULT_CACHE", "0")


@pytest.fixture(scope="session")
def study():
    from bayes_sacral.study import load_study

    return load_study()


@pytest.fixture(scope="session")
def card(study):
    return study.card


@pytest.fixture(scope="session")
def published(study):
    return study.summary


@pytest.fixture
def data_dir() -> Path:
    return DATA


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``bayes-sacral ARGS`` in-process; returns exit code, stdout and stderr."""
    from bayes_sacral.cli import main

    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def fresh_python(tmp_path):
    """Run Python code in a fresh interpreter (what a new process imports and costs), with its own compile cache under
    ``tmp_path`` (``own_cache=False``: the test run's shared one, where a model compiled earlier in the test module is
    already kept); ``env``: more environment variables. Asserts that it exits 0 (its stderr in the message) and returns
    the completed process."""

    def run(code: str, own_cache: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, **({"BAYES_SACRAL_CACHE": str(tmp_path / "cache")} if own_cache else {}), **(env or {})}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        return r

    return run


def _hypothesis_profiles():
    import os

    from hypothesis import settings

    # CI runs derandomized so a landing never depends on the draw; locally examples vary run to run.
    settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
    settings.register_profile("dev", deadline=None)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")


_hypothesis_profiles()

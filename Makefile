# bayes_sacral: two commands on a fresh clone:  make reanalysis   and   make test
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/bayes-sacral
STAMP := $(VENV)/.bs-installed
# python3.12 is on every machine here, sometimes only behind pyenv: take the first interpreter that really is 3.12.
PYTHON312 ?= $(shell for p in python3.12 $$(ls -d /root/.pyenv/versions/3.12*/bin/python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null) /usr/local/bin/python3.12 /usr/bin/python3.12; do \
  if $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then echo $$p; break; fi; done)
PYTEST_WORKERS ?= 2

.PHONY: help setup bytecode browser reanalysis test validate bench lint lock prebuilt clean

help:
	@echo "make reanalysis  set up .venv (if missing) and run the reanalysis of the published study"
	@echo "make test        set up .venv (if missing) and run the test suite (fast checks)"
	@echo "make validate    heavy validation: full simulation-based calibration and slow checks"
	@echo "make bench       benchmarks (ratios against a baseline in the same run)"
	@echo "make lint        ruff"
	@echo "make prebuilt    recompile the bundled configs' model structures shipped with the package (after a model change)"

# The lock is installed by uv (pinned in the lock itself): it downloads in parallel and byte-compiles on every core,
# 21 s where pip took 82 s on one core of a 2-core machine (11:35, empty caches; the same files installed). Where uv
# cannot be had or cannot reach the package index (it does not read pip's configuration), pip installs the lock instead.
$(STAMP): pyproject.toml requirements.lock
	@test -n "$(PYTHON312)" || { echo "error: no Python 3.12 interpreter found (set PYTHON312=/path/to/python3.12)"; exit 1; }
	@test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	@if $(PY) -m pip install --quiet --disable-pip-version-check "$$(grep -i '^uv==' requirements.lock)" \
	    && $(VENV)/bin/uv pip install --quiet --python $(PY) --compile-bytecode -r requirements.lock; then :; else \
	  echo "note: uv could not install requirements.lock; installing it with pip instead (slower)"; \
	  $(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock; fi
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

setup: $(STAMP)

# The package is installed editable, so pip does not byte-compile it as it does installed packages; where Python is
# told not to write bytecode (PYTHONDONTWRITEBYTECODE), every process would compile our modules again (about 0.1 s).
# compileall writes only what is missing or older than its source; a stale file is never used (Python checks).
bytecode: $(STAMP)
	@$(PY) -m compileall -q src

reanalysis: $(STAMP) bytecode
	$(CLI) reanalyze

# The report test renders report.html in headless Chromium (Debian packages chromium, chromium-driver).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
	    || echo "note: Chromium could not be installed; the headless-browser report test will be skipped"; }

test: $(STAMP) bytecode browser
	$(PY) -m pytest -m "not slow" -n $(PYTEST_WORKERS) --dist loadfile -q

validate: $(STAMP) bytecode
	$(PY) -m pytest -m slow -n $(PYTEST_WORKERS) --dist loadfile -q

bench: $(STAMP) bytecode
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

# Recompile the bundled configs' model structures for any x86-64 CPU (src/bayes_sacral/prebuilt_models/, read by
# every fit before its own cache): after a change to a model kind, the lock or the package version. Empty caches, so
# that nothing host-specific is reused (see bayes_sacral.prebuilt).
prebuilt: $(STAMP) bytecode
	@T=$$(mktemp -d) && trap 'rm -rf "$$T"' EXIT && \
	  NUMBA_CPU_NAME=generic BAYES_SACRAL_PREBUILT=0 BAYES_SACRAL_CACHE=$$T/cache PYTENSOR_FLAGS=base_compiledir=$$T/pytensor \
	  $(PY) -m bayes_sacral.prebuilt configs

# Regenerate the pinned lock from the current .venv (after a deliberate dependency change).
lock:
	$(PY) -m pip freeze --all --exclude-editable | grep -v -E '^(pip|bayes[-_]sacral)==' > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

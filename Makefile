# tunewatch developer entry points. Each target sets up .venv by itself.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast lint bench clean system-deps lock lock-peers peers

# Debian packages used by integration tests (real redis-server, Alertmanager, promtool, Chromium), as
# command:package pairs; installed when root, otherwise the tests that need them are skipped.
SYSTEM_DEPS := redis-server:redis-server prometheus-alertmanager:prometheus-alertmanager promtool:prometheus \
	chromium:chromium
system-deps:
	@missing=""; for pair in $(SYSTEM_DEPS); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "note: missing$$missing: integration tests that need them will be skipped"; fi; \
	fi

# Installs come from the lock files in requirements/ (every version pinned with hashes); `make lock` refreshes them.
LOCK_CMD = $(VENV)/bin/uv pip compile pyproject.toml requirements/build.in --universal --python-version 3.11 \
	--generate-hashes --quiet

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# $(1): lock file, $(2): stamp
define install_lock
	$(PIP) install -q --require-hashes -r $(1)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@touch $(2)
endef

$(VENV)/.run-installed: requirements/run.lock pyproject.toml | $(VENV)/bin/python
	$(call install_lock,requirements/run.lock,$@)

$(STAMP): requirements/dev.lock pyproject.toml | $(VENV)/bin/python
	$(call install_lock,requirements/dev.lock,$@)

$(VENV)/.bench-installed: requirements/bench.lock pyproject.toml | $(VENV)/bin/python
	$(call install_lock,requirements/bench.lock,$@)

## Re-resolve every dependency (newest allowed by pyproject.toml) into the lock files.
lock: | $(VENV)/bin/python
	$(PIP) install -q uv
	$(LOCK_CMD) --extra server -o requirements/run.lock
	$(LOCK_CMD) --extra all --extra dev -o requirements/dev.lock
	$(LOCK_CMD) --extra all --extra dev --extra bench -o requirements/bench.lock

## The bench-only peers (ADTK, statsmodels, PyOD, River) in a lock of their own that CI never installs.
lock-peers: | $(VENV)/bin/python
	$(PIP) install -q uv
	$(LOCK_CMD) --extra all --extra dev --extra bench --extra peers -o requirements/peers.lock

$(VENV)/.peers-installed: requirements/peers.lock pyproject.toml | $(VENV)/bin/python
	$(call install_lock,requirements/peers.lock,$@)

setup: $(STAMP)

## Run the product on embedded defaults: service + simulated live stream, alerts in the console (installs only
## the library and the `server` extra: requirements/run.lock).
run: $(VENV)/.run-installed
	$(VENV)/bin/tunewatch run

## Lint, type-check and run the whole test suite.
test: $(STAMP) system-deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

## Only the fast tests (no real servers, no long simulations).
test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -m "not slow and not integration"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

bench: $(VENV)/.bench-installed
	$(PY) bench/replay.py

## tunewatch's default against production-grade peers on the independent telemetry corpus (development seeds).
peers: $(VENV)/.peers-installed
	$(PY) bench/telemetry_peers.py --seeds 1,2,3,4,5

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

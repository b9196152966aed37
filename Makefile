# tunewatch developer entry points. Each target sets up .venv by itself.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast lint bench clean system-deps

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

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

## Run the product on embedded defaults: service + simulated live stream, alerts in the console.
run: $(STAMP)
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

bench: $(STAMP)
	$(PIP) install -q -e '.[dev,bench]'
	$(PY) bench/replay.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

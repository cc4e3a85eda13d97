# Konsil: `make run` serves the app with demo data, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint typecheck pytest chaos bench bench-profile bench-precheck screenshots lock clean

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	mkdir -p var
	$(BIN)/python -m app.cli migrate
	$(BIN)/python -m app.cli seed-demo
	KONSIL_BASE_URL=$${KONSIL_BASE_URL:-http://$(HOST):$(PORT)} $(BIN)/python -m app.cli demo-consult
	KONSIL_LOG_JSON=$${KONSIL_LOG_JSON:-false} \
	KONSIL_BASE_URL=$${KONSIL_BASE_URL:-http://$(HOST):$(PORT)} \
	KONSIL_ALLOWED_ORIGINS=$${KONSIL_ALLOWED_ORIGINS:-'["http://$(HOST):$(PORT)","http://localhost:$(PORT)"]'} \
	$(BIN)/uvicorn app.main:create_app --factory --host $(HOST) --port $(PORT) --no-access-log \
		--ws websockets-sansio --loop uvloop --ws-per-message-deflate false

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# The test OpenID provider of the single sign-on tests (tests/oidc, from the npm registry).
tests/oidc/node_modules/.package-lock.json: tests/oidc/package-lock.json
	npm ci --prefix tests/oidc --no-audit --no-fund --ignore-scripts

# axe-core for the browser tests' accessibility checks (tests/browser/axe.py).
tests/browser/node_modules/.package-lock.json: tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --ignore-scripts

# The slowest tests are listed at the end, to keep the CI run well under its time limit.
pytest: $(VENV)/.installed-dev tests/oidc/node_modules/.package-lock.json tests/browser/node_modules/.package-lock.json
	$(BIN)/pytest --durations=30

test: lint typecheck pytest

# The fault tests (tests/chaos): real instances behind HAProxy, a private Redis, PostgreSQL;
# rolling restart, Redis down, kill -9, PostgreSQL restart, network cuts (root, iproute2).
# Writes the measured figures into docs/reliability.md.
chaos: $(VENV)/.installed-dev
	KONSIL_CHAOS_REPORT=docs/reliability.md $(BIN)/pytest -m chaos tests/chaos

# Refresh the README's screenshots (docs/screenshots) from the browser tests.
screenshots: $(VENV)/.installed-dev tests/browser/node_modules/.package-lock.json
	KONSIL_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -m browser tests/browser

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

# Flame graphs of the relay under load (docs/profiles/, see docs/performance.md).
bench-profile: $(VENV)/.installed-dev
	$(BIN)/python -m bench.profile --target konsil
	$(BIN)/python -m bench.profile --target baseline

# Concurrent connection checks against one process's echo peer, beside relay load (~6 minutes,
# docs/performance.md "Concurrent connection checks"); then the browser check's wall time.
bench-precheck: $(VENV)/.installed-dev
	$(BIN)/python -m bench.precheck_load
	$(BIN)/python -m bench.precheck_wall --runs 5

# Re-resolve and pin every dependency (run after changing pyproject.toml).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install -q --upgrade pip && .lockenv/bin/pip install -q -e '.[dev]'
	.lockenv/bin/pip freeze --exclude-editable | grep -v '^konsil' > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

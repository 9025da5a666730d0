# The two commands of the README: `make up` runs everything, `make test` runs every check.
# Both install what they need first (a virtualenv, Monaco from npm, Chromium for browser tests).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
AI_SDK_STAMP := tests/ai_sdk/node_modules/.installed
DS_STAMP := tests/durable_streams/node_modules/.installed

.PHONY: up test check lint typecheck pytest install web browser promtool haproxy clean lock

up: $(PY_STAMP) $(WEB_STAMP)
	$(BIN)/tokenrelay up

test: check

check: lint typecheck pytest

install: $(PY_STAMP) $(WEB_STAMP)

# constraints.txt pins every Python dependency to the versions the suite last passed with,
# so a fresh clone installs what CI tested; `make lock` refreshes it from the current venv.
$(PY_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(WEB_STAMP): web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund
	touch $@

web: $(WEB_STAMP)

# The AI SDK tests drive the gateway with the real `ai` npm package, pinned by
# tests/ai_sdk/package-lock.json (docs/ai-sdk.md).
$(AI_SDK_STAMP): tests/ai_sdk/package.json tests/ai_sdk/package-lock.json
	npm ci --prefix tests/ai_sdk --no-audit --no-fund
	touch $@

# The Durable Streams gate: the official conformance suite and @durable-streams/client, pinned
# by tests/durable_streams/package-lock.json (docs/durable-streams.md).
$(DS_STAMP): tests/durable_streams/package.json tests/durable_streams/package-lock.json
	npm ci --prefix tests/durable_streams --no-audit --no-fund
	touch $@

# Browser tests drive Debian's Chromium through Playwright (never Playwright's own download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else \
	    echo "browser tests need Chromium: run 'sudo apt-get install chromium fonts-noto-cjk', then 'make test' again" >&2; exit 1; \
	  fi; }

lint: $(PY_STAMP)
	$(BIN)/ruff check service worker simulator client tests bench
	$(BIN)/ruff format --check service worker simulator client tests bench

typecheck: $(PY_STAMP)
	$(BIN)/mypy --strict service worker simulator client tests bench

# The ops tests check deploy/prometheus/rules.yml with promtool (Debian's `prometheus` package).
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else \
	    echo "the ops tests need promtool: run 'sudo apt-get install prometheus', then 'make test' again" >&2; exit 1; \
	  fi; }

# The deploy tests run the cluster profile's HAProxy config through a real haproxy (Debian's).
haproxy:
	@command -v haproxy >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; \
	  else \
	    echo "the deploy tests need haproxy: run 'sudo apt-get install haproxy', then 'make test' again" >&2; exit 1; \
	  fi; }

pytest: $(PY_STAMP) $(WEB_STAMP) $(AI_SDK_STAMP) $(DS_STAMP) browser promtool haproxy
	$(BIN)/pytest

lock: $(PY_STAMP)
	$(BIN)/python -m pip install --quiet --upgrade -e '.[dev]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^tokenrelay' > constraints.txt

clean:
	rm -rf $(VENV) web/node_modules tests/ai_sdk/node_modules tests/durable_streams/node_modules .mypy_cache .ruff_cache .pytest_cache test-output

# The benchmark suite with its peers (Nchan, resumable-stream): bench/README.md.
# `make bench BENCH_ARGS=--quick` for a smoke run of about four minutes.
.PHONY: bench
bench: $(PY_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# docs/configuration.md is generated from the Settings model (tests/test_configuration_doc.py
# fails when it is stale): run this after changing a setting.
.PHONY: docs
docs: $(PY_STAMP)
	$(BIN)/python -m service.cli.settings_doc > docs/configuration.md.tmp
	mv docs/configuration.md.tmp docs/configuration.md

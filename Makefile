# Zorgnet Hub. `make run` and `make test` each set up .venv themselves on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
HUB_PORT ?= 8080
PGO_PORT ?= 8081
ADMIN_PORT ?= 8082
#: Where the browser tests find axe-core (npm), installed by `make browser-deps`.
E2E_DIR := .e2e
AXE_JS  := $(E2E_DIR)/node_modules/axe-core/axe.min.js
AXE_VERSION := 4.14.1

.PHONY: run test test-sqlite test-pg bench bench-full lint clean venv fuzz fuzz-deep browser-deps conformance

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[postgres,dev]'
	@touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[postgres,dev,bench]'
	@touch $(BENCH_STAMP)

venv: $(STAMP)

## Start the hub on the embedded default (SQLite under ./var), with the demo network when empty.
run: $(STAMP)
	@mkdir -p var
	@echo "Zorgnet Hub: FHIR base http://127.0.0.1:$(HUB_PORT)/fhir"
	@echo "  a token:   $(VENV)/bin/hub token --as org:00012345:practitioner:900001111   (see the README tour)"
	@echo "  then:      curl -H \"Authorization: Bearer \$$TOKEN\" http://127.0.0.1:$(HUB_PORT)/fhir/Patient"
	@echo "Mijn Zorgnet (PGO): http://127.0.0.1:$(PGO_PORT)  (log in with BSN 999993653; mantelzorger: marieke)"
	@echo "Admin console:      http://127.0.0.1:$(ADMIN_PORT)  (token: $(VENV)/bin/hub token --as admin)"
	@HUB_PORT=$(HUB_PORT) PGO_PORT=$(PGO_PORT) ADMIN_PORT=$(ADMIN_PORT) VENV=$(VENV) ./scripts/run-apps.sh & apps=$$!; \
	trap 'kill $$apps 2>/dev/null; wait $$apps' EXIT INT TERM; \
	HUB_DEMO=true HUB_PORT=$(HUB_PORT) $(VENV)/bin/hub serve

## Debian's Chromium (never a downloaded browser) and axe-core for the end-to-end tests of apps/; idempotent.
browser-deps: $(STAMP)
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; }
	@test -f $(AXE_JS) || npm install --silent --no-audit --no-fund --prefix $(E2E_DIR) axe-core@$(AXE_VERSION)

## Run the whole test suite against SQLite and PostgreSQL (a throwaway cluster if none is running),
## as two processes side by side (scripts/test.sh).
test: $(STAMP) browser-deps
	@pg_url="$$(./scripts/ensure-postgres.sh)" || { echo "make test: PostgreSQL is required and could not be started" >&2; exit 1; }; \
	./scripts/test.sh "$$pg_url" $(PYTEST_ARGS)

test-sqlite: $(STAMP) browser-deps
	HUB_TEST_BACKENDS=sqlite $(VENV)/bin/pytest -q $(PYTEST_ARGS)

## Schemathesis on both databases beyond the bounded run in `make test`: `fuzz` covers every resource
## type of /openapi.json (FUZZ_EXAMPLES per operation and mode), `fuzz-deep` the care types with many
## examples each. Thousands of cases either way.
FUZZ_EXAMPLES ?= 1
fuzz: $(STAMP)
	@pg_url="$$(./scripts/ensure-postgres.sh)" || { echo "make fuzz: PostgreSQL is required" >&2; exit 1; }; \
	HUB_TEST_PG_ADMIN_URL="$$pg_url" HUB_FUZZ_TYPES=all HUB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	$(VENV)/bin/pytest -q -s -p no:cacheprovider tests/api/test_schemathesis.py

fuzz-deep: $(STAMP)
	@pg_url="$$(./scripts/ensure-postgres.sh)" || { echo "make fuzz-deep: PostgreSQL is required" >&2; exit 1; }; \
	HUB_TEST_PG_ADMIN_URL="$$pg_url" HUB_FUZZ_TYPES=deep HUB_FUZZ_EXAMPLES=10 \
	$(VENV)/bin/pytest -q -s -p no:cacheprovider tests/api/test_schemathesis.py

bench: $(BENCH_STAMP)
	@pg_url="$$(./scripts/ensure-postgres.sh)"; HUB_BENCH_PG_ADMIN_URL="$$pg_url" $(PY) -m bench run --size small

bench-full: $(BENCH_STAMP)
	@pg_url="$$(./scripts/ensure-postgres.sh)"; HUB_BENCH_PG_ADMIN_URL="$$pg_url" $(PY) -m bench run --size full

## Nictiz's eOverdracht 4.0 qualification TestScripts against the hub and the wijkverpleging adapter (not part
## of `make test`): CONFORMANCE_SCRIPTS names their eOverdracht-4.0-Test folder (not in this repository).
CONFORMANCE_SCRIPTS ?=
conformance: $(STAMP)
	$(PY) -m scripts.conformance.eoverdracht $(if $(CONFORMANCE_SCRIPTS),--scripts "$(CONFORMANCE_SCRIPTS)") $(CONFORMANCE_ARGS)

## ruff (lint and format) and mypy (types); CI runs this too. `ruff format .` fixes the format.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache

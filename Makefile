# Zorgnet Hub. `make run` and `make test` each set up .venv themselves on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
HUB_PORT ?= 8080

.PHONY: run test test-sqlite test-pg bench bench-full lint clean venv

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
	HUB_DEMO=true HUB_PORT=$(HUB_PORT) $(VENV)/bin/hub serve

## Run the whole test suite against SQLite and PostgreSQL (a throwaway cluster if none is running).
test: $(STAMP)
	@pg_url="$$(./scripts/ensure-postgres.sh)" || { echo "make test: PostgreSQL is required and could not be started" >&2; exit 1; }; \
	HUB_TEST_PG_ADMIN_URL="$$pg_url" $(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-sqlite: $(STAMP)
	HUB_TEST_BACKENDS=sqlite $(VENV)/bin/pytest -q $(PYTEST_ARGS)

bench: $(BENCH_STAMP)
	@pg_url="$$(./scripts/ensure-postgres.sh)"; HUB_BENCH_PG_ADMIN_URL="$$pg_url" $(PY) -m bench run --size small

bench-full: $(BENCH_STAMP)
	@pg_url="$$(./scripts/ensure-postgres.sh)"; HUB_BENCH_PG_ADMIN_URL="$$pg_url" $(PY) -m bench run --size full

## ruff (lint) and mypy (types); CI runs this too.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache

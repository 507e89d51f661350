# The two commands of README.md's quick start:  `make run`  and  `make test`.
# Everything else here is what they need on a fresh machine: system packages, the venv, the jars.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := postgresql openjdk-17-jre-headless maven poppler-utils fonts-nanum
PYTEST := $(BIN)/pytest -q -p no:cacheprovider
# the tests that store data: run a second time on TimescaleDB (their own test stack, .kcloud/test-timescale)
STORAGE_TESTS := tests/integration/db tests/integration/streams tests/integration/dashboards \
  tests/integration/reports tests/integration/bench tests/reliability/test_rel_worker_kills.py \
  tests/reliability/test_rel_ledger_tamper.py tests/reliability/test_rel_database_outage.py \
  tests/reliability/test_rel_malformed_flood.py tests/reliability/test_rel_database_roles.py
# TimescaleDB for the test machines (a folder beside the clone; see its README.md)
TIMESCALE_INSTALL := ../shared/timescaledb/install.sh
# its build needs this PostgreSQL 15 minor release or newer (older servers lack symbols it links against)
PG15_MIN := 15.20
TIMESCALE_LIB := /usr/lib/postgresql/*/lib/timescaledb.so

.PHONY: run test test-plain test-timescale setup system-deps timescaledb lint typecheck unit down clean help bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: setup  ## the main job: start Kafka + PostgreSQL, migrate, run collector, stream worker and gateway for a minute
	$(BIN)/kcloud demo --duration 60
	$(BIN)/kcloud infra status

test: setup lint typecheck  ## ruff, mypy --strict, the whole suite on plain PostgreSQL, the storage tests on TimescaleDB
	$(MAKE) --no-print-directory test-plain
	$(MAKE) --no-print-directory test-timescale

test-plain: setup  ## pytest, the whole suite (unit + integration) with KCLOUD_TIMESCALE=off
	KCLOUD_TIMESCALE=off $(PYTEST)

test-timescale: setup  ## pytest, the storage tests (STORAGE_TESTS) with KCLOUD_TIMESCALE=on; skipped without TimescaleDB
	@if ls $(TIMESCALE_LIB) >/dev/null 2>&1; then \
	  echo "KCLOUD_TIMESCALE=on $(PYTEST) $(STORAGE_TESTS)"; \
	  KCLOUD_TIMESCALE=on $(PYTEST) $(STORAGE_TESTS); \
	elif [ "$${CI:-}" = true ]; then \
	  echo "test-timescale: FAILED: TimescaleDB is not installed for PostgreSQL (no timescaledb.so), and CI must" \
	    "run the storage tests on it; see the messages of the system-deps step above" >&2; \
	  exit 1; \
	else \
	  echo "test-timescale: SKIPPED: the storage tests did not run on TimescaleDB, because TimescaleDB is not" \
	    "installed for PostgreSQL (no $(TIMESCALE_LIB); $(TIMESCALE_INSTALL) installs it" \
	    "where that folder exists); the whole suite ran on plain PostgreSQL"; \
	fi

bench: setup  ## the end-to-end benchmark on its own Kafka + PostgreSQL (figures for BENCHMARKS.md)
	$(BIN)/python -m bench.e2e

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy kcloud collectors gateway streams dashboards reports console infra bench

setup: system-deps $(STAMP)  ## system packages, virtualenv and pinned dependencies

system-deps:
	@missing=""; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	  command -v mvn >/dev/null || missing="$$missing maven"; \
	  command -v pdftoppm >/dev/null || missing="$$missing poppler-utils"; \
	  ls /usr/share/fonts/truetype/nanum/NanumGothic.ttf >/dev/null 2>&1 || missing="$$missing fonts-nanum"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing system packages:$$missing"; \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	  fi
	@$(MAKE) --no-print-directory timescaledb

# TimescaleDB where ../shared/timescaledb is present: a new enough postgresql-15, then its install.sh
# (idempotent). Without it: a note, and the TimescaleDB tests are skipped; under CI=true: an error.
timescaledb:
	@fail() { \
	  if [ "$${CI:-}" = true ]; then echo "timescaledb: ERROR: $$1 (CI=true: the TimescaleDB tests must run)" >&2; exit 1; fi; \
	  echo "timescaledb: $$1; the TimescaleDB-mode tests will be skipped"; exit 0; }; \
	if [ ! -x "$(TIMESCALE_INSTALL)" ] && [ ! -f "$(TIMESCALE_INSTALL)" ]; then \
	  ls $(TIMESCALE_LIB) >/dev/null 2>&1 && exit 0; \
	  fail "$(TIMESCALE_INSTALL) not found and TimescaleDB not installed"; \
	fi; \
	SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	have=$$(dpkg-query -W -f='$${Version}' postgresql-15 2>/dev/null || true); \
	if [ -z "$$have" ] || dpkg --compare-versions "$$have" lt "$(PG15_MIN)"; then \
	  echo "timescaledb: postgresql-15 $${have:-missing} is older than $(PG15_MIN), which TimescaleDB needs: upgrading"; \
	  { $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q postgresql-15; } \
	    || fail "could not install postgresql-15 >= $(PG15_MIN)"; \
	  have=$$(dpkg-query -W -f='$${Version}' postgresql-15 2>/dev/null || true); \
	  dpkg --compare-versions "$$have" ge "$(PG15_MIN)" \
	    || fail "postgresql-15 is $$have after the upgrade, TimescaleDB needs $(PG15_MIN) or newer"; \
	fi; \
	bash "$(TIMESCALE_INSTALL)" || fail "$(TIMESCALE_INSTALL) failed"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

down:  ## stop the local Kafka and PostgreSQL
	$(BIN)/kcloud infra down

clean: down  ## stop everything and delete the local state (data, logs, jars)
	rm -rf .kcloud

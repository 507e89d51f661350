# The two commands of README.md's quick start:  `make run`  and  `make test`.
# Everything else here is what they need on a fresh machine: system packages, the venv, the jars.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := postgresql openjdk-17-jre-headless maven poppler-utils fonts-nanum

.PHONY: run test setup system-deps lint typecheck unit down clean help bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: setup  ## the main job: start Kafka + PostgreSQL, migrate, run collector, stream worker and gateway for a minute
	$(BIN)/kcloud demo --duration 60
	$(BIN)/kcloud infra status

test: setup lint typecheck  ## the whole test suite: ruff, mypy --strict, pytest (unit + integration)
	$(BIN)/pytest -q -p no:cacheprovider

bench: setup  ## the end-to-end benchmark on its own Kafka + PostgreSQL (figures for BENCHMARKS.md)
	$(BIN)/python -m bench.e2e

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy kcloud collectors streams infra dashboards reports bench

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

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

down:  ## stop the local Kafka and PostgreSQL
	$(BIN)/kcloud infra down

clean: down  ## stop everything and delete the local state (data, logs, jars)
	rm -rf .kcloud

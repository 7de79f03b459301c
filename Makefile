# newsalert: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help venv system-deps lint typecheck schemas test test-unit test-integration bench demo kafka-up kafka-down clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project with its dev extras

system-deps: ## install the Debian tools the tests use (kcat), where missing
	@command -v kcat >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq kcat; }
	@command -v java >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless; }
	@command -v mvn >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq maven; }

lint: $(STAMP) ## ruff, formatting, import contracts, schema drift
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m schemas.export --check

typecheck: $(STAMP) ## mypy --strict on services/ and schemas/
	$(VENV)/bin/mypy

schemas: $(STAMP) ## rewrite schemas/json from the models
	$(PY) -m schemas.export

test-unit: $(STAMP) ## unit tests only (no broker, seconds)
	$(VENV)/bin/pytest tests/unit -q

test-integration: $(STAMP) system-deps ## integration tests against a real local Kafka broker
	$(VENV)/bin/pytest tests/integration -q

test: $(STAMP) system-deps lint typecheck ## everything CI runs: lint, types, unit and integration tests
	$(VENV)/bin/pytest -q

bench: $(STAMP) ## benchmarks; numbers go to tests/bench/results/
	$(PY) -m tests.bench.engine
	$(PY) -m tests.bench.stories

demo: $(STAMP) ## (coming in issue 8) for now: the offline dry run of the seed watchlist
	@echo "The full demo (Kafka, the three services, a webhook receiver) is coming: issue 8."
	@echo "Meanwhile, the seed watchlist run offline over the seed articles:"
	$(VENV)/bin/newsalert match --rules seeds/watchlist.yaml --input seeds --summary >/dev/null

kafka-up: $(STAMP) system-deps ## start the local broker on 127.0.0.1:9092 in the background
	$(VENV)/bin/newsalert kafka up

kafka-down: $(STAMP) ## stop the local broker
	$(VENV)/bin/newsalert kafka down

clean: ## remove the virtualenv and caches (not the Kafka jar cache)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# newsalert: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help venv system-deps lint typecheck schemas check-deploy test test-unit test-integration bench faults demo kafka-up kafka-down clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

NATIVE := services/matcher/native
NATIVE_SOURCES := $(NATIVE)/Cargo.toml $(NATIVE)/Cargo.lock $(NATIVE)/pyproject.toml $(NATIVE)/newsalert_native.pyi $(wildcard $(NATIVE)/src/*.rs)

# The matcher's native core is a Rust crate (pyo3, built by maturin; crates from crates.io).
$(STAMP): pyproject.toml $(NATIVE_SOURCES)
	@command -v cargo >/dev/null || { echo "The matcher's native core needs Rust (cargo >= 1.74): https://rustup.rs" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q ./$(NATIVE)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project with its dev extras

system-deps: ## install the Debian tools the tests use (kcat, prometheus, docker-compose), where missing
	@command -v kcat >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq kcat; }
	@# prometheus brings promtool too; no recommends (node-exporter), and the tests start their own.
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }
	@command -v docker-compose >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends docker-compose; }
	@command -v java >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless; }
	@command -v mvn >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq maven; }

lint: $(STAMP) ## ruff, formatting, import contracts, schema drift; rustfmt and clippy on the native core
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd $(NATIVE) && cargo fmt --check && cargo clippy --quiet --release -- -D warnings
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

check-deploy: system-deps ## promtool on the Prometheus config, alert rules and their tests; docker-compose config
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml
	docker-compose -f docker-compose.yml config --quiet

test: $(STAMP) system-deps lint typecheck check-deploy ## everything CI runs: lint, types, deploy files, unit and integration tests
	$(VENV)/bin/pytest -q

bench: $(STAMP) ## benchmarks; numbers go to tests/bench/results/
	$(PY) -m tests.bench.engine
	$(PY) -m tests.bench.stories
	$(PY) -m tests.bench.matcher_worker
	$(PY) -m tests.bench.notifier
	$(PY) -m tests.bench.end_to_end

faults: $(STAMP) system-deps ## fault injection at full size: 5,000 BBC articles, 1,000 rules
	NEWSALERT_FAULT_ARTICLES=5000 $(VENV)/bin/pytest tests/integration/test_faults.py -q -s

demo: $(STAMP) system-deps ## the seeds end to end: Kafka, the three services, a webhook receiver (ARGS=--keep-running)
	$(PY) -m services.demo $(ARGS)

kafka-up: $(STAMP) system-deps ## start the local broker on 127.0.0.1:9092 in the background
	$(VENV)/bin/newsalert kafka up

kafka-down: $(STAMP) ## stop the local broker
	$(VENV)/bin/newsalert kafka down

clean: ## remove the virtualenv and caches (not the Kafka jar cache)
	rm -rf $(VENV) $(NATIVE)/target .mypy_cache .ruff_cache .pytest_cache .hypothesis

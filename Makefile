# One command serves, one command tests; each installs what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check venv system-deps kafka-jars postgres bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(VENV)/bin/itsm serve

# Java and Maven fetch and run the Kafka broker; PostgreSQL backs the PostgreSQL tests.
system-deps:
	bash infra/local_servers/scripts/ensure-java-maven.sh
	bash infra/local_servers/scripts/ensure-postgres.sh

kafka-jars: venv system-deps
	$(PY) -m infra.local_servers.kafka_from_jars fetch

# Static checks first (lint, format, the layer rules of [tool.importlinter], types): a broken
# one fails the run before the slower tests start.
# The other tiers, in-process, share the machine's cores; the ones with real servers
# (Kafka, PostgreSQL) and timed recoveries run one test at a time, alone.
SERVER_TIERS := tests/integration tests/e2e tests/faults

test: venv system-deps kafka-jars check
	$(PY) -m pytest -n 2 tests $(SERVER_TIERS:%=--ignore=%)
	$(PY) -m pytest $(SERVER_TIERS)

check: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: venv kafka-jars
	$(PY) bench/write_path.py
	$(PY) bench/projection.py

clean:
	rm -rf $(VENV) var .pytest_cache

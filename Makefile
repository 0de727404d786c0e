# The whole set-up is two commands: `make run` and `make test` (README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
export PYTHONPATH := $(CURDIR)

.PHONY: setup run test test-clock lint typecheck unit bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

## Migrate the embedded database, load the demo district, start the sandbox, worker and API.
run: setup
	PORT=$(PORT) bash scripts/run-local

## Lint, type-check and run the whole suite (SQLite and PostgreSQL, database queue and RabbitMQ).
test: setup lint typecheck unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy api

unit: setup
	$(BIN)/pytest -q $(PYTEST_ARGS)

## The suite at other hours and zones (issue 17): just after Beijing midnight (16:30 UTC, when the
## UTC and Beijing dates differ) and just before it, with machine zones on both sides of Beijing.
test-clock: setup
	bash scripts/test-clock 00:30 America/Los_Angeles $(CLOCK_PYTEST_ARGS)
	bash scripts/test-clock 23:30 Pacific/Kiritimati -k "not postgresql and not rabbitmq" $(CLOCK_PYTEST_ARGS)

## Benchmarks with ratios against baselines measured in the same run (bench/README.md).
bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf instance/*.sqlite3* .pytest_cache .mypy_cache .ruff_cache

# The whole set-up is two commands: `make run` and `make test` (README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
export PYTHONPATH := $(CURDIR)

.PHONY: fonts setup run test test-clock lint typecheck unit bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

# The CJK font every PDF embeds (api/documents/pdf.py): reportlab needs TrueType outlines,
# which Debian's fonts-noto-cjk (CFF) lacks, so fonts-wqy-zenhei. Installed with apt when missing.
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

fonts:
	@test -f $(CJK_FONT) || { echo "installing fonts-wqy-zenhei (the CJK font receipts embed)"; \
	  $(SUDO) apt-get install -y --no-install-recommends fonts-wqy-zenhei >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update >/dev/null && \
	    $(SUDO) apt-get install -y --no-install-recommends fonts-wqy-zenhei >/dev/null; } || \
	  echo "WARNING: could not install fonts-wqy-zenhei: receipt PDFs answer 503 pdf_font_unavailable"; }

setup: $(STAMP) fonts

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

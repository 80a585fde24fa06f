# tuichat: `make demo` and `make test` work on a fresh clone (Python 3.11, Node 20).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install-dev install-demo clean screenshots bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# Stamp files record which extras are installed; they are redone when
# pyproject.toml changes.
$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

$(VENV)/.stamp-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[demo]'
	touch $@

# The matrix-js-sdk peer (Element's crypto stack) for the interoperability
# tests, installed exactly from its lockfile.
JS_PEER := tests/js/node_modules/.package-lock.json
$(JS_PEER): tests/js/package.json tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund

install-dev: $(VENV)/.stamp-dev
install-demo: $(VENV)/.stamp-demo

demo: install-demo
	$(BIN)/python -m tuichat demo

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint $(JS_PEER)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/js/node_modules

screenshots: install-dev
	$(BIN)/python tools/screenshots.py

# Speed and memory figures as ratios against baselines measured in the same
# run; writes benchmarks/results.json (see README, "Performance").
bench: install-dev
	$(BIN)/python -m benchmarks.run

# Two commands from a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip

# Install scorehouse and run the main job on the embedded defaults (SQLite + local folder).
demo: $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/scorehouse demo

# Install what the tests need (Python packages, and PostgreSQL when missing), then test.
test: $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	PYTHON=$(BIN)/python bash scripts/services.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

# Lint on its own (after `make demo` too): installs ruff, the one tool it needs.
lint: $(BIN)/python
	$(BIN)/pip install -q "ruff>=0.5"
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) scorehouse-demo .pytest_cache .mypy_cache

# Every target creates .venv on first use and installs the pinned requirements.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed

# Extra arguments for the client (and for the demo), e.g. make client ARGS="other-key --count 3"
ARGS ?=

.PHONY: demo scheduler worker client test lint clean bench bench-quick

demo: $(RUNTIME_STAMP)
	$(BIN)/python scripts/demo.py $(ARGS)

scheduler: $(RUNTIME_STAMP)
	$(BIN)/python -m local_scheduler $(ARGS)

worker: $(RUNTIME_STAMP)
	$(BIN)/python worker.py $(ARGS)

client: $(RUNTIME_STAMP)
	$(BIN)/python client.py $(ARGS)

# The read-only web dashboard for the scheduler at ENDPOINT, e.g. make dashboard ENDPOINT=http://localhost:8080
.PHONY: dashboard
dashboard: $(RUNTIME_STAMP)
	$(BIN)/python -m dashboard $(ARGS)

test: $(DEV_STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Benchmark: full run (several minutes) or quick (under a minute); ARGS are passed on.
bench: $(DEV_STAMP)
	$(BIN)/python -m bench $(ARGS)

bench-quick: $(DEV_STAMP)
	$(BIN)/python -m bench --quick $(ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@ $(RUNTIME_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The two entry points of the project: `make demo` and `make test`.
# Each creates the virtual environment in .venv on first use and installs what it needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv

$(STAMP): sdk/pyproject.toml server/pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e sdk -e 'server[postgres]' -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Start a CT server on SQLite and the stub LLM, run the instrumented example app, print a
# summary and keep the server up until Ctrl-C. DEMO_ARGS=--exit makes it stop at once.
demo: $(STAMP)
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/python examples/demo.py $(DEMO_ARGS)

# Run every test: SDK unit tests, server tests on SQLite and PostgreSQL, end-to-end tests.
test: $(STAMP)
	bash scripts/test.sh

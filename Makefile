# concord: `make demo` runs the nightly sync against the bundled sandbox; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# Two install levels: the slim default (the CLI and the demo) and everything the tests need
# (dev tools, Airflow, the bench charts). Each stamp is rebuilt when the pins change.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint typecheck install sandbox sandbox-down bench scale-demo clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP) -e '.[dev,airflow,charts]'
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/concord demo

sandbox: $(STAMP)
	$(BIN)/concord sandbox up

sandbox-down: $(STAMP)
	$(BIN)/concord sandbox down

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy concord connectors sandbox dags scripts bench

test: $(DEV_STAMP) lint typecheck
	$(BIN)/python -m pytest -q

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

scale-demo: $(DEV_STAMP)
	$(BIN)/python scripts/scale_demo.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

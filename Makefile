# The two commands a new user runs (see README): `make demo` and `make test`.
# Both create .venv with the system Python if it is missing and install the project into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: demo test lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	@mkdir -p $(DEMO_OUT)
	$(BIN)/alrp --version
	$(BIN)/alrp --help
	@echo "demo: outputs are in $(DEMO_OUT)/"

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: $(VENV)/.installed-run
	$(BIN)/python -m alrp_cli.cli.gendocs docs/cli.md

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache

# Set-up and tasks. `make demo` runs the main job, `make test` lints, type-checks and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.installed

.PHONY: venv demo quickstart test lint typecheck pytest bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[test,report,tfp,tfp-tf]"
	touch $(STAMP)

# The main job: the conformance suite (quick mode) on every installed backend, with reports.
demo: venv
	@mkdir -p reports
	$(BIN)/polysample validate --quick --json reports/validation.json --html reports/validation.html
	@echo "HTML report: $(CURDIR)/reports/validation.html (JSON: reports/validation.json)"

quickstart: venv
	$(BIN)/python examples/quickstart.py

lint: venv
	$(BIN)/ruff check src tests benchmarks examples

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: venv
	$(BIN)/python benchmarks/bench_backends.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache

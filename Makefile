# Set-up and tasks. `make demo` runs the main job, `make test` lints, type-checks and tests (the
# tests build the documentation site too).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.installed

.PHONY: venv demo quickstart test lint typecheck pytest docs bench clean

venv: $(STAMP)

# The package with every extra, then the example third-party plugin, installed as users install it
# (its entry point registers the backend "scipy"): the tests, `make demo` and the site see it.
$(STAMP): pyproject.toml constraints.txt examples/polysample-scipy/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[test,report,tfp,tfp-tf,docs,dask]"
	$(PIP) install -q --no-deps --no-build-isolation -e examples/polysample-scipy
	touch $(STAMP)

# The main job: the conformance suite (quick mode) on every installed backend, with reports,
# on a local Dask cluster of two worker processes (the report is the same as a serial run's).
# Plugins declare their known failures themselves: the example plugin's are added here.
demo: venv
	@mkdir -p reports
	$(BIN)/polysample validate --quick --workers 2 --expected-failures examples/polysample-scipy/known_failures.toml --json reports/validation.json --html reports/validation.html
	@echo "HTML report: $(CURDIR)/reports/validation.html (JSON: reports/validation.json)"

quickstart: venv
	$(BIN)/python examples/quickstart.py

lint: venv
	$(BIN)/ruff check src tests benchmarks examples docs

typecheck: venv
	$(BIN)/mypy

# Two worker processes (pytest-xdist); tests that share compiled programs run in one group.
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=20
pytest: venv
	$(PYTEST)

# The documentation site (MkDocs + Material + mkdocstrings) into site/; --strict turns every
# warning (a broken link or anchor, a docstring mkdocstrings cannot render) into an error.
# docs/hooks.py regenerates the plots and the example report when they are stale.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

# The lint, then the type check beside the tests: mypy (30 s on one core, cold) shares the two
# cores with pytest's workers instead of running before them, and its report is printed after
# pytest's. The documentation site is not built twice: tests/test_docs_site.py runs
# `mkdocs build --strict` (as `make docs` does) and then opens the pages in a browser.
test: lint
	@echo "$(BIN)/mypy (beside pytest; its report follows pytest's)"
	@$(BIN)/mypy > .typecheck.log 2>&1 & mypy=$$!; \
	$(PYTEST); tests=$$?; \
	wait $$mypy; types=$$?; echo "$(BIN)/mypy:"; cat .typecheck.log; rm -f .typecheck.log; \
	if [ $$types -ne 0 ]; then echo "make test: the type check failed"; fi; \
	[ $$tests -eq 0 ] && [ $$types -eq 0 ]

bench: venv
	@mkdir -p reports
	$(BIN)/polysample bench --json reports/bench.json

clean:
	rm -rf $(VENV) build dist site docs/assets/generated .pytest_cache .mypy_cache .ruff_cache

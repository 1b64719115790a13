# Set-up and everyday commands. Each target creates the virtual environment it needs.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
STAMP = $(VENV)/.edgeml-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml setup.py runtime/pyproject.toml converters/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e "runtime[all]" -e converters -e ".[converters,trainer,serve,dev]"
	touch $(STAMP)

demo: $(STAMP)  ## train on built-in digits, convert, evaluate and benchmark every artifact
	$(BIN)/edgeml quickstart -o demo-output

test: $(STAMP)  ## lint, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(STAMP)  ## the benchmark scripts under benchmarks/
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache

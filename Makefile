# Set-up and everyday commands. Each target creates the virtual environment it needs.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
STAMP = $(VENV)/.edgeml-installed

.PHONY: demo test test-runtime-only emulated-pi lint bench clean

$(STAMP): pyproject.toml setup.py runtime/pyproject.toml converters/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e "runtime[all]" -e converters -e ".[converters,trainer,serve,dev]"
	touch $(STAMP)

demo: $(STAMP)  ## train on built-in digits, convert, evaluate and benchmark every artifact
	$(BIN)/edgeml quickstart -o demo-output

test: $(STAMP)  ## lint, the whole test suite, then the runtime tests with only numpy + one backend
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(MAKE) test-runtime-only

emulated-pi: $(STAMP)  ## build (or reuse) the emulated Raspberry Pi 4 in ~/.cache/edgeml for tests/emulated
	$(BIN)/edgeml devices emulate rpi4

# tests/runtime must pass where only numpy and one backend are installed (as on a device).
test-runtime-only:
	for backend in litert onnx; do \
	  $(PYTHON) -m venv .venv-runtime-$$backend && \
	  .venv-runtime-$$backend/bin/pip install --quiet -e "runtime[$$backend]" pytest pytest-timeout && \
	  .venv-runtime-$$backend/bin/python -m pytest tests/runtime -q -p no:cacheprovider || exit 1; \
	done

bench: $(STAMP)  ## the benchmark scripts under benchmarks/
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .venv-runtime-* demo-output .pytest_cache .ruff_cache

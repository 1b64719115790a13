# Set-up and everyday commands. Each target creates the virtual environment it needs.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
STAMP = $(VENV)/.edgeml-installed

.PHONY: demo test test-runtime-only runtime-venv-test emulated-pi lint bench clean

$(STAMP): pyproject.toml setup.py runtime/pyproject.toml converters/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e "runtime[all]" -e "converters[tflm]" -e ".[converters,trainer,serve,dev]"
	touch $(STAMP)

demo: $(STAMP)  ## train on built-in digits, convert, evaluate and benchmark every artifact
	$(BIN)/edgeml quickstart -o demo-output

test: $(STAMP)  ## lint, the whole test suite, then the runtime tests with only numpy + one backend
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(MAKE) test-runtime-only

emulated-pi: $(STAMP)  ## build (or reuse) the emulated Raspberry Pi 4 in ~/.cache/edgeml for tests/emulated
	$(BIN)/edgeml devices emulate rpi4

# The runtime's tests (tests/runtime, and tests/serving: Predictor, HTTP and MQTT serving) must pass where
# only the runtime is installed: numpy, one backend and its `mqtt` extra, as on a device; on this Python
# and on the oldest one the runtime supports (3.9: pyenv's, or python3.9 on PATH). Tests there that need
# the other backend, edgeml or TensorFlow skip.
RUNTIME_TESTS = tests/runtime tests/serving
PYTHON39 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.9*/bin/python3.9) \
                        $(shell python3.9 -c 'import sys; print(sys.executable)' 2>/dev/null))

test-runtime-only:
	for backend in litert onnx; do \
	  $(MAKE) --no-print-directory runtime-venv-test PY=$(PYTHON) ENV=.venv-runtime-$$backend EXTRA=$$backend || exit 1; \
	done
	@if [ -z "$(PYTHON39)" ]; then echo "NOTE: no Python 3.9 on this machine: the runtime's 3.9 run is skipped"; \
	else for backend in litert onnx; do \
	  $(MAKE) --no-print-directory runtime-venv-test PY=$(PYTHON39) ENV=.venv-runtime-py39-$$backend EXTRA=$$backend \
	    EXPECT=3.9 || exit 1; \
	done; fi

# One runtime-only run: a fresh venv ENV made by PY with runtime[EXTRA,mqtt] and pytest; EXPECT checks the Python.
runtime-venv-test:
	$(PY) -m venv $(ENV)
	$(ENV)/bin/pip install --quiet -e "runtime[$(EXTRA),mqtt]" pytest pytest-timeout
	EDGEML_EXPECT_PYTHON=$(EXPECT) $(ENV)/bin/python -m pytest $(RUNTIME_TESTS) -q -p no:cacheprovider

bench: $(STAMP)  ## the benchmark scripts under benchmarks/, each run as `python -m benchmarks.NAME`
	for script in benchmarks/[!_]*.py; do $(BIN)/python -m benchmarks.$$(basename $$script .py) || exit 1; done

clean:
	rm -rf $(VENV) .venv-runtime-* demo-output .pytest_cache .ruff_cache

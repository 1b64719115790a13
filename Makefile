# Set-up and everyday commands. Each target creates the virtual environment it needs.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
STAMP = $(VENV)/.edgeml-installed

.PHONY: demo test onnx2tf-env system-deps test-system test-runtime-only runtime-venv-test emulated-pi lint mutation bench clean

$(STAMP): pyproject.toml setup.py runtime/pyproject.toml converters/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e "runtime[all]" -e "converters[tflm]" -e ".[converters,trainer,serve,dev,fleet]"
	touch $(STAMP)

demo: $(STAMP)  ## train on built-in digits, convert, evaluate and benchmark every artifact
	$(BIN)/edgeml quickstart -o demo-output

test: $(STAMP)  ## system packages (as root), lint, the whole test suite, then the runtime tests with only numpy + one backend
	@$(MAKE) --no-print-directory test-system
	@$(MAKE) --no-print-directory onnx2tf-env
	$(BIN)/ruff check .
	@$(BIN)/python -m pytest || { $(BIN)/python -m tests.support.system_deps summary; exit 1; }
	$(MAKE) test-runtime-only
	@$(BIN)/python -m tests.support.system_deps summary

# What the tests talk to: as root with apt-get (CI, a fresh container) the system packages are installed and the
# emulated Pi is built (its progress and a failing step show plainly; about 1 s when cached); otherwise the suites
# that need them skip, and `make test` ends with a summary naming them and the command that enables them.
test-system:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory system-deps && $(MAKE) --no-print-directory emulated-pi; \
	else echo "NOTE: not root with apt-get: system packages not installed (summary at the end; sudo make system-deps)"; fi

# The list lives in tests/support/system_deps.py (with the summary); -B: no root-owned .pyc under sudo.
SYSTEM_PACKAGES = $(shell $(PYTHON) -B -m tests.support.system_deps packages)
system-deps:  ## install the Debian packages the tests talk to: OpenSSH, Mosquitto, debootstrap, systemd, Chromium
	@missing=$$(for package in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$package 2>/dev/null | grep -q 'install ok installed' || echo $$package; done); \
	if [ -n "$$missing" ] && [ "$$(id -u)" != 0 ]; then \
	  echo "system-deps: $$(echo $$missing) missing; installing them needs root: sudo make system-deps"; exit 1; \
	elif [ -n "$$missing" ]; then \
	  echo "installing $$(echo $$missing)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "system packages: all installed ($(SYSTEM_PACKAGES))"; fi

emulated-pi: $(STAMP)  ## build (or reuse) the emulated Raspberry Pi 4 in ~/.cache/edgeml for tests/emulated
	$(BIN)/edgeml devices emulate rpi4

# ONNX -> TFLite runs onnx2tf in its own environment (it pins TensorFlow 2.19 and numpy 1.26): about 2.6 GB in
# ~/.cache/edgeml/tools/onnx2tf, a few minutes the first time, about a second when it is there. No root needed.
onnx2tf-env: $(STAMP)  ## build (or reuse) the onnx2tf tool environment that tests/converters/test_onnx2tf_route.py needs
	$(BIN)/edgeml setup onnx2tf

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
	$(ENV)/bin/pip install --quiet -e "runtime[$(EXTRA),mqtt]" pytest pytest-timeout hypothesis
	EDGEML_EXPECT_PYTHON=$(EXPECT) $(ENV)/bin/python -m pytest $(RUNTIME_TESTS) -q -p no:cacheprovider

# Mutation testing (mutmut) of the critical modules: would the tests notice a planted bug? About half an hour on
# 2 cores, so not part of `make test`. MUTATE picks some: quantization feeds validation http agent.
MUTATE ?=
mutation: $(STAMP)  ## mutation score per critical module, with every surviving mutant shown (see tests/mutation.py)
	$(BIN)/python -m tests.mutation $(MUTATE)

bench: $(STAMP)  ## the benchmark scripts under benchmarks/, each run as `python -m benchmarks.NAME`
	for script in benchmarks/[!_]*.py; do $(BIN)/python -m benchmarks.$$(basename $$script .py) || exit 1; done

clean:
	rm -rf $(VENV) .venv-runtime-* demo-output .pytest_cache .ruff_cache build/mutation

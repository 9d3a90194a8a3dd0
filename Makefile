# Two commands do all set-up: `make test` and `make demo` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch, installed first when no NVIDIA driver is present, so that
# requirements.txt's range does not pull a multi-GB CUDA build.
TORCH_CPU ?= torch==2.13.0
PY_SOURCES := app compress engines export tests
PYTEST_ARGS ?=

.PHONY: venv test lint compat demo clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: installing torch from requirements.txt"; \
	else \
		echo "no NVIDIA GPU: installing the CPU build $(TORCH_CPU)"; \
		$(BIN)/python -m pip install --quiet "$(TORCH_CPU)"; \
	fi
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

lint: venv
	$(BIN)/ruff check $(PY_SOURCES)

# Jetson AGX Xavier is capped at Python 3.8: fail on any newer syntax or stdlib use.
# vermin checks syntax, stdlib use and evaluated annotations; a real 3.8 interpreter, where one
# is installed (pyenv), must also compile every module.
PYTHON38 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.8*/bin/python3.8) $(shell command -v python3.8 2>/dev/null))
compat: venv
	$(BIN)/vermin --target=3.8- --violations --eval-annotations --feature union-types \
		--no-tips --quiet $(PY_SOURCES)
	@if [ -n "$(PYTHON38)" ]; then \
		$(PYTHON38) -m compileall -q $(PY_SOURCES) >/dev/null && \
		echo "Python 3.8 check: vermin clean, $(PYTHON38) compiles every module"; \
	else echo "Python 3.8 check: vermin clean (no python3.8 interpreter for a compile check)"; fi

test: lint compat
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

# The app opens the trained pair in assets/models/facades/; without it (a trimmed checkout) it
# falls back to untrained placeholder models, built once (deterministically) into build/placeholder_models/.
demo: venv
	test -f assets/models/facades/original.onnx -a -f assets/models/facades/compressed.onnx \
		|| $(BIN)/python -m export.placeholders
	$(BIN)/python -m app

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

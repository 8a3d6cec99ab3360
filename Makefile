# Quick start: `make demo` (set up + run the whole pipeline on the embedded sample),
#              `make test` (set up + run the test suite; `make test-fast` skips the slow tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo_output
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1

.PHONY: setup lint demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -q -e ".[dev,pose,landmarks-dlib,onnx,app]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	HF_HOME=$${HF_HOME:-$(CURDIR)/.hf_home} $(VENV)/bin/affectnetplus demo $(DEMO_DIR)

lint: setup
	$(VENV)/bin/ruff check affectnetplus_hf tests benchmarks scripts
	$(VENV)/bin/ruff format --check affectnetplus_hf tests benchmarks scripts

test: lint
	HF_HOME=$$(mktemp -d) $(PY) -m pytest tests

test-fast: setup
	HF_HOME=$$(mktemp -d) $(PY) -m pytest tests -m "not slow"

bench: setup
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_DIR) .$(DEMO_DIR).lock .hf_home

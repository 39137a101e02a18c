# `make demo` and `make test` build their own virtual environment from nothing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU wheel of torch; on a GPU machine pass TORCH_SPEC='torch>=2.4' (or preinstall a CUDA build).
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-fast lint typecheck bench replay-nab clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/seqstream demo --seconds 45

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not integration and not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check models stream tests bench deploy
	$(VENV)/bin/ruff format --check models stream tests bench deploy
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/step_bench.py

replay-nab: $(STAMP)
	$(VENV)/bin/seqstream replay ../shared/data/nab-dev/data -o nab-out
	$(PY) ../shared/tools/nab_score.py --data ../shared/data/nab-dev/data --labels ../shared/data/nab-dev/combined_windows.json --results nab-out

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

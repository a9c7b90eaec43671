# One command each: `make demo` (set up, then tune a real model) and `make test` (set up, then the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build on this machine kind's local disk; GPU users: `make setup TORCH=torch` for their CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

demo: setup
	$(BIN)/hpt-ray run scripts/examples/digits_mlp.yaml
	$(BIN)/hpt-ray report "$$(ls -td hpt_ray_results/digits_mlp-*/ | head -1)"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) hpt_ray_results .pytest_cache .mypy_cache .ruff_cache

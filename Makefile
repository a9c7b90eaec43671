# One command each: `make demo` (set up, then tune a real model) and `make test` (set up, then the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build on this machine kind's local disk; GPU users: `make setup TORCH=torch` for their CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup demo test lint bench-setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

# The benchmark's anchors of issue #16 (scripts/anchors.py): the anchors extra (Ax/BoTorch,
# SMAC3), then HEBO 0.3.6 without its stale pins (numpy<1.25, pymoo==0.6.0: pip backtracks for
# 20+ minutes; its default GP model runs on numpy 2 and the pymoo botorch brings) plus the one
# module it imports that nothing else brings.
bench-setup: setup
	$(BIN)/pip install --quiet -e '.[dev,bench,anchors]'
	$(BIN)/pip install --quiet --no-deps "HEBO==0.3.6"
	$(BIN)/pip install --quiet "disjoint-set>=0.8" "pymoo>=0.6.1"
	$(BIN)/python -c "import ax, botorch, smac, hpbandster, hebo.optimizers.hebo; print('anchors ready')"

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

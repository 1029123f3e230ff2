# FuseBench's two commands. Each sets itself up (a virtual environment in .venv) on first use.
#
#   make run     run the workflow on the built-in default config and print where the tables are
#   make test    run the test suite
#
# Options: make run PROFILE=smoke|paper   CORES=2   SNAKEMAKE_ARGS="--keep-going"
#          make test PYTEST_ARGS="-k metrics"

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fusebench-installed
CORES ?= all
PROFILE ?=
CONFIG_ARGS := $(if $(PROFILE),--configfile workflows/config/$(PROFILE).yaml,)
CLI_CONFIG := $(if $(PROFILE),--config workflows/config/$(PROFILE).yaml,)

.PHONY: run test lint setup

setup: $(STAMP)

# pip takes torch 2.14.1 / torchvision 0.29.1 from the local wheel cache; see README.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/snakemake --cores $(CORES) $(CONFIG_ARGS) $(SNAKEMAKE_ARGS)
	@echo "Tables: $$($(BIN)/python -m benchmark where $(CLI_CONFIG))/main.md (and main.csv beside it)"

test: $(STAMP)
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/snakemake --lint

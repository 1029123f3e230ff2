# FuseBench's two commands. Each sets itself up (a virtual environment in .venv) on first use.
#
#   make run     run the workflow on the built-in default config and print where the tables are
#   make test    check lint (ruff, snakemake --lint), then run the test suite (2 pytest-xdist workers)
#   make test-fast   only the tests marked unit (no Snakemake, no other process): for development
#
# More: make paper (paper/main.pdf after `make run`), make report (report.html),
#       make leaderboard (refresh results/reference and docs/results.md from results/), make lint.
# Options: make run PROFILE=smoke|paper   CORES=2   SNAKEMAKE_ARGS="--keep-going"
#                   WORKDIR=/scratch/run1 (Snakemake's --directory: results/ and .snakemake/ go there)
#          make test PYTEST_ARGS="-k metrics"   TEST_WORKERS=2
# After a kill, the same `make run` continues where the run stopped: profiles/default/profile.yaml
# reruns incomplete jobs, and the lock a killed run leaves behind is handled by benchmark/workflow/locks.py.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fusebench-installed
CORES ?= all
PROFILE ?=
CONFIG_ARGS := $(if $(PROFILE),--configfile workflows/config/$(PROFILE).yaml,)
CLI_CONFIG := $(if $(PROFILE),--config workflows/config/$(PROFILE).yaml,)
WORKDIR ?=
RUN_DIR := $(or $(WORKDIR),.)
DIR_ARGS := $(if $(WORKDIR),--directory $(WORKDIR),)
UNLOCK := $(strip $(BIN)/snakemake --unlock $(CONFIG_ARGS) $(DIR_ARGS))
TEST_WORKERS ?= 2
PYTEST := HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/python -m pytest
TEX_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-fonts-recommended lmodern

.PHONY: run test test-fast lint setup tex paper report leaderboard

setup: $(STAMP)

# pip takes torch 2.14.1 / torchvision 0.29.1 from the local wheel cache; see README (Quick start).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

# pdflatex for the paper and the LaTeX tests: installed from Debian where we may (root + apt),
# otherwise the LaTeX tests skip with a message (and fail under CI=true).
tex:
	@if command -v pdflatex >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(TEX_PACKAGES) from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES) >/dev/null; \
	else echo "pdflatex not found and cannot install it here: LaTeX tests will be skipped (apt-get install $(TEX_PACKAGES))"; fi

run: $(STAMP)
	@$(BIN)/python -m benchmark.workflow.locks $(RUN_DIR) "$(UNLOCK)"
	HF_HUB_OFFLINE=1 $(BIN)/snakemake --cores $(CORES) $(CONFIG_ARGS) $(DIR_ARGS) $(SNAKEMAKE_ARGS)
	@tables=$$($(BIN)/python -m benchmark where $(CLI_CONFIG)); case $$tables in /*) ;; *) tables=$(RUN_DIR)/$$tables;; esac; \
	echo "Tables: $${tables#./}/main.md (and main.csv beside it)"

# pytest-xdist: TEST_WORKERS processes; tests sharing a workflow run stay on one worker (--dist loadgroup, the groups
# are given by tests/conftest.py). test-fast: only the tests marked unit (no Snakemake, no other process).
test: lint tex
	$(PYTEST) -n $(TEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PYTEST) -m unit -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

paper: $(STAMP) tex
	@$(BIN)/python -m benchmark.workflow.locks $(RUN_DIR) "$(UNLOCK)"
	HF_HUB_OFFLINE=1 $(BIN)/snakemake paper/main.pdf --cores $(CORES) $(CONFIG_ARGS) $(DIR_ARGS) $(SNAKEMAKE_ARGS)

report: $(STAMP)
	$(BIN)/snakemake --report report.html $(CONFIG_ARGS)

leaderboard: $(STAMP)
	$(BIN)/python -m benchmark leaderboard --from results

# ruff (rules and line length in pyproject.toml), the import layers of docs/architecture.md (import-linter's
# contracts in pyproject.toml) and Snakemake's own linter; `make test` runs this first.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/snakemake --lint

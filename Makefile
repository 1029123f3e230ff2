# FuseBench's two commands. Each sets itself up (a virtual environment in .venv) on first use.
#
#   make run     run the workflow on the built-in default config and print where the tables are
#   make test    check lint (ruff, snakemake --lint), then run the test suite
#
# More: make paper (paper/main.pdf after `make run`), make report (report.html),
#       make leaderboard (refresh results/reference and the README from results/), make lint.
# Options: make run PROFILE=smoke|paper   CORES=2   SNAKEMAKE_ARGS="--keep-going"
#                   WORKDIR=/scratch/run1 (Snakemake's --directory: results/ and .snakemake/ go there)
#          make test PYTEST_ARGS="-k metrics"
# After a kill, the same `make run` continues where the run stopped: profiles/default/profile.yaml
# reruns incomplete jobs, and the lock a killed run leaves behind is handled below (STALE_LOCK).

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
TEX_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-fonts-recommended lmodern

.PHONY: run test lint setup tex paper report leaderboard

setup: $(STAMP)

# pip takes torch 2.14.1 / torchvision 0.29.1 from the local wheel cache; see README.
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
	@$(BIN)/python -c "$$STALE_LOCK" $(RUN_DIR) "$(UNLOCK)"
	HF_HUB_OFFLINE=1 $(BIN)/snakemake --cores $(CORES) $(CONFIG_ARGS) $(DIR_ARGS) $(SNAKEMAKE_ARGS)
	@tables=$$($(BIN)/python -m benchmark where $(CLI_CONFIG)); case $$tables in /*) ;; *) tables=$(RUN_DIR)/$$tables;; esac; \
	echo "Tables: $${tables#./}/main.md (and main.csv beside it)"

test: lint tex
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/python -m pytest $(PYTEST_ARGS)

paper: $(STAMP) tex
	@$(BIN)/python -c "$$STALE_LOCK" $(RUN_DIR) "$(UNLOCK)"
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

# A run stopped by kill -9 or a lost node leaves Snakemake's lock (.snakemake/locks) behind, and the
# next run would stop with LockException. `make run` removes it (snakemake --unlock) only when it can
# prove that no run uses the folder: the folder is on a local file system, so no other machine can
# run in it, and no process on this machine runs Snakemake or a FuseBench job there. Otherwise it
# says why it cannot tell and prints the command to run once you have checked.
# Arguments: the working folder, the unlock command.
define STALE_LOCK
import os, shlex, subprocess, sys

folder, unlock = os.path.realpath(sys.argv[1]), sys.argv[2]
locks = os.path.join(folder, ".snakemake", "locks")
if not os.path.isdir(locks) or not [name for name in os.listdir(locks) if name.endswith(".lock")]:
    sys.exit(0)
LOCAL = {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "bcachefs", "tmpfs", "overlay", "ramfs"}


def mount(path):
    """(type, options) of the file system holding path: the longest mount point above it."""
    best, found = "", (None, "")
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            point, tail = fields[4].replace("\\040", " "), fields[fields.index("-") + 1 :]
            if (path + "/").startswith(point.rstrip("/") + "/") and len(point) >= len(best):
                best, found = point, (tail[0], tail[-1])
    return found


def working_here(pid):
    """True: Snakemake or a FuseBench job working in folder; None: its folder cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().decode(errors="replace").split("\0")
        names = {os.path.basename(arg) for arg in argv[:2]}
        if names & {"snakemake", "fusebench"} or argv[1:3] in (["-m", "snakemake"], ["-m", "benchmark"]):
            return os.readlink(f"/proc/{pid}/cwd") == folder
        return False
    except PermissionError:
        return None
    except OSError:  # it has ended
        return False


try:
    kind, proc_options = mount(folder)[0], mount("/proc")[1]
    found = {pid: working_here(pid) for pid in map(int, filter(str.isdigit, os.listdir("/proc")))}
except OSError:
    kind, proc_options, found = None, "", {}
running = [str(pid) for pid, here in found.items() if here]
unsure = [str(pid) for pid, here in found.items() if here is None]
if running:
    print(f"make: a run is working in {folder} (pid {', '.join(running)}); its lock stays")
    sys.exit(0)
if not found:
    doubt = "there is no /proc here to look for running processes"
elif kind not in LOCAL:
    doubt = f"its file system ({kind}) may be shared with other machines"
elif unsure or ("hidepid" in proc_options and os.geteuid() != 0):
    doubt = f"the processes of other users cannot be seen here ({', '.join(unsure) or 'hidepid'})"
else:
    print(f"make: removing the lock a stopped run left in {locks} (no run works in that folder)")
    done = subprocess.run(shlex.split(unlock), capture_output=True, text=True)
    sys.exit(done.returncode and f"{done.stderr}make: `{unlock}` failed")
print(
    f"make: a lock from an earlier run remains in {locks}. No run works in that folder on this\n"
    f"machine, but {doubt}. If no run uses the folder on any machine, unlock it and run again:\n"
    f"    {unlock}",
    file=sys.stderr,
)
sys.exit(1)
endef
export STALE_LOCK

"""Which FuseBench checkout a command that writes into one acts on: the current directory's.

``fusebench new-method`` and ``fusebench leaderboard`` edit files of a checkout (``baselines/``,
``README.md``, ``results/reference/``). The imported package may live in another clone (a shared
virtual environment, an editable install elsewhere), so these commands follow the checkout that
contains the current directory and refuse to guess when there is none.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import ConfigError
from benchmark.paths import REPO_ROOT

MARKERS = ("Snakefile", "benchmark", "baselines", "workflows")
"""A folder holding all of these is a FuseBench checkout."""


def find_checkout(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that is a FuseBench checkout, or None."""
    for folder in (start.resolve(), *start.resolve().parents):
        if all((folder / marker).exists() for marker in MARKERS):
            return folder
    return None


def current_checkout(command: str) -> Path:
    """The checkout containing the current directory; an error naming both paths when there is none."""
    found = find_checkout(Path.cwd())
    if found is None:
        raise ConfigError(
            f"fusebench {command} writes into a FuseBench checkout, but the current directory {Path.cwd()} is not "
            f"inside one (the imported package is from {REPO_ROOT}); cd into the checkout to change, "
            f"or give the target paths explicitly"
        )
    return found

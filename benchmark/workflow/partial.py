"""What the workflow's ``onerror`` does after a failed run, in plain Python (``workflows/rules/partial.smk``).

It writes the tables and plots of everything that finished (:mod:`benchmark.workflow.expected`), then makes
sure they are rebuilt by the next run: Snakemake does not look behind outputs that are present and newer
than their inputs, so tables written now would make the next run say "Nothing to be done" and never retry
the failed jobs. Hence :func:`date_outdated` dates them 1970 (older than every input); the Snakefile also
drops Snakemake's records of them (the one call into Snakemake's internals, kept in partial.smk).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

PathT = TypeVar("PathT", str, Path)

OUTDATED = 1
"""The time a partial output is dated to: 1 s after the epoch (Snakemake reads a time of 0 as none)."""


def run_fusebench(args: Iterable[str], log: str | Path, checkout: str | Path) -> str | None:
    """Run ``python -m benchmark -v ARGS`` from ``checkout`` as the jobs do (this interpreter, ``PYTHONPATH``
    first the checkout), stderr to ``log``; its stdout, or None if it failed."""
    path = os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))
    with open(log, "w") as stderr:
        result = subprocess.run(
            [sys.executable, "-m", "benchmark", "-v", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
    return result.stdout if result.returncode == 0 else None


def date_outdated(files: Iterable[PathT]) -> list[PathT]:
    """Date each of ``files`` that exists to 1970 (:data:`OUTDATED`), so the next run rebuilds it; the files
    dated, the same objects as given (Snakemake's own calls take its file objects, not their names)."""
    dated = []
    for path in files:
        if os.path.exists(path):
            os.utime(path, (OUTDATED, OUTDATED))
            dated.append(path)
    return dated


def partial_message(summary: str, plots: str, drawn: bool, folder: str) -> str:
    """The last lines of a failed run: what failed (``fusebench aggregate``'s summary), where the plots are,
    how to retry."""
    return (
        f"FuseBench: {summary.strip()}\n"
        + (f"Plots: {plots}\n" if drawn else f"Plots could not be drawn: see {folder}/plots.log\n")
        + "Rerun the same command to retry the failed jobs; add --report report.html for the HTML report of "
        "these tables."
    )

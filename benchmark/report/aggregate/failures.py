"""Failed and missing jobs as rows: the expected-results file, each missing result's first error, the footnotes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import DataFileError
from benchmark.io import read_json
from benchmark.results import row as result_row
from benchmark.robustness.grid import grid
from benchmark.tasks import get_task

FAILED = "failed: "
"""Status prefix of the rows of a result whose job (or a job before it) failed, then the error and log."""
NOT_RUN = "not run: "
"""Status prefix of the rows of a result whose job never started (the run stopped first)."""
MISSING = (FAILED, NOT_RUN)
ERROR_LINE = "fusebench: "
"""How a job's error line starts (``fusebench: <kind>: <message>``, see :mod:`benchmark.errors`)."""
LOG_TAIL_BYTES = 65536
"""How much of the end of a log is searched for its error line."""
STATUS_CHARS = 300
"""Longest error line kept in a status (longer ones end with …)."""
PARTIAL_CELL = "†"
PARTIAL_NOTE = (
    "† mean over fewer seeds than configured (the seeds column reads succeeded/configured); "
    "the missing seeds are listed below."
)


@dataclass
class MissingResults:
    """What a failed run left out: rows standing for each missing result, and the jobs to blame."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    """``main.csv`` rows of missing evaluations and references (value empty, status failed / not run)."""
    robustness_rows: list[dict[str, Any]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Failed job (e.g. ``pretrain scenes clip seed 1``) → its status."""
    not_run: list[str] = field(default_factory=list)
    """Jobs that never started although results depend on them."""

    def summary(self, tables: Path | None = None) -> str:
        """A few lines for the end of a failed run: each failed job with its error and log."""
        if not self.failed and not self.not_run:
            return "no result is missing"
        lines = []
        if self.failed:
            count = len(self.failed)
            lines.append(f"{count} job{'s' if count > 1 else ''} failed:")
            lines += [f"  {job}: {status.removeprefix(FAILED)}" for job, status in self.failed.items()]
        if self.not_run:
            count = len(self.not_run)
            shown = ", ".join(self.not_run[:5]) + (", …" if count > 5 else "")
            lines.append(
                f"{count} job{'s' if count > 1 else ''} did not run (the run stopped first; "
                f"--keep-going runs every job it can): {shown}"
            )
        if tables is not None:
            lines.append(f"Tables of everything that finished, failed cells marked: {tables / 'main.md'}")
        return "\n".join(lines)


def error_line(log: Path) -> str:
    """The first line of the error a job's log ends with: its last ``fusebench: …`` line, without the prefix.

    Every stage ends a known failure with ``fusebench: <kind>: <message>`` and a crash with its
    traceback then ``fusebench: <stage> failed: <Exception>: <message>`` (:func:`benchmark.cli.main`);
    a job killed from outside has neither, so the log's last line is quoted instead."""
    with open(log, "rb") as handle:
        handle.seek(max(0, handle.seek(0, 2) - LOG_TAIL_BYTES))
        lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    line = next((line for line in reversed(lines) if line.startswith(ERROR_LINE)), None)
    if line is not None:
        text = line.removeprefix(ERROR_LINE)
    elif lines:
        text = f"no error line (killed?); the log ends: {lines[-1]}"
    else:
        text = "empty log (killed before it wrote anything?)"
    return text if len(text) <= STATUS_CHARS else text[: STATUS_CHARS - 1] + "…"


def job_label(job: dict[str, Any]) -> str:
    """``pretrain scenes contrastive_clip seed 1``: the rule and its wildcards."""
    values = [f"seed {v}" if k == "seed" else str(v) for k, v in job["wildcards"].items()]
    return " ".join([job["rule"], *values])


def _blame(chain: list[dict[str, Any]], missing: MissingResults) -> str:
    """The status of a missing result: the error of the first job of ``chain`` whose output is missing."""
    job = next((job for job in chain if not Path(job["output"]).is_file()), chain[-1])
    label, log = job_label(job), Path(job["log"])
    if not log.is_file():
        if label not in missing.not_run:
            missing.not_run.append(label)
        return f"{NOT_RUN}{label} did not start before the run stopped"
    status = f"{FAILED}{error_line(log)} (log: {log})"
    missing.failed.setdefault(label, status)
    return status


def read_expected(path: Path) -> tuple[list[Path], list[Path], list[Path], MissingResults]:
    """(evaluation and reference result files, robustness files, training files that exist, what is missing)
    from an expected-results file (its format: :mod:`benchmark.workflow.expected`)."""

    expected = read_json(path, what="expected-results file")
    results: list[Path] = []
    robustness: list[Path] = []
    missing = MissingResults()
    try:
        for cell in expected["cells"]:
            task = get_task(cell["task"])
            for key, files in (("evaluate", results), ("robustness", robustness)):
                job = cell[key]
                if Path(job["output"]).is_file():
                    files.append(Path(job["output"]))
                    continue
                status = _blame([*cell["upstream"], job], missing)
                spec = job["spec"]
                if key == "evaluate":
                    missing.rows += [result_row(spec, spec["method"], m, None, status) for m in task.metric_names(spec)]
                else:
                    names = task.metric_names(task.robustness_settings(spec["task_settings"], 0))  # size: not named
                    missing.robustness_rows += [
                        result_row(spec, spec["method"], m, None, status, corruption, severity)
                        for corruption, severity in [("none", 0), *grid(spec["robustness"])]
                        for m in names
                    ]
        for reference in expected["references"]:
            job = reference["reference"]
            if Path(job["output"]).is_file():
                results.append(Path(job["output"]))
                continue
            status = _blame([*reference["upstream"], job], missing)
            spec = {**job["spec"], "seed": None}
            task = get_task(reference["task"])
            missing.rows += [
                result_row(spec, name, m, None, status) for name in task.references for m in task.table_metrics
            ]
        training = [Path(p) for p in expected["training"] if Path(p).is_file()]
    except (KeyError, TypeError) as exc:
        raise DataFileError(f"expected-results file {path} is malformed ({type(exc).__name__}: {exc})") from None
    return results, robustness, training, missing


def failure_notes(frame: pd.DataFrame) -> dict[tuple[str, str], list[str]]:
    """(dataset, task) → one line per failed or not-run method and seed: ``- clip, seed 1: failed: … (log: …)``."""
    rows = frame[frame["status"].str.startswith(MISSING)]
    notes: dict[tuple[str, str], list[str]] = {}
    for (dataset, task, method, seed, status), _ in rows.groupby(
        ["dataset", "task", "method", "seed", "status"], sort=True, dropna=False
    ):
        who = method if pd.isna(seed) else f"{method}, seed {seed}"
        notes.setdefault((dataset, task), []).append(f"- {who}: {status}")
    return notes

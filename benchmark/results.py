"""The results' own format, in one place: the tidy row schema and where per-item records live.

Every evaluation, robustness and reference job writes rows of :data:`ROW_COLUMNS` (one number
each); an evaluation also writes its per-item records beside its result file
(:func:`items_path`), from which the bootstrap re-computes metrics on resampled test items, and a
robustness job those of every measured (corruption, severity) cell, in one file
(:func:`write_cell_items`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmark.io import atomic_path
from benchmark.paths import ITEMS_SUFFIX

ROW_COLUMNS = ("dataset", "method", "seed", "task", "metric", "corruption", "severity", "value", "status")
"""One row per reported number (``main.csv``, ``robustness.csv``)."""

UNDEFINED = "undefined: no ground truth of this kind in the test set"
NOT_APPLICABLE = "not applicable: "
"""Status prefix of a row a method cannot produce, followed by the reason."""


def row(
    spec: dict[str, Any],
    method: str,
    metric: str,
    value: float | None,
    status: str = "ok",
    corruption: str = "none",
    severity: int = 0,
) -> dict[str, Any]:
    """One row of the tidy results table, for the job described by ``spec``."""
    return {
        "dataset": spec["dataset"],
        "method": method,
        "seed": spec["seed"],
        "task": spec["task"],
        "metric": metric,
        "corruption": corruption,
        "severity": severity,
        "value": value,
        "status": status,
    }


def metric_rows(
    spec: dict[str, Any], method: str, metrics: dict[str, float | None], corruption: str = "none", severity: int = 0
) -> list[dict[str, Any]]:
    """Rows for computed metrics; a None value (e.g. COCO AP_large without large objects) is marked undefined."""
    return [
        row(spec, method, name, value, "ok" if value is not None else UNDEFINED, corruption, severity)
        for name, value in metrics.items()
    ]


def not_applicable_rows(
    spec: dict[str, Any], method: str, names: list[str], reason: str, corruption: str = "none", severity: int = 0
) -> list[dict[str, Any]]:
    """Rows saying why ``method`` has no value for these metrics (never silently dropped)."""
    status = reason if reason.startswith(NOT_APPLICABLE) else NOT_APPLICABLE + reason
    return [row(spec, method, name, None, status, corruption, severity) for name in names]


def items_path(result_file: Path) -> Path:
    """Where the per-item records of an evaluation or robustness result live (for the bootstrap): beside it,
    ``seed0.json`` → ``seed0.items.npz``."""
    return Path(result_file).with_suffix(ITEMS_SUFFIX)


def write_items(path: Path, items: dict[str, Any]) -> None:
    """Per-item records as a compressed ``.npz``, written atomically."""

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **{k: np.asarray(v) for k, v in items.items()})


def read_items(path: Path) -> dict[str, Any]:
    """The arrays of a ``.items.npz`` file (empty for a not-applicable evaluation)."""

    with np.load(path) as data:
        return {k: data[k] for k in data.files}


Cell = tuple[str, int]
"""(corruption, severity) of a robustness cell; the clean subset is ``("none", 0)``."""


def write_cell_items(path: Path, cells: dict[Cell, dict[str, Any]]) -> None:
    """Per-item records of every measured robustness cell in one compressed ``.npz``: the array ``name``
    of cell (corruption, severity) is stored as ``<corruption>/<severity>/<name>`` (empty: none measured)."""
    write_items(path, {f"{c}/{s}/{name}": value for (c, s), items in cells.items() for name, value in items.items()})


def read_cell_items(path: Path, cell: Cell | None = None) -> dict[Cell, dict[str, Any]]:
    """(corruption, severity) → the per-item arrays of that cell, from :func:`write_cell_items`'s file; only
    ``cell``'s arrays when it is given (a job's file holds every cell's: read one at a time to keep few in memory)."""

    cells: dict[Cell, dict[str, Any]] = {}
    with np.load(path) as data:
        for key in data.files:
            found, name = _cell_of(key)
            if cell is None or found == cell:
                cells.setdefault(found, {})[name] = data[key]
    return cells


def item_cells(path: Path) -> set[Cell]:
    """The cells :func:`write_cell_items`'s file holds records of (without reading them)."""

    with np.load(path) as data:
        return {_cell_of(key)[0] for key in data.files}


def _cell_of(key: str) -> tuple[Cell, str]:
    corruption, severity, name = key.split("/", 2)
    return (corruption, int(severity)), name

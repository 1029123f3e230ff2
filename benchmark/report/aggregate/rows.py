"""Result files to rows: every row of every result record, checked, with the hardware and the zero-shot labels."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import DataFileError
from benchmark.io import read_json
from benchmark.numerics import summary as numeric_summary
from benchmark.results import ROW_COLUMNS
from benchmark.tasks import reference_rows_of_all_tasks


def hardware_of(record: dict[str, Any]) -> str:
    """What computed a result, from its provenance: ``cpu: <model> (numerics portable: torch AVX2, MKL 2024.2
    (CBWR COMPATIBLE), oneDNN off, 1 thread)``, or on CUDA the GPU, CUDA / cuDNN versions and precision
    settings, then the CPU path. Results from before the numeric path was recorded give the model alone."""
    prov = record.get("provenance", {})
    device = prov.get("device", {})
    path = f" ({numeric_summary(prov['numerics'])})" if prov.get("numerics") else ""
    if device.get("type") == "cuda":
        versions = ", ".join(
            f"{label} {device[key]}" for key, label in (("cuda", "CUDA"), ("cudnn", "cuDNN")) if device.get(key)
        )
        tf32 = device.get("tf32_matmul")
        settings = [versions, device.get("precision", ""), "" if tf32 is None else f"TF32 {'on' if tf32 else 'off'}"]
        detail = ", ".join(s for s in settings if s)
        return f"cuda: {device.get('name', 'unknown GPU')}" + (f" ({detail})" if detail else "") + path
    return f"cpu: {prov.get('host', {}).get('cpu', 'unknown')}{path}"


def load_results(paths: Iterable[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """(path, record) of every result file, each read once."""
    return [(Path(path), read_json(path, what="result file")) for path in paths]


def collect_rows(
    results: Iterable[tuple[Path, dict[str, Any]]],
    hardware: set[str] | None = None,
    missing: Iterable[dict[str, Any]] = (),
) -> pd.DataFrame:
    """Every row of every result record, checked for the tidy columns, and the ``missing`` results' rows;
    adds each record's hardware to ``hardware``."""
    rows: list[dict[str, Any]] = list(missing)
    references = reference_rows_of_all_tasks()
    for path, record in results:
        file_rows = record.get("rows") if isinstance(record, dict) else None
        if not isinstance(file_rows, list):
            raise DataFileError(f"result file {path} has no 'rows' list")
        if hardware is not None and file_rows and file_rows[0].get("method") not in references:
            hardware.add(hardware_of(record))
        for row in file_rows:
            missing = [c for c in ROW_COLUMNS if c not in row and c != "status"]
            if missing:
                raise DataFileError(f"result file {path} has a row without {missing}: {row}")
            rows.append({**{c: row.get(c) for c in ROW_COLUMNS}, "status": row.get("status", "ok")})
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    frame["seed"] = frame["seed"].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    return frame.sort_values(
        ["dataset", "task", "method", "metric", "corruption", "severity", "seed"], kind="stable"
    ).reset_index(drop=True)


def zero_shot_methods(results: list[tuple[Path, dict[str, Any]]]) -> frozenset[str]:
    """Methods evaluated from published weights without training (their spec says ``zero_shot``)."""
    return frozenset(r["spec"]["method"] for _, r in results if r.get("spec", {}).get("zero_shot"))


def labelled_zero_shot(frame: pd.DataFrame, zero_shot: frozenset[str], keep: str | None = None) -> pd.DataFrame:
    """``frame`` for display: each zero-shot method (a published model evaluated without training) named
    ``<method> (zero-shot)``, except ``keep`` (a name the table refers to, e.g. the reference method)."""
    if frame.empty or not zero_shot or "method" not in frame:
        return frame
    shown = frame.copy()
    shown["method"] = [f"{m} (zero-shot)" if m in zero_shot and m != keep else m for m in shown["method"]]
    return shown

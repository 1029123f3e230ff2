"""Aggregate per-job result files into one tidy table and readable summaries.

``main.csv`` is long format, one row per number: dataset, method, seed, task, metric,
corruption, severity, value (raw fractions). ``main.md`` summarises it per dataset and task
as mean ± sample standard deviation over seeds (recall in percent), with the seed count, and
ends with the provenance of the run.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.errors import DataFileError
from benchmark.io import read_json, write_text
from benchmark.provenance import git_state

COLUMNS = ["dataset", "method", "seed", "task", "metric", "corruption", "severity", "value", "status"]
REFERENCE_METHODS = ("chance", "ref_whole_image", "ref_all_objects")
METRIC_ORDER = {
    "retrieval": ["t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5", "i2t_R@10", "mean_R"],
    "grounding": ["AP", "AP50", "AP75", "AR@100", "mIoU", "Acc@0.5", "N-acc"],
}
"""Columns of the Markdown summary; main.csv keeps every metric (all 12 COCO stats)."""
PERCENT_TASKS = {"retrieval", "grounding"}
REFERENCE_NOTES = {
    "retrieval": "chance is the exact expectation of a uniformly random ranking.",
    "grounding": ("ref_whole_image predicts one box covering the image; ref_all_objects predicts the true box "
                  "of every object in the image (an oracle detector that ignores the text)."),
}


def hardware_of(record: dict[str, Any]) -> str:
    """'cuda: NVIDIA H200' or 'cpu: <model>' from a result file's provenance."""
    prov = record.get("provenance", {})
    device = prov.get("device", {})
    if device.get("type") == "cuda":
        return f"cuda: {device.get('name', 'unknown GPU')}"
    return f"cpu: {prov.get('host', {}).get('cpu', 'unknown')}"


def collect_rows(paths: Iterable[str | Path], hardware: set[str] | None = None) -> pd.DataFrame:
    """Every row of every result file, checked for the tidy columns; adds each file's hardware to ``hardware``."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        record = read_json(path, what="result file")
        if hardware is not None and record.get("rows") and record["rows"][0].get("method") not in REFERENCE_METHODS:
            hardware.add(hardware_of(record))
        file_rows = record.get("rows") if isinstance(record, dict) else None
        if not isinstance(file_rows, list):
            raise DataFileError(f"result file {path} has no 'rows' list")
        for row in file_rows:
            missing = [c for c in COLUMNS if c not in row and c != "status"]
            if missing:
                raise DataFileError(f"result file {path} has a row without {missing}: {row}")
            rows.append({**{c: row.get(c) for c in COLUMNS}, "status": row.get("status", "ok")})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["seed"] = frame["seed"].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    return frame.sort_values(["dataset", "task", "method", "metric", "corruption", "severity", "seed"],
                             kind="stable").reset_index(drop=True)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1; 0 for a reference row, NaN for a single seed) and seed count."""
    keys = ["dataset", "task", "method", "metric", "corruption", "severity"]
    grouped = frame.groupby(keys, sort=True, dropna=False)
    summary = grouped["value"].agg(mean="mean", std=lambda v: float(np.std(v.dropna(), ddof=1)) if v.count() > 1 else float("nan"),
                                   n="count").reset_index()
    status = grouped["status"].agg(lambda s: next((x for x in s if x != "ok"), "ok")).reset_index(drop=True)
    summary["status"] = status
    return summary


def _method_order(methods: Iterable[str]) -> list[str]:
    methods = sorted(set(methods))
    return [m for m in methods if m not in REFERENCE_METHODS] + [m for m in REFERENCE_METHODS if m in methods]


def _cell(mean: float, std: float, scale: float) -> str:
    if np.isnan(mean):
        return "n/a"
    if np.isnan(std):
        return f"{mean * scale:.1f}"
    return f"{mean * scale:.1f} ± {std * scale:.1f}"


def markdown_summary(summary: pd.DataFrame, footer: dict[str, Any]) -> str:
    """One Markdown table per (dataset, task) on clean data; methods as rows, metrics as columns."""
    clean = summary[summary["corruption"] == "none"]
    parts = ["# FuseBench results", ""]
    for (dataset, task), block in clean.groupby(["dataset", "task"], sort=True):
        metrics = [m for m in METRIC_ORDER.get(task, []) if m in set(block["metric"])]
        if task not in METRIC_ORDER:
            metrics += sorted(set(block["metric"]) - set(metrics))
        scale = 100.0 if task in PERCENT_TASKS else 1.0
        measured = block[~block["method"].isin(REFERENCE_METHODS) & (block["status"] == "ok")]
        seed_counts = sorted({int(n) for n in measured["n"]})
        unit = " (%)" if scale == 100.0 else ""
        parts.append(f"## {dataset} — {task}")
        parts.append("")
        parts.append(f"Mean ± sample std over {'/'.join(map(str, seed_counts)) or 0} seed(s){unit}; "
                     + REFERENCE_NOTES.get(task, ""))
        parts.append("")
        table, notes = [], []
        for method in _method_order(block["method"]):
            rows = block[block["method"] == method].set_index("metric")
            n = int(rows["n"].max()) if method not in REFERENCE_METHODS and rows["n"].max() > 0 else "—"
            cells = [_cell(rows.loc[m, "mean"], rows.loc[m, "std"], scale) if m in rows.index else "" for m in metrics]
            table.append([method, n, *cells])
            shown = rows[rows.index.isin(metrics)]
            reasons = sorted({s for s in shown["status"] if s != "ok"})
            notes.extend(f"- {method}: {reason}" for reason in reasons)
        parts.append(pd.DataFrame(table, columns=["method", "seeds", *metrics]).to_markdown(index=False))
        parts.append("")
        if notes:
            parts.extend(["n/a:", *notes, ""])
    parts.append("---")
    parts.append(", ".join(f"{k}: {v}" for k, v in footer.items()))
    return "\n".join(parts) + "\n"


def write_robustness(frame: pd.DataFrame, out_dir: Path, report: dict[str, Any]) -> None:
    """robustness.csv (tidy grid), robustness_summary.csv, robustness_drops.csv, robustness.md."""
    from benchmark.report.robustness import robustness_markdown, summary_scores

    reference = report.get("reference_method", "late_fusion")
    metrics = report.get("summary_metric", {"retrieval": "mean_R", "grounding": "AP"})
    scores, drops = summary_scores(frame, reference, metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "robustness.csv", frame.to_csv(index=False, float_format="%.6f"))
    write_text(out_dir / "robustness_summary.csv", scores.to_csv(index=False, float_format="%.6f"))
    write_text(out_dir / "robustness_drops.csv", drops.to_csv(index=False, float_format="%.6f"))
    write_text(out_dir / "robustness.md", robustness_markdown(scores, drops, reference, report.get("max_images")))


def run_aggregate(result_files: list[Path], out_dir: Path, config_hash_value: str,
                  robustness_files: list[Path] | None = None, report: dict[str, Any] | None = None) -> pd.DataFrame:
    """Write ``main.{csv,md}`` (and ``robustness*.csv``, ``robustness.md``) under ``out_dir``."""
    hardware: set[str] = set()
    frame = collect_rows(result_files, hardware)
    if robustness_files:
        write_robustness(collect_rows(robustness_files, hardware), out_dir, report or {})
    summary = summarize(frame)
    git = git_state()
    footer = {
        "config hash": config_hash_value,
        "git commit": git["commit"][:12] + ("+dirty" if git.get("dirty") else ""),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": "; ".join(sorted(hardware)) or "unknown",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "main.csv", frame.to_csv(index=False, float_format="%.6f"))
    write_text(out_dir / "main.md", markdown_summary(summary, footer))
    return frame

"""The efficiency tables: cost (parameters, FLOPs, throughput, memory) and wall time per stage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from benchmark.report.tables import (
    footer_text,
    latex_table,
    number,
)
from benchmark.tasks import get_task, task_names


def efficiency_frame(training: list[dict[str, Any]], evaluations: list[dict[str, Any]]) -> pd.DataFrame:
    """Per method (mean over seeds): model size, FLOPs, throughput, memory, wall time per stage, and the
    compute each training stage actually used (steps run and, for pretraining, training FLOPs: early stopping
    can end a job before its budget, which is only the cap)."""
    rows: dict[str, dict[str, list[float]]] = {}

    def add(method: str, key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not (isinstance(value, float) and np.isnan(value)):
            rows.setdefault(method, {}).setdefault(key, []).append(float(value))

    for record in training:
        spec = record.get("spec", {})
        method, stage = spec.get("method"), spec.get("stage")
        if not method:
            continue
        if stage == "pretrain":
            for key, value in record.get("efficiency", {}).items():
                add(method, key, value)
            train = record.get("train", {})
            add(method, "train_samples_per_s", train.get("samples_per_s"))
            add(method, "peak_memory_mb", train.get("peak_memory_mb"))
        if stage in ("pretrain", "finetune") and record.get("status") != "not applicable":
            used = _compute_used(record)
            suffix = "pretrain" if stage == "pretrain" else f"finetune_{spec.get('task')}"
            add(method, f"steps_used_{suffix}", used.get("steps"))
            if stage == "pretrain":
                add(method, "flops_used_pretrain", used.get("flops"))
        if record.get("status") != "not applicable":
            add(
                method,
                f"wall_s_{stage}" + (f"_{spec['task']}" if spec.get("task") else ""),
                record.get("provenance", {}).get("wall_time_s"),
            )
    for record in evaluations:
        spec = record.get("spec", {})
        if spec.get("method") and record.get("status") != "not applicable":
            add(
                spec["method"],
                f"wall_s_{spec['stage']}_{spec['task']}",
                record.get("provenance", {}).get("wall_time_s"),
            )
    frame = pd.DataFrame(
        [{"method": m, **{k: float(np.mean(v)) for k, v in values.items()}} for m, values in sorted(rows.items())]
    )
    return frame


def _compute_used(record: dict[str, Any]) -> dict[str, Any]:
    """Steps (and FLOPs) a training job ran: its ``compute_used``; before early stopping, its budget or steps."""
    if record.get("compute_used"):
        return record["compute_used"]
    train = record.get("train") or {}
    used = {"steps": train.get("steps_used", train.get("steps"))}
    per_step = (record.get("efficiency") or {}).get("flops_train_per_step")
    if per_step and used["steps"] is not None:
        used["flops"] = used["steps"] * per_step
    return used


def efficiency_columns() -> dict[str, tuple[str, float, int]]:
    """Efficiency key → (column label, scale, digits): size, each task's FLOPs per example, training cost."""

    per_task = [get_task(t).efficiency for t in task_names()]
    return {
        "parameters": ("params (M)", 1e-6, 2),
        **{key: (label, 1e-6, 1) for key, label in (e for e in per_task if e)},
        "flops_pretrain_forward_per_sample": ("MFLOPs / sample (pretrain fwd)", 1e-6, 1),
        "train_samples_per_s": ("train samples/s", 1.0, 0),
        "peak_memory_mb": ("peak memory (MB)", 1.0, 0),
    }


STAGE_ORDER = ("pretrain", "finetune", "evaluate", "robustness")
"""Order of the wall-time columns: the order the stages run in."""


def _wall_time_key(key: str) -> tuple[int, str]:
    stage, _, task = key.removeprefix("wall_s_").partition("_")
    return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), f"{stage} {task}")


def efficiency_tables(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cost, time): the chosen cost columns scaled, and wall time per stage in seconds.

    Two tables rather than one: side by side they make 14 columns, which a page can only show
    scaled down to unreadable type. Time columns are named ``<stage>\\n<task>`` (two header lines
    in LaTeX, :func:`benchmark.report.tables.latex_table`; one in Markdown)."""
    if frame.empty:
        return frame, frame
    cost = pd.DataFrame({"method": frame["method"]})
    for key, (label, scale, digits) in efficiency_columns().items():
        if key in frame:
            cost[label] = [number(v, scale, digits) for v in frame[key]]
    time = pd.DataFrame({"method": frame["method"]})
    for key in sorted((k for k in frame.columns if k.startswith("wall_s_")), key=_wall_time_key):
        stage, _, task = key.removeprefix("wall_s_").partition("_")
        time["\n".join(p for p in (stage, task.replace("_", " ")) if p)] = [number(v, 1.0, 0) for v in frame[key]]
    return cost, time


def compute_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The compute each training stage actually ran (means over seeds): pretraining steps and training TFLOPs,
    fine-tuning steps per task. Its own table: the cost table is already as wide as a page allows. Empty for
    results written before early stopping recorded it."""
    keys = [k for k in ("steps_used_pretrain", "flops_used_pretrain") if k in frame]
    keys += sorted(k for k in frame.columns if k.startswith("steps_used_finetune_"))
    if frame.empty or not keys:
        return pd.DataFrame()
    table = pd.DataFrame({"method": frame["method"]})
    for key in keys:
        if key == "flops_used_pretrain":
            table["pretrain\nTFLOPs"] = [number(v, 1e-12, 3) for v in frame[key]]
        else:
            stage = key.removeprefix("steps_used_").replace("_", " ")
            table[f"{stage}\nsteps"] = [number(v, 1.0, 0) for v in frame[key]]
    return table


def _one_line(table: pd.DataFrame) -> pd.DataFrame:
    return table.rename(columns=lambda c: c.replace("\n", " "))


def _two_lines(table: pd.DataFrame) -> pd.DataFrame:
    """Labels over two lines: before their parenthesis (``MFLOPs / pair`` over ``(retrieval)``), else at
    their last space (``train`` over ``samples/s``); ``method`` stays."""

    def broken(label: str) -> str:
        if label == "method" or " " not in label:
            return label
        return label.replace(" (", "\n(", 1) if " (" in label else "\n".join(label.rsplit(" ", 1))

    return table.rename(columns=broken)


EFFICIENCY_CAPTIONS = (
    "Cost per method (means over seeds): parameters, forward FLOPs per example (a multiply–add = 2 FLOPs), "
    "training throughput and peak memory (process RSS on CPU, allocated GPU memory on CUDA).",
    "Wall time per stage and task in seconds (means over seeds).",
    "Compute each training stage actually ran (means over seeds): steps, and pretraining FLOPs (forward and "
    "backward). Early stopping ends a job before its budget, which is then only its cap.",
)


def efficiency_markdown(
    cost: pd.DataFrame, time: pd.DataFrame, provenance: dict[str, Any], compute: pd.DataFrame | None = None
) -> str:
    parts = [
        "# FuseBench efficiency",
        "",
        "Means over seeds; FLOPs counted by torch.utils.flop_counter (a multiply–add = 2 FLOPs); peak memory is "
        "the process RSS on CPU, allocated GPU memory on CUDA.",
        "",
    ]
    if not cost.empty:
        parts += ["## Cost", "", _one_line(cost).to_markdown(index=False), ""]
    if len(time.columns) > 1:
        parts += ["## Wall time per stage (s)", "", _one_line(time).to_markdown(index=False), ""]
    if compute is not None and not compute.empty:
        parts += ["## Compute used", "", EFFICIENCY_CAPTIONS[2], "", _one_line(compute).to_markdown(index=False), ""]
    return "\n".join(parts) + f"\n---\n{footer_text(provenance)}\n"


def efficiency_latex(
    cost: pd.DataFrame, time: pd.DataFrame, provenance: dict[str, Any], compute: pd.DataFrame | None = None
) -> str:
    """``tab:efficiency`` (cost), ``tab:efficiency-time`` (wall time per stage) and, where the results record
    it, ``tab:efficiency-compute`` (compute used)."""
    if cost.empty:
        return ""
    tables = [latex_table(_two_lines(cost), EFFICIENCY_CAPTIONS[0], "tab:efficiency", provenance)]
    if len(time.columns) > 1:
        tables.append(latex_table(time, EFFICIENCY_CAPTIONS[1], "tab:efficiency-time", provenance))
    if compute is not None and not compute.empty:
        tables.append(latex_table(compute, EFFICIENCY_CAPTIONS[2], "tab:efficiency-compute", provenance))
    return "\n".join(tables)

"""Learning curves and model selection: what the training jobs measured on the val split.

Every pretraining and fine-tuning result carries its validation curve (``train.validation``, written by
:class:`benchmark.train.loop.Validation`): val metrics every N steps, with the samples and training
FLOPs spent to reach each point, and for fine-tuning the step whose weights were kept. This module turns
them into

* ``learning_curves.csv`` — tidy: dataset, stage, task, method, seed, step, samples, flops, metric, value;
* ``selection.md`` — per (dataset, task, method): the pretraining budget, the steps selected on val per
  seed and the val summary metric there, so a reader sees which checkpoint every test number comes from;
* ``plots/learning_curves.{png,pdf}`` — val metric against steps and against training FLOPs, one line per
  method (mean over seeds, the band spans the seeds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from benchmark.report.figures import save
from benchmark.tasks import get_task, task_names

CURVE_COLUMNS = ["dataset", "stage", "task", "method", "seed", "step", "samples", "flops", "metric", "value"]
AXES = ("step", "samples", "flops")


def pretraining_panels() -> tuple[str, ...]:
    """The pretraining curves drawn: its objective on val, then the first headline metric of each task that
    validates pretraining (``Task.validates_pretraining``; where the method can be measured so)."""
    tasks = [get_task(name) for name in task_names()]
    return ("val_loss", *(f"val_{task.headline_metrics[0]}" for task in tasks if task.validates_pretraining))


def learning_curves(training: list[dict[str, Any]]) -> pd.DataFrame:
    """The tidy learning-curve frame of every training result that recorded validation."""
    rows = []
    for record in training:
        spec = record.get("spec", {})
        validation = (record.get("train") or {}).get("validation") or {}
        for point in validation.get("curve", []):
            for metric, value in point.items():
                if metric in AXES:
                    continue
                rows.append(
                    {
                        "dataset": spec.get("dataset"),
                        "stage": spec.get("stage"),
                        "task": spec.get("task") or "",
                        "method": spec.get("method"),
                        "seed": spec.get("seed"),
                        "step": point["step"],
                        "samples": point.get("samples"),
                        "flops": point.get("flops"),
                        "metric": metric,
                        "value": value,
                    }
                )
    frame = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return frame.sort_values(["dataset", "stage", "task", "method", "seed", "metric", "step"], ignore_index=True)


def budget_text(records: list[dict[str, Any]]) -> str:
    """The pretraining budget as the jobs ran it: steps × batch, or the held-equal samples / FLOPs."""
    budgets = {
        r["spec"]["method"]: r["budget"]
        for r in records
        if r.get("spec", {}).get("stage") == "pretrain" and r.get("budget")
    }
    if not budgets:
        return ""
    units = {b["unit"] for b in budgets.values()}
    if units == {"steps"}:
        steps = sorted({b["steps"] for b in budgets.values()})
        samples = sorted({b["samples"] for b in budgets.values()})
        shown = f"{', '.join(map(str, steps))} steps, {', '.join(map(str, samples))} samples"
        return f"Pretraining budget: equal steps ({shown} per method)." + _stopped_early(records)
    amounts = sorted({b.get("amount") for b in budgets.values()})
    per_method = ", ".join(f"{m} {b['steps']} steps" for m, b in sorted(budgets.items()))
    shown = ", ".join(f"{a:.3g}" for a in amounts)
    text = f"Pretraining budget: equal {'/'.join(sorted(units))} ({shown} per method; {per_method})."
    return text + _stopped_early(records)


def _stopped_early(records: list[dict[str, Any]]) -> str:
    """A sentence when early stopping ended a pretraining job before its budget: the budget was then a cap."""
    early = any(
        r.get("spec", {}).get("stage") == "pretrain" and (r.get("train") or {}).get("stop_reason") == "converged"
        for r in records
    )
    return " These are caps: early stopping ended jobs sooner (compute used: efficiency.md)." if early else ""


def stop_text(record: dict[str, Any]) -> str:
    """Where and why a training job stopped: ``converged at 400``, ``cap at 1000 ↑`` (still improving)."""
    train = record.get("train") or {}
    steps = train.get("steps_used", train.get("steps"))
    reason = train.get("stop_reason", "cap")
    return f"{reason} at {steps}" + (" ↑" if train.get("still_improving") else "")


def selection_markdown(training: list[dict[str, Any]], provenance_footer: str) -> str:
    """selection.md: the budget; per pretraining job where and why it stopped; per fine-tuning job the same,
    the step kept and its val summary metric."""
    rows = []
    stops = []
    for record in training:
        spec = record.get("spec", {})
        validation = (record.get("train") or {}).get("validation")
        if spec.get("stage") == "pretrain" and validation:
            stops.append({"dataset": spec["dataset"], "method": spec["method"], "stopped": stop_text(record)})
        if spec.get("stage") != "finetune" or not validation:
            continue
        rows.append(
            {
                "dataset": spec["dataset"],
                "task": spec["task"],
                "method": spec["method"],
                "seed": spec["seed"],
                "steps": record["train"]["steps"],
                "stopped": stop_text(record),
                "kept": validation["selected_step"],
                "metric": validation.get("metric", ""),
                "value": validation.get("selected_value"),
            }
        )
    parts = ["# FuseBench: model selection on the validation split", ""]
    if budget := budget_text(training):
        parts += [budget, ""]
    if stops:
        parts += [
            "Each job stops when its watched val metric has not improved by `validation.min_delta` for "
            "`validation.patience` points (converged), or at its step cap; ↑ marks a job stopped by its cap while "
            "still improving (docs/protocols.md, Convergence).",
            "",
            "## Pretraining",
            "",
            pd.DataFrame(stops)
            .groupby(["dataset", "method"], sort=True)
            .agg(stopped=("stopped", ", ".join))
            .reset_index()
            .rename(columns={"stopped": "stopped (per seed)"})
            .to_markdown(index=False),
            "",
        ]
    if not rows:
        parts += ["No fine-tuning job recorded validation (validation.every is null).", ""]
    else:
        frame = pd.DataFrame(rows)
        parts += [
            "Each fine-tuned checkpoint is the step with the best val summary metric among the validation points "
            "(before the first step, every `validation.every` steps, and the last); ties keep the earliest. "
            "Test numbers come from these checkpoints; the test split is never used to choose.",
            "",
        ]
        for (dataset, task), block in frame.groupby(["dataset", "task"], sort=True):
            table = (
                block.sort_values(["method", "seed"])
                .groupby("method", sort=True)
                .agg(
                    steps=("steps", "first"),
                    stopped=("stopped", ", ".join),
                    kept=("kept", lambda s: ", ".join(str(int(v)) for v in s)),
                    metric=("metric", "first"),
                    value=("value", lambda s: f"{s.mean():.3f}" if s.notna().any() else "n/a"),
                )
                .reset_index()
                .rename(
                    columns={
                        "steps": "cap",
                        "stopped": "stopped (per seed)",
                        "kept": "step kept (per seed)",
                        "value": "val value there (mean)",
                    }
                )
            )
            parts += [f"## {dataset} — {task}", "", table.to_markdown(index=False), ""]
    parts += ["---", provenance_footer]
    return "\n".join(parts) + "\n"


def panels(curves: pd.DataFrame, selection_metric: dict[str, str]) -> list[tuple[str, str, str]]:
    """(stage, task, metric) of each row of the figure: the pretraining curves, then each task's fine-tuning
    summary metric (the one selection uses, ``selection_metric[task]``)."""
    present = set(curves[["stage", "task", "metric"]].itertuples(index=False, name=None))
    rows = [("pretrain", "", metric) for metric in pretraining_panels() if ("pretrain", "", metric) in present]
    for task, metric in sorted(selection_metric.items()):
        if ("finetune", task, f"val_{metric}") in present:
            rows.append(("finetune", task, f"val_{metric}"))
    return rows


def draw_learning_curves(
    curves: pd.DataFrame, selection_metric: dict[str, str], colors: dict[str, str], stem: Path
) -> list[Path]:
    """Val metric vs steps (left) and vs training FLOPs (right); one row per (stage, task, metric)."""

    curves = curves.fillna({"task": ""})  # pretraining has no task (an empty CSV cell reads back as NaN)
    rows = panels(curves, selection_metric)
    figure, axes = plt.subplots(max(1, len(rows)), 2, figsize=(10, 2.6 * max(1, len(rows))), squeeze=False)
    for (stage, task, metric), (by_step, by_flops) in zip(rows, axes):
        block = curves[(curves["stage"] == stage) & (curves["task"] == task) & (curves["metric"] == metric)]
        for method, lines in block.groupby("method", sort=True):
            points = lines.groupby("step").agg(
                flops=("flops", "mean"), mean=("value", "mean"), low=("value", "min"), high=("value", "max")
            )
            for ax, x in ((by_step, points.index), (by_flops, points["flops"])):
                if x.isna().all():  # a result without a FLOPs count
                    continue
                ax.plot(x, points["mean"], marker=".", color=colors.get(method), label=method)
                ax.fill_between(x, points["low"], points["high"], color=colors.get(method), alpha=0.15, linewidth=0)
        title = f"{'pretraining' if stage == 'pretrain' else f'{task} fine-tuning'}: {metric}"
        by_step.set_title(title, fontsize=9)
        by_flops.set_title(title, fontsize=9)
        by_step.set_xlabel("optimiser steps")
        by_flops.set_xlabel("training FLOPs (this stage)")
    if rows:
        axes[0][0].legend(fontsize=7, ncols=2)
    figure.suptitle("Learning curves on the validation split (mean over seeds; band: min–max)", fontsize=10)
    figure.tight_layout()
    paths = save(figure, stem)
    plt.close(figure)
    return paths

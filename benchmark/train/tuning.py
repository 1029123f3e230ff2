"""Equal tuning budget: the same small learning-rate search for every trained method, decided on val.

A method compared at one hand-picked learning rate may lose for want of tuning, not of design. With
``tuning.lr_factors`` set (e.g. ``[0.5, 1.0, 2.0]``; off by default, on in the paper profile) every
method that is pretrained gets one *trial* per factor, the same number for every method: its
pretraining and fine-tuning learning rates × the factor, trained with the tuning seed on the pretraining
dataset, each task fine-tuned and measured on val (the fine-tuning validation of
:mod:`benchmark.train.loop`). The factor with the best mean over tasks of the val summary metric (at
each trial's selected checkpoint) is the method's choice (:func:`choose`, written as ``choice.json``),
and every reported seed of that method trains with it (:func:`apply_choice`). Test data is never read.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from benchmark.errors import DataFileError
from benchmark.io import read_json, sha256_file


def scaled_spec(spec: dict[str, Any], factor: float) -> dict[str, Any]:
    """``spec`` with its learning rate × ``factor`` (a trial's, or the chosen one)."""
    scaled = copy.deepcopy(spec)
    scaled["optim"]["lr"] = spec["optim"]["lr"] * factor
    return scaled


def trial_value(result: dict[str, Any]) -> float | None:
    """The val summary metric a fine-tuning trial kept (at its selected step); None if not measured."""
    validation = (result.get("train") or {}).get("validation") or {}
    value = validation.get("selected_value")
    return float(value) if value is not None and math.isfinite(value) else None


def choose(trials: dict[float, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The choice from ``{factor: {task: fine-tuning result}}``: the factor with the best mean val value over
    tasks; ties go to the factor nearest 1 (then the smaller). A task the method cannot do (a result marked
    not applicable) is left out; a factor with a task not measured (e.g. a diverged trial) loses."""
    table = []
    for factor, by_task in sorted(trials.items()):
        values = {
            task: trial_value(result)
            for task, result in sorted(by_task.items())
            if result.get("status") != "not applicable"
        }
        measured = [v for v in values.values() if v is not None]
        mean = sum(measured) / len(measured) if measured and len(measured) == len(values) else None
        table.append({"lr_factor": factor, "val": values, "mean": mean})
    candidates = [row for row in table if row["mean"] is not None]
    if not candidates:
        raise ValueError("no tuning trial measured a val summary metric; is validation.every null?")
    best = max(candidates, key=lambda row: (row["mean"], -abs(math.log(row["lr_factor"])), -row["lr_factor"]))
    return {
        "lr_factor": best["lr_factor"],
        "rule": "highest mean over tasks of the val summary metric at each trial's selected checkpoint",
        "trials": table,
    }


def apply_choice(spec: dict[str, Any], choice_file: Path) -> dict[str, Any]:
    """The job's spec trained with the chosen factor, recording the choice (factor, file sha256)."""
    choice = read_json(Path(choice_file), what="tuning choice")
    if "lr_factor" not in choice:
        raise DataFileError(f"tuning choice {choice_file} has no 'lr_factor'; rerun the tune_select job")
    if choice.get("method") not in (None, spec["method"]):
        raise DataFileError(f"tuning choice {choice_file} is for {choice['method']!r}, not {spec['method']!r}")
    tuned = scaled_spec(spec, float(choice["lr_factor"]))
    tuned["tuned"] = {"lr_factor": choice["lr_factor"], "choice_sha256": sha256_file(Path(choice_file))}
    return tuned

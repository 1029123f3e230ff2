"""Equal tuning budget: the same small learning-rate search for every trained method, decided on val.

A method compared at one hand-picked learning rate may lose for want of tuning, not of design. With
``tuning.lr_factors`` set (e.g. ``[0.5, 1.0, 2.0]``; on in the default and paper profiles) every method
that is pretrained gets the same trials, at the tuning seed, in two steps that choose the pretraining and
the fine-tuning learning rate separately (a method whose fine-tuning never beats its start, say, needs
another fine-tuning rate, not another pretraining one):

1. **Pretraining**: one pretraining trial per factor (``pretrain.lr`` × factor) on the pretraining dataset,
   each fine-tuned on every task that dataset serves at the configured fine-tuning rate and measured on val
   (the fine-tuning validation of :mod:`benchmark.train.loop`). The factor with the best mean over tasks of
   the val summary metric (at each fine-tuning's selected checkpoint) is the pretraining choice
   (:func:`choose`), and its trial's checkpoint is kept beside it.
2. **Fine-tuning**, per task (and fine-tuning dataset): one fine-tuning trial per factor
   (``finetune.<task>.lr`` × factor) from that chosen pretrained checkpoint; the factor with the best val
   summary metric is the task's fine-tuning choice.

Every reported seed of the method pretrains with its pretraining choice and fine-tunes each task with that
task's choice (:func:`apply_choice`). Test data is never read.
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


TUNED_STAGES = ("pretrain", "finetune")


def trial_label(stage: str, factor: float) -> dict[str, Any]:
    """What a trial's spec records (``tuning_trial``): the stage whose learning rate it tries, and the factor."""
    if stage not in TUNED_STAGES:
        raise ValueError(f"a tuning trial tries the learning rate of {' or '.join(TUNED_STAGES)}, not {stage!r}")
    return {"stage": stage, "lr_factor": factor}


def apply_choice(spec: dict[str, Any], choice_file: Path) -> dict[str, Any]:
    """The job's spec trained with the chosen factor, recording the choice (factor, file sha256): a pretraining
    job takes its method's pretraining choice, a fine-tuning job the choice of its task."""
    choice = read_json(Path(choice_file), what="tuning choice")
    if "lr_factor" not in choice:
        raise DataFileError(f"tuning choice {choice_file} has no 'lr_factor'; rerun the tune_select job")
    if choice.get("method") not in (None, spec["method"]):
        raise DataFileError(f"tuning choice {choice_file} is for {choice['method']!r}, not {spec['method']!r}")
    if choice.get("stage") != spec["stage"]:
        raise DataFileError(
            f"tuning choice {choice_file} chooses the {choice.get('stage')!r} learning rate, not {spec['stage']!r}'s"
        )
    if spec["stage"] == "finetune" and choice.get("task") != spec["task"]:
        raise DataFileError(f"tuning choice {choice_file} is for task {choice.get('task')!r}, not {spec['task']!r}")
    tuned = scaled_spec(spec, float(choice["lr_factor"]))
    tuned["tuned"] = {"lr_factor": choice["lr_factor"], "choice_sha256": sha256_file(Path(choice_file))}
    return tuned

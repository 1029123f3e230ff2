"""The tuning choices: a method's pretraining learning-rate factor, then each task's fine-tuning factor, on val."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from benchmark.errors import DataFileError
from benchmark.io import read_json, sha256_file, write_json
from benchmark.paths import CHECKPOINT_FILE, TRAINING_RECORD_FILE
from benchmark.stages.records import result_record
from benchmark.train.tuning import choose

log = logging.getLogger("fusebench")


def run_tune_select(
    trial_results: list[Path],
    out_file: Path,
    pretrained: list[Path] | None = None,
    chosen_model: Path | None = None,
) -> None:
    """A method's learning-rate choice from its tuning trials' fine-tuning results (val only), as a choice file.

    The trials are of one stage (their specs' ``tuning_trial.stage``). For the pretraining learning rate they
    are the pretraining trials, each fine-tuned on every (dataset, task) fine-tuned from it; ``pretrained``
    names the trials' checkpoints, and the chosen one is copied to ``chosen_model``, the checkpoint the
    fine-tuning trials start from. For the fine-tuning learning rate the trials are of one task and dataset."""

    started = time.perf_counter()
    measured: list[tuple[float, str, str, dict[str, Any]]] = []
    seen: dict[str, set[Any]] = {"method": set(), "stage": set(), "task": set(), "dataset": set()}
    for path in trial_results:
        result = read_json(path, what="tuning trial result")
        spec = result.get("spec", {})
        trial = spec.get("tuning_trial")
        if not isinstance(trial, dict) or "stage" not in trial or "lr_factor" not in trial:
            raise DataFileError(
                f"{path} is not a tuning trial's fine-tuning result (its spec has no 'tuning_trial' with a stage "
                "and an lr_factor)"
            )
        for key, value in (("method", spec["method"]), ("stage", trial["stage"])):
            seen[key].add(value)
        seen["task"].add(spec["task"])
        seen["dataset"].add(spec["dataset"])
        measured.append((float(trial["lr_factor"]), spec["dataset"], spec["task"], result))
    trials: dict[float, dict[str, dict[str, Any]]] = {}
    for factor, dataset, task, result in measured:  # a task by its name; by dataset/task when there are several
        trials.setdefault(factor, {})[task if len(seen["dataset"]) == 1 else f"{dataset}/{task}"] = result
    for key in ("method", "stage"):
        if len(seen[key]) != 1:
            raise DataFileError(f"tuning trials of several {key}s given together: {sorted(seen[key])}")
    method, stage = seen["method"].pop(), seen["stage"].pop()
    choice: dict[str, Any] = {"method": method, "stage": stage}
    if stage == "finetune":
        if len(seen["task"]) != 1 or len(seen["dataset"]) != 1:
            raise DataFileError(
                f"fine-tuning learning-rate trials are chosen per task and dataset; given {sorted(seen['task'])} "
                f"on {sorted(seen['dataset'])}"
            )
        choice.update(task=seen["task"].pop(), dataset=seen["dataset"].pop())
    choice.update(choose(trials))
    choice["trial_files"] = [str(p) for p in trial_results]
    if stage == "pretrain":
        if not pretrained or chosen_model is None:
            raise DataFileError("the pretraining choice needs the pretraining trials' checkpoints and where to copy")
        source = _trial_checkpoint(pretrained, choice["lr_factor"])
        chosen_model.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, chosen_model)
        choice["checkpoint"] = {"trial": str(source), "copy": str(chosen_model), "sha256": sha256_file(chosen_model)}
    write_json(out_file, {**result_record({"stage": "tune_select", "method": method}, started), **choice})
    log.info(
        "tuning %s %s: learning-rate factor %s (%s) → %s",
        method,
        stage if stage == "pretrain" else f"finetune {choice['task']}",
        choice["lr_factor"],
        choice["rule"],
        out_file,
    )


def _trial_checkpoint(pretrained: list[Path], factor: float) -> Path:
    """The pretraining trial checkpoint of ``factor``, known by the result record beside it."""

    for model in pretrained:
        record = read_json(Path(model).parent / TRAINING_RECORD_FILE, what="tuning trial result")
        trial = record.get("spec", {}).get("tuning_trial") or {}
        if Path(model).name == CHECKPOINT_FILE and float(trial.get("lr_factor", "nan")) == factor:
            return Path(model)
    raise DataFileError(f"no pretraining trial checkpoint of factor {factor} among {[str(p) for p in pretrained]}")

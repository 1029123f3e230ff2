"""What pretraining and fine-tuning share: the budgeted, validated training of one job, its checkpoint and result."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmark.data.sampling import ImageTextData
from benchmark.data.standard_form import read_manifest
from benchmark.device import autocast, describe
from benchmark.errors import ConfigError
from benchmark.hashing import config_hash
from benchmark.io import write_json
from benchmark.paths import CHECKPOINT_FILE, TRAINING_RECORD_FILE
from benchmark.seeding import derive_seed
from benchmark.stages.records import result_record, weights_protocol
from benchmark.stages.session import Session
from benchmark.tasks import get_task, task_names
from benchmark.train import distributed
from benchmark.train.checkpoint import JOB_KEYS, save_checkpoint, save_not_applicable
from benchmark.train.efficiency import efficiency_profile, parameter_profile, training_step_flops
from benchmark.train.loop import OptimSettings, Validation, best_weights_path, train, weighted_total
from benchmark.train.stopping import StoppingRule

log = logging.getLogger("fusebench")


def train_stage(
    spec: dict[str, Any],
    session: Session,
    model: Any,
    losses: Any,
    weights: dict[str, float] | None,
    run_seed: int,
    out_dir: Path,
    checkpoint_meta: dict[str, Any],
    started: float,
    profile_batch: dict[str, Any] | None = None,
) -> None:
    """Train ``model`` on ``losses`` (validated and, for fine-tuning, selected on the val split as ``spec``
    says, under the pretraining budget) and write its checkpoint and result."""

    # under torchrun each rank counts its slice of the global batch
    flops_per_step = distributed.sum_over_ranks(
        training_step_flops(model, losses, weights) if weights is None or weights else None
    )
    if spec.get("compile"):  # after the FLOP count, which runs eagerly
        losses = session.torch.compile(losses, backend=spec["compile"])
    settings, budget = budgeted_settings(spec, flops_per_step)
    validation = validation_for(spec, session, model, run_seed, flops_per_step)
    state_path = out_dir / "training_state.partial.safetensors"
    description = f"{spec['stage']} {spec['method']} seed={spec['seed']}" + (
        f" {spec['task']}" if spec.get("task") else ""
    )
    log.info(
        "%s on %s: %d steps, objectives %s → %s",
        description,
        session.device,
        settings.steps,
        weights or "task losses",
        out_dir,
    )
    # a partial training state resumes only with the same spec, tokenizer, data build and init
    inputs = {key: checkpoint_meta.get(key) for key in (*JOB_KEYS, "init_spec_hash")}
    resume_key = config_hash({"spec": spec, "inputs": inputs})
    loop_started = time.perf_counter()
    report = train(
        model, losses, weights, settings, session.device, run_seed, state_path, resume_key, description, validation
    )
    loop_s = time.perf_counter() - loop_started
    phases = {
        "setup_s": loop_started - started,  # data, tokenizer, model, FLOP count, validation data
        "training_s": loop_s - report.validation_s,
        "validation_s": report.validation_s,
    }
    if not distributed.is_main():  # rank 0 writes the checkpoint and the result
        return
    meta = {**checkpoint_meta, "spec_hash": config_hash(spec), "stage": spec["stage"]}
    if report.validation is not None:
        meta["selected_step"] = report.validation["selected_step"]
    save_checkpoint(out_dir / CHECKPOINT_FILE, model, meta)
    efficiency = efficiency_profile(model, profile_batch) if profile_batch else parameter_profile(model)
    write_json(
        out_dir / TRAINING_RECORD_FILE,
        result_record(
            spec,
            started,
            describe(session.device),
            phases,
            method=model.describe(),
            objectives=weights or "task losses, weight 1 each",
            train=asdict(report),
            budget=budget,
            compute_used=compute_used(report.steps_used, settings.batch_size, flops_per_step),
            parameters=efficiency["parameters"],
            efficiency={**efficiency, "flops_train_per_step": flops_per_step},
            **weights_protocol(checkpoint_meta),
        ),
    )
    state_path.unlink(missing_ok=True)
    best_weights_path(state_path).unlink(missing_ok=True)
    log.info(
        "%s done (%s at step %d of %d): final loss %.4f in %.1fs%s",
        description,
        report.stop_reason,
        report.steps_used,
        report.steps,
        report.final_losses.get("loss", float("nan")),
        report.wall_time_s,
        f"; kept step {report.validation['selected_step']} ({report.validation['rule']})" if report.validation else "",
    )


def budgeted_settings(spec: dict[str, Any], flops_per_step: float | None) -> tuple[Any, dict[str, Any]]:
    """The optimiser settings under the pretraining budget (``spec["budget"]``), and the budget's record.

    ``steps`` (the default) trains every method ``optim.steps`` steps. ``samples`` trains ``amount /
    batch_size`` steps; ``flops`` trains ``amount / flops_per_step`` steps, so a cheap method gets more steps
    than an expensive one for the same compute. Warm-up keeps its fraction of the steps.
    """

    optim = dict(spec["optim"])
    budget = spec.get("budget") or {"unit": "steps"}
    unit = budget["unit"]
    if unit == "samples":
        steps = max(1, round(budget["amount"] / optim["batch_size"]))
    elif unit == "flops":
        if not flops_per_step:
            raise ValueError(f"budget: flops needs the training FLOPs of a step of {spec['method']}; none were counted")
        steps = max(1, round(budget["amount"] / flops_per_step))
    else:
        steps = optim["steps"]
    if steps != optim["steps"]:
        optim["warmup_steps"] = min(steps, round(optim["warmup_steps"] * steps / optim["steps"]))
        optim["steps"] = steps
    record = {"unit": unit, "steps": steps, "samples": steps * optim["batch_size"]}
    if flops_per_step:
        record["flops"] = steps * flops_per_step
    if unit != "steps":
        record["amount"] = budget["amount"]
    return OptimSettings(**optim), record


def compute_used(steps_used: int, batch_size: int, flops_per_step: float | None) -> dict[str, Any]:
    """What a job actually spent — its steps, samples and training FLOPs — which early stopping can make
    less than its budget (the cap)."""
    used: dict[str, Any] = {"steps": steps_used, "samples": steps_used * batch_size}
    if flops_per_step:
        used["flops"] = steps_used * flops_per_step
    return used


def validation_for(
    spec: dict[str, Any], session: Session, model: Any, run_seed: int, flops_per_step: float | None
) -> Any:
    """The job's :class:`~benchmark.train.loop.Validation` from ``spec["validation"]``; None without one or
    without a val split.

    Pretraining is measured by its objectives on val batches and by the tasks that validate pretraining
    (``Task.validates_pretraining``, where the method can be measured so) — its learning curve, not a
    selection (the pretrained checkpoint is the last step's).
    Fine-tuning is measured by the task's metrics on the val subset, and with ``select`` keeps the step
    with the best summary metric. Validation evaluates in batches of the training batch size, so that a
    change of ``evaluate.batch_size`` (speed only) does not re-run training.

    Both watch one val metric (:func:`stopping_rule`): with ``patience`` in the spec they stop early on it,
    and either way it decides whether a job that ran to its cap was still improving.
    """

    settings = spec.get("validation")
    if not settings or "val" not in read_manifest(session.data_dir)["splits"]:
        return None
    val = session.split("val").head(settings["max_images"]).untagged()
    rule = stopping_rule(spec, model)
    if spec["stage"] == "pretrain":
        return Validation(
            settings["every"], pretrain_measure(spec, session, model, val, run_seed), None, flops_per_step, rule
        )

    def measure(trained: Any) -> dict[str, float]:
        return val_metrics(spec["task"], settings["task_settings"], trained, val, session, spec["optim"]["batch_size"])

    return Validation(
        settings["every"], measure, rule.metrics[0][0] if settings["select"] else None, flops_per_step, rule
    )


def stopping_rule(spec: dict[str, Any], model: Any) -> Any:
    """The val metric a training job watches (:class:`~benchmark.train.stopping.StoppingRule`), with the
    spec's ``validation.patience`` and ``min_delta`` (absent: early stopping off).

    Fine-tuning watches the task's summary metric (``robustness.summary_metric``, the one ``select`` keeps
    the best step of). Pretraining watches its val objective ``val_loss`` (lower is better) and the first
    headline metric of each task that validates it and can measure the method (val retrieval's ``mean_R``:
    the curves the learning-curve figure draws); it has converged when none of them improves.
    """

    settings = spec["validation"]
    stopping = {"patience": settings.get("patience"), "min_delta": float(settings.get("min_delta", 0.0))}
    if spec["stage"] != "pretrain":
        return StoppingRule(((f"val_{settings['metric']}", True),), **stopping)
    tasks = [(f"val_{get_task(name).headline_metrics[0]}", True) for name in _pretraining_tasks(spec, model)]
    return StoppingRule((("val_loss", False), *tasks), **stopping)


def _pretraining_tasks(spec: dict[str, Any], model: Any) -> list[str]:
    """The tasks whose val metrics a pretraining job of ``model`` records (``spec["validation"][<task>]``)."""
    settings = spec["validation"]
    return [
        name
        for name in task_names()
        if name in settings and get_task(name).validates_pretraining and get_task(name).measures_pretraining(model)
    ]


def val_metrics(
    task_name: str, settings: dict[str, Any], model: Any, val: Any, session: Session, batch_size: int
) -> dict[str, float]:
    """The task's metrics on the val subset ``val``, scored as the main table scores test (``settings``), as
    ``val_<metric>``; undefined ones left out."""
    task = get_task(task_name)
    subset = task.subset_settings(settings, len(val))
    metrics = task.evaluate(model, val, session.tokenizer, session.device, batch_size, subset)[0]
    return {f"val_{k}": v for k, v in metrics.items() if v is not None}


def pretrain_measure(spec: dict[str, Any], session: Session, model: Any, val: Any, run_seed: int) -> Any:
    """Validation of a pretraining job: each objective (and their weighted sum) on ``batches`` fixed val
    batches, and the metrics of each task the spec names (``settings[<task>]``: its evaluation settings, for a
    task that validates pretraining) where the task can measure the method."""

    settings = spec["validation"]
    torch = session.torch
    data = ImageTextData.from_split(val, session.tokenizer, session.device, model.ctx.concepts)
    batch_size = min(spec["optim"]["batch_size"], len(data))
    weights = model.objective_weights
    measured = {name: settings[name] for name in _pretraining_tasks(spec, model)}
    seed = derive_seed(run_seed, "validation")

    def measure(trained: Any) -> dict[str, float]:
        sums: dict[str, float] = {}
        for index in range(settings["batches"]):
            torch.manual_seed(derive_seed(seed, index))  # the same masks at every point; the loop re-seeds each step
            with autocast(session.device):
                losses = trained.pretrain_losses(data.batch(index, batch_size, seed))
            losses["loss"] = weighted_total(losses, weights)
            for name, value in losses.items():
                sums[f"val_{name}"] = sums.get(f"val_{name}", 0.0) + float(value) / settings["batches"]
        for name, task_settings in measured.items():
            sums.update(val_metrics(name, task_settings, trained, val, session, spec["optim"]["batch_size"]))
        return sums

    return measure


def check_batch_fits(spec: dict[str, Any], available: int, unit: str) -> None:
    """The job's training batch fits its built training split (``available`` ``unit``, after the subset and the
    leakage guard): a batch never holds an item twice, so a larger one could never be drawn. A configuration
    error (exit 2) naming the key, found before the first step; the configuration check finds most cases before
    any job starts (:func:`benchmark.config.validate_config`)."""
    batch_size = spec["optim"]["batch_size"]
    if batch_size > available:
        where = "pretrain" if spec["stage"] == "pretrain" else f"finetune.{spec['task']}"
        raise ConfigError(
            f"'{where}.batch_size' ({batch_size}) exceeds the {available} training {unit} of dataset "
            f"{spec['dataset']!r} as built (after its subset and leakage guard); lower it to at most {available}"
        )


def not_applicable_checkpoint(
    spec: dict[str, Any], model: Any, meta: dict[str, Any], out_dir: Path, reason: str, started: float
) -> None:
    """A method that cannot do the task (or be built on the data): keep its weights if any, and say so."""

    meta = {**meta, "spec_hash": config_hash(spec), "stage": spec["stage"], "not_applicable": reason}
    if model is None:
        save_not_applicable(out_dir / CHECKPOINT_FILE, {**meta, "without_weights": True})
    else:
        save_checkpoint(out_dir / CHECKPOINT_FILE, model, meta)
    described = model.describe() if model is not None else {"name": spec["method"]}
    write_json(
        out_dir / TRAINING_RECORD_FILE,
        result_record(spec, started, status="not applicable", reason=reason, method=described),
    )
    log.info("%s %s: not applicable (%s)", spec.get("task", spec["stage"]), spec["method"], reason)

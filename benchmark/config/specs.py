"""Stage specs: the slice of the configuration one job's result depends on, built by one function per stage.

Every job consumes a *stage spec* and nothing else. Snakemake passes the spec as a job parameter,
so changing a key re-runs exactly the jobs whose spec contains it, and each result records the
hash of the spec it was made from. Kept minimal on purpose: adding a key to a stage's spec re-runs
every job of that stage. Each stage's ``TypedDict`` names its keys (a plain JSON-serialisable dict
at run time); :data:`STAGE_SPECS` maps a stage to the function that builds its spec.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, NotRequired, TypedDict

from benchmark.config.grid import (
    base_method,
    control_pairs,
    is_tuned,
    leakage_exclusions,
    method_hparams,
    method_model,
    method_training,
    pretrain_dataset,
    run_tasks,
    served_tasks,
    text_tokenizer_init,
    variant_lr_factor,
)
from benchmark.errors import ConfigError
from benchmark.tasks import get_task
from benchmark.train.tuning import scaled_spec, trial_label

Config = Mapping[str, Any]


class JobSpec(TypedDict):
    """What every per-method job's spec starts with."""

    stage: str
    dataset: str | None
    method: str | None
    seed: int | None
    device: str
    task: NotRequired[str]
    base_method: NotRequired[str]  # a variant: the file in baselines/ it is built from (its overrides in the spec)


class TrainingSpec(JobSpec):
    """A pretraining or fine-tuning job (a fine-tuning job from a FuseBench checkpoint has no build keys)."""

    optim: dict[str, Any]
    max_length: NotRequired[int]  # the build keys: what a method is built from where no checkpoint holds it
    model: NotRequired[dict[str, Any]]
    overrides: NotRequired[dict[str, Any]]
    pretrained_on: NotRequired[str]  # fine-tuning: the dataset its checkpoint was pretrained on
    budget: NotRequired[dict[str, Any]]  # pretraining under a samples or FLOPs budget
    validation: NotRequired[dict[str, Any]]
    tuning: NotRequired[dict[str, Any]]
    compile: NotRequired[str]


class EvaluationSpec(JobSpec):
    """An evaluation (the task's ``evaluate.<task>`` settings inline) or robustness job."""

    batch_size: int
    zero_shot: NotRequired[bool]
    overrides: NotRequired[dict[str, Any]]
    task_settings: NotRequired[dict[str, Any]]  # robustness: the main table's evaluation settings
    robustness: NotRequired[dict[str, Any]]


def _job(
    config: Config, stage: str, dataset: str | None, method: str | None, seed: int | None, task: str | None
) -> JobSpec:
    job: JobSpec = {"stage": stage, "dataset": dataset, "method": method, "seed": seed, "device": config["device"]}
    if task is not None:
        job["task"] = task
    if method is not None and (base := base_method(config, method)) != method:
        job["base_method"] = base
    return job


def _optim(config: Config, block: Mapping[str, Any], method: str | None) -> dict[str, Any]:
    """A training job's optimiser block: the configured one, its learning rate × a variant's ``lr_factor``
    (unchanged, so that no key moves, for a method or a factor of 1)."""
    optim = copy.deepcopy(dict(block))
    factor = variant_lr_factor(config, method) if method is not None else 1.0
    if factor != 1.0:
        optim["lr"] = optim["lr"] * factor
    return optim


def _build(config: Config, method: str | None) -> dict[str, Any]:
    """What a method is built from where no checkpoint of this run holds it."""
    return {
        "max_length": config["tokenizer"]["max_length"],
        "model": method_model(config, method),
        "overrides": method_hparams(config, method),
    }


def _training(config: Config, method: str | None) -> tuple[str, ...]:
    return method_training(method, config) if method is not None else ("pretrain", "finetune")


def _options(config: Config, method: str | None) -> dict[str, Any]:
    """How a training job trains beyond its optimiser block: the learning-rate factors it is tuned over, and the
    compiled step (each key only when on, so that leaving it off re-runs nothing)."""
    options: dict[str, Any] = {"tuning": copy.deepcopy(config["tuning"])} if is_tuned(config, method) else {}
    if config.get("compile"):
        options["compile"] = config["compile"]
    return options


def _evaluated(config: Config, job: JobSpec, method: str | None) -> dict[str, Any]:
    """An evaluation or robustness job: a zero-shot method is built from its own weights (its overrides name them)."""
    if _training(config, method):
        return dict(job)
    return {**job, "zero_shot": True, "overrides": method_hparams(config, method)}


def validation_spec(config: Config, task: str | None = None) -> dict[str, Any]:
    """``{"validation": …}`` for a training job's spec: how its learning curve is measured on the val split,
    and for fine-tuning (``task``) the metric its checkpoint is selected by; ``{}`` when validation is off.

    Pretraining is validated by its own objectives and by the run's tasks that validate pretraining
    (``Task.validates_pretraining``), each keyed by its name with the main table's ``evaluate.<task>`` settings;
    fine-tuning by the task's metrics, selected on its summary metric. Early stopping's ``patience`` and
    ``min_delta`` join the spec only when ``patience`` is set, so that leaving it off re-runs nothing.
    """

    settings = config["validation"]
    if not settings["every"]:
        return {}
    spec = {k: settings[k] for k in ("every", "max_images")}
    if settings.get("patience"):
        spec.update({k: settings[k] for k in ("patience", "min_delta")})
    if task is None:
        spec["batches"] = settings["batches"]
        for task_name in run_tasks(config):
            if get_task(task_name).validates_pretraining:
                spec[task_name] = copy.deepcopy(config["evaluate"][task_name])
    else:
        spec["select"] = settings["select"]
        spec["metric"] = config["robustness"]["summary_metric"][task]
        spec["task_settings"] = copy.deepcopy(config["evaluate"][task])
    return {"validation": spec}


def data_spec(config: Config, *, dataset: str | None, **_: Any) -> dict[str, Any]:
    """The dataset block, and the evaluation images of the datasets pretrained on it (the leakage guard)."""
    spec = {"stage": "data", "dataset": dataset, **copy.deepcopy(config["datasets"][dataset])}
    exclusions = leakage_exclusions(config, dataset)
    return {**spec, "exclude_images": exclusions} if exclusions else spec


def tokenizer_spec(config: Config, *, dataset: str | None, method: str | None, **_: Any) -> dict[str, Any]:
    """The trained WordPiece's settings, or a pretrained text tower's own tokenizer (``init``)."""
    if method is not None and (init := text_tokenizer_init(config, method)) is not None:
        return {"stage": "tokenizer", "init": init, "max_length": config["tokenizer"]["max_length"]}
    return {"stage": "tokenizer", "dataset": dataset, **copy.deepcopy(config["tokenizer"])}


def pretrain_spec(
    config: Config, *, dataset: str | None, method: str | None, seed: int | None, task: str | None
) -> TrainingSpec:
    job = _job(config, "pretrain", dataset, method, seed, task)
    budget = {"budget": copy.deepcopy(config["budget"])} if config["budget"]["unit"] != "steps" else {}
    return {  # type: ignore[typeddict-item]
        **job,
        **_build(config, method),
        "optim": _optim(config, config["pretrain"], method),
        **budget,
        **validation_spec(config),
        **_options(config, method),
    }


def finetune_spec(
    config: Config, *, dataset: str | None, method: str | None, seed: int | None, task: str | None
) -> TrainingSpec:
    """From the run's pretrained checkpoint, or (a method not pretrained here) from its own published weights."""
    job = _job(config, "finetune", dataset, method, seed, task)
    finetuning = {
        "optim": _optim(config, config["finetune"][task], method),
        **validation_spec(config, task),
        **_options(config, method),
    }
    if "pretrain" not in _training(config, method):
        return {**job, **_build(config, method), **finetuning}  # type: ignore[typeddict-item]
    return {**job, "pretrained_on": pretrain_dataset(config, dataset), **finetuning}  # type: ignore[typeddict-item]


def evaluate_spec(
    config: Config, *, dataset: str | None, method: str | None, seed: int | None, task: str | None
) -> EvaluationSpec:
    job = _evaluated(config, _job(config, "evaluate", dataset, method, seed, task), method)
    return {**job, "batch_size": config["evaluate"]["batch_size"], **copy.deepcopy(config["evaluate"][task])}  # type: ignore[typeddict-item]


def robustness_spec(
    config: Config, *, dataset: str | None, method: str | None, seed: int | None, task: str | None
) -> EvaluationSpec:
    job = _evaluated(config, _job(config, "robustness", dataset, method, seed, task), method)
    return {  # type: ignore[typeddict-item]
        **job,
        "batch_size": config["evaluate"]["batch_size"],
        "task_settings": copy.deepcopy(config["evaluate"][task]),
        "robustness": {
            k: copy.deepcopy(v)
            for k, v in config["robustness"].items()
            if k not in ("reference_method", "summary_metric") and not (k == "sentence_models" and not v)
        },
    }


def report_spec(config: Config, **_: Any) -> dict[str, Any]:
    """What the tables depend on beyond the result files."""
    robustness = config["robustness"]
    return {
        "stage": "report",
        "reference_method": robustness["reference_method"],
        "summary_metric": {t: robustness["summary_metric"][t] for t in served_tasks(config)},
        "max_images": robustness["max_images"],
        **({"control_pairs": control_pairs(config)} if control_pairs(config) else {}),
    }


def reference_spec(config: Config, *, dataset: str | None, task: str | None, **_: Any) -> dict[str, Any]:
    """A task's reference rows (chance, oracle, ...): only the evaluation settings they read."""

    settings = config["evaluate"][task]
    keep = get_task(task).reference_settings
    return {"stage": "reference", "dataset": dataset, "task": task, **{k: copy.deepcopy(settings[k]) for k in keep}}


STAGE_SPECS: dict[str, Callable[..., Mapping[str, Any]]] = {
    "data": data_spec,
    "tokenizer": tokenizer_spec,
    "pretrain": pretrain_spec,
    "finetune": finetune_spec,
    "evaluate": evaluate_spec,
    "robustness": robustness_spec,
    "report": report_spec,
    "reference": reference_spec,
}
"""Stage → the function that builds its spec from the configuration and the job's wildcards."""


def stage_spec(
    config: Config,
    stage: str,
    *,
    dataset: str | None = None,
    method: str | None = None,
    seed: int | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """The part of ``config`` that the result of one job of ``stage`` depends on (:data:`STAGE_SPECS`)."""
    if dataset is not None and dataset not in config["datasets"]:
        raise ConfigError(f"unknown dataset {dataset!r}; configured: {', '.join(config['datasets'])}")
    if task is not None and task not in run_tasks(config):
        raise ConfigError(f"unknown task {task!r}; configured: {', '.join(run_tasks(config))}")
    if stage not in STAGE_SPECS:
        raise ConfigError(f"unknown stage {stage!r}; stages: {', '.join(STAGE_SPECS)}")
    return dict(STAGE_SPECS[stage](config, dataset=dataset, method=method, seed=seed, task=task))


def trial_spec(
    config: Config,
    stage: str,
    factor: float,
    *,
    dataset: str,
    method: str,
    task: str | None = None,
    tuned: str = "pretrain",
) -> dict[str, Any]:
    """The spec of one tuning trial's pretraining or fine-tuning job (:mod:`benchmark.train.tuning`): the
    method's job at the tuning seed, for the trial of ``tuned``'s learning rate × ``factor``. A pretraining
    trial pretrains at ``pretrain.lr`` × factor; its fine-tuning (``stage`` finetune, ``tuned`` pretrain)
    measures it at the configured fine-tuning rate; a fine-tuning trial (``tuned`` finetune) fine-tunes at
    ``finetune.<task>.lr`` × factor."""

    label = trial_label(tuned, factor)
    if stage == "pretrain" and tuned != "pretrain":
        raise ValueError(f"a pretraining job is a trial of the pretraining learning rate, not of {tuned!r}")
    spec = stage_spec(config, stage, dataset=dataset, method=method, seed=config["tuning"]["seed"], task=task)
    spec.pop("tuning", None)
    return {**(scaled_spec(spec, factor) if stage == tuned else spec), "tuning_trial": label}

"""Validate a merged configuration: one readable line per problem, naming the key and what is allowed.

The JSON schema (``workflows/schemas/config.schema.yaml``) checks types and closed key sets; the
plug-ins check their own blocks (each task's ``evaluate.<task>`` and each adapter's
``datasets.<name>`` against their schemas); the rest are constraints between keys that a schema
cannot express (a batch larger than its training split, a warm-up longer than training, ...).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from benchmark.config.grid import (
    control_pairs,
    dataset_tasks,
    method_hparams,
    method_model,
    method_training,
    needed_datasets,
    pretrain_dataset,
    run_datasets,
    run_tasks,
    variants,
)
from benchmark.config.merge import deep_merge, load_yaml
from benchmark.datasets import dataset_kinds, get_adapter
from benchmark.errors import ConfigError
from benchmark.paths import SCHEMA_PATH
from benchmark.registry import NOT_LITERAL, declared_attributes, method_names, method_path
from benchmark.tasks import check_all_tasks, get_task, task_names


def _schema() -> dict[str, Any]:
    return load_yaml(SCHEMA_PATH)


def _dotted(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path)


def _describe(error: Any) -> list[str]:
    """One readable line per problem: the key, what is wrong, and what is allowed."""
    where = _dotted(error.absolute_path)
    label = f"'{where}'" if where else "the top level"
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        lines = []
        for key in sorted(set(error.instance) - set(allowed)):
            full = f"{where}.{key}" if where else key
            hint = difflib.get_close_matches(key, allowed, n=1)
            lines.append(
                f"unknown key '{full}'"
                + (f" (did you mean '{hint[0]}'?)" if hint else "")
                + f"; allowed keys in {label}: {', '.join(allowed)}"
            )
        return lines
    if kind == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return [f"{label} = {error.instance!r} is not allowed; allowed values: {allowed}"]
    if kind == "const":
        return [f"{label} = {error.instance!r}; the only allowed value is {error.validator_value!r}"]
    if kind == "type":
        return [
            f"{label} must be of type {error.validator_value}, got {type(error.instance).__name__} {error.instance!r}"
        ]
    if kind == "required":
        return [f"{label} is missing a required key: {error.message.split(' ')[0]}"]
    if kind == "oneOf" and where == "methods":
        return [f"'methods' = {error.instance!r}; allowed: the string 'all' or a list of method names"]
    if kind == "pattern":
        return [f"{label} = {error.instance!r} must match {error.validator_value}"]
    return [f"{label}: {error.message}"]


def _block_problems(instance: Any, schema: dict[str, Any], prefix: str) -> list[str]:
    """Schema problems of one configuration block, with keys named from the top of the config."""
    from jsonschema import Draft202012Validator

    problems = []
    errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=lambda e: [str(p) for p in e.path])
    for error in errors:
        error.path.extendleft(reversed(prefix.split(".")))
        problems.extend(_describe(error))
    return problems


def _task_problems(config: Mapping[str, Any]) -> list[str]:
    """The run's tasks exist, and each has its finetune / evaluate / summary-metric block, valid for it."""

    try:
        check_all_tasks()  # every plug-in file, used or not: a broken one is found before any job
    except ConfigError as error:
        return [str(error)]
    available = task_names()
    wanted = [t for t in available if not get_task(t).opt_in] if config["tasks"] == "all" else list(config["tasks"])
    problems = []
    unknown = [t for t in wanted if t not in available]
    if unknown:
        problems.append(f"'tasks' names unknown task(s) {unknown}; available: {', '.join(available)}")
    summary = config["robustness"]["summary_metric"]
    blocks = (
        ("finetune", config["finetune"]),
        ("evaluate", config["evaluate"]),
        ("robustness.summary_metric", summary),
    )
    for where, block in blocks:
        extra = sorted(set(block) - set(available) - {"batch_size"})
        if extra:
            problems.append(f"'{where}' has entries for unknown task(s) {extra}; available: {', '.join(available)}")
    for name in (t for t in wanted if t in available):
        task = get_task(name)
        missing = [where for where, block in blocks if name not in block]
        problems += [f"'{w}.{name}' is missing: task {name!r} ({task.source}) needs it" for w in missing]
        if name in config["evaluate"]:
            problems += _block_problems(config["evaluate"][name], task.settings_schema, f"evaluate.{name}")
        if name in summary and summary[name] not in task.table_metrics:
            problems.append(
                f"'robustness.summary_metric.{name}' = {summary[name]!r} is not a {name} metric of the tables; "
                f"allowed: {', '.join(task.table_metrics)}"
            )
    return problems


def _dataset_problems(config: Mapping[str, Any]) -> list[str]:
    """Each dataset block against its adapter's schema and checks; each dataset serves a task of the run."""

    problems, kinds = [], dataset_kinds()
    for kind in kinds:  # every plug-in file, used or not: a broken one is found before any job
        try:
            get_adapter(kind)
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        return problems
    unknown = [d for d in run_datasets(config) if d not in config["datasets"]]
    if unknown:
        return [f"'run_datasets' names unknown dataset(s) {unknown}; configured: {', '.join(config['datasets'])}"]
    patch = config["model"]["vision"]["patch_size"]
    needed = needed_datasets(config)
    for name, block in config["datasets"].items():
        if block["kind"] not in kinds:
            problems.append(f"'datasets.{name}.kind' = {block['kind']!r} is not allowed; allowed values: {kinds}")
            continue
        if name not in needed:  # only the datasets that get built are checked (a profile may define more)
            continue
        adapter = get_adapter(block["kind"])
        block_problems = _block_problems(block, adapter.config_schema, f"datasets.{name}")
        if "root" not in block and "root" in adapter.config_schema.get("required", []):
            block_problems = [
                f"'datasets.{name}' ({block['kind']}) reads official files but has no 'root': set 'data_root' to "
                f"the folder in the layout of docs/datasets.md, 'Real datasets' "
                f"(snakemake --config data_root=/path/to/data; "
                f"fusebench --set data_root=/path/to/data), or 'datasets.{name}.root'"
            ]
        if not block_problems:
            block_problems = [f"'datasets.{name}.{key}': {problem}" for key, problem in adapter.check(dict(block))]
            size = adapter.image_size(dict(block))
            if size is not None and size % patch:
                block_problems.append(
                    f"'datasets.{name}.image_size' ({size}) must be a multiple of 'model.vision.patch_size' ({patch})"
                )
            block_problems += _pretrain_source_problems(config, name)
            is_source = any(pretrain_dataset(config, d) == name for d in run_datasets(config) if d != name)
            if not block_problems and not is_source and not dataset_tasks(config, name):
                block_problems.append(
                    f"'datasets.{name}' ({block['kind']}) serves none of the run's tasks {run_tasks(config)}"
                )
        problems += block_problems
    return problems


def _batch_problems(config: Mapping[str, Any]) -> list[str]:
    """Training batches no larger than the training splits they draw from, where the configuration fixes the
    split's size (a generated split, a numeric ``subset.train``, an official size): pretraining draws images
    from the pretraining dataset, fine-tuning draws its task's ``training_unit`` from the dataset itself.
    A batch never holds an item twice (:func:`benchmark.data.sampling.batch_indices`), so a larger one could
    never be drawn; the job checks the built split again (the leakage guard can shrink it)."""

    def train_images(name: str) -> int | None:
        block = config["datasets"][name]
        return get_adapter(block["kind"]).train_images(dict(block))

    checks = {("pretrain", config["pretrain"]["batch_size"], pretrain_dataset(config, d)) for d in run_datasets(config)}
    checks |= {
        (f"finetune.{task}", config["finetune"][task]["batch_size"], d)
        for d in run_datasets(config)
        for task in dataset_tasks(config, d)
        if get_task(task).training_unit == "images"
    }
    problems = []
    for where, batch_size, dataset in sorted(checks):
        available = train_images(dataset)
        if available is not None and batch_size > available:
            problems.append(
                f"'{where}.batch_size' ({batch_size}) exceeds the {available} training images of dataset "
                f"{dataset!r} (datasets.{dataset}); lower it to at most {available}, or use more training images"
            )
    return problems


def _pretrain_source_problems(config: Mapping[str, Any], name: str) -> list[str]:
    """``pretrain_from`` names another dataset that pretraining can use, at the same image size."""

    source = config["datasets"][name].get("pretrain_from")
    if source is None:
        return []
    where = f"'datasets.{name}.pretrain_from' = {source!r}"
    if source == name or source not in config["datasets"]:
        return [f"{where} must name another configured dataset; configured: {', '.join(config['datasets'])}"]
    block = config["datasets"][source]
    if "pretrain_from" in block:
        return [f"{where} itself pretrains on {block['pretrain_from']!r}; chains are not supported"]
    adapter = get_adapter(block["kind"])
    if not {"images", "captions"} <= set(adapter.provides):
        return [f"{where}: a {block['kind']} dataset has no captions to pretrain on"]
    sizes = (
        get_adapter(config["datasets"][name]["kind"]).image_size(dict(config["datasets"][name])),
        adapter.image_size(dict(block)),
    )
    if sizes[0] != sizes[1]:
        return [f"{where}: image sizes differ ({sizes[0]} here, {sizes[1]} there); the pretrained towers need one size"]
    return []


def _semantic_problems(config: Mapping[str, Any]) -> list[str]:
    """Constraints between keys that a JSON schema cannot express."""
    problems = []
    model = config.get("model", {})
    for tower in ("vision", "text"):
        spec = model.get(tower, {})
        if spec.get("width", 0) % max(spec.get("heads", 1), 1):
            problems.append(
                f"'model.{tower}.width' ({spec['width']}) must be divisible by 'model.{tower}.heads' ({spec['heads']})"
            )
    problems += _method_model_problems(config)
    problems += _variant_problems(config)
    problems += _sentence_model_problems(config)
    stages = {"pretrain": config.get("pretrain", {})}
    stages.update({f"finetune.{t}": s for t, s in config.get("finetune", {}).items()})
    for where, optim in stages.items():
        if optim.get("batch_size", 0) % config.get("gpus_per_job", 1):
            problems.append(
                f"'{where}.batch_size' ({optim['batch_size']}) must be divisible by 'gpus_per_job' "
                f"({config['gpus_per_job']}): each process trains on its slice of the global batch"
            )
        if optim.get("warmup_steps", 0) > optim.get("steps", 0):
            problems.append(
                f"'{where}.warmup_steps' ({optim['warmup_steps']}) exceeds '{where}.steps' ({optim['steps']})"
            )
    tuning = config.get("tuning", {})
    if tuning.get("lr_factors") and not config.get("validation", {}).get("every"):
        problems.append("'tuning.lr_factors' chooses on val: it needs 'validation.every' (null turns validation off)")
    budget = config.get("budget", {})
    if (budget.get("unit") == "steps") != (budget.get("amount") is None):
        problems.append(
            f"'budget.amount' ({budget.get('amount')}) must be null with unit 'steps' and a number with "
            f"'samples' or 'flops' (unit {budget.get('unit')!r})"
        )
    return problems


def _sentence_model_problems(config: Mapping[str, Any]) -> list[str]:
    """Each sentence-level perturbation in ``robustness.text`` has its model in ``robustness.sentence_models``."""
    from benchmark.corruptions.text import SENTENCE_PERTURBATIONS, model_required

    robustness = config.get("robustness", {})
    models = robustness.get("sentence_models") or {}
    wanted = [n for n in robustness.get("text", []) if n in SENTENCE_PERTURBATIONS and n not in models]
    return [f"'robustness.text' lists {name!r}: {model_required(name)}" for name in wanted]


def _method_model_problems(config: Mapping[str, Any]) -> list[str]:
    """Each ``method_overrides.<m>.model``, merged into ``model``, is a valid model block."""
    from jsonschema import Draft202012Validator

    schema = _schema()
    validator = Draft202012Validator({**schema["properties"]["model"], "$defs": schema["$defs"]})
    problems = []
    for method, overrides in config.get("method_overrides", {}).items():
        if not isinstance(overrides, Mapping) or not isinstance(overrides.get("model"), Mapping):
            continue
        merged = deep_merge(config.get("model", {}), overrides["model"])
        for error in validator.iter_errors(merged):
            for line in _describe(error):
                problems.append(line.replace("'", f"'method_overrides.{method}.model.", 1))
    return problems


def _variant_problems(config: Mapping[str, Any]) -> list[str]:
    """Each variant names a method file, overrides only its hyperparameters, builds a valid model block and
    keeps a pretraining objective; each control pair names two of the run's possible rows."""
    from jsonschema import Draft202012Validator

    available = method_names()
    found = variants(config)
    schema = _schema()
    validator = Draft202012Validator({**schema["properties"]["model"], "$defs": schema["$defs"]})
    problems = []
    for name, variant in found.items():
        where = f"'variants.{name}"
        if name in available:
            problems.append(f"{where}' is the name of a method file (baselines/{name}.py); give the variant its own")
            continue
        base = variant["base"]
        if base not in available:
            problems.append(
                f"{where}.base' = {base!r} is not a method in baselines/; available: {', '.join(available)}"
            )
            continue
        defaults = declared_attributes(method_path(base)).get("defaults")
        overrides = variant.get("overrides") or {}
        if isinstance(defaults, dict):
            problems += _override_problems(f"variants.{name}.overrides", base, defaults, overrides)
            weights = method_hparams(config, name).get("objectives", {})
            objectives = deep_merge(defaults.get("objectives") or {}, weights)
            trained = "pretrain" in method_training(name, config)
            if trained and objectives and not any(v for v in objectives.values() if v != NOT_LITERAL):
                problems.append(f"{where}.overrides.objectives' sets every objective of {base} to 0; keep one")
        for error in validator.iter_errors(method_model(config, name)):
            problems += [line.replace("'", f"{where}.model.", 1) for line in _describe(error)]
    rows = set(available) | set(found)
    for index, pair in enumerate(control_pairs(config)):
        for side in ("a", "b"):
            if pair[side] not in rows:
                problems.append(
                    f"'control_pairs[{index}].{side}' = {pair[side]!r} is neither a method nor a variant; "
                    f"available: {', '.join(sorted(rows))}"
                )
        if pair["a"] == pair["b"]:
            problems.append(f"'control_pairs[{index}]' compares {pair['a']!r} with itself")
    return problems


def _override_problems(where: str, base: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[str]:
    """Each key of ``overrides`` is one of the base's ``defaults`` (a dict value's keys too, e.g. objective names),
    as :func:`benchmark.models.method.merge_hparams` will require when the method is built."""
    problems = []
    for key, value in overrides.items():
        if key not in defaults:
            problems.append(
                f"'{where}.{key}' is not a hyperparameter of {base}; allowed: {', '.join(sorted(map(str, defaults)))}"
            )
        elif isinstance(defaults[key], dict) and isinstance(value, Mapping):
            unknown = sorted(set(value) - set(defaults[key]))
            if unknown:
                problems.append(
                    f"'{where}.{key}' has unknown key(s) {unknown} for {base}; "
                    f"allowed: {', '.join(sorted(defaults[key]))}"
                )
    return problems


def validate_config(config: Mapping[str, Any], sources: Iterable[str] = ()) -> None:
    """Raise :class:`ConfigError` listing every problem, or return silently."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(_schema())
    problems: list[str] = []
    for error in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        problems.extend(_describe(error))
    if not problems:
        problems = _task_problems(config)
        problems = problems or _dataset_problems(config) or _batch_problems(config)
        problems += _semantic_problems(config)
    if problems:
        origin = f" (from {', '.join(sources)})" if sources else ""
        raise ConfigError("invalid FuseBench configuration" + origin + ":\n  - " + "\n  - ".join(problems))

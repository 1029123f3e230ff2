"""Configuration: load, merge, validate, hash, and cut into per-stage specs.

Defaults live in exactly one place, ``workflows/config/default.yaml``. A profile or a user file
is merged on top of it (dicts merge key by key, everything else is replaced), which is also
what Snakemake does with its ``configfile:`` directive followed by ``--configfile``.

Every job consumes a *stage spec*: the slice of the configuration its result depends on and
nothing else. Snakemake passes the spec as a job parameter, so changing a key re-runs exactly
the jobs whose spec contains it, and each result records the hash of the spec it was made from.

This module imports only the standard library, PyYAML and jsonschema (both Snakemake
dependencies), so the Snakefile can use it without torch being importable.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "workflows" / "config" / "default.yaml"
PROFILES_DIR = REPO_ROOT / "workflows" / "config"
SCHEMA_PATH = REPO_ROOT / "workflows" / "schemas" / "config.schema.yaml"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, naming the file in every failure."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``; nested mappings merge, other values replace."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(assignment: str) -> dict[str, Any]:
    """Turn ``a.b.c=value`` (value parsed as YAML) into ``{"a": {"b": {"c": value}}}``."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like key.path=value")
    dotted, raw = assignment.split("=", 1)
    keys = [k for k in dotted.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {assignment!r} has an empty key")
    value: Any = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str):  # YAML 1.1 reads "2e-3" as a string; Python reads it as a number
        for number in (int, float):
            try:
                value = number(value)
                break
            except ValueError:
                pass
    for key in reversed(keys):
        value = {key: value}
    return value


def load_config(files: Iterable[str | Path] = (), overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Default config, then each file, then each ``key=value`` override; validated."""
    config = load_yaml(DEFAULT_CONFIG)
    sources = [str(DEFAULT_CONFIG)]
    for path in files:
        config = deep_merge(config, load_yaml(path))
        sources.append(str(path))
    for assignment in overrides:
        config = deep_merge(config, parse_override(assignment))
        sources.append(f"override {assignment}")
    config = completed(config)
    validate_config(config, sources=sources)
    return config


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
    from benchmark.tasks import check_all_tasks, get_task, task_names

    try:
        check_all_tasks()  # every plug-in file, used or not: a broken one is found before any job
    except ConfigError as error:
        return [str(error)]
    available = task_names()
    wanted = available if config["tasks"] == "all" else list(config["tasks"])
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
    from benchmark.datasets import dataset_kinds, get_adapter

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
                f"the folder in the layout of README, 'Real datasets' (snakemake --config data_root=/path/to/data; "
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
    from benchmark.datasets import get_adapter
    from benchmark.tasks import get_task

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
    from benchmark.datasets import get_adapter

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


def with_task_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` plus the blocks a plug-in task brings (``Task.defaults``) where the config has none.

    Built-in tasks keep their defaults in ``workflows/config/default.yaml``; a task file from
    ``$FUSEBENCH_TASKS`` carries its own, so adding a task is one file.
    """
    from benchmark.tasks import get_task, task_names

    merged = copy.deepcopy(dict(config))
    robustness = merged.get("robustness")
    summary = robustness.get("summary_metric") if isinstance(robustness, dict) else None
    for name in task_names():
        defaults = get_task(name).defaults
        for section in ("finetune", "evaluate"):
            block = merged.get(section)
            if section in defaults and isinstance(block, dict) and name not in block:
                block[name] = copy.deepcopy(defaults[section])
        if "summary_metric" in defaults and isinstance(summary, dict) and name not in summary:
            summary[name] = defaults["summary_metric"]
    return merged


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


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal objects give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(obj: Any) -> str:
    """Short content hash (sha256, 16 hex digits) of any JSON-serialisable object."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


def resolve_methods(config: Mapping[str, Any], available: Iterable[str]) -> list[str]:
    """The methods a run covers, checked against the files in ``baselines/``."""
    available = sorted(available)
    overrides = set(config.get("method_overrides", {})) - set(available)
    if overrides:
        raise ConfigError(
            f"'method_overrides' names unknown method(s) {sorted(overrides)}; "
            f"available in baselines/: {', '.join(available)}"
        )
    reference = config.get("robustness", {}).get("reference_method")
    if reference is not None and reference not in available:
        raise ConfigError(
            f"'robustness.reference_method' = {reference!r} is not a method; "
            f"available in baselines/: {', '.join(available)}"
        )
    wanted = config["methods"]
    if wanted == "all":  # every method, except published models whose weights nobody named
        return [m for m in available if published_weights(config, m) is not False]
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise ConfigError(
            f"'methods' names unknown method(s) {unknown}; available in baselines/: {', '.join(available)}"
        )
    without = [m for m in wanted if published_weights(config, m) is False]
    if without:
        raise ConfigError(
            f"'methods' names published model(s) {without} without weights: set "
            + ", ".join(f"'method_overrides.{m}.pretrained'" for m in without)
            + " to a local directory (or a hub name when online); see README, 'Published models'"
        )
    return list(wanted)


def published_weights(config: Mapping[str, Any], method: str) -> str | bool | None:
    """The weights a published-model method reads (its ``pretrained``), False when it has none set,
    None for a method trained from scratch."""
    from benchmark.registry import method_schedule

    schedule = method_schedule(method)
    if not schedule.published:
        return None
    value = config.get("method_overrides", {}).get(method, {}).get("pretrained", schedule.pretrained)
    return value if value else False


def method_training(method: str) -> tuple[str, ...]:
    """The stages ``method`` is trained in (() = zero-shot), read from its file without importing it.

    A method without a file is trained like the built-ins here; loading it names the missing file."""
    from benchmark.registry import baselines_dir, method_schedule

    if not (baselines_dir() / f"{method}.py").is_file():
        return ("pretrain", "finetune")
    return method_schedule(method).training_stages


def method_hparams(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """``method_overrides.<method>`` without its ``model`` key: the method's hyperparameter overrides."""
    overrides = config.get("method_overrides", {}).get(method, {})
    return {k: copy.deepcopy(v) for k, v in overrides.items() if k != "model"}


def method_model(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The model block ``method`` is built from: ``model`` updated key by key by ``method_overrides.<method>.model``."""
    return deep_merge(config["model"], config.get("method_overrides", {}).get(method, {}).get("model", {}))


def text_tokenizer_init(config: Mapping[str, Any], method: str) -> str | None:
    """The pretrained text tower whose own tokenizer ``method`` uses, or None for the run's trained WordPiece."""
    init = method_model(config, method)["text"].get("init", "random")
    return None if init == "random" else str(init)


def tokenizer_slug(init: str) -> str:
    """A file name for the tokenizer of a pretrained text tower: its last path part and a hash of the whole."""
    import re

    stem = re.sub(r"[^a-z0-9]+", "_", Path(str(init).rstrip("/")).name.lower()).strip("_") or "text"
    return f"{stem}_{config_hash(str(init))[:8]}"


def run_tasks(config: Mapping[str, Any]) -> list[str]:
    """The tasks a run covers, in task order ('all' = every available task)."""
    from benchmark.tasks import task_names

    return [t for t in task_names() if config["tasks"] == "all" or t in config["tasks"]]


def run_datasets(config: Mapping[str, Any]) -> list[str]:
    """The datasets a run evaluates ('all' = every block under ``datasets``), sorted."""
    wanted = config.get("run_datasets", "all")
    return sorted(config["datasets"] if wanted == "all" else wanted)


def pretrain_dataset(config: Mapping[str, Any], dataset: str) -> str:
    """The dataset whose train split (and tokenizer) ``dataset``'s methods are pretrained on."""
    return str(config["datasets"][dataset].get("pretrain_from", dataset))


def needed_datasets(config: Mapping[str, Any]) -> list[str]:
    """The run's datasets and the ones they pretrain on: every dataset that gets built."""
    run = run_datasets(config)
    sources = {pretrain_dataset(config, d) for d in run if d in config["datasets"]}
    guarded = {d for source in sources if source in config["datasets"] for d in pretrained_from(config, source)}
    return sorted(set(run) | sources | guarded)


IMAGE_SET_IRRELEVANT_KEYS = ("subset", "resident_max_mb", "train_augment", "image_size", "transform", "pretrain_from")
"""Dataset keys that never change which images a dataset evaluates on (left out of the leakage guard's spec)."""


def pretrained_from(config: Mapping[str, Any], dataset: str) -> list[str]:
    """Every configured dataset that pretrains on ``dataset`` — run or not, so the guard depends on the data only."""
    return sorted(
        other
        for other, block in config["datasets"].items()
        if other != dataset and isinstance(block, Mapping) and block.get("pretrain_from") == dataset
    )


def leakage_exclusions(config: Mapping[str, Any], dataset: str) -> list[dict[str, Any]]:
    """Blocks of the datasets pretrained on ``dataset``: their val/test images leave its train split.

    Only the keys that decide the image set are passed, so editing e.g. a subset or the image size
    of a RefCOCO block does not re-convert COCO and re-run every pretraining.
    """
    return [
        {
            "name": other,
            **{k: copy.deepcopy(v) for k, v in config["datasets"][other].items() if k not in IMAGE_SET_IRRELEVANT_KEYS},
        }
        for other in pretrained_from(config, dataset)
    ]


def with_data_root(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with ``data_root`` given to every dataset block whose adapter reads a ``root`` and has none."""
    merged = copy.deepcopy(dict(config))
    data_root = merged.get("data_root")
    blocks = merged.get("datasets")
    if not data_root or not isinstance(blocks, dict):
        return merged
    from benchmark.datasets import dataset_kinds, get_adapter

    kinds = dataset_kinds()
    for block in blocks.values():
        reads_root = isinstance(block, dict) and block.get("kind") in kinds and "root" not in block
        if reads_root and "root" in get_adapter(block["kind"]).config_schema.get("properties", {}):
            block["root"] = data_root
    return merged


def completed(config: Mapping[str, Any]) -> dict[str, Any]:
    """What every entry point does before validating: plug-in task defaults, then ``data_root``."""
    return with_data_root(with_task_defaults(config))


def dataset_tasks(config: Mapping[str, Any], dataset: str) -> list[str]:
    """The run's tasks that ``dataset`` serves (its adapter provides every part they require)."""
    from benchmark.datasets import dataset_tasks as served

    return [t for t in served(config["datasets"][dataset]["kind"]) if t in run_tasks(config)]


def served_tasks(config: Mapping[str, Any]) -> list[str]:
    """The run's tasks that at least one configured dataset serves (the tasks the tables have)."""
    served = {t for d in run_datasets(config) for t in dataset_tasks(config, d)}
    return [t for t in run_tasks(config) if t in served]


def tuning_factors(config: Mapping[str, Any]) -> list[float]:
    """The learning-rate factors of the equal tuning budget (``tuning.lr_factors``); empty when it is off."""
    return [float(f) for f in config["tuning"]["lr_factors"] or []]


def is_tuned(config: Mapping[str, Any], method: str | None) -> bool:
    """Whether ``method``'s learning rates come from a search: tuning is on and the method is pretrained."""
    return method is not None and bool(tuning_factors(config)) and "pretrain" in method_training(method)


def trial_spec(
    config: Mapping[str, Any], stage: str, factor: float, *, dataset: str, method: str, task: str | None = None
) -> dict[str, Any]:
    """The spec of one tuning trial's pretraining or fine-tuning job: the method's job at the tuning seed with
    its learning rate × ``factor`` (:mod:`benchmark.train.tuning`)."""
    from benchmark.train.tuning import scaled_spec

    spec = stage_spec(config, stage, dataset=dataset, method=method, seed=config["tuning"]["seed"], task=task)
    spec.pop("tuning", None)
    return {**scaled_spec(spec, factor), "tuning_trial": factor}


def validation_spec(config: Mapping[str, Any], task: str | None = None) -> dict[str, Any]:
    """``{"validation": …}`` for a training job's spec: how its learning curve is measured on the val split,
    and for fine-tuning (``task``) the metric its checkpoint is selected by; ``{}`` when validation is off.

    Pretraining is validated by its own objectives and, when the run has the retrieval task, by val retrieval
    with the main table's settings; fine-tuning by the task's metrics, selected on its summary metric.
    """
    settings = config["validation"]
    if not settings["every"]:
        return {}
    spec = {k: settings[k] for k in ("every", "max_images")}
    if task is None:
        spec["batches"] = settings["batches"]
        if "retrieval" in run_tasks(config):
            spec["retrieval"] = copy.deepcopy(config["evaluate"]["retrieval"])
    else:
        spec["select"] = settings["select"]
        spec["metric"] = config["robustness"]["summary_metric"][task]
        spec["task_settings"] = copy.deepcopy(config["evaluate"][task])
    return {"validation": spec}


def stage_spec(
    config: Mapping[str, Any],
    stage: str,
    *,
    dataset: str | None = None,
    method: str | None = None,
    seed: int | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """The part of ``config`` that the result of one job depends on.

    Kept minimal on purpose: adding a key here re-runs every job of that stage.
    """
    if dataset is not None and dataset not in config["datasets"]:
        raise ConfigError(f"unknown dataset {dataset!r}; configured: {', '.join(config['datasets'])}")
    if task is not None and task not in run_tasks(config):
        raise ConfigError(f"unknown task {task!r}; configured: {', '.join(run_tasks(config))}")
    if stage == "data":
        spec = {"stage": stage, "dataset": dataset, **copy.deepcopy(config["datasets"][dataset])}
        exclusions = leakage_exclusions(config, dataset)
        return {**spec, "exclude_images": exclusions} if exclusions else spec
    if stage == "tokenizer":
        if method is not None and (init := text_tokenizer_init(config, method)) is not None:
            return {"stage": stage, "init": init, "max_length": config["tokenizer"]["max_length"]}
        return {"stage": stage, "dataset": dataset, **copy.deepcopy(config["tokenizer"])}
    job = {"stage": stage, "dataset": dataset, "method": method, "seed": seed, "device": config["device"]}
    if task is not None:
        job["task"] = task
    build = {  # what a method is built from where no checkpoint of this run holds it
        "max_length": config["tokenizer"]["max_length"],
        "model": method_model(config, method),
        "overrides": method_hparams(config, method),
    }
    training = method_training(method) if method is not None else ("pretrain", "finetune")
    # how a training job trains beyond its optimiser block: the learning-rate factors it is tuned over, and the
    # compiled step (each key only when on, so that leaving it off re-runs nothing)
    options = {"tuning": copy.deepcopy(config["tuning"])} if is_tuned(config, method) else {}
    if config.get("compile"):
        options["compile"] = config["compile"]
    if stage == "pretrain":
        budget = {"budget": copy.deepcopy(config["budget"])} if config["budget"]["unit"] != "steps" else {}
        return {
            **job,
            **build,
            "optim": copy.deepcopy(config["pretrain"]),
            **budget,
            **validation_spec(config),
            **options,
        }
    if stage == "finetune":
        finetuning = {"optim": copy.deepcopy(config["finetune"][task]), **validation_spec(config, task), **options}
        if "pretrain" not in training:  # fine-tuned from the method's own (published) weights
            return {**job, **build, **finetuning}
        return {**job, "pretrained_on": pretrain_dataset(config, dataset), **finetuning}
    if not training:  # zero-shot: evaluation builds the method from its own weights (its overrides name them)
        job = {**job, "zero_shot": True, "overrides": build["overrides"]}
    if stage == "evaluate":
        return {**job, "batch_size": config["evaluate"]["batch_size"], **copy.deepcopy(config["evaluate"][task])}
    if stage == "robustness":
        return {
            **job,
            "batch_size": config["evaluate"]["batch_size"],
            "task_settings": copy.deepcopy(config["evaluate"][task]),
            "robustness": {
                k: copy.deepcopy(v)
                for k, v in config["robustness"].items()
                if k not in ("reference_method", "summary_metric") and not (k == "sentence_models" and not v)
            },
        }
    if stage == "report":
        robustness = config["robustness"]
        return {
            "stage": stage,
            "reference_method": robustness["reference_method"],
            "summary_metric": {t: robustness["summary_metric"][t] for t in served_tasks(config)},
            "max_images": robustness["max_images"],
        }
    if stage == "reference":
        from benchmark.tasks import get_task

        settings = config["evaluate"][task]
        keep = get_task(task).reference_settings
        return {"stage": stage, "dataset": dataset, "task": task, **{k: copy.deepcopy(settings[k]) for k in keep}}
    raise ConfigError(f"unknown stage {stage!r}")

"""The run's grid, read from a validated configuration: its methods, datasets and tasks, and who builds what.

What the Snakefile expands its rules over (methods × datasets × tasks × seeds, tuning trials,
the datasets pretrained on and guarded against leakage) and what each method is built from
(its model block and hyperparameters, a pretrained text tower's tokenizer).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from benchmark.config.merge import deep_merge
from benchmark.datasets import dataset_tasks as served
from benchmark.errors import ConfigError
from benchmark.hashing import config_hash
from benchmark.registry import method_names, method_schedule
from benchmark.tasks import get_task, task_names


def variants(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``variants``: named rows, each a base method (a method file) plus overrides; {} when none."""
    return dict(config.get("variants") or {})


def base_method(config: Mapping[str, Any], method: str) -> str:
    """The method whose file (:func:`benchmark.registry.method_path`) the row ``method`` is built from: a variant's
    ``base``, else itself."""
    variant = variants(config).get(method)
    return str(variant["base"]) if isinstance(variant, Mapping) and "base" in variant else method


def resolve_methods(config: Mapping[str, Any], available: Iterable[str]) -> list[str]:
    """The rows a run covers — methods, checked against the method files (``baselines/`` and
    ``$FUSEBENCH_BASELINES``), and variants (``variants``) of them; ``methods: all`` is every method file and every
    variant."""
    available = sorted(available)
    rows = [*available, *sorted(variants(config))]
    overrides = set(config.get("method_overrides", {})) - set(available)
    if overrides:
        in_variants = sorted(overrides & set(variants(config)))
        raise ConfigError(
            f"'method_overrides' names unknown method(s) {sorted(overrides)}; "
            f"available in baselines/: {', '.join(available)}"
            + (f" (a variant's overrides go in 'variants.<name>.overrides': {in_variants})" if in_variants else "")
        )
    reference = config.get("robustness", {}).get("reference_method")
    if reference is not None and reference not in rows:
        raise ConfigError(
            f"'robustness.reference_method' = {reference!r} is not a method or variant; available: {', '.join(rows)}"
        )
    wanted = config["methods"]
    if wanted == "all":  # every method and variant, except published models whose weights nobody named
        return [m for m in rows if published_weights(config, m) is not False]
    unknown = [m for m in wanted if m not in rows]
    if unknown:
        raise ConfigError(
            f"'methods' names unknown method(s) {unknown}; available in baselines/: {', '.join(available)}"
            + (f"; variants: {', '.join(sorted(variants(config)))}" if variants(config) else "")
        )
    without = [m for m in wanted if published_weights(config, m) is False]
    if without:
        raise ConfigError(
            f"'methods' names published model(s) {without} without weights: set "
            + ", ".join(f"'method_overrides.{m}.pretrained'" for m in without)
            + " to a local directory (or a hub name when online); see docs/models.md"
        )
    return list(wanted)


def published_weights(config: Mapping[str, Any], method: str) -> str | bool | None:
    """The weights a published-model method reads (its ``pretrained``), False when it has none set,
    None for a method trained from scratch."""

    schedule = method_schedule(base_method(config, method))
    if not schedule.published:
        return None
    value = method_hparams(config, method).get("pretrained", schedule.pretrained)
    return value if value else False


def method_training(method: str, config: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The stages ``method`` is trained in (() = zero-shot), read from its file without importing it; with
    ``config``, a variant's are its base's.

    A method without a file is trained like the built-ins here; loading it names the missing file."""

    if config is not None:
        method = base_method(config, method)
    if method not in method_names():
        return ("pretrain", "finetune")
    return method_schedule(method).training_stages


def method_hparams(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The row's hyperparameter overrides: ``method_overrides.<method>`` without its ``model`` key; for a variant,
    its base's, updated key by key (an objective weight at a time) by ``variants.<method>.overrides``."""
    base = base_method(config, method)
    overrides = config.get("method_overrides", {}).get(base, {})
    hparams = {k: copy.deepcopy(v) for k, v in overrides.items() if k != "model"}
    if base != method:
        hparams = deep_merge(hparams, variants(config)[method].get("overrides") or {})
    return hparams


def method_model(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The model block ``method`` is built from: ``model`` updated key by key by ``method_overrides.<base>.model``
    and, for a variant, by ``variants.<method>.model``."""
    base = base_method(config, method)
    model = deep_merge(config["model"], config.get("method_overrides", {}).get(base, {}).get("model", {}))
    return deep_merge(model, variants(config)[method].get("model") or {}) if base != method else model


def variant_lr_factor(config: Mapping[str, Any], method: str) -> float:
    """The row's learning rates relative to the configured ones: a variant's ``lr_factor`` (1 for a method)."""
    if base_method(config, method) == method:
        return 1.0
    return float(variants(config)[method].get("lr_factor", 1.0))


def control_pairs(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """``control_pairs``: each ``{a, b, differ}`` (two rows and what they should differ in); [] when none."""
    return [dict(pair) for pair in config.get("control_pairs") or []]


def text_tokenizer_init(config: Mapping[str, Any], method: str) -> str | None:
    """The pretrained text tower whose own tokenizer ``method`` uses, or None for the run's trained WordPiece."""
    init = method_model(config, method)["text"].get("init", "random")
    return None if init == "random" else str(init)


def tokenizer_slug(init: str) -> str:
    """A file name for the tokenizer of a pretrained text tower: its last path part and a hash of the whole."""

    stem = re.sub(r"[^a-z0-9]+", "_", Path(str(init).rstrip("/")).name.lower()).strip("_") or "text"
    return f"{stem}_{config_hash(str(init))[:8]}"


def run_tasks(config: Mapping[str, Any]) -> list[str]:
    """The tasks a run covers, in task order ('all' = every available task but the opt-in ones, ``Task.opt_in``)."""

    if config["tasks"] == "all":
        return [t for t in task_names() if not get_task(t).opt_in]
    return [t for t in task_names() if t in config["tasks"]]


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


def dataset_tasks(config: Mapping[str, Any], dataset: str) -> list[str]:
    """The run's tasks that ``dataset`` serves (its adapter provides every part they require)."""

    return [t for t in served(config["datasets"][dataset]["kind"]) if t in run_tasks(config)]


def served_tasks(config: Mapping[str, Any]) -> list[str]:
    """The run's tasks that at least one configured dataset serves (the tasks the tables have)."""
    served = {t for d in run_datasets(config) for t in dataset_tasks(config, d)}
    return [t for t in run_tasks(config) if t in served]


def tuning_factors(config: Mapping[str, Any]) -> list[float]:
    """The learning-rate factors of the equal tuning budget (``tuning.lr_factors``); empty when it is off."""
    return [float(f) for f in config["tuning"]["lr_factors"] or []]


def tuning_measures(config: Mapping[str, Any], dataset: str) -> list[tuple[str, str]]:
    """The (fine-tuning dataset, task) pairs whose val summary metric measures a pretraining trial on ``dataset``:
    every task each run dataset pretrained on ``dataset`` serves (itself, or the datasets whose ``pretrain_from``
    names it), as the reported seeds are fine-tuned."""
    return [
        (tuned, task)
        for tuned in run_datasets(config)
        if pretrain_dataset(config, tuned) == dataset
        for task in dataset_tasks(config, tuned)
    ]


def is_tuned(config: Mapping[str, Any], method: str | None) -> bool:
    """Whether ``method``'s learning rates come from a search: tuning is on and the method is pretrained."""
    return method is not None and bool(tuning_factors(config)) and "pretrain" in method_training(method, config)

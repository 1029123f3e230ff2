"""Load a configuration: the defaults, then each file, then each ``key=value``, merged; completed and validated.

Defaults live in exactly one place, ``workflows/config/default.yaml``. A profile or a user file
is merged on top of it (dicts merge key by key, everything else is replaced), which is also
what Snakemake does with its ``configfile:`` directive followed by ``--configfile``. Before
validation every entry point *completes* the merged configuration the same way
(:func:`completed`): the blocks a plug-in task brings, and ``data_root`` in the dataset blocks.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from benchmark.config.merge import deep_merge, load_yaml
from benchmark.config.validate import validate_config
from benchmark.datasets import dataset_kinds, get_adapter
from benchmark.errors import ConfigError
from benchmark.paths import DEFAULT_CONFIG
from benchmark.tasks import get_task, task_names


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


def with_task_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` plus the blocks a plug-in task brings (``Task.defaults``) where the config has none.

    Built-in tasks keep their defaults in ``workflows/config/default.yaml``; a task file from
    ``$FUSEBENCH_TASKS`` carries its own, so adding a task is one file.
    """

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


def with_data_root(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with ``data_root`` given to every dataset block whose adapter reads a ``root`` and has none."""
    merged = copy.deepcopy(dict(config))
    data_root = merged.get("data_root")
    blocks = merged.get("datasets")
    if not data_root or not isinstance(blocks, dict):
        return merged

    kinds = dataset_kinds()
    for block in blocks.values():
        reads_root = isinstance(block, dict) and block.get("kind") in kinds and "root" not in block
        if reads_root and "root" in get_adapter(block["kind"]).config_schema.get("properties", {}):
            block["root"] = data_root
    return merged


def with_adapter_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every dataset block completed by its adapter's defaults (:meth:`DatasetAdapter.settings`),
    so that a default enters the data job's spec as a task's defaults enter its blocks; blocks of an unknown kind
    are left for validation to name."""
    merged = copy.deepcopy(dict(config))
    blocks = merged.get("datasets")
    if not isinstance(blocks, dict):
        return merged

    kinds = dataset_kinds()
    for name, block in blocks.items():
        if isinstance(block, dict) and block.get("kind") in kinds:
            blocks[name] = get_adapter(block["kind"]).settings(block)
    return merged


def completed(config: Mapping[str, Any]) -> dict[str, Any]:
    """What every entry point does before validating: plug-in task defaults, ``data_root``, adapter defaults."""
    return with_adapter_defaults(with_data_root(with_task_defaults(config)))

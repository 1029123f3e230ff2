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

TASKS = ("retrieval", "grounding")
"""Downstream tasks every method is fine-tuned and evaluated on."""


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


def _semantic_problems(config: Mapping[str, Any]) -> list[str]:
    """Constraints between keys that a JSON schema cannot express."""
    problems = []
    for name, ds in config.get("datasets", {}).items():
        objects = ds.get("objects_per_scene", {})
        if objects.get("min", 0) > objects.get("max", 0):
            problems.append(
                f"'datasets.{name}.objects_per_scene': min ({objects['min']}) exceeds max ({objects['max']})"
            )
        sizes = ds.get("sizes", {})
        if sizes.get("small", 0) >= sizes.get("large", 1):
            problems.append(f"'datasets.{name}.sizes': small ({sizes['small']}) must be below large ({sizes['large']})")
        mix = ds.get("referring_mix", {})
        if mix and abs(sum(mix.values()) - 1.0) > 1e-6:
            problems.append(f"'datasets.{name}.referring_mix' must sum to 1, got {sum(mix.values()):g}")
        image_size = ds.get("image_size", 0)
        patch = config.get("model", {}).get("vision", {}).get("patch_size", 1)
        if image_size % patch:
            problems.append(
                f"'datasets.{name}.image_size' ({image_size}) must be a multiple of 'model.vision.patch_size' ({patch})"
            )
    model = config.get("model", {})
    for tower in ("vision", "text"):
        spec = model.get(tower, {})
        if spec.get("width", 0) % max(spec.get("heads", 1), 1):
            problems.append(
                f"'model.{tower}.width' ({spec['width']}) must be divisible by 'model.{tower}.heads' ({spec['heads']})"
            )
    stages = {"pretrain": config.get("pretrain", {})}
    stages.update({f"finetune.{t}": s for t, s in config.get("finetune", {}).items()})
    for where, optim in stages.items():
        if optim.get("warmup_steps", 0) > optim.get("steps", 0):
            problems.append(
                f"'{where}.warmup_steps' ({optim['warmup_steps']}) exceeds '{where}.steps' ({optim['steps']})"
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
        problems = _semantic_problems(config)
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
    if wanted == "all":
        return available
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise ConfigError(
            f"'methods' names unknown method(s) {unknown}; available in baselines/: {', '.join(available)}"
        )
    return list(wanted)


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
    if task is not None and task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
    if stage == "data":
        return {"stage": stage, "dataset": dataset, **copy.deepcopy(config["datasets"][dataset])}
    if stage == "tokenizer":
        return {"stage": stage, "dataset": dataset, **copy.deepcopy(config["tokenizer"])}
    job = {"stage": stage, "dataset": dataset, "method": method, "seed": seed, "device": config["device"]}
    if task is not None:
        job["task"] = task
    if stage == "pretrain":
        return {
            **job,
            "max_length": config["tokenizer"]["max_length"],
            "model": copy.deepcopy(config["model"]),
            "overrides": copy.deepcopy(config["method_overrides"].get(method, {})),
            "optim": copy.deepcopy(config["pretrain"]),
        }
    if stage == "finetune":
        return {**job, "optim": copy.deepcopy(config["finetune"][task])}
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
                if k not in ("reference_method", "summary_metric")
            },
        }
    if stage == "report":
        robustness = config["robustness"]
        return {
            "stage": stage,
            "reference_method": robustness["reference_method"],
            "summary_metric": copy.deepcopy(robustness["summary_metric"]),
            "max_images": robustness["max_images"],
        }
    if stage == "reference":
        settings = config["evaluate"][task]
        keep = ("ks", "max_images") if task == "retrieval" else ("score_threshold",)
        return {"stage": stage, "dataset": dataset, "task": task, **{k: copy.deepcopy(settings[k]) for k in keep}}
    raise ConfigError(f"unknown stage {stage!r}")

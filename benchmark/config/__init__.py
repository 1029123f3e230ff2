"""Configuration: load and merge, validate, read the run's grid, and cut into per-stage specs.

One module per job (``docs/architecture.md``):

* :mod:`benchmark.config.merge` — read YAML files and merge them key by key;
* :mod:`benchmark.config.load` — the defaults, files and ``key=value`` overrides, completed and validated;
* :mod:`benchmark.config.validate` — every problem as one line naming the key and what is allowed;
* :mod:`benchmark.config.grid` — the run's methods, datasets, tasks and who builds what;
* :mod:`benchmark.config.specs` — the stage spec of each job, one function per stage.

The package imports only the standard library, PyYAML and jsonschema (both Snakemake dependencies),
so the Snakefile can use it without torch being importable; this module re-exports what the
Snakefile, the CLI and the stages use, so ``from benchmark.config import stage_spec`` keeps working.
"""

from benchmark.config.grid import (
    IMAGE_SET_IRRELEVANT_KEYS,
    base_method,
    control_pairs,
    dataset_tasks,
    is_tuned,
    leakage_exclusions,
    method_hparams,
    method_model,
    method_training,
    needed_datasets,
    pretrain_dataset,
    pretrained_from,
    published_weights,
    resolve_methods,
    run_datasets,
    run_tasks,
    served_tasks,
    text_tokenizer_init,
    tokenizer_slug,
    tuning_factors,
    tuning_measures,
    variant_lr_factor,
    variants,
)
from benchmark.config.load import completed, load_config, parse_override, with_data_root, with_task_defaults
from benchmark.config.merge import deep_merge, load_yaml
from benchmark.config.specs import STAGE_SPECS, stage_spec, trial_spec, validation_spec
from benchmark.config.validate import validate_config

__all__ = [
    "IMAGE_SET_IRRELEVANT_KEYS",
    "STAGE_SPECS",
    "base_method",
    "completed",
    "control_pairs",
    "dataset_tasks",
    "deep_merge",
    "is_tuned",
    "leakage_exclusions",
    "load_config",
    "load_yaml",
    "method_hparams",
    "method_model",
    "method_training",
    "needed_datasets",
    "parse_override",
    "pretrain_dataset",
    "pretrained_from",
    "published_weights",
    "resolve_methods",
    "run_datasets",
    "run_tasks",
    "served_tasks",
    "stage_spec",
    "text_tokenizer_init",
    "tokenizer_slug",
    "trial_spec",
    "tuning_factors",
    "tuning_measures",
    "validate_config",
    "validation_spec",
    "variant_lr_factor",
    "variants",
    "with_data_root",
    "with_task_defaults",
]

# Helpers shared by the workflow files (how jobs call the CLI, their specs, the conda env, the grid). The paths
# of every file are RUN's templates (benchmark/workflow/paths.py), the grid is GRID (benchmark/workflow/grid.py).

import json
import os
import shlex
import sys
from pathlib import Path

from benchmark.numerics import PORTABLE_ENV, with_numerics
from benchmark.workflow.commands import quoted_json
from benchmark.workflow.paths import factor_label
from benchmark.workflow.warm import ENABLE_VARIABLE as WARM_VARIABLE


def _uses_conda():
    try:
        from snakemake_interface_executor_plugins.settings import DeploymentMethod

        return DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    except (ImportError, AttributeError):
        return False


# Jobs call `python -m benchmark` (the `fusebench` command) from this checkout's source. With
# --use-conda, `python` is the rule's conda env; otherwise it is the interpreter running
# Snakemake (e.g. .venv/bin/python even when the venv is not activated).
# (Braces are doubled twice: once for this f-string, once for Snakemake's own formatting.)
_JOB_PATH = "" if _uses_conda() else f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
# numerics: portable — the pinned CPU path in every job's environment (benchmark/numerics.py; a job started
# without it starts itself again with it).
_NUMERICS = "".join(f"export {k}={v}; " for k, v in PORTABLE_ENV.items()) if config["numerics"] == "portable" else ""
# warm_start: jobs hand their command to the warm worker (benchmark/workflow/warm.py; the first job starts it).
_WARM = f"export {WARM_VARIABLE}=1; " if config["warm_start"] else ""
shell.prefix(
    f"set -euo pipefail; {_JOB_PATH}{_NUMERICS}{_WARM}"
    f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

def method_file(wildcards):
    """The file a row is built from, an input of its jobs: its method's (or a variant's base method's) file in
    $FUSEBENCH_BASELINES when there is one (a new method, or an override of the built-in), else in baselines/."""
    return str(method_path(base_method(config, wildcards.method)))

CONDA_ENV = "../../environment.yml"
"""Every rule runs in the same pinned environment (paths are relative to this file)."""


def spec_json(stage, **wildcards):
    """A params function: the JSON stage spec of one job, shell-quoted."""

    def fn(w):
        values = {k: getattr(w, k) for k in ("dataset", "method", "seed", "task") if hasattr(w, k)}
        if "seed" in values:
            values["seed"] = int(values["seed"])
        values.update(wildcards)
        return quoted_json(with_numerics(stage_spec(config, stage, **values), config))

    return fn


def threads_for_jobs():
    return config["threads"]


GPU = 1 if config["device"] == "cuda" else 0
"""The gpu resource of every evaluation job: run with --resources gpu=N to share N GPUs."""

GPUS_PER_JOB = config["gpus_per_job"]
"""Processes of a training job, one per GPU; more than one runs it under torchrun with DDP
(benchmark/train/distributed.py). A resource, not a param: changing it re-runs nothing."""

TRAIN_GPU = GPUS_PER_JOB if config["device"] == "cuda" else 0
"""The gpu resource of every training job."""


def dataset_settings(dataset):
    return {k: v for k, v in config["datasets"][dataset].items()}


def build_dir(dataset):
    """Where a generated dataset is built (its adapter may read another folder in place)."""
    return RUN.data_dir.format(dataset=dataset)


def data_dir(wildcards):
    """A params function: the folder the dataset's standard form is read from."""
    settings = dataset_settings(wildcards.dataset)
    return str(get_adapter(settings["kind"]).data_dir(settings, Path(build_dir(wildcards.dataset))))


def dataset_inputs(wildcards):
    """User files a dataset is read from, and a plug-in adapter's own file (their change re-runs it)."""
    settings = dataset_settings(wildcards.dataset)
    files = [str(p) for p in get_adapter(settings["kind"]).inputs(settings)]
    return files + plugin_file(ADAPTER_TABLE, settings["kind"])


def pretrained_on(wildcards):
    """The dataset whose pretraining (and tokenizer) this dataset's jobs start from ('pretrain_from')."""
    return pretrain_dataset(config, wildcards.dataset)


def method_tokenizer(method, dataset):
    """The tokenizer `method` reads text with when trained on `dataset`: its pretrained text tower's own, or
    the WordPiece trained on the dataset's captions (its vocabulary is in the weights)."""
    init = text_tokenizer_init(config, method)
    if init:
        return RUN.pretrained_tokenizer.output.format(tokenizer=tokenizer_slug(init))
    return RUN.tokenizer.output.format(dataset=dataset)


def pretrain_tokenizer(wildcards):
    return method_tokenizer(wildcards.method, wildcards.dataset)


def tokenizer_file(wildcards):
    """The tokenizer of the dataset the method was pretrained on; none for a zero-shot method (it has its own)."""
    return method_tokenizer(wildcards.method, pretrained_on(wildcards)) if TRAINING[wildcards.method] else []


def pretrained_model(wildcards):
    return RUN.pretrain.model.format(dataset=pretrained_on(wildcards), method=wildcards.method, seed=wildcards.seed)


def finetune_init(wildcards):
    """The pretrained checkpoint fine-tuning starts from; none for a method fine-tuned from its own weights."""
    return pretrained_model(wildcards) if "pretrain" in TRAINING[wildcards.method] else []


def evaluated_model(wildcards):
    """The fine-tuned checkpoint evaluation scores; none for a zero-shot method (built from its own weights)."""
    if not TRAINING[wildcards.method]:
        return []
    w = wildcards
    return RUN.finetune.model.format(dataset=w.dataset, task=w.task, method=w.method, seed=w.seed)


def optional_input(flag, name):
    """A params function: `--flag path` when the job has input `name`, else nothing (a zero-shot method)."""

    def fn(wildcards, input):
        value = input.get(name)
        return f"{flag} {shlex.quote(str(value))}" if value else ""

    return fn


def tower_weights(wildcards):
    """Local files of the method's pretrained towers (model.vision.init / model.text.init)."""
    model = method_model(config, wildcards.method)
    inits = [model[tower].get("init", "random") for tower in ("vision", "text")]
    return [f for init in inits if init != "random" for f in local_weight_files(init)]


def published_weight_files(wildcards):
    """Local files of a published model's weights (method_overrides.<method>.pretrained)."""
    value = published_weights(config, wildcards.method)
    return local_weight_files(value) if value else []


def sentence_model_files():
    """Local files of the generative text perturbations' models (robustness.sentence_models)."""
    models = config["robustness"].get("sentence_models") or {}
    sources = [s for value in models.values() for s in ([value] if isinstance(value, str) else value)]
    return [f for source in sources for f in local_weight_files(source)]


def task_file(wildcards):
    """A plug-in task's file, an input of its jobs like a method's file (built-in code is not tracked)."""
    return plugin_file(TASK_TABLE, wildcards.task)


def plugin_file(table, name):
    """The user's file of a plug-in task or adapter (a new one, or an override of a built-in); [] for a built-in."""
    path = table.user_file(name)
    return [] if path is None else [str(path)]


# -- the learning-rate search (workflows/rules/tuning.smk) --

TUNING_FACTORS = tuning_factors(config)


def trial_factor(wildcards):
    return next(f for f in TUNING_FACTORS if factor_label(f) == wildcards.factor)


def trial_json(stage, tuned):
    """A params function: the JSON spec of one trial job (of the `tuned` stage's learning rate), shell-quoted."""

    def fn(w):
        task = getattr(w, "task", None)
        spec = trial_spec(config, stage, trial_factor(w), dataset=w.dataset, method=w.method, task=task, tuned=tuned)
        return quoted_json(with_numerics(spec, config))

    return fn


def pretrain_tuning_choice(wildcards):
    """The pretraining choice a tuned method's pretrain job trains with; none when it is not tuned."""
    if not is_tuned(config, wildcards.method):
        return []
    return RUN.pretrain_choice.output.format(dataset=wildcards.dataset, method=wildcards.method)


def finetune_tuning_choice(wildcards):
    """The fine-tuning choice of its task a tuned method's finetune job trains with; none when it is not tuned."""
    if not is_tuned(config, wildcards.method):
        return []
    w = wildcards
    return RUN.finetune_choice.output.format(dataset=w.dataset, method=w.method, task=w.task)


def pretrain_trial_results(wildcards):
    """Every pretraining trial's fine-tuning results of one (pretraining dataset, method): factors × the (dataset,
    task) pairs fine-tuned from that pretraining (tuning_measures)."""
    w = wildcards
    return [
        RUN.trial_pretrain_finetune.result.format(dataset=tuned, method=w.method, factor=factor_label(f), task=task)
        for f in TUNING_FACTORS
        for tuned, task in tuning_measures(config, w.dataset)
    ]


def pretrain_trial_model(wildcards):
    """The pretraining trial a (fine-tuning dataset, task) fine-tunes to measure it."""
    w = wildcards
    return RUN.trial_pretrain.model.format(dataset=pretrained_on(w), method=w.method, factor=w.factor)


def pretrain_trial_models(wildcards):
    """Every pretraining trial's checkpoint of one (pretraining dataset, method)."""
    w = wildcards
    return [RUN.trial_pretrain.model.format(dataset=w.dataset, method=w.method, factor=factor_label(f)) for f in TUNING_FACTORS]


def chosen_pretrain_trial(wildcards):
    """The chosen pretraining trial's checkpoint the fine-tuning trials of a (dataset, task) start from."""
    return RUN.pretrain_chosen.format(dataset=pretrained_on(wildcards), method=wildcards.method)


def finetune_trial_results(wildcards):
    """Every fine-tuning trial's result of one (fine-tuning dataset, method, task): one per factor."""
    w = wildcards
    return [
        RUN.trial_finetune.result.format(dataset=w.dataset, method=w.method, task=w.task, factor=factor_label(f))
        for f in TUNING_FACTORS
    ]

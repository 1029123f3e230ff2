# FuseBench workflow: data → tokenizer → pretrain → finetune → evaluate → aggregate.
#
#   snakemake --cores all                                            # default config
#   snakemake --cores all --configfile workflows/config/smoke.yaml   # a profile on top of it
#   snakemake --cores all --use-conda                                # each rule in environment.yml
#
# Every job is one call of the `fusebench` command (python -m benchmark), so any stage can be
# run by hand. Each job receives its stage spec — the exact config slice its result depends
# on — as a parameter: editing a key re-runs exactly the jobs whose spec holds it. When jobs
# fail (with --keep-going: once every other job has run), the tables and plots are still written
# from every result there is, each missing one marked failed with its error and log
# (workflows/rules/partial.smk); the failed jobs run again next time.

import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, workflow.basedir)  # needs only benchmark.config, benchmark.workflow, the plug-in tables (no torch)
from benchmark.config import (
    base_method,
    completed,
    dataset_tasks,
    is_tuned,
    method_model,
    pretrain_dataset,
    published_weights,
    served_tasks,
    stage_spec,
    text_tokenizer_init,
    tokenizer_slug,
    trial_spec,
    tuning_factors,
    tuning_measures,
    validate_config,
)
from benchmark.datasets import ADAPTER_TABLE, get_adapter
from benchmark.errors import ConfigError
from benchmark.hashing import config_hash
from benchmark.registry import method_path
from benchmark.tasks import TASK_TABLE
from benchmark.workflow.commands import evaluation_command, training_command, tune_select_command
from benchmark.workflow.grid import run_grid
from benchmark.workflow.inputs import local_weight_files
from benchmark.workflow.paths import RunLayout


configfile: os.path.join(workflow.basedir, "workflows/config/default.yaml")


report: "workflows/report/workflow.rst"


try:
    config.update(completed(config))  # blocks a plug-in task brings, and data_root in the dataset blocks
    validate_config(config, sources=["workflows/config/default.yaml", "--configfile/--config"])
    GRID = run_grid(config)  # the run's (dataset, task, method, seed) cells and training jobs
    TASKS = served_tasks(config)
    # the tokenizer file of each pretrained text tower → a method that uses it (its spec names the tower)
    PRETRAINED_TOKENIZERS = {tokenizer_slug(i): m for m in GRID.methods if (i := text_tokenizer_init(config, m))}
except ConfigError as error:
    raise WorkflowError(str(error)) from None
validate(config, "workflows/schemas/config.schema.yaml")

TRAINING = GRID.training  # method → its training stages (() = zero-shot: no training jobs)
OUT = config["output_dir"]
CONFIG_HASH = config_hash(config)
RUN = RunLayout(OUT)  # every file of the run: the rules' outputs and logs (benchmark/workflow/paths.py)


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    method=r"[a-z][a-z0-9_]*",
    seed=r"\d+",
    task=r"[a-z][a-z0-9_]*",
    tokenizer=r"[a-z0-9_]+",
    factor=r"[0-9][0-9.e+-]*",


include: "workflows/rules/common.smk"
include: "workflows/rules/data.smk"
include: "workflows/rules/tuning.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/evaluate.smk"
include: "workflows/rules/report.smk"
include: "workflows/rules/partial.smk"


rule all:
    input:
        rules.aggregate.output,
        rules.plots.output,
    default_target: True


onerror:
    partial_report()  # tables and plots of what finished, failed results marked, failed jobs listed

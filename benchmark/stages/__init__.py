"""The pipeline's stages, one module each; the CLI and Snakemake call the ``run_*`` functions re-exported here.

Every stage takes its *spec* (see :func:`benchmark.config.stage_spec`), reads its inputs,
and writes its outputs atomically together with a result JSON carrying provenance
(:mod:`benchmark.stages.records`).

Inputs cannot be mislabelled: a checkpoint records the job it belongs to (stage, method, seed,
task, dataset, and the sha256 of the tokenizer file and the data build's manifest it was trained
with), and fine-tuning, evaluation and robustness refuse one from another job before writing
anything (:mod:`benchmark.stages.inputs`). A dataset with ``pretrain_from`` is fine-tuned from
another dataset's pretraining: its ``pretrained_on`` is the dataset expected there.

Modules: :mod:`~benchmark.stages.data` (data, tokenizer), :mod:`~benchmark.stages.pretrain`,
:mod:`~benchmark.stages.finetune`, :mod:`~benchmark.stages.evaluate` (evaluate, robustness,
reference), :mod:`~benchmark.stages.tuning` (the tuning choice); shared:
:mod:`~benchmark.stages.session` (device, data, tokenizer, method), :mod:`~benchmark.stages.training`
(the budgeted, validated training of a job), :mod:`~benchmark.stages.records`, :mod:`~benchmark.stages.inputs`.
"""

from benchmark.stages.data import run_data, run_tokenizer
from benchmark.stages.evaluate import run_evaluate, run_reference, run_robustness
from benchmark.stages.finetune import run_finetune
from benchmark.stages.pretrain import PretrainingJob, prepare_pretraining, run_pretrain
from benchmark.stages.records import dataset_note
from benchmark.stages.training import budgeted_settings
from benchmark.stages.tuning import run_tune_select

__all__ = [
    "PretrainingJob",
    "budgeted_settings",
    "dataset_note",
    "prepare_pretraining",
    "run_data",
    "run_evaluate",
    "run_finetune",
    "run_pretrain",
    "run_reference",
    "run_robustness",
    "run_tokenizer",
    "run_tune_select",
]
